"""Reproduction profiles: how big a run of the notebooks is (ci seconds, cpu minutes, paper GPU hours).

A notebook's `parameters` cell names a profile ("ci", "cpu", "paper" or "auto"); everything concrete --
the RunConfigs of the grid, Algorithm 1's budget, which checkpoints and which eps are measured -- is
derived here, so the five notebooks agree and a test can run them all at the `ci` size.

    ci     seconds: a toy transformer (p = 11), 40 epochs, one seed; checks that every cell runs, not the
           science (it does not even memorize).
    cpu    a laptop reproduction on 2 cores: the CPU demo's modulus, train fraction, width and epochs
           (`grok_lib.cli.DEMO`: p = 59, 30 %, d_model 128, 1200 epochs; 705 for the 2-layer - and /) with
           the paper's layers, all four ops and all three regimes, one seed; Algorithm 1 (extra-trees surrogate) with
           8 probes (the
           authors' 2 + CPU_PROBES), 2 random and 6 guided points, Algorithm 2's top-down sweep
           (sweep-top) and the edge search at eps = 1 on every logged checkpoint from epoch 30; the
           figures show the edge search (deterministic; Algorithm 1's reduced budget draws its own noise).
    p113   the paper's experiment on a CPU: p = 113, the paper's fractions and layers, all four ops and three
           regimes, seed 0 to 1,550 epochs; x none and x ours with seeds 0-2 to the paper's 10^4 (Fig. 1); the
           cpu profile's searches at eps = 1 along training and all seven eps on the final checkpoint.
    paper  the full protocol (PROTOCOL.md): p = 113, 4 ops, 3 regimes, 6 seeds, 10^4 epochs, the authors'
           Algorithm 1 budget (2 + 10 + 50 points) and all seven eps along training; for a GPU.

A notebook's default profile is "auto": $GROK_PROFILE when set (the test suite sets it to "ci"), else paper
on a CUDA machine and cpu elsewhere; a profile named explicitly is used as given. GROK_RUNS moves the run store and
GROK_FIGURES the figure folder (default: figures/ inside the run
store; `python -m grok_lib.paper.reproduce` points it at the committed figures/).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..complexity.measurement import PAPER, PAPER_PROBES, BayesConfig, Measurement
from ..complexity.search import PAPER_EPS
from ..complexity.tracking import TrackingSettings
from ..errors import require
from ..store import RunStore
from ..training.config import DEMO, REGIMES, RunConfig
from ..training.ops import OPS, PAPER_OPS

PROFILES = ("ci", "cpu", "p113", "paper")
# Extra (tau, Delta) probes for the cpu profile's small Algorithm 1 budget: with only the authors' two probes
# and 10 more points, the search never beat quantization alone (Algorithm 2) on the CPU demo model, while a
# fixed 48-point (tau, Delta) grid beat it by up to a third; these six points cover the grid's winners.
CPU_PROBES = tuple((tau, delta) for tau in (0.9, 0.95, 0.98) for delta in (0.03, 0.1))
# The 2-layer ops (- and /) of the cpu profile train for fewer epochs than the 1-layer ones: at p = 59 and 30 %
# they memorize by epoch 112-417 (or never) and generalize in no regime by 1,200 (README, "Our numbers"), and
# each of their epochs costs ~4x a 1-layer one; 705 (a logged epoch) keeps a cold `make reproduce` under 30
# minutes. The p113 profile is where they generalize.
CPU_TWO_LAYER_EPOCHS = 705
# The p113 profile: the paper's modulus, fractions and layers on a CPU, trained to a logged epoch (1.3^28),
# so a longer run can continue from it exactly (grok_lib.training.train: extending a stored run).
P113_EPOCHS = 1550
# Fig. 1 at the paper's length: x none and x ours (seeds 0-2) continue from their 1,550 epochs to the paper's
# 10^4 (a longer run continues from its stored shorter twin, grok_lib.training.train.shorter_twin)
FIG1_CELLS = (("mul", "none"), ("mul", "ours"))
P113_FIG1_EPOCHS = 10_000


@dataclass(frozen=True)
class LMNSettings:
    """The LMN paper's part of a profile: its three tasks' training and measurements."""

    steps: int  # training steps per task
    lmn_samples: int  # N for LMN
    log_every: int  # linear grid of logged steps
    complexity_every: int  # linear grid of complexity checkpoints
    complexity_log_spaced: bool  # also the log-spaced logged steps >= 10
    bayes: BayesConfig  # Algorithm 1's budget
    eps: float = 0.1  # distortion bound (nats), see grok_lib.paper.lmn_reproduce
    workers: int = 1  # tasks trained and measured at once, one process (and one thread) each


LMN_SETTINGS = {
    # a few hundred steps, tiny LMN, Algorithm 1 with a token budget: checks the plumbing only
    "ci": LMNSettings(steps=200, lmn_samples=16, log_every=50, complexity_every=100, complexity_log_spaced=False,
                      bayes=BayesConfig(n_random=2, n_guided=2)),
    # the paper's training; LMN on half the samples and a 6-point extra-trees Algorithm 1
    "cpu": LMNSettings(steps=20_000, lmn_samples=128, log_every=500, complexity_every=5000,
                       complexity_log_spaced=True, bayes=BayesConfig(estimator="ET", n_random=2, n_guided=4),
                       workers=2),
    # the paper's scale and the authors' Algorithm 1 budget
    "paper": LMNSettings(steps=20_000, lmn_samples=256, log_every=500, complexity_every=2500,
                         complexity_log_spaced=True, bayes=BayesConfig()),
}


# the profiles' reduced Algorithm 1 (the paper's search with fewer points and a forest surrogate) and the top-down
# sweep for Algorithm 2; the spread of both is measured in benchmarks/RESULTS.md
CI_SEARCH = PAPER.but(budget=BayesConfig(n_random=2, n_guided=2, estimator="ET"))
REDUCED_SEARCH = PAPER.but(budget=BayesConfig(n_random=2, n_guided=6, probes=PAPER_PROBES + CPU_PROBES, estimator="ET"),
                           algorithm_2="sweep-top")


@dataclass(frozen=True)
class Profile:
    """Everything a profile fixes; the notebooks read these fields, never constants of their own."""

    name: str
    ops: tuple[str, ...]  # default grid of operations
    regimes: tuple[str, ...]  # default regimes (none / wd / ours)
    seeds: tuple[int, ...]  # default seeds; curves are mean +- standard error over these
    run_fields: dict = field(default_factory=dict)  # RunConfig fields shared by every run of the grid
    op_fields: dict = field(default_factory=dict)  # op -> RunConfig fields that override run_fields for that op
    seeds_for: dict = field(default_factory=dict)  # (op, regime) -> seeds that replace `seeds` for that cell
    cell_fields: dict = field(default_factory=dict)  # (op, regime) -> RunConfig fields over fields_for(op)
    # how every tracked checkpoint is measured: the paper's Algorithm 1 with the profile's budget, Algorithm 2's
    # method (grok_lib.complexity.measurement)
    how: Measurement = PAPER
    track_eps: tuple[float, ...] = (1.0,)  # eps measured along training (Figs 1-3, 5-7, 11 use eps = 1)
    final_eps: tuple[float, ...] = PAPER_EPS  # eps measured on the final checkpoint (Fig 4)
    min_epoch: int = 1  # first logged epoch whose checkpoint is coarse-grained
    slider_taus: tuple[float, ...] = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 1.0)  # (tau, Delta) grid cached
    slider_deltas: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3)  # for the widgets
    workers: int = 1  # processes that train / measure runs in parallel
    edge: bool = False  # whether the tables also hold the edge search's answers (edge_ columns)
    # the Algorithm 1 answer the figures show (grok_lib.paper.figures.VARIANTS): the paper's, or the edge
    # search's where the search budget is cut (a reduced Bayesian budget draws its own noise as dynamics:
    # benchmarks/RESULTS.md, "The spread of the searches"); Algorithm 1 stays in every table
    algorithm_1: str = "alg1"
    lmn: LMNSettings = LMN_SETTINGS["paper"]  # the LMN notebook's tasks (grok_lib.paper.lmn_reproduce)
    with_lmn: bool = True  # whether the batch reproduction runs the LMN notebook (06) for this profile
    # whether the batch reproduction computes a grid its store lacks (cpu: the main job), or draws from the
    # committed tables (results/<profile>/) where they exist (p113: 3 h of this machine; `compute` trains it)
    reproduce_computes: bool = True

    def configs(self, ops=None, regimes=None, seeds=None) -> list[RunConfig]:
        return profile_configs(self, ops, regimes, seeds)

    def fields_for(self, op: str, regime: str | None = None) -> dict:
        """The RunConfig fields of this profile's runs of `op` (in `regime`): run_fields, then op_fields[op],
        then cell_fields[(op, regime)] over them."""
        return {**self.run_fields, **self.op_fields.get(op, {}), **self.cell_fields.get((op, regime), {})}

    @property
    def epochs(self) -> int:
        """The longest run's epochs."""
        return max(self.fields_for(op, regime).get("epochs", RunConfig().epochs)
                   for op in self.ops for regime in self.regimes)

    def op_epochs(self, op: str) -> int:
        """The epochs every cell of `op` reaches: the length the figures that compare cells show (cells trained
        longer, cell_fields: p113's Fig. 1 runs, are shown in full in Fig. 1 only)."""
        return self.fields_for(op).get("epochs", RunConfig().epochs)

    def common_epochs(self, frame):
        """The rows of `frame` (a table with op and epoch columns) at epochs every cell of their op reaches."""
        return frame[frame.epoch <= frame.op.map(self.op_epochs)]


def _cpu_fields() -> dict:
    """The CPU demo's modulus, train fraction, width and epochs (grok_lib.cli.DEMO); op, regime and the
    number of layers (the paper's: 1 for + and x, 2 for - and /) come from the grid."""
    return {k: v for k, v in DEMO.items() if k not in ("op", "regime", "n_layers")}


def get_profile(name: str) -> Profile:
    """The named profile. "auto" is $GROK_PROFILE when set (the test suite sets it to ci), else paper on a
    CUDA machine and cpu elsewhere; any other name is taken as given."""
    require(isinstance(name, str) and (name in PROFILES or name == "auto"), "profile",
            f"unknown profile {name!r}; allowed: {', '.join(PROFILES)} or auto")
    if name == "auto":
        name = os.environ.get("GROK_PROFILE") or ("paper" if torch.cuda.is_available() else "cpu")
        require(name in PROFILES, "GROK_PROFILE", f"unknown profile {name!r}; allowed: {', '.join(PROFILES)}")
    if name == "ci":
        return Profile(
            name="ci", ops=("mul",), regimes=("none", "ours"), seeds=(0,),
            run_fields=dict(p=11, train_frac=0.5, d_model=16, n_heads=2, d_mlp=32, epochs=40),
            how=CI_SEARCH, track_eps=(1.0,),
            final_eps=(0.5, 2.0), min_epoch=20, slider_taus=(0.8, 0.95, 1.0), slider_deltas=(1e-2, 0.1),
            workers=1, algorithm_1="edge", edge=True, lmn=LMN_SETTINGS["ci"])
    if name == "cpu":
        return Profile(
            name="cpu", ops=PAPER_OPS, regimes=REGIMES, seeds=(0,), run_fields=_cpu_fields(),
            op_fields={op: {"epochs": CPU_TWO_LAYER_EPOCHS} for op in PAPER_OPS if OPS[op].n_layers == 2},
            how=REDUCED_SEARCH, track_eps=(1.0,), final_eps=(0.0625, 0.25, 1.0, 4.0), min_epoch=30, workers=2,
            algorithm_1="edge", edge=True, lmn=LMN_SETTINGS["cpu"])
    if name == "p113":
        return Profile(
            name="p113", ops=PAPER_OPS, regimes=REGIMES, seeds=(0,),
            seeds_for={cell: (0, 1, 2) for cell in FIG1_CELLS},  # Fig. 1's error bands
            cell_fields={cell: {"epochs": P113_FIG1_EPOCHS} for cell in FIG1_CELLS},  # and its length
            run_fields=dict(p=113, epochs=P113_EPOCHS),  # the paper's fractions and layers (the op's defaults)
            how=REDUCED_SEARCH, track_eps=(1.0,), final_eps=PAPER_EPS, min_epoch=30, workers=os.cpu_count() or 1,
            algorithm_1="edge", edge=True, lmn=LMN_SETTINGS["cpu"], with_lmn=False,
            reproduce_computes=False)
    return Profile(name="paper", ops=PAPER_OPS, regimes=REGIMES, seeds=tuple(range(6)),
                   run_fields=dict(epochs=10_000), track_eps=PAPER_EPS, final_eps=PAPER_EPS,
                   workers=os.cpu_count() or 1)  # training is one batched ensemble; complexity: a process per core


def profile_configs(profile: Profile | str, ops=None, regimes=None, seeds=None) -> list[RunConfig]:
    """The grid ops x regimes x seeds of `profile`; empty or None arguments take the profile's defaults (the
    seeds of a cell: profile.seeds_for[(op, regime)] where given, else profile.seeds)."""
    if isinstance(profile, str):
        profile = get_profile(profile)
    chosen = tuple(seeds) if seeds else None
    ops, regimes = (tuple(a) if a else d for a, d in ((ops, profile.ops), (regimes, profile.regimes)))
    return [RunConfig(op=op, regime=regime, seed=int(seed), **profile.fields_for(op, regime))
            for op in ops for regime in regimes
            for seed in (chosen or profile.seeds_for.get((op, regime), profile.seeds))]


def run_store() -> RunStore:
    """The run store of the notebooks: the one default store (grok_lib.store.default_root)."""
    return RunStore()


# profiles whose figures go to a subfolder named after them (figures/p113/, ...); cpu (make reproduce) uses the folder
FIGURE_SUBFOLDERS = ("ci", "p113", "paper")


def figures_dir(profile: str | None = None) -> Path:
    """Where the notebooks save figures: $GROK_FIGURES (the batch reproduction sets it to the committed
    figures/), else figures/ inside the run store, so an interactive run never overwrites figures/; the
    p113 and paper profiles' figures go to a subfolder named after the profile."""
    base = Path(os.environ.get("GROK_FIGURES", "").strip() or run_store().root / "figures")
    return base / profile if profile in FIGURE_SUBFOLDERS else base


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
    return TrackingSettings(eps=profile.final_eps if final else profile.track_eps, how=profile.how, edge=profile.edge)
