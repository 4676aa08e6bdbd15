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


def reference_forward(model: Transformer, tokens):
    """The textbook forward: every position through every block, per-head matmuls, no tables, no shortcuts."""
    B, T = tokens.shape
    x = model.embed.weight[tokens] + model.pos.weight[:T]
    for block in model.blocks:
        attn, h = block.attn, block.attn.n_heads
        D = x.shape[-1]

        def heads(t):
            return t.reshape(B, T, h, D // h).transpose(1, 2)  # (B, h, T, d_head)

        q, k, v = heads(attn.query(x)), heads(attn.key(x)), heads(attn.value(x))
        weights = torch.softmax(q @ k.transpose(-2, -1) / (D // h) ** 0.5, dim=-1)
        x = block.ln_attn(x + attn.out((weights @ v).transpose(1, 2).reshape(B, T, D)))
        x = block.ln_mlp(x + block.mlp_out(torch.nn.functional.gelu(block.mlp_in(x))))
    return model.unembed(x[:, -1])


@pytest.mark.parametrize("n_layers", [1, 2])
@pytest.mark.parametrize("batch", [7, 40])  # fewer, then more examples than the vocabulary: both paths
def test_fast_forward_gives_the_reference_logits_and_gradients(n_layers, batch):
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(vocab_size=13, n_layers=n_layers, d_model=16, n_heads=2, d_mlp=32))
    tokens = torch.randint(0, 13, (batch, 4))
    fast, reference = model(tokens), reference_forward(model, tokens)
    assert torch.allclose(fast, reference, atol=1e-5)
    weights = torch.randn_like(fast)
    fast_grads = torch.autograd.grad((fast * weights).sum(), list(model.parameters()))
    reference_grads = torch.autograd.grad((reference * weights).sum(), list(model.parameters()))
    for (name, _), a, b in zip(model.named_parameters(), fast_grads, reference_grads):
        assert torch.allclose(a, b, atol=1e-5), name
