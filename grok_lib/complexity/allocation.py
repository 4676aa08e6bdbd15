"""Per-group Delta (not in the paper, which uses one global Delta and says a Delta per group would compress
further): every parameter g gets its own grid spacing Delta * a_g, the multipliers a_g fixed once per
checkpoint from measured sensitivities, so that Algorithms 1 and 2 still search (tau, Delta) only.

    allocation = "global"       the paper's Eq. 11: a_g = 1
    allocation = "sensitivity"  a_g proportional to h_g^(-1/2), below

The model: rounding parameter g adds an error of mean square e2_g per weight and raises the training loss
by about dL_g = h_g n_g e2_g / 2 (h_g: the group's mean curvature, n_g its size), while its indices cost
about n_g log2(sigma_g / Delta_g) bits. Fewest bits for a fixed total loss increase (Lagrange:
n_g / Delta_g proportional to h_g n_g Delta_g) gives Delta_g proportional to h_g^(-1/2), whatever n_g.
h_g is measured for every matrix (biases and norms, a few bytes, keep the global Delta): g alone is rounded at a
probe spacing (a quarter of its RMS, moved by factors of 4 until
the loss rises measurably but not wildly), its loss on PROBE_EXAMPLES training examples (seeded draw)
compared with the unrounded network's, h_g = 2 dL_g / (n_g e2_g). The multipliers are normalised to a
size-weighted geometric mean of 1 (Delta keeps its meaning on average) and clipped to SCALE_RANGE; a
group whose rounding never raises the loss gets the largest multiplier. The search then meets the bound
with the true loss of the whole coarse-grained network, so a poor allocation costs bytes, never validity.

What the probes need of a ComplexityProblem (which calls sensitivity_scales(grainer, loss_rise(self)) once it
has measured the unrounded loss) is the typed interface `Probed`; this module never imports problem.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from .coarse import CoarseGrainer, quantize
from .distortion import train_subset
from ..errors import require

ALLOCATIONS = ("global", "sensitivity")
PROBE_EXAMPLES = 4096  # training examples the sensitivities are measured on
SCALE_RANGE = (1 / 64, 64.0)
RISE = (1e-3, 0.3)  # the loss rise (nats) a probe aims for: measurable, still near quadratic
ATTEMPTS = 4  # probe spacings tried per parameter
FLOOR = 1e-6  # a loss rise below this is "none"


def check_allocation(allocation: str) -> None:
    require(allocation in ALLOCATIONS, "allocation",
            f"unknown Delta allocation {allocation!r}; allowed: {', '.join(ALLOCATIONS)}")


@runtime_checkable
class Probed(Protocol):
    """What `loss_rise` reads of a network's search problem (a ComplexityProblem is one), and nothing else."""

    grainer: CoarseGrainer  # its float32 arrays, by parameter name
    train: tuple[torch.Tensor, torch.Tensor]  # the full training set, on `device`
    device: torch.device
    dtypes: dict[str, torch.dtype]  # each parameter's own dtype

    def loss_and_accuracy(self, weights: dict[str, torch.Tensor], data, limit: float = math.inf,
                          on_continue=None) -> tuple[float, float, bool]: ...


RiseOf = Callable[[str, np.ndarray], float]  # (parameter name, its rounded array) -> the loss rise


def loss_rise(problem: Probed) -> RiseOf:
    """rise_of(name, rounded): the loss rise on PROBE_EXAMPLES training examples (distortion.train_subset)
    when parameter `name` alone is replaced by `rounded` (the others at their float32 values)."""
    subset = train_subset(problem.train, PROBE_EXAMPLES)

    def on_device(name, array):
        return torch.from_numpy(array).to(device=problem.device, dtype=problem.dtypes[name])

    weights = {k: on_device(k, a) for k, a in problem.grainer.arrays.items()}
    reference = problem.loss_and_accuracy(weights, subset)[0]
    return lambda name, rounded: (problem.loss_and_accuracy({**weights, name: on_device(name, rounded)}, subset)[0]
                                  - reference)


def sensitivity_scales(grainer: CoarseGrainer, rise_of: RiseOf) -> tuple[tuple[float, ...], int]:
    """(per parameter of grainer.names, its multiplier a_g; the number of loss evaluations spent).

    rise_of(name, rounded): the loss increase, over the unrounded network, of the network with parameter
    `name` replaced by the float32 array `rounded` (the same shape).
    """
    log_h, sizes, evaluations = {}, {}, 0
    for name in grainer.names:
        array = grainer.arrays[name]
        rms = float(np.sqrt(np.mean(np.square(array, dtype=np.float64)))) if array.size else 0.0
        if rms == 0.0 or array.ndim < 2:
            continue  # all zeros (exact at any spacing), or a bias / norm (few bytes): the global Delta
        probe, curvature = rms / 4, None
        for _ in range(ATTEMPTS):
            rounded = quantize(array, probe)
            e2 = float(np.mean(np.square(rounded.astype(np.float64) - array)))
            rise = rise_of(name, rounded)
            evaluations += 1
            if rise > FLOOR and e2 > 0:
                curvature = 2 * rise / (array.size * e2)
            if rise > RISE[1]:
                probe /= 4
            elif rise < RISE[0]:
                probe *= 4
            else:
                break
        log_h[name] = -math.inf if curvature is None else math.log(curvature)
        sizes[name] = array.size
    finite = {n: v for n, v in log_h.items() if math.isfinite(v)}
    total = sum(sizes[n] for n in finite)
    mean = sum(sizes[n] * v for n, v in finite.items()) / total if total else 0.0
    low, high = SCALE_RANGE
    scales = []
    for name in grainer.names:
        if name not in log_h:
            scales.append(1.0)
        elif not math.isfinite(log_h[name]):
            scales.append(high)
        else:
            scales.append(float(min(max(math.exp(-(log_h[name] - mean) / 2), low), high)))
    return tuple(scales), evaluations
