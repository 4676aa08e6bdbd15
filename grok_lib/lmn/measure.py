"""The linear mapping number (LMN) of Liu, Zhong & Tegmark (arXiv 2310.05918), built from its equations.

A network is split into hidden activations x (at some layer) and a head f mapping them to the logits.
For samples x^(i), i = 1..N, and 21 points lambda = 0, 0.05, ..., 1:

    x^(ij)(lambda) = x^(i) + lambda (x^(j) - x^(i)),    y^(ij)(lambda) = f(x^(ij)(lambda))
    L_ij = (1/d2) sum_k r^2(y_k^(ij)(lambda), lambda)      (r: Pearson correlation over the 21 points)
    L_ii = 1,  L symmetric
    lambda~ = |eig(L)| / sum |eig(L)|,  S = -sum lambda~ log2 lambda~,  LMN = 2^S

A linear (affine) head gives L = all ones, one non-zero eigenvalue, S = 0 and LMN = 1; a head that is
linear on c disjoint groups of samples and nowhere between them gives c blocks of ones and LMN = c.

Two choices the paper leaves open, made here:

* **Which samples.** `lmn_samples` draws a seeded subset of N inputs; `lmn_tasks` uses N = 256 of
  the training inputs and keeps that subset fixed across checkpoints, so a change in LMN over training
  is a change of the network and not of the sample draw. LMN grows with N (more pairs can disagree),
  so values are comparable only at equal N.
* **r^2 when y_k is constant along a path.** The Pearson correlation is 0/0 there. A constant is an
  affine function of lambda (slope 0), so output k *is* linear along the path; we set r^2 = 1. The
  alternative (r^2 = 0) would make an exactly affine head with a dead output score LMN > 1, breaking
  the paper's "a linear f gives LMN = 1". "Constant" means a standard deviation along the path at
  most `const_tol` (1e-6) times the root-mean-square of y on that path: float32 rounding, not signal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import GrokError, require
from ..training.model import MLP

Head = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class LMNConfig:
    """How LMN is measured; defaults follow the paper where it says, and our choices where it does not."""

    n_points: int = 21  # lambda = 0, 1/20, ..., 1 (paper)
    layer: int = 1  # split after this many hidden layers: 1 = first hidden layer's activations (paper)
    chunk_pairs: int = 4096  # sample pairs evaluated per batch: bounds memory at chunk_pairs * n_points rows
    const_tol: float = 1e-6  # relative spread below which y_k counts as constant on a path (r^2 := 1)

    def __post_init__(self):
        require(isinstance(self.n_points, int) and self.n_points >= 3, "n_points",
                f"needs an integer >= 3 for a correlation to mean anything, got {self.n_points!r}")
        require(isinstance(self.layer, int) and self.layer >= 0, "layer",
                f"must be an integer >= 0, got {self.layer!r}")
        require(isinstance(self.chunk_pairs, int) and self.chunk_pairs >= 1, "chunk_pairs",
                f"must be a positive integer, got {self.chunk_pairs!r}")
        require(math.isfinite(self.const_tol) and 0 <= self.const_tol < 1, "const_tol",
                f"must lie in [0, 1), got {self.const_tol}")


@dataclass(frozen=True)
class NetworkSplit:
    """A network cut in two: activations at the cut for N samples, and the head from there to logits."""

    hidden: torch.Tensor  # (N, d1) activations x^(i) at the split
    head: Head  # (M, d1) -> (M, d2) logits


def mlp_split(model: MLP, inputs: torch.Tensor, layer: int = 1) -> NetworkSplit:
    """Split a grok_lib MLP after `layer` hidden layers (post-SiLU); layer 0 is the embedding features.

    The MLP has n_layers linear layers, so its hidden layers are 1..n_layers-1. The head after the cut
    starts with a linear layer W, and an affine map carries the straight path between two activations
    onto the straight path between their images: W x^(ij)(lambda) + b = z^(i) + lambda (z^(j) - z^(i)),
    z = W x + b. So the split stores z and interpolates there; y^(ij)(lambda), and hence L, are
    unchanged, while the (pairs x 21)-row product with W (the largest cost) is done once per sample.
    """
    n_hidden = len(model.layers) - 1
    if not (isinstance(layer, int) and not isinstance(layer, bool) and 0 <= layer <= n_hidden):
        raise GrokError("layer", f"this MLP has hidden layers 1..{n_hidden} (0 = embedding features); got {layer!r}")
    with torch.no_grad():
        x = model.features(inputs)
        for linear in model.layers[:layer]:
            x = F.silu(linear(x))
        z = model.layers[layer](x)

    def head(h: torch.Tensor) -> torch.Tensor:
        for linear in model.layers[layer + 1:]:
            h = linear(F.silu(h))
        return h

    return NetworkSplit(hidden=z, head=head)


def sequential_split(model: torch.nn.Sequential, inputs: torch.Tensor, layer: int = 1) -> NetworkSplit:
    """Split an nn.Sequential of nn.Linear layers and parameter-free modules (activations, Flatten, Dropout)
    after `layer` hidden layers, as `mlp_split` splits a grok_lib MLP: hidden layer k ends where the
    (k+1)-th Linear begins, and that Linear, affine, is carried to the cut (the split stores its outputs;
    the head is the modules after it). Layer 0 is the inputs (the cut at the first Linear's outputs).
    `inputs` are floating-point rows (N, ...) that reach the cut as a matrix (N, d1)."""
    layers = list(model)
    linear = [i for i, m in enumerate(layers) if isinstance(m, torch.nn.Linear)]
    plain = all(isinstance(m, torch.nn.Linear) or not any(True for _ in m.parameters()) for m in layers)
    if not plain or not linear:
        raise GrokError("model", "LMN splits an nn.Sequential only of nn.Linear layers and parameter-free "
                        "modules (activations, Flatten, Dropout)")
    if not (isinstance(layer, int) and not isinstance(layer, bool) and 0 <= layer < len(linear)):
        raise GrokError("layer", f"this network has hidden layers 1..{len(linear) - 1} (0 = its inputs); "
                        f"got {layer!r}")
    require(inputs.is_floating_point() and not inputs.is_complex(), "inputs",
            f"an nn.Sequential's LMN needs real floating-point inputs, got {inputs.dtype}")
    cut = linear[layer] + 1
    with torch.no_grad():
        hidden = torch.nn.Sequential(*layers[:cut])(inputs)
    require(hidden.ndim == 2, "model", f"the activations at the cut must be a matrix (N, d1), got shape "
            f"{tuple(hidden.shape)}")
    return NetworkSplit(hidden=hidden, head=torch.nn.Sequential(*layers[cut:]))


def network_split(model: torch.nn.Module, inputs: torch.Tensor, layer: int = 1) -> NetworkSplit:
    """`mlp_split` for a grok_lib MLP, `sequential_split` for an nn.Sequential; a GrokError for any other
    network (or one these refuse)."""
    if isinstance(model, MLP):
        return mlp_split(model, inputs, layer)
    if isinstance(model, torch.nn.Sequential):
        return sequential_split(model, inputs, layer)
    raise GrokError("model", f"LMN splits a grok_lib MLP or an nn.Sequential of nn.Linear layers, not a "
                    f"{type(model).__name__}")


def lmn_samples(inputs: torch.Tensor, n_samples: int, seed: int = 0) -> torch.Tensor:
    """A seeded subset of `n_samples` rows of `inputs` (all of them, in seeded order, if fewer exist)."""
    require(isinstance(n_samples, int) and n_samples >= 2, "n_samples",
            f"LMN needs at least 2 samples to form a pair, got {n_samples!r}")
    order = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(seed))
    return inputs[order[: min(n_samples, len(inputs))].to(inputs.device)]


def _r_squared(y: torch.Tensor, lam: torch.Tensor, const_tol: float) -> torch.Tensor:
    """Squared Pearson correlation of each column of y (T, M) with lam (T,); constant columns give 1.

    Reductions over T are written as small matrix products over the leading axis (faster on CPU than
    strided reductions); centering before squaring keeps float32 accurate.
    """
    T = len(lam)
    centering = torch.eye(T, dtype=y.dtype, device=y.device) - 1.0 / T  # (T, T): y - mean(y)
    yc = centering @ y  # (T, M)
    lc = (lam - lam.mean()).to(y.dtype)
    cov = (lc @ yc).double()  # (M,)
    var = (torch.ones(T, dtype=y.dtype, device=y.device) @ (yc * yc)).double()  # T * variance
    mean = (y[0].double() - yc[0].double())
    spread_sq = var / T
    constant = spread_sq <= const_tol**2 * (spread_sq + mean * mean) + 1e-30
    r2 = cov * cov / (var.clamp_min(1e-300) * float(lc.double().square().sum()))
    return torch.where(constant, torch.ones_like(r2), r2.clamp(0.0, 1.0))


@torch.no_grad()
def linear_connectivity(split: NetworkSplit, config: LMNConfig = LMNConfig()) -> torch.Tensor:
    """The paper's matrix L (N, N), float64: L_ij = (1/d2) sum_k r^2(y_k^(ij)(lambda), lambda), L_ii = 1.

    Only pairs i < j are evaluated (the path j -> i is the path i -> j with lambda -> 1 - lambda, which
    flips the sign of r and leaves r^2 unchanged), in chunks of `config.chunk_pairs` pairs.
    """
    x = split.hidden
    require(x.ndim == 2, "hidden", f"must be a matrix (N, d1), got shape {tuple(x.shape)}")
    n, d1 = x.shape
    require(n >= 2, "n_samples", f"LMN needs at least 2 samples to form a pair, got {n}")
    require(bool(torch.isfinite(x).all()), "hidden", "activations contain NaN or inf; the network has diverged")
    lam = torch.linspace(0.0, 1.0, config.n_points, device=x.device, dtype=x.dtype)
    weights = torch.stack([1.0 - lam, lam], dim=1)  # (T, 2): x^(ij)(lambda) = (1 - lambda) x^(i) + lambda x^(j)
    rows, cols = torch.triu_indices(n, n, offset=1, device=x.device)
    values = torch.empty(len(rows), dtype=torch.float64, device=x.device)
    for start in range(0, len(rows), config.chunk_pairs):
        i, j = rows[start:start + config.chunk_pairs], cols[start:start + config.chunk_pairs]
        ends = torch.stack([x[i], x[j]]).reshape(2, -1)  # (2, P * d1)
        path = (weights @ ends).reshape(-1, d1)  # (T * P, d1), lambda-major
        y = split.head(path)  # (T * P, d2)
        r2 = _r_squared(y.reshape(config.n_points, -1), lam, config.const_tol)  # (P * d2,)
        values[start:start + len(i)] = r2.reshape(len(i), -1).mean(dim=1)
    # NaN or inf anywhere in y makes its r^2 NaN, so one check here replaces a check per chunk.
    if not bool(torch.isfinite(values).all()):
        raise GrokError("head", "the head returned NaN or inf on an interpolated activation")
    L = torch.eye(n, dtype=torch.float64, device=x.device)
    L[rows, cols] = values
    L[cols, rows] = values
    return L


def mapping_entropy(L: torch.Tensor) -> float:
    """S = -sum lambda~ log2 lambda~ (bits), lambda~ the |eigenvalues| of symmetric L normalised to sum 1."""
    require(L.ndim == 2 and L.shape[0] == L.shape[1] and L.shape[0] >= 2, "L",
            f"must be a square matrix of side >= 2, got shape {tuple(L.shape)}")
    require(bool(torch.isfinite(L).all()), "L", "contains NaN or inf")
    # numpy's LAPACK call: torch's first eigh in a process pays seconds of one-off MKL set-up.
    eig = np.abs(np.linalg.eigvalsh(L.detach().double().cpu().numpy()))
    total = eig.sum()
    require(total > 0, "L", "has only zero eigenvalues")
    p = eig[eig > 0] / total
    return float(-(p * np.log2(p)).sum())


def linear_mapping_number(L: torch.Tensor) -> float:
    """LMN = 2^S, S the eigenvalue entropy of L in bits (mapping_entropy)."""
    return 2.0 ** mapping_entropy(L)


@dataclass(frozen=True)
class LMNResult:
    lmn: float  # 2^S
    entropy_bits: float  # S
    n_samples: int


def measure_lmn(split: NetworkSplit, config: LMNConfig = LMNConfig()) -> LMNResult:
    """LMN of any network given as a NetworkSplit (activations at the cut and the head after it)."""
    L = linear_connectivity(split, config)
    lmn = linear_mapping_number(L)
    return LMNResult(lmn=lmn, entropy_bits=math.log2(lmn), n_samples=L.shape[0])


def mlp_lmn(model: torch.nn.Module, inputs: torch.Tensor, config: LMNConfig = LMNConfig()) -> LMNResult:
    """LMN of a grok_lib MLP on `inputs` (N, n_inputs), or of an nn.Sequential of nn.Linear layers on its
    inputs (network_split), split after `config.layer` hidden layers, in eval mode."""
    require(len(inputs) >= 2, "n_samples", f"LMN needs at least 2 samples to form a pair, got {len(inputs)}")
    was_training = model.training
    model.eval()
    try:
        return measure_lmn(network_split(model, inputs, config.layer), config)
    finally:
        model.train(was_training)
