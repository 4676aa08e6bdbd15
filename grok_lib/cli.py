"""Command line: `python -m grok_lib train|demo|runs ...`. Bad input exits with status 2 and one line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import REGIMES, RunConfig
from .data import OPS
from .errors import GrokError
from .store import DEFAULT_ROOT, RunStore

# The CPU demo: a small transformer that groks on 2 CPU cores in a few minutes (README, "CPU demo").
DEMO = dict(op="add", regime="wd", p=59, train_frac=0.3, d_model=128, d_mlp=512, n_layers=1, epochs=2000)


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("what to train (unset options take the paper's value for the op/regime)")
    g.add_argument("--op", default="mul", help=f"operation: {', '.join(f'{k} ({v[0]})' for k, v in OPS.items())}")
    g.add_argument("--regime", default="ours", help="none (no regularizer), wd (weight decay 1), "
                   "ours (weight decay + weight noise + spectral entropy, the paper's regularizer)")
    g.add_argument("--seed", type=int, default=0, help="seeds split, init, shuffling and noise (default 0)")
    g.add_argument("--epochs", type=int, default=10_000, help="training epochs; the paper's 'steps' (default 10000)")
    g.add_argument("--p", type=int, default=113, help="modulus (default 113; prime for div)")
    g.add_argument("--train-frac", type=float, help="train fraction (paper: 0.2 for add/mul, 0.3 for sub/div)")
    g.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default 1e-3)")
    g.add_argument("--weight-decay", type=float, help="AdamW weight decay (regime preset: 0 or 1)")
    g.add_argument("--noise", type=float, help="weight-noise std delta (ours: 1e-2 add/mul, 1e-3 sub/div)")
    g.add_argument("--beta", type=float, help="spectral-entropy penalty scale (ours: 0.1)")
    g.add_argument("--batch-size", type=int, help="minibatch size (default min(512, N_train/2))")
    g.add_argument("--n-layers", type=int, help="transformer layers (paper: 1 for add/mul, 2 for sub/div)")
    g.add_argument("--d-model", type=int, default=128, help="residual width (default 128)")
    g.add_argument("--n-heads", type=int, default=4, help="attention heads (default 4)")
    g.add_argument("--d-mlp", type=int, default=512, help="MLP width (default 512)")


def _config_from(args) -> RunConfig:
    return RunConfig(op=args.op, regime=args.regime, seed=args.seed, epochs=args.epochs, p=args.p,
                     train_frac=args.train_frac, lr=args.lr, weight_decay=args.weight_decay, noise=args.noise,
                     beta=args.beta, batch_size=args.batch_size, n_layers=args.n_layers, d_model=args.d_model,
                     n_heads=args.n_heads, d_mlp=args.d_mlp)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m grok_lib",
        description="Train grokking transformers on modular arithmetic and store them for complexity "
                    "measurements (DeMoss et al., 'The Complexity Dynamics of Grokking').",
        epilog="Example: python -m grok_lib train --op mul --regime ours --seed 0 --epochs 2000")
    parser.add_argument("--store", type=Path, default=DEFAULT_ROOT,
                        help=f"run store directory (default {DEFAULT_ROOT}, or $GROK_RUNS)")
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

    sub.add_parser("runs", help="list the stored runs and their progress")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        store = RunStore(args.store)
        if args.command == "train":
            from .train import grokking_epochs, train

            run = train(_config_from(args), store, device=args.device, progress=not args.quiet)
            metrics = run.metrics()
            last = metrics.iloc[-1]
            print(f"{run.path}: epoch {int(last.epoch)}, train acc {last.train_acc:.3f}, "
                  f"test acc {last.test_acc:.3f}; first epochs >= 99%: {grokking_epochs(metrics)}")
        elif args.command == "demo":
            from .plots import plot_training
            from .train import grokking_epochs, train

            run = train(RunConfig(**DEMO), store)
            path = plot_training(run, args.figures / "demo_grokking")
            print(f"{run.path}: {grokking_epochs(run.metrics())}; figure {path}")
        elif args.command == "runs":
            for run in store.runs():
                print(f"{run.path.name:40s} epoch {run.resume_epoch():>6}/{run.config.epochs}")
    except GrokError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
