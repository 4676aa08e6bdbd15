"""A tighter description than the paper's (issue 17): per-parameter grid spacings written and read back
by every coder, the `entropy` coder as a registered objective, Delta refined to the edge of the bound, the
sensitivity allocation, and stored tables from before these settings still accepted."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from grok_lib.complexity.allocation import SCALE_RANGE, sensitivity_scales
from grok_lib.complexity.coarse import CoarseGrainer
from grok_lib.complexity.coders import CODERS, coded_sizes, encode_symbols, serialize
from grok_lib.complexity.entropy import encode_entropy, entropy_search_size
from grok_lib.complexity.problem import ComplexityProblem
from grok_lib.complexity.search import BayesConfig, bayesian_complexity, measure_complexity
from grok_lib.errors import GrokError
from test_coarse import some_weights
from test_complexity import SMALL, trained  # noqa: F401  (the module's fixture)


def decoded_weights(name, cg):
    coder = CODERS[name]
    return coder.decode(coder.encode(cg, None).data).weights()


@pytest.mark.parametrize("tau, delta", [(None, 1e-9), (None, 1e-3), (0.6, 1e-3), (0.9, 0.02), (None, 0.5)])
def test_per_parameter_spacings_decode_bit_for_bit_in_every_coder(tau, delta):
    weights = some_weights()
    grainer = CoarseGrainer(weights)
    scales = tuple(2.0 ** (i - 1) for i in range(len(grainer.names)))
    cg = grainer.with_ranks(grainer.ranks(tau), delta, tau, scales)
    assert [p.step(delta) for p in cg.params] == [delta * s for s in scales]
    for name, coder in CODERS.items():
        if coder.decode is not None:
            back = decoded_weights(name, cg)
            assert all(torch.equal(back[k], v) for k, v in cg.weights().items()), name
    # the float32 layout of the symbols coder, tried only above `limit`, decodes too
    back = CODERS["symbols"].decode(encode_symbols(cg, limit=1).data).weights()
    assert all(torch.equal(back[k], v) for k, v in cg.weights().items())


def test_one_global_delta_keeps_the_version_1_bytes():
    grainer = CoarseGrainer(some_weights())
    plain = grainer.with_ranks(grainer.ranks(0.9), 0.02, 0.9)
    ones = grainer.with_ranks(grainer.ranks(0.9), 0.02, 0.9, tuple(1.0 for _ in grainer.names))
    assert serialize(plain) == serialize(ones) and serialize(plain)[4] == 1
    assert encode_entropy(plain).data == encode_entropy(ones).data


def test_the_entropy_objective_never_undercounts_and_is_reported_with_the_others():
    cg = CoarseGrainer(some_weights())(0.9, 0.02)
    sizes = coded_sizes(cg)
    assert list(sizes) == list(CODERS) and "entropy" in sizes
    assert entropy_search_size(cg) >= sizes["entropy"].n_bytes
    assert sizes["entropy"].n_bytes < sizes["paper"].n_bytes


def test_every_tighter_search_result_decodes_to_the_weights_it_evaluated(trained):  # noqa: F811
    net, train, test = trained
    config = BayesConfig(n_random=4, n_guided=6, estimator="ET", n_trees=4)
    for allocation in ("global", "sensitivity"):
        problem = ComplexityProblem(net, F.cross_entropy, train, test, objective="entropy", allocation=allocation)
        result = bayesian_complexity(problem, 0.5, config, refine=4)
        for name, coder in CODERS.items():
            if coder.decode is not None:
                back = decoded_weights(name, result.coarse)
                assert all(torch.equal(back[k], result.weights[k]) for k in result.weights), (allocation, name)
        evaluation = problem.evaluations[result.key]
        assert problem.feasible(evaluation, 0.5) and result.train_loss == evaluation.train_loss


def test_refining_delta_moves_the_answer_to_the_edge_of_the_bound(trained):  # noqa: F811
    net, train, _ = trained
    plain = measure_complexity(net, F.cross_entropy, train, eps=0.5, budget=SMALL)
    refined = measure_complexity(net, F.cross_entropy, train, eps=0.5, budget=SMALL, refine=6)
    assert refined.paper_bytes <= plain.paper_bytes and refined.n_evaluations > plain.n_evaluations
    assert abs(refined.train_loss - refined.reference_train_loss) < 0.5
    with pytest.raises(GrokError, match="^refine:"):
        measure_complexity(net, F.cross_entropy, train, eps=0.5, refine=-1)


class DeadBranch(nn.Module):
    """Two branches; the second is multiplied by zero, so its weights cannot matter."""

    def __init__(self):
        super().__init__()
        self.live = nn.Linear(6, 3)
        self.dead = nn.Linear(6, 3)

    def forward(self, x):
        return self.live(x) + 0.0 * self.dead(x)


def test_the_sensitivity_allocation_gives_an_unused_matrix_the_coarsest_grid():
    torch.manual_seed(0)
    net = DeadBranch()
    x = torch.randn(200, 6)
    problem = ComplexityProblem(net, F.cross_entropy, (x, net(x).argmax(-1)), allocation="sensitivity")
    scales = dict(zip(problem.grainer.names, problem.scales))
    assert scales["dead.weight"] == SCALE_RANGE[1] and scales["live.weight"] < SCALE_RANGE[1]
    assert scales["live.bias"] == scales["dead.bias"] == 1.0  # biases keep the global Delta
    assert problem.allocation_evaluations >= 2
    with pytest.raises(GrokError, match="^allocation:"):
        ComplexityProblem(net, F.cross_entropy, (x, net(x).argmax(-1)), allocation="per-row")


def test_sensitivities_follow_the_measured_curvature():
    """Two matrices, one 16x as curved: Delta_g proportional to h_g^(-1/2) gives a 4x finer grid to it."""
    rng = np.random.default_rng(0)
    arrays = {"a": torch.from_numpy(rng.normal(size=(20, 20)).astype(np.float32)),
              "b": torch.from_numpy(rng.normal(size=(20, 20)).astype(np.float32))}
    grainer = CoarseGrainer(arrays)
    curvature = {"a": 1.0, "b": 16.0}

    def rise(name, rounded):  # a quadratic loss: h_g / 2 * sum of squared errors
        error = rounded.astype(np.float64) - grainer.arrays[name]
        return 0.5 * curvature[name] * float(np.sum(error ** 2))

    (scale_a, scale_b), evaluations = sensitivity_scales(grainer, rise)
    assert scale_a / scale_b == pytest.approx(4.0, rel=1e-6)
    assert math.sqrt(scale_a * scale_b) == pytest.approx(1.0, rel=1e-6) and evaluations >= 2


def test_a_table_stored_before_the_new_settings_is_still_accepted(tmp_path):
    from grok_lib.complexity.measurement import PAPER
    from grok_lib.complexity.tracking import SETTINGS_FILE, TrackingSettings, check_settings

    class Stored:
        path = tmp_path

    # the flat format of the first tables, before allocation, split, refine, reallocate and `how`
    old = {"eps": [0.0625, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0], "seed": 0, "one_sided": False, "objective": "paper",
           "algorithm_2": "sweep", "bound_delta": 0.05,
           "bayes": {"n_random": 10, "n_guided": 50, "probes": [[1.0, 0.001], [0.98, 0.00199526231496888]],
                     "estimator": "GP", "gp_restarts": 0, "n_trees": 16, "n_candidates": 2000, "batch": 1}}
    (tmp_path / SETTINGS_FILE).write_text(json.dumps(old))
    assert check_settings(Stored, TrackingSettings())
    assert TrackingSettings.from_json(json.dumps(old)) == TrackingSettings()
    with pytest.raises(GrokError, match="^settings:"):
        check_settings(Stored, TrackingSettings(how=PAPER.but(allocation="sensitivity")))
    with pytest.raises(GrokError, match="^settings:"):
        check_settings(Stored, TrackingSettings(how=PAPER.but(factor_split="balanced")))
    for removed in ({"bound_delta": 0.01}, {"bayes": {**old["bayes"], "n_candidates": 500}}):
        (tmp_path / SETTINGS_FILE).write_text(json.dumps({**old, **removed}))  # a value no option gives now
        with pytest.raises(GrokError, match="^settings:"):
            check_settings(Stored, TrackingSettings())
