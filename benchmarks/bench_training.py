"""Training-step throughput of the paper's 1-layer model, minibatch 512, measured side by side.

(a) E models in one batched ensemble step vs E sequential single steps (train()'s step);
(b) the spectral-regularized step ("ours": weight noise + spectral entropy) vs the plain step, for
    both: sequential steps use train()'s svdvals penalty, the ensemble step the Gram path of spectral.py;
(c) spectral entropy of the paper's matrix shapes at E stacked copies: svdvals vs Gram eigvalsh vs
    grok_lib.training.spectral (value + gradient).

    OMP_NUM_THREADS=1 python benchmarks/bench_training.py           # CPU-sized, E = 1, 2, 4, 8
    python benchmarks/bench_training.py --device cuda --ensemble 8 72 --spectral-ensemble 1 8 72
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from grok_lib.training.config import RunConfig
from grok_lib.training.ensemble import ParamLayout, Regularization, StackedAdamW, ensemble_loss
from grok_lib.training.model import Transformer
from grok_lib.training.regularizers import spectral_entropy
from grok_lib.training.spectral import gram, spectral_entropies
from grok_lib.training.train import ADAM_EPS, BETAS, pick_device, training_loss

REGIMES = ("none", "ours")  # plain: no noise, no penalty; ours: wd 1, noise 1e-2, beta 0.1 (op mul)


def timed(steps: list, device, warmup: int, repeats: int) -> list[float]:
    """Median wall time in ms of each step(), the steps called in turn (A B A B ...) so that load from
    other processes on a shared machine falls on all of them alike; the device is synchronized."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for step in steps:
        for _ in range(warmup):
            step()
    times = [[] for _ in steps]
    for _ in range(repeats):
        for step, record in zip(steps, times):
            sync()
            start = time.perf_counter()
            step()
            sync()
            record.append(1e3 * (time.perf_counter() - start))
    return [statistics.median(t) for t in times]


def minibatches(n_models: int, batch: int, vocab: int, device):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, vocab, (n_models, batch, 4), generator=g).to(device)  # (E, B, 4)
    y = torch.randint(0, vocab - 2, (n_models, batch), generator=g).to(device)  # (E, B)
    return x, y


def sequential_step(config: RunConfig, n_models: int, batch: int, device):
    """n_models independent single-model steps, exactly train()'s inner loop."""
    models, optimizers, generators = [], [], []
    for seed in range(n_models):
        torch.manual_seed(seed)
        models.append(Transformer(config.model_config()).to(device))
        optimizers.append(torch.optim.AdamW(models[-1].parameters(), lr=config.lr, betas=BETAS, eps=ADAM_EPS,
                                            weight_decay=config.weight_decay))
        generators.append(torch.Generator(device=device).manual_seed(seed + 2))
    x, y = minibatches(n_models, batch, config.p + 2, device)

    def step():
        for e, (model, optimizer) in enumerate(zip(models, optimizers)):
            loss = training_loss(model, dict(model.named_parameters()), x[e], y[e], config, generators[e])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return step


def ensemble_step(config: RunConfig, n_models: int, batch: int, device):
    """One batched step of n_models runs, exactly train_ensemble()'s inner loop."""
    regularization = Regularization.of([config.with_(seed=seed) for seed in range(n_models)], device)
    model = Transformer(config.model_config()).to(device)
    layout = ParamLayout.of(model)
    rows = []
    for seed in range(n_models):
        torch.manual_seed(seed)
        rows.append(layout.flatten(p.detach() for p in Transformer(config.model_config()).to(device).parameters()))
    flat = torch.stack(rows).requires_grad_()  # (E, N)
    optimizer = StackedAdamW([config.lr] * n_models, [config.weight_decay] * n_models,
                             torch.zeros_like(flat), torch.zeros_like(flat), steps=0)
    generators = [torch.Generator(device=device).manual_seed(seed + 2) for seed in range(n_models)]
    x, y = minibatches(n_models, batch, config.p + 2, device)

    def step():
        loss = ensemble_loss(model, layout, flat, x, y, regularization, generators)
        flat.grad = None
        loss.backward()
        optimizer.step(flat, flat.grad)

    return step


def bench_steps(args, device) -> None:
    configs = {r: RunConfig(op="mul", regime=r) for r in REGIMES}
    n_params = sum(p.numel() for p in Transformer(configs["none"].model_config()).parameters())
    print(f"\n(a, b) training step, paper 1-layer model ({n_params:,} parameters), minibatch {args.batch}, "
          f"median of {args.repeats} steps, ms per step for all E models")
    print(f"{'E':>4} {'regime':>7} {'sequential':>11} {'ensemble':>9} {'seq/ens':>8}")
    for n in args.ensemble:
        steps = [make(configs[r], n, args.batch, device) for r in REGIMES for make in (sequential_step, ensemble_step)]
        seq_none, ens_none, seq_ours, ens_ours = timed(steps, device, args.warmup, args.repeats)
        print(f"{n:>4} {'none':>7} {seq_none:>11.1f} {ens_none:>9.1f} {seq_none / ens_none:>7.2f}x")
        print(f"{n:>4} {'ours':>7} {seq_ours:>11.1f} {ens_ours:>9.1f} {seq_ours / ens_ours:>7.2f}x")
        print(f"{n:>4} spectral/plain: sequential {seq_ours / seq_none:.1f}x, ensemble {ens_ours / ens_none:.1f}x")


def bench_spectral(args, device) -> None:
    model = Transformer(RunConfig(op="mul").model_config())
    shapes = [tuple(p.shape) for p in model.parameters() if p.ndim >= 2]  # the matrices the penalty sees
    print(f"\n(c) spectral entropy of the 1-layer model's {len(shapes)} matrices {shapes}, "
          f"E stacked copies, ms per call")
    print(f"{'E':>4} {'svdvals f+b':>12} {'gram eigvalsh f':>16} {'gram eigh f':>12} {'spectral f+b':>13} "
          f"{'svd/spectral':>13}")
    g = torch.Generator().manual_seed(0)
    for n in args.spectral_ensemble:
        matrices = [(torch.randn(n, *s, generator=g) / s[1] ** 0.5).to(device).requires_grad_() for s in shapes]

        def svd_path():
            torch.stack([spectral_entropy(m) for m in matrices]).sum().backward()

        def eigvalsh_only():
            with torch.no_grad():
                for m in matrices:
                    torch.linalg.eigvalsh(gram(m))

        def eigh_only():
            with torch.no_grad():
                for m in matrices:
                    torch.linalg.eigh(gram(m))

        def fast_path():
            torch.stack(spectral_entropies(matrices)).sum().backward()

        times = timed([svd_path, eigvalsh_only, eigh_only, fast_path], device, 1, args.spectral_repeats)
        print(f"{n:>4} {times[0]:>12.1f} {times[1]:>16.1f} {times[2]:>12.1f} {times[3]:>13.1f} "
              f"{times[0] / times[3]:>12.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--ensemble", type=int, nargs="+", default=[1, 2, 4, 8], help="ensemble sizes E")
    parser.add_argument("--spectral-ensemble", type=int, nargs="+", default=[1, 8, 72], help="E for (c)")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--spectral-repeats", type=int, default=3)
    parser.add_argument("--skip-steps", action="store_true", help="only run (c)")
    parser.add_argument("--skip-spectral", action="store_true", help="only run (a, b)")
    args = parser.parse_args()
    device = pick_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"device {device} ({name}), torch {torch.__version__}")
    if not args.skip_steps:
        bench_steps(args, device)
    if not args.skip_spectral:
        bench_spectral(args, device)


if __name__ == "__main__":
    main()
