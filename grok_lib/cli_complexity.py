"""The `complexity` command of `python -m grok_lib`: Algorithms 1 and 2 (and the edge search) on a stored run."""

from __future__ import annotations

import math
from pathlib import Path

from .complexity.coarse import SPLITS
from .errors import GrokError
from .store import RunStore


def add_complexity_parser(sub, add_run_options, help: str) -> None:
    """The `complexity` command's parser; add_run_options adds the options that select a stored run."""
    from .complexity.coders import CODERS

    p = sub.add_parser(
        "complexity", help=help,
        description="Measure every stored checkpoint of a run at each eps: Algorithm 1 (Bayesian optimization "
                    "over low-rank threshold tau and bin size Delta), Algorithm 2 (quantization only), both "
                    "coders, the Eq. 4 bound and the total description length. Rows go to RUN_DIR/complexity.csv "
                    "after each checkpoint; an interrupted pass resumes, a finished one is reused.",
        epilog="Example: python -m grok_lib complexity runs/mul-ours-s0-XXXX --eps 1 --eps 0.5")
    p.add_argument("run_dir", nargs="?", type=Path,
                   help="a run directory (default: the stored run that the run options below select)")
    add_run_options(p)
    g = p.add_argument_group("how to measure")
    g.add_argument("--eps", type=float, action="append",
                   help="distortion bound on the training loss, repeatable (default: 4 2 1 0.5 0.25 0.125 0.0625)")
    g.add_argument("--checkpoint", type=int, action="append",
                   help="only the checkpoints at these epochs (repeatable; default all)")
    g.add_argument("--estimator", default="GP",
                   help="Algorithm 1's surrogate: GP, or ET / RF forests (faster, looser) (default GP)")
    g.add_argument("--n-random", type=int, default=10, help="random points after the 2 probes (default 10)")
    g.add_argument("--n-guided", type=int, default=50, help="surrogate-guided points (default 50)")
    g.add_argument("--search-seed", type=int, default=0, help="seeds Algorithm 1 (default 0)")
    g.add_argument("--search", default="bayes", choices=["bayes", "edge"],
                   help="bayes: Algorithm 1's Bayesian search, the paper's (default); edge: also the deterministic "
                        "edge search (not in the paper; edge_ columns beside Algorithm 1's, which stays)")
    g.add_argument("--one-sided", action="store_true",
                   help="accept L(coarse) <= L + eps (the code) instead of |.| < eps")
    g.add_argument("--objective", default="paper", choices=list(CODERS), help="coder Algorithm 1 minimizes: "
                   + "; ".join(f"{name}: {coder.description}" for name, coder in CODERS.items()) + " (default paper)")
    g.add_argument("--refine", type=int, default=0,
                   help="not in the paper: Delta bisected this many steps at Algorithm 1's best tau, up to the "
                        "edge of the bound (default 0, the paper's search)")
    g.add_argument("--reallocate", type=int, default=0,
                   help="not in the paper: sweeps that give each matrix its own Delta, priced at the edge of the "
                        "bound, after Algorithm 1 (default 0, one global Delta)")
    g.add_argument("--split", default="left", choices=list(SPLITS),
                   help="how low-rank factors share the singular values: left (U S and V^T, the authors' code, "
                        "default) or balanced (U S^1/2 and S^1/2 V^T; not in the paper)")
    g.add_argument("--allocation", default="global", help="global (one Delta, the paper's, default) or "
                   "sensitivity (one Delta per matrix from measured sensitivities; not in the paper)")
    g.add_argument("--algorithm-2", default="sweep", help="Algorithm 2's search: sweep (the paper's, default), "
                   "sweep-edges (compress only the top of each feasible run), sweep-top (the largest feasible Delta "
                   "of the grid, from the top down) or bisection (the authors' code)")
    g.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    g.add_argument("--workers", type=int, default=1,
                   help="checkpoints measured at once, one process and core each (default 1)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def measure_run(args, store: RunStore, config_from) -> None:
    """The `complexity` command: track a stored run's checkpoints; config_from(args) is the run the options select."""
    from .complexity.search import PAPER_EPS, BayesConfig
    from .store import read_config
    from .complexity.coders import CODERS
    from .complexity.tracking import ALGORITHM_1, ALGORITHM_2, EDGE, POOLED, TrackingSettings, bound_column, \
        size_column, track_complexity

    settings = TrackingSettings(
        eps=tuple(args.eps or PAPER_EPS), seed=args.search_seed, one_sided=args.one_sided, objective=args.objective,
        bayes=BayesConfig(n_random=args.n_random, n_guided=args.n_guided, estimator=args.estimator,
                          refine=args.refine, reallocate=args.reallocate),
        algorithm_2=args.algorithm_2, allocation=args.allocation, split=args.split, edge=args.search == "edge")
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
