"""Figure helpers: saving, one run's training curves, a checkpoint's own rate-distortion curve."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..complexity.tracking import ALGORITHM_1, size_column
from ..training.train import grokking_epochs


def save(fig, stem: Path) -> Path:
    """Write `stem`.png and `stem`.pdf; return the PNG path."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(stem.with_suffix(".png"), dpi=150, bbox_inches="tight")
    fig.savefig(stem.with_suffix(".pdf"), bbox_inches="tight")
    return stem.with_suffix(".png")


def describe(config) -> str:
    return (f"{config.op} mod {config.p}, regime {config.regime} (wd {config.weight_decay}, "
            f"noise {config.noise}, beta {config.beta}), train frac {config.train_frac}, "
            f"d_model {config.d_model}, {config.n_layers} layer(s), seed {config.seed}")


def plot_training(run, stem: Path | None = None):
    """Train/test accuracy and loss of one run vs epoch, with memorization/generalization markers."""
    m = run.metrics()
    marks = grokking_epochs(m)
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(10, 3.8))
    for split, color in (("train", "C0"), ("test", "C3")):
        ax_acc.plot(m.epoch, m[f"{split}_acc"], color=color, label=split)
        ax_loss.plot(m.epoch, m[f"{split}_loss"], color=color, label=split)
    for label, marker in (("memorized", "s"), ("generalized", "o")):
        if marks[label] is not None:
            for ax in (ax_acc, ax_loss):
                ax.axvline(marks[label], color="gray", ls=":", lw=1)
            ax_acc.plot(marks[label], 0.99, marker, color="k", mfc="none", ms=8,
                        label=f"{label} (epoch {marks[label]})")
    ax_acc.set(xscale="log", xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02))
    ax_loss.set(xscale="log", yscale="log", xlabel="epoch", ylabel="cross-entropy (nats)")
    ax_acc.legend(fontsize=8)
    ax_loss.legend(fontsize=8)
    fig.suptitle(describe(run.config), fontsize=9)
    fig.tight_layout()
    if stem is not None:
        path = save(fig, stem)
        plt.close(fig)
        return path
    return fig


def plot_grid_rate_distortion(points: pd.DataFrame, final: pd.DataFrame, title: str = ""):
    """The rate-distortion curve of a set of coarse-grainings of one checkpoint (the smallest point within
    each eps; `grok_lib.paper.explorer`) against Algorithm 1's sizes on the same checkpoint (rows of `final`)."""
    from .explorer import smallest_within

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    eps_values = np.geomspace(1e-2, 10.0, 61)
    best = [smallest_within(points, e) for e in eps_values]
    ax.step(eps_values, [np.nan if b is None else b.paper_bytes / 1e3 for b in best], where="post", color="C0",
            label=f"smallest of the {len(points)} computed points within ε")
    if len(final):
        ax.plot(final.eps, final[size_column(ALGORITHM_1, "paper")] / 1e3, "o", color="C3",
                label="Algorithm 1 (search)")
    ax.set(xscale="log", xlabel="distortion bound ε (nats, log scale)", ylabel="compressed size (kB, paper coder)")
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
