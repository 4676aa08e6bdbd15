"""A Delta per matrix, found at the edge of the bound (BayesConfig.reallocate; not in the paper).

The paper uses one global Delta and says a Delta per parameter group would compress further. Where the
answer of Algorithm 1 sits at the edge of the bound (BayesConfig.refine), one global Delta spends the
loss budget where it buys the fewest bytes; this moves it. At the answer's ranks, each sweep prices one
move per matrix against the move of the global Delta, both by the same factor STEP:

    the global move, every spacing x STEP:   bytes saved b_0, training loss risen l_0;  beta = b_0 / l_0
    matrix g's move, its spacing alone x STEP: bytes saved b_g, loss risen l_g;  gain_g = b_g - beta l_g

A matrix whose move gains (it saves more bytes for its loss than the global Delta does) is made coarser by
STEP, every other matrix finer by STEP: a sign step on the log spacings along the exchange rate that the
global Delta sets. The global Delta is then moved to the new edge of the bound (geometric steps of
sqrt(STEP) until the bound is met and missed, then bisection; EDGE_STEPS points, each evaluated on the
full training set, exactly as the search's own, and each a candidate answer). A sweep whose edge is
smaller than the point it started from moves the search there; otherwise the next sweep starts from the
same point with STEP replaced by its square root. The answer is the smallest candidate, so a poor move
costs evaluations, never validity or size.

The priced moves' losses are measured exactly (no early exit) on PRICE_EXAMPLES training examples drawn
once by a seeded generator: they only choose the moves. Their sizes are the search objective's (its search size; the
entropy coder re-encodes only the moved matrix). Biases, norms and matrices with under MIN_SHARE of the
matrices' entries (a few bytes) keep the global Delta.
Measured: benchmarks/RESULTS.md, "A tighter bound".

What a sweep asks of the search problem (a ComplexityProblem is one: the search passes its own) is
the typed interface `Reallocatable`; this module never imports problem.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch

from .coarse import CoarseGrainer
from .distortion import train_subset
from .results import Evaluation

STEP = 1.5  # the factor of each move, global and per matrix
EDGE_STEPS = 4  # evaluations that move the global Delta to the new edge, per sweep
PRICE_EXAMPLES = 256  # training examples the priced moves' losses are measured on
MIN_SHARE = 0.01  # matrices with fewer than this share of all matrices' entries keep the global Delta
TINY_RISE = 1e-9  # a loss rise below this prices the global move as free (beta = b_0 / TINY_RISE)


@runtime_checkable
class Reallocatable(Protocol):
    """What `reallocate` reads of a search problem, and nothing else."""

    grainer: CoarseGrainer  # its float32 arrays and their coarse-grainings at given ranks
    train: tuple[torch.Tensor, torch.Tensor]  # the full training set

    def evaluate(self, tau: float | None, delta: float, eps: float, prefetch: bool = False,
                 scales: tuple[float, ...] | None = None) -> Evaluation: ...

    def feasible(self, evaluation: Evaluation, eps: float) -> bool: ...

    def size(self, evaluation: Evaluation) -> int: ...

    def price(self, ranks: tuple, tau: float | None, points: list[tuple[float, tuple[float, ...]]],
              data) -> tuple[list[float], list[int]]: ...


def reallocate(problem: Reallocatable, best: Evaluation, eps: float, sweeps: int,
               tell: Callable[[Evaluation], object]) -> int:
    """`sweeps` sweeps from the evaluation `best` (feasible at eps); every full-set point is passed to
    tell(evaluation) (the search's objective, which makes it a candidate). Returns the loss evaluations
    spent, priced moves included."""
    grainer = problem.grainer
    entries = {i: grainer.arrays[name].size for i, name in enumerate(grainer.names) if grainer.arrays[name].ndim >= 2}
    matrices = [i for i, n in entries.items() if n >= MIN_SHARE * sum(entries.values())]
    scales, delta, size = tuple(best.scales or (1.0,) * len(grainer.names)), best.delta, problem.size(best)
    subset = train_subset(problem.train, PRICE_EXAMPLES)
    step, spent = STEP, 0
    for _ in range(sweeps if matrices else 0):
        points = [(delta, scales), (delta * step, scales)]
        for i in matrices:
            points.append((delta, tuple(a * step if j == i else a for j, a in enumerate(scales))))
        losses, sizes = problem.price(best.ranks, best.tau, points, subset)
        spent += len(points)
        saved = [sizes[0] - b for b in sizes]
        risen = [loss - losses[0] for loss in losses]
        beta = saved[1] / max(risen[1], TINY_RISE)
        moved = list(scales)
        for j, i in enumerate(matrices, start=2):
            moved[i] *= step if saved[j] - beta * risen[j] > 0 else 1 / step
        edge, edge_size = _edge(problem, best.tau, delta, tuple(moved), eps, math.sqrt(step), tell)
        spent += EDGE_STEPS
        if edge is not None and edge_size < size:
            scales, delta, size = tuple(moved), edge, edge_size
        else:  # the sweep found nothing smaller: the next one moves from the same point by half as much
            step = math.sqrt(step)
    return spent


def _edge(problem: Reallocatable, tau: float | None, delta: float, scales: tuple, eps: float, ratio: float,
          tell: Callable[[Evaluation], object]) -> tuple[float | None, int | None]:
    """The largest global Delta found meeting the bound at these scales and its search size (None, None if
    none did): EDGE_STEPS evaluations from `delta`, by factors of `ratio` until the bound is both met and
    missed, then bisecting."""
    low, high, trial, size = None, None, delta, None
    for _ in range(EDGE_STEPS):
        evaluation = problem.evaluate(tau, trial, eps, prefetch=True, scales=scales)
        tell(evaluation)
        if problem.feasible(evaluation, eps):
            low, size = trial, problem.size(evaluation)
        else:
            high = trial
        trial = trial / ratio if low is None else trial * ratio if high is None else math.sqrt(low * high)
    return low, size
