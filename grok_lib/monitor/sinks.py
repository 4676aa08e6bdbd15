"""Where a ComplexityMonitor's rows go: a CSV table, TensorBoard event files, wandb (offline). A sink is any
object with `write(row, walltime)` and `close()`; each writes a row as soon as it arrives, under its own lock
(rows come from the monitor's result thread, training scalars from the training thread)."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import pandas as pd

from ..errors import GrokError
from ..files import write_text_atomic

NOT_SCALARS = ("step", "wall_s", "eps")  # columns that are not curves over steps
# TensorBoard / wandb tags of the columns that do not follow the rules in `tag`
TAGS = {"train_loss": "train/loss", "train_acc": "train/acc", "test_loss": "test/loss", "test_acc": "test/acc",
        "l2_norm": "weights/l2_norm", "spectral_entropy": "weights/spectral_entropy",
        "effective_rank": "weights/effective_rank", "effective_rank_mean": "weights/effective_rank_mean",
        "lmn": "lmn/lmn", "tau": "coarse/tau", "delta": "coarse/delta"}
PREFIXES = {"bound_": "bound/", "coarse_": "coarse/"}


def tag(column: str) -> str:
    """The chart a column is drawn on: complexity/{coder}_bytes, bound/{coder}, coarse/..., train/loss,
    test/acc, weights/l2_norm, weights/spectral_entropy, weights/effective_rank, lmn/lmn, monitor/lag_s, ..."""
    if column in TAGS:
        return TAGS[column]
    if column.endswith("_bytes"):
        return f"complexity/{column}"
    for prefix, group in PREFIXES.items():
        if column.startswith(prefix):
            return group + column.removeprefix(prefix)
    return f"monitor/{column}"


def scalars(row: dict) -> dict[str, float]:
    """The finite numbers of a row, by tag (what TensorBoard and wandb draw)."""
    out = {}
    for column, value in row.items():
        if column in NOT_SCALARS or isinstance(value, (str, bool)) or value is None:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            out[tag(column)] = number
    return out


class CsvSink:
    """A CSV table with one row per measured step (sorted by step), rewritten atomically as each row arrives:
    the file on disk is always whole. A new sink starts the table afresh."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict] = []
        self._lock = threading.Lock()

    def write(self, row: dict, walltime: float | None = None) -> None:
        with self._lock:
            self.rows = [r for r in self.rows if r["step"] != row["step"]] + [row]
            frame = pd.DataFrame(self.rows).sort_values("step", kind="stable")
            write_text_atomic(self.path, frame.to_csv(index=False))

    def close(self) -> None:
        pass


class TensorBoardSink:
    """TensorBoard event files in `log_dir` (torch.utils.tensorboard's SummaryWriter), one scalar per number
    of a row at its step, flushed at once, so that a running `tensorboard --logdir` shows it."""

    def __init__(self, log_dir: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise GrokError("tensorboard", "needs the tensorboard package: pip install tensorboard (or "
                            "pip install 'grok-complexity[tensorboard]')") from None
        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir))
        self._lock = threading.Lock()

    def write(self, row: dict, walltime: float | None = None) -> None:
        with self._lock:
            for name, value in scalars(row).items():
                self.writer.add_scalar(name, value, global_step=int(row["step"]), walltime=walltime)
            self.writer.flush()

    def close(self) -> None:
        with self._lock:
            self.writer.close()


class WandbSink:
    """A wandb run in offline mode (nothing leaves the machine; `wandb sync DIR` uploads it later), each row
    logged with its step as the x axis ("step"). Needs the wandb package (an optional extra)."""

    def __init__(self, project: str = "grok-monitor", dir: str | Path | None = None, **init_options):
        try:
            import wandb
        except ImportError:
            raise GrokError("wandb", "needs the wandb package: pip install wandb (or pip install "
                            "'grok-complexity[wandb]')") from None
        init_options["mode"] = "offline"
        self.run = wandb.init(project=project, dir=None if dir is None else str(dir), **init_options)
        self.run.define_metric("step")
        self.run.define_metric("*", step_metric="step")
        self._lock = threading.Lock()

    def write(self, row: dict, walltime: float | None = None) -> None:
        with self._lock:
            self.run.log({**scalars(row), "step": int(row["step"])})

    def close(self) -> None:
        with self._lock:
            self.run.finish()
