"""Milliseconds per training epoch of the paper-size model in each regime, measured side by side.

    .venv/bin/python benchmarks/bench_epoch.py --op mul --epochs 5

Runs grok_lib.training.train.train_epoch (the exact loop `train` uses, without the logging at scheduled
epochs) on the paper's config for the op: 1 layer for add/mul, 2 for sub/div; minibatch 512.
"""

import argparse
import time

import torch

from grok_lib.training.config import REGIMES, RunConfig
from grok_lib.training.data import make_split
from grok_lib.training.train import init_training, pick_device, train_epoch


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--op", default="mul")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--device")
    args = parser.parse_args()
    device = pick_device(args.device)
    print(f"device {device}, torch {torch.__version__}, CPU threads {torch.get_num_threads()}")
    for regime in REGIMES:
        config = RunConfig(op=args.op, regime=regime)
        split = make_split(config.op, config.p, config.train_frac, config.seed).to(device)
        model, optimizer, generators = init_training(config, device)
        batch = config.batch_size_for(len(split.train_x))
        train_epoch(model, optimizer, split, config, generators, batch)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(args.epochs):
            train_epoch(model, optimizer, split, config, generators, batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        ms = 1000 * (time.perf_counter() - start) / args.epochs
        steps = -(-len(split.train_x) // batch)
        print(f"{config.op} {regime:5s} ({config.n_layers} layer, {steps} steps of <= {batch}): "
              f"{ms:7.1f} ms/epoch, {ms / steps:6.1f} ms/step")


if __name__ == "__main__":
    main()
