"""Coarse-graining operators: quantization (Eq. 11) and per-matrix low rank (Eq. 12-14).

A coarse-grained network is stored as integer bin indices on one global grid of spacing Delta:

* a parameter kept whole is stored as round(theta / Delta) (Eq. 11);
* a matrix replaced by its rank-k truncated SVD (Eq. 13-14) is stored as two factors, U_k diag(S_k)
  (m x k) and V_k^T (k x n), each quantized on the same grid, as in the authors' code.

With a per-group Delta (`CoarseGrainer.with_ranks(..., scales=...)`, not in the paper) each parameter
has its own spacing Delta * scale, stored beside its indices; the paper's Eq. 11 is scales = None.

Storing indices rather than floats makes the grid values exact by construction: every coarse-grained value
is float32(float64(index) * Delta) (`dequantize`), so an index 0 is +0.0 (the code mapped -0.0 to +0.0
before compressing) and a decoder that knows the indices and Delta rebuilds the same weights bit for bit.
Parameters with more than two dimensions (convolution kernels of other networks) are viewed as
(shape[0], prod(rest)) matrices; 0-D and 1-D parameters (biases, LayerNorm) are only quantized.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import require

# |round(theta / Delta)| must fit int64 with room to spare; beyond this Delta is too small for the weights.
MAX_INDEX = 2.0**62


def memory_estimate(shapes: list[tuple[int, ...]]) -> int:
    """Bytes a search needs at its peak for parameters of these shapes, before any is allocated: a float32
    copy of each; per matrix its float64 copy, SVD factors and LAPACK's workspace (8 (2mn + r(m + n)),
    r = min(m, n)); and one coarse-graining in flight (int64 indices, float64 and float32 values, the
    module's weights and the serialized bytes: 32 bytes a number)."""
    total = 0
    for shape in shapes:
        n = math.prod(shape)
        total += 4 * n + 32 * n
        if len(shape) >= 2:
            m, k = shape[0], n // max(shape[0], 1)
            total += 8 * (2 * m * k + min(m, k) * (m + k))
    return total


def available_memory() -> int | None:
    """Bytes this process may still allocate: /proc/meminfo's MemAvailable, lowered by a cgroup (v2) limit;
    None where neither can be read (the check is then skipped)."""
    found = []
    try:
        with open("/proc/meminfo", encoding="ascii") as lines:
            found += [int(line.split()[1]) * 1024 for line in lines if line.startswith("MemAvailable:")]
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text(encoding="ascii").strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text(encoding="ascii"))
        if limit != "max":
            found.append(int(limit) - used)
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def check_memory(weights: dict) -> None:
    """Refuse, before allocating, weights whose search would not fit in memory (`memory_estimate`)."""
    needed, free = memory_estimate([tuple(w.shape) for w in weights.values()]), available_memory()
    require(free is None or needed <= free, "module",
            f"has {sum(w.numel() for w in weights.values()):,} numbers to coarse-grain: a search needs about "
            f"{needed / 2**30:.1f} GiB and this machine has {(free or 0) / 2**30:.1f} GiB available; measure a "
            "smaller network or use a machine with more memory")


def check_delta(delta: float) -> None:
    require(isinstance(delta, (int, float)) and math.isfinite(delta) and delta > 0, "delta",
            f"bin size must be a finite number > 0, got {delta!r}")


def check_tau(tau: float | None) -> None:
    """tau = None means "no low-rank step" (quantization only, Algorithm 2)."""
    if tau is not None:
        require(isinstance(tau, (int, float)) and 0.0 < tau <= 1.0, "tau",
                f"spectral threshold must lie in (0, 1], got {tau!r}")


def bin_indices(values: np.ndarray, delta: float) -> np.ndarray:
    """round(theta / Delta) as int64, ties to even (numpy and jax.numpy agree); the integer part of Eq. 11."""
    check_delta(delta)
    scaled = np.rint(np.asarray(values, dtype=np.float64) / delta)
    require(bool(np.all(np.isfinite(scaled))) and (scaled.size == 0 or np.abs(scaled).max() < MAX_INDEX),
            "delta", f"bin size {delta!r} is too small for weights of magnitude {np.abs(values).max():.3g}")
    return np.asarray(scaled.astype(np.int64))


def dequantize(indices: np.ndarray, delta: float) -> np.ndarray:
    """The grid value of each index, float32(index * Delta): the one definition encoder and decoder share."""
    return np.asarray(np.asarray(indices, dtype=np.float64) * delta, dtype=np.float32)


def quantize(values: np.ndarray, delta: float) -> np.ndarray:
    """Eq. 11: Q(theta, Delta) = round(theta / Delta) * Delta, one global Delta, returned as float32."""
    return dequantize(bin_indices(values, delta), delta)


@dataclass(frozen=True)
class Spectrum:
    """The float64 SVD of one matrix, computed once per checkpoint and reused for every tau."""

    left: np.ndarray  # (m, r) U
    singular: np.ndarray  # (r,) sigma, decreasing
    right: np.ndarray  # (r, n) V^T
    cumulative: np.ndarray  # (r,) sum_{i<=k} sigma_bar_i (Eq. 12), exactly 1.0 at the numerical rank


def spectrum(matrix: np.ndarray) -> Spectrum:
    """SVD of `matrix` with singular values below numerical resolution set to zero.

    Resolution follows numpy's matrix_rank: sigma <= sigma_max * max(m, n) * eps(float32), since the weights
    are float32. Without it an exactly rank-r float32 matrix has r' > r tiny singular values from rounding,
    and k(tau = 1) would be full rank instead of r. The cumulative sum is divided by its own last entry so
    that it reaches exactly 1.0 at the numerical rank (a pairwise np.sum could differ from it by an ulp).
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    u, s, vt = np.linalg.svd(matrix, full_matrices=False)
    floor = (s[0] if s.size else 0.0) * max(matrix.shape) * np.finfo(np.float32).eps
    s = np.where(s > floor, s, 0.0)
    total = np.cumsum(s)
    cumulative = total / total[-1] if total.size and total[-1] > 0 else np.ones_like(s)
    return Spectrum(u, s, vt, cumulative)


def truncation_rank(spec: Spectrum, tau: float) -> int:
    """Eq. 13: k(tau) = min{k : sum_{i<=k} sigma_bar_i >= tau}, at least 1."""
    check_tau(tau)
    return int(np.searchsorted(spec.cumulative, tau, side="left")) + 1


def keeps_factorization(k: int, m: int, n: int) -> bool:
    """Eq. 14: the rank-k factors (k(m + n) numbers) are kept only when smaller than the matrix (mn)."""
    return k * (m + n) < m * n


# How the rank-k factors share the singular values (not in the paper, which does not say; a departure
# from the authors' code is "balanced"):
#   "left"      U_k diag(S_k) and V_k^T, as the authors' code stores them: V_k^T's rows are unit vectors,
#               so on a grid of spacing Delta their rounding error reaches the product multiplied by S_k
#   "balanced"  U_k diag(S_k)^(1/2) and diag(S_k)^(1/2) V_k^T: both factors' errors reach it multiplied by
#               S_k^(1/2), a smaller error of the product on the same grid (benchmarks/RESULTS.md)
SPLITS = ("left", "balanced")


def check_split(factor_split: str) -> None:
    require(factor_split in SPLITS, "factor_split",
            f"unknown factor split {factor_split!r}; allowed: {', '.join(SPLITS)}")


def low_rank_factors(spec: Spectrum, k: int, split: str = "left") -> tuple[np.ndarray, np.ndarray]:
    """Eq. 14's truncated SVD as two float64 factors (m x k) and (k x n); `split`: see SPLITS."""
    check_split(split)
    if split == "left":
        return spec.left[:, :k] * spec.singular[:k], spec.right[:k]
    root = np.sqrt(spec.singular[:k])
    return spec.left[:, :k] * root, root[:, None] * spec.right[:k]


@dataclass(frozen=True)
class StoredParam:
    """One parameter of a coarse-grained network: its bin indices, whole or as two low-rank factors."""

    name: str
    shape: tuple[int, ...]  # the parameter's own shape
    rank: int | None  # None: stored whole; k: stored as factors (m x k) and (k x n)
    indices: tuple[np.ndarray, ...]  # int64: (whole,) or (left, right)
    delta: float | None = None  # its own grid spacing (a per-group Delta); None: the network's global Delta

    def step(self, delta: float) -> float:
        """This parameter's grid spacing, given the network's global Delta."""
        return delta if self.delta is None else self.delta

    def arrays(self, delta: float) -> list[np.ndarray]:
        """The stored float32 arrays (what the paper's coder pickles)."""
        return [dequantize(i, self.step(delta)) for i in self.indices]

    def weight(self, delta: float) -> np.ndarray:
        """The coarse-grained parameter in its own shape, float32; factors are multiplied in float64."""
        delta = self.step(delta)
        if self.rank is None:
            return dequantize(self.indices[0], delta).reshape(self.shape)
        left, right = (dequantize(i, delta).astype(np.float64) for i in self.indices)
        return (left @ right).astype(np.float32).reshape(self.shape)


@dataclass(frozen=True)
class CoarseGrained:
    """theta_RQ = Q(R(theta, tau), Delta) of Algorithm 1 (tau = None: Q(theta, Delta) of Algorithm 2)."""

    delta: float
    tau: float | None
    params: tuple[StoredParam, ...]

    def stored_arrays(self) -> list[np.ndarray]:
        """Every stored float32 array in parameter order: what gets compressed."""
        return [a for p in self.params for a in p.arrays(self.delta)]

    def weights(self) -> dict[str, torch.Tensor]:
        """The reconstructed coarse-grained weights, name -> float32 tensor."""
        return {p.name: torch.from_numpy(p.weight(self.delta)) for p in self.params}

    @property
    def ranks(self) -> dict[str, int | None]:
        """Per parameter: the rank k of its stored factors, or None when it is stored whole."""
        return {p.name: p.rank for p in self.params}


def as_matrix(array: np.ndarray) -> np.ndarray | None:
    """The matrix view the low-rank step acts on, or None for 0-D and 1-D parameters."""
    return array.reshape(array.shape[0], -1) if array.ndim >= 2 else None


class CoarseGrainer:
    """Coarse-grains one set of weights for any (tau, Delta); the SVDs are computed once, here."""

    def __init__(self, weights: dict[str, torch.Tensor], factor_split: str = "left"):
        require(len(weights) > 0, "module", "has no parameters to coarse-grain")
        check_split(factor_split)
        check_memory(weights)
        self.split = factor_split  # how low-rank factors share the singular values (SPLITS)
        self.names = list(weights)
        self.arrays = {}
        for name, value in weights.items():
            array = value.detach().cpu().float().numpy()  # float32 whatever the module's dtype
            require(bool(np.all(np.isfinite(array))), "module", f"parameter {name!r} contains NaN or inf")
            self.arrays[name] = array
        self.spectra = {name: spectrum(m) for name, a in self.arrays.items()
                        if (m := as_matrix(a)) is not None}
        self.max_abs = max(float(np.abs(a).max()) if a.size else 0.0 for a in self.arrays.values())

    def ranks(self, tau: float | None) -> tuple[int | None, ...]:
        """Per parameter, the rank whose factors R(theta, tau) keeps (Eq. 13-14), or None (kept whole)."""
        check_tau(tau)
        out = []
        for name in self.names:
            spec = self.spectra.get(name)
            if tau is None or spec is None:
                out.append(None)
                continue
            k = truncation_rank(spec, tau)
            m, n = spec.left.shape[0], spec.right.shape[1]
            out.append(k if keeps_factorization(k, m, n) else None)
        return tuple(out)

    def with_ranks(self, ranks: tuple[int | None, ...], delta: float, tau: float | None = None,
                   scales: tuple[float, ...] | None = None) -> CoarseGrained:
        """Q(R(theta), Delta) for explicit per-parameter ranks (the cache key of a coarse-graining).

        scales: per parameter, a multiplier of Delta giving its own grid spacing (a per-group Delta, e.g.
        grok_lib.complexity.allocation); None: one global Delta, the paper's Eq. 11.
        """
        check_delta(delta)
        require(scales is None or len(scales) == len(self.names), "scales",
                f"give one multiplier per parameter ({len(self.names)}), got {None if scales is None else len(scales)}")
        params = []
        for i, (name, k) in enumerate(zip(self.names, ranks)):
            array = self.arrays[name]
            own = None if scales is None or scales[i] == 1.0 else float(delta) * float(scales[i])
            step = float(delta) if own is None else own
            if k is None:
                indices = (bin_indices(array, step),)
            else:
                indices = tuple(bin_indices(f, step) for f in low_rank_factors(self.spectra[name], k, self.split))
            params.append(StoredParam(name, tuple(array.shape), k, indices, own))
        return CoarseGrained(float(delta), tau, tuple(params))

    def __call__(self, tau: float | None, delta: float) -> CoarseGrained:
        """Algorithm 1's theta_RQ = Q(R(theta, tau), Delta); tau = None skips R (Algorithm 2)."""
        return self.with_ranks(self.ranks(tau), delta, tau)


def coarse_grain(weights: dict[str, torch.Tensor], tau: float | None, delta: float) -> CoarseGrained:
    """One-off coarse-graining of `weights` (name -> tensor); see CoarseGrainer to reuse the SVDs."""
    check_tau(tau)
    check_delta(delta)
    return CoarseGrainer(weights)(tau, delta)
