"""How to measure, as one value: `Measurement`, validated once, and its named presets.

    from grok_lib import measure_complexity, PAPER, AUTHORS, TIGHTEST
    measure_complexity(model, loss_fn, (x, y), eps=1.0, how=TIGHTEST)
    measure_complexity(model, loss_fn, (x, y), eps=1.0, how=PAPER, search="edge")   # a preset, one field changed

The same value goes from the CLI (`complexity --preset tightest --refine 8`) through tracking, the
pipeline's jobs and `paper.tighter` to the search and the coder, and is stored beside every table
(`tracking.TrackingSettings`), so a table says exactly how it was measured.

PAPER     the paper's Algorithm 1: Bayesian optimisation of (tau, Delta) with the authors' budget (2 probes,
          10 random, 50 guided points), the paper's coder (bz2 of the pickled float32 arrays), one global
          Delta, the two-sided bound of Eq. 7. The default everywhere.
AUTHORS   what the authors' code does where it departs from the paper's text and our machinery can follow:
          the one-sided test L(theta_hat) <= L(theta) + eps, Algorithm 2 by bisection. (Their rank rule,
          minibatch loss and JAX container are the separate `authors` mode, grok_lib.complexity.authors.)
TIGHTEST  the tightest bound we measured (not in the paper; benchmarks/RESULTS.md, "A tighter bound"): the
          entropy coder as objective, Delta refined to the edge of the bound, a Delta per matrix priced at
          that edge, the balanced low-rank split.
EDGE      the edge search (not in the paper; grok_lib.complexity.edge): deterministic, no seed, no budget.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .allocation import check_allocation
from .coarse import check_split
from .coders import CODERS
from .quantization import ALGORITHM_2_METHODS
from ..errors import require

SEARCHES = ("bayes", "edge")  # Algorithm 1's: the paper's Bayesian optimisation; the edge search (ours)
ESTIMATORS = ("GP", "ET", "RF")  # skopt's GBRT estimator is broken with current scikit-learn
DELTA_BOUNDS = (1e-3, 1.0)
TAU_BOUNDS = (1e-3, 1.0)
# The code's two probes, in its normalised coordinates (log-scale Delta): (Delta 0.0, tau 1.0), (0.1, 0.98).
PAPER_PROBES = ((1.0, DELTA_BOUNDS[0]), (0.98, DELTA_BOUNDS[0] * (DELTA_BOUNDS[1] / DELTA_BOUNDS[0]) ** 0.1))


def _count(value, name: str, least: int = 0) -> None:
    require(isinstance(value, int) and not isinstance(value, bool) and value >= least, name,
            f"must be an integer >= {least}, got {value!r}")


def _flag(value, name: str) -> None:
    require(isinstance(value, bool), name, f"must be True or False, got {value!r}")


@dataclass(frozen=True)
class BayesConfig:
    """Algorithm 1's Bayesian search budget and surrogate; the defaults are the authors' (2 probes + 10
    random + 50 guided points)."""

    n_random: int = 10  # random points after the probes and extra points
    n_guided: int = 50  # points proposed by the surrogate model
    probes: tuple = PAPER_PROBES  # (tau, Delta) pairs evaluated first
    estimator: str = "GP"  # surrogate: GP (skopt's Gaussian process) or ET / RF (forests: faster, looser)
    gp_restarts: int = 0  # extra kernel fits per GP step (skopt's default 2 costs time, not size)
    n_trees: int = 16  # forest size for ET / RF (skopt's default is 100)
    # guided points proposed per round: 1 is the paper's sequential search; k > 1 asks skopt for k points
    # at once (constant liar, "cl_min"), evaluates them together (one batched forward on a GPU) and
    # compresses them side by side; the same budget, a different (parallel) search
    batch: int = 1

    def __post_init__(self):
        for name in ("n_random", "n_guided", "gp_restarts"):
            _count(getattr(self, name), name)
        for name in ("n_trees", "batch"):
            _count(getattr(self, name), name, 1)
        require(isinstance(self.probes, (tuple, list)), "probes", f"must be (tau, Delta) pairs, got {self.probes!r}")
        object.__setattr__(self, "probes", tuple(tuple(float(v) for v in pair) for pair in self.probes))
        require(self.n_random + self.n_guided + len(self.probes) >= 1, "n_random", "the search evaluates no point")
        require(self.n_guided == 0 or self.n_random + len(self.probes) >= 1, "n_random",
                "guided points need at least one probe or random point to fit the surrogate on")
        require(self.estimator in ESTIMATORS, "estimator",
                f"unknown surrogate {self.estimator!r}; allowed: {', '.join(ESTIMATORS)}")
        for tau, delta in self.probes:
            require(TAU_BOUNDS[0] <= tau <= TAU_BOUNDS[1], "probes", f"tau {tau} outside {TAU_BOUNDS}")
            require(DELTA_BOUNDS[0] <= delta <= DELTA_BOUNDS[1], "probes", f"Delta {delta} outside {DELTA_BOUNDS}")


@dataclass(frozen=True)
class Measurement:
    """Every choice of how one network is measured; frozen, validated on construction (an impossible
    combination is one GrokError naming both fields). Change a field with `.but(field=value)`."""

    algorithm: int = 1  # 1: Algorithm 1 (tau and Delta); 2: Algorithm 2 (Delta alone, tau = None)
    search: str = "bayes"  # Algorithm 1's search: "bayes" (the paper's) | "edge" (not in the paper)
    budget: BayesConfig = field(default_factory=BayesConfig)  # the Bayesian search's points and surrogate
    seed: int = 0  # seeds the Bayesian search's random points and surrogate
    pooled: bool = False  # Algorithm 1's answer: the smallest of its points and Algorithm 2's
    objective: str = "paper"  # the coder the search minimizes (grok_lib.complexity.coders.CODERS)
    # not in the paper: Delta log-bisected this many steps at the best tau, up to the edge of the bound
    refine: int = 0
    # not in the paper: sweeps giving each matrix its own Delta, priced at that edge (complexity.reallocation)
    reallocate: int = 0
    allocation: str = "global"  # "global": the paper's one Delta | "sensitivity": one per matrix, fixed first
    factor_split: str = "left"  # low-rank factors U S, V^T (the authors') | "balanced" (coarse.SPLITS)
    one_sided: bool = False  # the code's L(theta_hat) <= L(theta) + eps instead of Eq. 7's |.| < eps
    algorithm_2: str = "sweep"  # Algorithm 2's search: the paper's Delta sweep, "sweep-top", "bisection"

    def __post_init__(self):
        require(self.algorithm in (1, 2) and not isinstance(self.algorithm, bool), "algorithm",
                f"must be 1 (tau and Delta) or 2 (Delta alone), got {self.algorithm!r}")
        require(self.search in SEARCHES, "search", f"unknown search {self.search!r}; allowed: {', '.join(SEARCHES)}")
        require(isinstance(self.budget, BayesConfig), "budget", f"must be a BayesConfig, got {self.budget!r}")
        for name in ("seed", "refine", "reallocate"):
            _count(getattr(self, name), name)
        require(self.seed < 2**32, "seed", f"must be below 2**32, got {self.seed}")
        for name in ("pooled", "one_sided"):
            _flag(getattr(self, name), name)
        require(self.objective in CODERS, "objective",
                f"unknown coder {self.objective!r}; allowed: {', '.join(CODERS)}")
        check_allocation(self.allocation)
        check_split(self.factor_split)
        require(self.algorithm_2 in ALGORITHM_2_METHODS, "algorithm_2",
                f"unknown method {self.algorithm_2!r}; allowed: {', '.join(ALGORITHM_2_METHODS)}")
        bayes = self.algorithm == 1 and self.search == "bayes"
        other = "algorithm=2" if self.algorithm == 2 else f"search={self.search!r}"
        require(self.algorithm == 1 or self.search == "bayes", "search",
                f"search={self.search!r} searches tau and Delta (Algorithm 1); algorithm=2 searches Delta alone")
        require(self.search == "bayes" or not self.pooled, "pooled", "pooled=True pools the Bayesian search with "
                "Algorithm 2; search='edge' already includes Algorithm 2's space (tau = None)")
        for name in ("refine", "reallocate"):
            require(bayes or not getattr(self, name), name, f"{name}={getattr(self, name)} continues the Bayesian "
                    f"search (algorithm=1, search='bayes'); {other} does not run it")
        require(bayes or self.budget == BayesConfig(), "budget", f"is the Bayesian search's budget; {other} does "
                "not run that search")
        require(bayes or self.seed == 0, "seed", f"seeds the Bayesian search; {other} has nothing random")

    def but(self, **changes) -> Measurement:
        """This measurement with some fields changed (validated again); an unknown field is named."""
        known = [f.name for f in dataclasses.fields(self)]
        for name in changes:
            require(name in known, name, f"is not a field of Measurement; allowed: {', '.join(known)}")
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        """JSON-ready (what a table's settings store)."""
        out = dataclasses.asdict(self)
        out["budget"]["probes"] = [list(p) for p in self.budget.probes]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Measurement:
        """Inverse of as_dict; unknown or ill-typed fields are one GrokError naming them."""
        require(isinstance(data, dict), "how", f"must be a mapping of Measurement fields, got {type(data).__name__}")
        data = dict(data)
        budget = data.pop("budget", {})
        require(isinstance(budget, dict), "budget", f"must be a mapping of BayesConfig fields, got {budget!r}")
        fields = [f.name for f in dataclasses.fields(BayesConfig)]
        for name in budget:
            require(name in fields, name, f"is not a field of BayesConfig; allowed: {', '.join(fields)}")
        return PAPER.but(budget=BayesConfig(**budget), **data)


PAPER = Measurement()
AUTHORS = Measurement(one_sided=True, algorithm_2="bisection")
TIGHTEST = Measurement(objective="entropy", refine=4, reallocate=2, factor_split="balanced")
EDGE = Measurement(search="edge")
PRESETS = {"paper": PAPER, "authors": AUTHORS, "tightest": TIGHTEST, "edge": EDGE}


def preset(name: str) -> Measurement:
    """The preset called `name` (PRESETS)."""
    require(name in PRESETS, "preset", f"unknown preset {name!r}; allowed: {', '.join(PRESETS)}")
    return PRESETS[name]


BUDGET_OPTIONS = ("n_random", "n_guided", "estimator")  # the budget fields the command line sets
FIELD_OPTIONS = ("seed", "objective", "refine", "reallocate", "factor_split", "allocation", "one_sided", "algorithm_2")


def add_measurement_options(group, default: str | None = "paper") -> None:
    """A command's options for a Measurement: --preset, then any field changed (default: the preset's)."""
    group.add_argument("--preset", default=default,
                       help="how to measure: paper (the paper's Algorithm 1), authors (their code's one-sided test "
                            "and bisection), tightest (entropy coder, Delta refined and per matrix, balanced "
                            f"factors; not in the paper), edge (the edge search) (default {default})")
    group.add_argument("--estimator", help="the Bayesian search's surrogate: GP, or ET / RF forests (faster, looser)")
    group.add_argument("--n-random", type=int, help="random points after the probes (the paper's: 10)")
    group.add_argument("--n-guided", type=int, help="surrogate-guided points (the paper's: 50)")
    group.add_argument("--search-seed", type=int, dest="seed", help="seeds the Bayesian search (default 0)")
    group.add_argument("--objective", choices=list(CODERS), help="the coder the search minimizes: "
                       + "; ".join(f"{name}: {coder.description}" for name, coder in CODERS.items()))
    group.add_argument("--refine", type=int, help="not in the paper: Delta bisected this many steps at the best "
                       "tau, up to the edge of the bound (paper: 0)")
    group.add_argument("--reallocate", type=int, help="not in the paper: sweeps that give each matrix its own "
                       "Delta, priced at the edge of the bound (paper: 0, one global Delta)")
    group.add_argument("--factor-split", help="how low-rank factors share the singular "
                       "values: left (U S and V^T, the authors') or balanced (U S^1/2 and S^1/2 V^T; not in the paper)")
    group.add_argument("--allocation", help="global (one Delta, the paper's) or "
                       "sensitivity (one Delta per matrix from measured sensitivities; not in the paper)")
    group.add_argument("--one-sided", action="store_true", default=None,
                       help="accept L(coarse) <= L + eps (the authors' code) instead of |.| < eps")
    group.add_argument("--algorithm-2", help="Algorithm 2's search: sweep "
                       "(the paper's), sweep-top (the largest feasible Delta of the grid, from the top down) or "
                       "bisection (the authors' code)")


def measurement_from(args, base: Measurement | None = None) -> Measurement:
    """The Measurement the options of `add_measurement_options` ask for: `base` (default: the --preset) with
    every option given on the command line changed, validated as one value."""
    how = base if base is not None else preset(args.preset)
    fields = {name: getattr(args, name) for name in FIELD_OPTIONS if getattr(args, name, None) is not None}
    budget = {name: getattr(args, name) for name in BUDGET_OPTIONS if getattr(args, name, None) is not None}
    if budget:
        fields["budget"] = dataclasses.replace(how.budget, **budget)
    return how.but(**fields)
