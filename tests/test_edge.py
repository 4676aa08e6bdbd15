"""The edge search (grok_lib.complexity.edge): deterministic, on the exact edge of the bound, in the API,
the tables and the CLI."""

import numpy as np
import pytest
import torch

from grok_lib.cli import main
from grok_lib.complexity.edge import edge_complexity
from grok_lib.complexity.problem import ComplexityProblem
from grok_lib.complexity.quantization import quantization_complexity
from grok_lib.complexity.measurement import PAPER
from grok_lib.complexity.search import BayesConfig, bayesian_complexity, measure_complexity
from grok_lib.complexity.tracking import COMPLEXITY_FILE, TrackingSettings, track_complexity
from grok_lib.errors import GrokError

EPS = 0.05


def mse(outputs, targets):
    return ((outputs - targets) ** 2).mean()


@pytest.fixture(scope="module")
def rank_one():
    """A constructed problem whose smallest description is known: a 24 x 24 linear map of rank one (plus
    1e-3 noise), its own outputs as regression targets (L(theta) = 0), so the loss of a coarse-graining is
    its squared error on the inputs, and the best point is the rank-1 factors on the coarsest grid whose
    error stays under eps."""
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Linear(24, 24, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.randn(24, 1, generator=g) @ torch.randn(1, 24, generator=g)
                           + 1e-3 * torch.randn(24, 24, generator=g))
    x = torch.randn(512, 24, generator=g)
    return model, (x, (x @ model.weight.T).detach())


def problem_of(rank_one):
    model, data = rank_one
    return ComplexityProblem(model, mse, data)


def test_edge_finds_the_exact_edge_where_a_small_bayesian_budget_does_not(rank_one):
    edge = edge_complexity(problem_of(rank_one), EPS)
    assert edge.ranks == {"weight": 1}
    # the largest Delta meeting the bound at these ranks, by a scan of 600 Deltas around it
    scan = problem_of(rank_one)
    deltas = np.geomspace(edge.delta / 3, edge.delta * 3, 600)
    largest = max(d for d in deltas if scan.feasible(scan.evaluate(edge.tau, float(d), EPS), EPS))
    assert 0.99 * largest <= edge.delta  # the zone steps 0.8 % above the bisected edge
    # the smallest feasible size of a dense tau x Delta grid (1,000 points) is no smaller than the edge's
    dense = []
    for tau in [None] + list(np.linspace(0.05, 1.0, 20)):
        for delta in np.geomspace(1e-3, 1.0, 50):
            evaluation = scan.evaluate(None if tau is None else float(tau), float(delta), EPS)
            if scan.feasible(evaluation, EPS):
                dense.append(scan.size(evaluation))
    assert edge.paper_bytes <= min(dense)
    # Algorithm 1 with a small budget lands inside the bound, below the edge, for every seed tried
    small = BayesConfig(n_random=2, n_guided=4, estimator="ET")
    for seed in range(4):
        bayes = bayesian_complexity(problem_of(rank_one), EPS, small, seed)
        assert bayes.delta < 0.9 * largest and bayes.paper_bytes > edge.paper_bytes


def test_edge_is_deterministic_and_meets_the_bound(rank_one):
    first, second = (edge_complexity(problem_of(rank_one), EPS) for _ in range(2))
    assert (first.paper_bytes, first.tau, first.delta, first.n_evaluations) == \
           (second.paper_bytes, second.tau, second.delta, second.n_evaluations)
    assert abs(first.train_loss - first.reference_train_loss) < EPS
    assert first.algorithm == 1 and first.n_evaluations > 0


def test_edge_includes_algorithm_2s_space(rank_one):
    """tau = None is the first tau of the grid: the edge answer is never far above Algorithm 2's."""
    problem = problem_of(rank_one)
    alg2 = quantization_complexity(problem, EPS, "sweep-top")
    edge = edge_complexity(problem_of(rank_one), EPS, taus=(None,))
    assert edge.tau is None and edge.paper_bytes <= 1.01 * alg2.paper_bytes


def test_measure_complexity_takes_search_edge_and_refuses_what_does_not_fit(rank_one):
    model, data = rank_one
    result = measure_complexity(model, mse, data, EPS, search="edge")
    assert result.paper_bytes == edge_complexity(problem_of(rank_one), EPS).paper_bytes
    # the paper's search stays the default
    assert measure_complexity(model, mse, data, EPS, budget=BayesConfig(n_random=2, n_guided=0)).n_evaluations == 4
    with pytest.raises(GrokError, match="^search: unknown search 'golden'; allowed: bayes, edge"):
        measure_complexity(model, mse, data, EPS, search="golden")
    with pytest.raises(GrokError, match="^search: search='edge' searches tau and Delta .* algorithm=2"):
        measure_complexity(model, mse, data, EPS, search="edge", algorithm=2)
    with pytest.raises(GrokError, match="^pooled: pooled=True .* search='edge'"):
        measure_complexity(model, mse, data, EPS, search="edge", pooled=True)
    for bad in (dict(taus=()), dict(taus=(1.5,)), dict(bisect=-1), dict(patience=0), dict(points_per_decade=0)):
        with pytest.raises(GrokError):
            edge_complexity(problem_of(rank_one), EPS, **bad)


def test_tracking_with_edge_keeps_algorithm_1_and_adds_the_edge_columns(run):
    settings = TrackingSettings(eps=(1.0,), how=PAPER.but(budget=BayesConfig(n_random=2, n_guided=1, estimator="ET",
                                                                             n_trees=4)), edge=True)
    table = track_complexity(run, settings, progress=False, epochs=[4])
    assert {"alg1_paper_bytes", "pooled_paper_bytes", "alg2_paper_bytes", "edge_paper_bytes", "edge_tau",
            "edge_bound_paper"} <= set(table.columns)
    row = table.iloc[0]
    assert row.pooled_paper_bytes <= min(row.alg1_paper_bytes, row.edge_paper_bytes, row.alg2_paper_bytes)
    assert row.edge_paper_bytes <= 1.05 * row.alg2_paper_bytes
    with pytest.raises(GrokError, match="^edge: must be True or False"):
        TrackingSettings(edge="yes")


def test_the_complexity_command_takes_search_edge(run, capsys):
    store = ["--store", str(run.path.parent)]
    fast = ["--n-random", "2", "--n-guided", "1", "--estimator", "ET", "--checkpoint", "3", "--eps", "1"]
    assert main([*store, "complexity", str(run.path), *fast, "--search", "edge", "--quiet"]) == 0
    assert "edge search" in capsys.readouterr().out
    assert "edge_paper_bytes" in (run.path / COMPLEXITY_FILE).read_text().splitlines()[0]
    with pytest.raises(SystemExit):
        main([*store, "complexity", str(run.path), "--search", "golden"])
    assert "invalid choice: 'golden'" in capsys.readouterr().err


def test_a_loss_that_goes_negative_is_named_not_trusted(rank_one):
    """The early exit is valid only for a loss >= 0 per example: a negative loss is refused, naming loss_fn."""
    model, data = rank_one
    with pytest.raises(GrokError, match="^loss_fn: returned a negative mean loss"):
        measure_complexity(model, lambda out, t: mse(out, t) - 1.0, data, EPS, search="edge")
