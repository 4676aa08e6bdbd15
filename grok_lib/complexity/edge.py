"""The edge search: the smallest description on the edge of the bound, found deterministically.

Not in the paper. Algorithm 1 samples (tau, Delta) at random and lets a surrogate guide it; the answer is
the smallest of whichever points it drew, and two search seeds can differ by ~2x on one checkpoint
(benchmarks/RESULTS.md, "The spread of the searches"). The smallest description at a given tau is almost
always the coarsest grid that still meets the bound, so this search walks that edge instead:

1. for each tau of a fixed grid (EDGE_TAUS, from "no low-rank step" down), the largest Delta that meets
   the bound: a top-down log sweep (`points_per_decade`) from ABOVE_PREVIOUS decades above the previous
   tau's edge (from the top of Algorithm 2's grid for the first tau, and for any tau whose first point
   meets the bound), stopped at the first feasible point, whose gap to the infeasible point above it is
   log-bisected `bisect` times. Which Delta meet the bound is not monotone in
   Delta; like Algorithm 2's sweep-top, the sweep finds the largest feasible point of its grid;
2. only these edge points are compressed (by the problem's objective coder), the next tau's sweep running
   while the last edge compresses in the background;
3. `tau_refine` rounds put a tau half way (in log(1 - tau)) between the best tau and each grid neighbour
   that meets the bound, with their own edges; then the zone just above the `zone_taus` smallest edges
   is scanned (`zone`, 0.8 % steps): there the loss wanders
   around L + eps, and the paper's coder drops by ~6 % where Delta passes a power of two, so a point past
   the edge can meet the bound and be smaller (benchmarks/RESULTS.md);
4. a tau whose most finely quantized point (the floor of Algorithm 2's grid) misses the bound has no edge
   (checked once its sweep has passed BELOW_PREVIOUS decades under the previous edge); after `patience`
   such taus in a row, the smaller taus (lower ranks still) are not tried.

The answer is the smallest compressed edge point. It uses no random numbers: for one checkpoint (and one
torch thread count) it is the same every time. Its cost and how close it comes to the smallest point any
search finds: benchmarks/bench_spread.py.
"""

from __future__ import annotations

import math

from .problem import ComplexityProblem, ComplexityResult, Evaluation, check_eps
from .quantization import sweep_grid
from ..errors import require

# tau = None (no low-rank step, Algorithm 2's space), 1.0, then 1 - tau log-spaced from 0.005 to 0.75
EDGE_TAUS = (None, 1.0) + tuple(round(1.0 - 0.75 * (0.005 / 0.75) ** (i / 9), 6) for i in range(9, -1, -1))
EDGE_POINTS_PER_DECADE = 4  # the sweep's grid; the refinement then locates the edge within it
EDGE_BISECT = 4  # log-bisection steps per edge: a factor 10^(1/4) bracket to ~3.7 % of Delta
EDGE_TAU_REFINE = 3  # rounds of tau bisection around the best tau
EDGE_ZONE_TAUS, EDGE_ZONE_WIDTH, EDGE_ZONE_POINTS = 2, 0.08, 10  # the zone above the 2 smallest edges: 8 %, 10 Deltas
EDGE_PATIENCE = 2  # taus in a row without an edge before the smaller ones are skipped
ABOVE_PREVIOUS = 0.5  # decades above the previous tau's edge where the next tau's sweep starts
BELOW_PREVIOUS = 1.5  # decades below it where a sweep first checks that the finest Delta meets the bound


def _check_count(value, name: str, minimum: int) -> None:
    require(isinstance(value, int) and not isinstance(value, bool) and value >= minimum, name,
            f"must be an integer >= {minimum}, got {value!r}")


class EdgeSearch:
    """One run of the edge search on one problem at one eps (see the module docstring)."""

    def __init__(self, problem: ComplexityProblem, eps: float, points_per_decade: int, bisect: int):
        self.problem, self.eps, self.bisect_steps = problem, eps, bisect
        self.grid = sweep_grid(problem.grainer.max_abs, points_per_decade)[::-1]  # largest first
        self.step = points_per_decade if problem.vectorize else 1  # a decade per batched forward on a GPU
        self.evaluated = 0
        self.edges: dict[tuple, Evaluation] = {}  # ranks -> the edge point of the first tau with them
        self.by_tau: dict = {}  # tau -> its edge point, or None (no Delta of the grid meets the bound)
        self.zoned: list[Evaluation] = []  # points of the zone above the smallest edges that meet the bound

    def feasible(self, evaluation: Evaluation) -> bool:
        return self.problem.feasible(evaluation, self.eps)

    def evaluate(self, points: list) -> list[Evaluation]:
        self.evaluated += len(points)
        return self.problem.evaluate_many(points, self.eps)

    def edge(self, tau: float | None, above: float | None) -> Evaluation | None:
        """The largest Delta meeting the bound at tau, swept from ABOVE_PREVIOUS decades above `above` (the
        previous tau's edge; None: from the top of the grid) down, or None when even the grid's finest Delta misses
        it (checked once the sweep is more than BELOW_PREVIOUS decades below `above`)."""
        if tau in self.by_tau:
            return self.by_tau[tau]
        ranks = self.problem.grainer.ranks(tau)
        if ranks in self.edges:  # another tau with the same ranks: the same points
            self.by_tau[tau] = self.edges[ranks]
            return self.edges[ranks]
        best, higher = self._sweep(tau, above)
        if best is not None:
            if higher is not None:
                best = self.bisect(best, higher, self.bisect_steps)
            problem = self.problem
            problem.prefetch_size(best.key, problem.coarse_grain(best.ranks, best.delta, best.tau, best.scales))
            self.edges[ranks] = best
        self.by_tau[tau] = best
        return best

    def bisect(self, best: Evaluation, high: float, steps: int) -> Evaluation:
        """`steps` log-bisections between a feasible point and a Delta above it that misses the bound."""
        low = best.delta
        for _ in range(steps):
            middle = math.sqrt(low * high)
            evaluation = self.evaluate([(best.tau, middle)])[0]
            if self.feasible(evaluation):
                low, best = middle, evaluation
            else:
                high = middle
        return best

    def zone(self, taus: int, width: float, points: int) -> None:
        """The fuzzy zone above the smallest `taus` edges: `points` Deltas log-spaced over (edge, edge x (1 +
        width)], the feasible ones compressed. The loss wanders around L + eps there (feasibility is not
        monotone in Delta), and the paper's coder jumps at powers of two of Delta: a point past the edge
        can meet the bound and be smaller."""
        candidates = sorted({e.key: e for e in self.edges.values()}.values(),
                            key=lambda e: (self.problem.size(e), -e.delta))[:taus]
        for edge in candidates:
            deltas = [edge.delta * (1.0 + width) ** ((i + 1) / points) for i in range(points)]
            for evaluation in self.evaluate([(edge.tau, d) for d in deltas]):
                if self.feasible(evaluation):
                    self.problem.size(evaluation)
                    self.zoned.append(evaluation)

    def best(self) -> Evaluation | None:
        candidates = [e for e in self.by_tau.values() if e is not None] + self.zoned
        return min(candidates, key=lambda e: (self.problem.size(e), -e.delta)) if candidates else None

    def _sweep(self, tau: float | None, above: float | None) -> tuple[Evaluation | None, float | None]:
        """(the largest feasible point of the swept grid, the grid's Delta above it or None at the top)."""
        grid = self.grid
        if above is not None:
            grid = [d for d in self.grid if d <= above * 10.0 ** ABOVE_PREVIOUS] or self.grid[-1:]
            floor_check = above * 10.0 ** -BELOW_PREVIOUS
        checked = tau is None or above is None  # no floor check without a previous edge to start from
        for start in range(0, len(grid), self.step):
            points = grid[start:start + self.step]
            if not checked and points[-1] < floor_check:
                checked = True
                if not self.feasible(self.evaluate([(tau, self.grid[-1])])[0]):
                    return None, None
            chunk = self.evaluate([(tau, d) for d in points])
            hit = next((i for i, e in enumerate(chunk) if self.feasible(e)), None)
            if hit is None:
                continue
            if start + hit == 0 and grid[0] != self.grid[0]:  # feasible where the sweep began: start at the top
                return self._sweep(tau, None)
            index = self.grid.index(grid[start + hit])
            return chunk[hit], (self.grid[index - 1] if index > 0 else None)
        return None, None

    def size(self, tau) -> float:
        edge = self.by_tau.get(tau)
        return math.inf if edge is None else float(self.problem.size(edge))


def edge_complexity(problem: ComplexityProblem, eps: float, taus=EDGE_TAUS,
                    points_per_decade: int = EDGE_POINTS_PER_DECADE, bisect: int = EDGE_BISECT,
                    tau_refine: int = EDGE_TAU_REFINE, patience: int = EDGE_PATIENCE,
                    zone_taus: int = EDGE_ZONE_TAUS, zone_width: float = EDGE_ZONE_WIDTH,
                    zone_points: int = EDGE_ZONE_POINTS) -> ComplexityResult:
    """The edge search (module docstring): the smallest compressed point on the edge of the bound at eps.

    taus: the tau grid (None = no low-rank step), searched in the given order, from the largest;
    points_per_decade, bisect: the Delta sweep and the bisection steps of each edge; tau_refine: rounds of
    tau bisection around the best tau; patience: taus in a row without an edge before the rest are skipped;
    zone_taus, zone_width, zone_points: the zone scanned above the smallest edges (EdgeSearch.zone).
    The result's `algorithm` is 1 (a search over tau and Delta, like Algorithm 1).
    """
    check_eps(eps)
    _check_count(points_per_decade, "points_per_decade", 1)
    _check_count(bisect, "bisect", 0)
    _check_count(tau_refine, "tau_refine", 0)
    _check_count(patience, "patience", 1)
    _check_count(zone_taus, "zone_taus", 0)
    _check_count(zone_points, "zone_points", 1)
    require(isinstance(zone_width, (int, float)) and 0.0 < zone_width <= 1.0, "zone_width",
            f"must lie in (0, 1], got {zone_width!r}")
    taus = tuple(taus)
    require(len(taus) > 0, "taus", "give at least one tau (None: no low-rank step)")
    for tau in taus:
        require(tau is None or (isinstance(tau, (int, float)) and 0.0 < tau <= 1.0), "taus",
                f"each tau must be None or lie in (0, 1], got {tau!r}")
    with problem.limited_threads():
        search = EdgeSearch(problem, eps, points_per_decade, bisect)
        above, misses, tried = None, 0, []
        for tau in taus:
            edge = search.edge(tau, above)
            tried.append(tau)
            if edge is None:
                misses += 1
                if misses >= patience:
                    break
                continue
            misses, above = 0, edge.delta
        for _ in range(tau_refine):
            _refine_tau(search, tried)
        search.zone(zone_taus, zone_width, zone_points)
        best = search.best()
        require(best is not None, "eps", f"no coarse-graining meets the bound {eps}, not even the finest "
                f"Delta {search.grid[-1]:.3g} at tau {taus[0]} (is the loss deterministic?)")
        return problem.result(best, eps, algorithm=1, n_evaluations=search.evaluated)


def _refine_tau(search: EdgeSearch, tried: list) -> None:
    """One round: a tau half way in log(1 - tau) between the best tau so far and each tried neighbour
    that has an edge (tau = None and 1.0 have no midpoint with their neighbours: they are skipped)."""
    numeric = sorted((t for t in tried if t is not None and t < 1.0 and search.by_tau.get(t) is not None),
                     reverse=True)
    if not numeric:
        return
    best = min(numeric, key=search.size)
    i = numeric.index(best)
    for j in (i - 1, i + 1):
        if 0 <= j < len(numeric):
            middle = 1.0 - math.sqrt((1.0 - best) * (1.0 - numeric[j]))
            if middle not in tried:
                search.edge(middle, max(search.by_tau[best].delta, search.by_tau[numeric[j]].delta))
                tried.append(middle)
