"""Training with the paper's protocol: AdamW, per-epoch reshuffled minibatches, log-spaced metrics."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from fractions import Fraction

import pandas as pd
import torch
import torch.nn.functional as F
from torch.func import functional_call
from tqdm.auto import tqdm

from .config import RunConfig
from .data import make_split
from ..errors import CheckpointError, require
from .model import Transformer
from .regularizers import add_weight_noise, penalty, spectral_summary
from ..files import copy_atomic, retrain_advice
from ..store import Run, RunStore, load_state_strict

BETAS = (0.9, 0.98)
ADAM_EPS = 1e-8


def log_schedule(epochs: int, base: Fraction = Fraction(13, 10)) -> list[int]:
    """The logged epochs: floor(1.3^n) for n = 0, 1, ... up to `epochs`, deduplicated (exact arithmetic)."""
    require(isinstance(epochs, int) and epochs > 0, "epochs", f"must be a positive integer, got {epochs!r}")
    found, n = set(), 0
    while (value := int(base**n)) <= epochs:  # int() of a positive Fraction is its floor
        found.add(value)
        n += 1
    return sorted(found)


def pick_device(device: str | None = None) -> torch.device:
    """CUDA when available, else CPU; an explicit choice wins (cpu, cuda or cuda:N, if this torch has it)."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError):
        chosen = None
    require(chosen is not None and chosen.type in ("cpu", "cuda"), "device",
            f"unknown device {device!r}; allowed: cpu, cuda, cuda:N")
    if chosen.type == "cuda":
        require(torch.cuda.is_available(), "device", "cuda was asked for, but this torch build sees no CUDA "
                f"device (torch {torch.__version__}); use --device cpu")
        require(chosen.index is None or chosen.index < torch.cuda.device_count(), "device",
                f"{device} does not exist; this machine has {torch.cuda.device_count()} CUDA device(s)")
    return chosen


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, params=None, chunk: int = 8192):
    """Mean cross-entropy (nats) and accuracy of `model` (optionally with other `params`) on (x, y)."""
    require(len(x) > 0, "data", "the dataset is empty")
    total_loss, correct = 0.0, 0
    for start in range(0, len(x), chunk):
        xb, yb = x[start:start + chunk], y[start:start + chunk]
        logits = model(xb) if params is None else functional_call(model, params, (xb,))
        total_loss += float(F.cross_entropy(logits.float(), yb, reduction="sum"))
        correct += int((logits.argmax(-1) == yb).sum())
    return total_loss / len(x), correct / len(x)


def l2_norm(params: dict[str, torch.Tensor]) -> float:
    """Euclidean norm of all parameters concatenated."""
    return float(torch.sqrt(sum((p.detach().float() ** 2).sum() for p in params.values())))


def measure(model: Transformer, split) -> dict[str, float]:
    """The metrics logged at each scheduled epoch."""
    model.eval()
    train_loss, train_acc = evaluate(model, split.train_x, split.train_y)
    test_loss, test_acc = evaluate(model, split.test_x, split.test_y)
    model.train()
    params = dict(model.named_parameters())
    row = dict(train_loss=train_loss, train_acc=train_acc, test_loss=test_loss, test_acc=test_acc,
               l2_norm=l2_norm(params))
    row.update(spectral_summary(params))
    return row


def training_loss(model, params, xb, yb, config: RunConfig, noise_generator):
    """Cross-entropy at weights with fresh noise (Eq. 10) plus the penalties (beta * mean spectral entropy,
    Eq. 16). As in the authors' code, the penalties are taken at the same (noisy) weights as the forward pass.
    """
    used = add_weight_noise(params, config.noise, noise_generator)
    return F.cross_entropy(functional_call(model, used, (xb,)), yb) + penalty(used, config)


def adamw(model: torch.nn.Module, config: RunConfig) -> torch.optim.AdamW:
    """The paper's optimizer (PROTOCOL: AdamW, betas (0.9, 0.98), eps 1e-8); its state_dict is the resume
    format of both training paths."""
    return torch.optim.AdamW(model.parameters(), lr=config.lr, betas=BETAS, eps=ADAM_EPS,
                             weight_decay=config.weight_decay)


def init_training(config: RunConfig, device):
    """The seeded model, its AdamW optimizer and the run's RNGs (shuffling on CPU, noise on `device`)."""
    torch.manual_seed(config.seed)
    model = Transformer(config.model_config()).to(device)
    optimizer = adamw(model, config)
    generators = {
        "shuffle": torch.Generator().manual_seed(config.seed + 1),
        "noise": torch.Generator(device=device).manual_seed(config.seed + 2),
    }
    return model, optimizer, generators


def logged_epochs(config: RunConfig) -> list[int]:
    """The epochs at which metrics and a checkpoint are written: the log schedule and the last epoch."""
    return sorted(set(log_schedule(config.epochs)) | {config.epochs})


def train_epoch(model, optimizer, split, config: RunConfig, generators, batch_size: int) -> None:
    """One epoch: a fresh permutation of the training set, minibatches of `batch_size`, AdamW steps."""
    model.train()
    params = dict(model.named_parameters())
    order = torch.randperm(len(split.train_x), generator=generators["shuffle"]).to(split.train_x.device)
    for batch in order.split(batch_size):
        loss = training_loss(model, params, split.train_x[batch], split.train_y[batch], config, generators["noise"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def state_tensors(model, optimizer, generators) -> dict[str, torch.Tensor]:
    """Everything needed to continue bit-for-bit: weights, AdamW moments and steps, RNG states."""
    tensors = {f"model/{k}": v for k, v in model.state_dict().items()}
    names = [name for name, _ in model.named_parameters()]
    for index, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            tensors[f"optim/{names[index]}/{key}"] = torch.as_tensor(value)
    for name, generator in generators.items():
        tensors[f"rng/{name}"] = generator.get_state()
    return tensors


def restore_state(run: Run, model, optimizer, generators) -> None:
    tensors = run.load_resume()
    weights = {k.removeprefix("model/"): v for k, v in tensors.items() if k.startswith("model/")}
    load_state_strict(model, weights, run.resume_path)
    names = [name for name, _ in model.named_parameters()]
    state = {}
    for index, name in enumerate(names):
        entries = {k.split("/")[-1]: v for k, v in tensors.items() if k.startswith(f"optim/{name}/")}
        if entries:
            state[index] = entries
    # a resume state is written after an epoch of AdamW steps: every parameter has its moments, every RNG
    # its state; without them training would go on from other numbers than an uninterrupted run's
    moments = {"exp_avg", "exp_avg_sq", "step"}
    missing = [f"optim/{n}" for i, n in enumerate(names) if not moments <= set(state.get(i, {}))]
    missing += [f"rng/{n}" for n in generators if f"rng/{n}" not in tensors]
    if missing:
        raise CheckpointError("resume", f"{run.resume_path} lacks {', '.join(missing[:3])}"
                              f"{' ...' if len(missing) > 3 else ''}, so training cannot continue exactly from it; "
                              f"{retrain_advice(run.resume_path)}")
    saved = optimizer.state_dict()
    saved["state"] = state
    optimizer.load_state_dict(saved)
    for name, generator in generators.items():
        generator.set_state(tensors[f"rng/{name}"])


def train(config: RunConfig, store: RunStore | None = None, device: str | None = None,
          progress: bool = True, stop_after: int | None = None, lock_wait: float = math.inf,
          extend: bool = True, on_log: Callable | None = None) -> Run:
    """Train `config` into the store, resuming from its last logged epoch; a finished run is reused.

    The run's "train" lock is held throughout (another process training the same config is waited for, up
    to `lock_wait` seconds), and everything resumes from the one resume state: metrics rows after its epoch
    are dropped. A new run whose config is stored with fewer epochs (ending on one of this run's logged
    epochs) continues from that run (extend=True; `shorter_twin`), bit for bit the same as training afresh.
    `stop_after` ends the session after that epoch, as an interruption would (used by tests).
    `on_log(epoch, row, model)` is called at every epoch logged in this session, once its row, checkpoint and
    resume state are written (grok_lib.monitor.board: TensorBoard and complexity while training).
    """
    device = pick_device(device)  # a bad device is refused first, even for a finished run
    store = store or RunStore()
    run = store.run(config)
    if run.is_complete:
        return run
    with run.lock("train", lock_wait):
        run.save_config()
        if extend and run.resume_epoch() == 0 and (twin := shorter_twin(config, store)) is not None:
            start_from(run, twin)
        return resume_training(run, device, progress, stop_after, on_log)


def shorter_twin(config: RunConfig, store: RunStore) -> Run | None:
    """The longest finished stored run of `config` with fewer epochs, ending on one of this run's logged
    epochs: its every epoch is this run's (nothing in training depends on the epoch count but the log
    schedule), so this run can continue from it."""
    for epochs in sorted((e for e in log_schedule(config.epochs) if e < config.epochs), reverse=True):
        twin = store.root / config.with_(epochs=epochs).key()
        if (twin / "config.json").is_file():
            run = store.open_dir(twin, config.with_(epochs=epochs))
            if run.is_complete:
                return run
    return None


def start_from(run: Run, twin: Run) -> None:
    """Copy a shorter twin's checkpoints, metrics, complexity table and, last, its resume state into `run`
    (whose train lock the caller holds); training then continues from the twin's final epoch."""
    with twin.lock("train"):
        for epoch in twin.checkpoints():
            copy_atomic(twin.checkpoint_path(epoch), run.checkpoint_path(epoch))
        for name in ("metrics.csv", "complexity.json", "complexity.csv"):  # the same checkpoints, measured
            if (twin.path / name).exists():
                copy_atomic(twin.path / name, run.path / name)
        copy_atomic(twin.resume_path, run.resume_path)  # last: marks progress


def resume_training(run: Run, device: str | None = None, progress: bool = True,
                    stop_after: int | None = None, on_log: Callable | None = None) -> Run:
    """The body of `train`, for a caller that holds the run's "train" lock."""
    config = run.config
    if run.is_complete:  # finished by whoever held the lock before us
        return run
    device = pick_device(device)
    split = make_split(config.op, config.p, config.train_frac, config.seed).to(device)

    model, optimizer, generators = init_training(config, device)
    start = run.resume_epoch()
    if start > 0:
        restore_state(run, model, optimizer, generators)
    metrics = run.metrics()
    metrics = metrics[metrics.epoch <= start]  # rows after the resume state (or any, with none) are stale

    logged = set(logged_epochs(config))
    n_train = len(split.train_x)
    batch_size = config.batch_size_for(n_train)
    last = config.epochs if stop_after is None else min(config.epochs, stop_after)
    bar = tqdm(range(start + 1, last + 1), initial=start, total=config.epochs, disable=not progress,
               desc=run.path.name, mininterval=1.0, unit="epoch")
    rows = metrics.to_dict("records")
    t0 = time.perf_counter() - (rows[-1]["wall_s"] if rows else 0.0)
    for epoch in bar:
        train_epoch(model, optimizer, split, config, generators, batch_size)
        if epoch in logged:
            row = dict(epoch=epoch, wall_s=time.perf_counter() - t0, **measure(model, split))
            rows.append(row)
            bar.set_postfix(train_acc=f"{row['train_acc']:.3f}", test_acc=f"{row['test_acc']:.3f}", refresh=False)
            run.save_weights(epoch, {k: v for k, v in model.state_dict().items()})
            run.write_metrics(pd.DataFrame(rows))
            run.save_resume(epoch, state_tensors(model, optimizer, generators))  # last: marks progress
            if on_log is not None:
                on_log(epoch, row, model)
    bar.close()
    return run


def grokking_epochs(metrics: pd.DataFrame, threshold: float = 0.99) -> dict[str, int | None]:
    """First logged epochs with train accuracy (memorization) and test accuracy (generalization) >= threshold."""
    def first(column):
        hit = metrics.loc[metrics[column] >= threshold, "epoch"]
        return int(hit.iloc[0]) if len(hit) else None

    return {"memorized": first("train_acc"), "generalized": first("test_acc")}
