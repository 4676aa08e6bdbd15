"""LMN of the paper's MLP (embedding 32, hidden 100, 31 classes) on N = 256 samples: seconds per call.

Run:  OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_lmn.py [--n 256] [--repeats 3]
Target: <= 5 s on 2 CPU cores. The first call in a process also pays one-off library set-up (LAPACK,
thread pools); it is reported separately as "cold". CPU time is printed too: on a loaded machine the
wall time includes waiting for a core, and CPU time / threads is what an idle machine would take.
"""

from __future__ import annotations

import argparse
import time

import torch

from grok_lib.lmn.measure import LMNConfig, lmn_samples, mlp_lmn
from grok_lib.lmn.tasks import task_data
from grok_lib.training.model import MLP, MLPConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="samples N (default 256)")
    parser.add_argument("--repeats", type=int, default=3, help="timed warm calls (default 3)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    args = parser.parse_args()
    torch.manual_seed(0)
    inputs, _ = task_data("add")
    model = MLP(MLPConfig(vocab_size=31, n_inputs=2, d_embed=32, d_hidden=100, n_layers=3, n_classes=31))
    model = model.to(args.device)
    samples = lmn_samples(inputs, args.n, seed=0).to(args.device)
    config = LMNConfig()
    start = time.perf_counter()
    result = mlp_lmn(model, samples, config)
    cold = time.perf_counter() - start
    times, cpu = [], []
    for _ in range(args.repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        mlp_lmn(model, samples, config)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    print(f"LMN, N={args.n}, {config.n_points} points, {args.n * (args.n - 1) // 2} pairs, "
          f"device {args.device}, torch threads {torch.get_num_threads()}: LMN={result.lmn:.3f}")
    print(f"cold {cold:.2f} s; warm best {min(times):.2f} s, median {sorted(times)[len(times) // 2]:.2f} s wall; "
          f"CPU time (all threads) best {min(cpu):.2f} s")
    # On a shared machine wall time includes waiting for a core; CPU time / threads bounds the idle wall time.


if __name__ == "__main__":
    main()
