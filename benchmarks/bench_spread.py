"""The spread of the searches: how much a complexity number depends on the search that measured it.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_spread.py --store runs --profile cpu --out spread_cpu.csv

On `--per-run` checkpoints of each run (log-spaced over its tracked epochs, memorization to the end of
training), at eps = 1, every search on a fresh ComplexityProblem (the paper's coder as the objective, one
global Delta, the full training set, one torch thread):

    paper   Algorithm 1 at the paper's budget (2 probes + 10 random + 50 guided, GP), `--seeds` search seeds
    budget  Algorithm 1 at the profile's reduced budget (cpu and p113: 8 probes + 2 random + 6 guided, ET)
    edge    the edge search (grok_lib.complexity.edge), run twice to show it gives the same answer
    alg2    Algorithm 2, the profile's method (sweep-top for cpu and p113)
    dense   (--dense) a grid of DENSE_TAUS x DENSE_DELTAS, every feasible point compressed: a reference

Printed per checkpoint: every search's bytes and seconds; then per search the median and worst max/min
ratio of its answers across seeds, the median and worst ratio of its answers to the smallest answer any
search found on the checkpoint, and edge's seconds as a ratio to the paper search's (median of the
per-checkpoint ratios, measured side by side in this one run). `--out` keeps every answer as a CSV.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from grok_lib.complexity.edge import edge_complexity
from grok_lib.complexity.problem import ComplexityProblem
from grok_lib.complexity.quantization import quantization_complexity
from grok_lib.complexity.search import BayesConfig, bayesian_complexity
from grok_lib.paper.pipeline import wanted_epochs
from grok_lib.paper.profiles import get_profile
from grok_lib.store import RunStore
from grok_lib.training.data import make_split

EPS = 1.0
DENSE_TAUS = (None,) + tuple(round(0.3 + 0.05 * i, 2) for i in range(15))  # None, 0.3 ... 1.0
DENSE_DELTAS = tuple(10 ** (-3 + 3 * i / 19) for i in range(20))  # 1e-3 ... 1, log-spaced


def pick_epochs(epochs: list[int], n: int) -> list[int]:
    """n of the epochs, evenly spaced in log(epoch), first and last included."""
    if len(epochs) <= n:
        return list(epochs)
    logs = [math.log(e) for e in epochs]
    picks = []
    for i in range(n):
        target = logs[0] + (logs[-1] - logs[0]) * i / (n - 1)
        picks.append(min(epochs, key=lambda e: (abs(math.log(e) - target), e)))
    return sorted(set(picks))


def dense_grid(problem: ComplexityProblem):
    evaluations = problem.evaluate_many([(t, d) for t in DENSE_TAUS for d in DENSE_DELTAS], EPS)
    keys = set()
    for evaluation in evaluations:
        if problem.feasible(evaluation, EPS):
            problem.size(evaluation)
            keys.add(evaluation.key)
    best = problem.smallest_feasible(EPS, keys=keys)
    return problem.result(best, EPS, 1, len(evaluations))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, required=True, help="the run store holding the profile's runs")
    parser.add_argument("--profile", default="cpu", help="cpu or p113 (whose runs and reduced budget)")
    parser.add_argument("--runs", nargs="+", help="run names (default: every run of the profile)")
    parser.add_argument("--per-run", type=int, default=5, help="checkpoints per run (default 5)")
    parser.add_argument("--epochs", nargs="+", type=int, help="these epochs of every run instead of --per-run")
    parser.add_argument("--seeds", type=int, default=5, help="search seeds of each Bayesian search (default 5)")
    parser.add_argument("--dense", action="store_true", help="also the dense tau x Delta grid")
    parser.add_argument("--searches", nargs="+", default=["paper", "budget", "edge", "alg2"])
    parser.add_argument("--out", type=Path, help="CSV of every answer")
    args = parser.parse_args()
    torch.set_num_threads(1)
    profile = get_profile(args.profile)
    store = RunStore(args.store)
    runs = [store.run(c) for c in profile.configs()]
    if args.runs:
        runs = [r for r in runs if r.path.name in args.runs]
    searches = list(args.searches) + (["dense"] if args.dense else [])
    seeds = range(args.seeds)
    rows = []

    def measure(label: str, seed, fn, problem_of):
        problem = problem_of()
        start = time.perf_counter()
        result = fn(problem)
        seconds = time.perf_counter() - start
        rows.append(dict(run=name, epoch=epoch, search=label, seed=seed, paper_bytes=result.paper_bytes,
                         tau=result.tau, delta=result.delta, n_evaluations=result.n_evaluations, seconds=seconds))
        return result.paper_bytes, seconds

    for run in runs:
        name, config = run.path.name, run.config
        epochs = [e for e in wanted_epochs(config, profile) if e in set(run.checkpoints())]
        split = make_split(config.op, config.p, config.train_frac, config.seed)
        for epoch in (args.epochs if args.epochs else pick_epochs(epochs, args.per_run)):
            model = run.load_model(epoch)

            def problem_of():
                return ComplexityProblem(model, F.cross_entropy, (split.train_x, split.train_y))

            line = []
            for search in searches:
                if search == "paper":
                    answers = [measure("paper", s, lambda p, s=s: bayesian_complexity(p, EPS, BayesConfig(), s),
                                       problem_of) for s in seeds]
                elif search == "budget":
                    answers = [measure("budget", s, lambda p, s=s: bayesian_complexity(p, EPS, profile.how.budget, s),
                                       problem_of) for s in seeds]
                elif search == "edge":
                    answers = [measure("edge", s, lambda p: edge_complexity(p, EPS), problem_of) for s in (0, 1)]
                elif search == "alg2":
                    answers = [measure("alg2", 0, lambda p: quantization_complexity(p, EPS, profile.how.algorithm_2),
                                       problem_of)]
                elif search == "dense":
                    answers = [measure("dense", 0, dense_grid, problem_of)]
                else:
                    parser.error(f"unknown search {search!r}")
                sizes = [b for b, _ in answers]
                line.append(f"{search} {min(sizes)}-{max(sizes)} B {statistics.median(s for _, s in answers):.1f}s")
            print(f"{name} @ {epoch}: " + " | ".join(line), flush=True)
            if args.out:
                pd.DataFrame(rows).to_csv(args.out, index=False)
    summarize(pd.DataFrame(rows))


def summarize(frame: pd.DataFrame) -> None:
    frame = frame.assign(point=frame.run + " @ " + frame.epoch.astype(str))
    smallest = frame.groupby("point").paper_bytes.min()
    print(f"\n{frame.point.nunique()} checkpoints, eps = {EPS}")
    print("| search | median max/min across seeds | worst | median ratio to the smallest found | worst | "
          "median seconds |")
    print("|---|---|---|---|---|---|")
    for search, group in frame.groupby("search", sort=False):
        spread = group.groupby("point").paper_bytes.agg(lambda b: b.max() / b.min())
        to_min = group.paper_bytes / group.point.map(smallest)
        print(f"| {search} | {spread.median():.3f} | {spread.max():.3f} | {to_min.median():.3f} | {to_min.max():.3f} "
              f"| {group.seconds.median():.2f} |")
    if {"edge", "paper"} <= set(frame.search):
        seconds = frame.groupby(["point", "search"]).seconds.median().unstack()
        ratio = seconds.edge / seconds.paper
        edge = frame[frame.search == "edge"].groupby("point").paper_bytes.max() / smallest
        print(f"edge / paper seconds per checkpoint: median {ratio.median():.2f} (range {ratio.min():.2f}-"
              f"{ratio.max():.2f}); edge within 1.05x of the smallest on {int((edge <= 1.05).sum())} of "
              f"{len(edge)} checkpoints (worst {edge.max():.3f})")


if __name__ == "__main__":
    main()
