"""The work of a profile as jobs for grok_lib.jobs: train the grid, track complexity, measure the final
checkpoints' rate-distortion. Each piece reuses what the run store already holds."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from ..complexity.table import INLINE, MeasuredTable
from ..complexity.tracking import (as_stored, check_settings, checkpoint_job, load_complexity, measure_checkpoint,
                                   read_complexity, store_rows, upgrade_columns)
from ..jobs.cluster import Cluster
from ..jobs.runner import Job, Runner
from ..store import Run, RunStore
from ..training.config import RunConfig
from ..training.data import make_split
from ..training.ensemble import SHARED_FIELDS, train_ensemble
from ..training.train import logged_epochs, train
from .profiles import Profile, tracking_settings


def _train_job(config: RunConfig, root: str) -> None:
    train(config, RunStore(root), progress=False)


def _train_cost(config: RunConfig) -> float:
    """Relative training cost: layers x the spectral penalty's extra cost x epochs."""
    return config.n_layers * (2.5 if config.beta else 1.0) * config.epochs


def _train_name(run: Run) -> str:
    return f"train {run.path.name}"


def train_jobs(configs: list[RunConfig], store: RunStore, ensemble: bool = False) -> tuple[list[Job], dict]:
    """The jobs that train every config not finished in `store`, and {run path: the job that trains it}:
    one job per run, or (ensemble=True) one per group of runs sharing op and architecture, trained in one
    batched step (grok_lib.training.ensemble, the fast path on a GPU)."""
    todo = [r for r in (store.run(c) for c in configs) if not r.is_complete]
    if not ensemble:
        return ([Job(_train_name(r), _train_job, (r.config, str(store.root)), cost=_train_cost(r.config),
                     units=r.config.epochs) for r in todo], {r.path: _train_name(r) for r in todo})
    groups: dict[tuple, list[Run]] = {}
    for run in todo:
        groups.setdefault(tuple(getattr(run.config, f) for f in SHARED_FIELDS), []).append(run)
    jobs, by_run = [], {}
    for group in groups.values():
        name = f"train ensemble of {len(group)}: {group[0].path.name} ..."
        jobs.append(Job(name, _ensemble_job, ([r.config for r in group], str(store.root)),
                        cost=sum(_train_cost(r.config) for r in group), units=sum(r.config.epochs for r in group)))
        by_run.update({r.path: name for r in group})
    return jobs, by_run


def _ensemble_job(configs: list[RunConfig], root: str) -> None:
    train_ensemble(configs, RunStore(root), progress=False)


def train_missing(configs: list[RunConfig], store: RunStore, workers: int = 1, ensemble: bool = False) -> list:
    """Train every config not finished in `store` (finished runs are reused, interrupted ones resumed).

    workers > 1 trains that many runs at once in separate processes; ensemble=True instead trains the runs
    of each op together in one batched step (grok_lib.training.ensemble, the fast path on a GPU).
    """
    runs = [store.run(c) for c in configs]
    todo = [r for r in runs if not r.is_complete]
    if todo:
        jobs, _ = train_jobs(configs, store, ensemble)
        Runner(1 if ensemble else workers).run(jobs, f"training {len(todo)} run(s)", "epoch")
    return runs


def wanted_epochs(config: RunConfig, profile: Profile) -> list[int]:
    """The checkpoints whose complexity is measured: every logged one from `profile.min_epoch` on."""
    return [e for e in logged_epochs(config) if e >= profile.min_epoch]


def _measured_epochs(run, profile: Profile) -> set[int]:
    """The tracked checkpoints already in the run's complexity.csv at every eps of the profile."""
    table = read_complexity(run)
    eps = set(profile.track_eps)
    return {int(e) for e, g in table.groupby("epoch") if set(g.eps) >= eps} & set(wanted_epochs(run.config, profile))


def _measured(run, profile: Profile) -> int:
    return len(_measured_epochs(run, profile))


def track_jobs(runs: list, profile: Profile, after: dict | None = None) -> list[Job]:
    """One job per (run, tracked checkpoint) not yet measured, covering the profile's eps; after[run.path]:
    the job it waits for (the run's training). Each job returns its rows; `writers` stores them."""
    settings = tracking_settings(profile)
    after = after or {}
    jobs = []
    for run in runs:
        check_settings(run, settings)  # a table measured otherwise is refused before anything runs
        done = _measured_epochs(run, profile)
        jobs += [Job(_track_name(run, epoch), checkpoint_job, (str(run.path), run.config, epoch, settings),
                     cost=run.config.n_layers * 2.5, after=tuple(a for a in [after.get(run.path)] if a))
                 for epoch in wanted_epochs(run.config, profile) if epoch not in done]
    return jobs


def _track_name(run: Run, epoch: int) -> str:
    return f"track {run.path.name} @{epoch}"


def writers(runs: list, profile: Profile):
    """on_result for the jobs of this module: tracked rows merged into complexity.csv, final rows written to
    rate_distortion.csv, by the calling process (the one writer); other jobs' results are ignored."""
    settings, final = tracking_settings(profile), tracking_settings(profile, final=True)
    by_name = {}
    for run in runs:
        by_name[_final_name(run)] = lambda rows, run=run: _store_final(run, final, rows)
        for epoch in wanted_epochs(run.config, profile):
            by_name[_track_name(run, epoch)] = lambda rows, run=run: store_rows(run, settings, rows)

    def on_result(job: Job, result) -> None:
        if job.name in by_name:
            by_name[job.name](result)

    return on_result


def track_missing(runs: list, profile: Profile) -> pd.DataFrame:
    """Algorithm 1 and 2 at profile.track_eps on every tracked checkpoint not yet in a run's complexity.csv.

    Returns the tables of all runs (grok_lib.complexity.tracking.load_complexity: joined with metrics, plus
    op, regime, seed), one row per (run, epoch, eps).
    """
    jobs = track_jobs(runs, profile)
    if jobs:
        Runner(profile.workers).run(jobs, f"complexity of {len(jobs)} checkpoint(s), eps {list(profile.track_eps)}",
                                    "checkpoint", on_result=writers(runs, profile))
    tables = [load_complexity(r) for r in runs]
    return pd.concat([t[t.epoch.isin(wanted_epochs(r.config, profile))] for r, t in zip(runs, tables)],
                     ignore_index=True).copy()  # one block: columns added later raise no fragmentation warning


RATE_DISTORTION_FILE = "rate_distortion.csv"


def _final_job(run_dir: str, config: RunConfig, settings) -> list[dict]:
    """A job: the rate-distortion rows of a run's final checkpoint (written by the caller, `writers`)."""
    run = Run(Path(run_dir), config)
    split = make_split(config.op, config.p, config.train_frac, config.seed)
    return measure_checkpoint(run, run.checkpoints()[-1], settings, split)


def rate_distortion_table(run: Run) -> MeasuredTable:
    """The run's rate_distortion.csv, its settings in every row (grok_lib.complexity.table)."""
    return MeasuredTable(run, RATE_DISTORTION_FILE, None, as_stored, upgrade_columns, lock="rate_distortion")


def _store_final(run: Run, settings, rows: list[dict]) -> None:
    rate_distortion_table(run).store(settings, rows)


def _final_name(run: Run) -> str:
    return f"final {run.path.name}"


def _last_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of the table's last epoch: the run's final checkpoint (a run trained on since keeps its
    earlier final rows; none is dropped)."""
    return frame[frame.epoch == frame.epoch.max()] if len(frame) else frame


def _final_stored(run, profile: Profile) -> bool:
    """Whether the run's rate_distortion.csv holds every final eps at the run's last checkpoint; a table
    measured with other settings is refused (read with today's fields, so a setting added since does not
    count as a difference), never overwritten."""
    table, settings = rate_distortion_table(run), tracking_settings(profile, final=True)
    if not table.check(settings):
        return False
    rows = table.read()
    checkpoints = run.checkpoints()
    last = rows[rows.epoch == checkpoints[-1]] if checkpoints else _last_rows(rows)
    return set(settings.eps) <= set(last.eps)


def final_jobs(runs: list, profile: Profile, after: dict | None = None) -> list[Job]:
    """One job per run whose final checkpoint's rate-distortion table is missing or has other settings."""
    settings, after = tracking_settings(profile, final=True), after or {}
    return [Job(_final_name(r), _final_job, (str(r.path), r.config, settings),
                cost=r.config.n_layers * 2.5 * len(settings.eps), after=tuple(a for a in [after.get(r.path)] if a))
            for r in runs if not _final_stored(r, profile)]


def final_rate_distortion(runs: list, profile: Profile) -> pd.DataFrame:
    """Algorithm 1 and 2 on each run's final checkpoint at every eps of profile.final_eps (Fig. 4).

    Kept in the run directory as rate_distortion.csv (the tracking table holds one eps list per run, and
    the cpu profile tracks eps = 1 only); measured where the run's last checkpoint lacks an eps; a table of
    other settings is refused (move it aside to measure anew).
    """
    jobs = final_jobs(runs, profile)
    if jobs:
        Runner(profile.workers).run(jobs, f"rate-distortion of {len(jobs)} final checkpoint(s), "
                                    f"eps {list(profile.final_eps)}", "run", on_result=writers(runs, profile))
    frames = [_last_rows(rate_distortion_table(r).read()).drop(columns=INLINE).copy()
              .assign(op=r.config.op, regime=r.config.regime, seed=r.config.seed, init=r.config.init) for r in runs]
    return pd.concat(frames, ignore_index=True).copy()


def compute(profile: Profile, store: RunStore, extra: list[Job] = (), cluster: Cluster | None = None,
            ensemble: bool | None = None) -> None:
    """Everything the notebooks of `profile` measure on its grid, as one set of jobs on `cluster` (default:
    profile.workers local processes): each run's tracking and final rate-distortion start as soon as its
    training is done (plus `extra` jobs, e.g. LMN's); measured rows come back here to be written. ensemble:
    train each op's runs as one batched ensemble job (default: for the paper profile, on a GPU)."""
    configs = profile.configs()
    # the paper profile (a GPU) trains each op's runs as one batched ensemble, one job per op, while the
    # other workers measure the runs already trained
    trains, after = train_jobs(configs, store, ensemble=profile.name == "paper" if ensemble is None else ensemble)
    runs = [store.run(c) for c in configs]
    jobs = trains + track_jobs(runs, profile, after) + final_jobs(runs, profile, after) + list(extra)
    if jobs:
        total = sum(c.epochs for c in configs)

        def status() -> str:
            trained = sum(min(r.resume_epoch(), r.config.epochs) for r in runs)
            measured = sum(_measured(r, profile) for r in runs)
            return f"{trained}/{total} epochs trained, {measured} checkpoints measured"

        Runner(cluster or Cluster(workers=profile.workers)).run(
            [replace(j, units=1) for j in jobs], f"profile {profile.name}: train, track, rate-distortion", "job",
            on_result=writers(runs, profile), status=status)
