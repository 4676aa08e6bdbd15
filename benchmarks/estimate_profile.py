"""What a profile's grid will cost on this machine, measured before running it.

    .venv/bin/python benchmarks/estimate_profile.py --profile p113 [--epochs 5] [--workers 2]

For each distinct (layers, train fraction, regime) of the grid: milliseconds per training epoch
(grok_lib's own train_epoch on one thread, after a warm-up epoch); for each architecture: seconds per
tracked checkpoint (Algorithm 1 and 2 at the profile's eps along training) and per final checkpoint (all
the final eps), both on a checkpoint trained for --search-epochs epochs (around memorization, where the searches
visit the most Delta: an untrained network meets the bound at the first one). The estimate is
sum over runs of epochs x ms/epoch + tracked checkpoints x s + final x s, in CPU seconds, then divided
by the workers (one thread each) for the wall time. Prints one line per cell and the total.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from grok_lib.complexity.tracking import measure_checkpoint
from grok_lib.paper.pipeline import wanted_epochs
from grok_lib.paper.profiles import get_profile, tracking_settings
from grok_lib.store import RunStore
from grok_lib.training.data import make_split
from grok_lib.training.train import init_training, train, train_epoch


def epoch_ms(config, epochs: int) -> float:
    split = make_split(config.op, config.p, config.train_frac, config.seed)
    model, optimizer, generators = init_training(config, "cpu")
    batch = config.batch_size_for(len(split.train_x))
    train_epoch(model, optimizer, split, config, generators, batch)  # warm-up
    start = time.perf_counter()
    for _ in range(epochs):
        train_epoch(model, optimizer, split, config, generators, batch)
    return 1000 * (time.perf_counter() - start) / epochs


def checkpoint_s(config, settings, store: RunStore, epochs: int) -> float:
    """Seconds for one checkpoint's measurement at `settings`, on the run trained for `epochs` epochs."""
    run = train(config.with_(epochs=epochs), store, progress=False)
    split = make_split(config.op, config.p, config.train_frac, config.seed)
    start = time.perf_counter()
    measure_checkpoint(run, epochs, settings, split)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="p113")
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per cell (default 5)")
    parser.add_argument("--search-epochs", type=int, default=100,
                        help="epochs trained before the timed searches (default 100: around memorization)")
    parser.add_argument("--workers", type=int, help="parallel workers for the wall time (default: the profile's)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    profile = get_profile(args.profile)
    workers = args.workers or profile.workers
    configs = profile.configs()
    track, final = tracking_settings(profile), tracking_settings(profile, final=True)
    cells: dict[tuple, tuple[float, float, float]] = {}
    epoch_cache: dict[tuple, float] = {}  # (layers, train fraction, regime): ms per epoch
    search_cache: dict[int, tuple[float, float]] = {}  # layers: seconds per tracked / final checkpoint
    total = 0.0
    print(f"profile {profile.name}: {len(configs)} runs; torch {torch.__version__}, 1 thread per worker")
    print(f"{'op':4s} {'regime':6s} {'layers':>6s} {'n_train':>7s} {'ms/epoch':>9s} {'s/tracked':>10s} "
          f"{'s/final':>8s} {'runs':>5s} {'epochs':>6s} {'tracked':>8s} {'CPU s':>8s}")
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(tmp)
        for config in configs:
            key = (config.op, config.regime)
            if key in cells:
                continue
            shape = (config.n_layers, config.train_frac, config.regime)
            if shape not in epoch_cache:
                epoch_cache[shape] = epoch_ms(config, args.epochs)
            if config.n_layers not in search_cache:  # a search's cost: the architecture's, not the regime's
                search_cache[config.n_layers] = (checkpoint_s(config, track, store, args.search_epochs),
                                                 checkpoint_s(config, final, store, args.search_epochs))
            cells[key] = (epoch_cache[shape], *search_cache[config.n_layers])
        for (op, regime), (ms, s_track, s_final) in cells.items():
            runs = [c for c in configs if (c.op, c.regime) == (op, regime)]
            c = runs[0]
            tracked = len(wanted_epochs(c, profile))
            cpu = len(runs) * (c.epochs * ms / 1000 + tracked * s_track + s_final)
            total += cpu
            n_train = round(c.train_frac * c.p * (c.p - 1 if op == "div" else c.p))
            print(f"{op:4s} {regime:6s} {c.n_layers:>6d} {n_train:>7d} {ms:>9.1f} {s_track:>10.1f} {s_final:>8.1f} "
                  f"{len(runs):>5d} {c.epochs:>6d} {tracked:>8d} {cpu:>8.0f}")
    print(f"total {total:.0f} CPU s = {total / 3600:.2f} CPU h; on {workers} worker(s): about "
          f"{total / workers / 3600:.2f} h wall (perfect packing)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
