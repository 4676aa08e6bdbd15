"""Algorithms 1 and 2 on any network: a small MLP defined here, not one of grok_lib's models."""

import bz2
import copy
import math
import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from conftest import cuda
from grok_lib.complexity.coders import naive_size
from grok_lib.complexity.problem import ComplexityProblem
from grok_lib.errors import GrokError
from grok_lib.complexity.quantization import quantization_complexity, sweep_grid
from grok_lib.complexity.measurement import PAPER
from grok_lib.complexity.search import BayesConfig, bayesian_complexity, complexity_curve, measure_complexity

SMALL = BayesConfig(n_random=4, n_guided=6, estimator="ET", n_trees=4)  # tests only; default 2 + 10 + 50, GP


class TwoLayerNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(6, 24)
        self.out = nn.Linear(24, 3)

    def forward(self, x):
        return self.out(torch.tanh(self.hidden(x)))


@pytest.fixture(scope="module")
def trained():
    """A memorizing MLP: 3 classes from the signs of two of 6 inputs, 300 train / 200 test examples."""
    torch.manual_seed(0)
    x = torch.randn(500, 6)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    net = TwoLayerNet()
    optimizer = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(300):
        optimizer.zero_grad()
        F.cross_entropy(net(x[:300]), y[:300]).backward()
        optimizer.step()
    return net, (x[:300], y[:300]), (x[300:], y[300:])


def loss_of(net, weights, data):
    with torch.no_grad():
        return float(F.cross_entropy(functional_call(net, weights, (data[0],)), data[1]))


def test_any_module_is_measured_with_its_own_loss_and_data(trained):
    net, train, test = trained
    result = measure_complexity(net, F.cross_entropy, train, eps=0.5, test_data=test, budget=SMALL)
    assert result.algorithm == 1 and result.n_train == 300
    assert set(result.ranks) == {"hidden.weight", "hidden.bias", "out.weight", "out.bias"}
    assert {k: v.shape for k, v in result.weights.items()} == {k: v.shape for k, v in net.named_parameters()}
    assert 0 < result.symbols_bytes <= result.paper_bytes and result.paper_bits == 8 * result.paper_bytes
    assert 0.0 <= result.test_acc <= 1.0 and math.isfinite(result.test_loss)
    assert result.n_evaluations >= 2 + 4 + 6


@pytest.mark.parametrize("one_sided", [False, True])
def test_every_accepted_result_meets_the_distortion_bound_when_reevaluated(trained, one_sided):
    net, train, _ = trained
    reference = loss_of(net, dict(net.named_parameters()), train)
    problem = ComplexityProblem(net, F.cross_entropy, train, one_sided=one_sided)
    for eps in (0.05, 0.3):
        point = complexity_curve(problem, [eps], PAPER.but(budget=SMALL))[0]
        for result in (point.algorithm_1, point.algorithm_1_pooled, point.algorithm_2):
            distortion = loss_of(net, result.weights, train) - reference
            assert (distortion <= eps) if one_sided else (abs(distortion) < eps)
            assert result.train_loss == pytest.approx(reference + distortion, abs=1e-5)


def test_pooled_algorithm_1_is_never_worse_than_algorithm_2_or_its_own_search(trained):
    net, train, _ = trained
    for eps in (0.02, 0.2, 1.0):
        problem = ComplexityProblem(net, F.cross_entropy, train)
        alg2 = quantization_complexity(problem, eps)
        own = bayesian_complexity(problem, eps, SMALL)
        pooled = bayesian_complexity(problem, eps, SMALL, pooled=True)
        assert pooled.paper_bytes == min(own.paper_bytes, alg2.paper_bytes)


def test_the_paper_algorithm_1_answers_from_its_own_points_only(trained):
    net, train, _ = trained
    problem = ComplexityProblem(net, F.cross_entropy, train)
    alg2 = quantization_complexity(problem, 0.2)
    config = BayesConfig(n_random=0, n_guided=0, probes=((1.0, 0.001),))  # one point: tau 1, Delta 1e-3
    own = bayesian_complexity(problem, 0.2, config)
    assert own.delta == 0.001 and own.paper_bytes > alg2.paper_bytes  # Algorithm 2's better point is not taken
    assert bayesian_complexity(problem, 0.2, config, pooled=True).paper_bytes == alg2.paper_bytes


def test_pooled_complexity_does_not_increase_as_eps_grows(trained):
    net, train, _ = trained
    problem = ComplexityProblem(net, F.cross_entropy, train)
    curve = complexity_curve(problem, [1.0, 0.01, 0.1, 0.3], PAPER.but(budget=SMALL))
    assert [point.algorithm_1.eps for point in curve] == [0.01, 0.1, 0.3, 1.0]
    sizes = [point.algorithm_1_pooled.paper_bytes for point in curve]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1]
    assert all(p.algorithm_1_pooled.paper_bytes <= min(p.algorithm_1.paper_bytes, p.algorithm_2.paper_bytes)
               for p in curve)


def on_grid_net() -> tuple[nn.Module, tuple]:
    """A network whose weights are multiples of 0.05 up to |50| (max 2.5, so 0.05 is a sweep grid point):
    Q(theta, 0.05) is exact, while a bin size a little off the grid moves the large weights a lot."""
    torch.manual_seed(1)
    net = TwoLayerNet()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randint(-50, 51, p.shape) * 0.05)
        net.hidden.weight[0, 0] = 2.5
    x = torch.randn(300, 6)
    return net, (x, net(x).argmax(-1))


def test_the_sweep_finds_feasible_bins_that_bisection_misses():
    net, train = on_grid_net()
    eps = 1e-3
    problem = ComplexityProblem(net, F.cross_entropy, train)
    assert any(abs(d - 0.05) < 1e-12 for d in sweep_grid(2.5))
    exact = problem.evaluate(None, 0.05, eps)
    assert problem.feasible(exact, eps) and exact.train_loss == pytest.approx(problem.reference_loss, abs=1e-6)
    bisection = quantization_complexity(problem, eps, method="bisection")
    sweep = quantization_complexity(problem, eps, method="sweep")
    assert bisection.delta < 0.05  # bisection settles below the exact grid, assuming monotone feasibility
    assert sweep.delta >= 0.05 and sweep.paper_bytes <= problem.size(exact) < bisection.paper_bytes
    top = quantization_complexity(ComplexityProblem(net, F.cross_entropy, train), eps, method="sweep-top")
    assert top.delta >= 0.05 and top.paper_bytes < bisection.paper_bytes


def test_the_top_down_sweep_stops_at_the_largest_feasible_delta_of_the_full_sweep(trained):
    net, train, _ = trained
    full, top = (ComplexityProblem(net, F.cross_entropy, train) for _ in range(2))
    a = quantization_complexity(full, 0.2, method="sweep")
    b = quantization_complexity(top, 0.2, method="sweep-top")
    largest = max(e.delta for e in full.evaluations.values() if full.feasible(e, 0.2))
    assert b.delta == pytest.approx(largest, rel=1e-12) and b.n_evaluations < a.n_evaluations / 2
    assert a.paper_bytes <= b.paper_bytes <= 1.05 * a.paper_bytes


def test_the_sweep_starts_from_the_unquantized_weights_and_rejects_unknown_methods(trained):
    net, train, _ = trained
    problem = ComplexityProblem(net, F.cross_entropy, train)
    result = quantization_complexity(problem, 1e-9, method="sweep")  # only tiny bins keep the loss this close
    assert result.paper_bytes <= naive_size(dict(net.named_parameters())) * 1.01
    with pytest.raises(GrokError, match="^method:"):
        quantization_complexity(problem, 0.1, method="golden")


def test_algorithm_2_keeps_every_parameter_whole_and_finds_a_coarser_grid_for_a_looser_bound(trained):
    net, train, _ = trained
    problem = ComplexityProblem(net, F.cross_entropy, train)
    tight, loose = quantization_complexity(problem, 0.01), quantization_complexity(problem, 1.0)
    assert tight.tau is None and set(tight.ranks.values()) == {None}
    assert tight.delta < loose.delta and loose.paper_bytes < tight.paper_bytes


def test_the_search_is_seeded_and_deterministic(trained):
    net, train, _ = trained
    runs = [bayesian_complexity(ComplexityProblem(net, F.cross_entropy, train), 0.2, SMALL, seed=3) for _ in range(2)]
    assert runs[0].as_row() == runs[1].as_row()


@pytest.mark.parametrize("estimator", ["GP", "RF"])
def test_other_surrogates_also_search(trained, estimator):
    net, train, _ = trained
    result = bayesian_complexity(ComplexityProblem(net, F.cross_entropy, train), 0.2,
                                 BayesConfig(n_random=3, n_guided=2, estimator=estimator, n_trees=4))
    assert result.paper_bytes > 0


def test_stopping_the_loss_early_changes_no_answer(trained):
    net, train, _ = trained
    results = [bayesian_complexity(ComplexityProblem(net, F.cross_entropy, train, chunk_size=64, early_exit=flag),
                                   0.1, SMALL) for flag in (True, False)]
    assert results[0].as_row() == results[1].as_row()


def test_compressing_in_the_background_changes_no_answer(trained):
    net, train, test = trained
    problems = [ComplexityProblem(net, F.cross_entropy, train, test, background=flag) for flag in (True, False)]
    results = [complexity_curve(problem, (0.1, 0.4), PAPER.but(budget=SMALL)) for problem in problems]
    for with_thread, without in zip(*results):
        assert with_thread.algorithm_1.as_row() == without.algorithm_1.as_row()
        assert with_thread.algorithm_2.as_row() == without.algorithm_2.as_row()
    assert problems[0].timings["compress_background"] > 0 and "compress_background" not in problems[1].timings
    assert problems[0].sizes == problems[1].sizes and not problems[0].pending


def test_bisection_does_not_prefetch_and_only_points_meeting_the_bound_are_kept(trained):
    net, train, _ = trained
    problem = ComplexityProblem(net, F.cross_entropy, train, chunk_size=64)  # 300 examples: a 75-example first chunk
    quantization_complexity(problem, 0.1, method="bisection")
    assert not problem.pending and len(problem.sizes) == 1  # bisection compresses only its answer
    broken = problem.evaluate(None, 5.0, 0.1, prefetch=True)  # Delta 5 zeroes the network: misses the bound
    assert not problem.feasible(broken, 0.1) and broken.key not in problem.sizes
    fine = problem.evaluate(None, 1e-4, 0.1, prefetch=True)
    assert problem.feasible(fine, 0.1) and fine.key in problem.pending
    assert problem.size(fine) == ComplexityProblem(net, F.cross_entropy, train, background=False).size(fine)
    assert fine.key not in problem.pending


POINTS = [(1.0, 1e-3), (0.5, 0.05), (None, 0.2), (0.9, 2.0), (1.0, 1e-3), (0.3, 0.01)]


def test_a_batched_evaluation_equals_one_at_a_time(trained):
    net, train, _ = trained
    one = ComplexityProblem(net, F.cross_entropy, train, chunk_size=64)
    many = ComplexityProblem(net, F.cross_entropy, train, chunk_size=64, vectorize=True)
    for want, got in zip([one.evaluate(tau, delta, 0.1) for tau, delta in POINTS], many.evaluate_many(POINTS, 0.1)):
        assert (got.key, got.exact) == (want.key, want.exact)
        assert got.train_loss == pytest.approx(want.train_loss, rel=1e-5)
        assert got.train_acc == want.train_acc or (math.isnan(got.train_acc) and math.isnan(want.train_acc))
    assert len(many.evaluations) == 5  # the repeated point is evaluated once


@cuda
def test_on_cuda_a_batched_evaluation_equals_one_at_a_time_on_cpu(trained):
    net, train, _ = trained
    one = ComplexityProblem(net, F.cross_entropy, train, chunk_size=64)
    gpu = copy.deepcopy(net).cuda()
    many = ComplexityProblem(gpu, F.cross_entropy, train, chunk_size=64)
    assert many.vectorize  # the default on a GPU
    for want, got in zip([one.evaluate(tau, delta, 0.1) for tau, delta in POINTS], many.evaluate_many(POINTS, 0.1)):
        assert got.exact == want.exact and got.train_loss == pytest.approx(want.train_loss, rel=1e-4)


def test_the_paper_transformer_runs_batched(tiny_config):
    from grok_lib.training.data import make_split
    from grok_lib.training.model import Transformer

    torch.manual_seed(0)
    model = Transformer(tiny_config.model_config())
    split = make_split(tiny_config.op, tiny_config.p, tiny_config.train_frac, tiny_config.seed)
    data = (split.train_x, split.train_y)
    one = ComplexityProblem(model, F.cross_entropy, data)
    many = ComplexityProblem(model, F.cross_entropy, data, vectorize=True)
    for want, got in zip([one.evaluate(tau, delta, 4.0) for tau, delta in POINTS], many.evaluate_many(POINTS, 4.0)):
        assert got.exact == want.exact and got.train_loss == pytest.approx(want.train_loss, rel=1e-5)


class ItemNet(TwoLayerNet):
    def forward(self, x):
        scale = float(self.out.bias.abs().max().item()) + 1.0  # .item() on a weight: vmap cannot run this
        return super().forward(x) / scale


def test_a_module_vmap_cannot_run_is_evaluated_one_point_at_a_time(trained):
    net, train, _ = trained
    other = ItemNet()
    other.load_state_dict(net.state_dict())
    problem = ComplexityProblem(other, F.cross_entropy, train, vectorize=True)
    with pytest.warns(UserWarning, match="one at a time"):
        got = problem.evaluate_many(POINTS, 0.1)
    reference = ComplexityProblem(other, F.cross_entropy, train)
    assert [e.train_loss for e in got] == [reference.evaluate(tau, delta, 0.1).train_loss for tau, delta in POINTS]


def test_a_batched_search_meets_the_bound_and_is_never_worse_than_algorithm_2(trained):
    net, train, _ = trained
    problem = ComplexityProblem(net, F.cross_entropy, train, vectorize=True, compress_threads=3)
    alg2 = quantization_complexity(problem, 0.1)
    config = BayesConfig(n_random=3, n_guided=7, batch=3)
    result = bayesian_complexity(problem, 0.1, config, extra_points=((None, alg2.delta),))
    assert result.n_evaluations == 2 + 1 + 3 + 7
    assert result.paper_bytes <= alg2.paper_bytes
    assert abs(loss_of(net, result.weights, train) - result.reference_train_loss) < 0.1
    again = bayesian_complexity(ComplexityProblem(net, F.cross_entropy, train, vectorize=True), 0.1, config,
                                extra_points=((None, alg2.delta),))
    # the same point; its loss may differ in the last float32 digits with what it was batched beside
    assert again.paper_bytes == result.paper_bytes and again.delta == result.delta and again.ranks == result.ranks
    assert again.train_loss == pytest.approx(result.train_loss, rel=1e-6)


def test_the_search_runs_on_its_thread_budget_and_restores_the_callers(trained):
    net, train, _ = trained
    seen = []

    def counting_loss(outputs, targets):
        seen.append(torch.get_num_threads())
        return F.cross_entropy(outputs, targets)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        problem = ComplexityProblem(net, counting_loss, train, threads=1)
        bayesian_complexity(problem, 0.2, BayesConfig(n_random=3, n_guided=2, estimator="GP"))
        quantization_complexity(problem, 0.2)
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
        seen.clear()
        bayesian_complexity(ComplexityProblem(net, counting_loss, train, threads=None), 0.2, SMALL)
        assert set(seen) == {2}
    finally:
        torch.set_num_threads(before)
    with pytest.raises(GrokError, match="^threads:"):
        ComplexityProblem(net, F.cross_entropy, train, threads=0)
    with pytest.raises(GrokError, match="^compress_threads:"):
        ComplexityProblem(net, F.cross_entropy, train, compress_threads=0)


def test_the_surrogate_is_fit_once_per_guided_proposal(trained, monkeypatch):
    """One fit before each guided point and none after the last (it would propose nothing); with no guided
    points, none at all. The answer is the same search's either way."""
    import grok_lib.complexity.search as search
    net, train, _ = trained
    fits = []

    class CountingGP(search.FastGP):
        def fit(self, X, y):
            fits.append(len(y))
            return super().fit(X, y)

    monkeypatch.setattr(search, "FastGP", CountingGP)
    bayesian_complexity(ComplexityProblem(net, F.cross_entropy, train), 0.2,
                        BayesConfig(n_random=3, n_guided=4, estimator="GP"))
    assert fits == [5, 6, 7, 8]  # 2 probes + 3 random, then after guided points 1-3
    fits.clear()
    bayesian_complexity(ComplexityProblem(net, F.cross_entropy, train), 0.2,
                        BayesConfig(n_random=3, n_guided=0, estimator="GP"))
    assert fits == []


def test_a_low_rank_network_is_stored_as_factors():
    torch.manual_seed(0)
    net = nn.Linear(40, 40)
    with torch.no_grad():
        net.weight.copy_(torch.randn(40, 1) @ torch.randn(1, 40) * 0.3)
    x = torch.randn(200, 40)
    y = net(x).argmax(-1)
    config = BayesConfig(n_random=0, n_guided=0, probes=((1.0, 0.001),))
    result = bayesian_complexity(ComplexityProblem(net, F.cross_entropy, (x, y)), 0.5, config)
    assert result.ranks["weight"] == 1 and result.coarse.params[0].indices[0].shape == (40, 1)


def test_the_uncoarse_grained_measures_report_naive_size_l2_norm_and_effective_rank():
    """The measures logged beside complexity (Fig. 8-9), by the functions the pipeline uses: training's
    metrics (l2_norm, spectral_summary) and tracking's naive size."""
    from grok_lib.training.regularizers import spectral_summary
    from grok_lib.training.train import l2_norm

    net = nn.Linear(8, 8, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.eye(8) * 2)
    params = {k: v.detach() for k, v in net.named_parameters()}
    summary = spectral_summary(params)
    assert l2_norm(params) == pytest.approx(math.sqrt(8 * 4))
    assert summary["effective_rank"] == pytest.approx(8.0)  # equal singular values: exp(log 8), no 1-D params
    assert summary["effective_rank_mean"] == pytest.approx(8.0)
    assert naive_size(params) == len(bz2.compress(pickle.dumps([params["weight"].numpy()])))


@pytest.mark.parametrize("eps", [0.0, -1.0, float("nan"), float("inf")])
def test_nonpositive_eps_is_rejected(trained, eps):
    net, train, _ = trained
    with pytest.raises(GrokError, match="^eps:"):
        measure_complexity(net, F.cross_entropy, train, eps=eps)


def test_an_empty_dataset_is_rejected(trained):
    net, _, _ = trained
    with pytest.raises(GrokError, match="^train_data:.*empty"):
        measure_complexity(net, F.cross_entropy, (torch.zeros(0, 6), torch.zeros(0, dtype=torch.long)))


def test_mismatched_inputs_and_targets_are_rejected(trained):
    net, train, _ = trained
    with pytest.raises(GrokError, match="^train_data:"):
        measure_complexity(net, F.cross_entropy, (train[0], train[1][:-1]))


def test_a_module_without_parameters_is_rejected(trained):
    _, train, _ = trained
    with pytest.raises(GrokError, match="^module:.*no parameters"):
        measure_complexity(nn.Tanh(), F.mse_loss, train)


def test_nan_weights_are_rejected(trained):
    _, train, _ = trained
    net = TwoLayerNet()
    with torch.no_grad():
        net.out.weight[0, 0] = float("nan")
    with pytest.raises(GrokError, match="^module:.*out.weight"):
        measure_complexity(net, F.cross_entropy, train)


def test_a_nan_loss_is_rejected(trained):
    net, train, _ = trained
    with pytest.raises(GrokError, match="^loss_fn:"):
        measure_complexity(net, lambda outputs, targets: outputs.sum() * float("nan"), train)


@pytest.mark.parametrize("tau, delta, field", [(0.0, 0.1, "tau"), (1.2, 0.1, "tau"), (None, 0.0, "delta"),
                                               (None, -1.0, "delta")])
def test_bad_tau_or_delta_are_rejected_by_the_problem(trained, tau, delta, field):
    net, train, _ = trained
    problem = ComplexityProblem(net, F.cross_entropy, train)
    with pytest.raises(GrokError, match=f"^{field}:"):
        problem.evaluate(tau, delta, eps=1.0)


def test_bad_search_settings_are_rejected():
    with pytest.raises(GrokError, match="^estimator:"):
        BayesConfig(estimator="GBRT")
    with pytest.raises(GrokError, match="^n_guided:"):
        BayesConfig(n_guided=-1)
    with pytest.raises(GrokError, match="^batch:"):
        BayesConfig(batch=0)


def test_a_coder_added_to_the_registry_is_measured_and_can_be_the_objective(trained, monkeypatch):
    """Adding a coder is one entry in coders.CODERS: results report it and a search can minimize it."""
    from grok_lib.complexity import coders

    def raw(cg, limit=None):  # the int64 bin indices, uncompressed
        return coders.Encoded(b"".join(i.tobytes() for p in cg.params for i in p.indices), "none")

    monkeypatch.setitem(coders.CODERS, "raw", coders.Coder("int64 indices", raw, lambda cg: raw(cg).n_bytes,
                                                           exact_codec="none"))
    net, train, _ = trained
    result = quantization_complexity(ComplexityProblem(net, F.cross_entropy, train, objective="raw"), 0.2)
    n_params = sum(p.numel() for p in net.parameters())
    assert result.sizes["raw"].n_bytes == 8 * n_params and result.as_row()["raw_bits"] == 64 * n_params
    assert 0 < result.symbols_bytes <= result.paper_bytes
