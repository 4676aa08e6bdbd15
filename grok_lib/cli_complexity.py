"""The `complexity` command of `python -m grok_lib`: Algorithms 1 and 2 (and the edge search) on a stored run."""

from __future__ import annotations

import math
from pathlib import Path

from .errors import GrokError
from .store import RunStore


def add_complexity_parser(sub, add_run_options, help: str) -> None:
    """The `complexity` command's parser; add_run_options adds the options that select a stored run."""
    from .complexity.measurement import add_measurement_options

    p = sub.add_parser(
        "complexity", help=help,
        description="Measure every stored checkpoint of a run at each eps: Algorithm 1 (Bayesian optimization "
                    "over low-rank threshold tau and bin size Delta), Algorithm 2 (quantization only), both "
                    "coders, the Eq. 4 bound and the total description length. Rows go to RUN_DIR/complexity.csv "
                    "after each checkpoint; an interrupted pass resumes, a finished one is reused.",
        epilog="Examples: python -m grok_lib complexity runs/mul-ours-s0-XXXX --eps 1 --eps 0.5; "
               "... --preset tightest --refine 8 (a preset, one field changed)")
    p.add_argument("run_dir", nargs="?", type=Path,
                   help="a run directory (default: the stored run that the run options below select)")
    add_run_options(p)
    g = p.add_argument_group("how to measure")
    g.add_argument("--eps", type=float, action="append",
                   help="distortion bound on the training loss, repeatable (default: 4 2 1 0.5 0.25 0.125 0.0625)")
    g.add_argument("--checkpoint", type=int, action="append",
                   help="only the checkpoints at these epochs (repeatable; default all)")
    g.add_argument("--search", default="bayes", choices=["bayes", "edge"],
                   help="bayes: Algorithm 1's Bayesian search, the paper's (default); edge: also the deterministic "
                        "edge search (not in the paper; edge_ columns beside Algorithm 1's, which stays)")
    add_measurement_options(g)
    g.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    g.add_argument("--workers", type=int, default=1,
                   help="checkpoints measured at once, one process and core each (default 1)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def measure_run(args, store: RunStore, config_from) -> None:
    """The `complexity` command: track a stored run's checkpoints; config_from(args) is the run the options select."""
    from .complexity.measurement import measurement_from
    from .complexity.search import PAPER_EPS
    from .store import read_config
    from .complexity.coders import CODERS
    from .complexity.tracking import ALGORITHM_1, ALGORITHM_2, EDGE, POOLED, TrackingSettings, bound_column, \
        size_column, track_complexity

    settings = TrackingSettings(eps=tuple(args.eps or PAPER_EPS), how=measurement_from(args),
                                edge=args.search == "edge")
    if args.run_dir is not None:
        if not (args.run_dir / "config.json").is_file():
            raise GrokError("run_dir", f"{args.run_dir} is not a run directory (no config.json)")
        config = read_config(args.run_dir / "config.json")
        path = args.run_dir
    else:
        config = config_from(args)
        path = store.root / config.key()
        if not (path / "config.json").is_file():
            raise GrokError("run", f"no stored run {config.key()} in {store.root}; train it first")
    run = store.open_dir(path, config)
    table = track_complexity(run, settings, device=args.device, progress=not args.quiet, epochs=args.checkpoint,
                             workers=args.workers)
    last = table[table.epoch == table.epoch.max()]
    print(f"{run.path / 'complexity.csv'}: {table.epoch.nunique()} checkpoints; at epoch {int(last.epoch.iloc[0])}:")
    for row in last.to_dict("records"):
        kb = {prefix: ", ".join(f"{coder} {row.get(size_column(prefix, coder), math.nan) / 1e3:.1f}"
                                for coder in CODERS)
              for prefix in (ALGORITHM_1, POOLED, ALGORITHM_2, EDGE)}
        edge = f"  edge search {kb[EDGE]} kB" if settings.edge else ""
        print(f"  eps {row['eps']:<7g} Algorithm 1 {kb[ALGORITHM_1]} kB (pooled {kb[POOLED]} kB)  "
              f"Algorithm 2 {kb[ALGORITHM_2]} kB{edge}  naive {row['naive_bytes'] / 1e3:.1f} kB  "
              f"Eq. 4 bound {row[bound_column(ALGORITHM_1, 'paper')]:.2f}")
