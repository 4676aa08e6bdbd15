"""Algorithm 1: Bayesian optimization (scikit-optimize) of (tau, Delta) for the smallest description
within eps (Eq. 7, Eq. 11-14), and the rate-distortion curve of Algorithms 1 and 2 over eps.

The budget is the authors' code's: 2 probes, 10 random and 50 guided points over tau in [1e-3, 1] and
log Delta in [1e-3, 1]; a point violating the bound is told the raw float32 size. The code's tau range
is [0, 1], but every tau <= sigma_bar_1 gives k = 1 and sigma_bar_1 >= 1/min(m, n), so [1e-3, 1] is the
same search without the rank-0 matrices that Eq. 13 does not define. The answer is the smallest of the
search's own points within eps, as the paper's pseudocode returns; `pooled=True` takes the smallest of
every point the problem has measured (Algorithm 2's and other eps' included): never worse than
Algorithm 2 and non-increasing in eps. The surrogate is skopt's GP, its kernel fit done by
grok_lib.complexity.surrogate, or a forest. Algorithm 2 is in grok_lib.complexity.quantization; the
costs behind the defaults are in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from skopt import Optimizer
from skopt.learning import ExtraTreesRegressor, RandomForestRegressor
from skopt.utils import cook_estimator
from skopt.space import Real

from .measurement import (DELTA_BOUNDS, PAPER, PAPER_PROBES, SEARCHES, TAU_BOUNDS, BayesConfig,  # noqa: F401
                          Measurement)
from .problem import ComplexityProblem, ComplexityResult, check_eps
from .edge import edge_complexity
from .quantization import quantization_complexity
from .reallocation import reallocate as reallocate_deltas
from .surrogate import ArraySpace, FastGP
from ..errors import require

PAPER_EPS = (4.0, 2.0, 1.0, 0.5, 0.25, 0.125, 0.0625)
N_CANDIDATES = 2000  # candidates the acquisition scores per proposal (skopt's sampling acquisition optimizer)


def _surrogate(config: BayesConfig, seed: int):
    """skopt's own GP (Matern 5/2 x constant + noise) refit config.gp_restarts + 1 times per step, or a
    forest of config.n_trees trees (min_samples_leaf 3, as skopt's forests)."""
    if config.estimator == "GP":
        gp = FastGP(**cook_estimator("GP", space=_space(), random_state=seed).get_params(deep=False))
        gp.n_restarts_optimizer = config.gp_restarts
        return gp
    forest = ExtraTreesRegressor if config.estimator == "ET" else RandomForestRegressor
    return forest(n_estimators=config.n_trees, min_samples_leaf=3, random_state=seed)


def _space() -> list:
    return [Real(*TAU_BOUNDS, name="tau"), Real(*DELTA_BOUNDS, prior="log-uniform", name="delta")]


def _optimizer(config: BayesConfig, seed: int, n_initial: int) -> Optimizer:
    """skopt's Optimizer over (tau, Delta): n_initial random-phase points, then the surrogate's proposals."""
    optimizer = Optimizer(
        _space(), base_estimator=_surrogate(config, seed), n_initial_points=n_initial,
        initial_point_generator="random", acq_optimizer="sampling",
        acq_optimizer_kwargs={"n_points": N_CANDIDATES}, random_state=seed)
    optimizer.space = ArraySpace(optimizer.space.dimensions)  # the same candidates, sampled by numpy
    return optimizer


def _clip(value: float, bounds: tuple[float, float]) -> float:
    return min(max(value, bounds[0]), bounds[1])


def bayesian_complexity(problem: ComplexityProblem, eps: float, config: BayesConfig = PAPER.budget,
                        seed: int = 0, extra_points: tuple = (), pooled: bool = False, refine: int = 0,
                        reallocate: int = 0) -> ComplexityResult:
    """Algorithm 1: Bayesian optimization of (tau, Delta) for the smallest size meeting the eps-bound.

    The answer is the smallest of the search's own points within eps (the paper's pseudocode), or with
    `pooled` the smallest of every point the problem has compressed. `extra_points`: (tau or None, Delta)
    pairs evaluated (and told to the surrogate) before the random points. refine, reallocate: see
    Measurement (not in the paper). If none of the points it may choose from meets the bound, Algorithm
    2's sweep is run and its answer returned.
    """
    with problem.limited_threads():
        return _bayesian_complexity(problem, eps, config, seed, extra_points, pooled, refine, reallocate)


def _bayesian_complexity(problem: ComplexityProblem, eps: float, config: BayesConfig, seed: int,
                         extra_points: tuple, pooled: bool, refine: int, reallocate: int) -> ComplexityResult:
    check_eps(eps)
    require(isinstance(seed, int) and seed >= 0, "seed", f"must be an integer >= 0, got {seed!r}")
    initial = list(config.probes) + list(extra_points)
    optimizer = _optimizer(config, seed, n_initial=len(initial) + config.n_random)
    own: set = set()

    def objective(evaluation) -> float:
        own.add(evaluation.key)
        return float(problem.size(evaluation)) if problem.feasible(evaluation, eps) else float(problem.penalty)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # repeated points and GP convergence notes are expected here
        # The probes, extra and random points do not depend on any result (skopt draws the random ones
        # from its own generator, which a tell before the model phase does not touch): all are evaluated
        # first, their compressions queueing on the background thread behind the next losses, and told
        # at once, which fits the surrogate once, as the last of one-at-a-time tells would.
        with problem.timed("optimizer"):
            randoms = [optimizer.ask() for _ in range(config.n_random)]
        points = initial + [(float(tau), float(delta)) for tau, delta in randoms]
        evaluations = problem.evaluate_many(points, eps, prefetch=True)
        ys = [objective(evaluation) for evaluation in evaluations]
        told = [[1.0 if tau is None else _clip(tau, TAU_BOUNDS), _clip(delta, DELTA_BOUNDS)]
                for tau, delta in initial]
        with problem.timed("optimizer"):
            optimizer.tell(told + [list(x) for x in randoms], ys, fit=config.n_guided > 0)
        evaluated = len(points)
        remaining = config.n_guided
        while remaining > 0:
            k = min(config.batch, remaining)
            with problem.timed("optimizer"):
                # k > 1: skopt's constant liar (each proposal told the best value so far, then the next asked)
                xs = [optimizer.ask()] if k == 1 else optimizer.ask(n_points=k, strategy="cl_min")
            evaluations = problem.evaluate_many([(float(tau), float(delta)) for tau, delta in xs], eps, prefetch=True)
            ys = [objective(evaluation) for evaluation in evaluations]
            remaining -= k
            with problem.timed("optimizer"):
                # the last tell's surrogate would propose nothing more: record the values without a fit
                if k == 1:
                    optimizer.tell(list(xs[0]), ys[0], fit=remaining > 0)
                else:
                    optimizer.tell([list(x) for x in xs], ys, fit=remaining > 0)
            evaluated += k
    best = problem.smallest_feasible(eps, keys=None if pooled else own)
    if best is not None and refine:
        evaluated += _refine_delta(problem, best, eps, refine, objective)
        best = problem.smallest_feasible(eps, keys=None if pooled else own)
    if best is not None and reallocate:
        evaluated += reallocate_deltas(problem, best, eps, reallocate, objective)
        best = problem.smallest_feasible(eps, keys=None if pooled else own)
    if best is None:
        fallback = quantization_complexity(problem, eps)
        return problem.result(problem.evaluations[fallback.key], eps, algorithm=1,
                              n_evaluations=evaluated + fallback.n_evaluations)
    return problem.result(best, eps, algorithm=1, n_evaluations=evaluated)


def _refine_delta(problem: ComplexityProblem, best, eps: float, steps: int, objective) -> int:
    """Measurement.refine: log-bisection of Delta at `best`'s tau between the largest Delta known to meet
    the bound and the smallest above it known not to (doubling until one is found); every point is
    evaluated and told to `objective`, so the search's answer is the smallest of all. Returns the number of
    points evaluated. Feasibility need not be monotone in Delta: the steps only add candidates."""
    low, high, done = best.delta, None, 0
    while done < steps and (high is not None or low < DELTA_BOUNDS[1]):
        trial = min(2 * low, DELTA_BOUNDS[1]) if high is None else (low * high) ** 0.5
        evaluation = problem.evaluate(best.tau, trial, eps, prefetch=True)
        objective(evaluation)
        done += 1
        if problem.feasible(evaluation, eps):
            low = trial
        else:
            high = trial
    return done


@dataclass(frozen=True)
class CurvePoint:
    """Everything measured at one eps of a checkpoint's rate-distortion curve."""

    algorithm_1: ComplexityResult  # the paper's: the smallest of its own search points
    algorithm_1_pooled: ComplexityResult  # the smallest of every point measured on the checkpoint
    algorithm_2: ComplexityResult | None
    edge: ComplexityResult | None = None  # the edge search's (grok_lib.complexity.edge), not in the paper


def complexity_curve(problem: ComplexityProblem, eps_values=PAPER_EPS, how: Measurement = PAPER,
                     with_edge: bool = False) -> list[CurvePoint]:
    """Algorithm 2 (how.algorithm_2) and Algorithm 1 (how's Bayesian search; and with_edge the edge search)
    at each eps (increasing), then each eps's pooled answer over every point measured (the edge search's
    included). `problem` was built with how's objective, split, sidedness and allocation (`problem_for`).

    The pooled complexities are non-increasing in eps and never above Algorithm 2's, by construction.
    """
    require(isinstance(how, Measurement), "how", f"must be a Measurement (e.g. PAPER), got {type(how).__name__}")
    require(how.algorithm == 1 and how.search == "bayes" and not how.pooled, "how",
            "a curve runs every search (Algorithm 1's Bayesian search, Algorithm 2, pooled, with_edge the edge "
            "search): give a measurement with algorithm=1, search='bayes', pooled=False")
    values = sorted(set(float(e) for e in eps_values))
    require(len(values) > 0, "eps", "give at least one distortion bound")
    for eps in values:
        check_eps(eps)
    searched = []
    for eps in values:
        alg2 = quantization_complexity(problem, eps, how.algorithm_2)
        alg1 = bayesian_complexity(problem, eps, how.budget, how.seed, refine=how.refine, reallocate=how.reallocate)
        searched.append((alg1, alg2, edge_complexity(problem, eps) if with_edge else None))
    out = []
    for eps, (alg1, alg2, edge) in zip(values, searched):
        best = problem.smallest_feasible(eps)
        pooled = alg1 if best.key == alg1.key else problem.result(best, eps, 1, alg1.n_evaluations)
        out.append(CurvePoint(alg1, pooled, alg2, edge))
    return out


def problem_for(module, loss_fn, train_data, test_data=None, how: Measurement = PAPER, **options) -> ComplexityProblem:
    """The search problem of `module` measured `how` (its objective, sidedness, allocation and factor split);
    options: ComplexityProblem's mechanics (threads, chunk_size, ...)."""
    return ComplexityProblem(module, loss_fn, train_data, test_data, one_sided=how.one_sided, objective=how.objective,
                             allocation=how.allocation, factor_split=how.factor_split, **options)


def measure_complexity(module, loss_fn, train_data, eps: float = 1.0, *, test_data=None, how: Measurement = PAPER,
                       **fields) -> ComplexityResult:
    """Complexity of any nn.Module at distortion eps on the FULL training set, measured `how`.

    module: any torch.nn.Module, of any floating dtype; every parameter and floating-point buffer is
    coarse-grained (problem.described_tensors: matrices, and >2-D tensors viewed as (shape[0], -1), may be
    low-rank factorized; others only quantized); integer and boolean buffers are left as they are.
    loss_fn(outputs, targets): the MEAN loss over a batch, >= 0 per example (e.g. F.cross_entropy).
    train_data, test_data: (inputs, targets) tensor pairs; inputs go to module(inputs) in one call per chunk.
    how: a Measurement (grok_lib.complexity.measurement): PAPER (the default: the paper's Algorithm 1),
    AUTHORS, TIGHTEST, EDGE, or your own; fields: any of its fields changed for this call, e.g.
    `algorithm=2`, `search="edge"`, `budget=BayesConfig(n_guided=10)`, `seed=3` (validated as one value:
    an impossible combination names both fields).
    """
    if fields:
        how = how.but(**fields)
    require(isinstance(how, Measurement), "how", f"must be a Measurement (e.g. PAPER), got {type(how).__name__}")
    check_eps(eps)
    problem = problem_for(module, loss_fn, train_data, test_data, how)
    if how.algorithm == 2 or how.pooled:
        alg2 = quantization_complexity(problem, eps, how.algorithm_2)
        if how.algorithm == 2:
            return alg2
    if how.search == "edge":
        return edge_complexity(problem, eps)
    return bayesian_complexity(problem, eps, how.budget, how.seed, pooled=how.pooled, refine=how.refine,
                               reallocate=how.reallocate)
