"""Eq. 4, the total description length (Fig. 11) and the rate-distortion fit (Fig. 4)."""

import math

import numpy as np
import pytest

from grok_lib.complexity.bounds import data_bits, fit_rate_distortion, generalization_bound, total_description_length
from grok_lib.errors import GrokError


def test_eq4_matches_a_hand_computation_in_bits():
    # K = 1000 bits, n = 2554, delta = 0.05, train error 0.01:
    # log2(1000) = 9.965784, log2(20) = 4.321928
    # (1000 + 19.931569 + 4.321928) / 5108 = 0.200519; sqrt = 0.447794
    assert generalization_bound(0.01, 1000, 2554, 0.05) == pytest.approx(0.01 + 0.447794, abs=1e-6)


def test_eq4_in_nats_is_the_tighter_lotfi_form():
    # 1000 ln 2 + 2 ln 1000 + ln 20 = 693.147181 + 13.815511 + 2.995732 = 709.958424; / 5108; sqrt
    assert generalization_bound(0.0, 1000, 2554, units="nats") == pytest.approx(math.sqrt(709.958424 / 5108), abs=1e-7)
    assert generalization_bound(0.0, 1000, 2554, units="nats") < generalization_bound(0.0, 1000, 2554)


def test_the_paper_sized_complexity_gives_a_vacuous_bound():
    # about 23 kB at the end of training for multiplication, 2554 training examples: R(h) <= 6.0
    assert generalization_bound(0.0, 8 * 23_000, 2554) > 1


def test_eq4_tightens_with_more_data_and_loosens_with_more_bits():
    assert generalization_bound(0, 1000, 10_000) < generalization_bound(0, 1000, 1000)
    assert generalization_bound(0, 2000, 1000) > generalization_bound(0, 1000, 1000)


def test_total_description_length_adds_model_bits_and_data_bits():
    # mean cross-entropy ln 2 nats = 1 bit per example, 10 examples
    assert data_bits(math.log(2), 10) == pytest.approx(10.0)
    assert total_description_length(100, math.log(2), 10) == pytest.approx(110.0)


def test_rate_distortion_fit_recovers_an_exact_log_law():
    eps = np.array([4, 2, 1, 0.5, 0.25, 0.125, 0.0625])
    fit = fit_rate_distortion(eps, -3000 * np.log(eps) + 24_000)
    assert (fit.a, fit.b, fit.r2) == pytest.approx((-3000, 24_000, 1.0))
    assert fit(1.0) == pytest.approx(24_000)


def test_rate_distortion_r2_drops_below_one_off_the_law():
    eps = np.array([4, 2, 1, 0.5, 0.25])
    fit = fit_rate_distortion(eps, [10, 30, 20, 50, 40])
    assert 0 < fit.r2 < 1


@pytest.mark.parametrize("kwargs, field", [
    (dict(train_error=1.5), "train_error"), (dict(complexity_bits=0.5), "complexity_bits"),
    (dict(complexity_bits=float("nan")), "complexity_bits"), (dict(n_train=0), "n_train"),
    (dict(delta=0.0), "delta"), (dict(delta=1.0), "delta"), (dict(units="dits"), "units"),
])
def test_bad_bound_inputs_are_rejected(kwargs, field):
    args = dict(train_error=0.0, complexity_bits=1000, n_train=100) | kwargs
    with pytest.raises(GrokError, match=f"^{field}:"):
        generalization_bound(**args)


def test_bad_fit_inputs_are_rejected():
    with pytest.raises(GrokError, match="^eps:"):
        fit_rate_distortion([1, 1], [2, 3])
    with pytest.raises(GrokError, match="^eps:"):
        fit_rate_distortion([0, 1], [2, 3])
    with pytest.raises(GrokError, match="^complexity:"):
        fit_rate_distortion([1, 2], [2, 3, 4])
    with pytest.raises(GrokError, match="^mean_loss_nats:"):
        data_bits(-1.0, 10)
