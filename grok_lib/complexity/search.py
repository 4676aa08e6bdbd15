"""Algorithms 1 and 2: search coarse-grainings for the smallest description that meets the eps-bound.

* Algorithm 2 (`quantization_complexity`): quantization only. As the paper's appendix writes it, a sweep
  of Delta from small to large whose answer is the smallest compressed size among the points within eps,
  starting from the unquantized weights (`method="sweep"`, default; the grid is `SWEEP_POINTS_PER_DECADE`
  log-spaced points per decade from 1e-6 max|theta| to 2 max|theta|). Which Delta meet the bound is not
  monotone in Delta, so the authors' code's bisection for "the largest Delta within eps" (50 steps in
  (1e-12, 2 max|theta|)) can miss feasible, smaller points; it is `method="bisection"`.
* Algorithm 1 (`bayesian_complexity`): Bayesian optimization (scikit-optimize) over tau (linear,
  [1e-3, 1]) and Delta (log-scale, [1e-3, 1]) with the code's budget: 2 probes, 10 random and 50 guided
  points; a point violating the bound gets a penalty (the raw float32 size). Its answer is the smallest of
  its own points that meet the bound, as the paper's pseudocode returns (`pooled=False`); `pooled=True`
  returns the smallest of every point the problem has measured (Algorithm 2's sweep and the searches at
  other eps included): never worse than Algorithm 2 and non-increasing in eps by construction.
  The surrogate is skopt's GP (refit once per step, through the lean `grok_lib.complexity.surrogate`), or a forest.
  The code's tau range is [0, 1]; every tau <= sigma_bar_1 gives k = 1 and sigma_bar_1 >= 1/min(m, n),
  so [1e-3, 1] is the same search without the rank-0 (deleted) matrices that Eq. 13 does not define.

The probes, extra and random points do not depend on any result and are evaluated before the surrogate
sees them; guided points come one at a time (`BayesConfig.batch = 1`, the paper's sequential search) or
k at a time (skopt's constant liar; for a GPU and many cores). Measured costs and the variants tried and
rejected are in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from skopt import Optimizer
from skopt.learning import ExtraTreesRegressor, RandomForestRegressor
from skopt.utils import cook_estimator
from skopt.space import Real

from .problem import ComplexityProblem, ComplexityResult, check_eps
from ..errors import require
from .surrogate import ArraySpace, FastGP

ESTIMATORS = ("GP", "ET", "RF")  # skopt's GBRT estimator is broken with current scikit-learn
PAPER_EPS = (4.0, 2.0, 1.0, 0.5, 0.25, 0.125, 0.0625)
DELTA_BOUNDS = (1e-3, 1.0)
TAU_BOUNDS = (1e-3, 1.0)
# The code's two probes, in its normalised coordinates (log-scale Delta): (Delta 0.0, tau 1.0), (0.1, 0.98).
PAPER_PROBES = ((1.0, DELTA_BOUNDS[0]), (0.98, DELTA_BOUNDS[0] * (DELTA_BOUNDS[1] / DELTA_BOUNDS[0]) ** 0.1))


@dataclass(frozen=True)
class BayesConfig:
    """Algorithm 1's budget and optimizer; the defaults are the authors' (2 probes + 10 random + 50 guided)."""

    n_random: int = 10  # random points after the probes and extra points
    n_guided: int = 50  # points proposed by the surrogate model
    probes: tuple = PAPER_PROBES  # (tau, Delta) pairs evaluated first
    estimator: str = "GP"  # surrogate: GP (skopt's Gaussian process) or ET / RF (forests: faster, looser)
    gp_restarts: int = 0  # extra kernel fits per GP step (skopt's default 2 triples the optimizer time)
    n_trees: int = 16  # forest size for ET / RF (skopt's own default of 100 costs ~5x the time here)
    # random candidates scored by the acquisition function per proposal; 500 cut the optimizer's time by
    # ~40 % but found 12-13 % larger sizes on the benchmark run's epoch-51 and epoch-150 checkpoints
    n_candidates: int = 2000
    # guided points proposed per round: 1 is the paper's sequential search; k > 1 asks skopt for k points
    # at once (constant liar, "cl_min"), evaluates them together (one batched forward on a GPU) and
    # compresses them side by side, for k cores; the same budget, a different (parallel) search
    batch: int = 1

    def __post_init__(self):
        for name in ("n_random", "n_guided"):
            value = getattr(self, name)
            require(isinstance(value, int) and value >= 0, name, f"must be an integer >= 0, got {value!r}")
        require(self.n_random + self.n_guided + len(self.probes) >= 1, "n_random", "the search evaluates no point")
        require(self.n_guided == 0 or self.n_random + len(self.probes) >= 1, "n_random",
                "guided points need at least one probe or random point to fit the surrogate on")
        require(self.estimator in ESTIMATORS, "estimator",
                f"unknown surrogate {self.estimator!r}; allowed: {', '.join(ESTIMATORS)}")
        require(isinstance(self.gp_restarts, int) and self.gp_restarts >= 0, "gp_restarts",
                f"must be an integer >= 0, got {self.gp_restarts!r}")
        require(isinstance(self.n_trees, int) and self.n_trees >= 1, "n_trees",
                f"must be a positive integer, got {self.n_trees!r}")
        require(isinstance(self.batch, int) and self.batch >= 1, "batch",
                f"must be a positive integer, got {self.batch!r}")
        require(isinstance(self.n_candidates, int) and self.n_candidates >= 1, "n_candidates",
                f"must be a positive integer, got {self.n_candidates!r}")
        for tau, delta in self.probes:
            require(TAU_BOUNDS[0] <= tau <= TAU_BOUNDS[1], "probes", f"tau {tau} outside {TAU_BOUNDS}")
            require(DELTA_BOUNDS[0] <= delta <= DELTA_BOUNDS[1], "probes", f"Delta {delta} outside {DELTA_BOUNDS}")


ALGORITHM_2_METHODS = ("sweep", "sweep-edges", "bisection")
SWEEP_POINTS_PER_DECADE = 8  # chosen by benchmarks/bench_algorithm2.py (see benchmarks/RESULTS.md)
SWEEP_REFINE_STEPS = 8  # log-bisection steps at each feasible -> infeasible edge of the grid
SWEEP_DECADES = 6  # the grid starts 6 decades below 2 max|theta|, where Q(theta, Delta) ~ the float32 weights


def sweep_grid(max_abs: float, points_per_decade: int = SWEEP_POINTS_PER_DECADE) -> list[float]:
    """Algorithm 2's bin sizes, small to large: log-spaced from 2e-6 max|theta| up to 2 max|theta|."""
    require(isinstance(points_per_decade, int) and points_per_decade >= 1, "points_per_decade",
            f"must be a positive integer, got {points_per_decade!r}")
    top = 2 * max_abs if max_abs > 0 else 1.0
    n = SWEEP_DECADES * points_per_decade
    return [top * 10.0 ** ((i - n) / points_per_decade) for i in range(n + 1)]


def quantization_complexity(problem: ComplexityProblem, eps: float, method: str = "sweep",
                            points_per_decade: int = SWEEP_POINTS_PER_DECADE, refine: int = SWEEP_REFINE_STEPS,
                            iterations: int = 50, tolerance: float = 1e-12) -> ComplexityResult:
    """Algorithm 2: the smallest compressed Q(theta, Delta) with |L(Q(theta, Delta)) - L(theta)| < eps.

    method "sweep" (the paper's appendix): every Delta of `sweep_grid` from small to large, after the
    code's starting point 1e-12 (the float32 weights themselves: the paper's compress(params)); where a
    feasible grid point's next one is not, `refine` log-bisection steps between the two locate that edge;
    every feasible point is compressed. "sweep-edges": the same points, but only the largest Delta of each
    run of consecutive feasible points is compressed (assumes the size falls as Delta grows within a run;
    much cheaper, as fine grids compress slowly). "bisection" (the authors' code): the largest Delta meeting
    the bound by `iterations` halvings of (1e-12, 2 max|theta|), which assumes that feasibility is monotone
    in Delta (it is not).
    """
    require(method in ALGORITHM_2_METHODS, "method",
            f"unknown Algorithm 2 method {method!r}; allowed: {', '.join(ALGORITHM_2_METHODS)}")
    require(isinstance(refine, int) and refine >= 0, "refine", f"must be an integer >= 0, got {refine!r}")
    check_eps(eps)
    with problem.limited_threads():
        if method == "bisection":
            return _bisection(problem, eps, iterations, tolerance)
        return _sweep(problem, eps, points_per_decade, refine, edges_only=method == "sweep-edges")


def _sweep(problem: ComplexityProblem, eps: float, points_per_decade: int, refine: int,
           edges_only: bool) -> ComplexityResult:
    grid = sweep_grid(problem.grainer.max_abs, points_per_decade)
    prefetch = not edges_only
    evaluations = problem.evaluate_many([(None, d) for d in [1e-12] + grid], eps, prefetch=prefetch)
    feasible = [problem.feasible(e, eps) for e in evaluations[1:]]
    for i in range(len(grid) - 1):
        if feasible[i] and not feasible[i + 1]:  # an edge of a feasible run: find it in log Delta
            low, high = grid[i], grid[i + 1]
            for _ in range(refine):
                middle = (low * high) ** 0.5
                evaluation = problem.evaluate(None, middle, eps, prefetch=prefetch)
                evaluations.append(evaluation)
                low, high = (middle, high) if problem.feasible(evaluation, eps) else (low, middle)
    ordered = sorted(evaluations, key=lambda e: e.delta)
    feasible = [problem.feasible(e, eps) for e in ordered]
    for i, evaluation in enumerate(ordered):
        last_of_run = i + 1 == len(ordered) or not feasible[i + 1]
        if feasible[i] and (last_of_run or not edges_only):
            problem.size(evaluation)
    best = problem.smallest_feasible(eps, keys={e.key for e in evaluations})
    require(best is not None, "eps", f"no quantization meets the bound {eps}, not even Delta = 1e-12 "
            "(is the loss deterministic?)")
    return problem.result(best, eps, algorithm=2, n_evaluations=len(evaluations))


def _bisection(problem: ComplexityProblem, eps: float, iterations: int, tolerance: float) -> ComplexityResult:
    require(isinstance(iterations, int) and iterations >= 1, "iterations",
            f"must be a positive integer, got {iterations!r}")
    low = 1e-12
    high = max(2 * problem.grainer.max_abs, 2 * low)
    best, evaluated = None, 0
    for _ in range(iterations):
        middle = (low + high) / 2
        evaluation = problem.evaluate(None, middle, eps)
        evaluated += 1
        if problem.feasible(evaluation, eps):
            best, low = evaluation, middle
        else:
            high = middle
        if high - low < tolerance:
            break
    if best is None:  # the code's starting point: Delta = 1e-12, the float32 weights themselves
        best = problem.evaluate(None, low, eps)
        evaluated += 1
        require(problem.feasible(best, eps), "eps",
                f"no quantization meets the bound {eps}, not even Delta = {low} (is the loss deterministic?)")
    problem.size(best)  # joins the pool that a pooled Algorithm 1 chooses from
    return problem.result(best, eps, algorithm=2, n_evaluations=evaluated)


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
        acq_optimizer_kwargs={"n_points": config.n_candidates}, random_state=seed)
    optimizer.space = ArraySpace(optimizer.space.dimensions)  # the same candidates, sampled by numpy
    return optimizer


def _clip(value: float, bounds: tuple[float, float]) -> float:
    return min(max(value, bounds[0]), bounds[1])


def bayesian_complexity(problem: ComplexityProblem, eps: float, config: BayesConfig = BayesConfig(),
                        seed: int = 0, extra_points: tuple = (), pooled: bool = False) -> ComplexityResult:
    """Algorithm 1: Bayesian optimization of (tau, Delta) for the smallest size meeting the eps-bound.

    The answer is the smallest of the search's own points within eps (the paper's pseudocode), or with
    `pooled` the smallest of every point the problem has compressed. `extra_points`: (tau or None, Delta)
    pairs evaluated (and told to the surrogate) before the random points. If none of the points it may
    choose from meets the bound, Algorithm 2's sweep is run and its answer returned.
    """
    with problem.limited_threads():
        return _bayesian_complexity(problem, eps, config, seed, extra_points, pooled)


def _bayesian_complexity(problem: ComplexityProblem, eps: float, config: BayesConfig, seed: int,
                         extra_points: tuple, pooled: bool) -> ComplexityResult:
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
    if best is None:
        fallback = quantization_complexity(problem, eps)
        return problem.result(problem.evaluations[_key_of(fallback)], eps, algorithm=1,
                              n_evaluations=evaluated + fallback.n_evaluations)
    return problem.result(best, eps, algorithm=1, n_evaluations=evaluated)


def _key_of(result: ComplexityResult) -> tuple:
    return tuple(result.ranks.values()), result.delta


@dataclass(frozen=True)
class CurvePoint:
    """Everything measured at one eps of a checkpoint's rate-distortion curve."""

    algorithm_1: ComplexityResult  # the paper's: the smallest of its own search points
    algorithm_1_pooled: ComplexityResult  # the smallest of every point measured on the checkpoint
    algorithm_2: ComplexityResult | None


def complexity_curve(problem: ComplexityProblem, eps_values=PAPER_EPS, config: BayesConfig = BayesConfig(),
                     seed: int = 0, with_algorithm_2: bool = True, algorithm_2_method: str = "sweep"
                     ) -> list[CurvePoint]:
    """Algorithm 2 and 1 at each eps (increasing), then each eps's pooled answer over every point measured.

    The pooled complexities are non-increasing in eps and never above Algorithm 2's, by construction.
    """
    values = sorted(set(float(e) for e in eps_values))
    require(len(values) > 0, "eps", "give at least one distortion bound")
    for eps in values:
        check_eps(eps)
    searched = []
    for eps in values:
        alg2 = quantization_complexity(problem, eps, algorithm_2_method) if with_algorithm_2 else None
        searched.append((bayesian_complexity(problem, eps, config, seed), alg2))
    out = []
    for eps, (alg1, alg2) in zip(values, searched):
        best = problem.smallest_feasible(eps)
        pooled = alg1 if best.key == _key_of(alg1) else problem.result(best, eps, 1, alg1.n_evaluations)
        out.append(CurvePoint(alg1, pooled, alg2))
    return out


def measure_complexity(module, loss_fn, train_data, eps: float = 1.0, *, test_data=None, algorithm: int = 1,
                       pooled: bool = False, config: BayesConfig = BayesConfig(), seed: int = 0,
                       one_sided: bool = False, objective: str = "paper",
                       algorithm_2_method: str = "sweep") -> ComplexityResult:
    """Complexity of any nn.Module at distortion eps on the FULL training set (Algorithms 1 and 2).

    module: any torch.nn.Module; every parameter is coarse-grained (matrices, and >2-D tensors viewed as
    (shape[0], -1), may be low-rank factorized; others only quantized). Buffers are left as they are.
    loss_fn(outputs, targets): the MEAN loss over a batch, >= 0 per example (e.g. F.cross_entropy).
    train_data, test_data: (inputs, targets) tensor pairs; inputs go to module(inputs) in one call per chunk.
    algorithm: 1 = Algorithm 1 (Bayesian optimization of tau and Delta); 2 = Algorithm 2 (Delta only).
    pooled: Algorithm 1's answer is the smallest of its points and Algorithm 2's (never worse than 2).
    objective: the coder Algorithm 1 minimizes, "paper" (the authors' bz2-of-pickle) or "symbols".
    """
    require(algorithm in (1, 2), "algorithm",
            f"must be 1 (Bayesian optimization) or 2 (quantization), got {algorithm!r}")
    check_eps(eps)
    problem = ComplexityProblem(module, loss_fn, train_data, test_data, one_sided=one_sided, objective=objective)
    if algorithm == 2 or pooled:
        alg2 = quantization_complexity(problem, eps, algorithm_2_method)
        if algorithm == 2:
            return alg2
    return bayesian_complexity(problem, eps, config, seed, pooled=pooled)
