"""Regularizers: spectral entropy (Eq. 15-16) and weight noise (Eq. 10). Weight decay lives in AdamW.

PENALTIES is the one table of loss terms coefficient * P(theta): single-run training (train.py) and
batched ensembles (ensemble.py) both add every entry whose RunConfig coefficient is non-zero. Adding a
penalty is one entry here and its coefficient field in RunConfig (grok_lib.training.config).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Callable

import torch

from .spectral import stacked_spectral_entropy_penalty


def normalized_singular_values(matrix: torch.Tensor) -> torch.Tensor:
    """Eq. 12: sigma_bar_i = sigma_i / sum_j sigma_j (works on a batch of matrices (..., m, n))."""
    s = torch.linalg.svdvals(matrix)
    return s / s.sum(dim=-1, keepdim=True)


def spectral_entropy(matrix: torch.Tensor) -> torch.Tensor:
    """Eq. 15: H_svd = -sum_i sigma_bar_i log sigma_bar_i (natural log), differentiable."""
    p = normalized_singular_values(matrix)
    return -torch.special.xlogy(p, p).sum(dim=-1)


def effective_rank(matrix: torch.Tensor) -> torch.Tensor:
    """Roy & Vetterli's effective rank exp(H_svd); Fig. 8."""
    return torch.exp(spectral_entropy(matrix))


def weight_matrices(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The parameters that are matrices (>= 2-D), which the spectral penalty and low-rank step act on."""
    return {name: p for name, p in params.items() if p.ndim >= 2}


def spectral_entropy_penalty(params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Eq. 16 without beta: the mean of H_svd over every >= 2-D parameter (as in the authors' code)."""
    matrices = list(weight_matrices(params).values())
    return torch.stack([spectral_entropy(m) for m in matrices]).mean()


@dataclass(frozen=True)
class Penalty:
    """A loss term: the RunConfig field holding its coefficient, and P(theta) for one model's parameters
    {name: tensor} and for E stacked models {name: (E, *shape)} -> (E,)."""

    field: str
    one: Callable[[dict[str, torch.Tensor]], torch.Tensor]
    stacked: Callable[[dict[str, torch.Tensor]], torch.Tensor]
    help: str


PENALTIES: dict[str, Penalty] = {
    "spectral_entropy": Penalty("beta", spectral_entropy_penalty, stacked_spectral_entropy_penalty,
                                "spectral-entropy penalty scale beta (Eq. 16; ours: 0.1)"),
}


def penalty(params: dict[str, torch.Tensor], config) -> torch.Tensor | float:
    """Sum of coefficient * P(params) over the PENALTIES whose coefficient in `config` is non-zero."""
    total = 0.0
    for term in PENALTIES.values():
        coefficient = getattr(config, term.field)
        if coefficient:
            total = total + coefficient * term.one(params)
    return total


def add_weight_noise(params: dict[str, torch.Tensor], std: float, generator: torch.Generator | None):
    """Eq. 10: theta + delta * N(0, 1), fresh noise per call.

    The noisy tensors stay attached to `params` in the autograd graph, so the gradient taken at the
    noisy weights flows unchanged (d theta~/d theta = I) to the clean weights; these are never modified.
    """
    if std == 0:
        return dict(params)
    return {
        name: p + std * torch.randn(p.shape, generator=generator, device=p.device, dtype=p.dtype)
        for name, p in params.items()
    }


def spectral_summary(params: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per-matrix spectral entropy and effective rank, and two network-wide effective ranks (Fig. 8).

    effective_rank: the authors' code's number, sum over matrices of exp(H_svd) x (its parameter count),
    divided by the parameter count of the whole network (1-D parameters included, contributing zero);
    effective_rank_mean: the unweighted mean of exp(H_svd) over the matrices. spectral_entropy: mean H_svd.
    """
    out: dict[str, float] = {}
    entropies, weighted = [], 0.0
    with torch.no_grad():
        for name, m in weight_matrices(params).items():
            h = float(spectral_entropy(m.float()))
            entropies.append(h)
            weighted += math.exp(h) * m.numel()
            out[f"entropy/{name}"] = h
            out[f"erank/{name}"] = math.exp(h)
    out["spectral_entropy"] = sum(entropies) / len(entropies)
    out["effective_rank"] = weighted / sum(p.numel() for p in params.values())
    out["effective_rank_mean"] = sum(math.exp(h) for h in entropies) / len(entropies)
    return out
