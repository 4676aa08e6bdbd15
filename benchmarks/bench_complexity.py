"""Seconds per checkpoint of Algorithm 1 (default budget) on the paper-size 1-layer model, side by side.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_complexity.py --repeat 3 --alg1-throughput 6 --throughput 6
    python benchmarks/bench_complexity.py --device cuda --batch 8 --batched-losses --throughput 16 --workers 16

The checkpoint: RunConfig(op="mul", regime=R, epochs=E) (default: wd, 150 epochs, memorized: train
accuracy 1.0, test 0.03; 19 minutes to train once on the shared 2-core machine), trained with
grok_lib.training.train.train into --store (reused when already there); its last checkpoint is measured.

1. Latency: Algorithm 1 alone (2 probes + 10 random + 50 guided points, eps = --eps) on a fresh
   ComplexityProblem, run --repeat times per path, the paths in turn (A B A B ...) so that load from other
   processes falls on all alike; medians. Paths:
     stock     skopt's own GaussianProcessRegressor and Space, every compression in the caller's thread
               (the state before grok_lib.complexity.surrogate and background compression);
     fast      the default: grok_lib.complexity.surrogate.FastGP + ArraySpace, compression on a background thread
               overlapping the loss evaluations;
     fast batch K  (--batch K) the same, proposing K guided points per round (BayesConfig.batch:
               skopt's constant liar), compressed side by side; a different search, so its size is printed
               beside the sequential one;
     textbook  (--textbook) our first implementation: stock, plus the textbook transformer forward
               (every position through every block, no token-position tables) on the process's thread
               settings (threads=None).
   Each line splits the wall time into SVD, coarse-graining, training-loss forwards, compression (time
   the search waited for it; compress_background: time spent compressing in the background thread) and
   the optimizer's own ask/tell time, and prints the result, which must be the same on every path.
2. Batched losses (--batched-losses): ComplexityProblem.evaluate_many on 16 (tau, Delta) points, in one
   vmap'd forward per chunk vs one point at a time, and the largest relative difference of the losses.
3. Algorithm 1 throughput (--alg1-throughput K): Algorithm 1 alone, as in 1., on the run's last K
   checkpoints, in 1 worker process and then in --workers processes side by side (each process: one torch
   thread, its own compression threads): seconds per checkpoint of each (wall time of the whole pool over
   K, process start-up included), their ratio, and whether both gave the same sizes.
4. Throughput (--throughput K): grok_lib.complexity.tracking.track_complexity (eps = 1: Algorithm 2, then
   Algorithm 1 seeded with it, both coders, as along training) on the run's last K checkpoints, copied to
   a temporary run, with 1 worker process and then --workers (default 2): seconds per checkpoint of each,
   and their ratio.
"""

import argparse
import os
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import torch
import torch.nn.functional as F
from skopt.learning import GaussianProcessRegressor
from skopt.space import Space

import grok_lib.complexity.search as search
from grok_lib.complexity.problem import ComplexityProblem
from grok_lib.training.config import RunConfig
from grok_lib.training.data import make_split
from grok_lib.training.model import Transformer
from grok_lib.complexity.quantization import quantization_complexity
from grok_lib.complexity.search import BayesConfig, bayesian_complexity
from grok_lib.store import Run, RunStore
from grok_lib.complexity.measurement import PAPER
from grok_lib.complexity.tracking import TrackingSettings, track_complexity
from grok_lib.training.train import train


class ReferenceTransformer(Transformer):
    """The same parameters, through the textbook forward: the slow path the fast one is measured against."""

    def forward(self, tokens):
        B, T = tokens.shape
        x = self.embed(tokens) + self.pos.weight[:T]
        for block in self.blocks:
            attn, h, D = block.attn, block.attn.n_heads, x.shape[-1]

            def heads(t):
                return t.view(B, T, h, D // h).transpose(1, 2)  # (B, h, T, d_head)

            q, k, v = heads(attn.query(x)), heads(attn.key(x)), heads(attn.value(x))
            weights = torch.softmax(q @ k.transpose(-2, -1) / (D // h) ** 0.5, dim=-1)
            x = block.ln_attn(x + attn.out((weights @ v).transpose(1, 2).reshape(B, T, D)))
            x = block.ln_mlp(x + block.mlp_out(F.gelu(block.mlp_in(x))))
        return self.unembed(x[:, -1])


class Stock:
    """Within this block, Algorithm 1 uses skopt's own GP and Space (restored on exit)."""

    def __enter__(self):
        self.saved = search.FastGP, search.ArraySpace
        search.FastGP, search.ArraySpace = GaussianProcessRegressor, Space

    def __exit__(self, *exc):
        search.FastGP, search.ArraySpace = self.saved


class Fast:
    def __enter__(self):
        pass

    def __exit__(self, *exc):
        pass


def report(label: str, seconds: float, cpu_seconds: float, problem: ComplexityProblem, result) -> None:
    parts = ", ".join(f"{k} {v:.2f}" for k, v in sorted(problem.timings.items()))
    print(f"{label:32s} {seconds:6.2f} s wall, {cpu_seconds:6.2f} s CPU  [{parts}]  evals {result.n_evaluations} "
          f"(distinct {len(problem.evaluations)}, compressed {len(problem.sizes)})  "
          f"paper {result.paper_bytes} B, symbols {result.symbols_bytes} B ({result.symbols_codec}), "
          f"tau {'-' if result.tau is None else f'{result.tau:.6f}'}, delta {result.delta:.6g}, train loss {result.train_loss:.4f} "
          f"(ref {result.reference_train_loss:.4f})", flush=True)


def latency(args, model, split) -> None:
    textbook = ReferenceTransformer(model.cfg)
    textbook.load_state_dict(model.state_dict())
    # (name, network, threads, background compression, optimizer parts, batch)
    paths = [("stock", model, 1, False, Stock, 1), ("fast", model, 1, True, Fast, 1)]
    if args.textbook:
        paths.insert(0, ("textbook", textbook, None, False, Stock, 1))
    paths += [(f"fast batch {k}", model, 1, True, Fast, k) for k in args.batch if k > 1]
    data = dict(train_data=(split.train_x, split.train_y), test_data=(split.test_x, split.test_y))
    seconds = {name: [] for name, *_ in paths}
    sizes, batch_sizes = set(), {}
    for repeat in range(args.repeat):
        for name, network, threads, background, parts, batch in paths:
            start, cpu = time.perf_counter(), time.process_time()
            with parts():
                problem = ComplexityProblem(network, F.cross_entropy, threads=threads, background=background, **data)
                result = bayesian_complexity(problem, args.eps, BayesConfig(estimator=args.estimator, batch=batch))
            seconds[name].append(time.perf_counter() - start)
            if batch == 1:
                sizes.add((result.paper_bytes, result.symbols_bytes))
            else:
                batch_sizes.setdefault(name, set()).add(result.paper_bytes)
            report(f"Algorithm 1 ({args.estimator}) {name} #{repeat + 1}", seconds[name][-1],
                   time.process_time() - cpu, problem, result)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    print(f"median of {args.repeat}: " + ", ".join(f"{name} {value:.2f} s" for name, value in median.items())
          + f"; stock / fast {median['stock'] / median['fast']:.2f}x"
          + (f", textbook / fast {median['textbook'] / median['fast']:.1f}x" if args.textbook else "")
          + f"; sequential results {'identical' if len(sizes) == 1 else 'DIFFER: ' + str(sorted(sizes))}"
          + "".join(f"; {name}: {median[name]:.2f} s, fast / it {median['fast'] / median[name]:.2f}x, paper bytes "
                    f"{sorted(values)} vs {sorted(sizes)[0][0]}" for name, values in batch_sizes.items()), flush=True)
    if not args.no_algorithm_2:
        start = time.perf_counter()
        problem = ComplexityProblem(model, F.cross_entropy, **data)
        result = quantization_complexity(problem, args.eps)
        report("Algorithm 2 fast", time.perf_counter() - start, 0.0, problem, result)


def batched_losses(args, model, split) -> None:
    """evaluate_many over 16 (tau, Delta) points, vmap'd vs one at a time, side by side (medians of 3)."""
    points = [(tau, delta) for tau in (0.8, 0.9, 0.95, 1.0) for delta in (3e-3, 1e-2, 2e-2, 5e-2)]
    seconds = {True: [], False: []}
    losses = {}
    for _ in range(3):
        for vectorize in (False, True):
            problem = ComplexityProblem(model, F.cross_entropy, (split.train_x, split.train_y), vectorize=vectorize)
            with problem.limited_threads():  # one thread, as inside the searches
                start = time.perf_counter()
                evaluations = problem.evaluate_many(points, args.eps)
                if args.device == "cuda":
                    torch.cuda.synchronize()
                seconds[vectorize].append(time.perf_counter() - start)
            losses[vectorize] = [e.train_loss for e in evaluations]
    one, many = statistics.median(seconds[False]), statistics.median(seconds[True])
    worst = max(abs(a - b) / max(abs(a), 1e-12) for a, b in zip(losses[False], losses[True]))
    print(f"16 points' training losses: one at a time {one:.3f} s, vmap'd {many:.3f} s "
          f"(one / vmap'd {one / many:.2f}x); largest relative difference {worst:.1e}", flush=True)


def _algorithm_1_job(store: str, config: RunConfig, epoch: int, eps: float, estimator: str) -> int:
    """One checkpoint's Algorithm 1 (default budget) in a worker process: its paper bytes."""
    model = RunStore(Path(store)).run(config).load_model(epoch)
    split = make_split(config.op, config.p, config.train_frac, config.seed)
    problem = ComplexityProblem(model, F.cross_entropy, (split.train_x, split.train_y), (split.test_x, split.test_y))
    return bayesian_complexity(problem, eps, BayesConfig(estimator=estimator)).paper_bytes


def algorithm_1_throughput(args, run: Run, k: int) -> None:
    epochs = run.checkpoints()[-k:]
    per_checkpoint, sizes = {}, {}
    for workers in (1, args.workers):
        start = time.perf_counter()
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            sizes[workers] = list(pool.map(_algorithm_1_job, [str(args.store)] * k, [run.config] * k, epochs,
                                           [args.eps] * k, [args.estimator] * k))
        per_checkpoint[workers] = (time.perf_counter() - start) / k
        print(f"Algorithm 1 on {k} checkpoints (epochs {epochs[0]}-{epochs[-1]}), eps {args.eps}, {workers} "
              f"worker process(es): {per_checkpoint[workers]:.2f} s per checkpoint; paper kB "
              f"{[round(b / 1e3, 1) for b in sizes[workers]]}", flush=True)
    print(f"Algorithm 1 throughput workers {args.workers} / workers 1: "
          f"{per_checkpoint[1] / per_checkpoint[args.workers]:.2f}x; sizes "
          f"{'identical' if sizes[1] == sizes[args.workers] else 'DIFFER'}", flush=True)


def throughput(args, run: Run, k: int) -> None:
    epochs = run.checkpoints()[-k:]
    settings = TrackingSettings(eps=(args.eps,), how=PAPER.but(budget=BayesConfig(estimator=args.estimator)))
    per_checkpoint = {}
    for workers in (1, args.workers):
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / run.path.name
            shutil.copytree(run.path, copy, ignore=shutil.ignore_patterns("complexity.*"))
            start = time.perf_counter()
            table = track_complexity(Run(copy, run.config), settings, device=args.device, progress=False,
                                     epochs=epochs, workers=workers)
            per_checkpoint[workers] = (time.perf_counter() - start) / len(epochs)
        print(f"tracking {len(epochs)} checkpoints (epochs {epochs[0]}-{epochs[-1]}), eps {args.eps}, "
              f"workers {workers}: {per_checkpoint[workers]:.2f} s per checkpoint; Algorithm 1 kB "
              f"{[round(b / 1e3, 1) for b in table.alg1_paper_bytes]}", flush=True)
    print(f"throughput workers {args.workers} / workers 1: {per_checkpoint[1] / per_checkpoint[args.workers]:.2f}x",
          flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=150, help="training epochs of the checkpoint (default 150)")
    parser.add_argument("--store", type=Path, default=Path("/tmp/grok-bench-runs"))
    parser.add_argument("--regime", default="wd", help="none, wd or ours (default wd: ours trains ~5x slower on CPU)")
    parser.add_argument("--eps", type=float, default=1.0)
    parser.add_argument("--device", default="cpu", help="where the loss forwards run: cpu or cuda (default cpu; on "
                        "cuda the batched paths evaluate their points in one vmap'd forward)")
    parser.add_argument("--estimator", default="GP", help="ET, RF or GP (default GP)")
    parser.add_argument("--repeat", type=int, default=3, help="latency runs per path (default 3)")
    parser.add_argument("--textbook", action="store_true", help="also time our first implementation")
    parser.add_argument("--batch", type=int, action="append", default=[],
                        help="also time Algorithm 1 with BayesConfig(batch=K) (repeatable; a different search)")
    parser.add_argument("--throughput", type=int, default=0, metavar="K",
                        help="also track the last K checkpoints with 1 and 2 worker processes")
    parser.add_argument("--alg1-throughput", type=int, default=0, metavar="K",
                        help="also run Algorithm 1 alone on the last K checkpoints in 1 and --workers processes")
    parser.add_argument("--workers", type=int, default=2, help="worker processes compared with one (default 2)")
    parser.add_argument("--batched-losses", action="store_true",
                        help="also time 16 points' losses evaluated in one vmap'd forward vs one at a time")
    parser.add_argument("--no-latency", action="store_true", help="skip the latency comparison")
    parser.add_argument("--no-algorithm-2", action="store_true", help="skip the Algorithm 2 timing")
    args = parser.parse_args()
    config = RunConfig(op="mul", regime=args.regime, epochs=args.epochs)
    run = train(config, RunStore(args.store), device=args.device, progress=True)
    epoch = run.checkpoints()[-1]
    model = run.load_model(epoch, args.device)
    split = make_split(config.op, config.p, config.train_frac, config.seed)
    metrics = run.metrics().set_index("epoch").loc[epoch]
    print(f"checkpoint {run.path.name} epoch {epoch}: train acc {metrics.train_acc:.3f}, test acc "
          f"{metrics.test_acc:.3f}; {sum(p.numel() for p in model.parameters())} parameters, "
          f"{len(split.train_x)} training examples; device {args.device}, torch {torch.__version__}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, load average {os.getloadavg()[0]:.1f}", flush=True)
    if not args.no_latency:
        latency(args, model, split)
    if args.batched_losses:
        batched_losses(args, model, split)
    if args.alg1_throughput:
        algorithm_1_throughput(args, run, args.alg1_throughput)
    if args.throughput:
        throughput(args, run, args.throughput)


if __name__ == "__main__":
    main()
