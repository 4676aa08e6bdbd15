import pytest
import torch

from grok_lib.training.config import RunConfig
from grok_lib.errors import GrokError
from grok_lib.training.model import MLP, MLPConfig, Transformer, TransformerConfig


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_paper_transformer_sizes():
    one = Transformer(RunConfig(op="mul").model_config())
    two = Transformer(RunConfig(op="div").model_config())
    assert 0.22e6 < n_params(one) < 0.24e6  # PROTOCOL: about 0.23 M
    assert 0.42e6 < n_params(two) < 0.45e6  # PROTOCOL: about 0.43 M
    assert one.pos.weight.shape == (4, 128)  # n_ctx rows, not vocab-size rows
    code = Transformer(RunConfig(op="mul", pos_table="vocab").model_config())
    assert code.pos.weight.shape == (115, 128)  # the authors' table, as an option
    tokens = torch.randint(0, 115, (3, 4))
    with torch.no_grad():
        code.pos.weight[:4] = one.pos.weight
        code.load_state_dict({**one.state_dict(), "pos.weight": code.pos.weight})
    assert torch.allclose(code(tokens), one(tokens), atol=1e-6)  # the unused rows change no output


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
        x = block.ln_mlp(x + block.mlp_out(torch.nn.functional.gelu(block.mlp_in(x), approximate="tanh")))
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


def fresh(init: str, **fields) -> Transformer:
    torch.manual_seed(0)
    return Transformer(RunConfig(op="add", init=init, **fields).model_config())


def test_the_authors_init_is_flax_default_embeddings_lecun_kernels_and_zero_biases():
    model = fresh("authors")
    d = model.cfg.d_model
    for table in (model.embed.weight.detach(), model.pos.weight.detach()):  # nn.Embed: N(0, 1 / features)
        assert abs(float(table.std()) - d ** -0.5) < 0.1 * d ** -0.5 and abs(float(table.mean())) < 0.01
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):  # LeCun normal, truncated at 2 std: variance 1 / fan_in
            w = module.weight.detach()
            assert abs(float(w.var()) - 1 / module.in_features) < 0.05 / module.in_features, name
            assert float(w.abs().max()) <= 2 * module.in_features ** -0.5 / 0.87962566103423978 + 1e-6, name
            assert torch.count_nonzero(module.bias) == 0, name
        if isinstance(module, torch.nn.LayerNorm):
            assert torch.all(module.weight == 1) and torch.count_nonzero(module.bias) == 0
            assert module.eps == 1e-6


def test_the_torch_init_is_an_option_and_differs_where_the_issue_found_it():
    model = fresh("torch", gelu="exact", ln_eps=1e-5)
    assert abs(float(model.embed.weight.detach().std()) - 1.0) < 0.05  # nn.Embedding: N(0, 1), 11x the authors'
    assert torch.count_nonzero(model.blocks[0].mlp_in.bias) > 0
    assert model.blocks[0].ln_attn.eps == 1e-5 and model.blocks[0].gelu_approximate == "none"


@pytest.mark.parametrize("gelu", ["tanh", "exact"])
def test_the_gelu_option_selects_the_form_the_forward_uses(gelu):
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(vocab_size=13, d_model=16, n_heads=2, d_mlp=32, gelu=gelu))
    tokens = torch.randint(0, 13, (7, 4))
    x = model.embed.weight[tokens] + model.pos.weight
    block = model.blocks[0]
    h = block.ln_attn(x + block.attn(x))
    expected = block.ln_mlp(h + block.mlp_out(torch.nn.functional.gelu(
        block.mlp_in(h), approximate="tanh" if gelu == "tanh" else "none")))
    assert torch.allclose(block(x), expected, atol=1e-6)


def test_configs_stored_before_the_init_field_read_back_as_torch_init_runs():
    import json
    data = json.loads(RunConfig(op="add").to_json())
    for field in ("init", "gelu", "ln_eps"):
        data.pop(field)
    old = RunConfig.from_dict(data)
    assert (old.init, old.gelu, old.ln_eps) == ("torch", "exact", 1e-5)
    assert old.key() != RunConfig(op="add").key()
    # the key the default config had before these fields existed: stored runs keep their directories
    assert old.key() == RunConfig(op="add", init="torch", gelu="exact", ln_eps=1e-5).key() == "add-ours-s0-d4abd0663c"


@pytest.mark.parametrize("field,value", [("init", "xavier"), ("gelu", "relu"), ("ln_eps", 0.0)])
def test_unknown_init_gelu_or_ln_eps_is_refused(field, value):
    with pytest.raises(GrokError) as err:
        RunConfig(op="add", **{field: value})
    assert err.value.field == field
