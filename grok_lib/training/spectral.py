"""Fast spectral entropy (Eq. 15-16) for many stacked matrices: eigh of the small Gram matrix, not an SVD.

The singular values of M (m x n) are the square roots of the eigenvalues of its Gram matrix, taken on the
smaller side (k = min(m, n)): G = M^T M (k = n) when M is tall, G = M M^T (k = m) when it is wide. One
batched `eigh` per Gram size serves every matrix of that size at once (all E stacked copies of all
parameters), which is what makes the penalty affordable when E models train together.

The gradient needs no SVD either. With G = V diag(sigma^2) V^T (tall case), u_i = M v_i / sigma_i, so

    dH/dM = sum_i g_i u_i v_i^T = M V diag(g_i / sigma_i) V^T,   g_i = dH/dsigma_i = -(log p_i + H) / S,

with p_i = sigma_i / S and S = sum_j sigma_j (wide case: V diag(g/sigma) V^T M with the eigenvectors of
M M^T). The Gram and its eigendecomposition are computed in float64: squaring M squares its condition
number, and float64 keeps the singular values of float32 weights as accurate as a float32 SVD would
(measured: closer to a float64 SVD than float32 svdvals is). A float32 Gram is not an option: it
resolves sigma only down to ~sqrt(k eps32) = 4e-3 sigma_max, and a random square 128 x 128 matrix,
whose smallest sigma is ~3e-3 sigma_max, gets its gradient wrong by 60-95 % (measured, max-norm).
Singular values below the Gram's resolution (sigma_i^2 <= k * eps64 * sigma_max^2) are taken as exactly
zero: they add nothing to H, and their gradient, which is unbounded (d(-p log p)/dp -> inf as p -> 0) and
would otherwise follow rounding noise in an arbitrary null-space basis, is set to zero.
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
