"""Algorithm 2 on real checkpoints: the paper's sweep at several grid densities against the code's bisection.

For each chosen checkpoint and eps, every method runs on a fresh ComplexityProblem (nothing cached between
them) and the table gives its paper-coder bytes, its ratio to the finest sweep measured (the reference:
refining further should no longer move it), Delta and seconds. The sweep's default grid is the coarsest whose
answer matches the finest one's on these checkpoints.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_algorithm2.py --store runs/init_grokking
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from grok_lib.complexity.problem import ComplexityProblem
from grok_lib.training.data import make_split
from grok_lib.complexity.quantization import SWEEP_POINTS_PER_DECADE, SWEEP_BISECT_STEPS, quantization_complexity
from grok_lib.store import RunStore
from grok_lib.training.train import grokking_epochs

SWEEPS = [("sweep", 4, 8), ("sweep", 8, 0), ("sweep", 8, 8), ("sweep", 16, 8), ("sweep-top", 8, 8)]
FINEST = (32, 12)  # the reference: 32 points per decade, 12 refinement steps


def checkpoints(run) -> list[int]:
    """The memorization checkpoint (first train acc >= 0.99), the generalization one, and the last."""
    marks = grokking_epochs(run.metrics())
    stored = run.checkpoints()
    wanted = [marks["memorized"], marks["generalized"], stored[-1]]
    return sorted({e for e in wanted if e in stored})


def measure(problem_args, eps: float, method: str, k: int = 1, refine: int = 0):
    problem = ComplexityProblem(*problem_args)
    start = time.perf_counter()
    result = quantization_complexity(problem, eps, method=method, points_per_decade=k, bisect=refine)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path("runs/init_grokking"))
    parser.add_argument("--eps", type=float, nargs="+", default=[1.0, 0.0625])
    parser.add_argument("--runs", nargs="*", default=None, help="run directory names (default: every run)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = [r for r in RunStore(args.store).runs() if args.runs is None or r.path.name in args.runs]
    ratios: dict[str, list[float]] = {}
    seconds: dict[str, list[float]] = {}
    print(f"default sweep: {SWEEP_POINTS_PER_DECADE} points per decade, {SWEEP_BISECT_STEPS} bisection steps")
    print("| checkpoint | eps | method | bytes | / finest | Delta | evaluations | s |")
    print("|---|---|---|---|---|---|---|---|")
    for run in runs:
        c = run.config
        split = make_split(c.op, c.p, c.train_frac, c.seed)
        for epoch in checkpoints(run):
            model = run.load_model(epoch)
            problem_args = (model, F.cross_entropy, (split.train_x, split.train_y))
            for eps in args.eps:
                finest, _ = measure(problem_args, eps, "sweep", *FINEST)
                for method, k, refine in [("bisection", 1, 0)] + SWEEPS:
                    result, s = measure(problem_args, eps, method, k, refine)
                    name = "bisection" if method == "bisection" else f"{method} {k}/decade, refine {refine}"
                    ratio = result.paper_bytes / finest.paper_bytes
                    ratios.setdefault(name, []).append(ratio)
                    seconds.setdefault(name, []).append(s)
                    print(f"| {run.path.name} @ {epoch} | {eps:g} | {name} | {result.paper_bytes:,} | {ratio:.4f} | "
                          f"{result.delta:.4g} | {result.n_evaluations} | {s:.2f} |")
    print("\n| method | median / finest | worst / finest | median s |")
    print("|---|---|---|---|")
    for name, values in ratios.items():
        secs = statistics.median(seconds[name])
        print(f"| {name} | {statistics.median(values):.4f} | {max(values):.4f} | {secs:.2f} |")


if __name__ == "__main__":
    main()
