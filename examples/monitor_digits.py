"""grok_lib's ComplexityMonitor on a network that is not ours: a small MLP classifying scikit-learn's 8x8
digits (1,797 images, shipped with scikit-learn), trained with AdamW while its complexity, Eq. 4 bound, L2
norm, spectral entropy, effective rank and LMN are measured in a worker process at log-spaced steps.

    .venv/bin/python examples/monitor_digits.py [--out build/monitor_digits] [--steps 3000]
    tensorboard --logdir build/monitor_digits/tensorboard

Under a minute on a 2-core CPU. The model (an nn.Sequential) and the loss (F.cross_entropy) are pickled to
the worker, so the training code sits under `if __name__ == "__main__":`, as any spawned process needs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from grok_lib.log import configure
from grok_lib.monitor import ComplexityMonitor


def digits(seed: int = 0):
    """(train, test) pairs: pixels scaled to [0, 1], a seeded 75 / 25 split."""
    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target, dtype=torch.long)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    cut = int(0.75 * len(x))
    return (x[order[:cut]], y[order[:cut]]), (x[order[cut:]], y[order[cut:]])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/monitor_digits"), help="output folder")
    parser.add_argument("--steps", type=int, default=3000, help="AdamW steps (minibatches of 64)")
    parser.add_argument("--eps", type=float, default=0.1, help="distortion bound in nats (default 0.1)")
    args = parser.parse_args(argv)
    configure()  # grok_lib's messages (a worker that fails, ...) on stderr
    # a 64-128-10 MLP on 64-image batches: one thread is fastest, and on a busy 2-core machine two threads
    # spin against each other (3,000 steps: 1.5 s on one thread, ~55 s on two, measured here)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    train, test = digits()
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    start = time.perf_counter()
    # the default schedule: steps floor(1.3^n) = 1, 2, 3, 4, 6, 8, 10, 13, ... (30 of them up to 3,000)
    with ComplexityMonitor(model, F.cross_entropy, train, test_data=test, eps=args.eps,
                           csv=args.out / "complexity.csv", tensorboard=args.out / "tensorboard") as monitor:
        for step in range(1, args.steps + 1):
            batch = torch.randint(0, len(train[0]), (64,))
            loss = F.cross_entropy(model(train[0][batch]), train[1][batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            monitor.step(step)
        trained = time.perf_counter() - start
        print(f"trained {args.steps} steps in {trained:.1f} s; waiting for {monitor.pending} measurement(s)")
    results = monitor.results()
    print(f"{len(results)} snapshots measured ({time.perf_counter() - start:.1f} s in all)")
    print(results[["step", "train_acc", "test_acc", "paper_bytes", "entropy_bytes", "bound_entropy", "l2_norm",
                   "effective_rank", "lmn", "lag_s"]].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"table: {args.out / 'complexity.csv'}")
    print(f"TensorBoard logs: {args.out / 'tensorboard'}  (view: tensorboard --logdir {args.out / 'tensorboard'})")


if __name__ == "__main__":
    main()
