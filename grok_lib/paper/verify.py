"""Committed results anyone can check: retrain a sample of a committed grid and re-measure a checkpoint.

    python -m grok_lib verify results/p113 --runs 2 --epochs 100

For each chosen run of `results/<profile>/runs/` the run is trained afresh (its config.json, into a scratch
store) for the first `epochs` epochs at the thread count the provenance records, and every logged metric is
compared with the committed metrics.csv: bit for bit where this torch version and thread count are the
recorded ones, otherwise within TOLERANCE (relative), as float results of another torch build may differ in
the last bits and such differences grow along training. Then the committed checkpoint (the notebooks'
specimen's last) is measured again with the settings stored beside its complexity.csv, and every answer's
bytes, tau and Delta compared with its committed row the same way. Each comparison is a `Check`; the
command prints them as a table and exits 1 when one fails.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from ..complexity.tracking import COMPLEXITY_FILE, SETTINGS_FILE, TrackingSettings, measure_checkpoint, \
    read_table
from ..errors import require
from ..store import Run, RunStore, read_config
from ..training.data import make_split
from ..training.train import train
from .tables import PROVENANCE

TOLERANCE = 1e-3  # relative, where torch version or thread count differ from the recorded ones
ANSWER_PREFIXES = ("alg1_", "pooled_", "alg2_", "edge_")
ANSWER_FIELDS = ("paper_bytes", "symbols_bytes", "entropy_bytes", "tau", "delta")


@dataclass(frozen=True)
class Check:
    what: str  # e.g. "add-ours-s0-... metrics, epochs 1-100"
    committed: str
    measured: str
    ok: bool


def recorded(provenance: dict) -> tuple[str, int]:
    """(torch version, torch threads) the committed tables were made with; provenance written before these
    fields were recorded names torch in its machine line, and its training ran in one-thread workers."""
    version = provenance.get("torch")
    if version is None:
        found = re.search(r"torch (\S+?),", provenance.get("machine", ""))
        version = found.group(1) if found else "unknown"
    return version, int(provenance.get("threads", 1))


def settings_from(text: str) -> TrackingSettings:
    """The TrackingSettings of a stored complexity.json (of today's or an older format)."""
    return TrackingSettings.from_json(text)


def _same(committed: float, measured: float, exact: bool) -> bool:
    if isinstance(committed, float) and math.isnan(committed):
        return isinstance(measured, float) and math.isnan(measured)
    if exact:
        return committed == measured
    return math.isclose(committed, measured, rel_tol=TOLERANCE, abs_tol=1e-12)


def compare_frames(what: str, committed: pd.DataFrame, measured: pd.DataFrame, columns, exact: bool) -> Check:
    """One Check: every value of `columns` equal (exact) or within TOLERANCE, row for row; the first
    difference is named."""
    if len(committed) != len(measured):
        return Check(what, f"{len(committed)} rows", f"{len(measured)} rows", False)
    for i in range(len(committed)):
        for column in columns:
            a, b = committed[column].iloc[i], measured[column].iloc[i]
            if not _same(a, b, exact):
                return Check(what, f"{column} {a!r} at row {i}", f"{b!r}", False)
    return Check(what, f"{len(committed)} rows x {len(columns)} columns",
                 "identical" if exact else f"within {TOLERANCE:g}", True)


def verify_training(run_dir: Path, epochs: int | None, threads: int, exact: bool, scratch: Path) -> Check:
    config = read_config(run_dir / "config.json")
    committed = pd.read_csv(run_dir / "metrics.csv")
    last = config.epochs if epochs is None else min(epochs, config.epochs)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        run = train(config, RunStore(scratch), device="cpu", progress=False, stop_after=last)
    finally:
        torch.set_num_threads(previous)
    measured = run.metrics()
    committed, measured = (f[f.epoch <= last].reset_index(drop=True) for f in (committed, measured))
    columns = [c for c in committed.columns if c != "wall_s"]
    missing = [c for c in columns if c not in measured.columns]
    what = f"{run_dir.name} metrics, epochs 1-{last}"
    if missing:
        return Check(what, f"columns {missing}", "absent", False)
    return compare_frames(what, committed, measured, columns, exact)


def verify_checkpoint(run_dir: Path, exact: bool) -> Check | None:
    """The committed checkpoint of this run (if any) measured again, against its complexity.csv rows."""
    epochs = sorted(int(m.group(1)) for p in (run_dir / "checkpoints").glob("epoch_*.safetensors")
                    if (m := re.fullmatch(r"epoch_(\d+)\.safetensors", p.name)))
    if not epochs or not (run_dir / COMPLEXITY_FILE).is_file():
        return None
    epoch = epochs[-1]
    config = read_config(run_dir / "config.json")
    settings = settings_from((run_dir / SETTINGS_FILE).read_text())
    table = read_table(run_dir / COMPLEXITY_FILE)
    committed = table[table.epoch == epoch].sort_values("eps").reset_index(drop=True)
    rows = measure_checkpoint(Run(run_dir, config), epoch, settings,
                              make_split(config.op, config.p, config.train_frac, config.seed))
    measured = pd.DataFrame(rows).sort_values("eps").reset_index(drop=True)
    columns = [p + f for p in ANSWER_PREFIXES for f in ANSWER_FIELDS if p + f in committed.columns]
    return compare_frames(f"{run_dir.name} complexity at epoch {epoch}", committed, measured, columns, exact)


def verify(folder: Path, runs: int = 1, epochs: int | None = None, names=(), complexity: bool = True,
           log=print) -> list[Check]:
    """The checks of a committed results folder (module docstring); `names` picks runs by name, else the
    first `runs` in name order; `epochs` trains a prefix (default: each run's full length)."""
    folder = Path(folder)
    require((folder / PROVENANCE).is_file(), "folder",
            f"{folder} holds no {PROVENANCE}: not a committed results folder")
    require(isinstance(runs, int) and runs >= 1, "runs", f"must be a positive integer, got {runs!r}")
    require(epochs is None or (isinstance(epochs, int) and epochs >= 1), "epochs",
            f"must be a positive integer, got {epochs!r}")
    available = sorted(p for p in (folder / "runs").iterdir() if (p / "metrics.csv").is_file())
    for name in names:
        require(any(p.name == name for p in available), "run", f"no committed run {name!r} in {folder / 'runs'}")
    chosen = [p for p in available if p.name in names] if names else available[:runs]
    version, threads = recorded(json.loads((folder / PROVENANCE).read_text()))
    exact = version == torch.__version__  # the recorded thread count is used either way
    log(f"recorded: torch {version}, {threads} thread(s); here: torch {torch.__version__} -> "
        + ("bit for bit" if exact else f"relative tolerance {TOLERANCE:g}"))
    checks = []
    with tempfile.TemporaryDirectory(prefix="grok-verify-") as scratch:
        for run_dir in chosen:
            start = time.perf_counter()
            checks.append(verify_training(run_dir, epochs, threads, exact, Path(scratch)))
            log(f"trained {run_dir.name} ({time.perf_counter() - start:.0f} s)")
    if complexity:
        specimen = next((p for p in available if (p / "checkpoints").is_dir()), None)
        if specimen is not None:
            previous = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                check = verify_checkpoint(specimen, exact)
            finally:
                torch.set_num_threads(previous)
            if check is not None:
                checks.append(check)
    return checks


def report(checks: list[Check]) -> str:
    width = max(len(c.what) for c in checks)
    lines = [f"{'check':{width}}  result  committed -> measured"]
    lines += [f"{c.what:{width}}  {'ok' if c.ok else 'FAIL':6}  {c.committed} -> {c.measured}" for c in checks]
    failed = sum(not c.ok for c in checks)
    lines.append(f"{len(checks) - failed} passed, {failed} failed")
    return "\n".join(lines)
