"""The `authors` measurement mode: the numbers the authors' JAX code (main.py) reports, on our checkpoints.

It follows their code where it departs from the paper: Algorithm 1's rank k is one lower than Eq. 13 and
k = 0 deletes a matrix (`svd_truncate`); Flax Dense kernels are (in, out), our weights transposed, so S
goes with the input side; the distortion is measured on the epoch's last minibatch, one-sided for
Algorithm 1 (`bayes_optimize_svd_quantization`) and two-sided for Algorithm 2 (`get_complexity`), with
their unclipped loss (`compute_loss`); everything is float32 (x64 is off in their code); the size is
bz2 of the pickled `jax.tree_util.tree_flatten` of the tree (`get_compressed_sizes`), written without
JAX by grok_lib.complexity.jax_container. Losses are computed by our torch model on the coarse-grained
weights.

Their positional table has vocab_size rows (4 used, the rest only decayed): on runs trained with
`pos_table="vocab"` the tree is exactly theirs. Our default table has the 4 rows a sequence uses, and on
it their rank rule gives k = 3 for every tau near 1 and 3 (4 + d) < 4 d factorises it, dropping a
direction their larger table would keep; compare with the authors on vocab-table runs.
"""

from __future__ import annotations

import bz2
import math
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch
from skopt import Optimizer
from skopt.space import Real
from torch.func import functional_call

from .jax_container import container_size
from ..errors import require
from ..training.model import Transformer

BLOCK = {"attn.query": "self_attn/q_proj", "attn.key": "self_attn/k_proj", "attn.value": "self_attn/v_proj",
         "attn.out": "self_attn/out_proj", "ln_attn": "ln1", "ln_mlp": "ln2", "mlp_in": "ffn/layer1",
         "mlp_out": "ffn/layer2"}
TOP = {"embed": "embedding", "pos": "positional_embedding", "unembed": "output_layer"}
DELTA_BOUNDS = (1e-3, 1.0)  # wandb_callback's min_bin_size, max_bin_size
# bayes_opt's two probes (bin_size_normalized, threshold_normalized) = (0, 1) and (0.1, 0.98), denormalised
PROBES = tuple((tau, math.exp(b * (math.log(DELTA_BOUNDS[1]) - math.log(DELTA_BOUNDS[0])) + math.log(DELTA_BOUNDS[0])))
               for b, tau in ((0.0, 1.0), (0.1, 0.98)))


def flax_name(name: str) -> tuple[str, bool]:
    """Our parameter name -> (their Flax path without the 'params' root, whether the array is transposed)."""
    module, _, leaf = name.rpartition(".")
    parts = module.split(".", 2)
    block = len(parts) == 3 and parts[0] == "blocks" and parts[1].isdigit() and parts[2] in BLOCK
    embed, norm = module in ("embed", "pos"), block and parts[2].startswith("ln_")
    require((block or module in TOP) and leaf in ("weight", "bias") and not (embed and leaf == "bias"), "weights",
            f"{name!r} is not a parameter of grok_lib.training.model.Transformer")
    path = f"decoder_layers_{parts[1]}/{BLOCK[parts[2]]}" if block else TOP[module]
    if leaf == "bias":
        return f"{path}/bias", False
    return f"{path}/{'embedding' if embed else 'scale' if norm else 'kernel'}", not (embed or norm)


def authors_tree(weights: dict) -> dict[str, np.ndarray]:
    """Our state dict -> {Flax path: float32 array in their layout (kernels (in, out), C order)}, in the
    order jax.tree_util flattens their tree (dict keys sorted at every level)."""
    require(isinstance(weights, dict) and len(weights) > 0, "weights", "must be a non-empty dict of tensors")
    out = {}
    for name, value in weights.items():
        path, transposed = flax_name(name)
        array = torch.as_tensor(value).detach().cpu().float().numpy()
        require(bool(np.isfinite(array).all()), "weights", f"{name!r} has NaN or inf values")
        out[path] = np.ascontiguousarray(array.T if transposed else array)
    return {path: out[path] for path in sorted(out, key=lambda p: p.split("/"))}


def torch_weights(tree: dict[str, np.ndarray], names) -> dict[str, torch.Tensor]:
    """The inverse of authors_tree for our parameter `names`."""
    paths = {name: flax_name(name) for name in names}
    return {name: torch.from_numpy(np.ascontiguousarray(tree[path].T if transposed else tree[path]))
            for name, (path, transposed) in paths.items()}


def last_minibatch(config, split, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The last minibatch of epoch `epoch` (1-based) of our training loop (train.init_training's shuffle
    generator, one randperm per epoch split into batch_size_for chunks): the data their tests use."""
    require(isinstance(epoch, int) and epoch >= 1, "epoch", f"must be an integer >= 1, got {epoch!r}")
    n = len(split.train_x)
    generator = torch.Generator().manual_seed(config.seed + 1)
    for _ in range(epoch):
        order = torch.randperm(n, generator=generator)
    last = order.split(config.batch_size_for(n))[-1]
    return split.train_x.cpu()[last], split.train_y.cpu()[last]


def quantize(x: np.ndarray, delta) -> np.ndarray:
    """Their `quantize`: round(x / Delta) * Delta in float32 (ties to even), -0.0 stored as +0.0."""
    d = np.float32(delta)
    q = np.round(np.asarray(x, dtype=np.float32) / d) * d
    return np.where(q == 0, np.float32(0), q).astype(np.float32)


class Spectrum:
    """float32 SVD of one kernel (LAPACK gesdd, as jax.numpy.linalg.svd on CPU) and its float32 sums."""

    def __init__(self, x: np.ndarray):
        self.u, self.s, self.vt = scipy.linalg.svd(x, full_matrices=False, lapack_driver="gesdd", check_finite=False)
        self.cumsum, self.total = np.cumsum(self.s, dtype=np.float32), np.sum(self.s, dtype=np.float32)

    def rank(self, tau: float) -> int:
        """Their k = searchsorted(cumsum(S), tau * sum(S)) (left): one lower than Eq. 13; 0 deletes."""
        return int(np.searchsorted(self.cumsum, np.float32(tau) * self.total, side="left"))


def coarse_grain(tree: dict, tau: float | None, delta: float, spectra: dict | None = None):
    """Algorithm 1's coarse-graining (`apply_svd_truncate_quantize`), or quantization only (tau None).

    Returns (evaluated tree, stored tree, ranks): a factorised matrix is stored as the pair
    (quantize(U_k diag S_k), quantize(V_k^T)) and evaluated as their product; ranks[path] is k or None.
    """
    if tau is not None and spectra is None:
        spectra = {p: Spectrum(x) for p, x in tree.items() if x.ndim >= 2}
    evaluated, stored, ranks = {}, {}, {}
    for path, x in tree.items():
        k = spectra[path].rank(tau) if tau is not None and x.ndim >= 2 else None
        if k is not None and k * sum(x.shape) < math.prod(x.shape):
            sp = spectra[path]
            a, b = quantize(sp.u[:, :k] * sp.s[:k], delta), quantize(sp.vt[:k], delta)
            evaluated[path], stored[path], ranks[path] = a @ b, (a, b), k
        else:
            evaluated[path] = stored[path] = quantize(x, delta)
            if x.ndim >= 2:
                ranks[path] = None
    return evaluated, stored, ranks


def authors_naive_size(weights: dict) -> int:
    """Fig. 9 as their `total_bzip2_size`: the sum over leaves of len(bz2.compress(leaf.tobytes())), their layout."""
    return sum(len(bz2.compress(x.tobytes())) for x in authors_tree(weights).values())


# --- Algorithms 1 and 2 -------------------------------------------------------------------------------
@torch.no_grad()
def authors_loss(logits: torch.Tensor, targets: torch.Tensor) -> np.float32:
    """Their jitted `compute_loss`: -mean log(softmax(logits)[answer]) in float32, unclipped. As XLA compiles
    it (the one-hot product becomes a select, subnormals flush to zero) it is inf when an answer's
    probability is below the smallest normal float32, and never NaN from the other classes."""
    p = torch.softmax(logits.float(), dim=-1).gather(1, targets[:, None]).squeeze(1)
    p = torch.where(p < torch.finfo(torch.float32).tiny, torch.zeros_like(p), p)
    return np.float32(-torch.log(p).sum() / len(targets))


@dataclass(frozen=True)
class AuthorsResult:
    """The point an authors-mode search chose and what it measured there."""

    algorithm: int
    eps: float
    bytes: int  # the container size of the chosen coarse-graining
    tau: float | None  # None: Algorithm 2 (quantization only)
    delta: float
    ranks: dict  # Flax path of each matrix -> its k, or None (stored whole)
    reference_loss: float  # L(theta) on the last minibatch
    loss: float  # L(theta_hat) on it
    feasible: bool  # the chosen point meets its algorithm's test
    n_evaluations: int  # points tried (repeats included)
    n_batch: int  # examples in the last minibatch


class AuthorsProblem:
    """One checkpoint in their layout (`tree`), its epoch's last minibatch, their loss and both distortion tests."""

    def __init__(self, model_or_weights, config, split, epoch: int, eps: float):
        require(isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0, "eps",
                f"distortion bound must be a finite number > 0, got {eps!r}")
        if isinstance(model_or_weights, torch.nn.Module):
            require(isinstance(model_or_weights, Transformer), "model_or_weights",
                    "must be a grok_lib.training.model.Transformer or its state dict, "
                    f"got {type(model_or_weights).__name__}")
            weights = {k: v.detach() for k, v in model_or_weights.named_parameters()}
        else:
            weights = model_or_weights
        self.tree = authors_tree(weights)
        self.model = Transformer(config.model_config()).eval()
        expected = {k: tuple(v.shape) for k, v in self.model.named_parameters()}
        require({k: tuple(v.shape) for k, v in weights.items()} == expected, "model_or_weights",
                f"does not match config's Transformer (expected names and shapes {expected})")
        self.names, self.eps, self.eps_given = list(expected), np.float32(eps), float(eps)
        self.x, self.y = last_minibatch(config, split, epoch)
        self.reference = self.loss(self.tree)

    @torch.no_grad()
    def loss(self, tree: dict) -> np.float32:
        """authors_loss of our model with the weights of `tree` on the last minibatch."""
        return authors_loss(functional_call(self.model, torch_weights(tree, self.names), (self.x,)), self.y)

    def one_sided(self, loss) -> bool:
        """bayes_optimize_svd_quantization: infeasible iff loss > L + eps, NaN or inf."""
        return not (loss > self.reference + self.eps or np.isnan(loss) or np.isinf(loss))

    def two_sided(self, loss) -> bool:
        """get_complexity: feasible iff |L - loss| < eps."""
        return bool(np.abs(self.reference - loss) < self.eps)

    def result(self, algorithm, nbytes, tau, delta, ranks, loss, feasible, n) -> AuthorsResult:
        return AuthorsResult(algorithm, self.eps_given, int(nbytes), tau, float(delta), ranks,
                             float(self.reference), float(loss), bool(feasible), n, len(self.y))


def authors_algorithm_2(model_or_weights, config, split, epoch: int, eps: float, iterations: int = 50,
                        tolerance: float = 1e-12) -> AuthorsResult:
    """Their `get_complexity` (Algorithm 2): float32 bisection on Delta in (1e-12, 2 max|theta|), two-sided test."""
    problem = AuthorsProblem(model_or_weights, config, split, epoch, eps)
    low = best = np.float32(1e-12)
    high = np.float32(2) * max(np.abs(x).max() for x in problem.tree.values())
    n = 0
    for _ in range(iterations):
        mid = np.float32((low + high) / np.float32(2))
        n += 1
        if problem.two_sided(problem.loss({p: quantize(x, mid) for p, x in problem.tree.items()})):
            best = low = mid
        else:
            high = mid
        if high - low < np.float32(tolerance):
            break
    quantized = {p: quantize(x, best) for p, x in problem.tree.items()}
    loss = problem.loss(quantized)
    ranks = {p: None for p, x in problem.tree.items() if x.ndim >= 2}
    return problem.result(2, container_size(quantized, ravel=False), None, best, ranks, loss,
                          problem.two_sided(loss), n)


def authors_algorithm_1(model_or_weights, config, split, epoch: int, eps: float, n_random: int = 10,
                        n_guided: int = 50, seed: int = 0) -> AuthorsResult:
    """Their `bayes_optimize_svd_quantization` (Algorithm 1), searched with skopt instead of bayes_opt.

    Their two probes, n_random random and n_guided GP-guided points over tau in [0, 1] and log Delta in
    [1e-3, 1]; one-sided test; an infeasible point is told the raw float32 size; the answer is the
    smallest feasible size (if none is feasible, the first probe, as bayes_opt's max would then be).
    """
    for name, value in (("n_random", n_random), ("n_guided", n_guided), ("seed", seed)):
        require(isinstance(value, int) and value >= 0, name, f"must be an integer >= 0, got {value!r}")
    problem = AuthorsProblem(model_or_weights, config, split, epoch, eps)
    spectra = {p: Spectrum(x) for p, x in problem.tree.items() if x.ndim >= 2}
    penalty = 4.0 * sum(x.size for x in problem.tree.values())
    optimizer = Optimizer([Real(0.0, 1.0, name="tau"), Real(*DELTA_BOUNDS, prior="log-uniform", name="delta")],
                          base_estimator="GP", n_initial_points=len(PROBES) + n_random,
                          acq_optimizer="sampling", random_state=seed)
    cache, points = {}, []  # (ranks, float32 Delta) -> (loss, feasible, size)
    total = len(PROBES) + n_random + n_guided
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skopt's notes on repeated points and GP convergence
        for i in range(total):
            tau, delta = PROBES[i] if i < len(PROBES) else map(float, optimizer.ask())
            evaluated, stored, ranks = coarse_grain(problem.tree, tau, delta, spectra)
            key = (tuple(ranks.values()), np.float32(delta))
            if key not in cache:
                loss = problem.loss(evaluated)
                ok = problem.one_sided(loss)
                cache[key] = (loss, ok, container_size(stored, ravel=True) if ok or i == 0 else None)
            loss, ok, size = cache[key]
            points.append((tau, delta, ranks, loss, ok, size))
            told = [min(max(tau, 0.0), 1.0), min(max(delta, DELTA_BOUNDS[0]), DELTA_BOUNDS[1])]
            optimizer.tell(told, float(size) if ok else penalty, fit=i + 1 < total)  # no fit after the last
    feasible = [p for p in points if p[4]]
    tau, delta, ranks, loss, ok, size = min(feasible, key=lambda p: p[5]) if feasible else points[0]
    return problem.result(1, size, tau, delta, ranks, loss, ok, len(points))
