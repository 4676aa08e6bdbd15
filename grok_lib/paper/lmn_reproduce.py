"""The LMN reproduction pipeline: train the three tasks, measure Algorithm 1 complexity on the same
checkpoints, compute the paper's statistics, and draw the figures.

    .venv/bin/python -m grok_lib lmn OUT_DIR --profile ci|cpu|paper

Data flow: LMNRunConfig -> run store (OUT_DIR/runs: metrics.csv, checkpoints) -> complexity.csv per run
-> OUT_DIR/lmn_summary.csv and figures. Every stage reuses what is already stored.

Complexity (DeMoss et al., Algorithm 1 via grok_lib.complexity.search.measure_complexity) is measured on the
full training set at distortion eps = 0.1 nats, not the transformer paper's eps = 1: for these 24- to
32-class MLPs eps = 1 lets the coarse-grained network's training accuracy fall so far that it no longer
describes the trained function (benchmarks/RESULTS.md). Algorithm 1 runs on a subset of the logged steps
(`complexity_steps`), coarse to fine.

Profiles (grok_lib.paper.profiles.LMN_SETTINGS): "paper" is the paper's full scale (LMN on N = 256 samples,
the authors' Algorithm 1 budget); "cpu" keeps the paper's training (20,000 full-batch steps, all three
tasks) but measures LMN on N = 128 samples and Algorithm 1 with a 6-point extra-trees search on fewer
checkpoints; "ci" checks the plumbing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
import torch.nn.functional as F

from ..errors import GrokError, require
from ..log import get as get_logger
from ..lmn.measure import LMNConfig
from ..lmn.analysis import grokking_phase, late_turning_points, phase_correlations, segment_breakpoints
from ..lmn.tasks import TASKS, LMNRunConfig, make_task_split, train_lmn_run
from .lmn_figures import ANSWER, COMPLEXITY, draw_all
from .profiles import FIGURE_SUBFOLDERS, PROFILES, LMNSettings, figures_dir, get_profile, run_store
from ..complexity.search import BayesConfig, measure_complexity
from ..complexity.tracking import answer_columns, upgrade_columns
from ..jobs.runner import Job, Runner
from ..store import Run
from ..files import write_text_atomic
from ..training.train import log_schedule

LOG = get_logger(__name__)


def settings(profile: str) -> LMNSettings:
    """The LMN part of the named profile (grok_lib.paper.profiles)."""
    return get_profile(profile).lmn


def run_configs(profile: LMNSettings, seed: int = 0) -> list[LMNRunConfig]:
    return [LMNRunConfig(task=task, seed=seed, steps=profile.steps, lmn_samples=profile.lmn_samples,
                         log_every=profile.log_every) for task in TASKS]


def stored_runs(out_dir: str | Path, profile: str = "cpu", seed: int = 0) -> list[Run]:
    """The finished runs of a profile under OUT_DIR/runs, for notebooks: reads, never trains."""
    require(profile in PROFILES, "profile", f"unknown profile {profile!r}; allowed: {', '.join(PROFILES)}")
    runs = []
    for config in run_configs(settings(profile), seed):
        run = Run(Path(out_dir) / "runs" / config.key(), config)
        if not run.is_complete:
            raise GrokError("out_dir", f"{run.path} is missing or unfinished; run "
                            f"`python -m grok_lib lmn {out_dir} --profile {profile}` first")
        runs.append(run)
    return runs


def complexity_steps(config: LMNRunConfig, every: int, log_spaced: bool = True) -> list[int]:
    """Checkpoints measured with Algorithm 1: multiples of `every`, the last step, and (if `log_spaced`)
    the log-spaced steps >= 10 (earlier ones barely differ from the initialization)."""
    logged = set(config.logged_steps())
    chosen = set(range(every, config.steps + 1, every))
    if log_spaced:
        chosen |= {s for s in log_schedule(config.steps) if s >= 10}
    return sorted((chosen | {config.steps}) & logged)


# complexity.csv of an LMN run: step, eps, the columns of grok_lib.complexity.tracking.answer_columns for the
# answer lmn_figures.ANSWER (the pooled one), seconds. The names it used before, and their names now:
LMN_LEGACY_COLUMNS = {old: ANSWER + new for old, new in dict(
    paper_bytes="paper_bytes", symbols_bytes="symbols_bytes", tau="tau", delta="delta", cg_train_loss="train_loss",
    cg_train_acc="train_acc", cg_test_acc="test_acc", n_evaluations="n_evaluations").items()}


def checkpoint_complexity(run: Run, step: int, eps: float, bayes: BayesConfig) -> dict:
    """Algorithm 1 complexity of the checkpoint at `step` on its full training set: one table row.

    The single place the LMN pipeline calls grok_lib.complexity.search; swap the measure here. Pooled with
    Algorithm 2 (never above it), hence the pooled_ columns: the LMN paper defines no complexity of this
    kind, and a measure that cannot lose to quantization alone is the steadier one to correlate with test loss.
    """
    split = make_task_split(run.config)
    result = measure_complexity(run.load_model(step), F.cross_entropy, (split.train_x, split.train_y), eps=eps,
                                test_data=(split.test_x, split.test_y), budget=bayes, seed=run.config.seed,
                                pooled=True)
    return dict(step=step, eps=eps, **answer_columns(ANSWER, result))


def complexity_path(run: Run) -> Path:
    return run.path / "complexity.csv"


def load_complexity(run: Run) -> pd.DataFrame:
    path = complexity_path(run)
    if not path.exists():
        return pd.DataFrame({"step": pd.Series(dtype=int)})
    return upgrade_columns(pd.read_csv(path), LMN_LEGACY_COLUMNS)


def coarse_to_fine(steps: list[int]) -> list[int]:
    """`steps` reordered so that every prefix spreads over the whole range: every 8th, then the 4ths, ..."""
    order, seen, stride = [], set(), 1
    while stride < len(steps):
        stride *= 2
    while stride >= 1:
        for k in range(0, len(steps), stride):
            if k not in seen:
                seen.add(k)
                order.append(steps[k])
        stride //= 2
    return order


def add_complexity(run: Run, steps: list[int], eps: float, bayes: BayesConfig, progress: bool = False) -> pd.DataFrame:
    """Measure the listed checkpoints not yet in complexity.csv (same eps), writing after each one.

    Checkpoints are measured coarse-to-fine, so an interrupted pass still covers the whole run.
    """
    table = load_complexity(run)
    if len(table) and not (table.eps == eps).all():
        raise GrokError("eps", f"{complexity_path(run)} holds eps {sorted(set(table.eps))}; delete it to use {eps}")
    rows = table.to_dict("records")
    done = set(table.step)
    for step in coarse_to_fine(sorted(steps)):
        if step in done:
            continue
        start = time.perf_counter()
        rows.append(dict(checkpoint_complexity(run, step, eps, bayes), seconds=time.perf_counter() - start))
        rows.sort(key=lambda r: r["step"])
        write_text_atomic(complexity_path(run), pd.DataFrame(rows).to_csv(index=False))
        if progress:
            row = next(r for r in rows if r["step"] == step)
            LOG.info(f"{run.config.task} step {step}: {row[COMPLEXITY]} B")
    return pd.DataFrame(rows)


def summarize(runs: list[Run]) -> pd.DataFrame:
    """Per task and measure: Pearson r / Spearman rho with test loss over the grokking phase.

    LMN and L2 use every logged step; complexity (COMPLEXITY, the paper coder's bytes) only its checkpoints.
    The phase comes from every logged step in all three cases.
    """
    frames = []
    for run in runs:
        m = run.metrics()
        phase = grokking_phase(m)
        columns = ["lmn", "l2_norm"]
        c = load_complexity(run)
        if len(c):
            m = m.merge(c[["step", COMPLEXITY]], on="step", how="left")
            columns.append(COMPLEXITY)
        frames.append(phase_correlations(m, columns, phase=phase).assign(task=run.config.task, seed=run.config.seed))
    return pd.concat(frames, ignore_index=True)


def turning_table(runs: list[Run]) -> pd.DataFrame:
    """Per task, LMN's trajectory after generalization: piecewise-linear segments and local extrema."""
    frames = []
    for run in runs:
        m = run.metrics()
        after = grokking_phase(m).generalized or 0
        every = run.config.log_every
        if ((m.step % every == 0) & (m.step > after)).sum() >= 6:
            frames.append(segment_breakpoints(m, "lmn", every, after).assign(kind="segment", task=run.config.task))
        extrema = late_turning_points(m, every)
        frames.append(pd.DataFrame(dict(start=extrema.step, end=extrema.step, value=extrema.value,
                                        kind="local " + extrema.kind.astype(str), task=run.config.task)))
    return pd.concat(frames, ignore_index=True)


def make_figures(runs: list[Run], figures_dir: Path, profile: str | None = None) -> list[Path]:
    """The LMN figures (grok_lib.paper.lmn_figures.draw_all) of `runs`, saved in `figures_dir`."""
    return draw_all(runs, figures_dir, {r.config.task: load_complexity(r) for r in runs}, profile)


def _train_and_measure(config: LMNRunConfig, root: Path, p: LMNSettings, with_complexity: bool,
                       progress: bool = False) -> Run:
    """One task of `reproduce_lmn`: train (or reuse) the run, then measure its complexity checkpoints."""
    run = train_lmn_run(config, root, lmn_config=LMNConfig(), progress=progress)
    if with_complexity:
        add_complexity(run, complexity_steps(config, p.complexity_every, p.complexity_log_spaced), p.eps, p.bayes,
                       progress)
    return run


def lmn_jobs(out_dir: str | Path, profile: str, seed: int = 0, with_complexity: bool = True) -> list[Job]:
    """One job per task of the LMN reproduction (grok_lib.jobs runs them)."""
    p = settings(profile)
    return [Job(f"lmn {c.key()}", _train_and_measure, (c, Path(out_dir) / "runs", p, with_complexity),
                cost=c.steps / 20.0) for c in run_configs(p, seed)]


def notebook_out_dir(profile: str) -> Path:
    """Where notebook 06 keeps the LMN runs of `profile`: lmn/<profile> in the notebooks' run store
    ($GROK_RUNS, else runs/), one folder per profile so that cpu and paper measurements never mix."""
    require(profile in PROFILES, "profile", f"unknown profile {profile!r}; allowed: {', '.join(PROFILES)}")
    return run_store().root / "lmn" / profile


def lmn_figures_env(profile: str) -> dict[str, str]:
    """The environment notebook 06 runs with in the batch reproduction of `profile` (grok_lib.paper.reproduce):
    {} or GROK_FIGURES moved. The committed figures/lmn_* are the paper profile's (`python -m grok_lib lmn ...
    --profile paper`); a profile whose figures have no subfolder of their own (ci, cpu: profiles.FIGURE_SUBFOLDERS)
    would draw over them, so its notebook 06 writes <figures>/<profile>/lmn_*, as p113 and paper do anyway."""
    return {} if profile in FIGURE_SUBFOLDERS else {"GROK_FIGURES": str(figures_dir(None) / profile)}


def lmn_figures_folder(profile: str) -> Path:
    """Where notebook 06 writes its figures in the batch reproduction of `profile` (lmn_figures_env)."""
    return Path(lmn_figures_env(profile).get("GROK_FIGURES") or figures_dir(profile))


def lmn_kernel_manager(profile: str):
    """The kernel manager class (nbclient's kernel_manager_class) that starts notebook 06's kernel with
    lmn_figures_env(profile) over this process's environment, leaving os.environ (other kernels') alone;
    quiet, as every notebook's kernel of the batch reproduction (kernel_manager)."""
    return kernel_manager(lmn_figures_env(profile))


def kernel_manager(env: dict | None = None):
    """A kernel manager class whose kernels log errors only (not ipykernel's warning, at every start, that a
    local kernel talks over TCP without encryption) and start with `env` over this process's environment."""
    from jupyter_client import AsyncKernelManager

    class QuietKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw):
            kw["extra_arguments"] = [*kw.get("extra_arguments", []), "--IPKernelApp.log_level=ERROR"]
            if env:
                kw["env"] = {**kw.get("env", os.environ), **env}
            return await super().start_kernel(**kw)

    return QuietKernelManager


def reproduce_lmn(out_dir: str | Path, profile: str = "ci", figures_dir: str | Path | None = None, seed: int = 0,
                  with_complexity: bool = True, progress: bool = False, with_figures: bool = True) -> pd.DataFrame:
    """Train the three tasks, measure complexity, write OUT_DIR/lmn_summary.csv and the figures.

    profile: "ci" (plumbing only), "cpu" (the paper's training, cheaper measurements) or "paper" (the paper's
    full scale). Figures go to `figures_dir` (default OUT_DIR/figures); with_figures=False skips them
    (notebook 06 draws them one section at a time with `lmn_figures.draw_and_save`). Returns the summary.
    """
    p = settings(profile)
    out_dir = Path(out_dir)
    jobs = lmn_jobs(out_dir, profile, seed, with_complexity)
    done = Runner(p.workers).run(jobs, f"LMN {profile}: train and measure {len(jobs)} tasks", "task")
    runs = [done[job.name] for job in jobs]
    summary = summarize(runs)
    write_text_atomic(out_dir / "lmn_summary.csv", summary.to_csv(index=False))
    write_text_atomic(out_dir / "lmn_turning_points.csv", turning_table(runs).to_csv(index=False))
    if with_figures:
        make_figures(runs, Path(figures_dir) if figures_dir is not None else out_dir / "figures", profile)
    return summary
