"""Figure helpers: each takes stored results and returns (or saves) one matplotlib figure."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from .train import grokking_epochs


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
