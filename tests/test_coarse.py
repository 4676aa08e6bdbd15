"""Coarse-graining operators (Eq. 11-14) and the coders that measure their size."""

import bz2
import pickle

import numpy as np
import pytest
import torch

from grok_lib.complexity.coarse import (CoarseGrainer, bin_indices, coarse_grain, keeps_factorization, quantize, spectrum,
                             truncation_rank)
from grok_lib.complexity.coders import CODERS, coded_sizes, decode_symbols, encode_symbols, naive_size, paper_size
from grok_lib.errors import GrokError


def rank_r_matrix(m, n, r, seed=0):
    g = np.random.default_rng(seed)
    return (g.normal(size=(m, r)) @ g.normal(size=(r, n))).astype(np.float32)


def some_weights(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "embed": torch.randn(20, 12, generator=g) * 0.3,
        "low": torch.from_numpy(rank_r_matrix(24, 16, 2, seed)),
        "conv": torch.randn(4, 3, 2, 2, generator=g),
        "bias": torch.randn(12, generator=g) * 0.1,
        "scale": torch.tensor(1.5),
    }


@pytest.mark.parametrize("delta", [2.0**-6, 0.013, 0.37])
def test_weights_already_on_the_grid_are_reproduced_exactly_by_quantization(delta):
    k = np.random.default_rng(1).integers(-300, 300, size=(50, 7))
    on_grid = (k * delta).astype(np.float32)  # float64 product, then float32: the grid's definition
    assert np.array_equal(quantize(on_grid, delta), on_grid)
    assert np.array_equal(bin_indices(on_grid, delta), k)


def test_quantization_moves_each_weight_by_at_most_half_a_bin():
    theta = np.random.default_rng(2).normal(size=1000).astype(np.float32)
    for delta in (1e-3, 0.05, 0.7):
        assert np.abs(quantize(theta, delta).astype(np.float64) - theta).max() <= delta / 2 + 1e-6


def test_quantization_never_produces_negative_zero():
    q = quantize(np.array([-1e-4, -0.0, 1e-4], dtype=np.float32), 0.1)
    assert not np.signbit(q).any()


def test_truncation_rank_is_the_smallest_k_whose_normalized_singular_values_reach_tau():
    spec = spectrum(np.diag([3.0, 2.0, 1.0]))  # sigma_bar = 1/2, 1/3, 1/6
    assert [truncation_rank(spec, t) for t in (0.1, 0.5, 0.51, 0.84, 1.0)] == [1, 1, 2, 3, 3]


@pytest.mark.parametrize("m, n, r", [(40, 30, 3), (64, 128, 1), (30, 30, 7)])
def test_an_exactly_rank_r_matrix_keeps_rank_r_at_tau_one(m, n, r):
    assert truncation_rank(spectrum(rank_r_matrix(m, n, r)), 1.0) == r


def test_low_rank_factors_are_kept_only_when_smaller_than_the_matrix():
    assert keeps_factorization(4, 10, 10)  # 4 * 20 = 80 < 100
    assert not keeps_factorization(5, 10, 10)  # 100 is not < 100
    grainer = CoarseGrainer({"a": torch.from_numpy(rank_r_matrix(10, 10, 4)),
                             "b": torch.from_numpy(rank_r_matrix(10, 10, 5, seed=1))})
    assert grainer.ranks(1.0) == (4, None)


def test_factors_are_u_times_s_and_v_transposed_and_rebuild_the_matrix():
    matrix = rank_r_matrix(24, 16, 2)
    cg = coarse_grain({"w": torch.from_numpy(matrix)}, tau=1.0, delta=1e-7)
    left, right = cg.params[0].arrays(cg.delta)
    u, s, vt = np.linalg.svd(matrix.astype(np.float64), full_matrices=False)
    assert left.shape == (24, 2) and right.shape == (2, 16)
    np.testing.assert_allclose(np.abs(right), np.abs(vt[:2]), atol=1e-6)  # singular vectors up to sign
    np.testing.assert_allclose(np.linalg.norm(left, axis=0), s[:2], rtol=1e-5)
    np.testing.assert_allclose(cg.weights()["w"].numpy(), matrix, atol=1e-4)


def test_quantization_only_keeps_every_parameter_whole_in_its_shape():
    weights = some_weights()
    cg = coarse_grain(weights, tau=None, delta=0.01)
    assert set(cg.ranks.values()) == {None}
    assert {k: tuple(v.shape) for k, v in cg.weights().items()} == {k: tuple(v.shape) for k, v in weights.items()}


@pytest.mark.parametrize("tau, delta", [(None, 1e-9), (None, 1e-5), (0.6, 1e-3), (0.9, 0.02), (1.0, 0.5), (None, 10.0)])
def test_symbols_coder_round_trips_and_is_never_larger_than_paper(tau, delta):
    cg = coarse_grain(some_weights(), tau, delta)
    measured = coded_sizes(cg)
    encoded = encode_symbols(cg, limit=measured["paper"].n_bytes)
    back = decode_symbols(encoded.data)
    assert back.ranks == cg.ranks and back.delta == cg.delta and back.tau == cg.tau
    for a, b in zip(cg.stored_arrays(), back.stored_arrays()):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    for name, w in cg.weights().items():
        assert torch.equal(w, back.weights()[name])
    assert measured["symbols"].n_bytes == encoded.n_bytes <= measured["paper"].n_bytes
    assert measured["symbols"].n_bits == 8 * measured["symbols"].n_bytes
    assert CODERS["symbols"].decode(encoded.data).ranks == cg.ranks


def test_paper_size_is_bzip2_of_the_pickled_float32_list():
    arrays = [np.arange(12, dtype=np.float64).reshape(3, 4), np.ones(5, dtype=np.float32)]
    expected = len(bz2.compress(pickle.dumps([a.astype(np.float32) for a in arrays])))
    assert paper_size(arrays) == expected


def test_naive_size_compresses_the_raw_weights_and_coarse_graining_beats_it():
    weights = some_weights()
    raw = [w.numpy() for w in weights.values()]
    assert naive_size(weights) == paper_size(raw)
    assert coded_sizes(coarse_grain(weights, 0.9, 0.05))["paper"].n_bytes < naive_size(weights)


def test_a_corrupt_symbols_encoding_is_reported():
    data = encode_symbols(coarse_grain(some_weights(), None, 0.1)).data
    with pytest.raises(GrokError, match="encoding"):
        decode_symbols(b"X" + data[1:])
    with pytest.raises(GrokError, match="encoding"):
        decode_symbols(data[:-5])


@pytest.mark.parametrize("tau", [0.0, -0.5, 1.5, float("nan")])
def test_tau_outside_zero_one_is_rejected(tau):
    with pytest.raises(GrokError, match="^tau:"):
        coarse_grain(some_weights(), tau, 0.1)


@pytest.mark.parametrize("delta", [0.0, -0.1, float("nan"), float("inf")])
def test_nonpositive_or_nonfinite_delta_is_rejected(delta):
    with pytest.raises(GrokError, match="^delta:"):
        coarse_grain(some_weights(), None, delta)


def test_a_delta_too_small_for_the_weights_is_rejected():
    with pytest.raises(GrokError, match="^delta:"):
        quantize(np.array([1e10], dtype=np.float32), 1e-12)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_inf_weights_are_rejected(bad):
    weights = some_weights()
    weights["bias"][3] = bad
    with pytest.raises(GrokError, match="^module:.*bias"):
        CoarseGrainer(weights)


def test_no_parameters_is_rejected():
    with pytest.raises(GrokError, match="^module:"):
        CoarseGrainer({})


def test_a_network_too_large_for_memory_is_refused_with_an_estimate_before_allocating(monkeypatch):
    """A 2^34-number parameter on the meta device would take 64 GiB as float32: the estimate refuses it from
    its shape alone, naming the module, what it needs and what is available."""
    from grok_lib.complexity import coarse

    assert coarse.available_memory() is None or coarse.available_memory() > 0
    huge = {"w": torch.empty(2**17, 2**17, device="meta")}
    with pytest.raises(GrokError, match=r"^module: has 17,179,869,184 numbers to coarse-grain: a search needs "
                                        r"about \d+\.\d GiB and this machine has 1\.0 GiB available"):
        monkeypatch.setattr(coarse, "available_memory", lambda: 2**30)
        coarse.CoarseGrainer(huge)
    small = some_weights()
    needed = coarse.memory_estimate([tuple(w.shape) for w in small.values()])
    monkeypatch.setattr(coarse, "available_memory", lambda: needed - 1)
    with pytest.raises(GrokError, match="^module: "):
        coarse.CoarseGrainer(small)
    monkeypatch.setattr(coarse, "available_memory", lambda: needed)
    coarse.CoarseGrainer(small)
