"""The ComplexityMonitor's cost to a training loop: training wall time with and without it, side by side.

Run:  nice -n 5 .venv/bin/python benchmarks/bench_monitor.py [--steps 20000] [--repeats 3]

The run: examples/monitor_digits.py's MLP (64-128-10, one torch thread) on scikit-learn's digits, AdamW on
minibatches of 64, the monitor at its defaults (schedule floor(1.3^n), the edge search at eps 1, model
stats and LMN, one worker process at nice +10). Each repeat trains the same seeded run without the monitor,
then with it, then with it at nice 0, so that the three share the machine's load of the moment; the ratio
is of the loop's wall time (the first step to the last, the monitor's construction and its worker's start
included, close() not). Also printed: the time step() takes on the training thread when it snapshots, the
lag from a snapshot to its result being written (median, max), the worker's own seconds per measurement and
how long close() waited for the measurements still pending at the end, and the training thread's CPU time
against the run without (CPU ratio: what the monitor costs the loop itself, apart from waiting for a core).
Target: ratio <= 1.10.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from monitor_digits import digits  # noqa: E402

from grok_lib.monitor import ComplexityMonitor  # noqa: E402


def train_loop(steps: int, monitor_options: dict | None, out: Path) -> dict:
    """Seconds of the training loop (and the monitor's numbers, with one)."""
    torch.manual_seed(0)
    train, test = digits()
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    start, start_cpu = time.perf_counter(), time.thread_time()
    monitor = None if monitor_options is None else ComplexityMonitor(
        model, F.cross_entropy, train, test_data=test, csv=out / "complexity.csv", tensorboard=out / "tb",
        **monitor_options)
    snapshot_s = []
    for step in range(1, steps + 1):
        batch = torch.randint(0, len(train[0]), (64,))
        loss = F.cross_entropy(model(train[0][batch]), train[1][batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if monitor is not None:
            before = time.perf_counter()
            if monitor.step(step):
                snapshot_s.append(time.perf_counter() - before)
    loop, cpu = time.perf_counter() - start, time.thread_time() - start_cpu
    if monitor is None:
        return {"loop_s": loop, "cpu_s": cpu}
    before = time.perf_counter()
    monitor.close()
    rows = monitor.results()
    return {"loop_s": loop, "cpu_s": cpu, "close_s": time.perf_counter() - before, "snapshots": len(snapshot_s),
            "measured": len(rows), "step_ms": 1e3 * statistics.median(snapshot_s or [0.0]),
            "lag_median_s": float(rows.lag_s.median()) if len(rows) else 0.0,
            "lag_max_s": float(rows.lag_s.max()) if len(rows) else 0.0,
            "measure_s": float(rows.measure_s.median()) if len(rows) else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="training steps per run (default 20000)")
    parser.add_argument("--repeats", type=int, default=3, help="side-by-side repeats (default 3)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the example's setting: one thread is fastest for this MLP
    variants = {"without": None, "monitor (defaults)": {}, "monitor, nice 0": {"nice": 0}}
    results: dict[str, list[dict]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for i, (name, options) in enumerate(variants.items()):
                results[name].append(train_loop(args.steps, options, Path(tmp) / f"{repeat}-{i}"))
                print(f"repeat {repeat}: {name:20s} loop {results[name][-1]['loop_s']:.2f} s", flush=True)
    base = [r["loop_s"] for r in results["without"]]
    print(f"\n{args.steps} steps, {args.repeats} repeats, torch {torch.__version__}, 1 training thread")
    cpu_base = [r["cpu_s"] for r in results["without"]]
    print(f"{'variant':20s} {'loop s (median)':>15s} {'ratio (per repeat)':>28s} {'CPU ratio':>9s} {'step() ms':>9s} "
          f"{'lag med/max s':>14s} {'measure s':>9s} {'close s':>7s} {'measured':>8s}")
    for name, runs in results.items():
        loops = [r["loop_s"] for r in runs]
        ratios = [r / b for r, b in zip(loops, base)]
        cpu = statistics.median(r["cpu_s"] / b for r, b in zip(runs, cpu_base))
        line = f"{name:20s} {statistics.median(loops):15.2f} {statistics.median(ratios):8.3f} " \
               f"({', '.join(f'{x:.3f}' for x in ratios)})".ljust(66) + f" {cpu:9.3f}"
        if name != "without":
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0] if k != "loop_s"}
            line += f" {med['step_ms']:9.2f} {med['lag_median_s']:6.1f}/{med['lag_max_s']:<6.1f} " \
                    f"{med['measure_s']:9.3f} {med['close_s']:7.1f} {int(med['measured']):4d}/{int(med['snapshots'])}"
        print(line)


if __name__ == "__main__":
    main()
