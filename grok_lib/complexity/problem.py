"""Complexity of any network by coarse-graining: the distortion test (Eq. 6-7) and the measured result.

`ComplexityProblem` holds one network (any nn.Module), a loss function and the FULL training set. It
computes the reference loss L(theta, D) once, the SVD of every matrix once, and caches every evaluated
coarse-graining (keyed by its per-matrix ranks and Delta, so two taus with the same ranks cost one
evaluation). Algorithms 1 and 2 (grok_lib.complexity.search) ask it to evaluate points and to build results.

Speed without changing any answer:
* the training loss is summed over chunks of `chunk_size` examples (default 8192: the paper's training
  sets, ~2,500-3,800 examples, go through in one batched forward, which measured ~35 % faster than two
  halves), and the evaluation stops as soon as the partial sum proves L(theta_hat) > L(theta) + eps
  (valid because a per-example loss like cross-entropy is >= 0; pass early_exit=False for a loss that
  can be negative); a bounded evaluation first looks at a quarter of the set (LossMeter.chunks in
  grok_lib.complexity.distortion, which measures the losses), which is
  enough to reject most broken networks (~20 % less loss time in the benchmark search);
* only points that meet the bound are compressed (an infeasible point's size is never used), and the
  compression overlaps the loss: once the first quarter of the training set has not ruled a point out,
  its compression starts on a background thread (a pool of `compress_threads`, default one per CPU; bz2
  and lzma release the GIL) while the other three quarters are evaluated, and the final result's symbols
  coder runs beside the test-loss evaluation (`background=False` does everything in the caller's thread;
  the numbers are the same); `evaluate_many` evaluates several points at once (vmap'd on a GPU), their
  compressions running side by side on the pool;
* its work runs on `threads` threads (default 1: torch's intra-op pool and the BLAS under numpy, scipy
  and the optimizer's GP; the background compression runs beside them). The matrices here are small:
  62 x 62 GP kernels, 512 x 128 SVDs, (2554, 128) activations. On the shared 2-core machine, with
  other processes running, 2 threads made the SVDs 60x and a training-set forward 5x slower than 1
  thread (spinning thread pools wait on preempted siblings); pass threads=None to leave the process's
  settings alone.

Quick use (any classifier; see measure_complexity in grok_lib.complexity.search)::

    from grok_lib.complexity.search import measure_complexity
    result = measure_complexity(model, torch.nn.functional.cross_entropy, (x_train, y_train), eps=1.0)
    result.paper_bytes, result.symbols_bits, result.tau, result.delta, result.ranks
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import warnings
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from threadpoolctl import threadpool_limits

from .coarse import CoarseGrained, CoarseGrainer, check_delta, check_tau
from .distortion import LossMeter, check_data, within_bound
from .coders import encode_symbols, naive_size, paper_size, symbols_bzip2_size
from ..errors import require
from ..training.regularizers import spectral_summary
from ..training.train import l2_norm

OBJECTIVES = ("paper", "symbols")


def check_eps(eps: float) -> None:
    require(isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0, "eps",
            f"distortion bound must be a finite number > 0, got {eps!r}")


@dataclass(frozen=True)
class Evaluation:
    """One evaluated coarse-graining: its training loss, exact or (early exit) a lower bound."""

    tau: float | None
    delta: float
    ranks: tuple[int | None, ...]
    train_loss: float  # exact mean loss, or a lower bound when exact is False
    train_acc: float  # NaN when not exact or not a classifier
    exact: bool

    @property
    def key(self) -> tuple:
        return self.ranks, self.delta


@dataclass(frozen=True)
class ComplexityResult:
    """The accepted coarse-graining of one network at one eps, and everything measured about it."""

    algorithm: int  # 1 (Bayesian optimization over tau and Delta) or 2 (quantization only)
    eps: float
    one_sided: bool
    paper_bytes: int  # the paper's complexity: bz2(pickle(float32 arrays))
    symbols_bytes: int  # the tighter coder (grok_lib.complexity.coders)
    symbols_codec: str
    tau: float | None  # None: no low-rank step
    delta: float
    ranks: dict  # parameter name -> rank of its stored factors, or None (stored whole)
    reference_train_loss: float  # L(theta, D_train)
    train_loss: float  # L(theta_hat, D_train)
    train_acc: float
    test_loss: float  # NaN without test data
    test_acc: float
    n_train: int
    n_evaluations: int  # coarse-grainings evaluated by this search (cache hits included)
    weights: dict  # name -> coarse-grained float32 tensor
    coarse: CoarseGrained  # the stored representation that was compressed

    @property
    def paper_bits(self) -> int:
        return 8 * self.paper_bytes

    @property
    def symbols_bits(self) -> int:
        return 8 * self.symbols_bytes

    def as_row(self) -> dict:
        """The scalar fields, for a table (ranks as JSON)."""
        return dict(algorithm=self.algorithm, eps=self.eps, paper_bytes=self.paper_bytes, paper_bits=self.paper_bits,
                    symbols_bytes=self.symbols_bytes, symbols_bits=self.symbols_bits,
                    symbols_codec=self.symbols_codec, tau=math.nan if self.tau is None else self.tau,
                    delta=self.delta, ranks=json.dumps(self.ranks), train_loss=self.train_loss,
                    train_acc=self.train_acc, test_loss=self.test_loss, test_acc=self.test_acc,
                    n_evaluations=self.n_evaluations)


def weight_summary(module: torch.nn.Module) -> dict[str, float]:
    """The uncoarse-grained measures beside complexity: naive bzip2 size (Fig. 9), L2 norm and the two
    effective ranks of `spectral_summary` (Fig. 8; NaN without any matrix), reusing the training-time code."""
    params = {k: v.detach() for k, v in module.named_parameters()}
    require(len(params) > 0, "module", "has no parameters")
    naive = naive_size(params)
    has_matrices = any(p.ndim >= 2 for p in params.values())
    spectral = spectral_summary(params) if has_matrices else {}
    return dict(naive_bytes=naive, naive_bits=8 * naive, l2_norm=l2_norm(params),
                effective_rank=spectral.get("effective_rank", math.nan),
                effective_rank_mean=spectral.get("effective_rank_mean", math.nan))


_COMPRESSORS: dict[int, ThreadPoolExecutor] = {}
_COMPRESSORS_LOCK = threading.Lock()


def _compressor(threads: int = 1) -> ThreadPoolExecutor:
    """The process's background compression pool of `threads` threads (bz2 and lzma release the GIL while
    they work, so threads compress in parallel: 2 threads compressed 20 of the search's pickles 1.97x
    faster than one on the 2-core machine, with no copying of arrays to other processes)."""
    with _COMPRESSORS_LOCK:
        if threads not in _COMPRESSORS:
            _COMPRESSORS[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="grok-compress")
        return _COMPRESSORS[threads]


def _timed_call(fn, *args):
    start = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - start


class ComplexityProblem:
    """A network, its loss and data, and every coarse-graining of it evaluated so far."""

    def __init__(self, module: torch.nn.Module, loss_fn, train_data, test_data=None, *, one_sided: bool = False,
                 objective: str = "paper", chunk_size: int = 8192, early_exit: bool = True,
                 threads: int | None = 1, background: bool = True, compress_threads: int | None = None,
                 vectorize: bool | None = None):
        require(isinstance(module, torch.nn.Module), "module",
                f"must be a torch.nn.Module, got {type(module).__name__}")
        require(callable(loss_fn), "loss_fn", "must be callable as loss_fn(outputs, targets) -> mean loss")
        require(objective in OBJECTIVES, "objective", f"unknown coder {objective!r}; allowed: {', '.join(OBJECTIVES)}")
        require(threads is None or (isinstance(threads, int) and threads >= 1), "threads",
                f"must be a positive integer or None, got {threads!r}")
        params = dict(module.named_parameters())
        require(len(params) > 0, "module", "has no parameters to coarse-grain")
        self.module, self.loss_fn = module, loss_fn
        self.device = next(iter(params.values())).device
        # vmap'd batches are for a GPU; on one CPU thread they ran at 0.46-0.68x the speed of one point at
        # a time (1, 4 and 16 points of the paper-size model)
        self.vectorize = self.device.type == "cuda" if vectorize is None else bool(vectorize)
        x, y = check_data(train_data, "train_data")
        self.train = (x.to(self.device), y.to(self.device))
        self.test = None if test_data is None else tuple(t.to(self.device) for t in check_data(test_data, "test_data"))
        self.one_sided, self.objective = one_sided, objective
        self.meter = LossMeter(module, loss_fn, chunk_size, early_exit)
        require(compress_threads is None or (isinstance(compress_threads, int) and compress_threads >= 1),
                "compress_threads", f"must be a positive integer or None, got {compress_threads!r}")
        self.threads, self.background = threads, background
        self.compress_threads = compress_threads or os.cpu_count() or 1
        self.pending: dict[tuple, Future] = {}  # background compressions of points still being evaluated
        # seconds: svd, coarse_grain, loss, compress (waiting for it), compress_background, optimizer
        self.timings: dict[str, float] = defaultdict(float)
        with self.limited_threads(), self.timed("svd"):
            self.grainer = CoarseGrainer(params)  # validates: no NaN/inf weights
        self.n_params = sum(p.numel() for p in params.values())
        self.penalty = 4 * self.n_params  # raw float32 bytes: the objective of an infeasible point
        with self.limited_threads(), self.timed("loss"):
            loss, acc, _ = self.loss_and_accuracy({k: v.detach() for k, v in params.items()}, self.train)
        require(math.isfinite(loss), "loss_fn", "the loss of the unmodified network is NaN or inf; it must be finite")
        self.reference_loss, self.reference_acc = loss, acc
        self.evaluations: dict[tuple, Evaluation] = {}
        self.sizes: dict[tuple, int] = {}  # objective-coder bytes of evaluated points that met a bound
        self.coarse_cache: dict[tuple, CoarseGrained] = {}

    @contextmanager
    def limited_threads(self):
        """Run the block on self.threads torch and BLAS threads (nothing changes when threads is None)."""
        if self.threads is None:
            yield
            return
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with threadpool_limits(limits=self.threads, user_api="blas"):
                yield
        finally:
            torch.set_num_threads(previous)

    @contextmanager
    def timed(self, what: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[what] += time.perf_counter() - start

    def loss_and_accuracy(self, weights: dict[str, torch.Tensor], data, limit: float = math.inf,
                          on_continue=None) -> tuple[float, float, bool]:
        """(mean loss, accuracy, exact) of `weights` on `data` (grok_lib.complexity.distortion.LossMeter)."""
        return self.meter.loss_and_accuracy(weights, data, limit, on_continue)

    def coarse_grain(self, ranks: tuple, delta: float, tau: float | None) -> CoarseGrained:
        key = (ranks, delta)
        if key not in self.coarse_cache:
            with self.timed("coarse_grain"):
                self.coarse_cache.clear()  # keep only the latest: the weights are big, reuse is immediate
                self.coarse_cache[key] = self.grainer.with_ranks(ranks, delta, tau)
        return self.coarse_cache[key]

    def weights_on_device(self, cg: CoarseGrained) -> dict[str, torch.Tensor]:
        with self.timed("coarse_grain"):
            return {k: v.to(self.device) for k, v in cg.weights().items()}

    def evaluate(self, tau: float | None, delta: float, eps: float, prefetch: bool = False) -> Evaluation:
        """The training loss of Q(R(theta, tau), Delta), exact unless it provably exceeds L(theta) + eps.

        prefetch: start compressing the point in the background once the first chunk has not ruled it out
        (for searches that compress every point meeting the bound, like Algorithm 1; the prefetch of a point
        that then misses the bound is cancelled, or its answer dropped).
        """
        check_tau(tau)
        check_delta(delta)
        check_eps(eps)
        ranks = self.grainer.ranks(tau)
        key = (ranks, float(delta))
        limit = self.reference_loss + eps
        cached = self.evaluations.get(key)
        if cached is not None and (cached.exact or cached.train_loss > limit):
            return cached
        cg = self.coarse_grain(ranks, float(delta), tau)
        weights = self.weights_on_device(cg)
        with self.timed("loss"):
            loss, acc, exact = self.loss_and_accuracy(
                weights, self.train, limit, on_continue=(lambda: self.prefetch_size(key, cg)) if prefetch else None)
        return self._record(Evaluation(tau, float(delta), ranks, loss, acc, exact), eps)

    def _record(self, evaluation: Evaluation, eps: float) -> Evaluation:
        """Keep an evaluation; drop the background compression of a point that missed the bound."""
        self.evaluations[evaluation.key] = evaluation
        if evaluation.key in self.pending and not self.feasible(evaluation, eps):
            self.pending.pop(evaluation.key).cancel()  # a no-op once it has started; its answer is dropped
        return evaluation

    def evaluate_many(self, points, eps: float, prefetch: bool = False) -> list[Evaluation]:
        """`evaluate` for several (tau, Delta) points. With self.vectorize (default: on a GPU) each chunk of
        the training set goes through all of them in one batched forward (torch.func.vmap over their
        stacked coarse-grained weights), with evaluate's early exit per point: one batched call instead of
        many small ones is what a GPU needs; the losses equal evaluate's up to float rounding of the
        batched products (~1e-7 relative). Otherwise, and for a module that vmap cannot run
        (data-dependent Python control flow, .item()), the points are evaluated one at a time.
        """
        if not self.vectorize:
            return [self.evaluate(tau, delta, eps, prefetch) for tau, delta in points]
        check_eps(eps)
        limit = self.reference_loss + eps
        keys, todo = [], {}
        for tau, delta in points:
            check_tau(tau)
            check_delta(delta)
            key = (self.grainer.ranks(tau), float(delta))
            keys.append(key)
            cached = self.evaluations.get(key)
            if key not in todo and not (cached is not None and (cached.exact or cached.train_loss > limit)):
                with self.timed("coarse_grain"):
                    todo[key] = (tau, self.grainer.with_ranks(key[0], key[1], tau))
        if todo:
            keys_in_order, coarse = list(todo), [cg for _, cg in todo.values()]
            weight_sets = [self.weights_on_device(cg) for cg in coarse]

            def prefetch_active(active):
                for i in active:
                    self.prefetch_size(keys_in_order[i], coarse[i])

            with self.timed("loss"):
                try:
                    results = self.meter.batched(weight_sets, self.train, limit, prefetch_active if prefetch else None)
                except (RuntimeError, NotImplementedError) as error:
                    # vmap's refusals (.item(), data-dependent control flow, an op without a batching rule)
                    # name vmap or batching; any other error is the module's own and propagates
                    if "vmap" not in str(error).lower() and "batch" not in str(error).lower():
                        raise
                    if not getattr(self, "_warned_vmap", False):
                        warnings.warn(f"evaluating coarse-grainings one at a time: vmap cannot run this module "
                                      f"({str(error).splitlines()[0]})")
                        self._warned_vmap = True
                    return [self.evaluate(tau, delta, eps, prefetch) for tau, delta in points]
            for (key, (tau, _)), (loss, acc, exact) in zip(todo.items(), results):
                self._record(Evaluation(tau, key[1], key[0], loss, acc, exact), eps)
        return [self.evaluations[key] for key in keys]

    def objective_size(self, cg: CoarseGrained) -> int:
        """Bytes of `cg` under the objective coder: "paper", the paper's coder; "symbols", the bzip2 branch
        of the symbols coder (LZMA is 3-10x slower and only tried for the final result)."""
        return paper_size(cg.stored_arrays()) if self.objective == "paper" else symbols_bzip2_size(cg)

    def prefetch_size(self, key: tuple, cg: CoarseGrained) -> None:
        """Start compressing a point on the background thread while its loss is still being evaluated."""
        if self.background and key not in self.sizes and key not in self.pending:
            self.pending[key] = _compressor(self.compress_threads).submit(_timed_call, self.objective_size, cg)

    def feasible(self, evaluation: Evaluation, eps: float) -> bool:
        return evaluation.exact and within_bound(evaluation.train_loss, self.reference_loss, eps, self.one_sided)

    def size(self, evaluation: Evaluation) -> int:
        """Objective-coder bytes (`objective_size`) of an evaluated point, computed once, kept only for
        points that meet a bound; taken from the background thread when `evaluate` started it there."""
        key = evaluation.key
        if key not in self.sizes:
            with self.timed("compress"):
                if key in self.pending:
                    self.sizes[key], seconds = self.pending.pop(key).result()
                    self.timings["compress_background"] += seconds
                else:
                    cg = self.coarse_grain(evaluation.ranks, evaluation.delta, evaluation.tau)
                    self.sizes[key] = self.objective_size(cg)
        return self.sizes[key]

    def smallest_feasible(self, eps: float, keys=None) -> Evaluation | None:
        """The smallest already-compressed point that meets the bound at eps (first found wins ties),
        among `keys` (evaluation keys, e.g. one search's own points) or every point of the problem.

        Every compressed point met some bound; a point meeting the bound at eps meets it at any larger
        eps, so over all points this is non-increasing in eps: the pooled curves are monotone.
        """
        best = None
        for key, size in self.sizes.items():
            if keys is not None and key not in keys:
                continue
            evaluation = self.evaluations[key]
            if self.feasible(evaluation, eps) and (best is None or size < self.sizes[best.key]):
                best = evaluation
        return best

    def result(self, evaluation: Evaluation, eps: float, algorithm: int, n_evaluations: int) -> ComplexityResult:
        """The full record of an accepted point: both coders, test metrics, the weights themselves."""
        with self.limited_threads():
            return self._result(evaluation, eps, algorithm, n_evaluations)

    def _result(self, evaluation: Evaluation, eps: float, algorithm: int, n_evaluations: int) -> ComplexityResult:
        cg = self.coarse_grain(evaluation.ranks, evaluation.delta, evaluation.tau)
        with self.timed("compress"):
            paper = self.sizes.get(evaluation.key) if self.objective == "paper" else None
            paper = paper_size(cg.stored_arrays()) if paper is None else paper
        # the symbols coder (bzip2 and lzma) runs on the background thread while the test loss is measured
        symbols = (_compressor(self.compress_threads).submit(_timed_call, encode_symbols, cg, paper)
                   if self.background else None)
        weights = cg.weights()
        test_loss, test_acc = math.nan, math.nan
        if self.test is not None:
            with self.timed("loss"):
                test_loss, test_acc, _ = self.loss_and_accuracy({k: v.to(self.device) for k, v in weights.items()},
                                                                self.test)
        with self.timed("compress"):
            if symbols is None:
                symbols = encode_symbols(cg, limit=paper)
            else:
                symbols, seconds = symbols.result()
                self.timings["compress_background"] += seconds
        return ComplexityResult(
            algorithm=algorithm, eps=float(eps), one_sided=self.one_sided, paper_bytes=paper,
            symbols_bytes=symbols.n_bytes, symbols_codec=symbols.codec, tau=evaluation.tau,
            delta=evaluation.delta, ranks=cg.ranks, reference_train_loss=self.reference_loss,
            train_loss=evaluation.train_loss, train_acc=evaluation.train_acc, test_loss=test_loss,
            test_acc=test_acc, n_train=len(self.train[0]), n_evaluations=n_evaluations, weights=weights, coarse=cg)
