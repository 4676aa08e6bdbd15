import math

import pytest
import torch

from conftest import DEVICES
from grok_lib.training.model import Transformer, TransformerConfig
from grok_lib.training.regularizers import spectral_entropy, spectral_entropy_penalty
from grok_lib.training.spectral import spectral_entropies, stacked_spectral_entropy_penalty

PAPER_SHAPES = [(115, 128), (4, 128), (128, 128), (512, 128), (128, 512), (128, 115)]
# float64: rounding only; float32: the svdvals reference itself is float32
TOLERANCE = {torch.float64: dict(rtol=1e-9, atol=1e-12), torch.float32: dict(rtol=1e-4, atol=1e-6)}


def value_and_gradient(entropy_fn, matrix):
    matrix = matrix.detach().requires_grad_()
    value = entropy_fn(matrix)
    (gradient,) = torch.autograd.grad(value.sum(), matrix)
    return value.detach(), gradient


def gram_entropy(matrix):
    return spectral_entropies([matrix])[0]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", PAPER_SHAPES)
def test_gram_entropy_equals_svd_entropy_in_value_and_gradient(shape, dtype, device):
    matrix = torch.randn(3, *shape, generator=torch.Generator().manual_seed(0), dtype=dtype) / math.sqrt(shape[1])
    matrix = matrix.to(device)
    value, gradient = value_and_gradient(gram_entropy, matrix)
    ref_value, ref_gradient = value_and_gradient(spectral_entropy, matrix)
    assert value.dtype == gradient.dtype == dtype
    torch.testing.assert_close(value, ref_value, **TOLERANCE[dtype])
    torch.testing.assert_close(gradient, ref_gradient, **TOLERANCE[dtype])


def test_float32_matrix_gets_float64_accurate_gradient_despite_squared_condition_number():
    """A random square matrix has sigma_min below sqrt(k eps32) ~ 4e-3 sigma_max, the resolution of
    a float32 Gram matrix, which gets this gradient wrong by 62 % (max-norm)."""
    matrix = torch.randn(128, 128, generator=torch.Generator().manual_seed(2)) / math.sqrt(128)
    value, gradient = value_and_gradient(gram_entropy, matrix)
    ref_value, ref_gradient = value_and_gradient(spectral_entropy, matrix.double())
    sigma = torch.linalg.svdvals(matrix.double())
    assert sigma.min() / sigma.max() < math.sqrt(128 * torch.finfo(torch.float32).eps)
    torch.testing.assert_close(value.double(), ref_value, rtol=1e-6, atol=0)
    torch.testing.assert_close(gradient.double(), ref_gradient, rtol=1e-5, atol=1e-6)


def test_rank_deficient_matrix_has_svd_entropy_and_its_gradient_on_the_nonzero_spectrum():
    """svdvals' gradient in the null space follows rounding noise (sigma ~ 1e-16 gives |log p| ~ 37)
    in an arbitrary basis; the Gram path drops it. On the nonzero singular subspaces both agree."""
    g = torch.Generator().manual_seed(1)
    matrix = torch.randn(10, 3, generator=g, dtype=torch.float64) @ torch.randn(3, 8, generator=g, dtype=torch.float64)
    value, gradient = value_and_gradient(gram_entropy, matrix)
    ref_value, ref_gradient = value_and_gradient(spectral_entropy, matrix)
    torch.testing.assert_close(value, ref_value, rtol=1e-12, atol=1e-12)
    u, _, vh = torch.linalg.svd(matrix, full_matrices=False)
    left, right = u[:, :3] @ u[:, :3].T, vh[:3].T @ vh[:3]  # projectors onto the rank-3 subspaces
    torch.testing.assert_close(gradient, left @ ref_gradient @ right, rtol=1e-9, atol=1e-12)
    assert (ref_gradient - left @ ref_gradient @ right).abs().max() > 1.0  # the null-space noise dropped


def test_zero_matrix_has_zero_entropy_and_zero_gradient():
    value, gradient = value_and_gradient(gram_entropy, torch.zeros(5, 7))
    assert float(value) == 0.0 and torch.equal(gradient, torch.zeros(5, 7))


def test_identity_has_spectral_entropy_log_n():
    assert float(gram_entropy(torch.eye(6, dtype=torch.float64))) == pytest.approx(math.log(6), abs=1e-12)


def test_stacked_penalty_is_each_models_mean_spectral_entropy():
    """Stacked copies of a real model's parameters, matrices of several shapes sharing Gram sizes."""
    cfg = TransformerConfig(vocab_size=13, d_model=16, n_heads=2, d_mlp=32, n_layers=2)
    models = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        models.append(dict(Transformer(cfg).named_parameters()))
    stacked = {name: torch.stack([m[name] for m in models]) for name in models[0]}
    expected = torch.stack([spectral_entropy_penalty(m) for m in models])
    torch.testing.assert_close(stacked_spectral_entropy_penalty(stacked), expected, rtol=1e-5, atol=1e-6)
