"""A tighter bound than the paper's, measured on the same checkpoints: the paper's Algorithm 1 (its coder
as the objective, one global Delta) beside searches that minimise the `entropy` coder, with one global
Delta or a Delta per parameter (grok_lib.complexity.allocation), at the same eps and budget.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_tighter.py --store runs --profile cpu

Checkpoints: for each run of the profile, its memorization peak (the tracked epoch of largest pooled
complexity at eps = 1) and its final checkpoint. Per checkpoint and search (a fresh ComplexityProblem
each, Algorithm 1 with the profile's budget, its own points as in the paper):

    paper               objective paper, global Delta: today's search; its paper bytes are the reference
    paper+more          the same with REFINE more guided points (as many evaluations as +refine)
    paper+refine        the same with BayesConfig.refine = REFINE (Delta bisected up to the bound's edge)
    entropy             objective entropy, global Delta
    entropy+refine      objective entropy, global Delta, refined
    balanced+refine     the same with the balanced factor split (coarse.SPLITS)
    sensitivity+refine  objective entropy, a Delta per matrix (its probes counted in its evaluations), refined
    entropy+more        entropy+refine with 24 more guided points: as many loss evaluations as tightest
                        spends on a one-layer net (48; 60 on the two-layer nets of - and /)
    realloc             objective entropy, refined (4 steps), then BayesConfig.reallocate = 2 sweeps (a Delta
                        per matrix priced at the bound's edge, grok_lib.complexity.reallocation)
    tightest            realloc with the balanced factor split: the tighter bound of grok_lib.paper.tighter

Every entropy and symbols description is decoded back and compared bit for bit with the weights the search
evaluated. Printed: bytes, ratio to the paper search's paper bytes, loss evaluations, seconds per
checkpoint; then the medians, and the ratio of seconds to the paper search's.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from grok_lib.complexity.coders import CODERS
from grok_lib.complexity.entropy import clear_fast_cache
from grok_lib.complexity.problem import ComplexityProblem
from grok_lib.complexity.search import bayesian_complexity
from grok_lib.complexity.tracking import read_complexity
from grok_lib.paper.profiles import get_profile
from grok_lib.store import RunStore
from grok_lib.training.data import make_split

REFINE = 8  # BayesConfig.refine steps of the refined searches


@dataclasses.dataclass(frozen=True)
class Search:
    objective: str = "entropy"
    allocation: str = "global"
    refine: int = 0  # BayesConfig.refine
    extra: int = 0  # more guided points
    reallocate: int = 0  # BayesConfig.reallocate
    split: str = "left"  # coarse.SPLITS


SEARCHES = {"paper": Search("paper"), "paper+more": Search("paper", extra=REFINE),
            "paper+refine": Search("paper", refine=REFINE), "entropy": Search(),
            "entropy+refine": Search(refine=REFINE), "balanced+refine": Search(refine=REFINE, split="balanced"),
            "sensitivity+refine": Search(allocation="sensitivity", refine=REFINE),
            "entropy+more": Search(refine=REFINE, extra=24),  # as many evaluations as tightest on a 1-layer net
            "realloc": Search(refine=4, reallocate=2), "tightest": Search(refine=4, reallocate=2, split="balanced")}


def checkpoints(profile, store, only=None):
    for config in profile.configs():
        if only and f"{config.op}-{config.regime}" not in only:
            continue
        run = store.run(config)
        table = read_complexity(run)
        table = table[table.eps == 1.0]
        peak = int(table.loc[table["pooled_paper_bytes"].idxmax(), "epoch"])
        for epoch in sorted({peak, int(table.epoch.max())}):
            yield config, run, epoch


def search(model, split, eps, bayes, objective, allocation, factor_split="left", refine=0, reallocate=0):
    clear_fast_cache()  # every search starts as a fresh one would: no encodings remembered from the last
    start = time.perf_counter()
    problem = ComplexityProblem(model, F.cross_entropy, (split.train_x, split.train_y), objective=objective,
                                allocation=allocation, factor_split=factor_split)
    result = bayesian_complexity(problem, eps, bayes, refine=refine, reallocate=reallocate)
    seconds = time.perf_counter() - start
    for name, coder in CODERS.items():
        if coder.decode is not None:
            back = coder.decode(coder.encode(result.coarse, None).data).weights()
            assert all(torch.equal(back[k], v) for k, v in result.coarse.weights().items()), f"{name} does not decode"
    return result, seconds, problem.allocation_evaluations


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path("runs"))
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--eps", type=float, default=1.0)
    parser.add_argument("--only", nargs="*", help="runs as op-regime, e.g. add-ours (default: all)")
    parser.add_argument("--searches", nargs="*", default=list(SEARCHES), choices=list(SEARCHES),
                        help="which searches besides paper (default: all)")
    args = parser.parse_args()
    searches = {name: SEARCHES[name] for name in SEARCHES if name == "paper" or name in args.searches}
    torch.set_num_threads(1)
    profile, store = get_profile(args.profile), RunStore(args.store)
    ratios = {name: [] for name in searches}
    seconds = {name: [] for name in searches}
    budget = profile.how.budget
    print(f"eps {args.eps}, budget {budget.n_random} random + {budget.n_guided} guided + "
          f"{len(budget.probes)} probes; bytes (x the paper search's paper bytes) evaluations seconds")
    print("| run @ epoch | paper search: paper B / entropy B | " + " | ".join(n for n in searches if n != "paper")
          + " |")
    print("|---|---|" + "---|" * (len(searches) - 1))
    for config, run, epoch in checkpoints(profile, store, args.only):
        model = run.load_model(epoch)
        split = make_split(config.op, config.p, config.train_frac, config.seed)
        cells, reference = {}, None
        for name, s in searches.items():
            objective = s.objective
            bayes = dataclasses.replace(budget, n_guided=budget.n_guided + s.extra)
            result, took, _ = search(model, split, args.eps, bayes, objective, s.allocation, s.split, s.refine,
                                     s.reallocate)
            if name == "paper":
                reference = result.sizes["paper"].n_bytes
            size = result.sizes[objective].n_bytes
            ratios[name].append((result.sizes["entropy"].n_bytes if name == "paper" else size) / reference)
            seconds[name].append(took)
            cells[name] = (f"{reference} / {result.sizes['entropy'].n_bytes} ({ratios[name][-1]:.3f}) "
                           f"{result.n_evaluations} {took:.1f}s" if name == "paper" else
                           f"{size} ({ratios[name][-1]:.3f}) {result.n_evaluations} {took:.1f}s")
        print(f"| {config.op}-{config.regime} @ {epoch} | " + " | ".join(cells[n] for n in searches) + " |",
              flush=True)
    print("median x paper bytes: " + ", ".join(f"{n} {statistics.median(v):.3f}" for n, v in ratios.items())
          + " (paper: the entropy coder on the paper search's point)")
    print("median seconds per checkpoint: " + ", ".join(f"{n} {statistics.median(v):.2f}" for n, v in seconds.items()))
    print("median seconds x paper search: " + ", ".join(
        f"{n} {statistics.median(a / b for a, b in zip(v, seconds['paper'])):.2f}" for n, v in seconds.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
