"""Figure helpers: saving, one run's training curves, a checkpoint's own rate-distortion curve."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..complexity.tracking import ALGORITHM_1, size_column
from ..files import atomic_write
from ..training.train import grokking_epochs

# What each format of `save` is written with. The same figure gives the same bytes, run after run: the PDF
# carries no creation date (matplotlib stamps the time of the call, or $SOURCE_DATE_EPOCH, unless told None),
# so a repeated reproduction leaves an unchanged figure's committed files unchanged. The remaining metadata
# is fixed by the matplotlib version: PNG "Software" and PDF "Creator"/"Producer" name it, nothing else varies.
SAVE_OPTIONS = {".png": {"dpi": 150, "metadata": {}}, ".pdf": {"metadata": {"CreationDate": None}}}


def figure_bytes(fig, suffix: str) -> bytes:
    """The file `save` writes for `suffix` (".png" or ".pdf"), as bytes."""
    buffer = io.BytesIO()
    options = {**SAVE_OPTIONS[suffix], "metadata": dict(SAVE_OPTIONS[suffix]["metadata"])}  # savefig may edit it
    fig.savefig(buffer, format=suffix[1:], bbox_inches="tight", **options)
    return buffer.getvalue()


def save(fig, stem: Path) -> Path:
    """Write `stem`.png and `stem`.pdf (each atomically: a temporary file renamed into place); return the PNG
    path. The bytes depend on the figure alone (SAVE_OPTIONS), never on the date."""
    stem = Path(stem)
    for suffix in SAVE_OPTIONS:
        data = figure_bytes(fig, suffix)
        atomic_write(stem.with_suffix(suffix), lambda tmp, data=data: tmp.write_bytes(data))
    return stem.with_suffix(".png")


def clock_ns(folder: Path) -> int:
    """The file system's time now in `folder`: the st_mtime_ns of a file created there (then removed), on the
    clock and at the granularity `figures_written` compares modification times with."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".clock-") as marker:
        return os.fstat(marker.fileno()).st_mtime_ns


def figures_written(folder: Path, since_ns: int) -> list[Path]:
    """The figures (PNG; `save` writes a PDF beside each) under `folder` and its subfolders modified at or after
    `since_ns` (clock_ns when a run started): what the run wrote, not what lay there before."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*.png") if p.stat().st_mtime_ns >= since_ns) if folder.is_dir() else []


def written_summary(folder: Path, written: list[Path]) -> str:
    """An account of the figures `written` in `folder`: their stems, relative to it."""
    if not written:
        return f"no figure written in {folder}"
    names = [p.relative_to(folder).with_suffix("").as_posix() for p in written]
    return f"{len(names)} figure{'s' * (len(names) != 1)} written (PNG and PDF) in {folder}: " + ", ".join(names)


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
