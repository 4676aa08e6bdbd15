"""A profile's small tables, committed: exported from the run store, read back by the notebooks.

    results/<profile>/
        PROVENANCE.json     commit, command, machine, date, wall time of the run that produced them
        runs/<run key>/     config.json, metrics.csv, complexity.json, complexity.csv, rate_distortion.csv
                            (no checkpoints, except the final one of the notebooks' specimen run, which
                            the sliders of notebooks 3 and 4 coarse-grain)

`export_tables` writes that folder from a run store; `committed_store` gives the notebooks a run store
holding those tables (a copy inside the live store, so nothing they cache writes into the repository)
when the live store lacks the profile's runs.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

from ..errors import require
from ..files import copy_atomic, write_text_atomic
from ..store import REPO_ROOT, Run, RunStore
from .profiles import Profile

RESULTS_DIR = REPO_ROOT / "results"
TABLES = ("config.json", "metrics.csv", "complexity.json", "complexity.csv", "rate_distortion.csv",
          "tighter.csv", "tighter.json")  # the last two where paper.tighter measured the run (Figs. 1-2 tighter)
PROVENANCE = "PROVENANCE.json"


def specimen(runs: list[Run]) -> Run:
    """The run whose last checkpoint the explorers of notebooks 3 and 4 coarse-grain: the first regularized
    ("ours") run of the grid, else the first run."""
    return next((r for r in runs if r.config.regime == "ours"), runs[0])


def export_tables(profile: Profile, store: RunStore, out_dir: Path | None = None, command: str = "",
                  wall_s: float | None = None, threads: int | None = None) -> Path:
    """Copy every run's tables (and the specimen's final checkpoint) of `profile`'s grid from `store` into
    out_dir (default results/<profile>/) with a PROVENANCE.json; runs not finished are refused. `threads`:
    the torch threads the runs trained and were measured with (Dask workers: 1; default this process's),
    recorded with the torch version so that `python -m grok_lib verify` can retrain them bit for bit."""
    out_dir = Path(out_dir) if out_dir is not None else RESULTS_DIR / profile.name
    runs = [store.run(c) for c in profile.configs()]
    unfinished = [r.path.name for r in runs if not r.is_complete]
    require(not unfinished, "export", f"{len(unfinished)} run(s) of profile {profile.name} are not finished: "
            f"{unfinished[:3]}{' ...' if len(unfinished) > 3 else ''}; run the profile first")
    for run in runs:
        target = out_dir / "runs" / run.path.name
        for name in TABLES:
            if (run.path / name).exists():
                copy_atomic(run.path / name, target / name)
    chosen = specimen(runs)
    last = chosen.checkpoints()[-1]
    copy_atomic(chosen.checkpoint_path(last), out_dir / "runs" / chosen.path.name / "checkpoints" /
                chosen.checkpoint_path(last).name)
    provenance = dict(profile=profile.name, runs=len(runs), commit=_commit(), command=command or " ".join(sys.argv),
                      machine=f"{platform.node()} ({platform.machine()}, {os.cpu_count()} CPU cores, "
                              f"torch {torch.__version__}, "
                              f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'})",
                      date=time.strftime("%Y-%m-%d %H:%M:%S %Z"), torch=torch.__version__,
                      threads=torch.get_num_threads() if threads is None else threads,
                      wall_s=None if wall_s is None else round(wall_s, 1),
                      train_wall_s=round(sum(float(r.metrics().wall_s.iloc[-1]) for r in runs), 1))
    write_text_atomic(out_dir / PROVENANCE, json.dumps(provenance, indent=1) + "\n")
    write_text_atomic(out_dir / "README.md", provenance_note(provenance))
    return out_dir


def provenance_note(provenance: dict) -> str:
    """The README.md of a committed results folder: where its tables (and the figures drawn from them) came
    from, in words a reader sees on the repository's page."""
    wall = provenance.get("wall_s")
    return (f"# The `{provenance['profile']}` profile's tables\n\n"
            f"{provenance['runs']} runs: per run its config, metrics, complexity tables and their settings "
            f"(`runs/<run>/`), no checkpoints but the notebooks' specimen's last. "
            f"`figures/{'' if provenance['profile'] in ('ci', 'cpu') else provenance['profile'] + '/'}` is drawn "
            f"from them (`python -m grok_lib.paper.reproduce --profile {provenance['profile']}`); "
            f"`python -m grok_lib verify` retrains a sample and compares.\n\n"
            f"- commit: `{provenance['commit']}`\n- command: `{provenance['command']}`\n"
            f"- machine: {provenance['machine']}\n- torch: {provenance.get('torch', '?')}, "
            f"{provenance.get('threads', '?')} thread(s) per process\n- date: {provenance['date']}\n"
            f"- wall time: {'not recorded' if wall is None else f'{wall:.0f} s'} "
            f"(the runs' own training clocks: {provenance['train_wall_s']:.0f} s)\n"
            + "".join(f"- recoded {r['date']} at `{r['commit']}`: {r['why']} (`{r['command']}`)\n"
                      for r in provenance.get("recoded", []))
            + "".join(f"- {t['what']}: {t['date']} at `{t['commit']}`, `{t['command']}`, {t['wall_s']:.0f} s\n"
                      for t in provenance.get("added", [])))


def _commit() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() + (" (with uncommitted changes)" if dirty else "") if done.returncode == 0 else "unknown"


def committed_store(profile: Profile, live: RunStore) -> RunStore | None:
    """A run store with the committed tables of `profile` (a copy under live.root/committed/<profile>/,
    refreshed when the committed PROVENANCE.json changes), or None when nothing is committed for it."""
    source = RESULTS_DIR / profile.name
    if not (source / PROVENANCE).is_file():
        return None
    copy = live.root / "committed" / profile.name
    stamp = (source / PROVENANCE).read_text()
    if not (copy / PROVENANCE).is_file() or (copy / PROVENANCE).read_text() != stamp:
        copy.parent.mkdir(parents=True, exist_ok=True)
        staging = copy.with_name(f".{profile.name}.{os.getpid()}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source, staging)
        shutil.rmtree(copy, ignore_errors=True)
        os.replace(staging, copy)
    return RunStore(copy / "runs")


def has_tables(store: RunStore, configs) -> bool:
    """Whether `store` holds metrics and complexity tables for every config."""
    return all((store.root / c.key() / "metrics.csv").is_file() and (store.root / c.key() / "complexity.csv").is_file()
               for c in configs)
