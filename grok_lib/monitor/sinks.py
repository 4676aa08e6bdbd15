"""Where a ComplexityMonitor's rows go: a CSV table, TensorBoard event files, wandb (offline). A sink is any
object with `write(row, walltime)` and `close()`; each writes a row as soon as it arrives, under its own lock
(rows come from the monitor's result thread, training scalars from the training thread). An offline wandb
run reads back without wandb's service: `read_wandb_history`."""

from __future__ import annotations

import json
import math
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from ..errors import GrokError
from ..files import write_text_atomic
from ..log import get as get_logger

LOG = get_logger(__name__)

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


def check_tensorboard() -> None:
    """A GrokError saying how to install the tensorboard package unless torch.utils.tensorboard imports."""
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        raise GrokError("tensorboard", "needs the tensorboard package: pip install tensorboard (or "
                        "pip install 'grok-complexity[tensorboard]')") from None


class TensorBoardSink:
    """TensorBoard event files in `log_dir` (torch.utils.tensorboard's SummaryWriter), one scalar per number
    of a row at its step, flushed at once, so that a running `tensorboard --logdir` shows it."""

    def __init__(self, log_dir: str | Path):
        check_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir))
        self._lock = threading.Lock()

    def write(self, row: dict, walltime: float | None = None) -> None:
        self.write_scalars(int(row["step"]), scalars(row), walltime)

    def write_scalars(self, step: int, values: dict[str, float], walltime: float | None = None) -> None:
        """Scalars already named by their tags, at one step."""
        with self._lock:
            for name, value in values.items():
                self.writer.add_scalar(name, value, global_step=step, walltime=walltime)
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

    def close(self, timeout: float = 60.0) -> None:
        """Finish the run and wait until its transaction log (run-<id>.wandb) is on disk to its exit record:
        wandb's service writes it just after `finish()` returns."""
        with self._lock:
            self.run.finish()
            path = getattr(self.run.settings, "sync_file", None)
            deadline = time.monotonic() + timeout
            while path and not any(r.WhichOneof("record_type") == "exit" for r in wandb_records(path)):
                if time.monotonic() > deadline:
                    LOG.warning(f"wandb: {path} was not written to its end within {timeout:g} s")
                    return
                time.sleep(0.02)


WANDB_HEADER = (b":W&B", 0xBEE1, 0)  # a transaction log's first 7 bytes: ident, magic, version
BLOCK = 32768


def wandb_records(path: str | Path) -> Iterator:
    """The records (wandb.proto.wandb_internal_pb2.Record) of a wandb run's transaction log, run-<id>.wandb
    in its offline-run-* folder, read from the file alone (no service, no network). After the 7-byte
    header the file is LevelDB's log format: 32 KiB blocks of chunks (CRC-32 of kind and data, length,
    kind: a whole record, or its first, middle or last part), a block's tail shorter than a chunk header
    left as zeros. The records end at the first chunk not (yet) wholly written."""
    from wandb.proto import wandb_internal_pb2

    path = Path(path)
    data = path.read_bytes() if path.is_file() else b""
    if len(data) < 7:
        return
    if struct.unpack("<4sHB", data[:7]) != WANDB_HEADER:
        raise GrokError("wandb", f"{path} is not a wandb transaction log of the version read here")
    record, pos = b"", 7
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:
            pos += BLOCK - pos % BLOCK
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk = data[pos + 7:pos + 7 + length]
        if len(chunk) < length or zlib.crc32(chunk, zlib.crc32(bytes([kind]))) != crc:
            return
        pos, record = pos + 7 + length, record + chunk
        if kind in (1, 4):  # a whole record, or the last part of one
            yield wandb_internal_pb2.Record.FromString(record)
            record = b""


def read_wandb_history(path: str | Path) -> pd.DataFrame:
    """The rows an offline wandb run logged (its history), one per `log` call, from its run-<id>.wandb file
    or its offline-run-* folder; nested keys joined with "/"; wandb's own _step, _runtime, _timestamp kept."""
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("run-*.wandb"))
        if len(found) != 1:
            raise GrokError("wandb", f"{path} holds {len(found)} run-*.wandb files, not one")
        path = found[0]
    rows = [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item}
            for r in wandb_records(path) if r.WhichOneof("record_type") == "history"]
    return pd.DataFrame(rows)
