"""A Delta per matrix priced at the edge of the bound (BayesConfig.reallocate), the balanced factor split,
and the entropy coder's memory of recent arrays (issue 17)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from grok_lib.complexity import entropy
from grok_lib.complexity.coarse import CoarseGrainer, low_rank_factors, spectrum
from grok_lib.complexity.coders import CODERS
from grok_lib.complexity.distortion import train_subset
from grok_lib.complexity.problem import ComplexityProblem
from grok_lib.complexity.search import BayesConfig, bayesian_complexity
from grok_lib.errors import GrokError
from test_coarse import some_weights
from test_tighter import decoded_weights

CONFIG = BayesConfig(n_random=4, n_guided=6, estimator="ET", n_trees=4)


class WideDeadBranch(torch.nn.Module):
    """Two 16 x 64 branches; the second is multiplied by zero, so its weights cannot matter. Wide enough
    that the bytes of its indices, not the description's header, decide what a move saves."""

    def __init__(self):
        super().__init__()
        self.live = torch.nn.Linear(64, 16)
        self.dead = torch.nn.Linear(64, 16)
        with torch.no_grad():  # both as large: the live branch is confident, and the dead one costs bytes
            self.live.weight.mul_(10)
            self.dead.weight.mul_(10)

    def forward(self, x):
        return self.live(x) + 0.0 * self.dead(x)


def dead_branch_problem(**kwargs):
    torch.manual_seed(0)
    net = WideDeadBranch()
    x = torch.randn(400, 64)
    return ComplexityProblem(net, F.cross_entropy, (x, net(x).argmax(-1)), objective="entropy", **kwargs)


def test_the_balanced_split_is_the_same_product_with_the_singular_values_shared():
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(12, 9)) * np.logspace(0, 2, 9)  # singular values far from 1
    spec = spectrum(matrix)
    left, right = low_rank_factors(spec, 5)
    a, b = low_rank_factors(spec, 5, "balanced")
    np.testing.assert_allclose(a @ b, left @ right, rtol=1e-12, atol=1e-12)
    root = np.sqrt(spec.singular[:5])
    np.testing.assert_allclose(np.linalg.norm(a, axis=0), root, rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), root, rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(right, axis=1), 1.0, rtol=1e-12)  # the authors': unit rows
    with pytest.raises(GrokError, match="^factor_split:"):
        CoarseGrainer(some_weights(), factor_split="right")


def test_balanced_factors_decode_bit_for_bit_in_every_coder():
    grainer = CoarseGrainer(some_weights(), factor_split="balanced")
    cg = grainer(0.6, 1e-3)
    assert any(p.rank is not None for p in cg.params)
    for name, coder in CODERS.items():
        if coder.decode is not None:
            back = decoded_weights(name, cg)
            assert all(torch.equal(back[k], v) for k, v in cg.weights().items()), name


def test_reallocation_coarsens_an_unused_matrix_and_never_answers_larger():
    plain = bayesian_complexity(dead_branch_problem(), 0.5, CONFIG, refine=4)
    problem = dead_branch_problem()
    moved = bayesian_complexity(problem, 0.5, CONFIG, refine=4, reallocate=2)
    assert moved.sizes["entropy"].n_bytes <= plain.sizes["entropy"].n_bytes
    assert moved.n_evaluations > plain.n_evaluations
    # the unused branch went coarser than the used one: its grid is at least STEP times the other's
    scales = dict(zip(problem.grainer.names, moved.scales))
    assert scales["dead.weight"] > scales["live.weight"]
    steps = {p.name: p.step(moved.delta) for p in moved.coarse.params}
    assert steps["dead.weight"] > steps["live.weight"]
    assert steps["live.bias"] == steps["dead.bias"] == moved.delta  # biases keep the global Delta
    # the answer is a point the search evaluated on the full training set, within the bound
    evaluation = problem.evaluations[moved.key]
    assert problem.feasible(evaluation, 0.5) and evaluation.scales == moved.scales
    # and every description decodes to exactly the weights whose loss was measured
    for name, coder in CODERS.items():
        if coder.decode is not None:
            back = decoded_weights(name, moved.coarse)
            assert all(torch.equal(back[k], moved.weights[k]) for k in moved.weights), name
    loss = problem.loss_and_accuracy(problem.weights_on_device(moved.coarse), problem.train)[0]
    # the search measured it in early-exit chunks (float32 chunk means summed in float64), here in one chunk:
    # the same weights, a sum in another order
    assert loss == pytest.approx(evaluation.train_loss, rel=1e-6)
    assert evaluation.train_loss <= problem.reference_loss + 0.5


def test_reallocate_must_be_a_count():
    from grok_lib.complexity.measurement import PAPER

    with pytest.raises(GrokError, match="^reallocate:"):
        PAPER.but(reallocate=-1)
    with pytest.raises(GrokError, match="^reallocate:"):
        PAPER.but(reallocate=1.5)


def test_the_remembered_fast_encodings_are_the_same_bytes_and_bounded(monkeypatch):
    cg = CoarseGrainer(some_weights())(0.9, 0.02)
    memory = entropy.FAST_MEMORY
    entropy.clear_fast_cache()
    first = entropy.encode_entropy(cg, fast=True).data
    assert 0 < len(memory.entries) <= sum(len(p.indices) for p in cg.params)
    assert entropy.encode_entropy(cg, fast=True).data == first  # from memory
    entropy.clear_fast_cache()
    monkeypatch.setattr(memory, "limit", 1)
    assert entropy.encode_entropy(cg, fast=True).data == first
    assert len(memory.entries) == 1  # only the latest array is kept under a 1-byte budget
    entropy.clear_fast_cache()
    assert memory.held == 0 and not memory.entries


def test_the_priced_subset_is_a_seeded_draw_that_a_sorted_training_set_cannot_bias():
    torch.manual_seed(0)
    net = WideDeadBranch()
    x = torch.randn(1000, 64)
    y = net(x).argmax(-1)
    order = torch.argsort(y)  # sorted by class: its first examples are all one class
    data = (x[order], y[order])
    a, b = train_subset(data, 256), train_subset(data, 256)
    assert len(a[0]) == 256 and torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])  # the same draw each time
    assert len(set(a[1].tolist())) == len(set(y.tolist()))  # every class present
    assert train_subset(data, 5000) is data  # all of it when it has no more
