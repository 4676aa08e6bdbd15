"""Training speed inside Dask workers against plain processes, measured side by side in one run.

    .venv/bin/python benchmarks/bench_dask_workers.py [--epochs 10] [--op sub] [--regime ours]

Times `--epochs` epochs of the cpu profile's model for the op (after one warm-up epoch), two at a time
(one per core): in two plain spawned processes; in a Dask LocalCluster of two one-thread workers with
Dask's own nanny environment (MALLOC_TRIM_THRESHOLD_=65536); and in grok_lib's Cluster (the same
workers without that threshold). Prints seconds per epoch of each and the ratios to plain processes.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import time


def seconds_per_epoch(op: str, regime: str, epochs: int) -> float:
    import torch

    from grok_lib.training.config import DEMO, RunConfig
    from grok_lib.training.data import make_split
    from grok_lib.training.train import init_training, train_epoch

    torch.set_num_threads(1)
    config = RunConfig(op=op, regime=regime, **{k: v for k, v in DEMO.items() if k not in ("op", "regime", "n_layers")})
    split = make_split(config.op, config.p, config.train_frac, config.seed)
    model, optimizer, generators = init_training(config, "cpu")
    batch = config.batch_size_for(len(split.train_x))
    train_epoch(model, optimizer, split, config, generators, batch)
    start = time.perf_counter()
    for _ in range(epochs):
        train_epoch(model, optimizer, split, config, generators, batch)
    return (time.perf_counter() - start) / epochs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--op", default="sub")
    parser.add_argument("--regime", default="ours")
    parser.add_argument("--rounds", type=int, default=2, help="the three set-ups in turn, this many times")
    args = parser.parse_args()
    job = (args.op, args.regime, args.epochs)

    from distributed import Client, LocalCluster

    from grok_lib.jobs.cluster import WORKER_ENV, Cluster

    def plain():
        with multiprocessing.get_context("spawn").Pool(2, initializer=_one_thread) as pool:
            return pool.starmap(seconds_per_epoch, [job, job])

    def stock():
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                          silence_logs=logging.ERROR, env=dict(WORKER_ENV)) as cluster, Client(cluster) as client:
            return client.gather([client.submit(seconds_per_epoch, *job, pure=False) for _ in range(2)])

    def ours():
        with Cluster(workers=2).session() as client:
            return client.gather([client.submit(seconds_per_epoch, *job, pure=False) for _ in range(2)])

    setups = {"plain processes": plain, "Dask, its nanny environment": stock,
              "grok_lib Cluster (no trim threshold)": ours}
    times = {name: [] for name in setups}
    for _ in range(args.rounds):
        for name, run in setups.items():
            times[name] += run()
    base = sum(times["plain processes"]) / len(times["plain processes"])
    print(f"{args.op} {args.regime}, {args.epochs} epochs, two at a time on {multiprocessing.cpu_count()} cores, "
          f"{args.rounds} rounds in turn:")
    for name, values in times.items():
        mean = sum(values) / len(values)
        print(f"  {name:38s} {mean:.3f} s/epoch ({', '.join(f'{v:.3f}' for v in values)})  x{mean / base:.2f}")
    return 0


def _one_thread():
    import os

    os.environ["OMP_NUM_THREADS"] = "1"


if __name__ == "__main__":
    raise SystemExit(main())
