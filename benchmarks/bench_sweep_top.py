"""Algorithm 2 from the top down (sweep-top) against the edges-only sweep, on stored checkpoints, side by side.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_sweep_top.py --store runs --profile cpu

For each chosen run of the profile and each of its checkpoints at the epochs given, measures the whole
tracking row (Algorithm 1 at the profile's budget, pooled, and Algorithm 2) once with each method on a
fresh problem, and prints Algorithm 2's and the pooled answer's paper-coder bytes, their ratio, the number
of Algorithm 2 evaluations and the seconds for the checkpoint.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

from grok_lib.complexity.tracking import measure_checkpoint
from grok_lib.paper.profiles import get_profile, tracking_settings
from grok_lib.store import RunStore
from grok_lib.training.data import make_split

METHODS = ("sweep", "sweep-top")  # sweep-edges, its first comparison, was removed (issue 28)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path("runs"))
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--cells", nargs="+", default=["sub:wd", "add:wd", "mul:ours"], help="op:regime")
    parser.add_argument("--epochs", type=int, nargs="+", default=[51, 190, 542], help="plus each run's last")
    args = parser.parse_args()
    torch.set_num_threads(1)
    profile = get_profile(args.profile)
    base, store = tracking_settings(profile), RunStore(args.store)
    ratios, seconds = [], {m: 0.0 for m in METHODS}
    print("| checkpoint | Alg. 2 bytes edges / top | pooled bytes edges / top | Alg. 2 evaluations | s |")
    print("|---|---|---|---|---|")
    for cell in args.cells:
        op, regime = cell.split(":")
        config = next(c for c in profile.configs() if (c.op, c.regime) == (op, regime))
        run = store.run(config)
        split = make_split(config.op, config.p, config.train_frac, config.seed)
        for epoch in [e for e in run.checkpoints() if e in set(args.epochs) | {config.epochs}]:
            rows = {}
            for method in METHODS:
                start = time.perf_counter()
                rows[method] = measure_checkpoint(run, epoch, replace(base, algorithm_2=method), split)[0]
                rows[method]["s"] = time.perf_counter() - start
                seconds[method] += rows[method]["s"]
            a, b = rows["sweep"], rows["sweep-top"]
            ratios.append(b["alg2_paper_bytes"] / a["alg2_paper_bytes"])
            print(f"| {op}-{regime} @ {epoch} | {a['alg2_paper_bytes']} / {b['alg2_paper_bytes']} | "
                  f"{a['pooled_paper_bytes']} / {b['pooled_paper_bytes']} | {a['alg2_n_evaluations']} / "
                  f"{b['alg2_n_evaluations']} | {a['s']:.1f} / {b['s']:.1f} |", flush=True)
    same = sum(r == 1.0 for r in ratios)
    print(f"sweep-top = sweep on {same} of {len(ratios)} checkpoints (Algorithm 2 bytes); time "
          f"top / sweep = {seconds['sweep-top'] / seconds['sweep']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
