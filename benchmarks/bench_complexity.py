"""Seconds per checkpoint of Algorithm 1 (default budget) on the paper-size 1-layer model, and where they go.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_complexity.py --estimator GP --estimator ET

The checkpoint: RunConfig(op="mul", regime=R, epochs=E) (default: wd, 150 epochs, memorized: train
accuracy 1.0, test 0.03; 19 minutes to train once on the shared 2-core machine), trained with
grok_lib.train.train into --store (reused when already there); its last checkpoint is measured. For each
surrogate (and objective coder) it runs Algorithm 1 alone (2 probes + 10 random + 50 guided points,
eps = --eps) on a fresh ComplexityProblem, then Algorithm 2 alone. It prints wall seconds (set-up
included) and CPU seconds of all threads (the machine may be shared), and splits the wall time into SVD,
coarse-graining (quantize, rebuild weights), training-loss forward passes, compression (the search's
objective sizes plus the final result's two coders) and the optimizer's own ask/tell time (surrogate
fitting and acquisition).
"""

import argparse
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from grok_lib.complexity import ComplexityProblem
from grok_lib.config import RunConfig
from grok_lib.data import make_split
from grok_lib.search import BayesConfig, bayesian_complexity, quantization_complexity
from grok_lib.store import RunStore
from grok_lib.train import train


def report(label: str, seconds: float, cpu_seconds: float, problem: ComplexityProblem, result) -> None:
    parts = ", ".join(f"{k} {v:.2f}" for k, v in sorted(problem.timings.items()))
    print(f"{label:28s} {seconds:6.2f} s wall, {cpu_seconds:6.2f} s CPU  [{parts}]  evals {result.n_evaluations} "
          f"(distinct {len(problem.evaluations)}, compressed {len(problem.sizes)})  "
          f"paper {result.paper_bytes} B, symbols {result.symbols_bytes} B ({result.symbols_codec}), "
          f"tau {result.tau}, delta {result.delta:.4g}, train loss {result.train_loss:.4f} "
          f"(ref {result.reference_train_loss:.4f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=150, help="training epochs of the checkpoint (default 150)")
    parser.add_argument("--store", type=Path, default=Path("/tmp/grok-bench-runs"))
    parser.add_argument("--regime", default="wd", help="none, wd or ours (default wd: ours trains ~5x slower on CPU)")
    parser.add_argument("--eps", type=float, default=1.0)
    parser.add_argument("--estimator", action="append", help="ET, RF or GP (repeatable; default ET and GP)")
    parser.add_argument("--objective", action="append", help="paper or symbols (repeatable; default paper)")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    config = RunConfig(op="mul", regime=args.regime, epochs=args.epochs)
    run = train(config, RunStore(args.store), device="cpu", progress=True)
    epoch = run.checkpoint_epochs()[-1]
    model = run.load_model(epoch)
    split = make_split(config.op, config.p, config.train_frac, config.seed)
    metrics = run.metrics().set_index("epoch").loc[epoch]
    print(f"checkpoint {run.path.name} epoch {epoch}: train acc {metrics.train_acc:.3f}, test acc "
          f"{metrics.test_acc:.3f}; {sum(p.numel() for p in model.parameters())} parameters, "
          f"{len(split.train_x)} training examples; torch threads {torch.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, load average {os.getloadavg()[0]:.1f}")
    data = dict(train_data=(split.train_x, split.train_y), test_data=(split.test_x, split.test_y))
    for _ in range(args.repeat):
        for estimator in args.estimator or ["ET", "GP"]:
            for objective in args.objective or ["paper"]:
                start, cpu = time.perf_counter(), time.process_time()
                problem = ComplexityProblem(model, F.cross_entropy, objective=objective, **data)
                result = bayesian_complexity(problem, args.eps, BayesConfig(estimator=estimator))
                report(f"Algorithm 1 ({estimator}, {objective})", time.perf_counter() - start,
                       time.process_time() - cpu, problem, result)
        start, cpu = time.perf_counter(), time.process_time()
        problem = ComplexityProblem(model, F.cross_entropy, **data)
        result = quantization_complexity(problem, args.eps)
        report("Algorithm 2", time.perf_counter() - start, time.process_time() - cpu, problem, result)


if __name__ == "__main__":
    main()
