import pandas as pd
import pytest
import torch

from grok_lib.training.data import all_equations, make_split
from grok_lib.training.ops import OPS
from grok_lib.errors import GrokError


def test_paper_dataset_sizes():
    assert len(all_equations("add", 113)[0]) == 12_769
    assert len(all_equations("div", 113)[0]) == 12_656


@pytest.mark.parametrize("op", OPS)
def test_every_op_answers_correctly(op):
    p = 113
    x, c = all_equations(op, p)
    a, b = x[:, 0], x[:, 2]
    assert (x[:, 1] == p).all() and (x[:, 3] == p + 1).all()
    expected = {
        "add": (a + b) % p, "sub": (a - b) % p, "mul": (a * b) % p,
        "sq_sum": (a * a + b * b) % p, "quad": (a * a + a * b + b * b) % p,
    }
    if op == "div":
        assert ((c * b) % p == a).all()
    else:
        assert torch.equal(c, expected[op])
    assert c.min() >= 0 and c.max() < p


def test_division_excludes_zero_divisor():
    x, _ = all_equations("div", 7)
    assert (x[:, 2] != 0).all()


def test_split_is_disjoint_complete_and_uses_paper_fraction():
    split = make_split("mul", 113, seed=3)
    assert len(split.train_x) == round(0.2 * 12_769)
    train = {tuple(r) for r in split.train_x.tolist()}
    test = {tuple(r) for r in split.test_x.tolist()}
    assert not train & test
    assert len(train) + len(test) == 12_769


def test_split_is_determined_by_seed():
    a, b, c = make_split("sub", 31, seed=1), make_split("sub", 31, seed=1), make_split("sub", 31, seed=2)
    assert torch.equal(a.train_x, b.train_x)
    assert not torch.equal(a.train_x, c.train_x)


@pytest.mark.parametrize("kwargs, field", [
    (dict(op="pow"), "op"),
    (dict(op="div", p=21), "p"),
    (dict(op="add", p=2), "p"),
    (dict(op="add", train_frac=1.0), "train_frac"),
    (dict(op="add", train_frac=0.0), "train_frac"),
])
def test_bad_data_arguments_name_the_field(kwargs, field):
    with pytest.raises(GrokError) as err:
        make_split(**kwargs)
    assert err.value.field == field


def test_an_op_is_one_record_and_every_reader_takes_it_from_the_table(monkeypatch):
    """Adding an op is one entry of grok_lib.training.ops.OPS: data, config defaults and figure labels follow."""
    from grok_lib.paper.figures import _ops
    from grok_lib.training import ops
    from grok_lib.training.config import RunConfig

    record = ops.Op("cube", "a^3+b", "a³+b", lambda a, b, p: (a ** 3 + b) % p, 0.35, 3, 5e-3)
    monkeypatch.setitem(ops.OPS, "cube", record)
    x, y = all_equations("cube", 7)
    assert len(x) == 49 and int(y[(x[:, 0] == 2) & (x[:, 2] == 3)]) == (8 + 3) % 7
    config = RunConfig(op="cube", regime="ours", p=7, d_model=16, n_heads=2, d_mlp=32, epochs=2)
    assert (config.train_frac, config.n_layers, config.noise) == (0.35, 3, 5e-3)
    assert _ops(pd.DataFrame({"op": ["cube", "add"]})) == ["add", "cube"]  # the table's order
    assert record.label(7) == "a³+b mod 7"


def test_an_unknown_op_is_an_error_everywhere_never_dropped():
    from grok_lib.paper.figures import _ops
    from grok_lib.training.config import RunConfig

    with pytest.raises(GrokError, match="op"):
        _ops(pd.DataFrame({"op": ["add", "pow"]}))
    with pytest.raises(GrokError, match="op"):
        RunConfig(op="pow")
    with pytest.raises(GrokError, match="op"):
        make_split("pow", 11)
