"""Spectral entropy (Eq. 15-16) of many stacked matrices from eigh of the small Gram matrix, not an SVD.

The singular values of M (m x n) are the square roots of the eigenvalues of its Gram matrix on the
smaller side (G = M^T M when M is tall, M M^T when wide); one batched `eigh` per Gram size serves every
matrix of that size, all E stacked models at once. The gradient needs no SVD either (tall case):

    dH/dM = sum_i g_i u_i v_i^T = M V diag(g_i / sigma_i) V^T,   g_i = dH/dsigma_i = -(log p_i + H) / S,

with u_i = M v_i / sigma_i, p_i = sigma_i / S, S = sum_j sigma_j (wide: V diag(g/sigma) V^T M).
The Gram is formed in float64: squaring M squares its condition number, and a float32 Gram resolves
sigma only down to sqrt(k eps32) sigma_max (4e-3 sigma_max at k = 128), above the smallest sigma of a
random square 128 x 128 matrix. Singular values below the float64 Gram's resolution
(sigma_i^2 <= k eps64 sigma_max^2) are taken as zero: they add nothing to H, and their unbounded
gradient would follow rounding noise.
"""

from __future__ import annotations

from collections import defaultdict

import torch


def gram(matrix: torch.Tensor) -> torch.Tensor:
    """The float64 Gram matrix on the smaller side: (..., m, n) -> (..., k, k), k = min(m, n)."""
    m = matrix.double()
    if matrix.shape[-2] >= matrix.shape[-1]:
        return m.transpose(-2, -1) @ m
    return m @ m.transpose(-2, -1)


def resolved_singular_values(eigenvalues: torch.Tensor) -> torch.Tensor:
    """sigma = sqrt(lambda) from Gram eigenvalues (..., k), zero below the Gram's resolution."""
    k = eigenvalues.shape[-1]
    floor = k * torch.finfo(eigenvalues.dtype).eps * eigenvalues.amax(dim=-1, keepdim=True)
    return torch.where(eigenvalues > floor, eigenvalues, 0.0).sqrt()


class _EntropyFromGram(torch.autograd.Function):
    """H of M given the eigendecomposition of its Gram matrix; backward is dH/dM from the eigenvectors."""

    @staticmethod
    def forward(ctx, matrix, sigma, vectors):  # matrix (..., m, n); sigma (..., k); vectors (..., k, k)
        total = sigma.sum(dim=-1, keepdim=True)  # (..., 1)
        total = torch.where(total > 0, total, 1.0)  # a zero matrix gets H = 0 and a zero gradient
        p = sigma / total
        entropy = -torch.special.xlogy(p, p).sum(dim=-1)  # (...,)
        g = -(torch.log(torch.where(p > 0, p, 1.0)) + entropy[..., None]) / total  # dH/dsigma, (..., k)
        scale = torch.where(sigma > 0, g / torch.where(sigma > 0, sigma, 1.0), 0.0)  # g / sigma, (..., k)
        kernel = (vectors * scale[..., None, :]) @ vectors.transpose(-2, -1)  # V diag(g/sigma) V^T
        ctx.save_for_backward(matrix, kernel)
        return entropy.to(matrix.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_entropy):  # grad_entropy (...,)
        matrix, kernel = ctx.saved_tensors
        m = matrix.double()
        grad = m @ kernel if matrix.shape[-2] >= matrix.shape[-1] else kernel @ m  # (..., m, n)
        return (grad_entropy.double()[..., None, None] * grad).to(matrix.dtype), None, None


def spectral_entropies(matrices: list[torch.Tensor]) -> list[torch.Tensor]:
    """Eq. 15 for each entry, a matrix or a stack (..., m, n); differentiable; one eigh per Gram size.

    Equals `regularizers.spectral_entropy` (the svdvals path) in value and gradient.
    """
    with torch.no_grad():  # _EntropyFromGram supplies the gradient; no graph through gram and eigh
        grams = [gram(m) for m in matrices]
        by_size: dict[int, list[int]] = defaultdict(list)
        for index, g in enumerate(grams):
            by_size[g.shape[-1]].append(index)
        decomposed: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for k, indices in by_size.items():
            batch = torch.cat([grams[i].reshape(-1, k, k) for i in indices])  # (sum of batch sizes, k, k)
            eigenvalues, vectors = torch.linalg.eigh(batch)
            sigma = resolved_singular_values(eigenvalues)
            counts = [grams[i][..., 0, 0].numel() for i in indices]
            for i, s, v in zip(indices, sigma.split(counts), vectors.split(counts)):
                lead = grams[i].shape[:-2]
                decomposed[i] = (s.reshape(*lead, k), v.reshape(*lead, k, k))
    return [_EntropyFromGram.apply(m, *decomposed[i]) for i, m in enumerate(matrices)]


def stacked_spectral_entropy_penalty(params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Eq. 16 without beta for E stacked models: mean H over the matrices of each model, (E,).

    `params` maps names to stacked tensors (E, *shape); the matrices are those with 2-D `shape`, as
    in `regularizers.spectral_entropy_penalty`, of which this is the batched, SVD-free twin.
    """
    matrices = [p for p in params.values() if p.ndim >= 3]
    return torch.stack(spectral_entropies(matrices), dim=-1).mean(dim=-1)
