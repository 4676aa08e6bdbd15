"""`python -m grok_lib train ... --tensorboard DIR`: a run's logged metrics and the complexity of its logged
checkpoints in TensorBoard, while it trains.

DIR/<run name>/ receives, at every logged epoch (the log schedule floor(1.3^n) and the last epoch), the
metrics.csv row's train/test loss and accuracy, L2 norm, spectral entropy and effective ranks (written from
the training process at once) and the checkpoint's complexity, Eq. 4 bound and coarse-grained losses
(measured by a ComplexityMonitor's worker process, written when they arrive). Epochs logged before this
session (a resumed or reused run) are filled in from the run store; DIR/<run name>/board.json lists the
epochs whose metrics and complexity are written, so a later session writes and measures only the others.

`grid --tensorboard DIR` does the same for each run of the grid (`train_grid_with_board`; an ensemble's
runs are filled in from the store once it is trained). `compute --tensorboard DIR` writes what the profile
stored (`StoredBoards`, `write_stored`): each run's metrics.csv and its complexity.csv rows, the tracked
checkpoints measured by Algorithms 1 and 2 (and the edge search) at each eps, the eps in the tag
(`tracked_scalars`).
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import torch.nn.functional as F

from ..errors import require
from ..files import write_text_atomic
from ..log import get as get_logger
from ..store import Run, RunStore
from ..training.config import RunConfig
from ..training.data import make_split
from ..training.ensemble import train_ensemble
from ..training.train import train
from .core import ComplexityMonitor
from .sinks import TensorBoardSink, check_tensorboard

LOG = get_logger(__name__)
DONE_FILE = "board.json"
BOARD_EPS = 1.0  # the distortion bound of the README's and the figures' headline complexity
BOARD_OPTIONS = {"search": "edge"}  # deterministic: the same checkpoint gives the same curve every time
METRICS = ("train_loss", "train_acc", "test_loss", "test_acc", "l2_norm", "spectral_entropy", "effective_rank",
           "effective_rank_mean")
TRACKED = "tracked"  # board.json's list of the complexity.csv rows written, as "epoch@eps"
ANSWERS = ("alg1_", "pooled_", "alg2_", "edge_")  # complexity.csv's answers (grok_lib.complexity.tracking)


class _Written:
    """Which epochs' metrics and complexity (and which complexity.csv rows: TRACKED) are in the log folder
    (board.json, rewritten atomically); as a sink, it records each complexity row once TensorBoard has it."""

    def __init__(self, path: Path):
        self.path = path
        stored = json.loads(path.read_text()) if path.is_file() else {}
        self.epochs = {kind: set(stored.get(kind, ())) for kind in {"metrics", "complexity", *stored}}
        self._lock = threading.Lock()

    def add(self, kind: str, *keys) -> None:
        with self._lock:
            self.epochs[kind].update(keys)
            write_text_atomic(self.path, json.dumps({k: sorted(v) for k, v in sorted(self.epochs.items())}) + "\n")

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


def train_grid_with_board(configs: list[RunConfig], store: RunStore, log_dir: str | Path, ensemble: bool = False,
                          device: str | None = None) -> list[Run]:
    """`grid --tensorboard`: each config trained with TensorBoard in log_dir/<run name>/ (train_with_board);
    with ensemble=True all are trained in one batched step first, then each run's board is filled in from the
    store (its logged metrics, the complexity of its checkpoints)."""
    if not ensemble:
        return [train_with_board(config, store, log_dir, device=device) for config in configs]
    runs = train_ensemble(configs, store, device=device)
    for run in runs:
        with TrainingBoard(log_dir, run.config, run.path.name) as board:
            LOG.info(f"TensorBoard: {board.log_dir}")
            board.backfill(run)
    return runs


def tracked_scalars(row: dict) -> dict[str, float]:
    """A complexity.csv row's numbers by TensorBoard tag, each tag ending in /eps_{eps}:
    complexity/{answer}{coder}_bytes (and complexity/naive_bytes), bound/{answer}{coder},
    description_length/{answer}{coder}_bits, coarse/{answer}{tau, delta, train_loss, ..., n_evaluations},
    tracking/{reference_train_loss, seconds}; the answers are alg1_, pooled_, alg2_ and edge_. The bits
    twins of the bytes, the codecs, ranks and n_train are left out."""
    suffix = f"/eps_{float(row['eps']):g}"
    out = {}
    for column, value in row.items():
        if column in ("epoch", "eps", "n_train") or isinstance(value, (str, bool)) or value is None:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if not math.isfinite(number):
            continue
        answer = next((a for a in ANSWERS if column.startswith(a)), "")
        rest = column.removeprefix(answer)
        if rest.endswith("_bytes"):
            name = f"complexity/{column}"
        elif rest.startswith("description_length_"):
            name = f"description_length/{answer}{rest.removeprefix('description_length_')}"
        elif rest.endswith("_bits"):
            continue
        elif rest.startswith("bound_"):
            name = f"bound/{answer}{rest.removeprefix('bound_')}"
        else:
            name = f"{'coarse' if answer else 'tracking'}/{column}"
        out[name + suffix] = number
    return out


class StoredBoards:
    """`compute --tensorboard`: what a computed profile stored, in TensorBoard. Made before computing, so that
    a missing tensorboard package or a folder that is a file is said at once; log_dir None writes nothing."""

    def __init__(self, log_dir: str | Path | None):
        self.log_dir = None if log_dir is None else Path(log_dir)
        if self.log_dir is not None:
            check_tensorboard()
            existing = next(p for p in [self.log_dir, *self.log_dir.parents] if p.exists())
            require(existing.is_dir(), "tensorboard", f"{existing} is a file; --tensorboard needs a folder")

    def write(self, runs: list[Run]) -> None:
        if self.log_dir is not None:
            for run in runs:
                write_stored(run, self.log_dir)
            LOG.info(f"TensorBoard: {self.log_dir}/<run name>/ (view with: tensorboard --logdir {self.log_dir})")


def write_stored(run: Run, log_dir: str | Path) -> Path:
    """A stored run's metrics.csv rows (as `train --tensorboard` writes them) and its complexity.csv rows
    (`tracked_scalars`, at their epochs) into log_dir/<run name>/, each row once (board.json); returns that
    folder."""
    from ..complexity.tracking import read_complexity  # the run store's tables: only `compute` needs them

    folder = Path(log_dir) / run.path.name
    written = _Written(folder / DONE_FILE)
    written.epochs.setdefault(TRACKED, set())
    metrics = [r for r in run.metrics().to_dict("records") if int(r["epoch"]) not in written.epochs["metrics"]]
    table = read_complexity(run).sort_values(["epoch", "eps"], kind="stable").to_dict("records")
    tracked = [(f"{int(r['epoch'])}@{float(r['eps']):g}", r) for r in table]
    tracked = [(key, r) for key, r in tracked if key not in written.epochs[TRACKED]]
    if not metrics and not tracked:
        return folder
    sink = TensorBoardSink(folder)
    try:
        for row in metrics:
            sink.write(metrics_row(int(row["epoch"]), row))
        written.add("metrics", *(int(r["epoch"]) for r in metrics))
        for _, row in tracked:
            sink.write_scalars(int(row["epoch"]), tracked_scalars(row))
        written.add(TRACKED, *(key for key, _ in tracked))
    finally:
        sink.close()
    return folder
