"""Recode a run store's answer tables (grok_lib.complexity.recode) after a coder's format changed:

    python -m grok_lib.paper.recode_runs RUN_DIR [RUN_DIR ...]

Each run directory (a grok run, or an LMN run) keeps its checkpoints; its complexity.csv, rate_distortion.csv
and tighter.csv are rewritten where a size changed, under the run's "complexity" lock.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..complexity.recode import recode_table


def recode_run(run_dir: Path, progress: bool = True) -> list[str]:
    """Recode every answer table of one stored run (grok_lib's or an LMN run); the names of those changed."""
    from tqdm.auto import tqdm

    from ..complexity.problem import described_tensors
    from ..lmn.tasks import LMNRunConfig  # noqa: F401 -- registers the LMN config kind for read_config
    from ..store import Run, read_config

    config = read_config(run_dir / "config.json")
    run = Run(run_dir, config)
    settings_path = run_dir / "complexity.json"
    settings = json.loads(settings_path.read_text()) if settings_path.exists() else {}
    options = dict(split=settings.get("split", "left"), bound_delta=settings.get("bound_delta", 0.05))
    if hasattr(config, "steps"):  # an LMN run: rows by step, its task's training set
        from ..lmn.tasks import make_task_split
        options.update(at="step", n_train=len(make_task_split(config).train_x))
    changed = []
    for name in ("complexity.csv", "rate_distortion.csv", "tighter.csv"):
        path = run_dir / name
        if not path.exists():
            continue
        frame = pd.read_csv(path)
        bar = tqdm(total=len(frame), desc=f"{run_dir.name}/{name}", disable=not progress, leave=False)
        with run.lock("complexity"):
            if recode_table(path, lambda at: described_tensors(run.load_model(at)), progress=bar.update, **options):
                changed.append(f"{run_dir.name}/{name}")
        bar.close()
    return changed


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m grok_lib.paper.recode_runs", description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories (each with config.json and checkpoints)")
    args = parser.parse_args(argv)
    for run_dir in args.runs:
        for name in recode_run(run_dir):
            print(f"recoded {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
