"""Algorithm 1's sequential search vs a pipelined one (lag 1), on sizes found and time: why it is not offered.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/compare_pipelined_search.py            # ~10 min on 2 cores
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/compare_pipelined_search.py --epochs 150 --eps 1 --seeds 2

In the sequential search (grok_lib.complexity.search.bayesian_complexity) the surrogate is told each guided point's
exact compressed size before it proposes the next point, so every feasible point's bz2 sits on the
critical path. The pipelined variant here proposes point i+1 while point i still compresses: point i is
told a lie (--lies: "cl_min", the smallest value so far; "kb", the GP's own prediction, "kriging
believer"), the lie replaced by the true size before the next tell refits the surrogate. The same budget
(2 probes + 10 random + 50 guided), the same random points; only the guided proposals differ, and
deterministically (the lag is always exactly one point, whatever the timing). The checkpoints are
bench_complexity.py's run (mul, wd, 150 epochs; trained into --store if missing). Prints one line per
search, then per lie: median seconds and the geometric mean of (size / sequential size) over the pairs with
the same checkpoint, eps and seed.
"""

import argparse
import math
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch.nn.functional as F

import grok_lib.complexity.search as S
from grok_lib.complexity.problem import ComplexityProblem
from grok_lib.training.config import RunConfig
from grok_lib.training.data import make_split
from grok_lib.store import RunStore
from grok_lib.training.train import train


def pipelined_complexity(problem, eps, lie, config=S.BayesConfig(), seed=0):
    """bayesian_complexity's search with lag-1 proposals (the prototype measured, not a library path)."""
    with problem.limited_threads(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimizer = S._optimizer(config, seed, n_initial=len(config.probes) + config.n_random)

        def objective(evaluation):
            return float(problem.size(evaluation)) if problem.feasible(evaluation, eps) else float(problem.penalty)

        randoms = [optimizer.ask() for _ in range(config.n_random)]
        points = list(config.probes) + [(float(t), float(d)) for t, d in randoms]
        ys = [objective(e) for e in problem.evaluate_many(points, eps, prefetch=True)]
        optimizer.tell([list(p) for p in config.probes] + [list(x) for x in randoms], ys)
        pending = None  # (index in optimizer.yi, evaluation) whose size is still being computed
        for _ in range(config.n_guided):
            x = optimizer.ask()
            evaluation = problem.evaluate(float(x[0]), float(x[1]), eps, prefetch=True)
            if pending is not None:  # the true size replaces the lie before the next fit
                optimizer.yi[pending[0]] = objective(pending[1])
                pending = None
            if problem.feasible(evaluation, eps):
                value = (min(optimizer.yi) if lie == "cl_min" else
                         float(optimizer.models[-1].predict(optimizer.space.transform([x]))[0]))
                pending = (len(optimizer.yi), evaluation)
                optimizer.tell(list(x), value)
            else:
                optimizer.tell(list(x), float(problem.penalty))
        if pending is not None:
            optimizer.yi[pending[0]] = objective(pending[1])
    return problem.smallest_feasible(eps), problem


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path("/tmp/grok-bench-runs"))
    parser.add_argument("--epochs", default="30,66,112,150", help="checkpoint epochs (comma-separated)")
    parser.add_argument("--eps", default="1,0.25", help="distortion bounds (comma-separated)")
    parser.add_argument("--seeds", type=int, default=4, help="search seeds 0..N-1 (default 4)")
    parser.add_argument("--lies", default="cl_min,kb", help="pipelined variants (comma-separated: cl_min, kb)")
    args = parser.parse_args()
    config = RunConfig(op="mul", regime="wd", epochs=150)
    run = train(config, RunStore(args.store), progress=True)
    split = make_split(config.op, config.p, config.train_frac, config.seed)
    data = (split.train_x, split.train_y)
    modes = ["sequential"] + args.lies.split(",")
    sizes, seconds = {}, {mode: [] for mode in modes}
    for epoch in [int(e) for e in args.epochs.split(",")]:
        model = run.load_model(epoch)
        for eps in [float(e) for e in args.eps.split(",")]:
            for seed in range(args.seeds):
                for mode in modes:  # in turn, so that the machine's drift falls on all alike
                    problem = ComplexityProblem(model, F.cross_entropy, data)
                    start = time.perf_counter()
                    if mode == "sequential":
                        size = S.bayesian_complexity(problem, eps, seed=seed).paper_bytes
                    else:
                        best, problem = pipelined_complexity(problem, eps, mode, seed=seed)
                        size = problem.sizes[best.key]
                    seconds[mode].append(time.perf_counter() - start)
                    sizes[mode, epoch, eps, seed] = size
                    print(f"{mode:10s} epoch {epoch:3d} eps {eps:g} seed {seed}: {seconds[mode][-1]:5.2f} s, "
                          f"paper {size} B", flush=True)
    for mode in modes:
        logs = [math.log(v / sizes[("sequential",) + key[1:]]) for key, v in sizes.items() if key[0] == mode]
        print(f"{mode:10s} median {statistics.median(seconds[mode]):.2f} s; size / sequential: geometric mean "
              f"{math.exp(np.mean(logs)):.4f}, larger in {sum(x > 0 for x in logs)} of {len(logs)}", flush=True)


if __name__ == "__main__":
    main()
