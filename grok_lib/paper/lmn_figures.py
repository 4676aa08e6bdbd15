"""Figures for the LMN reproduction (notebook 06 and the pipeline in grok_lib.paper.lmn_reproduce).

Each plot_* function takes stored runs and returns one matplotlib figure; `draw_and_save` draws one of them
by its file stem (FIGURE_STEMS) and writes it, so notebook 06 (one figure per section) and the batch
pipeline (`draw_all`) produce the same files from the same code. Every figure names the task, the seed,
the number N of LMN samples and, when given, the profile; axes carry their units (nats, steps, kB).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..complexity.tracking import POOLED, size_column
from ..errors import require
from ..lmn.analysis import grokking_phase, late_turning_points, phase_correlations, phase_rows, segment_breakpoints
from ..lmn.tasks import TASKS
from ..store import Run
from .plots import save

# the figures of the LMN reproduction, by the file stem they are saved under, in reading order
# the answer an LMN complexity table holds (grok_lib.paper.lmn_reproduce writes it: Algorithm 1 pooled with
# Algorithm 2, under the tracking tables' column names) and its size under the paper's coder
ANSWER = POOLED
COMPLEXITY = size_column(ANSWER, "paper")
FIGURE_STEMS = ("lmn_dynamics", "lmn_vs_test_loss", "lmn_xor_trajectory", "lmn_complexity_l2")


def describe(run: Run) -> str:
    """The run's task, seed, network, optimizer and LMN sample count, for figure titles."""
    c = run.config
    batch = "full batch" if c.batch_size is None else f"batch {c.batch_size}"
    return (f"{TASKS[c.task][2]}, seed {c.seed}: MLP {c.n_layers} layers, hidden {c.d_hidden}, "
            f"AdamW lr {c.lr:g} wd {c.weight_decay:g}, {batch}, LMN on N={c.lmn_samples} {c.lmn_from} samples")


def _profile(profile: str | None) -> str:
    """The "(profile NAME)" tag of a title; empty when the caller did not say which profile ran."""
    return f" (profile {profile})" if profile else ""


def _run_title(run: Run) -> str:
    return f"{TASKS[run.config.task][2]}, seed {run.config.seed}"


def _lmn_label(run: Run, what: str = "") -> str:
    """LMN's axis label: LMN is a count with no unit, but it grows with N, so N is part of the label."""
    return f"LMN ({what}N = {run.config.lmn_samples})"


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


def plot_dynamics(runs: list[Run], profile: str | None = None):
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
        ax_lmn.set(xscale="log", xlabel="step", ylabel=_lmn_label(run, "effective number\nof linear maps, "))
        ax_l2.set_ylabel("L2 norm of parameters", color="C4")
        ax_loss.set_title(_run_title(run), fontsize=9)
        for ax in row:
            _mark_phase(ax, m)
        ax_loss.legend(fontsize=7)
        ax_acc.legend(fontsize=7)
        _legend(ax_lmn, ax_l2)
    fig.suptitle("LMN setup (Liu, Zhong & Tegmark): training dynamics" + _profile(profile) + "; "
                 + describe(runs[0]).split(": ", 1)[1], fontsize=9)
    fig.tight_layout()
    return fig


def plot_against_test_loss(runs: list[Run], profile: str | None = None):
    """LMN and L2 against test loss in the memorization-to-generalization phase, Pearson r in titles."""
    fig, axes = plt.subplots(2, len(runs), figsize=(4.2 * len(runs), 7), squeeze=False)
    for col, run in enumerate(runs):
        m = run.metrics()
        rows = phase_rows(m, grokking_phase(m))
        stats = phase_correlations(m).set_index("column")
        for row, (column, label) in enumerate((("lmn", _lmn_label(run)), ("l2_norm", "L2 norm of parameters"))):
            ax = axes[row, col]
            points = ax.scatter(rows.test_loss, rows[column], c=np.log10(rows.step), cmap="viridis", s=14)
            s = stats.loc[column]
            ax.set(xlabel="test loss (nats)", ylabel=label,
                   title=f"{_run_title(run)}\n"
                         f"Pearson r = {s.pearson_r:.3f}, Spearman ρ = {s.spearman_rho:.3f} (n = {int(s.n)})")
            ax.title.set_fontsize(8)
            fig.colorbar(points, ax=ax, label="log10(step)")
    fig.suptitle("LMN and L2 against test loss" + _profile(profile) + ", between memorization (train acc ≥ 0.99) "
                 "and generalization\n(test acc ≥ 0.99; a run that never generalizes: its lowest test loss)",
                 fontsize=9)
    fig.tight_layout()
    return fig


def plot_xor_trajectory(run: Run, every: int | None = None, profile: str | None = None):
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
    ax_lmn.set(ylabel=_lmn_label(run))
    ax_lmn.set_title(f"{_run_title(run)}{_profile(profile)}: LMN trajectory "
                     "(paper, XOR: turning points near 15k and 20k steps)", fontsize=9)
    _legend(ax_lmn, ax_l2, loc="upper right")
    ax_loss.plot(grid.step / 1e3, grid.test_loss, color="C3", label="test loss")
    ax_loss.plot(grid.step / 1e3, grid.train_loss, color="C0", label="train loss")
    ax_loss.set(yscale="log", xlabel="step (10³)", ylabel="cross-entropy (nats)")
    ax_loss.legend(fontsize=7)
    for ax in (ax_lmn, ax_loss):
        _mark_phase(ax, m, scale=1e3)
    fig.tight_layout()
    return fig


def plot_three_measures(runs: list[Run], complexity: dict[str, pd.DataFrame], profile: str | None = None):
    """LMN, coarse-grained complexity (Algorithm 1) and L2 on the same checkpoints, each vs step.

    `complexity` maps task to its complexity table (step, eps, COMPLEXITY, ...); a task without one (or
    with an empty one: Algorithm 1 skipped) gets empty axes, not an error.
    """
    fig, axes = plt.subplots(len(runs), 1, figsize=(8, 3.2 * len(runs)), squeeze=False)
    for ax, run in zip(axes[:, 0], runs):
        m = run.metrics()
        c = complexity.get(run.config.task)
        measured = c is not None and len(c) > 0 and COMPLEXITY in c
        joined = m.merge(c, on="step", how="inner") if measured else m.iloc[0:0].assign(**{COMPLEXITY: 0.0})
        joined = joined[joined.step > 0]
        ax.plot(joined.step, joined.lmn, color="C2", marker=".", label="LMN")
        ax.set(xscale="log", xlabel="step", ylabel=_lmn_label(run))
        ax_c = ax.twinx()
        ax_c.plot(joined.step, joined[COMPLEXITY] / 1e3, color="C1", marker=".", label="complexity (kB, Alg. 1)")
        ax_c.set_ylabel("coarse-grained complexity (kB, bzip2)", color="C1")
        ax_l2 = ax.twinx()
        ax_l2.spines["right"].set_position(("axes", 1.15))
        ax_l2.plot(joined.step, joined.l2_norm, color="C4", ls="--", label="L2 norm")
        ax_l2.set_ylabel("L2 norm of parameters", color="C4")
        _mark_phase(ax, m)
        eps = f"ε = {c.eps.iloc[0]:g} nats" if measured else "Algorithm 1 not measured"
        ax.set_title(f"{_run_title(run)}{_profile(profile)}, {eps}", fontsize=9)
        _legend(ax, ax_c, ax_l2, loc="upper left")
    fig.tight_layout()
    return fig


def draw(name: str, runs: list[Run], complexity: dict[str, pd.DataFrame] | None = None,
         profile: str | None = None):
    """The figure saved as `name` (one of FIGURE_STEMS); None for the XOR trajectory when no run is XOR.

    `complexity` (task -> complexity table) is read by "lmn_complexity_l2" only; `profile` goes in the titles.
    """
    require(name in FIGURE_STEMS, "name", f"unknown LMN figure {name!r}; allowed: {', '.join(FIGURE_STEMS)}")
    if name == "lmn_dynamics":
        return plot_dynamics(runs, profile)
    if name == "lmn_vs_test_loss":
        return plot_against_test_loss(runs, profile)
    if name == "lmn_complexity_l2":
        return plot_three_measures(runs, complexity or {}, profile)
    xor = [run for run in runs if run.config.task == "xor"]
    return plot_xor_trajectory(xor[0], profile=profile) if xor else None


def draw_and_save(name: str, runs: list[Run], figures_dir: str | Path,
                  complexity: dict[str, pd.DataFrame] | None = None, profile: str | None = None):
    """`draw(name, ...)`, written to figures_dir/name.png and .pdf; returns the figure (None: nothing drawn)."""
    fig = draw(name, runs, complexity, profile)
    if fig is not None:
        save(fig, Path(figures_dir) / name)
    return fig


def draw_all(runs: list[Run], figures_dir: str | Path, complexity: dict[str, pd.DataFrame] | None = None,
             profile: str | None = None) -> list[Path]:
    """Every figure of FIGURE_STEMS written to figures_dir and closed; returns the PNG paths."""
    made = []
    for name in FIGURE_STEMS:
        fig = draw_and_save(name, runs, figures_dir, complexity, profile)
        if fig is not None:
            made.append(Path(figures_dir) / f"{name}.png")
            plt.close(fig)
    return made
