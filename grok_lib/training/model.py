"""The paper's post-LN decoder transformer, and the plain MLP of the LMN paper."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import require

INITS = ("authors", "torch")
GELUS = ("tanh", "exact")
# Flax's truncated normal draws from N(0, 1) cut at +-2 and rescales by this constant, the std of that
# truncated distribution, so that the kept samples have exactly the requested variance.
TRUNCATED_NORMAL_STD = 0.87962566103423978


@torch.no_grad()
def init_authors(module: nn.Module) -> None:
    """Flax's default initialisation, as the authors' model gets it (the paper does not state one).

    nn.Embed: N(0, 1/features); nn.Dense: LeCun normal (truncated at 2 std, variance 1/fan_in), zero bias;
    LayerNorm: scale 1, bias 0. Drawn from torch's global generator, in module order.
    """
    for m in module.modules():
        if isinstance(m, nn.Embedding):
            m.weight.normal_(0.0, m.embedding_dim ** -0.5)
        elif isinstance(m, nn.Linear):
            std = m.in_features ** -0.5 / TRUNCATED_NORMAL_STD
            nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.LayerNorm):
            m.weight.fill_(1.0)
            m.bias.zero_()


@dataclass(frozen=True)
class TransformerConfig:
    vocab_size: int = 115  # p + 2: numbers, the op token, '='
    n_ctx: int = 4  # sequence length [a, op, b, =]; the positional table has exactly these rows
    n_layers: int = 1  # paper: 1 for + and x, 2 for - and /
    d_model: int = 128
    n_heads: int = 4  # d_head = d_model / n_heads = 32
    d_mlp: int = 512
    init: str = "authors"  # authors: Flax's defaults, as the authors' model; torch: torch's module defaults
    gelu: str = "tanh"  # tanh: Flax's nn.gelu (the tanh approximation); exact: the erf form, torch's default
    ln_eps: float = 1e-6  # Flax's LayerNorm epsilon; torch's default is 1e-5
    pos_rows: int | None = None  # rows of the positional table: None = n_ctx; the authors' code: vocab_size

    def __post_init__(self):
        for name in ("vocab_size", "n_ctx", "n_layers", "d_model", "n_heads", "d_mlp"):
            value = getattr(self, name)
            require(isinstance(value, int) and value >= 1, name, f"must be a positive integer, got {value!r}")
        require(self.d_model % self.n_heads == 0, "n_heads", f"must divide d_model={self.d_model}")
        require(self.init in INITS, "init", f"unknown initialisation {self.init!r}; allowed: {', '.join(INITS)}")
        require(self.gelu in GELUS, "gelu", f"unknown GELU {self.gelu!r}; allowed: {', '.join(GELUS)}")
        require(self.pos_rows is None or (isinstance(self.pos_rows, int) and self.pos_rows >= self.n_ctx),
                "pos_rows", f"must be None or an integer >= n_ctx={self.n_ctx}, got {self.pos_rows!r}")
        require(isinstance(self.ln_eps, float) and 0 < self.ln_eps < 1, "ln_eps",
                f"must be a float in (0, 1), got {self.ln_eps!r}")


class Attention(nn.Module):
    """Multi-head self-attention without a causal mask (only the last position is read)."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.query = nn.Linear(cfg.d_model, cfg.d_model)
        self.key = nn.Linear(cfg.d_model, cfg.d_model)
        self.value = nn.Linear(cfg.d_model, cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, x, last_only: bool = False):  # x: (B, T, d_model)
        """Attention output at every position, or (last_only) at the last position alone: (B, T|1, D)."""
        return self.mix(self.query(x[:, -1:] if last_only else x), self.key(x), self.value(x))

    def mix(self, q, k, v):  # q: (B, Tq, D), k and v: (B, T, D) -> (B, Tq, D)
        """Softmax attention of projected queries over projected keys and values, then the output map.

        Broadcast products instead of per-head matmuls: with T = 4 the (B*h) tiny bmm calls and the
        transpose copies around them cost more than the arithmetic.
        """
        B, Tq, D = q.shape
        h = self.n_heads
        q = q.view(B, Tq, 1, h, D // h)
        k = k.view(B, 1, -1, h, D // h)
        v = v.view(B, 1, -1, h, D // h)
        weights = torch.softmax((q * k).sum(-1) / math.sqrt(D // h), dim=2)  # (B, Tq, T, h)
        return self.out((weights.unsqueeze(-1) * v).sum(2).reshape(B, Tq, D))


class Block(nn.Module):
    """Post-LN block: x = LN(x + Attn(x)); x = LN(x + MLP(x))."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.attn = Attention(cfg)
        self.ln_attn = nn.LayerNorm(cfg.d_model, eps=cfg.ln_eps)
        self.mlp_in = nn.Linear(cfg.d_model, cfg.d_mlp)
        self.mlp_out = nn.Linear(cfg.d_mlp, cfg.d_model)
        self.ln_mlp = nn.LayerNorm(cfg.d_model, eps=cfg.ln_eps)
        self.gelu_approximate = "tanh" if cfg.gelu == "tanh" else "none"

    def forward(self, x, last_only: bool = False):
        return self.finish(x[:, -1:] if last_only else x, self.attn(x, last_only))

    def finish(self, residual, attended):
        """The block after attention: the two residual sums, LayerNorms and the MLP."""
        x = self.ln_attn(residual + attended)
        return self.ln_mlp(x + self.mlp_out(F.gelu(self.mlp_in(x), approximate=self.gelu_approximate)))


class Transformer(nn.Module):
    """Decoder-only transformer reading the answer's logits at the last position."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.pos_rows or cfg.n_ctx, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.unembed = nn.Linear(cfg.d_model, cfg.vocab_size)
        if cfg.init == "authors":
            init_authors(self)

    def forward(self, tokens):  # tokens: (B, T) long -> logits (B, vocab)
        # Only the last position is read, so the last block needs its query, residual and MLP there
        # alone (keys and values still see every position): the same logits for less work.
        last = len(self.blocks) - 1
        B, T = tokens.shape
        if B > self.cfg.vocab_size:
            x = self.first_block_from_tables(tokens, last_only=last == 0)
        else:
            x = self.blocks[0](self.embed(tokens) + self.pos.weight[:T], last_only=last == 0)
        for i, block in enumerate(self.blocks[1:], start=1):
            x = block(x, last_only=i == last)
        return self.unembed(x[:, -1])

    def first_block_from_tables(self, tokens, last_only: bool):
        """The first block, its Q/K/V projections taken from per-(token, position) tables.

        The first block's input at position t is embed[token] + pos[t], so its queries, keys and values
        are projections of one of vocab * T rows: project those once and gather, instead of projecting
        B * T rows (the caller uses this only when B > vocab). Same values, same gradients.
        """
        B, T = tokens.shape
        block = self.blocks[0]
        inputs = self.embed.weight[:, None] + self.pos.weight[None, :T]  # (vocab, T, D)
        rows = tokens * T + torch.arange(T, device=tokens.device)  # (B, T): row of (token, t) in the table
        keys = F.embedding(rows, block.attn.key(inputs).flatten(0, 1))  # (B, T, D)
        values = F.embedding(rows, block.attn.value(inputs).flatten(0, 1))
        if last_only:
            rows = rows[:, -1:]
        queries = F.embedding(rows, block.attn.query(inputs).flatten(0, 1))  # (B, Tq, D)
        residual = F.embedding(rows, inputs.flatten(0, 1))
        return block.finish(residual, block.attn.mix(queries, keys, values))


@dataclass(frozen=True)
class MLPConfig:
    vocab_size: int = 31  # input symbols
    n_inputs: int = 2  # symbols per example, each embedded then concatenated
    d_embed: int = 32
    d_hidden: int = 100
    n_layers: int = 3  # linear layers: n_layers - 1 hidden layers of width d_hidden
    n_classes: int = 31

    def __post_init__(self):
        for name in ("vocab_size", "n_inputs", "d_embed", "d_hidden", "n_classes"):
            value = getattr(self, name)
            require(isinstance(value, int) and value >= 1, name, f"must be a positive integer, got {value!r}")
        require(isinstance(self.n_layers, int) and self.n_layers >= 2, "n_layers",
                f"must be an integer >= 2, got {self.n_layers!r}")


class MLP(nn.Module):
    """Embedding, then a SiLU multi-layer perceptron (Liu, Zhong & Tegmark's LMN setup)."""

    def __init__(self, cfg: MLPConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_embed)
        widths = [cfg.n_inputs * cfg.d_embed] + [cfg.d_hidden] * (cfg.n_layers - 1) + [cfg.n_classes]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))

    def features(self, tokens):  # (B, n_inputs) long -> (B, n_inputs * d_embed)
        return self.embed(tokens).flatten(1)

    def forward(self, tokens):
        x = self.features(tokens)
        for layer in self.layers[:-1]:
            x = F.silu(layer(x))
        return self.layers[-1](x)
