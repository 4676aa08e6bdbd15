"""Figures for the LMN reproduction: each function takes stored runs and returns one matplotlib figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..lmn.analysis import grokking_phase, late_turning_points, phase_correlations, phase_rows, segment_breakpoints
from ..lmn.tasks import TASKS, LMNRun


def describe(run: LMNRun) -> str:
    c = run.config
    batch = "full batch" if c.batch_size is None else f"batch {c.batch_size}"
    return (f"{TASKS[c.task][2]}, seed {c.seed}: MLP {c.n_layers} layers, hidden {c.d_hidden}, "
            f"AdamW lr {c.lr:g} wd {c.weight_decay:g}, {batch}, LMN on N={c.lmn_samples} {c.lmn_from} samples")


def _legend(ax, *axes, **kwargs) -> None:
    """One legend on `ax` for the labelled lines of several (twin) axes."""
    lines = [line for a in (ax, *axes) for line in a.get_lines() if not line.get_label().startswith("_")]
    ax.legend(lines, [line.get_label() for line in lines], fontsize=7, **kwargs)


def _mark_phase(ax, metrics: pd.DataFrame, scale: float = 1.0) -> None:
    """Dotted lines at memorization and generalization; x positions are steps / scale."""
    phase = grokking_phase(metrics)
    for step, label in ((phase.memorized, "memorized"), (phase.generalized, "generalized")):
        if step:
            ax.axvline(step / scale, color="gray", ls=":", lw=1)
            ax.annotate(label, (step / scale, 1.0), xycoords=("data", "axes fraction"), fontsize=7, rotation=90,
                        va="top", ha="right", color="gray")


def plot_dynamics(runs: list[LMNRun]):
    """Per task: losses, accuracies, LMN and L2 against step (log axis), grokking phase marked."""
    fig, axes = plt.subplots(len(runs), 3, figsize=(13, 3.2 * len(runs)), squeeze=False)
    for row, run in zip(axes, runs):
        m = run.metrics()
        m = m[m.step > 0]
        ax_loss, ax_acc, ax_lmn = row
        for split, color in (("train", "C0"), ("test", "C3")):
            ax_loss.plot(m.step, m[f"{split}_loss"], color=color, label=f"{split} loss")
            ax_acc.plot(m.step, m[f"{split}_acc"], color=color, label=f"{split} accuracy")
        ax_lmn.plot(m.step, m.lmn, color="C2", label="LMN")
        ax_l2 = ax_lmn.twinx()
        ax_l2.plot(m.step, m.l2_norm, color="C4", ls="--", label="L2 norm")
        ax_loss.set(xscale="log", yscale="log", xlabel="step", ylabel="cross-entropy (nats)")
        ax_acc.set(xscale="log", xlabel="step", ylabel="accuracy", ylim=(0, 1.02))
        ax_lmn.set(xscale="log", xlabel="step", ylabel="LMN (effective number of linear maps)")
        ax_l2.set_ylabel("L2 norm of parameters", color="C4")
        ax_loss.set_title(f"{TASKS[run.config.task][2]}, seed {run.config.seed}", fontsize=9)
        for ax in row:
            _mark_phase(ax, m)
        ax_loss.legend(fontsize=7)
        ax_acc.legend(fontsize=7)
        _legend(ax_lmn, ax_l2)
    fig.suptitle("LMN setup (Liu, Zhong & Tegmark): training dynamics; " + describe(runs[0]).split(": ", 1)[1],
                 fontsize=9)
    fig.tight_layout()
    return fig


def plot_against_test_loss(runs: list[LMNRun]):
    """LMN and L2 against test loss in the memorization-to-generalization phase, Pearson r in titles."""
    fig, axes = plt.subplots(2, len(runs), figsize=(4.2 * len(runs), 7), squeeze=False)
    for col, run in enumerate(runs):
        m = run.metrics()
        rows = phase_rows(m, grokking_phase(m))
        stats = phase_correlations(m).set_index("column")
        for row, (column, label) in enumerate((("lmn", "LMN"), ("l2_norm", "L2 norm of parameters"))):
            ax = axes[row, col]
            points = ax.scatter(rows.test_loss, rows[column], c=np.log10(rows.step), cmap="viridis", s=14)
            s = stats.loc[column]
            ax.set(xlabel="test loss (nats)", ylabel=label,
                   title=f"{TASKS[run.config.task][2]}, seed {run.config.seed}\n"
                         f"Pearson r = {s.pearson_r:.3f}, Spearman ρ = {s.spearman_rho:.3f} (n = {int(s.n)})")
            ax.title.set_fontsize(8)
            fig.colorbar(points, ax=ax, label="log10(step)")
    fig.suptitle("Between memorization (train acc ≥ 0.99) and generalization (test acc ≥ 0.99; "
                 "a run that never generalizes: its lowest test loss)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_xor_trajectory(run: LMNRun, every: int | None = None):
    """LMN, L2 and losses on a linear step axis (10^3 steps), with the piecewise-linear breakpoints of
    LMN after generalization (segment_breakpoints) and its local extrema (late_turning_points)."""
    every = every or run.config.log_every
    m = run.metrics()
    generalized = grokking_phase(m).generalized or 0
    fig, (ax_lmn, ax_loss) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True)
    grid = m[m.step % every == 0]
    ax_lmn.plot(grid.step / 1e3, grid.lmn, color="C2", marker=".", ms=3, label="LMN")
    if (grid.step > generalized).sum() >= 6:
        segments = segment_breakpoints(m, "lmn", every, generalized)
        for k, seg in enumerate(segments.iloc[1:].itertuples()):
            ax_lmn.axvline(seg.start / 1e3, color="k", ls="--", lw=0.8,
                           label="slope changes (3-break fit)" if k == 0 else None)
            ax_lmn.annotate(f"{seg.start / 1e3:g}k", (seg.start / 1e3, 0.02), xycoords=("data", "axes fraction"),
                            fontsize=7, ha="right")
    for p in late_turning_points(m, every).itertuples():
        ax_lmn.plot(p.step / 1e3, p.value, "v" if p.kind == "min" else "^", color="k", ms=7,
                    label=f"local {p.kind} (smoothed) at {p.step / 1e3:g}k")
    ax_l2 = ax_lmn.twinx()
    ax_l2.plot(grid.step / 1e3, grid.l2_norm, color="C4", ls="--", label="L2 norm")
    ax_l2.set_ylabel("L2 norm of parameters", color="C4")
    ax_lmn.set(ylabel="LMN (N = %d)" % run.config.lmn_samples)
    ax_lmn.set_title(f"{TASKS[run.config.task][2]}, seed {run.config.seed}: LMN trajectory "
                     "(paper, XOR: turning points near 15 and 20)", fontsize=9)
    _legend(ax_lmn, ax_l2, loc="upper right")
    ax_loss.plot(grid.step / 1e3, grid.test_loss, color="C3", label="test loss")
    ax_loss.plot(grid.step / 1e3, grid.train_loss, color="C0", label="train loss")
    ax_loss.set(yscale="log", xlabel="step (10³)", ylabel="cross-entropy (nats)")
    ax_loss.legend(fontsize=7)
    for ax in (ax_lmn, ax_loss):
        _mark_phase(ax, m, scale=1e3)
    fig.tight_layout()
    return fig


def plot_three_measures(runs: list[LMNRun], complexity: dict[str, pd.DataFrame]):
    """LMN, coarse-grained complexity (Algorithm 1) and L2 on the same checkpoints, each vs step."""
    fig, axes = plt.subplots(len(runs), 1, figsize=(8, 3.2 * len(runs)), squeeze=False)
    for ax, run in zip(axes[:, 0], runs):
        m = run.metrics()
        c = complexity.get(run.config.task)
        joined = m.merge(c, on="step", how="inner") if c is not None else m.iloc[0:0]
        joined = joined[joined.step > 0]
        ax.plot(joined.step, joined.lmn, color="C2", marker=".", label="LMN")
        ax.set(xscale="log", xlabel="step", ylabel="LMN")
        ax_c = ax.twinx()
        ax_c.plot(joined.step, joined.paper_bytes / 1e3, color="C1", marker=".", label="complexity (kB, Alg. 1)")
        ax_c.set_ylabel("coarse-grained complexity (kB, bzip2)", color="C1")
        ax_l2 = ax.twinx()
        ax_l2.spines["right"].set_position(("axes", 1.15))
        ax_l2.plot(joined.step, joined.l2_norm, color="C4", ls="--", label="L2 norm")
        ax_l2.set_ylabel("L2 norm", color="C4")
        _mark_phase(ax, m)
        eps = c.eps.iloc[0] if c is not None and len(c) else float("nan")
        ax.set_title(f"{TASKS[run.config.task][2]}, seed {run.config.seed}, ε = {eps:g} nats", fontsize=9)
        _legend(ax, ax_c, ax_l2, loc="upper left")
    fig.tight_layout()
    return fig
