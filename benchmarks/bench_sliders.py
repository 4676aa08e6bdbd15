"""One slider move of the explorer, timed: recompute the checkpoint at a new (tau, Delta) and redraw the PNG.

Each move is what a reader's tau or Delta move costs in the notebook (grok_lib.paper.explorer.explorer_widget's
redraw: CheckpointExplorer.point at a point not computed before, the figure, the PNG bytes); an eps move
only redraws. Prints the median and worst of `--moves` moves, one thread, on the last checkpoint of the
run (default: the cpu profile's regularized addition run in the run store).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_sliders.py --store runs
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from grok_lib.paper.explorer import CheckpointExplorer, png_bytes
from grok_lib.paper.profiles import get_profile
from grok_lib.store import RunStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path("runs"))
    parser.add_argument("--moves", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = get_profile("cpu").configs(ops=["add"], regimes=["ours"])[0]
    run = RunStore(args.store).run(config)
    if not run.checkpoints():
        raise SystemExit(f"{run.path} has no checkpoints: run `make reproduce` (cpu profile) first")
    with tempfile.TemporaryDirectory() as tmp:  # a copy, so the run's own cache is neither used nor grown
        explorer = CheckpointExplorer(run)
        explorer.path = Path(tmp) / explorer.path.name
        explorer.points = explorer.points.iloc[0:0]
        rng = np.random.default_rng(args.seed)
        taus = rng.uniform(0.5, 1.0, args.moves).round(2)
        deltas = 10 ** rng.uniform(-3, -0.5, args.moves)
        seconds, eps_seconds = [], []
        for tau, delta in zip(taus, deltas):
            start = time.perf_counter()
            row = explorer.point(tau, delta)
            png_bytes(explorer.figure(1.0, row.tau, row.delta, "benchmark"))
            seconds.append(time.perf_counter() - start)
            start = time.perf_counter()
            png_bytes(explorer.figure(0.5, row.tau, row.delta, "benchmark"))
            eps_seconds.append(time.perf_counter() - start)
    params = sum(p.numel() for p in run.load_model().parameters())
    print(f"{run.path.name} epoch {explorer.epoch} ({params:,} parameters), {args.moves} tau/Delta moves: "
          f"median {statistics.median(seconds):.2f} s, worst {max(seconds):.2f} s; eps moves (redraw only): "
          f"median {statistics.median(eps_seconds):.2f} s, worst {max(eps_seconds):.2f} s; torch {torch.__version__}")


if __name__ == "__main__":
    main()
