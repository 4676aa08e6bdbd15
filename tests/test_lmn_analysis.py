"""Known answers for the LMN analysis: the grokking phase, correlations with test loss, turning points."""

import numpy as np
import pandas as pd
import pytest

from grok_lib.errors import GrokError
from grok_lib.lmn.analysis import (grokking_phase, late_turning_points, phase_correlations, segment_breakpoints, smooth,
                                   turning_points)


def synthetic_run():
    """Memorizes at step 100, generalizes at step 1000; test loss falls linearly in between."""
    steps = np.arange(0, 2001, 50)
    train_acc = np.where(steps >= 100, 1.0, 0.5)
    test_acc = np.clip((steps - 100) / 900, 0, 1)
    test_loss = np.maximum(5.0 - 4.0 * test_acc, 1.0)
    return pd.DataFrame(dict(step=steps, train_acc=train_acc, test_acc=test_acc, test_loss=test_loss,
                             lmn=3.0 * test_loss + 1.0, l2_norm=np.exp(test_loss)))


def test_phase_runs_from_memorization_to_generalization():
    phase = grokking_phase(synthetic_run())
    assert (phase.memorized, phase.generalized, phase.end) == (100, 1000, 1000)


def test_phase_without_generalization_ends_at_lowest_test_loss():
    m = synthetic_run().assign(test_acc=0.1)
    m.loc[m.step > 1500, "test_loss"] = 3.0  # a late instability is not part of the phase
    phase = grokking_phase(m)
    assert phase.generalized is None and phase.end == 1000


def test_linear_measure_has_pearson_one_and_convex_one_only_rank_one():
    stats = phase_correlations(synthetic_run()).set_index("column")
    assert stats.loc["lmn", "pearson_r"] == pytest.approx(1.0)
    assert stats.loc["l2_norm", "spearman_rho"] == pytest.approx(1.0)
    assert stats.loc["l2_norm", "pearson_r"] < 0.99  # exp is monotone but not linear
    assert stats.loc["lmn", "n"] == 19  # steps 100, 150, ..., 1000


def test_unknown_column_is_named():
    with pytest.raises(GrokError, match="columns"):
        phase_correlations(synthetic_run(), ("lmm",))


def test_turning_points_of_a_sine_are_its_extrema():
    steps = np.arange(0, 20001, 500)
    m = pd.DataFrame(dict(step=steps, lmn=5 + np.sin(2 * np.pi * steps / 10000)))
    points = turning_points(m, every=500, window=1)
    assert list(points.kind) == ["max", "min", "max", "min"]
    assert list(points.step) == [2500, 7500, 12500, 17500]


def test_wiggles_below_min_change_are_not_turning_points():
    steps = np.arange(0, 10001, 500)
    m = pd.DataFrame(dict(step=steps, lmn=5 + 0.01 * (-1) ** (steps // 500)))
    assert turning_points(m, every=500, min_change=0.02).empty


def test_late_turning_points_of_a_short_run_are_empty():
    assert late_turning_points(synthetic_run().head(5), every=500).empty


def test_smooth_keeps_a_constant_and_needs_an_odd_window():
    assert np.allclose(smooth(np.full(7, 2.0), 3), 2.0)
    with pytest.raises(GrokError, match="window"):
        smooth(np.ones(5), 2)


def test_piecewise_linear_breakpoints_are_recovered():
    steps = np.arange(0, 20001, 500)
    t = steps / 1e3
    lmn = 8 - 0.5 * np.minimum(t, 6) - 1.75 * np.clip(t - 15, 0, 3.5) + 0.1 * np.maximum(t - 18.5, 0)
    segments = segment_breakpoints(pd.DataFrame(dict(step=steps, lmn=lmn)), every=500)
    assert list(segments.start[1:]) == [6000, 15000, 18500]
    assert np.allclose(segments.slope_per_1k, [-0.5, 0.0, -1.75, 0.1], atol=1e-9)
