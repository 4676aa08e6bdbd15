"""The paper's figures, one small function each, drawn from stored runs only (mean +- standard error).

Inputs are the tidy tables of the run store, with op, regime and seed columns:
  metrics      one row per (run, logged epoch): `runs_metrics(runs)` (metrics.csv)
  complexity   one row per (run, tracked epoch, eps): `grok_lib.paper.pipeline.track_missing` (complexity.csv
               joined with metrics.csv by grok_lib.complexity.tracking.load_complexity)
  final        one row per (run, eps) on the final checkpoint: `grok_lib.paper.profiles.final_rate_distortion`
Every function returns a matplotlib Figure. Complexity is in kB (1000 bytes) of the paper's coder, bz2 of
the pickled float32 arrays; epochs are on a log axis; the profile and seeds are in the title. Nothing is
computed here that the store already holds: Eq. 4 bounds and description lengths come from complexity.csv.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..complexity.bounds import fit_rate_distortion
from ..complexity.coders import CODERS
from ..complexity.tracking import ALGORITHM_1, ALGORITHM_2, EDGE, POOLED, bound_column, length_column, size_column
from ..errors import require
from .panels import (REGIME_COLORS, REGIME_LABELS, _at_eps, _band, _epoch_axis, _legend_below, _ops,  # noqa: F401
                     _panels, _per_op_and_regime, _regime_panels, _seeds_note, _title, mean_se)
from .plots import save
from .profiles import PROFILES, get_profile
from ..training.ops import OPS
from ..training.train import grokking_epochs

# Which Algorithm 1 answer a figure shows, as the prefix of its columns in grok_lib.complexity.tracking: the paper's
# (the best of its own search points) or pooled (the best of every point measured on the checkpoint, Algorithm 2's
# sweep included), or the edge search's (deterministic, not in the paper: grok_lib.complexity.edge). Sizes, bounds
# and description lengths are those of the paper's coder unless `coder` says.
VARIANTS = {"alg1": ALGORITHM_1, "pooled": POOLED, "edge": EDGE}  # named as the answers' column prefixes
VARIANT_LABELS = {"alg1": "Algorithm 1", "pooled": "Algorithm 1 pooled with Algorithm 2",
                  "edge": "edge search, not in the paper"}
FIGURE_NAMES = {
    1: "fig01_complexity_mul", 2: "fig02_complexity_ours", 3: "fig03_complexity_none",
    4: "fig04_rate_distortion", 5: "fig05_complexity_eps", 6: "fig06_generalization_bound",
    7: "fig07_algorithm2", 8: "fig08_effective_rank", 9: "fig09_naive_size", 10: "fig10_accuracy",
    11: "fig11_description_length",
}


def runs_metrics(runs) -> pd.DataFrame:
    """metrics.csv of every run, stacked, with op, regime, seed and init columns."""
    return pd.concat([r.metrics().assign(op=r.config.op, regime=r.config.regime, seed=r.config.seed,
                                         init=r.config.init) for r in runs], ignore_index=True)


def grokking_table(runs) -> pd.DataFrame:
    """Per run: memorization and generalization epochs (first logged epoch with accuracy >= 0.99) and the
    final accuracies; None where the run never got there."""
    rows = []
    for run in runs:
        m = run.metrics()
        marks = grokking_epochs(m)
        rows.append(dict(op=run.config.op, regime=run.config.regime, seed=run.config.seed,
                         epochs=int(m.epoch.iloc[-1]), memorized=marks["memorized"],
                         generalized=marks["generalized"], final_train_acc=round(float(m.train_acc.iloc[-1]), 3),
                         final_test_acc=round(float(m.test_acc.iloc[-1]), 3)))
    return pd.DataFrame(rows)


def variant_column(variant: str, quantity: str = "bytes", coder: str = "paper") -> str:
    """The complexity-table column of a variant's `quantity` (bytes, bits, bound, length) under `coder`."""
    require(variant in VARIANTS, "variant", f"unknown variant {variant!r}; allowed: {', '.join(VARIANTS)}")
    require(coder in CODERS, "coder", f"unknown coder {coder!r}; allowed: {', '.join(CODERS)}")
    prefix = VARIANTS[variant]
    named = {"bound": bound_column, "length": length_column}
    return named[quantity](prefix, coder) if quantity in named else size_column(prefix, coder, quantity)


def save_figure(fig, number_or_name, folder: Path) -> Path:
    """Write folder/figNN_name.png and .pdf (number: the paper's figure number); return the PNG path."""
    name = FIGURE_NAMES.get(number_or_name, number_or_name)
    return save(fig, Path(folder) / str(name))


# The paper's regularized curves read off its plots (PROTOCOL.md): op -> (peak kB, end kB) at p = 113, 10^4 epochs
PAPER_FIG1 = {"add": (98, 24), "mul": (94, 23), "sub": (211, 110), "div": (211, 95)}


# --- the figures ----------------------------------------------------------------------------------------
def fig01_complexity_by_regime(complexity: pd.DataFrame, profile: str, op: str = "mul", eps: float = 1.0,
                               variant: str = "alg1"):
    """Fig. 1: complexity (Algorithm 1, eps = 1) vs epoch, unregularized vs regularized, on one op; markers
    at memorization (square: seed-mean train accuracy >= 0.99) and generalization (circle: test)."""
    rows = _at_eps(complexity[complexity.op == op], eps)
    fig, ax = plt.subplots(figsize=(6.4, 5.0), layout="constrained")
    for regime in ("none", "ours"):
        sel = rows[rows.regime == regime]
        if sel.empty:
            continue
        stats = mean_se(sel.assign(kB=sel[variant_column(variant)] / 1e3), "kB")
        color = REGIME_COLORS[regime]
        _band(ax, stats, "epoch", color, REGIME_LABELS[regime])
        marks = grokking_epochs(sel.groupby("epoch")[["train_acc", "test_acc"]].mean().reset_index())
        for key, marker in (("memorized", "s"), ("generalized", "o")):
            if marks[key] is not None:
                ax.plot(marks[key], np.interp(marks[key], stats.epoch, stats["mean"]), marker, color=color,
                        mfc="white", mew=2, ms=9, label=f"{key} at epoch {marks[key]}")
    _epoch_axis(ax, op)
    reading = PAPER_FIG1.get(op) if profile in ("p113", "paper") and "ours" in set(rows.regime) else None
    if reading is not None:  # the paper's own plot, read by eye (PROTOCOL.md), at the same p = 113
        for value, what, style in ((reading[0], "peak", "--"), (reading[1], "end", ":")):
            ax.axhline(value, color=REGIME_COLORS["ours"], ls=style, lw=1,
                       label=f"paper's Fig. 1, {REGIME_LABELS['ours']}: {what} ≈ {value:g} kB")
    ax.set_ylabel(f"complexity (kB, {VARIANT_LABELS[variant]}, ε = {eps:g})", fontsize=8)
    ax.set_ylim(bottom=0)
    _legend_below(fig, [ax])
    _title(fig, "Fig. 1 — complexity rises while memorizing and falls while generalizing",
           rows[rows.regime.isin(["none", "ours"])], profile)
    return fig


def fig_complexity_and_accuracy(complexity: pd.DataFrame, profile: str, regime: str, eps: float = 1.0,
                                variant: str = "alg1"):
    """Figs. 2 (regime ours) and 3 (none): per op, complexity (Algorithm 1, eps = 1, left axis) and train /
    test accuracy (right axis) vs epoch."""
    rows = _at_eps(complexity[complexity.regime == regime], eps)
    ops = _ops(rows)
    fig, axes = _panels(len(ops), width=4.8)
    twins = []
    for ax, op in zip(axes, ops):
        sel = rows[rows.op == op]
        _band(ax, mean_se(sel.assign(kB=sel[variant_column(variant)] / 1e3), "kB"), "epoch", "k",
              f"complexity ({VARIANT_LABELS[variant]}, left axis)")
        ax.set_ylabel(f"complexity (kB, ε = {eps:g})")
        ax.set_ylim(bottom=0)  # both axes start at zero, so their zeros coincide
        acc = ax.twinx()
        for split, color in (("train", "C0"), ("test", "C1")):
            _band(acc, mean_se(sel, f"{split}_acc"), "epoch", color, f"{split} accuracy (right axis)", lw=1)
        acc.set(ylim=(0, 1.05), ylabel="accuracy")
        twins.append(acc)
        _epoch_axis(ax, op)
    _legend_below(fig, axes[:1] + twins[:1])
    number = {"ours": 2, "none": 3}.get(regime, "")
    _title(fig, f"Fig. {number} — complexity ({VARIANT_LABELS[variant]}) and accuracy, {REGIME_LABELS[regime]}",
           rows, profile)
    return fig


def rate_distortion_fits(final: pd.DataFrame, regime: str = "ours", variant: str = "alg1") -> pd.DataFrame:
    """Per op: the fit complexity_kB = a ln(eps) + b to the seed-mean final complexity (Fig. 4), with R^2."""
    rows = []
    for op in _ops(final[final.regime == regime]):
        sel = final[(final.regime == regime) & (final.op == op)]
        stats = mean_se(sel.assign(kB=sel[variant_column(variant)] / 1e3), "kB", x="eps")
        if len(stats) >= 2:
            fit = fit_rate_distortion(stats.eps, stats["mean"])
            rows.append(dict(op=op, a=fit.a, b=fit.b, r2=fit.r2))
    return pd.DataFrame(rows, columns=["op", "a", "b", "r2"])


def fig04_rate_distortion(final: pd.DataFrame, profile: str, regime: str = "ours", variant: str = "alg1"):
    """Fig. 4: complexity of the final weights (Algorithm 1) vs eps per op, with the least-squares fit
    a ln(eps) + b (grok_lib.complexity.bounds.fit_rate_distortion) and its R^2 in the legend."""
    rows = final[final.regime == regime]
    fits = rate_distortion_fits(final, regime, variant).set_index("op")
    fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    for i, op in enumerate(_ops(rows)):
        sel = rows[rows.op == op]
        stats = mean_se(sel.assign(kB=sel[variant_column(variant)] / 1e3), "kB", x="eps")
        color = f"C{i}"
        label = OPS[op].label().removesuffix(" mod p")
        if "epoch" in rows and rows.epoch.nunique() > 1:  # runs of different lengths (p113: Fig. 1's x runs)
            label += f" at epoch {'/'.join(str(int(e)) for e in sorted(sel.epoch.unique()))}"
        if op in fits.index:
            a, b, r2 = fits.loc[op, ["a", "b", "r2"]]
            grid = np.geomspace(stats.eps.min(), stats.eps.max(), 100)
            ax.plot(grid, a * np.log(grid) + b, color=color, lw=1)
            label += f": {a:.2f} ln ε + {b:.2f} (R² = {r2:.3f})"
        ax.errorbar(stats.eps, stats["mean"], yerr=stats.se, fmt="o", color=color, ms=5, capsize=3, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("distortion bound ε (nats of training loss, log scale)")
    ax.set_ylabel(f"complexity of the final weights (kB, {VARIANT_LABELS[variant]})", fontsize=8)
    _legend_below(fig, [ax])
    _title(fig, f"Fig. 4 — algorithmic rate–distortion curves, {REGIME_LABELS[regime]}", rows, profile)
    return fig


def fig05_complexity_by_eps(complexity: pd.DataFrame, profile: str, regime: str = "ours", variant: str = "alg1"):
    """Fig. 5: complexity dynamics (Algorithm 1) for every tracked eps, one panel per op."""
    rows = complexity[complexity.regime == regime]
    ops, eps_values = _ops(rows), sorted(rows.eps.unique())
    cmap = plt.get_cmap("viridis")
    fig, axes = _panels(len(ops))
    for ax, op in zip(axes, ops):
        for j, eps in enumerate(eps_values):
            sel = _at_eps(rows[rows.op == op], eps)
            _band(ax, mean_se(sel.assign(kB=sel[variant_column(variant)] / 1e3), "kB"), "epoch",
                  cmap(j / max(1, len(eps_values) - 1)), f"ε = {eps:g}")
        _epoch_axis(ax, op)
        ax.set_ylabel(f"complexity (kB, {VARIANT_LABELS[variant]})", fontsize=8)
    _legend_below(fig, axes)
    _title(fig, f"Fig. 5 — complexity dynamics under distortion bounds ε, {REGIME_LABELS[regime]}", rows, profile)
    return fig


def fig06_generalization_bound(complexity: pd.DataFrame, profile: str, eps: float = 1.0, variant: str = "alg1"):
    """Fig. 6: the Eq. 4 bound on the expected 0-1 risk (delta = 0.05, K = paper-coder bits at eps = 1),
    per regime and op; above 1 it is vacuous, as all of the paper's are."""
    rows = _at_eps(complexity, eps)
    fig = _regime_panels(rows, variant_column(variant, "bound"), "Eq. 4 bound on expected risk",
                         f"Fig. 6 — generalization bound (Eq. 4, K from {VARIANT_LABELS[variant]}); "
                         "above the dotted line (risk 1) it is vacuous", profile)
    for ax in fig.axes:
        ax.axhline(1.0, color="gray", ls=":", lw=1)
    return fig


def fig07_algorithm2(complexity: pd.DataFrame, profile: str, eps: float = 1.0):
    """Fig. 7: complexity by quantization alone (Algorithm 2's sweep, solid) beside the paper's Algorithm 1
    (its own points, dotted), eps = 1, per regime and op; the title gives the median ratio of the two."""
    rows = _at_eps(complexity, eps)
    alg1, alg2 = size_column(ALGORITHM_1, "paper"), size_column(ALGORITHM_2, "paper")
    ratio = float(np.median(rows[alg2] / rows[alg1])) if len(rows) else float("nan")
    method = get_profile(profile).how.algorithm_2 if profile in PROFILES else "?"  # which Algorithm 2 ran
    fig = _regime_panels(rows, alg2, f"complexity (kB, ε = {eps:g})",
                         f"Fig. 7 — quantization alone (Algorithm 2, {method}, solid) vs Algorithm 1 (dotted): median "
                         f"ratio {ratio:.2f}; pooled Algorithm 1 ≤ both by construction", profile, scale=1e-3)
    for ax, op in zip(fig.axes, _ops(rows)):
        for regime, color in REGIME_COLORS.items():
            sel = rows[(rows.op == op) & (rows.regime == regime)]
            if len(sel):
                stats = mean_se(sel.assign(kB=sel[alg1] / 1e3), "kB")
                ax.plot(stats.epoch, stats["mean"], color=color, ls=":", lw=1.2)
    return fig


EFFECTIVE_RANKS = {"weighted": ("effective_rank", "effective rank (parameter-weighted, authors' code)"),
                   "mean": ("effective_rank_mean", "mean effective rank over the matrices")}


def fig08_effective_rank(metrics: pd.DataFrame, profile: str, definition: str = "weighted"):
    """Fig. 8: effective rank exp(H_svd) vs epoch per regime and op. "weighted": the authors' code's number,
    each matrix's exp(H_svd) weighted by its parameter count over all parameters (1-D ones included);
    "mean": the unweighted mean over the matrices."""
    column, label = EFFECTIVE_RANKS[definition]
    return _regime_panels(metrics, column, label, f"Fig. 8 — effective rank exp(H_svd), {definition} "
                          "over the weight matrices", profile)


def fig09_naive_size(complexity: pd.DataFrame, profile: str, eps: float = 1.0):
    """Fig. 9: bzip2 of the raw float32 weights, no coarse-graining (note the narrow y range)."""
    return _regime_panels(_at_eps(complexity, eps), "naive_bytes", "naive bzip2 size of the weights (kB)",
                          "Fig. 9 — naive compression, no coarse-graining", profile, scale=1e-3)


def fig10_accuracy(metrics: pd.DataFrame, profile: str):
    """Fig. 10: train (dashed) and test (solid) accuracy vs epoch, per regime and op."""
    def draw(ax, rows, color, label):
        _band(ax, mean_se(rows, "train_acc"), "epoch", color, f"{label}: train", ls="--")
        _band(ax, mean_se(rows, "test_acc"), "epoch", color, f"{label}: test")

    return _per_op_and_regime(metrics, "Fig. 10 — train (dashed) and test (solid) accuracy", profile, draw,
                              "accuracy", legend=6, ylim=(0, 1.05))


def fig11_description_length(complexity: pd.DataFrame, profile: str, eps: float = 1.0, variant: str = "alg1"):
    """Fig. 11: total description length K(theta_hat) + sum_train -log2 p(y|x; theta_hat) in kbit (eps = 1)."""
    return _regime_panels(_at_eps(complexity, eps), variant_column(variant, "length"), "description length (kbit)",
                          f"Fig. 11 — total description length: complexity ({VARIANT_LABELS[variant]}) + data "
                          "entropy", profile, scale=1e-3)
