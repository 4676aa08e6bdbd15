"""Algorithms 1 and 2: search coarse-grainings for the smallest description that meets the eps-bound.

* Algorithm 2 (`quantization_complexity`): quantization only; bisection for the largest Delta meeting the
  bound, as the authors' code does it (50 iterations, Delta in (1e-12, 2 max|theta|), stop when the
  interval is narrower than 1e-12); complexity = compressed size of Q(theta, Delta).
* Algorithm 1 (`bayesian_complexity`): Bayesian optimization (scikit-optimize `Optimizer`) over tau
  (linear, [1e-3, 1]) and Delta (log-scale, [1e-3, 1]); the objective is the compressed size (the paper's
  coder by default) and a point violating the bound gets a penalty (the raw float32 size). Default budget
  as the code: 2 probes (Delta = 1e-3, tau = 1) and (Delta normalised 0.1 = 10^-2.7, tau = 0.98), then 10
  random and 50 guided points. The surrogate is skopt's GP, its kernel refit once per step (skopt's own
  3 L-BFGS restarts cost more than all loss evaluations together in benchmarks/bench_complexity.py),
  fit and queried through `grok_lib.surrogate` (FastGP: the same likelihood and predictions in lean
  numpy, one prediction shared by gp_hedge's three acquisition functions; ArraySpace: the same
  candidates sampled by numpy; together 2-3x less optimizer time in the benchmark, the same search);
  starting each kernel fit from the last one's optimum saved nothing measurable and was dropped. An
  extra-trees forest ("ET", 16 trees) takes a tenth of the GP's time but found an 11 % larger size on the
  benchmark checkpoint, so it is the fast option, not the default. The code's tau range is [0, 1];
  every tau <= sigma_bar_1 gives k = 1, and sigma_bar_1 >= 1/min(m, n) > 1e-3 for every matrix smaller
  than 1000 on a side, so [1e-3, 1] is the same search without the rank-0 (deleted) matrices that Eq. 13
  does not define.

The probes, extra and random points are evaluated before the surrogate sees any of them (their
compressions run in the background behind the next losses); guided points come one at a time
(`BayesConfig.batch = 1`, the paper's sequential search) or k at a time (skopt's constant liar, evaluated
together and compressed side by side; for a GPU and many cores). Each guided point's exact size is on the
sequential search's critical path (the surrogate needs it before the next proposal; ~65 ms of level-9 bz2
per feasible point on the benchmark checkpoint, over half of Algorithm 1's wall time on 2 cores). A
pipelined variant that proposed the next point while the last one compressed (the pending value told as a
lie, then corrected: lag 1) took 3.15 s instead of 4.86 s (medians) but found 5.7 % larger sizes
(constant liar, min; 8.9 % with the GP's own prediction as the lie) over 32 paired searches (4 checkpoints
x 2 eps x 4 seeds, larger in 22; benchmarks/compare_pipelined_search.py), so it is not offered;
several searches side by side (a process per checkpoint, track_complexity's `workers`) use more cores at
no cost in size.

Algorithm 1 accepts extra initial points (tau = None: quantization only); they are evaluated exactly as
given and told to the optimizer clipped into its box. Its answer is the smallest compressed point that
meets the bound among every point the problem has compressed, so seeding it with Algorithm 2's point makes
it never worse than Algorithm 2, and running eps in increasing order over one problem (`complexity_curve`)
makes complexity non-increasing in eps by construction.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from skopt import Optimizer
from skopt.learning import ExtraTreesRegressor, RandomForestRegressor
from skopt.utils import cook_estimator
from skopt.space import Real

from .complexity import ComplexityProblem, ComplexityResult, check_eps
from .errors import require
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


def quantization_complexity(problem: ComplexityProblem, eps: float, iterations: int = 50,
                            tolerance: float = 1e-12) -> ComplexityResult:
    """Algorithm 2: the largest Delta (bisection) with |L(Q(theta, Delta)) - L(theta)| < eps; its size."""
    with problem.limited_threads():
        return _quantization_complexity(problem, eps, iterations, tolerance)


def _quantization_complexity(problem: ComplexityProblem, eps: float, iterations: int,
                             tolerance: float) -> ComplexityResult:
    check_eps(eps)
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
    problem.size(best)  # joins the pool that Algorithm 1 chooses from
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
                        seed: int = 0, extra_points: tuple = ()) -> ComplexityResult:
    """Algorithm 1: Bayesian optimization of (tau, Delta) for the smallest size meeting the eps-bound.

    `extra_points`: (tau or None, Delta) pairs evaluated before the random points, e.g. Algorithm 2's
    (None, Delta). If no point of the whole problem meets the bound, Algorithm 2's answer is returned.
    """
    with problem.limited_threads():
        return _bayesian_complexity(problem, eps, config, seed, extra_points)


def _bayesian_complexity(problem: ComplexityProblem, eps: float, config: BayesConfig, seed: int,
                         extra_points: tuple) -> ComplexityResult:
    check_eps(eps)
    require(isinstance(seed, int) and seed >= 0, "seed", f"must be an integer >= 0, got {seed!r}")
    initial = list(config.probes) + list(extra_points)
    optimizer = _optimizer(config, seed, n_initial=len(initial) + config.n_random)

    def objective(evaluation) -> float:
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
    best = problem.smallest_feasible(eps)
    if best is None:
        fallback = quantization_complexity(problem, eps)
        best = problem.smallest_feasible(eps)
        evaluated += fallback.n_evaluations
    return problem.result(best, eps, algorithm=1, n_evaluations=evaluated)


def complexity_curve(problem: ComplexityProblem, eps_values=PAPER_EPS, config: BayesConfig = BayesConfig(),
                     seed: int = 0, with_algorithm_2: bool = True
                     ) -> list[tuple[ComplexityResult, ComplexityResult | None]]:
    """(Algorithm 1, Algorithm 2) results for each eps, in increasing eps; Algorithm 1 seeded with Algorithm 2.

    Over one problem the Algorithm 1 complexities are non-increasing in eps by construction (see module doc).
    """
    values = sorted(set(float(e) for e in eps_values))
    require(len(values) > 0, "eps", "give at least one distortion bound")
    for eps in values:
        check_eps(eps)
    out = []
    for eps in values:
        alg2 = quantization_complexity(problem, eps) if with_algorithm_2 else None
        extra = ((None, alg2.delta),) if alg2 is not None else ()
        out.append((bayesian_complexity(problem, eps, config, seed, extra), alg2))
    return out


def measure_complexity(module, loss_fn, train_data, eps: float = 1.0, *, test_data=None, algorithm: int = 1,
                       config: BayesConfig = BayesConfig(), seed: int = 0, one_sided: bool = False,
                       objective: str = "paper") -> ComplexityResult:
    """Complexity of any nn.Module at distortion eps on the FULL training set (Algorithms 1 and 2).

    module: any torch.nn.Module; every parameter is coarse-grained (matrices, and >2-D tensors viewed as
    (shape[0], -1), may be low-rank factorized; others only quantized). Buffers are left as they are.
    loss_fn(outputs, targets): the MEAN loss over a batch, >= 0 per example (e.g. F.cross_entropy).
    train_data, test_data: (inputs, targets) tensor pairs; inputs go to module(inputs) in one call per chunk.
    algorithm: 1 = Algorithm 1 seeded with Algorithm 2's point (never worse than 2); 2 = Algorithm 2.
    objective: the coder Algorithm 1 minimizes, "paper" (the authors' bz2-of-pickle) or "symbols".
    """
    require(algorithm in (1, 2), "algorithm",
            f"must be 1 (Bayesian optimization) or 2 (quantization), got {algorithm!r}")
    check_eps(eps)
    problem = ComplexityProblem(module, loss_fn, train_data, test_data, one_sided=one_sided, objective=objective)
    alg2 = quantization_complexity(problem, eps)
    if algorithm == 2:
        return alg2
    return bayesian_complexity(problem, eps, config, seed, extra_points=((None, alg2.delta),))
