"""Reading stored LMN runs: the grokking phase, LMN and L2 against test loss, XOR turning points.

The LMN paper's claims tested here (Liu, Zhong & Tegmark, arXiv 2310.05918):

1. Between memorization and generalization, LMN falls and is ~linear in test loss, while the L2
   norm relates to test loss "in a complicated nonlinear way": `phase_correlations` gives Pearson r
   (linearity) and Spearman rho (monotonicity) of each against test loss over the logged steps of
   that phase. A quantity that is monotone but not linear in test loss shows |rho| >> |r|.
2. XOR's LMN switches between two generalizing solutions, with turning points "near 15 and 20".
   Over 20,000 steps, we read those numbers as the step axis in units of 10^3 (log10(step) never
   exceeds 4.3, and no LMN value scale is implied by the text). Two readings of "turning point" are
   offered on the trajectory after generalization: `turning_points` (local extrema, zigzag rule) and
   `segment_breakpoints` (where a continuous piecewise-linear fit changes slope), the latter also
   catching a plateau that ends in a fall, which has no extremum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import itertools

import numpy as np
import pandas as pd

from ..errors import require


@dataclass(frozen=True)
class Phase:
    memorized: int | None  # first logged step with train accuracy >= threshold
    generalized: int | None  # first logged step with test accuracy >= threshold
    end: int  # last step of the memorization-to-generalization phase used for statistics


def grokking_phase(metrics: pd.DataFrame, threshold: float = 0.99) -> Phase:
    """The phase from memorization (train acc >= threshold) to generalization (test acc >= threshold).

    A run that never generalizes ends its phase at its lowest test loss after memorization: the
    compression phase is over once test loss stops falling, and a later instability (test loss
    rising again) is not part of it.
    """
    require(0 < threshold <= 1, "threshold", f"must lie in (0, 1], got {threshold}")

    def first(column):
        hit = metrics.loc[metrics[column] >= threshold, "step"]
        return int(hit.iloc[0]) if len(hit) else None

    memorized, generalized = first("train_acc"), first("test_acc")
    if generalized is not None:
        end = generalized
    else:
        after = metrics[metrics.step >= (memorized or 0)]
        end = int(after.step.iloc[int(np.argmin(after.test_loss.to_numpy()))])
    return Phase(memorized, generalized, end)


def phase_rows(metrics: pd.DataFrame, phase: Phase) -> pd.DataFrame:
    """Logged steps from memorization through generalization, both ends included."""
    if phase.memorized is None:
        return metrics.iloc[0:0]
    return metrics[(metrics.step >= phase.memorized) & (metrics.step <= phase.end)]


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    def rank(v):  # average ranks for ties
        return pd.Series(v).rank().to_numpy()

    return float(np.corrcoef(rank(a), rank(b))[0, 1])


def phase_correlations(metrics: pd.DataFrame, columns=("lmn", "l2_norm"), threshold: float = 0.99,
                       phase: Phase | None = None) -> pd.DataFrame:
    """Pearson r and Spearman rho between test loss and each column over the grokking phase.

    One row per column: n (logged steps in the phase where the column is measured), pearson_r,
    spearman_rho, and the phase bounds. `phase` defaults to grokking_phase(metrics, threshold); pass it
    when `metrics` holds only some steps (e.g. the complexity checkpoints). Needs at least 3 steps in
    the phase; otherwise r is NaN (too few points to mean anything).
    """
    phase = phase or grokking_phase(metrics, threshold)
    out = []
    for column in columns:
        require(column in metrics, "columns", f"{column!r} is not a logged metric; have {list(metrics.columns)}")
        rows = phase_rows(metrics.dropna(subset=[column]), phase)
        a, b = rows.test_loss.to_numpy(float), rows[column].to_numpy(float)
        ok = len(rows) >= 3 and np.std(a) > 0 and np.std(b) > 0
        out.append(dict(column=column, n=len(rows), pearson_r=float(np.corrcoef(a, b)[0, 1]) if ok else np.nan,
                        spearman_rho=_spearman(a, b) if ok else np.nan,
                        memorized=phase.memorized, generalized=phase.generalized, phase_end=phase.end))
    return pd.DataFrame(out)


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centered moving average with an odd window, shrinking at the ends (no padding artefacts)."""
    require(isinstance(window, int) and window >= 1 and window % 2 == 1, "window",
            f"must be an odd positive integer, got {window!r}")
    half = window // 2
    return np.array([values[max(0, k - half): k + half + 1].mean() for k in range(len(values))])


def turning_points(metrics: pd.DataFrame, column: str = "lmn", every: int = 500, after_step: int = 0,
                   window: int = 3, min_change: float = 0.02) -> pd.DataFrame:
    """Local extrema of `column` against step, on the evenly spaced steps (multiples of `every`).

    The log-spaced steps are left out so that the moving average (`window` points) sees an even grid.
    A zigzag rule keeps an extremum only when the smoothed curve then moves away from it by at least
    `min_change` (relative), so wiggles smaller than that are not turning points.
    Returns one row per turning point: step, value (smoothed), kind ("max" or "min").
    """
    grid = metrics[(metrics.step % every == 0) & (metrics.step > after_step)].sort_values("step")
    require(len(grid) >= 3, "after_step", f"fewer than 3 steps on the grid of {every} after step {after_step}")
    steps, values = grid.step.to_numpy(), smooth(grid[column].to_numpy(float), window)
    points, trend, extreme = [], 0, 0
    for k in range(1, len(values)):
        if trend * (values[k] - values[extreme]) > 0:  # the current rise or fall goes on
            extreme = k
            continue
        change = (values[k] - values[extreme]) / max(abs(values[extreme]), 1e-12)
        if abs(change) >= min_change:
            if trend:
                points.append(dict(step=int(steps[extreme]), value=float(values[extreme]),
                                   kind="max" if trend > 0 else "min"))
            trend, extreme = (1 if change > 0 else -1), k
    return pd.DataFrame(points, columns=["step", "value", "kind"])


def late_turning_points(metrics: pd.DataFrame, every: int, threshold: float = 0.99) -> pd.DataFrame:
    """Turning points of LMN after generalization (test acc >= threshold; from step 0 if never reached).

    Empty when fewer than 3 steps of the grid lie there (a short run).
    """
    after = grokking_phase(metrics, threshold).generalized or 0
    if ((metrics.step % every == 0) & (metrics.step > after)).sum() < 3:
        return pd.DataFrame(columns=["step", "value", "kind"])
    return turning_points(metrics, "lmn", every=every, after_step=after)


def segment_breakpoints(metrics: pd.DataFrame, column: str = "lmn", every: int = 500, after_step: int = 0,
                        n_breaks: int = 3) -> pd.DataFrame:
    """Best continuous piecewise-linear fit of `column` vs step with `n_breaks` breakpoints.

    Fit y = a + b t + sum_m c_m max(t - t_m, 0) by least squares over the grid steps (multiples of
    `every`) after `after_step`; the breakpoints t_m range over the interior grid steps and the set
    with the smallest squared error wins (exhaustive search: exact, and cheap for ~40 points).
    Returns one row per segment: start, end (steps), slope (per 10^3 steps), and the fit's rmse.
    """
    require(isinstance(n_breaks, int) and n_breaks >= 1, "n_breaks", f"must be a positive integer, got {n_breaks!r}")
    grid = metrics[(metrics.step % every == 0) & (metrics.step > after_step)].sort_values("step")
    require(len(grid) >= n_breaks + 3, "after_step",
            f"{len(grid)} grid steps after step {after_step} are too few for {n_breaks} breakpoints")
    t, y = grid.step.to_numpy(float) / 1e3, grid[column].to_numpy(float)
    best = None
    for chosen in itertools.combinations(range(1, len(t) - 1), n_breaks):
        design = np.column_stack([np.ones_like(t), t] + [np.maximum(t - t[k], 0.0) for k in chosen])
        coef = np.linalg.lstsq(design, y, rcond=None)[0]
        error = float(((design @ coef - y) ** 2).sum())
        if best is None or error < best[0]:
            best = (error, chosen, coef)
    error, chosen, coef = best
    edges = [t[0]] + [t[k] for k in chosen] + [t[-1]]
    slopes = np.cumsum(coef[1:])  # slope of each segment: b, b + c_1, ...
    rmse = math.sqrt(error / len(t))
    starts, ends = (np.array(edges[:-1]) * 1e3).astype(int), (np.array(edges[1:]) * 1e3).astype(int)
    return pd.DataFrame(dict(start=starts, end=ends, slope_per_1k=slopes, rmse=rmse))
