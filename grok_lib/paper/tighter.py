"""The tighter bound along training, beside the paper's: Figs. 1 and 2 redrawn with both.

    python -m grok_lib.paper.tighter --profile cpu --runs mul-none mul-ours add-ours sub-ours div-ours

For each named run of the profile (op-regime, every seed), every checkpoint its complexity.csv tracks at eps
is measured again by Algorithm 1 measured as the TIGHTEST preset says (grok_lib.complexity.measurement: the
`entropy` coder as its objective, Delta refined to the edge of the bound, then a Delta per matrix priced at
that edge, the balanced low-rank split) with the profile's budget, and the answer is written to the run's
tighter.csv (columns tight_*, as complexity.csv's answers; after each checkpoint, atomically, under the
run's lock, so an interrupted pass resumes). The paper's number stays where it was, in complexity.csv:
the figures draw the tighter bytes beside the curve the profile's own Fig. 1 draws from that table (Algorithm
1; the edge search where the profile cuts Algorithm 1's budget, as the notebooks do), into the profile's
figures folder as fig01_tighter.png and fig02_tighter.png. Not in the paper; costs: benchmarks/RESULTS.md
("A tighter bound").

    python -m grok_lib.paper.tighter --profile cpu --draw-only

draws the two figures from the tables as they are stored, measuring nothing: the run store's where every run
has a tighter.csv, else the committed ones (results/<profile>/); `make reproduce` does the same after the
notebooks, so a fresh clone redraws these figures too.
"""

from __future__ import annotations

import argparse

import matplotlib.pyplot as plt
import pandas as pd
import torch

from ..complexity.measurement import PAPER, TIGHTEST, Measurement, add_measurement_options, measurement_from
from ..complexity.measurement import preset as get_preset
from ..complexity.search import bayesian_complexity, problem_for
from ..complexity.table import MeasuredTable
from ..complexity.tracking import TrackingSettings, answer_columns, as_stored, read_complexity, \
    size_column, upgrade_columns
from ..errors import GrokError, require, run_command
from ..log import get as get_logger
from ..training.data import make_split
from ..training.ops import PAPER_OPS
from .figures import VARIANT_LABELS, save_figure, variant_column
from .panels import REGIME_COLORS, REGIME_LABELS, _band, _epoch_axis, _legend_below, _ops, _panels, _title, mean_se
from .profiles import figures_dir, get_profile, profile_configs, run_store
from .tables import committed_store

TIGHTER_FILE, TIGHTER_SETTINGS = "tighter.csv", "tighter.json"
TIGHT = "tight_"  # the column prefix of the tighter answers
OBJECTIVE = TIGHTEST.objective  # the coder whose size the figures draw
LOG = get_logger(__name__)


# Fig. 1's runs (x, unregularized and ours) and Fig. 2's (every op of the paper, ours)
FIG_RUNS = ["mul-none", "mul-ours", *(f"{op}-ours" for op in PAPER_OPS if op != "mul")]


def settings_for(profile, eps: float = 1.0, how: Measurement | None = None) -> TrackingSettings:
    """What a tighter.csv is measured with (stored beside it, read like complexity.json; a mismatch is
    refused, never mixed): `how`, by default TIGHTEST with the profile's budget."""
    return TrackingSettings(eps=(eps,), how=how or TIGHTEST.but(budget=profile.how.budget))


def describe(settings: TrackingSettings) -> str:
    """The tighter search in a few words, for the figures' legends."""
    how = settings.how
    parts = [f"{how.objective} coder"]
    if how.refine:
        parts.append("Δ refined")
    if how.reallocate:
        parts.append("a Δ per matrix")
    if how.factor_split != PAPER.factor_split:
        parts.append(f"{how.factor_split} factors")
    if how.seed != PAPER.seed:  # the title's seeds are the training's; a search seed is named here
        parts.append(f"search seed {how.seed}")
    return ", ".join(parts)


def tighter_table(run) -> MeasuredTable:
    """The run's tighter.csv beside tighter.json (grok_lib.complexity.table)."""
    return MeasuredTable(run, TIGHTER_FILE, TIGHTER_SETTINGS, as_stored, upgrade_columns)


def read_tighter(run) -> pd.DataFrame:
    return tighter_table(run).read()


def measure_tighter(run, settings: TrackingSettings, progress: bool = True) -> pd.DataFrame:
    """Measure every checkpoint of the run's complexity.csv at settings' eps not yet in tighter.csv."""
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    table, (eps,) = tighter_table(run), settings.eps
    table.check(settings)
    tracked = read_complexity(run)
    epochs = sorted(int(e) for e in tracked[tracked.eps == eps].epoch.unique())
    require(len(epochs) > 0, "runs", f"{run.path.name} has no complexity.csv rows at eps {eps:g}; "
                                     f"measure it first (python -m grok_lib compute --profile ...), or draw the stored "
                                     "tighter tables with --draw-only")
    config, how = run.config, settings.how
    split = make_split(config.op, config.p, config.train_frac, config.seed)
    todo = [e for e in epochs if e not in set(read_tighter(run).epoch)]
    for epoch in tqdm(todo, desc=f"tighter {run.path.name}", disable=not progress):
        problem = problem_for(run.load_model(epoch), F.cross_entropy, (split.train_x, split.train_y),
                              (split.test_x, split.test_y), how)
        result = bayesian_complexity(problem, eps, how.budget, how.seed, refine=how.refine, reallocate=how.reallocate)
        table.store(settings, [{"epoch": epoch, "eps": eps, **answer_columns(TIGHT, result)}])
    return read_tighter(run)


def both_tables(runs, eps: float, variant: str = "alg1") -> pd.DataFrame:
    """Per run and tracked epoch: the bytes the profile's Fig. 1 draws (complexity.csv, `variant`: the paper's
    Algorithm 1, or the edge search where the profile cuts Algorithm 1's budget) and the tighter bytes."""
    column, frames = variant_column(variant), []
    for run in runs:
        paper = read_complexity(run)
        paper = paper[paper.eps == eps][["epoch", column]]
        tight = read_tighter(run)[["epoch", size_column(TIGHT, OBJECTIVE), size_column(TIGHT, "paper")]]
        frames.append(paper.merge(tight, on="epoch").assign(op=run.config.op, regime=run.config.regime,
                                                             seed=run.config.seed, init=run.config.init))
    return pd.concat(frames, ignore_index=True)


def _pair(ax, rows: pd.DataFrame, color, label: str, tighter: str, variant: str):
    for column, style, what in ((variant_column(variant), "-", f"{VARIANT_LABELS[variant]}, paper coder (as Fig. 1)"),
                                (size_column(TIGHT, OBJECTIVE), "--", f"tighter ({tighter})")):
        _band(ax, mean_se(rows.assign(kB=rows[column] / 1e3), "kB"), "epoch", color, f"{label}: {what}", ls=style)


def figures(frame: pd.DataFrame, profile: str, eps: float, tighter: str, variant: str = "alg1") -> list:
    """Fig. 1 (×: unregularized vs ours) and Fig. 2 (every op, ours; a 2 x 2 grid) with the curve the profile's
    Fig. 1 draws (`variant`, both_tables) and the tighter bound (`tighter`: its search in a few words), drawn
    with the figures' shared parts (grok_lib.paper.panels: bands of mean +- s.e., one legend below the panels,
    a title naming the seeds)."""
    out = []
    ylabel = f"complexity (kB, ε = {eps:g})"
    mul = frame[frame.op == "mul"]
    if not mul.empty:
        fig, ax = plt.subplots(figsize=(6.4, 5.0), layout="constrained")
        for regime in ("none", "ours"):
            if not mul[mul.regime == regime].empty:
                _pair(ax, mul[mul.regime == regime], REGIME_COLORS[regime], REGIME_LABELS[regime], tighter, variant)
        _epoch_axis(ax, "mul")
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_ylim(bottom=0)
        _legend_below(fig, [ax])
        _title(fig, "Fig. 1 with the tighter bound — ×, unregularized vs ours", mul, profile)
        out.append(("fig01_tighter", fig))
    ours = frame[frame.regime == "ours"]
    if not ours.empty:
        ops = _ops(ours)
        fig, axes = _panels(len(ops))
        for ax, op in zip(axes, ops):
            _pair(ax, ours[ours.op == op], REGIME_COLORS["ours"], REGIME_LABELS["ours"], tighter, variant)
            _epoch_axis(ax, op)
            ax.set_ylabel(ylabel, fontsize=8)
            ax.set_ylim(bottom=0)
        _legend_below(fig, axes)
        _title(fig, "Fig. 2 with the tighter bound — every op, ours", ours, profile)
        out.append(("fig02_tighter", fig))
    return out


def stored_runs(profile, configs) -> list | None:
    """The runs whose tables the figures can be drawn from without measuring: the run store's where every one
    has a tighter.csv, else the committed tables' (results/<profile>/, tables.committed_store); None where
    neither holds them all."""
    if not configs:
        return None
    store = run_store()
    for source in (store, committed_store(profile, store)):
        if source is not None:
            runs = [source.run(c) for c in configs]
            if all(tighter_table(r).path.is_file() for r in runs):
                return runs
    return None


def draw(runs, profile: str) -> list:
    """Fig. 1 and Fig. 2 with the tighter bound beside the curve the profile's Fig. 1 draws, from the runs' tables
    as stored (their tighter.json says how they were measured, one way for all), into the profile's figures
    folder; the paths written."""
    stored = {TrackingSettings.from_json((r.path / TIGHTER_SETTINGS).read_text()) for r in runs}
    require(len(stored) == 1, "runs", f"the runs' {TIGHTER_SETTINGS} differ ({len(stored)} settings); measure "
                                      "them again with one --preset")
    (settings,) = stored
    written, eps, variant = [], settings.eps[0], get_profile(profile).algorithm_1
    for name, fig in figures(both_tables(runs, eps, variant), profile, eps, describe(settings), variant):
        written.append(save_figure(fig, name, figures_dir(profile)))
        plt.close(fig)
    return written


def draw_stored(profile_name: str) -> list:
    """The reproduction's step: Figs. 1 and 2 with the tighter bound where the tables of their runs are stored
    (`stored_runs`), else nothing (logged)."""
    profile = get_profile(profile_name)
    runs = stored_runs(profile, [c for c in profile_configs(profile) if f"{c.op}-{c.regime}" in FIG_RUNS])
    if runs is None:
        LOG.info(f"[{profile.name}] no tighter.csv for Fig. 1's and Fig. 2's runs: fig01_tighter and "
                 f"fig02_tighter are not drawn (python -m grok_lib.paper.tighter --profile {profile.name})")
        return []
    try:
        return draw(runs, profile.name)
    except GrokError as err:  # the store's own tables, measured two ways: the notebooks' figures stand
        LOG.warning(f"[{profile.name}] fig01_tighter and fig02_tighter not drawn: {err}")
        return []


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grok_lib.paper.tighter", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--runs", nargs="+", default=FIG_RUNS,
                        help="op-regime names, every seed of each (default: Fig. 1's and Fig. 2's runs)")
    parser.add_argument("--eps", type=float, default=1.0)
    add_measurement_options(parser.add_argument_group("how to measure (the profile's budget unless changed)"),
                            default="tightest")
    parser.add_argument("--draw-only", action="store_true",
                        help="measure nothing: draw from the stored tighter.csv of every run (the run store's, "
                             "else results/<profile>/)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    def go():
        torch.set_num_threads(1)
        profile = get_profile(args.profile)
        wanted = {tuple(name.split("-", 1)) for name in args.runs}
        configs = [c for c in profile_configs(profile) if (c.op, c.regime) in wanted]
        require(len(configs) > 0, "runs", f"none of {args.runs} is a run of profile {args.profile} (op-regime)")
        if args.draw_only:
            runs = stored_runs(profile, configs)
            require(runs is not None, "draw-only", f"neither the run store ({run_store().root}) nor "
                    f"results/{profile.name}/ holds a tighter.csv for every one of {args.runs}; measure them "
                    "(the same command without --draw-only)")
        else:
            runs = [run_store().run(c) for c in configs]
            settings = settings_for(profile, args.eps, measurement_from(args, get_preset(args.preset).but(
                budget=profile.how.budget)))
            for run in runs:
                measure_tighter(run, settings, progress=not args.quiet)
        for path in draw(runs, args.profile):
            print(path)
        return 0

    return run_command(go)


if __name__ == "__main__":
    raise SystemExit(main())
