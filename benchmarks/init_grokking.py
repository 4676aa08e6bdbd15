"""Memorization and generalization epochs under the authors' (Flax) and torch's initialisation.

Trains (or reuses, from the run store) the CPU demo and the paper's p = 113 addition and multiplication in
the `wd` and `ours` regimes, seed 0, under both inits, and prints one markdown table row per run: first
logged epoch with train accuracy >= 0.99 (memorized) and test accuracy >= 0.99 (generalized), the
initial L2 norm, and the final accuracies.

    .venv/bin/python benchmarks/init_grokking.py --store runs/init_grokking --epochs 2000 --workers 2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from grok_lib.training.config import DEMO, RunConfig
from grok_lib.training.model import Transformer
from grok_lib.paper.pipeline import train_missing
from grok_lib.store import RunStore
from grok_lib.training.train import grokking_epochs, l2_norm


def configs(epochs: int, demo: bool, paper: bool) -> list[RunConfig]:
    out = []
    for init in ("authors", "torch"):
        legacy = {} if init == "authors" else dict(RunConfig.LEGACY)
        if demo:
            out.append(RunConfig(**{**DEMO, **legacy, "init": init}))
        if paper:
            out += [RunConfig(op=op, regime=regime, seed=0, epochs=epochs, **{**legacy, "init": init})
                    for op in ("add", "mul") for regime in ("wd", "ours")]
    return out


def initial_norm(config: RunConfig) -> float:
    torch.manual_seed(config.seed)
    return l2_norm(dict(Transformer(config.model_config()).named_parameters()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path("runs/init_grokking"))
    parser.add_argument("--epochs", type=int, default=2000, help="epochs of the p = 113 runs")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-demo", action="store_true")
    parser.add_argument("--no-paper", action="store_true")
    args = parser.parse_args()
    grid = configs(args.epochs, not args.no_demo, not args.no_paper)
    store = RunStore(args.store)
    start = time.perf_counter()
    runs = train_missing(grid, store, workers=args.workers)
    print(f"# trained/reused {len(runs)} runs in {time.perf_counter() - start:.0f} s "
          f"({args.workers} worker processes, 1 thread each)")
    print("| run | init (GELU, LN eps) | initial L2 | memorized | generalized | final train / test acc | train s |")
    print("|---|---|---|---|---|---|---|")
    for run in runs:
        c, m = run.config, run.metrics()
        hit = grokking_epochs(m)
        last = m.iloc[-1]
        name = f"{c.op} p={c.p} {c.regime} ({c.epochs} ep)"
        print(f"| {name} | {c.init} ({c.gelu}, {c.ln_eps:g}) | {initial_norm(c):.1f} | {hit['memorized']} | "
              f"{hit['generalized'] or 'not by ' + str(c.epochs)} | {last.train_acc:.3f} / {last.test_acc:.3f} | "
              f"{last.wall_s:.0f} |")


if __name__ == "__main__":
    main()
