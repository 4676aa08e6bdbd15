"""The LMN paper's setup: three tasks, SiLU MLPs, AdamW training with LMN and L2 logged, in a run store.

Tasks (Liu, Zhong & Tegmark, arXiv 2310.05918): addition mod 31 (31 classes), composition in the
permutation group S4 (24 classes), and 5-bit XOR (32 classes). Each input is two symbols, embedded
(dim 32) and concatenated, then a 3-layer SiLU MLP (hidden 100). AdamW lr 1e-3, weight decay 0.2,
20,000 steps, a seeded 80/20 train/test split.

Batch size: the paper does not state one. These datasets have 576-1024 examples, so we read the
paper as full-batch gradient descent (one step = one pass over the training set), the common choice
for such small algorithmic datasets; `batch_size` makes minibatches available.

Run directory (same conventions as grok_lib.store: atomic writes, safetensors, keyed by config)::

    config.json                         the LMNRunConfig
    metrics.csv                         one row per logged step (tidy)
    checkpoints/step_000123.safetensors model weights at each logged step
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from ..errors import require
from .measure import LMNConfig, lmn_samples, mlp_lmn
from ..training.data import seeded_split
from ..training.model import MLP, MLPConfig
from ..files import save_tensors
from ..store import Run, RunStore, StoredConfig
from ..training.train import evaluate, l2_norm, log_schedule
from ..log import get as get_logger

LOG = get_logger(__name__)

# task -> (symbols per input, classes, description)
TASKS: dict[str, tuple[int, int, str]] = {
    "add": (31, 31, "addition mod 31"),
    "s4": (24, 24, "permutation composition in S4"),
    "xor": (32, 32, "5-bit XOR"),
}


def permutation_table(n: int = 4) -> torch.Tensor:
    """Composition table of S_n, (n!, n!) long: entry [i, j] indexes p_i o p_j, (p o q)(x) = p(q(x))."""
    perms = list(itertools.permutations(range(n)))
    index = {p: k for k, p in enumerate(perms)}
    return torch.tensor([[index[tuple(p[q[x]] for x in range(n))] for q in perms] for p in perms])


def task_data(task: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Every example of `task`: inputs (M, 2) long symbol pairs (a, b) and labels (M,)."""
    require(task in TASKS, "task", f"unknown task {task!r}; allowed: {', '.join(TASKS)}")
    n = TASKS[task][0]
    a, b = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    a, b = a.flatten(), b.flatten()
    if task == "add":
        y = (a + b) % n
    elif task == "s4":
        y = permutation_table(4)[a, b]
    else:
        y = a ^ b
    return torch.stack([a, b], dim=1), y


@dataclass(frozen=True)
class LMNRunConfig(StoredConfig):
    """One training run of the LMN paper's setup; defaults are the paper's values."""

    task: str = "add"  # add | s4 | xor
    seed: int = 0  # seeds the split, the initialization, minibatch order and the LMN sample draw
    steps: int = 20_000  # optimizer steps (paper)
    lr: float = 1e-3  # AdamW (paper)
    weight_decay: float = 0.2  # AdamW (paper)
    train_frac: float = 0.8  # 80/20 split (paper)
    batch_size: int | None = None  # None: full batch (our reading; the paper gives none)
    d_embed: int = 32  # paper
    d_hidden: int = 100  # paper
    n_layers: int = 3  # linear layers (paper: "3-layer")
    lmn_samples: int = 256  # N samples for LMN, drawn once (seeded) and fixed across checkpoints
    lmn_from: str = "train"  # draw LMN samples from: train | test | all
    log_every: int = 500  # logged steps: 0, floor(1.3^n), and every log_every steps

    def __post_init__(self):
        require(self.task in TASKS, "task", f"unknown task {self.task!r}; allowed: {', '.join(TASKS)}")
        for name in ("seed", "steps", "lmn_samples", "log_every", "d_embed", "d_hidden", "n_layers"):
            value = getattr(self, name)
            least = 0 if name == "seed" else 1
            require(isinstance(value, int) and value >= least, name, f"must be an integer >= {least}, got {value!r}")
        require(self.lmn_samples >= 2, "lmn_samples", f"LMN needs at least 2 samples, got {self.lmn_samples}")
        require(self.n_layers >= 2, "n_layers", f"needs at least one hidden layer (>= 2), got {self.n_layers}")
        require(math.isfinite(self.lr) and self.lr > 0, "lr", f"must be a positive number, got {self.lr}")
        require(math.isfinite(self.weight_decay) and self.weight_decay >= 0, "weight_decay",
                f"must be a finite number >= 0, got {self.weight_decay}")
        require(0.0 < self.train_frac < 1.0, "train_frac", f"must lie in (0, 1), got {self.train_frac}")
        if self.batch_size is not None:
            require(isinstance(self.batch_size, int) and self.batch_size >= 1, "batch_size",
                    f"must be a positive integer or None (full batch), got {self.batch_size!r}")
        require(self.lmn_from in ("train", "test", "all"), "lmn_from",
                f"must be train, test or all, got {self.lmn_from!r}")

    UNIT = "step"  # checkpoints and metrics are per optimizer step
    RESUMABLE = False  # minutes long: an unfinished run is retrained from step 0

    @property
    def length(self) -> int:
        return self.steps

    def build_model(self) -> MLP:
        return MLP(self.model_config())

    def model_config(self) -> MLPConfig:
        symbols, classes, _ = TASKS[self.task]
        return MLPConfig(vocab_size=symbols, n_inputs=2, d_embed=self.d_embed, d_hidden=self.d_hidden,
                         n_layers=self.n_layers, n_classes=classes)

    def logged_steps(self) -> list[int]:
        grid = range(0, self.steps + 1, self.log_every)
        return sorted({0, self.steps} | set(log_schedule(self.steps)) | set(grid))

    def key(self) -> str:
        """Directory name: readable prefix plus a hash of every field."""
        return f"lmn-{self.task}-s{self.seed}-{self.digest()}"


@dataclass(frozen=True)
class TaskSplit:
    train_x: torch.Tensor  # (N_train, 2) long
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    lmn_x: torch.Tensor  # (N, 2) the fixed LMN samples


def make_task_split(config: LMNRunConfig) -> TaskSplit:
    """Seeded 80/20 split of the task's examples, and the fixed LMN sample draw."""
    x, y = task_data(config.task)
    train, test = seeded_split(len(x), config.train_frac, config.seed)
    pool = {"train": x[train], "test": x[test], "all": x}[config.lmn_from]
    return TaskSplit(x[train], y[train], x[test], y[test], lmn_samples(pool, config.lmn_samples, config.seed))


def open_run(root: str | Path, config: LMNRunConfig) -> Run:
    """The run for `config` in the run store at `root` (created if new)."""
    return RunStore(root).run(config)


def measure_step(model: MLP, split: TaskSplit, lmn_config: LMNConfig) -> dict[str, float]:
    """Losses (nats), accuracies, L2 norm, and LMN (with its entropy S in bits) of the current model."""
    model.eval()
    train_loss, train_acc = evaluate(model, split.train_x, split.train_y)
    test_loss, test_acc = evaluate(model, split.test_x, split.test_y)
    lmn = mlp_lmn(model, split.lmn_x, lmn_config)
    model.train()
    return dict(train_loss=train_loss, train_acc=train_acc, test_loss=test_loss, test_acc=test_acc,
                l2_norm=l2_norm(dict(model.named_parameters())), lmn=lmn.lmn, lmn_entropy_bits=lmn.entropy_bits)


def train_lmn_run(config: LMNRunConfig, root: str | Path, device: str = "cpu",
                  lmn_config: LMNConfig = LMNConfig(), progress: bool = False) -> Run:  # noqa: B008 (frozen)
    """Train `config` into `root`, logging metrics and checkpoints at config.logged_steps().

    A finished run is reused. An unfinished one is retrained from step 0 (resume state is not stored:
    the runs are minutes long); the seeds make the rerun identical. `lmn_config` (split layer, chunking)
    is not part of the run's key, so measuring LMN at another layer needs another `root`.
    """
    run = open_run(root, config)
    if run.is_complete:
        return run
    with run.lock("train"):
        run.save_config()
        return _train_lmn_locked(run, device, lmn_config, progress)


def _train_lmn_locked(run: Run, device: str, lmn_config: LMNConfig, progress: bool) -> Run:
    config = run.config
    if run.is_complete:  # finished by whoever held the lock before us
        return run
    split = make_task_split(config)
    split = TaskSplit(*(t.to(device) for t in (split.train_x, split.train_y, split.test_x, split.test_y, split.lmn_x)))
    torch.manual_seed(config.seed)
    model = MLP(config.model_config()).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    shuffle = torch.Generator().manual_seed(config.seed + 1)
    n_train = len(split.train_x)
    batch_size = config.batch_size or n_train
    logged = set(config.logged_steps())
    rows, t0, step = [], time.perf_counter(), 0
    batches = iter(())
    while True:
        if step in logged:
            rows.append(dict(step=step, wall_s=time.perf_counter() - t0, **measure_step(model, split, lmn_config)))
            save_tensors(run.checkpoint_path(step), model.state_dict(), {"step": str(step)})
            run.write_metrics(pd.DataFrame(rows))
            if progress:
                r = rows[-1]
                LOG.info(f"{config.task} step {step}: train acc {r['train_acc']:.3f} test acc {r['test_acc']:.3f} "
                         f"LMN {r['lmn']:.2f} L2 {r['l2_norm']:.1f}")
        if step == config.steps:
            return run
        batch = next(batches, None)
        if batch is None:
            batches = iter(torch.randperm(n_train, generator=shuffle).to(device).split(batch_size))
            batch = next(batches)
        loss = F.cross_entropy(model(split.train_x[batch]), split.train_y[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1

