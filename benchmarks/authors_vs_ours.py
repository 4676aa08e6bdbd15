"""Our complexity measures beside the authors' (grok_lib.complexity.authors) on the same stored checkpoints.

    .venv/bin/python benchmarks/authors_vs_ours.py --store runs/init_grokking
    .venv/bin/python benchmarks/authors_vs_ours.py --store runs/init_grokking add-wd-s0-fe9f36441a:2000

Targets are RUN (its directory name: the memorization-peak checkpoint, the first logged epoch with train
accuracy >= 0.99, and the final one) or RUN:EPOCH[,EPOCH...]; default: every run in the store.
Per (run, epoch), at distortion --eps (default 1), a markdown table of
  ours:   Algorithm 1 (grok_lib.complexity.search.bayesian_complexity, default BayesConfig) and Algorithm 2
          (quantization_complexity), both on one ComplexityProblem (F.cross_entropy, the FULL training set,
          two-sided test; Algorithm 1 first so that Algorithm 2's point does not join its pool), paper bytes;
          naive bytes (grok_lib.complexity.coders.naive_size);
  theirs: authors_algorithm_1 / authors_algorithm_2 (the epoch's last minibatch, their tests and
          container; "none feasible": no point met the test, the first probe's size is shown, as their
          bayes_opt would report it) and authors_naive_size;
and the ratios theirs / ours. Single process, one torch thread.
"""

import argparse
import shlex
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grok_lib.complexity.authors import authors_algorithm_1, authors_algorithm_2, authors_naive_size  # noqa: E402
from grok_lib.complexity.coders import naive_size  # noqa: E402
from grok_lib.complexity.problem import ComplexityProblem  # noqa: E402
from grok_lib.training.data import make_split  # noqa: E402
from grok_lib.complexity.quantization import quantization_complexity  # noqa: E402
from grok_lib.complexity.search import BayesConfig, bayesian_complexity  # noqa: E402
from grok_lib.store import RunStore  # noqa: E402
from grok_lib.training.train import grokking_epochs  # noqa: E402


def ours(model, split, eps: float) -> tuple[int, int]:
    """(Algorithm 1, Algorithm 2) paper bytes of our pipeline; keyword arguments only, to ease API changes."""
    problem = ComplexityProblem(model, F.cross_entropy, (split.train_x, split.train_y))
    alg1 = bayesian_complexity(problem, eps=eps, config=BayesConfig())
    alg2 = quantization_complexity(problem, eps=eps)
    return alg1.paper_bytes, alg2.paper_bytes


def default_epochs(run) -> list[int]:
    """The memorization-peak checkpoint (first epoch with train_acc >= 0.99), if any, and the final one."""
    stored = run.checkpoints()
    if not stored:
        return []
    memorized = grokking_epochs(run.metrics())["memorized"]
    return sorted({e for e in (memorized, stored[-1]) if e is not None and e in stored})


def targets(store: RunStore, names: list[str]):
    runs = {run.path.name: run for run in store.runs()}
    if not names:
        return [(run, default_epochs(run)) for run in runs.values()]
    out = []
    for name in names:
        run_name, _, epochs = name.partition(":")
        if run_name not in runs:
            sys.exit(f"targets: no run {run_name!r} in {store.root}; stored: {sorted(runs)}")
        run = runs[run_name]
        out.append((run, [int(e) for e in epochs.split(",")] if epochs else default_epochs(run)))
    return out


def point(result) -> str:
    """tau, Delta of an authors-mode result; flagged when no point met the test (then: the first probe)."""
    text = f"{result.delta:.3g}" if result.tau is None else f"{result.tau:.3g}, {result.delta:.3g}"
    return text if result.feasible else text + " (none feasible)"


def ratio(a: int, b: int) -> str:
    return f"{a / b:.3f}" if b else "n/a"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", required=True, help="run store directory")
    parser.add_argument("targets", nargs="*", help="RUN or RUN:EPOCH[,EPOCH...] (default: every run)")
    parser.add_argument("--eps", type=float, default=1.0, help="distortion bound (default 1)")
    parser.add_argument("--n-random", type=int, default=10, help="their Algorithm 1: random points (default 10)")
    parser.add_argument("--n-guided", type=int, default=50, help="their Algorithm 1: guided points (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="their Algorithm 1's optimizer seed")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    store = RunStore(args.store)
    command = shlex.join(["python", *sys.argv]) if argv is None else shlex.join(["authors_vs_ours.py", *argv])
    print(f"`{command}` (eps = {args.eps}; bytes; theirs on the epoch's last minibatch)\n")
    print("| run | epoch | ours A1 | ours A2 | ours naive | theirs A1 | theirs A2 | theirs naive "
          "| A1 theirs/ours | A2 theirs/ours | naive theirs/ours | their A1 tau, Delta | their A2 Delta "
          "| their batch |")
    print("|" + "---|" * 14)
    for run, epochs in targets(store, args.targets):
        if not epochs:
            print(f"| {run.path.name} | no checkpoints |" + " |" * 12)
            continue
        config = run.config
        split = make_split(config.op, config.p, config.train_frac, config.seed)
        for epoch in epochs:
            model = run.load_model(epoch)
            weights = {k: v.detach() for k, v in model.named_parameters()}
            our1, our2 = ours(model, split, args.eps)
            our_naive = naive_size(weights)
            their1 = authors_algorithm_1(model, config, split, epoch, args.eps, n_random=args.n_random,
                                         n_guided=args.n_guided, seed=args.seed)
            their2 = authors_algorithm_2(model, config, split, epoch, args.eps)
            their_naive = authors_naive_size(weights)
            print(f"| {run.path.name} | {epoch} | {our1} | {our2} | {our_naive} | {their1.bytes} | {their2.bytes} "
                  f"| {their_naive} | {ratio(their1.bytes, our1)} | {ratio(their2.bytes, our2)} "
                  f"| {ratio(their_naive, our_naive)} | {point(their1)} | {point(their2)} | {their1.n_batch} |",
                  flush=True)


if __name__ == "__main__":
    main()
