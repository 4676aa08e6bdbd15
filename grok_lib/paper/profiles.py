"""Reproduction profiles: how big a run of the notebooks is (ci seconds, cpu minutes, paper GPU hours).

A notebook's `parameters` cell names a profile ("ci", "cpu", "paper" or "auto"); everything concrete --
the RunConfigs of the grid, Algorithm 1's budget, which checkpoints and which eps are measured -- is
derived here, so the five notebooks agree and a test can run them all at the `ci` size.

    ci     seconds: a toy transformer (p = 11), 40 epochs, one seed; checks that every cell runs, not the
           science (it does not even memorize).
    cpu    a laptop reproduction on 2 cores: the CPU demo's modulus, train fraction, width and epochs
           (`grok_lib.cli.DEMO`: p = 59, 30 %, d_model 128, 1200 epochs) with the paper's layers, all four
           ops and all three regimes, one seed; Algorithm 1 (extra-trees surrogate) with 8 probes (the
           authors' 2 + CPU_PROBES), 2 random and 6 guided points and Algorithm 2's edges-only sweep at
           eps = 1 on every logged checkpoint from epoch 30.
    paper  the full protocol (PROTOCOL.md): p = 113, 4 ops, 3 regimes, 6 seeds, 10^4 epochs, the authors'
           Algorithm 1 budget (2 + 10 + 50 points) and all seven eps along training; for a GPU.

The environment variable GROK_PROFILE overrides the notebook's parameter (the test suite sets it to
"ci"); GROK_RUNS moves the run store and GROK_FIGURES the figure folder (default: figures/ inside the run
store; `python -m grok_lib.paper.reproduce` points it at the committed figures/).
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from ..training.config import DEMO, REGIMES, RunConfig
from ..training.data import make_split
from ..training.ensemble import SHARED_FIELDS, train_ensemble
from ..errors import require
from ..complexity.search import PAPER_EPS, PAPER_PROBES, BayesConfig
from ..store import Run, RunStore, write_text_atomic
from ..complexity.tracking import TrackingSettings, load_complexity, measure_checkpoint, read_complexity, track_complexity
from ..training.train import train

PROFILES = ("ci", "cpu", "paper")
# Extra (tau, Delta) probes for the cpu profile's small Algorithm 1 budget: with only the authors' two probes
# and 10 more points, the search never beat quantization alone (Algorithm 2) on the CPU demo model, while a
# fixed 48-point (tau, Delta) grid beat it by up to a third; these six points cover the grid's winners.
CPU_PROBES = tuple((tau, delta) for tau in (0.9, 0.95, 0.98) for delta in (0.03, 0.1))
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Profile:
    """Everything a profile fixes; the notebooks read these fields, never constants of their own."""

    name: str
    ops: tuple[str, ...]  # default grid of operations
    regimes: tuple[str, ...]  # default regimes (none / wd / ours)
    seeds: tuple[int, ...]  # default seeds; curves are mean +- standard error over these
    run_fields: dict = field(default_factory=dict)  # RunConfig fields shared by every run of the grid
    bayes: BayesConfig = BayesConfig()  # Algorithm 1's budget at every tracked checkpoint
    track_eps: tuple[float, ...] = (1.0,)  # eps measured along training (Figs 1-3, 5-7, 11 use eps = 1)
    final_eps: tuple[float, ...] = PAPER_EPS  # eps measured on the final checkpoint (Fig 4)
    min_epoch: int = 1  # first logged epoch whose checkpoint is coarse-grained
    slider_taus: tuple[float, ...] = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 1.0)  # (tau, Delta) grid cached
    slider_deltas: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3)  # for the widgets
    workers: int = 1  # processes that train / measure runs in parallel
    algorithm_2: str = "sweep"  # Algorithm 2's method (grok_lib.complexity.search.ALGORITHM_2_METHODS)
    # the Algorithm 1 answer the figures show (grok_lib.paper.figures.VARIANTS): the paper's, or pooled with
    # Algorithm 2's sweep where the search budget is cut (the small budgets lose to the sweep)
    algorithm_1: str = "paper"

    def configs(self, ops=None, regimes=None, seeds=None) -> list[RunConfig]:
        return profile_configs(self, ops, regimes, seeds)

    @property
    def epochs(self) -> int:
        return self.run_fields.get("epochs", RunConfig().epochs)


def _cpu_fields() -> dict:
    """The CPU demo's modulus, train fraction, width and epochs (grok_lib.cli.DEMO); op, regime and the
    number of layers (the paper's: 1 for + and x, 2 for - and /) come from the grid."""
    return {k: v for k, v in DEMO.items() if k not in ("op", "regime", "n_layers")}


def get_profile(name: str) -> Profile:
    """The named profile ("auto": paper on a CUDA machine, else cpu); $GROK_PROFILE wins over `name`."""
    name = os.environ.get("GROK_PROFILE") or name
    if name == "auto":
        name = "paper" if torch.cuda.is_available() else "cpu"
    require(name in PROFILES, "profile", f"unknown profile {name!r}; allowed: {', '.join(PROFILES)} or auto")
    if name == "ci":
        return Profile(
            name="ci", ops=("mul",), regimes=("none", "ours"), seeds=(0,),
            run_fields=dict(p=11, train_frac=0.5, d_model=16, n_heads=2, d_mlp=32, epochs=40),
            bayes=BayesConfig(n_random=2, n_guided=2, estimator="ET"), track_eps=(1.0,),
            final_eps=(0.5, 2.0), min_epoch=20, slider_taus=(0.8, 0.95, 1.0), slider_deltas=(1e-2, 0.1),
            workers=1, algorithm_1="pooled")
    if name == "cpu":
        return Profile(
            name="cpu", ops=("add", "sub", "mul", "div"), regimes=REGIMES, seeds=(0,), run_fields=_cpu_fields(),
            bayes=BayesConfig(n_random=2, n_guided=6, probes=PAPER_PROBES + CPU_PROBES, estimator="ET"),
            track_eps=(1.0,), final_eps=(0.0625, 0.25, 1.0, 4.0), min_epoch=30, workers=2,
            algorithm_2="sweep-edges", algorithm_1="pooled")
    return Profile(name="paper", ops=("add", "sub", "mul", "div"), regimes=REGIMES, seeds=tuple(range(6)),
                   run_fields=dict(epochs=10_000), track_eps=PAPER_EPS, final_eps=PAPER_EPS,
                   workers=os.cpu_count() or 1)  # training is one batched ensemble; complexity: a process per core


def profile_configs(profile: Profile | str, ops=None, regimes=None, seeds=None) -> list[RunConfig]:
    """The grid ops x regimes x seeds of `profile`; empty or None arguments take the profile's defaults."""
    if isinstance(profile, str):
        profile = get_profile(profile)
    ops, regimes, seeds = (tuple(a) if a else d for a, d in
                           ((ops, profile.ops), (regimes, profile.regimes), (seeds, profile.seeds)))
    return [RunConfig(op=op, regime=regime, seed=int(seed), **profile.run_fields)
            for op in ops for regime in regimes for seed in seeds]


def run_store() -> RunStore:
    """The run store of the notebooks: $GROK_RUNS, else runs/ at the repository root (any working dir)."""
    return RunStore(Path(os.environ.get("GROK_RUNS") or REPO_ROOT / "runs"))


def figures_dir() -> Path:
    """Where the notebooks save figures: $GROK_FIGURES (the batch reproduction sets it to the committed
    figures/), else figures/ inside the run store, so an interactive run never overwrites figures/."""
    return Path(os.environ.get("GROK_FIGURES") or run_store().root / "figures")


def theory_config(profile: Profile) -> RunConfig:
    """The small run the theory notebook coarse-grains by hand: the ci grid's first regularized run in the
    ci profile, otherwise an unregularized p = 23 transformer that memorizes its 264 training examples by
    epoch ~40 (lr 3e-3) and trains in under half a minute on one CPU core."""
    if profile.name == "ci":
        return profile.configs(regimes=("ours",))[0]
    return RunConfig(op="add", regime="none", p=23, train_frac=0.5, d_model=64, n_heads=4, d_mlp=256, epochs=120,
                     lr=3e-3)


def tracking_settings(profile: Profile, final: bool = False):
    """The TrackingSettings of a profile: eps along training, or (final=True) the final checkpoint's eps."""
    return TrackingSettings(eps=profile.final_eps if final else profile.track_eps, bayes=profile.bayes,
                            algorithm_2=profile.algorithm_2)


def tracked_epochs(run, profile: Profile) -> list[int]:
    """The logged checkpoints whose complexity is measured: every one from `profile.min_epoch` on."""
    return [e for e in run.checkpoint_epochs() if e >= profile.min_epoch]


# --- running many runs at once -------------------------------------------------------------------------
def _in_pool(task, jobs: list[tuple], workers: int, progress, total: int, desc: str, unit: str) -> None:
    """Run task(*job) for every job, `workers` processes at a time (one thread each), or in this process.

    One progress bar for all jobs, refreshed every 2 s from progress() (read from the run store), so a
    notebook gets a few lines of output, not one per epoch.
    """
    with tqdm(total=total, desc=desc, unit=unit, mininterval=2.0) as bar:
        if workers <= 1:
            for job in jobs:
                task(*job)
                bar.n = progress()
                bar.refresh()
            return
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(task, *job) for job in jobs]
            while True:
                _, pending = wait(futures, timeout=2.0)
                bar.n = progress()
                bar.refresh()
                if not pending:
                    break
            for future in futures:
                future.result()  # re-raise a worker's error here


def _single_thread():
    torch.set_num_threads(1)


def _train_job(config: RunConfig, root: str) -> None:
    _single_thread()
    train(config, RunStore(root), progress=False)


def train_missing(configs: list[RunConfig], store: RunStore, workers: int = 1, ensemble: bool = False) -> list:
    """Train every config not finished in `store` (finished runs are reused, interrupted ones resumed).

    workers > 1 trains that many runs at once in separate processes; ensemble=True instead trains the runs
    of each op together in one batched step (grok_lib.training.ensemble, the fast path on a GPU).
    """
    runs = [store.run(c) for c in configs]
    todo = [r for r in runs if not r.is_complete]
    if not todo:
        return runs
    if ensemble:
        groups: dict[tuple, list[RunConfig]] = {}
        for run in todo:
            groups.setdefault(tuple(getattr(run.config, f) for f in SHARED_FIELDS), []).append(run.config)
        for group in groups.values():
            train_ensemble(group, store)
        return runs
    # longest first (layers x the spectral penalty's extra cost x epochs), so that no worker is left with a
    # slow run alone at the end
    todo.sort(key=lambda r: -r.config.n_layers * (2.5 if r.config.beta else 1.0) * r.config.epochs)
    _in_pool(_train_job, [(r.config, str(store.root)) for r in todo], workers,
             lambda: sum(r.resume_epoch() for r in todo), sum(r.config.epochs for r in todo),
             f"training {len(todo)} run(s)", "epoch")
    return runs


def _track_job(run_dir: str, config: RunConfig, settings, epochs: list[int]) -> None:
    _single_thread()
    track_complexity(Run(Path(run_dir), config), settings, progress=False, epochs=epochs)


def track_missing(runs: list, profile: Profile) -> pd.DataFrame:
    """Algorithm 1 and 2 at profile.track_eps on every tracked checkpoint not yet in a run's complexity.csv.

    Returns the tables of all runs (grok_lib.complexity.tracking.load_complexity: joined with metrics, plus op,
    regime, seed), one row per (run, epoch, eps).
    """
    settings = tracking_settings(profile)
    wanted = {r.path: tracked_epochs(r, profile) for r in runs}

    def measured(run) -> int:
        table = read_complexity(run)
        return len(set(table.epoch) & set(wanted[run.path])) if len(table) else 0

    todo = [r for r in runs if measured(r) < len(wanted[r.path])]
    if todo:
        _in_pool(_track_job, [(str(r.path), r.config, settings, wanted[r.path]) for r in todo], profile.workers,
                 lambda: sum(measured(r) for r in todo), sum(len(wanted[r.path]) for r in todo),
                 f"complexity of {len(todo)} run(s), eps {list(settings.eps)}", "checkpoint")
    tables = [load_complexity(r) for r in runs]
    return pd.concat([t[t.epoch.isin(wanted[r.path])] for r, t in zip(runs, tables)], ignore_index=True)


RATE_DISTORTION_FILE = "rate_distortion.csv"


def _final_job(run_dir: str, config: RunConfig, settings) -> None:
    _single_thread()
    run = Run(Path(run_dir), config)
    split = make_split(config.op, config.p, config.train_frac, config.seed)
    rows = measure_checkpoint(run, run.checkpoint_epochs()[-1], settings, split)
    table = pd.DataFrame(rows).assign(settings=settings.to_json().replace("\n", ""))
    write_text_atomic(run.path / RATE_DISTORTION_FILE, table.to_csv(index=False))


def final_rate_distortion(runs: list, profile: Profile) -> pd.DataFrame:
    """Algorithm 1 and 2 on each run's final checkpoint at every eps of profile.final_eps (Fig. 4).

    Kept in the run directory as rate_distortion.csv (the tracking table holds one eps list per run, and
    the cpu profile tracks eps = 1 only); remeasured only when the settings differ from the stored ones.
    """
    settings = tracking_settings(profile, final=True)
    stamp = settings.to_json().replace("\n", "")

    def stored(run) -> bool:
        path = run.path / RATE_DISTORTION_FILE
        return path.exists() and pd.read_csv(path)["settings"].iloc[0] == stamp

    todo = [r for r in runs if not stored(r)]
    if todo:
        _in_pool(_final_job, [(str(r.path), r.config, settings) for r in todo], profile.workers,
                 lambda: sum(stored(r) for r in todo), len(todo),
                 f"rate-distortion of {len(todo)} final checkpoint(s), eps {list(settings.eps)}", "run")
    frames = [pd.read_csv(r.path / RATE_DISTORTION_FILE).drop(columns="settings")
              .assign(op=r.config.op, regime=r.config.regime, seed=r.config.seed, init=r.config.init) for r in runs]
    return pd.concat(frames, ignore_index=True)
