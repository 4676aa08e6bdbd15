"""Known answers for the linear mapping number (Liu, Zhong & Tegmark) and its training setup."""

import math

import pytest
import torch
from torch import nn

from grok_lib.errors import GrokError
from grok_lib.lmn.measure import (LMNConfig, NetworkSplit, linear_connectivity, linear_mapping_number, mapping_entropy,
                                  measure_lmn, mlp_lmn, mlp_split, network_split, sequential_split)
from grok_lib.lmn.tasks import LMNRunConfig, make_task_split, permutation_table, task_data, train_lmn_run
from grok_lib.training.model import MLP, MLPConfig

SMALL = MLPConfig(vocab_size=31, n_inputs=2, d_embed=8, d_hidden=16, n_layers=3, n_classes=31)


def random_inputs(n, seed=0, vocab=31):
    return torch.randint(0, vocab, (n, 2), generator=torch.Generator().manual_seed(seed))


def test_affine_network_has_lmn_one():
    torch.manual_seed(0)
    affine = nn.Sequential(nn.Linear(20, 30), nn.Linear(30, 7))
    result = measure_lmn(NetworkSplit(torch.randn(40, 20), affine))
    assert result.lmn == pytest.approx(1.0, abs=1e-3)


def test_affine_head_with_a_dead_output_still_has_lmn_one():
    # A constant output along every path counts as linear (r^2 = 1), so LMN stays 1.
    weight = torch.randn(10, 5)
    weight[:, 2] = 0.0
    result = measure_lmn(NetworkSplit(torch.randn(30, 10), lambda h: h @ weight + 1.0))
    assert result.lmn == pytest.approx(1.0, abs=1e-3)


def test_mlp_split_at_last_hidden_layer_is_linear():
    # After the last hidden layer only the output layer remains: an affine head.
    torch.manual_seed(0)
    model = MLP(SMALL)
    assert mlp_lmn(model, random_inputs(40), LMNConfig(layer=2)).lmn == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("blocks", [1, 3, 5])
def test_block_diagonal_ones_with_c_blocks_has_lmn_c(blocks):
    L = torch.block_diag(*[torch.ones(4, 4, dtype=torch.float64)] * blocks)
    assert linear_mapping_number(L) == pytest.approx(blocks, rel=1e-9)
    assert mapping_entropy(L) == pytest.approx(math.log2(blocks), abs=1e-9)


def test_identity_matrix_has_lmn_n():
    assert linear_mapping_number(torch.eye(6, dtype=torch.float64)) == pytest.approx(6.0)


def test_connectivity_matrix_is_symmetric_with_unit_diagonal_and_in_unit_interval():
    torch.manual_seed(0)
    L = linear_connectivity(mlp_split(MLP(SMALL), random_inputs(30)))
    assert torch.equal(L, L.T)
    assert torch.all(L.diagonal() == 1.0)
    assert L.min() >= 0.0 and L.max() <= 1.0
    assert L.min() < 0.999  # a random SiLU MLP is not linear between every pair


def test_split_after_the_affine_layer_matches_interpolating_activations():
    # mlp_split interpolates pre-activations W x + b, which must equal interpolating x itself.
    torch.manual_seed(0)
    model = MLP(SMALL)
    x = random_inputs(25)
    with torch.no_grad():
        hidden = torch.nn.functional.silu(model.layers[0](model.features(x)))
    naive = NetworkSplit(hidden, lambda h: model.layers[2](torch.nn.functional.silu(model.layers[1](h))))
    assert torch.allclose(linear_connectivity(naive), linear_connectivity(mlp_split(model, x)), atol=1e-4)


def as_sequential(model: MLP) -> nn.Sequential:
    """The MLP after its embedding, as an nn.Sequential of the same Linear modules with SiLU between them."""
    modules = []
    for linear in model.layers[:-1]:
        modules += [linear, nn.SiLU()]
    return nn.Sequential(*modules, model.layers[-1])


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_a_sequential_is_split_where_the_same_mlp_is(layer):
    # one rule for both: after `layer` hidden layers, the next Linear carried to the cut
    torch.manual_seed(0)
    model = MLP(SMALL)
    x = random_inputs(30)
    with torch.no_grad():
        features = model.features(x)
    ours = sequential_split(as_sequential(model), features, layer)
    theirs = mlp_split(model, x, layer)
    assert torch.equal(ours.hidden, theirs.hidden)
    assert torch.allclose(linear_connectivity(ours), linear_connectivity(theirs), atol=1e-6)
    config = LMNConfig(layer=layer)
    assert mlp_lmn(as_sequential(model), features, config).lmn == pytest.approx(mlp_lmn(model, x, config).lmn,
                                                                                 rel=1e-6)


@pytest.mark.parametrize("model, inputs, field", [
    (nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(12, 3)), torch.randn(4, 1, 8), "model"),
    (nn.Sequential(nn.Linear(8, 4), nn.BatchNorm1d(4), nn.Linear(4, 3)), torch.randn(4, 8), "model"),
    (nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 3)), torch.randn(4, 8), "layer"),  # layer 2 of 0..1
    (nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 3)), torch.ones(4, 8, dtype=torch.long), "inputs"),
    (nn.GRU(8, 4), torch.randn(4, 8), "model"),
])
def test_a_network_lmn_cannot_split_is_refused_by_name(model, inputs, field):
    with pytest.raises(GrokError) as info:
        network_split(model, inputs, 2 if field == "layer" else 0)
    assert info.value.field == field


def test_lmn_is_invariant_to_sample_order():
    torch.manual_seed(0)
    model = MLP(SMALL)
    x = random_inputs(48)
    shuffled = x[torch.randperm(48, generator=torch.Generator().manual_seed(1))]
    assert mlp_lmn(model, shuffled).lmn == pytest.approx(mlp_lmn(model, x).lmn, rel=1e-6)


def test_chunking_does_not_change_the_matrix():
    torch.manual_seed(0)
    split = mlp_split(MLP(SMALL), random_inputs(20))
    assert torch.allclose(linear_connectivity(split, LMNConfig(chunk_pairs=7)), linear_connectivity(split))


def test_fewer_than_two_samples_is_rejected():
    with pytest.raises(GrokError, match="n_samples"):
        mlp_lmn(MLP(SMALL), random_inputs(1))


@pytest.mark.parametrize("layer", [3, -1, 7])
def test_split_layer_that_does_not_exist_is_rejected(layer):
    with pytest.raises(GrokError, match="layer") as info:
        mlp_split(MLP(SMALL), random_inputs(5), layer)
    assert info.value.field == "layer"


def test_nan_activations_are_rejected():
    hidden = torch.randn(5, 3)
    hidden[2, 1] = float("nan")
    with pytest.raises(GrokError, match="hidden"):
        measure_lmn(NetworkSplit(hidden, lambda h: h))


def test_nan_from_the_head_is_rejected():
    with pytest.raises(GrokError, match="head"):
        measure_lmn(NetworkSplit(torch.randn(5, 3), lambda h: h / 0.0 * 0.0))


def test_config_names_the_bad_field():
    with pytest.raises(GrokError, match="n_points"):
        LMNConfig(n_points=2)
    with pytest.raises(GrokError, match="lmn_from"):
        LMNRunConfig(lmn_from="everything")


def test_task_labels_are_addition_composition_and_xor():
    x, y = task_data("xor")
    assert len(x) == 1024 and torch.equal(y, x[:, 0] ^ x[:, 1])
    x, y = task_data("add")
    assert len(x) == 961 and torch.equal(y, (x[:, 0] + x[:, 1]) % 31)
    table = permutation_table(4)
    assert table.shape == (24, 24)
    assert all(sorted(row.tolist()) == list(range(24)) for row in table)  # a Latin square: a group table
    identity = 0  # itertools.permutations lists (0, 1, 2, 3) first
    assert torch.equal(table[identity], torch.arange(24))


def test_split_is_seeded_80_20():
    split = make_task_split(LMNRunConfig(task="add", seed=3))
    again = make_task_split(LMNRunConfig(task="add", seed=3))
    assert len(split.train_x) == round(0.8 * 961) and len(split.test_x) == 961 - round(0.8 * 961)
    assert torch.equal(split.train_x, again.train_x) and torch.equal(split.lmn_x, again.lmn_x)


def test_memorizing_xor_raises_train_accuracy_and_is_stored(tmp_path):
    config = LMNRunConfig(task="xor", steps=150, lmn_samples=24, log_every=50)
    run = train_lmn_run(config, tmp_path)
    m = run.metrics()
    assert list(m.step) == config.logged_steps()
    assert run.checkpoints() == list(m.step)
    assert m.train_acc.iloc[-1] > 0.9 > m.train_acc.iloc[0]  # it memorizes in 150 full-batch steps
    assert (m.lmn >= 1.0).all() and m.lmn.notna().all()
    reloaded = run.load_model(150)
    assert mlp_lmn(reloaded, make_task_split(config).lmn_x).lmn == pytest.approx(m.lmn.iloc[-1], rel=1e-6)
    assert train_lmn_run(config, tmp_path).metrics().equals(m)  # a finished run is reused
