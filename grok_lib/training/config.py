"""RunConfig: everything that determines a training run, validated once, with the paper's defaults."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .data import check_op
from .ops import OPS, get_op
from ..errors import require
from ..store import StoredConfig
from .model import Transformer, TransformerConfig

# Regime presets (paper Sec. 5 and Table 1): weight decay, weight-noise std delta, spectral beta.
REGIMES = ("none", "wd", "ours")
POS_TABLES = ("context", "vocab")


# The CPU demo: a small transformer that memorizes well before it generalizes (README, "CPU demo"); the cpu
# profile takes its modulus, train fraction, width and epochs (chosen with benchmarks/init_grokking.py).
DEMO = dict(op="add", regime="wd", p=59, train_frac=0.3, d_model=128, d_mlp=512, n_layers=1, epochs=1200)


def available_memory() -> int:
    """Bytes of memory free for a new run (MemAvailable of /proc/meminfo; unbounded where unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 2**62


def regime_preset(regime: str, op: str) -> dict[str, float]:
    """wd / noise / beta of a named regime: none (0, 0, 0), wd (1, 0, 0), ours (1, delta_op, 0.1)."""
    require(regime in REGIMES, "regime", f"unknown regime {regime!r}; allowed: {', '.join(REGIMES)}")
    return {
        "none": dict(weight_decay=0.0, noise=0.0, beta=0.0),
        "wd": dict(weight_decay=1.0, noise=0.0, beta=0.0),
        "ours": dict(weight_decay=1.0, noise=get_op(op).noise, beta=0.1),
    }[regime]


@dataclass(frozen=True)
class RunConfig(StoredConfig):
    """One training run. Fields left as None take the paper's value for the op and regime."""

    op: str = "mul"
    regime: str = "ours"  # none | wd | ours: presets for weight_decay, noise and beta
    seed: int = 0  # seeds the split, the initialization, the shuffling and the weight noise
    p: int = 113
    train_frac: float | None = None  # paper: 0.2 for + and x, 0.3 for - and /
    epochs: int = 10_000  # the paper's x-axis "steps" are epochs
    lr: float = 1e-3
    weight_decay: float | None = None  # AdamW's decoupled decay
    noise: float | None = None  # weight-noise std delta (Eq. 10)
    beta: float | None = None  # spectral-entropy penalty scale (Eq. 16)
    batch_size: int | None = None  # default min(512, N_train // 2)
    n_layers: int | None = None  # paper: 1 for + and x, 2 for - and /
    d_model: int = 128
    n_heads: int = 4
    d_mlp: int = 512
    # The paper does not say; the authors' code (Flax) decides: its initialisation, tanh GELU, LayerNorm eps
    init: str = "authors"  # authors (Flax's defaults) | torch (torch's module defaults)
    gelu: str = "tanh"  # tanh | exact
    ln_eps: float = 1e-6
    # Departure (PROTOCOL): the positional table has the 4 rows a sequence uses ("context"); the code's has
    # vocab-size rows ("vocab"), whose unused rows keep their initial noise and inflate complexity
    pos_table: str = "context"

    # config.json files written before these fields existed describe torch-default models
    LEGACY = {"init": "torch", "gelu": "exact", "ln_eps": 1e-5, "pos_table": "context"}

    def __post_init__(self):
        check_op(self.op, self.p)
        preset = regime_preset(self.regime, self.op)
        defaults = dict(preset, train_frac=OPS[self.op].train_frac, n_layers=OPS[self.op].n_layers)
        for name, value in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        require(isinstance(self.seed, int) and not isinstance(self.seed, bool) and 0 <= self.seed < 2**63, "seed",
                f"must be an integer in [0, 2^63), got {self.seed!r}")
        require(0.0 < self.train_frac < 1.0, "train_frac", f"must lie in (0, 1), got {self.train_frac}")
        require(isinstance(self.epochs, int) and self.epochs > 0, "epochs",
                f"must be a positive integer, got {self.epochs!r}")
        require(math.isfinite(self.lr) and self.lr > 0, "lr", f"must be a positive number, got {self.lr}")
        for name in ("weight_decay", "noise", "beta"):
            value = getattr(self, name)
            require(math.isfinite(value) and value >= 0, name, f"must be a finite number >= 0, got {value}")
        if self.batch_size is not None:
            require(isinstance(self.batch_size, int) and self.batch_size >= 1, "batch_size",
                    f"must be a positive integer, got {self.batch_size!r}")
        require(self.pos_table in POS_TABLES, "pos_table",
                f"unknown positional table {self.pos_table!r}; allowed: {', '.join(POS_TABLES)}")
        self.model_config()  # validates the architecture fields
        self.check_size()

    def check_size(self) -> None:
        """Refuse, before anything is allocated, a run whose data and weights cannot fit in this machine's
        memory (the equations' token tensors, and the model with its AdamW moments and gradients)."""
        equations = self.p * self.p * 5 * 8  # tokens (N, 4) and answers (N,), int64
        d, layers, mlp, vocab = self.d_model, self.n_layers, self.d_mlp, self.p + 2
        weights = 4 * (2 * vocab * d + layers * (4 * d * d + 2 * d * mlp))  # float32
        needed = equations + 4 * weights  # weights, gradients, two AdamW moments
        available = available_memory()
        require(needed < available, "p" if equations > 4 * weights else "d_model",
                f"this run needs about {needed / 2**30:.1f} GiB (p = {self.p}, d_model = {self.d_model}, "
                f"d_mlp = {self.d_mlp}, {self.n_layers} layer(s)) but {available / 2**30:.1f} GiB are free")

    UNIT = "epoch"  # checkpoints and metrics are per epoch
    RESUMABLE = True  # training stores resume state (grok_lib.training.train)

    @property
    def length(self) -> int:
        return self.epochs

    def build_model(self):
        return Transformer(self.model_config())

    def model_config(self) -> TransformerConfig:
        return TransformerConfig(vocab_size=self.p + 2, n_ctx=4, n_layers=self.n_layers,
                                 d_model=self.d_model, n_heads=self.n_heads, d_mlp=self.d_mlp,
                                 init=self.init, gelu=self.gelu, ln_eps=self.ln_eps,
                                 pos_rows=self.p + 2 if self.pos_table == "vocab" else None)

    def batch_size_for(self, n_train: int) -> int:
        return self.batch_size or max(1, min(512, n_train // 2))

    def key(self) -> str:
        """Directory name: readable prefix plus a hash of every field, so any change makes a new run."""
        return f"{self.op}-{self.regime}-s{self.seed}-{self.digest()}"

    def with_(self, **changes) -> RunConfig:
        return replace(self, **changes)
