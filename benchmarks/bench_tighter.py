"""A tighter description than the paper's: paper bytes, symbols bytes and the entropy coder's bytes on the
same coarse-grained checkpoints, side by side.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_tighter.py --store runs --profile cpu

For each run of the profile: its memorization-peak checkpoint (the tracked epoch of largest complexity at
eps = 1) and its final one. The coarse-graining is the one the tracking table reports there (the
figures' Algorithm 1 variant: its tau, Delta and ranks), rebuilt exactly from the checkpoint; each coder
encodes it, the entropy and symbols descriptions are decoded back and checked bit for bit, and the table
gives the bytes, the ratios to the paper's bytes and the seconds each coder took. Ends with the medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from grok_lib.complexity.coarse import CoarseGrainer
from grok_lib.complexity.coders import decode_symbols, encode_paper, encode_symbols
from grok_lib.complexity.entropy import decode_entropy, encode_entropy
from grok_lib.complexity.problem import described_tensors
from grok_lib.complexity.tracking import read_complexity
from grok_lib.paper.figures import VARIANTS
from grok_lib.paper.profiles import get_profile
from grok_lib.store import RunStore

CODERS = (("paper", encode_paper, None), ("symbols", encode_symbols, decode_symbols),
          ("entropy", encode_entropy, decode_entropy))


def rebuild(run, epoch: int, row) -> tuple:
    prefix = VARIANTS["pooled"]
    grainer = CoarseGrainer({k: v.detach() for k, v in described_tensors(run.load_model(epoch)).items()})
    ranks_by_name = json.loads(row[prefix + "ranks"])
    tau = None if row[prefix + "tau"] != row[prefix + "tau"] else float(row[prefix + "tau"])  # NaN: no low rank
    ranks = tuple(ranks_by_name[name] for name in grainer.names)
    return grainer.with_ranks(ranks, float(row[prefix + "delta"]), tau), float(row[prefix + "paper_bytes"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path("runs"))
    parser.add_argument("--profile", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    profile, store = get_profile(args.profile), RunStore(args.store)
    ratios = {name: [] for name, _, _ in CODERS}
    seconds = {name: [] for name, _, _ in CODERS}
    print("| run @ epoch | paper B | symbols B (x paper) | entropy B (x paper) | s paper / symbols / entropy |")
    print("|---|---|---|---|---|")
    for config in profile.configs():
        run = store.run(config)
        table = read_complexity(run)
        table = table[table.eps == 1.0]
        peak = int(table.loc[table["pooled_paper_bytes"].idxmax(), "epoch"])
        for epoch in sorted({peak, int(table.epoch.max())}):
            cg, stored = rebuild(run, epoch, table[table.epoch == epoch].iloc[0])
            sizes, times = {}, {}
            for name, encode, decode in CODERS:
                start = time.perf_counter()
                encoded = encode(cg, None)
                times[name] = time.perf_counter() - start
                sizes[name] = encoded.n_bytes
                if decode is not None:
                    back = decode(encoded.data).weights()
                    assert all(torch.equal(back[k], v) for k, v in cg.weights().items()), f"{name} does not decode"
            assert sizes["paper"] == stored, f"rebuilt {sizes['paper']} B, the table says {stored}"
            for name in sizes:
                ratios[name].append(sizes[name] / sizes["paper"])
                seconds[name].append(times[name])
            print(f"| {config.op}-{config.regime} @ {epoch} | {sizes['paper']} | {sizes['symbols']} "
                  f"({sizes['symbols'] / sizes['paper']:.3f}) | {sizes['entropy']} "
                  f"({sizes['entropy'] / sizes['paper']:.3f}) | "
                  f"{times['paper']:.2f} / {times['symbols']:.2f} / {times['entropy']:.2f} |", flush=True)
    print(f"median x paper: symbols {statistics.median(ratios['symbols']):.3f}, entropy "
          f"{statistics.median(ratios['entropy']):.3f}; median s per checkpoint: "
          + ", ".join(f"{n} {statistics.median(v):.2f}" for n, v in seconds.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
