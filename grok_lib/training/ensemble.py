"""Ensemble training: E runs of one op and architecture in one batched step, each stored as its own run.

Every run keeps what `train.train` would give it: its own split, initialization, shuffling and weight
noise (the same RNG calls on the same seeds), its own weight decay, noise and beta, and its own run
directory with metrics, checkpoints and resume state in the same format, so a run started in an
ensemble can be finished alone and the other way round. What is shared is the arithmetic: all weights
live in one (E, N) leaf tensor (rather than stack_module_state's stack per parameter, so that noise and
AdamW each act on one tensor), the forward pass is `vmap(functional_call)` on per-parameter views of
it, the spectral penalty is one batched eigh per Gram size (`spectral.py`), and AdamW updates all rows
at once.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from torch.func import functional_call
from tqdm.auto import tqdm

from .config import RunConfig
from .data import make_split
from ..errors import require
from .model import Transformer
from .regularizers import PENALTIES
from ..store import Run, RunStore
from .train import ADAM_EPS, BETAS, adamw, restore_state, state_tensors, log_schedule, measure, pick_device

# Fields that fix the shape of the batched step (data size, minibatches, epochs, weights); the others
# (seed, regime, lr, weight_decay, noise, beta) may differ between the runs of one ensemble.
SHARED_FIELDS = ("op", "p", "train_frac", "epochs", "batch_size", "n_layers", "d_model", "n_heads", "d_mlp")


def check_ensemble(configs: list[RunConfig]) -> None:
    """Raise GrokError naming the first field that differs between runs but must be shared."""
    require(len(configs) > 0, "configs", "an ensemble needs at least one run config")
    for field in SHARED_FIELDS:
        values = [getattr(c, field) for c in configs]
        require(len(set(values)) == 1, field, f"all runs of an ensemble must share {field}; got "
                f"{sorted(set(values), key=str)} (allowed to differ: seed, regime, lr, weight_decay, noise, beta)")
    keys = [c.key() for c in configs]
    require(len(set(keys)) == len(keys), "configs", "the same run config appears more than once")


@dataclass(frozen=True)
class ParamLayout:
    """Where each parameter of the model lives in a flat row, in named_parameters() order."""

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]

    @classmethod
    def of(cls, model: torch.nn.Module) -> ParamLayout:
        named = list(model.named_parameters())
        return cls(tuple(n for n, _ in named), tuple(p.shape for _, p in named))

    @property
    def sizes(self) -> list[int]:
        return [s.numel() for s in self.shapes]

    def flatten(self, tensors) -> torch.Tensor:  # per-parameter tensors -> (N,)
        return torch.cat([t.reshape(-1) for t in tensors])

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """(E, N) -> {name: (E, *shape)}, views into `flat` so gradients land in flat.grad.

        One split, not a slice per parameter: a slice's backward writes into a zero (E, N) buffer of
        its own, one split's backward is a single concatenation.
        """
        pieces = flat.split(self.sizes, dim=1)
        return {name: piece.view(-1, *shape) for name, shape, piece in zip(self.names, self.shapes, pieces)}


class StackedAdamW:
    """torch.optim.AdamW's single-tensor update on (E, N) rows, with lr and weight decay per row.

    torch's AdamW takes one weight decay per param group, and a group cannot split a stacked tensor,
    so the decoupled update (decay, moments, bias correction) is written out here, step for step.
    """

    def __init__(self, lr: list[float], weight_decay: list[float], exp_avg, exp_avg_sq, steps: int):
        lr64 = torch.tensor(lr, dtype=torch.float64, device=exp_avg.device)[:, None]  # (E, 1)
        wd64 = torch.tensor(weight_decay, dtype=torch.float64, device=exp_avg.device)[:, None]
        self.lr64 = lr64
        self.decay = (1 - lr64 * wd64).to(exp_avg.dtype)  # as torch: 1 - lr * wd in double, then cast
        self.exp_avg, self.exp_avg_sq, self.steps = exp_avg, exp_avg_sq, steps  # (E, N), (E, N), int

    @torch.no_grad()
    def step(self, param: torch.Tensor, grad: torch.Tensor) -> None:  # param, grad: (E, N)
        beta1, beta2 = BETAS
        self.steps += 1
        param.mul_(self.decay)
        self.exp_avg.lerp_(grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        step_size = (self.lr64 / (1 - beta1**self.steps)).to(param.dtype)  # (E, 1)
        denom = (self.exp_avg_sq.sqrt() / (1 - beta2**self.steps) ** 0.5).add_(ADAM_EPS)
        param.addcdiv_(self.exp_avg * step_size, denom, value=-1)


def draw_noise(layout: ParamLayout, stds: tuple[float, ...], generators, device) -> torch.Tensor:
    """Standard normal noise (E, N), drawn as add_weight_noise draws it: one normal draw per parameter,
    in order, from each run's own generator (normal_ on a contiguous slice gives the values randn of
    that shape would); runs without noise draw nothing and get zeros."""
    noise = torch.zeros(len(stds), sum(layout.sizes), device=device)  # (E, N)
    for row, std, generator in zip(noise, stds, generators):
        if std:
            for piece in row.split(layout.sizes):
                piece.normal_(generator=generator)
    return noise


@dataclass(frozen=True)
class Regularization:
    """Per-run noise std and, per penalty of regularizers.PENALTIES, the runs that pay it and their
    coefficients, as device tensors built once rather than every step."""

    stds: tuple[float, ...]
    std: torch.Tensor  # (E, 1)
    terms: tuple  # ((Penalty, indices (E',), coefficients (E',)), ...) for the penalties some run uses

    @classmethod
    def of(cls, configs: list[RunConfig], device) -> Regularization:
        terms = []
        for term in PENALTIES.values():
            paying = [e for e, c in enumerate(configs) if getattr(c, term.field)]
            if paying:
                terms.append((term, torch.tensor(paying, dtype=torch.long, device=device),
                              torch.tensor([getattr(configs[e], term.field) for e in paying], device=device)))
        return cls(tuple(c.noise for c in configs), torch.tensor([[c.noise] for c in configs], device=device),
                   tuple(terms))


def ensemble_loss(model, layout, flat, xb, yb, reg: Regularization, noise_generators) -> torch.Tensor:
    """Sum over runs of train.training_loss: cross-entropy at each run's noisy weights (Eq. 10) plus
    its penalties at those weights (beta * mean spectral entropy, Eq. 16). Runs share no parameters, so
    the gradient of the sum is each run's own gradient. xb: (E, B, 4), yb: (E, B)."""
    used = flat
    if any(reg.stds):
        used = flat + reg.std * draw_noise(layout, reg.stds, noise_generators, flat.device)
    params = layout.unflatten(used)  # {name: (E, *shape)}
    logits = torch.vmap(lambda p, x: functional_call(model, p, (x,)))(params, xb)  # (E, B, vocab)
    loss = F.cross_entropy(logits.flatten(0, 1), yb.flatten(), reduction="none").view(yb.shape).mean(1)  # (E,)
    for term, paying, coefficient in reg.terms:  # runs without a penalty don't pay for computing it
        loss = loss.index_add(0, paying, coefficient * term.stacked({k: v[paying] for k, v in params.items()}))
    return loss.sum()


def _initial_state(run: Run, start: int, layout: ParamLayout, generators: dict, device):
    """Weights, AdamW moments and step count of one run: fresh as in train(), or from its resume state."""
    torch.manual_seed(run.config.seed)
    model = Transformer(run.config.model_config()).to(device)
    if start == 0:
        weights = layout.flatten(p.detach() for p in model.parameters())
        return weights, torch.zeros_like(weights), torch.zeros_like(weights), 0
    optimizer = adamw(model, run.config)
    restore_state(run, model, optimizer, generators)
    states = [optimizer.state[p] for p in model.parameters()]
    return (layout.flatten(p.detach() for p in model.parameters()),
            layout.flatten(s["exp_avg"] for s in states), layout.flatten(s["exp_avg_sq"] for s in states),
            int(states[0]["step"]))


def _load_row(model: Transformer, layout: ParamLayout, row: torch.Tensor) -> None:
    """Copy one run's flat weights (N,) into the module that measure() and save_weights() read."""
    with torch.no_grad():
        for name, p in zip(layout.names, layout.unflatten(row[None]).values()):
            model.get_parameter(name).copy_(p[0])


def _resume_tensors(model, layout, optimizer: StackedAdamW, e: int, config: RunConfig, generators):
    """Run e's resume state, written by train()'s own code from a torch AdamW holding run e's moments."""
    torch_adamw = adamw(model, config)
    moments = zip(layout.unflatten(optimizer.exp_avg[e][None]).values(),
                  layout.unflatten(optimizer.exp_avg_sq[e][None]).values())
    for p, (exp_avg, exp_avg_sq) in zip(model.parameters(), moments):
        torch_adamw.state[p] = {"step": torch.tensor(float(optimizer.steps)), "exp_avg": exp_avg[0],
                                "exp_avg_sq": exp_avg_sq[0]}
    return state_tensors(model, torch_adamw, generators)


def _train_group(runs: list[Run], start: int, device, progress: bool, stop_after: int | None) -> None:
    """Train runs that all resume from epoch `start` as one batched ensemble."""
    configs = [r.config for r in runs]
    first = configs[0]
    splits = [make_split(c.op, c.p, c.train_frac, c.seed).to(device) for c in configs]
    model = Transformer(first.model_config()).to(device)  # the module vmap calls, and the one measured
    layout = ParamLayout.of(model)
    regularization = Regularization.of(configs, device)
    generators = [{"shuffle": torch.Generator().manual_seed(c.seed + 1),
                   "noise": torch.Generator(device=device).manual_seed(c.seed + 2)} for c in configs]
    states = [_initial_state(r, start, layout, g, device) for r, g in zip(runs, generators)]
    flat = torch.stack([s[0] for s in states]).requires_grad_()  # (E, N)
    optimizer = StackedAdamW([c.lr for c in configs], [c.weight_decay for c in configs],
                             torch.stack([s[1] for s in states]), torch.stack([s[2] for s in states]), states[0][3])

    rows = [r.metrics()[lambda m: m.epoch <= start].to_dict("records") for r in runs]
    now = time.perf_counter()
    t0 = [now - (r[-1]["wall_s"] if r else 0.0) for r in rows]
    train_x = torch.stack([s.train_x for s in splits])  # (E, N_train, 4)
    train_y = torch.stack([s.train_y for s in splits])  # (E, N_train)
    n_train = train_x.shape[1]
    batch_size = first.batch_size_for(n_train)
    run_index = torch.arange(len(runs), device=device)[:, None]  # (E, 1)
    logged = set(log_schedule(first.epochs)) | {first.epochs}
    last = first.epochs if stop_after is None else min(first.epochs, stop_after)
    bar = tqdm(range(start + 1, last + 1), initial=start, total=first.epochs, disable=not progress,
               desc=f"ensemble of {len(runs)}", mininterval=1.0, unit="epoch")
    for epoch in bar:
        order = torch.stack([torch.randperm(n_train, generator=g["shuffle"]) for g in generators]).to(device)
        for batch in order.split(batch_size, dim=1):  # (E, B)
            loss = ensemble_loss(model, layout, flat, train_x[run_index, batch], train_y[run_index, batch],
                                 regularization, [g["noise"] for g in generators])
            flat.grad = None
            loss.backward()
            optimizer.step(flat, flat.grad)
        if epoch in logged:
            for e, run in enumerate(runs):
                _load_row(model, layout, flat.detach()[e])
                rows[e].append(dict(epoch=epoch, wall_s=time.perf_counter() - t0[e], **measure(model, splits[e])))
                run.save_weights(epoch, dict(model.state_dict()))
                run.write_metrics(pd.DataFrame(rows[e]))
                run.save_resume(epoch, _resume_tensors(model, layout, optimizer, e, configs[e], generators[e]))
    bar.close()


def train_ensemble(configs: list[RunConfig], store: RunStore | None = None, device: str | None = None,
                   progress: bool = True, stop_after: int | None = None) -> list[Run]:
    """Train the runs of `configs` together, each into its own run directory; finished runs are skipped.

    All runs must share op and architecture (SHARED_FIELDS); each gets exactly what train() would give
    it, up to float rounding of the batched arithmetic. Unfinished runs resume from their own resume
    state; runs stopped at different epochs train as separate ensembles, one per epoch.
    `stop_after` ends the session after that epoch, as an interruption would (used by tests).
    """
    check_ensemble(configs)
    device = pick_device(device)  # a bad device is refused before anything is written
    store = store or RunStore()
    runs = [store.run(c) for c in configs]
    with ExitStack() as locks:  # every run's "train" lock, as train() takes it
        for run in runs:
            if not run.is_complete:
                locks.enter_context(run.lock("train"))
                run.save_config()
        pending: dict[int, list[Run]] = defaultdict(list)
        for run in runs:
            if not run.is_complete:
                pending[run.resume_epoch()].append(run)
        for start, group in sorted(pending.items()):
            _train_group(group, start, device, progress, stop_after)
    return runs
