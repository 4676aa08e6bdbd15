"""Recode a run store's answer tables (grok_lib.complexity.recode) after a coder's format changed:

    python -m grok_lib.paper.recode_runs RUN_DIR [RUN_DIR ...]

Each run directory (a grok run, or an LMN run) keeps its checkpoints; its complexity.csv, rate_distortion.csv
and tighter.csv are rewritten where a size changed, under the run's "complexity" lock.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..complexity.measurement import PAPER
from ..complexity.recode import recode_table
from ..complexity.table import INLINE
from ..complexity.tracking import TrackingSettings
from ..errors import require


def _factor_split(run_dir: Path, frame: pd.DataFrame, settings_file: str | None, lmn: bool) -> str:
    """The factor split a table was measured with, from its stored settings (an LMN run's: the default)."""
    if lmn:
        return PAPER.factor_split
    path = None if settings_file is None else run_dir / settings_file
    if path is not None:
        require(path.exists(), "settings", f"{run_dir / settings_file} is missing: the table's factor split is "
                "unknown, so it is not recoded")
        text = path.read_text()
    else:
        require(INLINE in frame and len(frame), "settings", f"{run_dir.name}: a table without its settings column")
        text = frame[INLINE].iloc[0]
    return TrackingSettings.from_json(text).how.factor_split


def recode_run(run_dir: Path, progress: bool = True) -> list[str]:
    """Recode every answer table of one stored run (grok_lib's or an LMN run); the names of those changed."""
    from tqdm.auto import tqdm

    from ..complexity.problem import described_tensors
    from ..lmn.tasks import make_task_split  # importing it registers the LMN config kind for read_config
    from ..store import Run, read_config

    config = read_config(run_dir / "config.json")
    run = Run(run_dir, config)
    lmn = hasattr(config, "steps")  # an LMN run: rows by step, its task's training set, no settings file
    base = dict(at="step", n_train=len(make_task_split(config).train_x)) if lmn else {}
    changed = []
    for name, settings_file in (("complexity.csv", "complexity.json"), ("rate_distortion.csv", None),
                                ("tighter.csv", "tighter.json")):
        path = run_dir / name
        if not path.exists():
            continue
        frame = pd.read_csv(path)
        options = dict(base, factor_split=_factor_split(run_dir, frame, settings_file, lmn))
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
