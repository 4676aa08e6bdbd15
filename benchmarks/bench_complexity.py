"""Seconds per checkpoint of Algorithm 1 (default budget) on the paper-size 1-layer model, and where they go.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_complexity.py --estimator GP --reference

The checkpoint: RunConfig(op="mul", regime=R, epochs=E) (default: wd, 150 epochs, memorized: train
accuracy 1.0, test 0.03; 19 minutes to train once on the shared 2-core machine), trained with
grok_lib.train.train into --store (reused when already there); its last checkpoint is measured. For each
surrogate (and objective coder) it runs Algorithm 1 alone (2 probes + 10 random + 50 guided points,
eps = --eps) on a fresh ComplexityProblem, then Algorithm 2 alone. It prints wall seconds (set-up
included) and CPU seconds of all threads (the machine may be shared), and splits the wall time into SVD,
coarse-graining (quantize, rebuild weights), training-loss forward passes, compression (the search's
objective sizes plus the final result's two coders) and the optimizer's own ask/tell time (surrogate
fitting and acquisition).

--reference first runs each measurement the old way, in the same process for a side-by-side ratio on a
noisy machine: the textbook forward (every position through every block, per-head matmuls, no
token-position tables) and the process's own thread settings (threads=None, i.e. OMP_NUM_THREADS).
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
from grok_lib.model import Transformer
from grok_lib.search import BayesConfig, bayesian_complexity, quantization_complexity
from grok_lib.store import RunStore
from grok_lib.train import train


class ReferenceTransformer(Transformer):
    """The same parameters, through the textbook forward: the slow path the fast one is measured against."""

    def forward(self, tokens):
        B, T = tokens.shape
        x = self.embed(tokens) + self.pos.weight[:T]
        for block in self.blocks:
            attn, h, D = block.attn, block.attn.n_heads, x.shape[-1]

            def heads(t):
                return t.view(B, T, h, D // h).transpose(1, 2)  # (B, h, T, d_head)

            q, k, v = heads(attn.query(x)), heads(attn.key(x)), heads(attn.value(x))
            weights = torch.softmax(q @ k.transpose(-2, -1) / (D // h) ** 0.5, dim=-1)
            x = block.ln_attn(x + attn.out((weights @ v).transpose(1, 2).reshape(B, T, D)))
            x = block.ln_mlp(x + block.mlp_out(F.gelu(block.mlp_in(x))))
        return self.unembed(x[:, -1])


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
    parser.add_argument("--estimator", action="append", help="ET, RF or GP (repeatable; default GP)")
    parser.add_argument("--objective", action="append", help="paper or symbols (repeatable; default paper)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--reference", action="store_true",
                        help="also run the old path (textbook forward, process thread settings) first")
    parser.add_argument("--no-algorithm-2", action="store_true", help="skip the Algorithm 2 timing")
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
    reference = ReferenceTransformer(model.cfg)
    reference.load_state_dict(model.state_dict())
    paths = [("reference", reference, None), ("fast", model, 1)] if args.reference else [("fast", model, 1)]
    data = dict(train_data=(split.train_x, split.train_y), test_data=(split.test_x, split.test_y))
    for _ in range(args.repeat):
        for estimator in args.estimator or ["GP"]:
            for objective in args.objective or ["paper"]:
                seconds = {}
                for path, network, threads in paths:
                    start, cpu = time.perf_counter(), time.process_time()
                    problem = ComplexityProblem(network, F.cross_entropy, objective=objective, threads=threads, **data)
                    result = bayesian_complexity(problem, args.eps, BayesConfig(estimator=estimator))
                    seconds[path] = time.perf_counter() - start
                    report(f"Algorithm 1 ({estimator}, {objective}) {path}", seconds[path],
                           time.process_time() - cpu, problem, result)
                if args.reference:
                    print(f"  fast / reference wall time: {seconds['fast'] / seconds['reference']:.3f} "
                          f"({seconds['reference'] / seconds['fast']:.1f}x faster)")
        if args.no_algorithm_2:
            continue
        for path, network, threads in paths:
            start, cpu = time.perf_counter(), time.process_time()
            problem = ComplexityProblem(network, F.cross_entropy, threads=threads, **data)
            result = quantization_complexity(problem, args.eps)
            report(f"Algorithm 2 {path}", time.perf_counter() - start, time.process_time() - cpu, problem, result)


if __name__ == "__main__":
    main()
