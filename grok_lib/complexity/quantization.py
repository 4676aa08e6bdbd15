"""Algorithm 2: quantization only, the smallest compressed Q(theta, Delta) within eps (Eq. 7, Eq. 11).

"sweep" is the paper's appendix: Delta from small to large on a log grid, starting from the float32
weights themselves. Which Delta meet the bound is not monotone in Delta, so the authors' code's bisection
for "the largest Delta within eps" can miss feasible, smaller points; it is kept as "bisection".
"""

from __future__ import annotations

from .problem import ComplexityProblem, ComplexityResult, check_eps
from ..errors import require

ALGORITHM_2_METHODS = ("sweep", "sweep-top", "bisection")
SWEEP_POINTS_PER_DECADE = 8  # chosen with benchmarks/bench_algorithm2.py (benchmarks/RESULTS.md)
SWEEP_BISECT_STEPS = 8  # log-bisection steps at each feasible -> infeasible edge of the grid
SWEEP_DECADES = 6  # the grid starts 6 decades below 2 max|theta|, where Q(theta, Delta) ~ the float32 weights


def sweep_grid(max_abs: float, points_per_decade: int = SWEEP_POINTS_PER_DECADE) -> list[float]:
    """Algorithm 2's bin sizes, small to large: log-spaced from 2e-6 max|theta| up to 2 max|theta|."""
    require(isinstance(points_per_decade, int) and points_per_decade >= 1, "points_per_decade",
            f"must be a positive integer, got {points_per_decade!r}")
    top = 2 * max_abs if max_abs > 0 else 1.0
    n = SWEEP_DECADES * points_per_decade
    return [top * 10.0 ** ((i - n) / points_per_decade) for i in range(n + 1)]


def quantization_complexity(problem: ComplexityProblem, eps: float, method: str = "sweep",
                            points_per_decade: int = SWEEP_POINTS_PER_DECADE, bisect: int = SWEEP_BISECT_STEPS,
                            iterations: int = 50, tolerance: float = 1e-12) -> ComplexityResult:
    """Algorithm 2: the smallest compressed Q(theta, Delta) with |L(Q(theta, Delta)) - L(theta)| < eps.

    method "sweep" (the paper's appendix): every Delta of `sweep_grid` from small to large, after the
    code's starting point 1e-12 (the float32 weights themselves: the paper's compress(params)); where a
    feasible grid point's next one is not, `bisect` log-bisection steps between the two locate that edge;
    every feasible point is compressed. "sweep-top": the same grid from the top down, stopping at
    the first feasible point, whose edge with the infeasible point above it is refined and compressed:
    the largest feasible Delta of the grid, the authors' aim ("the largest Delta within eps") without
    bisection's assumption that feasibility is monotone (assumes the size falls as Delta grows, so no
    smaller Delta compresses smaller; cheapest, as it never visits the fine grids). "bisection" (the authors' code):
    the largest Delta meeting
    the bound by `iterations` halvings of (1e-12, 2 max|theta|), which assumes that feasibility is monotone
    in Delta (it is not).
    """
    require(method in ALGORITHM_2_METHODS, "method",
            f"unknown Algorithm 2 method {method!r}; allowed: {', '.join(ALGORITHM_2_METHODS)}")
    require(isinstance(bisect, int) and bisect >= 0, "bisect", f"must be an integer >= 0, got {bisect!r}")
    check_eps(eps)
    with problem.limited_threads():
        if method == "bisection":
            return _bisection(problem, eps, iterations, tolerance)
        if method == "sweep-top":
            return _sweep_top(problem, eps, points_per_decade, bisect)
        return _sweep(problem, eps, points_per_decade, bisect)


def _sweep(problem: ComplexityProblem, eps: float, points_per_decade: int, bisect: int) -> ComplexityResult:
    grid = sweep_grid(problem.grainer.max_abs, points_per_decade)
    prefetch = True
    evaluations = problem.evaluate_many([(None, d) for d in [1e-12] + grid], eps, prefetch=prefetch)
    feasible = [problem.feasible(e, eps) for e in evaluations[1:]]
    for i in range(len(grid) - 1):
        if feasible[i] and not feasible[i + 1]:  # an edge of a feasible run: find it in log Delta
            low, high = grid[i], grid[i + 1]
            for _ in range(bisect):
                middle = (low * high) ** 0.5
                evaluation = problem.evaluate(None, middle, eps, prefetch=prefetch)
                evaluations.append(evaluation)
                low, high = (middle, high) if problem.feasible(evaluation, eps) else (low, middle)
    ordered = sorted(evaluations, key=lambda e: e.delta)
    feasible = [problem.feasible(e, eps) for e in ordered]
    for i, evaluation in enumerate(ordered):
        if feasible[i]:
            problem.size(evaluation)
    best = problem.smallest_feasible(eps, keys={e.key for e in evaluations})
    require(best is not None, "eps", f"no quantization meets the bound {eps}, not even Delta = 1e-12 "
            "(is the loss deterministic?)")
    return problem.result(best, eps, algorithm=2, n_evaluations=len(evaluations))


def _sweep_top(problem: ComplexityProblem, eps: float, points_per_decade: int, bisect: int) -> ComplexityResult:
    grid = sweep_grid(problem.grainer.max_abs, points_per_decade)[::-1] + [1e-12]  # largest first
    evaluations, best = [], None
    step = points_per_decade if problem.vectorize else 1  # a decade per batched forward on a GPU
    for start in range(0, len(grid), step):
        chunk = problem.evaluate_many([(None, d) for d in grid[start:start + step]], eps)
        evaluations += chunk
        hit = next((i for i, e in enumerate(chunk) if problem.feasible(e, eps)), None)
        if hit is not None:
            best = chunk[hit]
            above = evaluations[start + hit - 1] if start + hit > 0 else None
            break
    require(best is not None, "eps", f"no quantization meets the bound {eps}, not even Delta = 1e-12 "
            "(is the loss deterministic?)")
    if above is not None:  # refine the edge between the largest feasible point and the infeasible one above
        low, high = best.delta, above.delta
        for _ in range(bisect):
            middle = (low * high) ** 0.5
            evaluation = problem.evaluate(None, middle, eps)
            evaluations.append(evaluation)
            if problem.feasible(evaluation, eps):
                low, best = middle, evaluation
            else:
                high = middle
    problem.size(best)
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
