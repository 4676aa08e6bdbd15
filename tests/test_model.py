import pytest
import torch

from grok_lib.config import RunConfig
from grok_lib.errors import GrokError
from grok_lib.model import MLP, MLPConfig, Transformer, TransformerConfig


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_paper_transformer_sizes():
    one = Transformer(RunConfig(op="mul").model_config())
    two = Transformer(RunConfig(op="div").model_config())
    assert 0.22e6 < n_params(one) < 0.24e6  # PROTOCOL: about 0.23 M
    assert 0.42e6 < n_params(two) < 0.45e6  # PROTOCOL: about 0.43 M
    assert one.pos.weight.shape == (4, 128)  # n_ctx rows, not vocab-size rows


def test_transformer_reads_last_position():
    model = Transformer(TransformerConfig(vocab_size=13, d_model=16, n_heads=2, d_mlp=32))
    tokens = torch.randint(0, 13, (5, 4))
    assert model(tokens).shape == (5, 13)


def test_post_layer_norm_outputs_are_normalized():
    model = Transformer(TransformerConfig(vocab_size=13, d_model=16, n_heads=2, d_mlp=32))
    x = model.embed(torch.randint(0, 13, (3, 4))) + model.pos.weight
    out = model.blocks[0](x)
    assert torch.allclose(out.mean(-1), torch.zeros(3, 4), atol=1e-5)


def test_mlp_shapes():
    model = MLP(MLPConfig(vocab_size=31, n_classes=31))
    assert model(torch.randint(0, 31, (8, 2))).shape == (8, 31)
    assert len(model.layers) == 3


def test_model_config_is_validated():
    with pytest.raises(GrokError) as err:
        TransformerConfig(d_model=100, n_heads=3)
    assert err.value.field == "n_heads"


def test_last_position_shortcut_gives_the_full_forwards_logits():
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(vocab_size=13, n_layers=2, d_model=16, n_heads=2, d_mlp=32))
    tokens = torch.randint(0, 13, (7, 4))
    x = model.embed(tokens) + model.pos.weight
    for block in model.blocks:
        x = block(x)  # every position through every block
    assert torch.allclose(model(tokens), model.unembed(x[:, -1]), atol=1e-5)
