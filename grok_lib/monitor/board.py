"""`python -m grok_lib train ... --tensorboard DIR`: a run's logged metrics and the complexity of its logged
checkpoints in TensorBoard, while it trains.

DIR/<run name>/ receives, at every logged epoch (the log schedule floor(1.3^n) and the last epoch), the
metrics.csv row's train/test loss and accuracy, L2 norm, spectral entropy and effective ranks (written from
the training process at once) and the checkpoint's complexity, Eq. 4 bound and coarse-grained losses
(measured by a ComplexityMonitor's worker process, written when they arrive). Epochs logged before this
session (a resumed or reused run) are filled in from the run store; DIR/<run name>/board.json lists the
epochs whose metrics and complexity are written, so a later session writes and measures only the others.
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import torch.nn.functional as F

from ..files import write_text_atomic
from ..log import get as get_logger
from ..store import Run, RunStore
from ..training.config import RunConfig
from ..training.data import make_split
from ..training.train import train
from .core import ComplexityMonitor
from .sinks import TensorBoardSink

LOG = get_logger(__name__)
DONE_FILE = "board.json"
BOARD_EPS = 1.0  # the distortion bound of the README's and the figures' headline complexity
BOARD_OPTIONS = {"search": "edge"}  # deterministic: the same checkpoint gives the same curve every time
METRICS = ("train_loss", "train_acc", "test_loss", "test_acc", "l2_norm", "spectral_entropy", "effective_rank",
           "effective_rank_mean")


class _Written:
    """Which epochs' metrics and complexity are in the log folder (board.json, rewritten atomically); as a
    sink, it records each complexity row once TensorBoard has it."""

    def __init__(self, path: Path):
        self.path = path
        stored = json.loads(path.read_text()) if path.is_file() else {}
        self.epochs = {kind: set(stored.get(kind, ())) for kind in ("metrics", "complexity")}
        self._lock = threading.Lock()

    def add(self, kind: str, epoch: int) -> None:
        with self._lock:
            self.epochs[kind].add(epoch)
            write_text_atomic(self.path, json.dumps({k: sorted(v) for k, v in self.epochs.items()}) + "\n")

    def write(self, row: dict, walltime: float | None = None) -> None:
        self.add("complexity", int(row["step"]))

    def close(self) -> None:
        pass


class TrainingBoard:
    """TensorBoard for one grok_lib run; `on_log` is train()'s per-logged-epoch hook."""

    def __init__(self, log_dir: str | Path, config: RunConfig, name: str, eps: float = BOARD_EPS,
                 options: dict | None = None):
        self.log_dir = Path(log_dir) / name
        self.tensorboard = TensorBoardSink(self.log_dir)
        self.written = _Written(self.log_dir / DONE_FILE)
        split = make_split(config.op, config.p, config.train_frac, config.seed)
        self.monitor = ComplexityMonitor(
            config.build_model(), F.cross_entropy, (split.train_x, split.train_y),
            test_data=(split.test_x, split.test_y),
            schedule=None, eps=eps, options=dict(BOARD_OPTIONS if options is None else options),
            sinks=(self.tensorboard, self.written), model_stats=False, lmn_samples=0)
        self.seen: set[int] = set()

    def on_log(self, epoch: int, row: dict, model) -> None:
        """A logged epoch: its metrics written now, its weights queued for measuring."""
        self.seen.add(epoch)
        self._metrics(epoch, row)
        if epoch not in self.written.epochs["complexity"]:
            self.monitor.measure(epoch, model.state_dict())

    def _metrics(self, epoch: int, row: dict) -> None:
        if epoch not in self.written.epochs["metrics"]:
            self.tensorboard.write(metrics_row(epoch, row))
            self.written.add("metrics", epoch)

    def backfill(self, run: Run) -> None:
        """The epochs logged before this session: metrics from metrics.csv, complexity from the checkpoints."""
        stored = set(run.checkpoints())
        for row in run.metrics().to_dict("records"):
            epoch = int(row["epoch"])
            if epoch in self.seen:
                continue
            self.seen.add(epoch)
            self._metrics(epoch, row)
            if epoch in stored and epoch not in self.written.epochs["complexity"]:
                self.monitor.measure(epoch, run.load_weights(epoch))

    def close(self, wait: bool = True) -> None:
        self.monitor.close(wait)

    def __enter__(self) -> TrainingBoard:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        self.close(wait=kind is None)


def metrics_row(epoch: int, row: dict) -> dict:
    """A metrics.csv row as a sink row: its step and the logged metrics that are numbers."""
    out = {"step": epoch}
    for name in METRICS:
        value = row.get(name)
        if isinstance(value, (int, float)) and math.isfinite(value):
            out[name] = value
    return out


def train_with_board(config: RunConfig, store: RunStore, log_dir: str | Path, **train_options) -> Run:
    """train(config, store, **train_options) with TensorBoard in log_dir/<run name>/ (see the module doc);
    returns once every logged checkpoint's complexity is written."""
    name = store.run(config).path.name
    with TrainingBoard(log_dir, config, name) as board:
        LOG.info(f"TensorBoard: {board.log_dir} (view with: tensorboard --logdir {Path(log_dir)})")
        run = train(config, store, on_log=board.on_log, **train_options)
        board.backfill(run)
        if board.monitor.pending:
            LOG.info(f"measuring the complexity of {board.monitor.pending} more checkpoint(s)")
    return run
