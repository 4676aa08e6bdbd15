"""Command line: `python -m grok_lib train|demo|runs|complexity ...`. Bad input exits with status 2 and one line."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from .training.config import DEMO, REGIMES, RunConfig
from .training.ops import OPS
from .training.regularizers import PENALTIES
from .complexity.coarse import SPLITS
from .errors import GrokError, run_command
from .store import RunStore, default_root



def _add_run_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("what to train (unset options take the paper's value for the op/regime)")
    g.add_argument("--op", default="mul", help=f"operation: {', '.join(f'{k} ({v.text})' for k, v in OPS.items())}")
    g.add_argument("--regime", default="ours", help="none (no regularizer), wd (weight decay 1), "
                   "ours (weight decay + weight noise + spectral entropy, the paper's regularizer)")
    g.add_argument("--seed", type=int, default=0, help="seeds split, init, shuffling and noise (default 0)")
    g.add_argument("--epochs", type=int, default=10_000, help="training epochs; the paper's 'steps' (default 10000)")
    g.add_argument("--p", type=int, default=113, help="modulus (default 113; prime for div)")
    g.add_argument("--train-frac", type=float, help="train fraction (paper: 0.2 for add/mul, 0.3 for sub/div)")
    g.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default 1e-3)")
    g.add_argument("--weight-decay", type=float, help="AdamW weight decay (regime preset: 0 or 1)")
    g.add_argument("--noise", type=float, help="weight-noise std delta (ours: 1e-2 add/mul, 1e-3 sub/div)")
    for term in PENALTIES.values():  # one option per penalty coefficient (grok_lib.training.regularizers)
        g.add_argument(f"--{term.field.replace('_', '-')}", type=float, help=term.help)
    g.add_argument("--batch-size", type=int, help="minibatch size (default min(512, N_train/2))")
    g.add_argument("--n-layers", type=int, help="transformer layers (paper: 1 for add/mul, 2 for sub/div)")
    g.add_argument("--d-model", type=int, default=128, help="residual width (default 128)")
    g.add_argument("--n-heads", type=int, default=4, help="attention heads (default 4)")
    g.add_argument("--d-mlp", type=int, default=512, help="MLP width (default 512)")
    g.add_argument("--init", default="authors", help="initialisation: authors (Flax's defaults, as the authors' "
                   "code; default) or torch (torch's module defaults)")
    g.add_argument("--gelu", default="tanh", help="GELU form: tanh (the authors' Flax default) or exact")
    g.add_argument("--ln-eps", type=float, default=1e-6, help="LayerNorm epsilon (default 1e-6, Flax's)")
    g.add_argument("--pos-table", default="context", help="positional table rows: context (the 4 a sequence "
                   "uses; default) or vocab (vocab-size rows, as the authors' code)")


def _config_from(args, **overrides) -> RunConfig:
    """The RunConfig the options describe; `overrides` (e.g. regime, seed) win over the options."""
    fields = dict(op=args.op, regime=args.regime, seed=args.seed, epochs=args.epochs, p=args.p,
                  train_frac=args.train_frac, lr=args.lr, weight_decay=args.weight_decay, noise=args.noise,
                  batch_size=args.batch_size, n_layers=args.n_layers, d_model=args.d_model,
                  n_heads=args.n_heads, d_mlp=args.d_mlp, init=args.init, gelu=args.gelu, ln_eps=args.ln_eps,
                  pos_table=args.pos_table, **{term.field: getattr(args, term.field) for term in PENALTIES.values()})
    return RunConfig(**{**fields, **overrides})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m grok_lib",
        description="Train grokking transformers on modular arithmetic and store them for complexity "
                    "measurements (DeMoss et al., 'The Complexity Dynamics of Grokking').",
        epilog="Example: python -m grok_lib train --op mul --regime ours --seed 0 --epochs 2000")
    parser.add_argument("--store", type=Path, default=None,
                        help=f"run store directory (default $GROK_RUNS, else {default_root()})")
    sub = parser.add_subparsers(dest="command", required=True)

    p_train = sub.add_parser("train", help="train one run (reuses a finished run, resumes an interrupted one)",
                             description="Train one run into the run store. A finished run with the same "
                                         "config is reused; an interrupted one resumes from its last checkpoint.")
    _add_run_options(p_train)
    p_train.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    p_train.add_argument("--quiet", action="store_true", help="no progress bar")

    p_demo = sub.add_parser("demo", help="train the small CPU demo that groks in minutes and plot it",
                            description="Train the CPU demo run " + ", ".join(f"{k}={v}" for k, v in DEMO.items())
                            + " and write figures/demo_grokking.png")
    p_demo.add_argument("--figures", type=Path, default=Path("figures"), help="output folder (default figures/)")

    p_grid = sub.add_parser(
        "grid", help="train every (regime, seed) of one op; --ensemble trains them in one batched step",
        description="Train the runs of one op for several regimes and seeds into the run store (finished runs "
                    "are reused). With --ensemble all missing runs train together in one vmapped step, each "
                    "stored as its own run, with the same results as training them one at a time.",
        epilog="Example: python -m grok_lib grid --op mul --regimes none wd ours --seeds 0 1 2 --ensemble")
    _add_run_options(p_grid)
    p_grid.add_argument("--regimes", nargs="+", default=list(REGIMES), help="regimes (default: none wd ours)")
    p_grid.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds (default: 0)")
    p_grid.add_argument("--ensemble", action="store_true", help="train all runs in one batched step")
    p_grid.add_argument("--device", help="cpu or cuda (default: cuda if available)")

    p_lmn = sub.add_parser(
        "lmn", help="reproduce the LMN paper's three MLP tasks (Liu, Zhong & Tegmark)",
        description="Train the LMN paper's SiLU MLPs on addition mod 31, S4 composition and 5-bit XOR; track "
                    "LMN, L2 norm and Algorithm 1 complexity; write OUT_DIR/lmn_summary.csv and lmn_* figures.")
    p_lmn.add_argument("out_dir", type=Path, help="directory for the LMN runs and summary tables")
    p_lmn.add_argument("--profile", default="ci", help="ci (seconds) or cpu / paper (the full 20,000 steps)")
    p_lmn.add_argument("--figures", type=Path, default=Path("figures"), help="figure folder (default figures/)")
    p_lmn.add_argument("--seed", type=int, default=0, help="seed of all three runs (default 0)")
    p_lmn.add_argument("--no-complexity", action="store_true", help="skip Algorithm 1")

    sub.add_parser("runs", help="list the stored runs and their progress")
    _add_complexity_parser(sub)

    p_compute = sub.add_parser(
        "compute", help="train and measure a profile's whole grid (what its figures read) on a Dask cluster",
        description="Train every run of a profile, track its complexity and measure the final checkpoints, as "
                    "one set of jobs on a Dask cluster (default: a local one, one process and thread per core). "
                    "Finished work in the run store is reused; an interrupted sweep resumes.",
        epilog="Example: python -m grok_lib compute --profile p113 --export results/p113")
    p_compute.add_argument("--profile", default="p113", help="ci, cpu, p113 or paper (default p113)")
    p_compute.add_argument("--export", type=Path, help="then write the small tables (no checkpoints) and their "
                           "provenance to this folder (e.g. results/p113)")
    p_compute.add_argument("--lmn", action="store_true", help="also the LMN paper's tasks of the profile")
    g = p_compute.add_argument_group("where the jobs run (default: a local Dask cluster)")
    g.add_argument("--workers", type=int, help="local worker processes (default: the profile's; 1 = in this process)")
    g.add_argument("--scheduler", help="a running Dask scheduler: tcp://host:port or its scheduler file")
    g.add_argument("--slurm-queue", help="submit Dask workers as Slurm jobs to this partition (dask-jobqueue)")
    g.add_argument("--slurm-walltime", default="01:00:00", help="Slurm walltime per job (default 01:00:00)")
    g.add_argument("--slurm-cores", type=int, default=4, help="worker processes (one core each) per Slurm job")
    g.add_argument("--slurm-memory", default="16GB", help="memory per Slurm job (default 16GB)")
    g.add_argument("--slurm-jobs", type=int, default=1, help="Slurm jobs to start (default 1)")
    g.add_argument("--slurm-extra", action="append", default=[], help="extra #SBATCH directive, repeatable")
    return parser


def cluster_from(args, default_workers: int):
    """The grok_lib.jobs Cluster that the --workers / --scheduler / --slurm-* options describe."""
    from .jobs.cluster import Cluster, Slurm

    slurm = None
    if args.slurm_queue is not None:
        slurm = Slurm(queue=args.slurm_queue, walltime=args.slurm_walltime, cores=args.slurm_cores,
                      memory=args.slurm_memory, jobs=args.slurm_jobs, extra=tuple(args.slurm_extra))
    return Cluster(workers=args.workers if args.workers is not None else default_workers, scheduler=args.scheduler,
                   slurm=slurm)


def _compute(args, store: RunStore) -> None:
    import time

    from .paper.lmn_reproduce import lmn_jobs, notebook_out_dir
    from .paper.pipeline import compute
    from .paper.profiles import get_profile
    from .paper.tables import export_tables

    profile = get_profile(args.profile)
    cluster = cluster_from(args, profile.workers)
    start = time.perf_counter()
    compute(profile, store, extra=lmn_jobs(notebook_out_dir(profile.name), profile.name) if args.lmn else [],
            cluster=cluster)
    wall = time.perf_counter() - start
    print(f"profile {profile.name}: {len(profile.configs())} runs trained and measured in {store.root} ({wall:.0f} s)")
    if args.export is not None:
        out = export_tables(profile, store, args.export, wall_s=wall)
        print(f"tables and provenance written to {out}")


def _grid(args, store: RunStore) -> None:
    from .training.ensemble import train_ensemble
    from .training.train import grokking_epochs, train

    configs = [_config_from(args, regime=regime, seed=seed) for regime in args.regimes for seed in args.seeds]
    if args.ensemble:
        runs = train_ensemble(configs, store, device=args.device)
    else:
        runs = [train(config, store, device=args.device) for config in configs]
    for run in runs:
        print(f"{run.path.name:40s} first epochs >= 99%: {grokking_epochs(run.metrics())}")


def _add_complexity_parser(sub) -> None:
    from .complexity.coders import CODERS

    p = sub.add_parser(
        "complexity", help="coarse-grained complexity (Algorithms 1 and 2) of every checkpoint of a run",
        description="Measure every stored checkpoint of a run at each eps: Algorithm 1 (Bayesian optimization "
                    "over low-rank threshold tau and bin size Delta), Algorithm 2 (quantization only), both "
                    "coders, the Eq. 4 bound and the total description length. Rows go to RUN_DIR/complexity.csv "
                    "after each checkpoint; an interrupted pass resumes, a finished one is reused.",
        epilog="Example: python -m grok_lib complexity runs/mul-ours-s0-XXXX --eps 1 --eps 0.5")
    p.add_argument("run_dir", nargs="?", type=Path,
                   help="a run directory (default: the stored run that the run options below select)")
    _add_run_options(p)
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


def _complexity(args, store: RunStore) -> None:
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
        config = _config_from(args)
        path = store.root / config.key()
        if not (path / "config.json").is_file():
            raise GrokError("run", f"no stored run {config.key()} in {store.root}; train it first")
    run = store.open_dir(path, config)
    table = track_complexity(run, settings, device=args.device, progress=not args.quiet, epochs=args.checkpoint,
                             workers=args.workers)
    last = table[table.epoch == table.epoch.max()]
    print(f"{run.path / 'complexity.csv'}: {table.epoch.nunique()} checkpoints; at epoch {int(last.epoch.iloc[0])}:")
    for row in last.to_dict("records"):
        kb = {prefix: ", ".join(f"{coder} {row.get(size_column(prefix, coder), math.nan) / 1e3:.1f}" for coder in CODERS)
              for prefix in (ALGORITHM_1, POOLED, ALGORITHM_2, EDGE)}
        edge = f"  edge search {kb[EDGE]} kB" if settings.edge else ""
        print(f"  eps {row['eps']:<7g} Algorithm 1 {kb[ALGORITHM_1]} kB (pooled {kb[POOLED]} kB)  "
              f"Algorithm 2 {kb[ALGORITHM_2]} kB{edge}  naive {row['naive_bytes'] / 1e3:.1f} kB  "
              f"Eq. 4 bound {row[bound_column(ALGORITHM_1, 'paper')]:.2f}")


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    def store_problem(err: OSError) -> str:  # a store that is a file, read-only, a name too long, a full disk
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        return f"store: {err.strerror or err}{where}; check --store ({args.store or default_root()})"

    def body() -> int:
        store = RunStore(args.store)
        if args.command == "train":
            from .training.train import grokking_epochs, train

            run = train(_config_from(args), store, device=args.device, progress=not args.quiet)
            metrics = run.metrics()
            last = metrics.iloc[-1]
            print(f"{run.path}: epoch {int(last.epoch)}, train acc {last.train_acc:.3f}, "
                  f"test acc {last.test_acc:.3f}; first epochs >= 99%: {grokking_epochs(metrics)}")
        elif args.command == "demo":
            from .paper.plots import plot_training
            from .training.train import grokking_epochs, train

            run = train(RunConfig(**DEMO), store)
            path = plot_training(run, args.figures / "demo_grokking")
            print(f"{run.path}: {grokking_epochs(run.metrics())}; figure {path}")
        elif args.command == "complexity":
            _complexity(args, store)
        elif args.command == "grid":
            _grid(args, store)
        elif args.command == "compute":
            _compute(args, store)
        elif args.command == "lmn":
            from .paper.lmn_reproduce import reproduce_lmn

            summary = reproduce_lmn(args.out_dir, args.profile, args.figures, args.seed, not args.no_complexity, True)
            print(summary.to_string(index=False))
        elif args.command == "runs":
            from .lmn.tasks import LMNRunConfig

            assert LMNRunConfig.UNIT == "step"  # imported so that the store can read LMN runs' configs too

            problems: list = []
            for run in store.runs(problems):
                try:
                    logged = run.metrics()[run.unit]
                    done = run.resume_epoch() if run.config.RESUMABLE else (int(logged.max()) if len(logged) else 0)
                except (GrokError, KeyError, ValueError) as err:
                    problems.append((run.path, f"unreadable progress ({err})"))
                    continue
                print(f"{run.path.name:40s} {run.unit} {done:>6}/{run.config.length}")
            for path, message in problems:
                print(f"{path.name:40s} unreadable: {message}")
        return 0

    return run_command(body, on_os_error=store_problem)
