"""The drawing parts every figure shares: mean +- standard error bands, one panel per op (a 2 x 2 grid for
four), one legend below the panels, log-epoch axes and a title that names the profile, init and seeds."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
import numpy as np
import pandas as pd

from ..errors import require
from ..training.ops import OPS, ordered

REGIME_COLORS = {"none": "C0", "wd": "C2", "ours": "C3"}
REGIME_LABELS = {"none": "unregularized", "wd": "weight decay", "ours": "ours (wd + noise + spectral)"}


def mean_se(frame: pd.DataFrame, value: str, x: str = "epoch") -> pd.DataFrame:
    """Mean and standard error (sample std / sqrt(n); 0 for a single seed) of `value` over seeds, per x."""
    out = frame.groupby(x)[value].agg(["mean", "std", "count"]).reset_index()
    out["se"] = (out["std"] / np.sqrt(out["count"])).fillna(0.0)
    return out


def _band(ax, stats: pd.DataFrame, x: str, color, label, **kw):
    ax.plot(stats[x], stats["mean"], color=color, label=label, **kw)
    ax.fill_between(stats[x], stats["mean"] - stats["se"], stats["mean"] + stats["se"], color=color, alpha=0.2, lw=0)


def _ops(frame: pd.DataFrame) -> list[str]:
    return ordered(frame.op)  # an op missing from grok_lib.training.ops is an error, not dropped


def _seeds_note(frame: pd.DataFrame) -> str:
    """"seed 0" for one seed; "seeds 0-2: mean ± standard error" (per cell) where a cell has several."""
    seeds = sorted(int(s) for s in frame["seed"].unique())
    cells = [c for c in ("op", "regime") if c in frame]
    per_cell = frame.groupby(cells)["seed"].nunique() if cells else pd.Series([len(seeds)])
    listed = ", ".join(map(str, seeds)) if len(seeds) < 3 or seeds != list(range(seeds[0], seeds[-1] + 1)) \
        else f"{seeds[0]}–{seeds[-1]}"
    if per_cell.max() == 1:
        return f"seed{'s' if len(seeds) > 1 else ''} {listed}"
    return f"seeds {listed}: mean ± standard error{'' if per_cell.min() > 1 else ' where a cell has several'}"


def _title(fig, what: str, frame: pd.DataFrame, profile: str):
    inits = "/".join(sorted(frame["init"].unique())) if "init" in frame else "?"
    fig.suptitle(f"{what}\nprofile {profile}; {inits} init; {_seeds_note(frame)}", fontsize=9)


def _panels(n: int, width: float = 4.4, height: float = 3.3):
    """A figure with one panel per op: a row for up to 3, a 2 x 2 grid for 4 (readable at print size), laid
    out by matplotlib's constrained layout (room for the title and a legend below the panels)."""
    ncols = n if n <= 3 else 2 if n == 4 else 3
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows + 0.9), squeeze=False,
                             layout="constrained")
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.remove()
    return fig, flat[:n]


def _legend_below(fig, axes, fontsize: int = 7):
    """One legend under the panels with every distinct label of `axes` (and their twins), off the curves."""
    seen = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if not label.startswith("_"):
                seen.setdefault(label, handle)
    if seen:  # as many columns as fit the figure's width (about 18 characters an inch at fontsize 7)
        fits = int(fig.get_figwidth() * 18 * 7 / fontsize // (max(map(len, seen)) + 5))
        fig.legend(list(seen.values()), list(seen), loc="outside lower center", fontsize=fontsize,
                   ncol=max(1, min(len(seen), 4, fits)), frameon=False)


def _epoch_axis(ax, op: str):
    """Log epochs labelled 1, 2, 5, 10, 20, ... (a short range otherwise gets overlapping minor labels)."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("epoch (log scale)")
    ax.set_title(OPS[op].label(), fontsize=9)


def _at_eps(complexity: pd.DataFrame, eps: float) -> pd.DataFrame:
    return complexity[np.isclose(complexity["eps"], eps)]


def _per_op_and_regime(frame: pd.DataFrame, title: str, profile: str, draw, ylabel: str, legend: int = 7, **axis):
    """One panel per op; draw(ax, rows, color, label) once per regime present. An unknown regime is an error."""
    unknown = set(frame.regime) - set(REGIME_COLORS)
    require(not unknown, "regime", f"no colour for regime(s) {sorted(unknown)}; known: {', '.join(REGIME_COLORS)}")
    ops = _ops(frame)
    fig, axes = _panels(len(ops))
    for ax, op in zip(axes, ops):
        for regime, color in REGIME_COLORS.items():
            rows = frame[(frame.op == op) & (frame.regime == regime)]
            if len(rows):
                draw(ax, rows, color, REGIME_LABELS[regime])
        _epoch_axis(ax, op)
        ax.set(ylabel=ylabel, **axis)
    _legend_below(fig, axes, fontsize=legend)
    _title(fig, title, frame, profile)
    return fig


def _regime_panels(frame: pd.DataFrame, value: str, ylabel: str, title: str, profile: str, scale: float = 1.0):
    """One panel per op, one mean +- s.e. curve per regime of `value` * scale vs epoch."""
    def draw(ax, rows, color, label):
        _band(ax, mean_se(rows.assign(y=rows[value] * scale), "y"), "epoch", color, label)

    return _per_op_and_regime(frame, title, profile, draw, ylabel)
