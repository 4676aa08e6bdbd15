"""Command line: `python -m grok_lib train|demo|runs|complexity ...`. Bad input exits with status 2 and one line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import GrokError, run_command
from .paths import default_root

# the commands and their one-line help: the top-level help is answered from these alone, without importing
# torch (about a second); a command's own options are built when it is named
COMMANDS = {
    "train": "train one run (reuses a finished run, resumes an interrupted one)",
    "demo": "train the small CPU demo that groks in minutes and plot it",
    "grid": "train every (regime, seed) of one op; --ensemble trains them in one batched step",
    "lmn": "reproduce the LMN paper's three MLP tasks (Liu, Zhong & Tegmark)",
    "runs": "list the stored runs and their progress",
    "verify": "check committed results: retrain a sample of their runs, re-measure a checkpoint",
    "complexity": "coarse-grained complexity (Algorithms 1 and 2) of every checkpoint of a run",
    "compute": "train and measure a profile's whole grid (what its figures read) on a Dask cluster",
}


def _top_parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    parser = argparse.ArgumentParser(
        prog="python -m grok_lib",
        description="Train grokking transformers on modular arithmetic and store them for complexity "
                    "measurements (DeMoss et al., 'The Complexity Dynamics of Grokking').",
        epilog="Example: python -m grok_lib train --op mul --regime ours --seed 0 --epochs 2000")
    parser.add_argument("--store", type=Path, default=None,
                        help=f"run store directory (default $GROK_RUNS, else {default_root()})")
    return parser, parser.add_subparsers(dest="command", required=True)


def light_parser() -> argparse.ArgumentParser:
    """The top-level parser with the commands' names and help only (what `--help` prints)."""
    parser, sub = _top_parser()
    for name, text in COMMANDS.items():
        sub.add_parser(name, help=text)
    return parser



def _add_run_options(parser: argparse.ArgumentParser) -> None:
    from .training.ops import OPS
    from .training.regularizers import PENALTIES

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


def _config_from(args, **overrides):
    """The RunConfig the options describe; `overrides` (e.g. regime, seed) win over the options."""
    from .training.config import RunConfig
    from .training.regularizers import PENALTIES

    fields = dict(op=args.op, regime=args.regime, seed=args.seed, epochs=args.epochs, p=args.p,
                  train_frac=args.train_frac, lr=args.lr, weight_decay=args.weight_decay, noise=args.noise,
                  batch_size=args.batch_size, n_layers=args.n_layers, d_model=args.d_model,
                  n_heads=args.n_heads, d_mlp=args.d_mlp, init=args.init, gelu=args.gelu, ln_eps=args.ln_eps,
                  pos_table=args.pos_table, **{term.field: getattr(args, term.field) for term in PENALTIES.values()})
    return RunConfig(**{**fields, **overrides})


def _add_tensorboard(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--tensorboard", type=Path, metavar="DIR", help=f"also write {what} as TensorBoard events "
                        "to DIR/<run name>/: tensorboard --logdir DIR (needs the tensorboard package)")


def build_parser() -> argparse.ArgumentParser:
    from .cli_complexity import add_complexity_parser
    from .training.config import DEMO, REGIMES

    parser, sub = _top_parser()

    p_train = sub.add_parser("train", help=COMMANDS["train"],
                             description="Train one run into the run store. A finished run with the same "
                                         "config is reused; an interrupted one resumes from its last checkpoint.")
    _add_run_options(p_train)
    p_train.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    p_train.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_tensorboard(p_train, "the logged metrics and each logged checkpoint's complexity (from a worker process)")

    p_demo = sub.add_parser("demo", help=COMMANDS["demo"],
                            description="Train the CPU demo run " + ", ".join(f"{k}={v}" for k, v in DEMO.items())
                            + " and write figures/demo_grokking.png")
    p_demo.add_argument("--figures", type=Path, default=Path("figures"), help="output folder (default figures/)")

    p_grid = sub.add_parser(
        "grid", help=COMMANDS["grid"],
        description="Train the runs of one op for several regimes and seeds into the run store (finished runs "
                    "are reused). With --ensemble all missing runs train together in one vmapped step, each "
                    "stored as its own run, with the same results as training them one at a time.",
        epilog="Example: python -m grok_lib grid --op mul --regimes none wd ours --seeds 0 1 2 --ensemble")
    _add_run_options(p_grid)
    p_grid.add_argument("--regimes", nargs="+", default=list(REGIMES), help="regimes (default: none wd ours)")
    p_grid.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds (default: 0)")
    p_grid.add_argument("--ensemble", action="store_true", help="train all runs in one batched step")
    p_grid.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    _add_tensorboard(p_grid, "each run's logged metrics and its logged checkpoints' complexity")

    p_lmn = sub.add_parser(
        "lmn", help=COMMANDS["lmn"],
        description="Train the LMN paper's SiLU MLPs on addition mod 31, S4 composition and 5-bit XOR; track "
                    "LMN, L2 norm and Algorithm 1 complexity; write OUT_DIR/lmn_summary.csv and lmn_* figures.")
    p_lmn.add_argument("out_dir", type=Path, help="directory for the LMN runs and summary tables")
    p_lmn.add_argument("--profile", default="ci", help="ci (seconds) or cpu / paper (the full 20,000 steps)")
    p_lmn.add_argument("--figures", type=Path, default=Path("figures"), help="figure folder (default figures/)")
    p_lmn.add_argument("--seed", type=int, default=0, help="seed of all three runs (default 0)")
    p_lmn.add_argument("--no-complexity", action="store_true", help="skip Algorithm 1")

    sub.add_parser("runs", help=COMMANDS["runs"])

    p_verify = sub.add_parser(
        "verify", help=COMMANDS["verify"],
        description="Retrain runs of a committed results folder (into a scratch store) at the recorded thread "
                    "count and compare every logged metric with the committed tables (bit for bit on the "
                    "recorded torch version, else within a printed tolerance); then measure the committed "
                    "checkpoint again. Prints what matched; exits 1 on a mismatch.",
        epilog="Example: python -m grok_lib verify results/p113 --runs 2 --epochs 100")
    p_verify.add_argument("folder", type=Path, help="a committed results folder, e.g. results/p113")
    p_verify.add_argument("--runs", type=int, default=1, help="how many runs to retrain, in name order (default 1)")
    p_verify.add_argument("--run", action="append", default=[], help="retrain this run (by name; repeatable)")
    p_verify.add_argument("--epochs", type=int, help="train only this prefix of each run (default: all its epochs)")
    p_verify.add_argument("--no-complexity", action="store_true", help="skip re-measuring the committed checkpoint")
    add_complexity_parser(sub, _add_run_options, COMMANDS["complexity"])

    p_compute = sub.add_parser(
        "compute", help=COMMANDS["compute"],
        description="Train every run of a profile, track its complexity and measure the final checkpoints, as "
                    "one set of jobs on a Dask cluster (default: a local one, one process and thread per core). "
                    "Finished work in the run store is reused; an interrupted sweep resumes.",
        epilog="Example: python -m grok_lib compute --profile p113 --export results/p113")
    p_compute.add_argument("--profile", default="p113", help="ci, cpu, p113 or paper (default p113)")
    p_compute.add_argument("--export", type=Path, help="then write the small tables (no checkpoints) and their "
                           "provenance to this folder (e.g. results/p113)")
    p_compute.add_argument("--lmn", action="store_true", help="also the LMN paper's tasks of the profile")
    _add_tensorboard(p_compute, "each run's logged metrics and tracked complexity (at each eps), once computed")
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


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not set(argv) & set(COMMANDS):  # no command named: `--help`, or an error, answered without torch
        light_parser().parse_args(argv)
    from .cli_complexity import measure_run
    from .store import RunStore
    from .training.config import DEMO, RunConfig

    parser = build_parser()
    args = parser.parse_args(argv)
    from .log import configure

    configure()  # the package's messages on stderr; results on stdout

    def store_problem(err: OSError) -> str:  # a store that is a file, read-only, a name too long, a full disk
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        return f"store: {err.strerror or err}{where}; check --store ({args.store or default_root()})"

    def body() -> int:
        store = RunStore(args.store)
        if args.command == "train":
            from .training.train import grokking_epochs, train

            if args.tensorboard is None:
                run = train(_config_from(args), store, device=args.device, progress=not args.quiet)
            else:
                from .monitor.board import train_with_board

                run = train_with_board(_config_from(args), store, args.tensorboard, device=args.device,
                                       progress=not args.quiet)
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
            measure_run(args, store, _config_from)
        elif args.command == "grid":
            from .cli_compute import grid_command

            grid_command(args, store, [_config_from(args, regime=r, seed=s) for r in args.regimes for s in args.seeds])
        elif args.command == "compute":
            from .cli_compute import compute_command

            compute_command(args, store)
        elif args.command == "verify":
            from .paper.verify import report, verify

            checks = verify(args.folder, args.runs, args.epochs, tuple(args.run), not args.no_complexity)
            print(report(checks))
            return 0 if all(c.ok for c in checks) else 1
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
