import math

import torch

from grok_lib.training.regularizers import (add_weight_noise, effective_rank, spectral_entropy,
                                   spectral_entropy_penalty, spectral_summary)


def test_identity_has_spectral_entropy_log_n():
    for n in (2, 7, 64):
        assert math.isclose(float(spectral_entropy(torch.eye(n))), math.log(n), rel_tol=1e-6)


def test_rank_one_matrix_has_effective_rank_one():
    u, v = torch.randn(20, 1), torch.randn(1, 9)
    assert math.isclose(float(effective_rank(u @ v)), 1.0, abs_tol=1e-4)


def test_spectral_entropy_gradient_matches_finite_difference():
    m = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(spectral_entropy(m), m)
    direction = torch.randn(6, 4, dtype=torch.float64)
    h = 1e-6
    with torch.no_grad():
        numeric = (spectral_entropy(m + h * direction) - spectral_entropy(m - h * direction)) / (2 * h)
    assert math.isclose(float((grad * direction).sum()), float(numeric), rel_tol=1e-5)


def test_penalty_is_mean_over_matrices_only():
    params = {"a": torch.eye(4), "b": torch.eye(9), "bias": torch.ones(5)}
    assert math.isclose(float(spectral_entropy_penalty(params)), (math.log(4) + math.log(9)) / 2, rel_tol=1e-6)


def test_weight_noise_leaves_stored_weights_untouched_and_passes_gradient():
    w = torch.randn(5, 5, requires_grad=True)
    before = w.detach().clone()
    noisy = add_weight_noise({"w": w}, 0.1, torch.Generator().manual_seed(0))["w"]
    assert not torch.equal(noisy, w)
    assert torch.allclose((noisy - w).std(), torch.tensor(0.1), rtol=0.5)
    noisy.sum().backward()
    assert torch.equal(w.detach(), before)
    assert torch.equal(w.grad, torch.ones(5, 5))  # gradient at noisy weights applied to clean ones


def test_fresh_noise_each_call():
    w = torch.zeros(3, 3)
    g = torch.Generator().manual_seed(0)
    first, second = add_weight_noise({"w": w}, 1.0, g)["w"], add_weight_noise({"w": w}, 1.0, g)["w"]
    assert not torch.equal(first, second)


def test_effective_rank_is_weighted_by_parameter_count_as_in_the_authors_code():
    # identity 4x4 (erank 4, 16 numbers), rank-one 2x8 (erank 1, 16 numbers), a bias of 32 numbers
    params = {"a": torch.eye(4), "b": torch.ones(2, 8), "bias": torch.zeros(32)}
    summary = spectral_summary(params)
    assert math.isclose(summary["effective_rank"], (4 * 16 + 1 * 16) / 64, rel_tol=1e-5)
    assert math.isclose(summary["effective_rank_mean"], (4 + 1) / 2, rel_tol=1e-5)
