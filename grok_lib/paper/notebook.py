"""What the transformer notebooks (02-05) share: their set-up cell and the measurements they read.

Each of those notebooks starts from the same state: the profile named by its `parameters` cell, the grid
of runs that profile and the notebook's ops / regimes / seeds select, every run of that grid trained
(finished runs are reused from the run store, interrupted ones resumed), and the folder its figures go to.
`setup` builds that state and prints a one-line summary of it; the returned NotebookSetup also fetches
the complexity tables the later notebooks plot, so the notebooks cannot drift apart in how they derive
any of it.

    grid = setup(profile, ops, regimes, seeds)
    P, configs, runs, FIGURES = grid.profile, grid.configs, grid.runs, grid.figures
    complexity = grid.complexity()  # measures only the checkpoints not yet in the run store
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import require
from ..log import configure, get as get_logger
from ..store import Run, RunStore
from ..training.config import RunConfig
from .figures import runs_metrics
from .pipeline import final_rate_distortion, track_missing, train_missing
from .profiles import Profile, figures_dir, get_profile, run_store
from .tables import committed_store, has_tables, specimen

SOURCES = ("auto", "store", "tables")
LOG = get_logger(__name__)


@dataclass(frozen=True)
class NotebookSetup:
    """What a transformer notebook works on: the resolved profile, its grid, the trained runs (one per
    config, same order), the run store they live in and the folder figures are saved to."""

    profile: Profile
    configs: tuple[RunConfig, ...]
    store: RunStore
    figures: Path
    runs: tuple[Run, ...]
    source: str = "store"  # "store": the run store; "tables": the profile's committed tables (results/)

    def summary(self) -> str:
        where = "the committed tables, copied to " if self.source == "tables" else ""
        return (f"profile {self.profile.name}: {len(self.runs)} runs from {where}{self.store.root}; "
                f"figures go to {self.figures}")

    def complexity(self, full: bool = False) -> pd.DataFrame:
        """Algorithm 1 and 2 along training at the profile's tracked eps, one row per (run, checkpoint, eps),
        joined with the training metrics (grok_lib.paper.pipeline.track_missing; notebook 3 measures, the
        later notebooks find it cached in each run's complexity.csv). Rows at the epochs every cell of the
        op reaches (Profile.common_epochs), unless `full`: all of them (Fig. 1 of p113 runs to 10^4 epochs)."""
        frame = track_missing(list(self.runs), self.profile)
        return frame if full else self.profile.common_epochs(frame)

    def metrics(self, full: bool = False) -> pd.DataFrame:
        """Every run's metrics.csv with its op, regime and seed (grok_lib.paper.figures.runs_metrics); clipped
        as `complexity` is, unless `full`."""
        frame = runs_metrics(list(self.runs))
        return frame if full else self.profile.common_epochs(frame)

    def rate_distortion(self) -> pd.DataFrame:
        """Algorithm 1 and 2 on each run's final checkpoint at every eps of profile.final_eps, one row per
        (run, eps) (grok_lib.paper.pipeline.final_rate_distortion; cached in rate_distortion.csv)."""
        return final_rate_distortion(list(self.runs), self.profile)

    @property
    def specimen(self) -> Run:
        """The run whose last checkpoint the explorers of notebooks 3 and 4 coarse-grain
        (grok_lib.paper.tables.specimen: the first "ours" run of the grid, else the first run)."""
        return specimen(list(self.runs))


def setup(profile: str, ops=(), regimes=(), seeds=(), source: str = "auto") -> NotebookSetup:
    """Resolve `profile` (grok_lib.paper.profiles.get_profile), build its grid ops x regimes x seeds (empty
    arguments take the profile's own), train what the run store is missing, print the summary line and
    return the set-up.

    The paper profile trains each op's runs together as one batched ensemble (the fast path on a GPU); the
    others train `profile.workers` runs at a time in separate processes. source "auto" reads a profile's
    committed tables (results/<profile>/, grok_lib.paper.tables) when the run store does not hold its
    finished grid, and trains otherwise; "store" always uses (and fills) the run store; "tables" requires
    the committed tables.
    """
    require(source in SOURCES, "source", f"unknown source {source!r}; allowed: {', '.join(SOURCES)}")
    if not logging.getLogger("grok_lib").handlers:  # a notebook: the package's messages under the cell
        configure(stream="stdout")
    P = get_profile(profile)
    configs = tuple(P.configs(ops, regimes, seeds))
    store = run_store()
    if source != "store" and not all(store.run(c).is_complete for c in configs):
        committed = committed_store(P, store)
        if committed is not None and has_tables(committed, configs):
            runs = tuple(committed.run(c) for c in configs)
            result = NotebookSetup(profile=P, configs=configs, store=committed, figures=figures_dir(P.name), runs=runs,
                                   source="tables")
            LOG.info(result.summary())
            return result
        require(source != "tables", "source", f"profile {P.name} has no committed tables for this grid "
                f"(results/{P.name}/); use source 'auto' or 'store' to train it")
    runs = tuple(train_missing(list(configs), store, workers=P.workers, ensemble=P.name == "paper"))
    result = NotebookSetup(profile=P, configs=configs, store=store, figures=figures_dir(P.name), runs=runs)
    LOG.info(result.summary())
    return result
