"""The largest slice of a profile's grid that fits a time budget, in one command: the GPU machine's call.

    python -m grok_lib.paper.slice --profile paper --budget-s 480 --out $OUT

1. On a short probe (a few epochs of each op's whole ensemble, on the device) it measures seconds per
   epoch and picks the largest logged epoch E (floor(1.3^n)) whose training fits `train_share` of the
   budget; a run of E epochs is exactly the start of a longer one (grok_lib.training.train continues a
   longer config from it), so nothing of it is lost when the grid is extended later.
2. It trains the grid at E epochs, one batched ensemble job per op, on a Dask LocalCluster of one worker
   per CPU core (grok_lib.jobs), while the other workers track the complexity of runs already trained.
3. It writes the small tables (grok_lib.paper.tables) to OUT/tables and packs them as OUT/tables.tar.gz,
   with a slice.json of what was chosen and measured.

The test suite rehearses the whole command on CPU at the ci profile (tests/test_slice.py).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tarfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from ..errors import require, run_command
from ..files import write_text_atomic
from ..jobs.cluster import Cluster
from ..store import RunStore
from ..training.ensemble import SHARED_FIELDS, train_ensemble
from ..training.train import log_schedule
from .pipeline import compute
from .profiles import Profile, get_profile
from .tables import export_tables

PROBE_EPOCHS = 3


def probe_seconds_per_epoch(profile: Profile, store: RunStore, device: str) -> dict[str, float]:
    """Seconds per epoch of each op's whole ensemble (the grid's runs of that op), measured on `device` by
    training PROBE_EPOCHS epochs of probe copies (lr differs, so they never mix with the grid's runs)."""
    seconds = {}
    for op in profile.ops:
        group = [replace(c, epochs=PROBE_EPOCHS + 1, lr=c.lr * (1 + 1e-9)) for c in profile.configs(ops=[op])]
        train_ensemble(group, store, device=device, progress=False, stop_after=1)  # compile, allocate
        start = time.perf_counter()
        train_ensemble(group, store, device=device, progress=False)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds[op] = (time.perf_counter() - start) / PROBE_EPOCHS
    return seconds


def largest_epochs(seconds_per_epoch: dict[str, float], budget_s: float, most: int) -> int:
    """The largest logged epoch <= `most` whose training (the ensembles one after another) fits budget_s."""
    per_epoch = sum(seconds_per_epoch.values())
    fitting = [e for e in sorted(set(log_schedule(most)) | {most}) if e * per_epoch <= budget_s]
    require(bool(fitting), "budget_s", f"not even one epoch fits: the grid's ensembles take {per_epoch:.2f} s "
            f"per epoch on this machine")
    return fitting[-1]


def run_slice(profile_name: str, budget_s: float, out: Path, store: RunStore, train_share: float = 0.6,
              workers: int | None = None) -> dict:
    require(budget_s > 0 and math.isfinite(budget_s), "budget_s", f"must be a positive number, got {budget_s}")
    require(0 < train_share < 1, "train_share", f"must lie in (0, 1), got {train_share}")
    start = time.perf_counter()
    profile = get_profile(profile_name)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    speed = probe_seconds_per_epoch(profile, RunStore(store.root / "probe"), device)
    epochs = largest_epochs(speed, train_share * budget_s - (time.perf_counter() - start), profile.epochs)
    def without_epochs(table: dict) -> dict:
        return {key: {k: v for k, v in f.items() if k != "epochs"} for key, f in table.items()}

    chosen = replace(profile, run_fields={**profile.run_fields, "epochs": epochs},
                     op_fields=without_epochs(profile.op_fields), cell_fields=without_epochs(profile.cell_fields))
    compute(chosen, store, cluster=Cluster(workers=workers or os.cpu_count() or 1), ensemble=True)
    wall = time.perf_counter() - start
    export_tables(chosen, store, out / "tables", command=" ".join(sys.argv), wall_s=wall)
    with tarfile.open(out / "tables.tar.gz", "w:gz") as tar:
        tar.add(out / "tables", arcname="tables")
    info = dict(profile=profile.name, device=torch.cuda.get_device_name() if device == "cuda" else "cpu",
                budget_s=budget_s, epochs=epochs, runs=len(chosen.configs()), seconds_per_epoch=speed,
                wall_s=round(wall, 1), shared_fields=list(SHARED_FIELDS))
    write_text_atomic(out / "slice.json", json.dumps(info, indent=1) + "\n")
    return info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grok_lib.paper.slice", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="paper")
    parser.add_argument("--budget-s", type=float, default=480.0, help="seconds for the whole slice (default 480)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "slice-out")))
    parser.add_argument("--store", type=Path, default=None, help="run store (default $GROK_RUNS, else runs/)")
    parser.add_argument("--workers", type=int, help="Dask workers (default: one per CPU core)")
    args = parser.parse_args(argv)

    def body() -> int:
        info = run_slice(args.profile, args.budget_s, args.out, RunStore(args.store), workers=args.workers)
        print(json.dumps(info))
        return 0

    return run_command(body, "interrupted; run the same command again: what is stored is reused")


if __name__ == "__main__":
    sys.exit(main())
