"""The `authors` measurement mode: the authors' Flax layout, coarse-graining, container, tests and searches."""

import base64
import bz2
import math
import pickle
import zlib

import numpy as np
import pytest
import torch

from grok_lib.training import train as train_module
from grok_lib.complexity.authors import (
    AuthorsProblem, Spectrum, authors_algorithm_1, authors_algorithm_2, authors_loss, authors_naive_size, authors_tree,
    coarse_grain, last_minibatch, quantize, torch_weights)
from grok_lib.complexity.jax_container import container_size, jax_pickle
from grok_lib.training.data import make_split
from grok_lib.errors import GrokError
from grok_lib.training.model import Transformer, TransformerConfig
from grok_lib.training.train import init_training, train, train_epoch

f32 = lambda values: np.array(values, dtype=np.float32)  # noqa: E731


# --- the hand-computed case ------------------------------------------------------------------------
KERNEL = f32([[2.2, 0.0], [0.0, 1.0], [0.0, 0.0]])  # (in, out) = (3, 2): singular values 2.2 and 1
BIAS = f32([0.3, -0.2, 0.25, 0.75])


def test_rank_is_one_lower_than_eq_13_and_zero_deletes():
    spectrum = Spectrum(KERNEL)
    assert spectrum.s.tolist() == f32([2.2, 1.0]).tolist()
    # cumsum = (2.2, 3.2); Eq. 13's k is the smallest k with cumsum_k >= tau * 3.2, theirs is one lower
    assert spectrum.rank(0.6) == 0  # 1.92: Eq. 13 gives 1
    assert spectrum.rank(0.7) == 1  # 2.24: Eq. 13 gives 2
    assert spectrum.rank(1.0) == 1  # 3.2 = cumsum_2 exactly: left search stops there, Eq. 13 gives 2
    assert spectrum.rank(0.0) == 0


def test_coarse_grained_factors_and_quantized_values_by_hand():
    tree = {"a/bias": BIAS, "a/kernel": KERNEL}
    evaluated, stored, ranks = coarse_grain(tree, tau=0.7, delta=0.5)
    assert ranks == {"a/kernel": 1}  # k (m + n) = 5 < m n = 6: stored as two factors
    a, b = stored["a/kernel"]
    sign = np.sign(a[0, 0])  # the SVD fixes the factors up to one common sign
    np.testing.assert_array_equal(a, sign * f32([[2.0], [0.0], [0.0]]))  # round(2.2 / 0.5) * 0.5 = 2
    np.testing.assert_array_equal(b, sign * f32([[1.0, 0.0]]))
    np.testing.assert_array_equal(evaluated["a/kernel"], f32([[2.0, 0.0], [0.0, 0.0], [0.0, 0.0]]))
    # 0.6 -> 1 -> 0.5; -0.4 -> -0 -> +0; 0.5 (a tie) -> 0; 1.5 (a tie) -> 2 -> 1.0
    np.testing.assert_array_equal(stored["a/bias"], f32([0.5, 0.0, 0.0, 1.0]))
    for array in (a, b, stored["a/bias"]):
        assert not np.signbit(array[array == 0]).any(), "-0.0 must be stored as +0.0"
    assert stored["a/bias"] is evaluated["a/bias"]

    evaluated, stored, ranks = coarse_grain(tree, tau=0.6, delta=0.5)
    assert ranks == {"a/kernel": 0}  # k = 0 deletes the matrix
    assert [x.shape for x in stored["a/kernel"]] == [(3, 0), (0, 2)]
    np.testing.assert_array_equal(evaluated["a/kernel"], np.zeros((3, 2), np.float32))

    _, stored, ranks = coarse_grain(tree, tau=None, delta=0.5)  # quantization only
    assert ranks == {"a/kernel": None}
    np.testing.assert_array_equal(stored["a/kernel"], f32([[2.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))


def test_quantize_is_float32_with_float32_delta():
    x = f32([0.1, 1e-3, -7.3])
    d = np.float32(0.1)  # float32(0.1) != 0.1: the division is float32 / float32
    np.testing.assert_array_equal(quantize(x, 0.1), (np.round(x / d) * d).astype(np.float32))
    assert quantize(x, 0.1).dtype == np.float32


# The exact bytes real JAX wrote, recorded with jax 0.10.2, numpy 2.4.6, Python 3.11 (pickle protocol 4) as
# pickle.dumps(jax.tree_util.tree_flatten(tree)) of FIXTURE_TREE below as jnp arrays, keys sys.intern'ed
# (as Flax's attribute and parameter names are), zlib-compressed and base64-encoded here.
RECORDED_JAX_PICKLE = zlib.decompress(base64.b64decode(
    "eNqNUs1u00AQXttxQiCCKAdU3iBcLCpxhKRSOHWRhRCHXiprba9rU8eJ1msVH5DKoWkj7Y3hkD4BT0H7AOkzwayXqq1UGlay"
    "NTvz/ezuzHHrx0+HNGsfhurpZ/bFC0oReUwIVoMaBIJHs6KUoopkYJLfEfi8qKbz2guimeDetMpl9pfQu01AqHIbJKhOEV/T"
    "KTmBiRXCKQypRe0TSDvKjWU955pgJ69heXYKH7HqKOsN+L6/+xtX86NEQricPMIDj/WpQcJXUN0jzg6DRmFZSqSmzjBtp13t"
    "lD4xPg6Gg+WkR0h/x9x456Jhp1v/5BDDIZtwN9qXY6NNLv+fczy+/jZyqL1oWFtX6/Xbq/X7X+er1QjjETpenK9ebFSwjGsL"
    "3UZ3sFwNsPl5FnqBHoJ5LQXn+LIf6k8YvOMJ9ublN2hQZkQ0IKhkloPqxzxhOAXY/IMMe6+7jPM0pIQS39e2Eh7a2NTGjU0d"
    "vXGprWexFWasBNU+5KLgOXAfb++aurWP+ZzVXGwD0/n2w/JGMd1TbhmxnGutu15OkhSgnLzY1jWXPr5HQpt2+TTkcZwVB9oX"
    "Z/d+XLp3U3Wpox3whaJZzEXQHLsMXkGaqd6skvNKmpx27tBnt244Z4JNS+3UoX0JfAHhArw/oaJCdw=="))
FIXTURE_TREE = {  # a factorised kernel (a pair, its second factor empty), a dense matrix, two dicts with 'bias'
    "decoder_layers_0/ffn/layer1/kernel": (f32([2.25, 0.0, -0.75]), f32([])),
    "decoder_layers_0/ffn/layer1/bias": f32([0.5, 0.0]),
    "decoder_layers_0/ln1/scale": f32([1.0, 1.0, 1.0]),
    "decoder_layers_0/ln1/bias": f32([1.5, 0.0, -2.0]),
    "embedding/embedding": f32([[0.1, -0.2], [0.3, 0.4], [-0.5, 0.6]]),
    "output_layer/bias": f32([0.25]),
}


def test_container_is_byte_identical_to_the_recorded_jax_pickle():
    assert len(RECORDED_JAX_PICKLE) == 947
    assert jax_pickle(FIXTURE_TREE) == RECORDED_JAX_PICKLE
    assert container_size(FIXTURE_TREE, ravel=False) == len(bz2.compress(RECORDED_JAX_PICKLE))
    # ravel=True ravels every leaf and each factor separately (the 3x2 matrix becomes 6 floats)
    raveled = {k: tuple(a.ravel() for a in v) if isinstance(v, tuple) else v.ravel() for k, v in FIXTURE_TREE.items()}
    assert container_size(FIXTURE_TREE, ravel=True) == len(bz2.compress(jax_pickle(raveled)))
    assert container_size(FIXTURE_TREE, ravel=True) != container_size(FIXTURE_TREE, ravel=False)


# --- the Flax layout ---------------------------------------------------------------------------------
TINY = TransformerConfig(vocab_size=13, n_layers=2, d_model=8, n_heads=2, d_mlp=16)
LAYER_LEAVES = ["ffn/layer1/bias", "ffn/layer1/kernel", "ffn/layer2/bias", "ffn/layer2/kernel", "ln1/bias",
                "ln1/scale", "ln2/bias", "ln2/scale", "self_attn/k_proj/bias", "self_attn/k_proj/kernel",
                "self_attn/out_proj/bias", "self_attn/out_proj/kernel", "self_attn/q_proj/bias",
                "self_attn/q_proj/kernel", "self_attn/v_proj/bias", "self_attn/v_proj/kernel"]


def test_flax_names_in_sorted_order_and_kernels_transposed():
    torch.manual_seed(0)
    model = Transformer(TINY)
    weights = {k: v.detach() for k, v in model.named_parameters()}
    tree = authors_tree(weights)
    assert list(tree) == ([f"decoder_layers_{i}/{leaf}" for i in range(2) for leaf in LAYER_LEAVES]
                          + ["embedding/embedding", "output_layer/bias", "output_layer/kernel",
                             "positional_embedding/embedding"])
    block = model.blocks[1]
    pairs = {"ffn/layer1": block.mlp_in, "ffn/layer2": block.mlp_out, "self_attn/q_proj": block.attn.query,
             "self_attn/k_proj": block.attn.key, "self_attn/v_proj": block.attn.value,
             "self_attn/out_proj": block.attn.out}
    for path, linear in pairs.items():
        kernel = tree[f"decoder_layers_1/{path}/kernel"]
        assert kernel.shape == (linear.in_features, linear.out_features) and kernel.flags.c_contiguous
        np.testing.assert_array_equal(kernel, linear.weight.detach().numpy().T)
        np.testing.assert_array_equal(tree[f"decoder_layers_1/{path}/bias"], linear.bias.detach().numpy())
    np.testing.assert_array_equal(tree["decoder_layers_1/ln1/scale"], block.ln_attn.weight.detach().numpy())
    np.testing.assert_array_equal(tree["decoder_layers_0/ln2/bias"], model.blocks[0].ln_mlp.bias.detach().numpy())
    np.testing.assert_array_equal(tree["output_layer/kernel"], model.unembed.weight.detach().numpy().T)
    np.testing.assert_array_equal(tree["embedding/embedding"], model.embed.weight.detach().numpy())
    assert tree["positional_embedding/embedding"].shape == (4, 8)  # ours: n_ctx rows, theirs: vocab_size
    back = torch_weights(tree, list(weights))
    assert all(torch.equal(back[k], weights[k]) for k in weights)


def test_naive_size_is_the_sum_of_per_leaf_bz2_in_their_layout():
    torch.manual_seed(1)
    model = Transformer(TINY)
    expected = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):  # Flax kernel: the transposed weight, C order
            expected += len(bz2.compress(module.weight.detach().T.contiguous().numpy().tobytes()))
            expected += len(bz2.compress(module.bias.detach().numpy().tobytes()))
        elif isinstance(module, (torch.nn.LayerNorm, torch.nn.Embedding)):
            expected += sum(len(bz2.compress(p.detach().numpy().tobytes())) for p in module.parameters())
    weights = dict(model.named_parameters())
    assert authors_naive_size(weights) == expected
    pickled_list = pickle.dumps([w.detach().numpy() for w in weights.values()])  # grok_lib.complexity.coders.naive_size
    assert authors_naive_size(weights) != len(bz2.compress(pickled_list))


def test_bad_input_names_the_argument(tiny_config):
    with pytest.raises(GrokError, match="weights") as err:
        authors_tree({"layers.0.weight": torch.zeros(2, 2)})
    assert err.value.field == "weights"
    for bad in ({"embed.bias": torch.zeros(2)}, {"unembed.weight": torch.tensor([[math.nan]])}, {}):
        with pytest.raises(GrokError) as err:
            authors_tree(bad)
        assert err.value.field == "weights"
    split = make_split(tiny_config.op, tiny_config.p, tiny_config.train_frac, tiny_config.seed)
    model = Transformer(tiny_config.model_config())
    for kwargs, field in ((dict(eps=0.0), "eps"), (dict(eps=math.inf), "eps"), (dict(epoch=0), "epoch")):
        with pytest.raises(GrokError) as err:
            authors_algorithm_2(model, tiny_config, split, **{"epoch": 1, "eps": 1.0, **kwargs})
        assert err.value.field == field
    with pytest.raises(GrokError) as err:
        authors_algorithm_1(torch.nn.Linear(2, 2), tiny_config, split, 1, 1.0)
    assert err.value.field == "model_or_weights"
    with pytest.raises(GrokError) as err:
        authors_algorithm_1(model, tiny_config, split, 1, 1.0, n_guided=-1)
    assert err.value.field == "n_guided"


# --- the data and the distortion tests ---------------------------------------------------------------
def test_last_minibatch_is_the_last_batch_train_epoch_draws(tiny_config, monkeypatch):
    config = tiny_config.with_(batch_size=7, noise=0.0, beta=0.0)  # 60 examples: 8 batches of 7, one of 4
    split = make_split(config.op, config.p, config.train_frac, config.seed)
    model, optimizer, generators = init_training(config, "cpu")
    seen = []
    original = train_module.training_loss

    def recording(model_, params, xb, yb, config_, noise):
        seen.append((xb.clone(), yb.clone()))
        return original(model_, params, xb, yb, config_, noise)

    monkeypatch.setattr(train_module, "training_loss", recording)
    for epoch in range(1, 4):
        seen.clear()
        train_epoch(model, optimizer, split, config, generators, config.batch_size_for(len(split.train_x)))
        x, y = last_minibatch(config, split, epoch)
        assert len(x) == 4 and torch.equal(x, seen[-1][0]) and torch.equal(y, seen[-1][1])
        assert not torch.equal(x, last_minibatch(config, split, epoch + 1)[0])


def test_one_sided_accepts_a_loss_drop_that_two_sided_rejects(tiny_config):
    split = make_split(tiny_config.op, tiny_config.p, tiny_config.train_frac, tiny_config.seed)
    torch.manual_seed(0)
    model = Transformer(tiny_config.model_config())
    with torch.no_grad():
        model.unembed.bias[tiny_config.p + 1] = 6.0  # the '=' token is never an answer: a high loss
    problem = AuthorsProblem(model, tiny_config, split, epoch=3, eps=0.5)
    assert len(problem.y) == 30 and problem.reference > math.log(13) + 1
    evaluated, _, ranks = coarse_grain(problem.tree, tau=0.0, delta=16.0)  # every matrix deleted, all else 0
    assert set(ranks.values()) == {0}
    lower = problem.loss(evaluated)
    assert lower == pytest.approx(math.log(13), abs=1e-5)  # uniform logits
    assert problem.one_sided(lower) and not problem.two_sided(lower)
    same = problem.loss(coarse_grain(problem.tree, tau=None, delta=1e-6)[0])
    assert problem.one_sided(same) and problem.two_sided(same)
    higher = problem.reference + np.float32(0.6)
    assert not problem.one_sided(higher) and not problem.two_sided(higher)
    assert not problem.one_sided(np.float32("nan")) and not problem.two_sided(np.float32("nan"))
    assert not problem.one_sided(np.float32("inf"))


def test_loss_is_their_jitted_compute_loss():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    y = torch.tensor([0, 2])
    expected = -(torch.log(torch.softmax(logits, -1))[[0, 1], [0, 2]]).mean()
    assert authors_loss(logits, y) == np.float32(expected) and authors_loss(logits, y).dtype == np.float32
    # under jit a non-answer probability of 0 (0 * log 0 in the one-hot product) gives no NaN ...
    assert authors_loss(torch.tensor([[120.0, 0.0, 0.0]]), torch.tensor([0])) == 0.0
    # ... an answer below the smallest normal float32 is flushed to 0: inf (XLA flushes subnormals)
    assert authors_loss(torch.tensor([[80.0, 0.0, 0.0]]), torch.tensor([1])) == pytest.approx(80.0)
    assert authors_loss(torch.tensor([[87.5, 0.0, 0.0]]), torch.tensor([1])) == np.inf  # exp(-87.5): subnormal


# --- the searches, end to end ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from grok_lib.training.config import RunConfig
    from grok_lib.store import RunStore

    config = RunConfig(op="add", regime="ours", p=11, train_frac=0.5, d_model=16, n_heads=2, d_mlp=32, epochs=12)
    run = train(config, RunStore(tmp_path_factory.mktemp("runs")), device="cpu", progress=False)
    split = make_split(config.op, config.p, config.train_frac, config.seed)
    return run, config, split


def test_algorithm_1_meets_its_one_sided_test_and_reports_its_own_size(trained):
    run, config, split = trained
    result = authors_algorithm_1(run.load_model(12), config, split, 12, eps=1.0, n_random=3, n_guided=2)
    assert result.algorithm == 1 and result.n_evaluations == 7 and result.n_batch == 30
    assert result.bytes > 0 and result.feasible and result.loss <= result.reference_loss + 1.0
    tree = authors_tree(run.load_weights(12))
    evaluated, stored, ranks = coarse_grain(tree, result.tau, result.delta)
    assert ranks == result.ranks and len(ranks) == 9  # 6 kernels, 3 embedding-like tables
    assert container_size(stored, ravel=True) == result.bytes
    raw = len(bz2.compress(jax_pickle({k: v.ravel() for k, v in tree.items()})))
    assert result.bytes <= raw  # the first probe (Delta = 1e-3, tau = 1) is a candidate


def test_algorithm_2_meets_its_two_sided_test_and_reports_its_own_size(trained):
    run, config, split = trained
    weights = run.load_weights(12)
    result = authors_algorithm_2(weights, config, split, 12, eps=1.0)
    assert result.algorithm == 2 and result.tau is None and result.feasible
    assert abs(result.loss - result.reference_loss) < 1.0
    assert result.delta > 1e-12 and result.delta == float(np.float32(result.delta))  # float32 bisection
    assert 1 <= result.n_evaluations <= 50
    tree = authors_tree(weights)
    assert container_size({k: quantize(v, result.delta) for k, v in tree.items()}, ravel=False) == result.bytes
