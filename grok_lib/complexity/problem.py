"""The distortion test (Eq. 6-7) of every coarse-graining of one network, and its compressed sizes.

`ComplexityProblem` holds one network (any nn.Module), a loss function and the FULL training set. It
computes L(theta, D) and the SVD of every matrix once, and caches every evaluated coarse-graining, keyed
by its per-matrix ranks and Delta (two taus with the same ranks are one evaluation). Algorithms 1 and 2
(grok_lib.complexity.search, grok_lib.complexity.quantization) ask it to evaluate points and build results.

None of its speed-ups changes an answer: losses stop early once they provably exceed L(theta) + eps
(`LossMeter`); only points that meet a bound are compressed, on a background thread pool while the loss
of the rest of the set is measured (`background=False`: all in the caller's thread); the work runs on
`threads` torch/BLAS threads (default 1: small matrices, where more threads contend; None leaves the
process's settings alone). allocation="sensitivity": a Delta per parameter (grok_lib.complexity.allocation;
the paper's one global Delta is "global"). Measured costs: benchmarks/RESULTS.md.

    from grok_lib.complexity.search import measure_complexity
    result = measure_complexity(model, torch.nn.functional.cross_entropy, (x_train, y_train), eps=1.0)
    result.paper_bytes, result.symbols_bits, result.tau, result.delta, result.ranks
"""

from __future__ import annotations

import math
import time
import warnings
from collections import defaultdict
from contextlib import contextmanager

import torch
from threadpoolctl import threadpool_limits

from .allocation import check_allocation, loss_rise, sensitivity_scales
from .background import Background, Started
from .coarse import CoarseGrained, CoarseGrainer, check_delta, check_tau
from .coders import CODERS, coded_sizes
from .distortion import LossMeter, check_data, check_eps, within_bound
from .results import ComplexityResult, Evaluation, point_key
from ..errors import GrokError, require

__all__ = ["OBJECTIVES", "ComplexityProblem", "ComplexityResult", "Evaluation", "check_eps"]

OBJECTIVES = tuple(CODERS)  # the coders a search may minimize


def described_tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What the description of `module` holds: every parameter and every floating-point buffer (e.g. batch
    norm's running statistics), since the output depends on both. Integer and boolean buffers (counters,
    masks) are structure, part of the architecture, and left as they are."""
    tensors = dict(module.named_parameters())
    tensors.update({name: b for name, b in module.named_buffers() if b.is_floating_point()})
    return tensors


class ComplexityProblem:
    """A network, its loss and data, and every coarse-graining of it evaluated so far."""

    def __init__(self, module: torch.nn.Module, loss_fn, train_data, test_data=None, *, one_sided: bool = False,
                 objective: str = "paper", chunk_size: int = 8192, early_exit: bool = True,
                 threads: int | None = 1, background: bool = True, compress_threads: int | None = None,
                 vectorize: bool | None = None, allocation: str = "global", factor_split: str = "left"):
        require(isinstance(module, torch.nn.Module), "module",
                f"must be a torch.nn.Module, got {type(module).__name__}")
        require(callable(loss_fn), "loss_fn", "must be callable as loss_fn(outputs, targets) -> mean loss")
        require(objective in CODERS, "objective", f"unknown coder {objective!r}; allowed: {', '.join(CODERS)}")
        check_allocation(allocation)
        require(threads is None or (isinstance(threads, int) and threads >= 1), "threads",
                f"must be a positive integer or None, got {threads!r}")
        params = described_tensors(module)
        require(len(params) > 0, "module", "has no parameters to coarse-grain")
        require(not any(p.is_meta for p in params.values()), "module",
                "has parameters on the meta device (shapes without values); load or initialise its weights first")
        self.dtypes = {name: p.dtype for name, p in params.items()}
        self.module, self.loss_fn = module, loss_fn
        self.device = next(iter(params.values())).device
        # vmap'd batches are for a GPU; on a CPU one point at a time is faster (benchmarks/RESULTS.md)
        self.vectorize = self.device.type == "cuda" if vectorize is None else bool(vectorize)
        x, y = check_data(train_data, "train_data")
        self.train = (x.to(self.device), y.to(self.device))
        self.test = None if test_data is None else tuple(t.to(self.device) for t in check_data(test_data, "test_data"))
        self.one_sided, self.objective = one_sided, objective
        self.meter = LossMeter(module, loss_fn, chunk_size, early_exit)
        self.threads = threads
        self.pending: dict[tuple, Started] = {}  # background compressions of points still being evaluated
        # seconds: svd, coarse_grain, loss, compress (waiting for it), compress_background, optimizer
        self.timings: dict[str, float] = defaultdict(float)
        self.background = Background(compress_threads, background, self.timings)  # validates compress_threads
        with self.limited_threads(), self.timed("svd"):
            self.grainer = CoarseGrainer(params, factor_split)  # validates: no NaN/inf weights
        self.n_params = sum(p.numel() for p in params.values())
        self.penalty = 4 * self.n_params  # raw float32 bytes: the objective of an infeasible point
        with self.limited_threads(), self.timed("loss"):
            try:
                loss, acc, _ = self.loss_and_accuracy({k: v.detach() for k, v in params.items()}, self.train)
            except GrokError:
                raise  # already names its culprit (e.g. loss_fn for a negative loss)
            except (IndexError, RuntimeError, ValueError) as err:  # before any coarse-graining: the inputs' fault
                raise GrokError("train_data", f"loss_fn(module(x), y) fails on the unmodified network "
                                f"({str(err).splitlines()[0]}); check the inputs' shape and the targets (class "
                                "labels within the outputs' range) against the module and loss_fn") from None
        require(math.isfinite(loss), "loss_fn", "the loss of the unmodified network is NaN or inf; it must be finite")
        self.reference_loss, self.reference_acc = loss, acc
        self.scales, self.allocation_evaluations = None, 0  # per parameter, a multiplier of Delta
        if allocation == "sensitivity":
            with self.limited_threads(), self.timed("allocation"):
                self.scales, self.allocation_evaluations = sensitivity_scales(self.grainer, loss_rise(self))
        self.evaluations: dict[tuple, Evaluation] = {}
        self.sizes: dict[tuple, int] = {}  # objective-coder bytes of evaluated points that met a bound
        self.coarse_cache: dict[tuple, CoarseGrained] = {}
        self.measured: dict[tuple, tuple] = {}  # key -> (every coder's size, test loss, test accuracy) of results

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

    def coarse_grain(self, ranks: tuple, delta: float, tau: float | None,
                     scales: tuple[float, ...] | None = None) -> CoarseGrained:
        """Q(R(theta), Delta) at these ranks; scales None: the problem's allocation (self.scales)."""
        scales = self.scales if scales is None else scales
        key = (ranks, delta, scales)
        if key not in self.coarse_cache:
            with self.timed("coarse_grain"):
                self.coarse_cache.clear()  # keep only the latest: the weights are big, reuse is immediate
                self.coarse_cache[key] = self.grainer.with_ranks(ranks, delta, tau, scales)
        return self.coarse_cache[key]

    def weights_on_device(self, cg: CoarseGrained) -> dict[str, torch.Tensor]:
        with self.timed("coarse_grain"):
            # the decoded float32 grid values, cast to each tensor's own dtype: the description plus this
            # rule gives exactly the weights evaluated, for float64, float16 and bfloat16 modules alike
            return {k: v.to(device=self.device, dtype=self.dtypes[k]) for k, v in cg.weights().items()}

    def evaluate(self, tau: float | None, delta: float, eps: float, prefetch: bool = False,
                 scales: tuple[float, ...] | None = None) -> Evaluation:
        """The training loss of Q(R(theta, tau), Delta), exact unless it provably exceeds L(theta) + eps.

        prefetch: start compressing the point in the background once the first chunk has not ruled it out
        (for searches that compress every point meeting the bound, like Algorithm 1; the prefetch of a point
        that then misses the bound is cancelled, or its answer dropped).
        scales: per parameter, a multiplier of Delta (a per-group Delta); None: the problem's allocation.
        """
        check_tau(tau)
        check_delta(delta)
        check_eps(eps)
        scales = self.scales if scales is None else tuple(float(a) for a in scales)
        ranks = self.grainer.ranks(tau)
        key = point_key(ranks, float(delta), scales)
        limit = self.reference_loss + eps
        cached = self.evaluations.get(key)
        if cached is not None and (cached.exact or cached.train_loss > limit):
            return cached
        cg = self.coarse_grain(ranks, float(delta), tau, scales)
        weights = self.weights_on_device(cg)
        with self.timed("loss"):
            loss, acc, exact = self.loss_and_accuracy(
                weights, self.train, limit, on_continue=(lambda: self.prefetch_size(key, cg)) if prefetch else None)
        return self._record(Evaluation(tau, float(delta), ranks, loss, acc, exact, scales), eps)

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
        batched products. Otherwise, and for a module that vmap cannot run
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
            key = point_key(self.grainer.ranks(tau), float(delta), self.scales)
            keys.append(key)
            cached = self.evaluations.get(key)
            if key not in todo and not (cached is not None and (cached.exact or cached.train_loss > limit)):
                with self.timed("coarse_grain"):
                    todo[key] = (tau, self.grainer.with_ranks(key[0], key[1], tau, self.scales))
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
                                      f"({str(error).splitlines()[0]})", stacklevel=2)
                        self._warned_vmap = True
                    return [self.evaluate(tau, delta, eps, prefetch) for tau, delta in points]
            for (key, (tau, _)), (loss, acc, exact) in zip(todo.items(), results):
                self._record(Evaluation(tau, key[1], key[0], loss, acc, exact, self.scales), eps)
        return [self.evaluations[key] for key in keys]

    def objective_size(self, cg: CoarseGrained) -> int:
        """Bytes of `cg` that a search minimizes: the objective coder's search_size (coders.CODERS)."""
        return CODERS[self.objective].search_size(cg)

    def prefetch_size(self, key: tuple, cg: CoarseGrained) -> None:
        """Start compressing a point in the background while its loss is still being evaluated."""
        if self.background.enabled and key not in self.sizes and key not in self.pending:
            self.pending[key] = self.background.start(self.objective_size, cg)

    def price(self, ranks: tuple, tau: float | None, points: list[tuple[float, tuple[float, ...]]],
              data) -> tuple[list[float], list[int]]:
        """Per (Delta, scales) point at these ranks (reallocation's priced moves): its exact loss on `data`, not
        cached, never a candidate answer; and its `objective_size`, in the background while the losses are measured."""
        with self.timed("coarse_grain"):
            coarse = [self.grainer.with_ranks(ranks, delta, tau, scales) for delta, scales in points]
        started = [self.background.start(self.objective_size, cg) for cg in coarse]
        with self.timed("loss"):
            losses = [self.loss_and_accuracy(self.weights_on_device(cg), data)[0] for cg in coarse]
        with self.timed("compress"):
            return losses, [s.result() for s in started]

    def feasible(self, evaluation: Evaluation, eps: float) -> bool:
        return evaluation.exact and within_bound(evaluation.train_loss, self.reference_loss, eps, self.one_sided)

    def size(self, evaluation: Evaluation) -> int:
        """Objective-coder bytes (`objective_size`) of an evaluated point, computed once, kept only for
        points that meet a bound; taken from the background thread when `evaluate` started it there."""
        key = evaluation.key
        if key not in self.sizes:
            with self.timed("compress"):
                if key in self.pending:
                    self.sizes[key] = self.pending.pop(key).result()
                else:
                    cg = self.coarse_grain(evaluation.ranks, evaluation.delta, evaluation.tau, evaluation.scales)
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
        cg = self.coarse_grain(evaluation.ranks, evaluation.delta, evaluation.tau, evaluation.scales)
        if evaluation.key in self.measured:  # the same point answered before (e.g. pooled = Algorithm 2's)
            sizes, test_loss, test_acc = self.measured[evaluation.key]
            return self._record_result(evaluation, eps, algorithm, n_evaluations, cg, cg.weights(), sizes,
                                       test_loss, test_acc)
        known = {self.objective: self.sizes[evaluation.key]} if evaluation.key in self.sizes else {}
        sizes = self.background.start(coded_sizes, cg, known)  # every coder, while the test loss is measured
        weights = cg.weights()
        test_loss, test_acc = math.nan, math.nan
        if self.test is not None:
            with self.timed("loss"):
                test_loss, test_acc, _ = self.loss_and_accuracy({k: v.to(self.device) for k, v in weights.items()},
                                                                self.test)
        with self.timed("compress"):
            sizes = sizes.result()
        self.measured[evaluation.key] = (sizes, test_loss, test_acc)
        return self._record_result(evaluation, eps, algorithm, n_evaluations, cg, weights, sizes, test_loss, test_acc)

    def _record_result(self, evaluation, eps, algorithm, n_evaluations, cg, weights, sizes, test_loss, test_acc):
        return ComplexityResult(
            algorithm=algorithm, eps=float(eps), one_sided=self.one_sided, sizes=sizes, tau=evaluation.tau,
            delta=evaluation.delta, ranks=cg.ranks, reference_train_loss=self.reference_loss,
            train_loss=evaluation.train_loss, train_acc=evaluation.train_acc, test_loss=test_loss,
            test_acc=test_acc, n_train=len(self.train[0]), n_evaluations=n_evaluations + self.allocation_evaluations,
            weights=weights, coarse=cg, scales=evaluation.scales)
