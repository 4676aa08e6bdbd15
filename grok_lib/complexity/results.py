"""What the searches of Algorithms 1 and 2 produce: evaluated points and the accepted result at one eps."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from .coarse import CoarseGrained
from .coders import CodedSize


def point_key(ranks: tuple, delta: float, scales: tuple | None) -> tuple:
    """The cache key of one coarse-graining: its ranks and Delta, and its per-parameter multipliers of Delta
    when it has its own (a global Delta keeps the two-part key)."""
    return (ranks, delta) if scales is None else (ranks, delta, scales)


@dataclass(frozen=True)
class Evaluation:
    """One evaluated coarse-graining: its training loss, exact or (early exit) a lower bound."""

    tau: float | None
    delta: float
    ranks: tuple[int | None, ...]
    train_loss: float  # exact mean loss, or a lower bound when exact is False
    train_acc: float  # NaN when not exact or not a classifier
    exact: bool
    # per parameter, a multiplier of Delta (its own grid spacing: a per-group Delta, not in the paper);
    # None: one global Delta, Eq. 11
    scales: tuple[float, ...] | None = None

    @property
    def key(self) -> tuple:
        return point_key(self.ranks, self.delta, self.scales)


@dataclass(frozen=True)
class ComplexityResult:
    """The accepted coarse-graining of one network at one eps, and everything measured about it."""

    algorithm: int  # 1 (Bayesian optimization over tau and Delta) or 2 (quantization only)
    eps: float
    one_sided: bool
    sizes: dict[str, CodedSize]  # coder name (grok_lib.complexity.coders.CODERS) -> its size
    tau: float | None  # None: no low-rank step
    delta: float
    ranks: dict  # parameter name -> rank of its stored factors, or None (stored whole)
    reference_train_loss: float  # L(theta, D_train)
    train_loss: float  # L(theta_hat, D_train)
    train_acc: float
    test_loss: float  # NaN without test data
    test_acc: float
    n_train: int
    n_evaluations: int  # coarse-grainings evaluated by this search (cache hits included)
    weights: dict  # name -> coarse-grained float32 tensor
    coarse: CoarseGrained  # the stored representation that was compressed
    scales: tuple[float, ...] | None = None  # per parameter, its multiplier of Delta; None: one global Delta

    @property
    def key(self) -> tuple:
        """The key of the evaluation it accepted (Evaluation.key)."""
        return point_key(tuple(self.ranks.values()), self.delta, self.scales)

    @property
    def paper_bytes(self) -> int:
        """The paper's complexity: bz2(pickle(float32 arrays))."""
        return self.sizes["paper"].n_bytes

    @property
    def paper_bits(self) -> int:
        return self.sizes["paper"].n_bits

    @property
    def symbols_bytes(self) -> int:
        """The tighter coder of integer bin indices."""
        return self.sizes["symbols"].n_bytes

    @property
    def symbols_bits(self) -> int:
        return self.sizes["symbols"].n_bits

    @property
    def symbols_codec(self) -> str:
        return self.sizes["symbols"].codec

    def as_row(self) -> dict:
        """The scalar fields, for a table: {coder}_bytes, {coder}_bits, {coder}_codec per coder, ranks as JSON,
        scales as JSON (per parameter its multiplier of delta; {} for one global Delta)."""
        coded = {}
        for name, size in self.sizes.items():
            coded.update({f"{name}_bytes": size.n_bytes, f"{name}_bits": size.n_bits, f"{name}_codec": size.codec})
        return dict(algorithm=self.algorithm, eps=self.eps, **coded, tau=math.nan if self.tau is None else self.tau,
                    delta=self.delta, ranks=json.dumps(self.ranks),
                    scales=json.dumps({} if self.scales is None else dict(zip(self.ranks, self.scales))),
                    train_loss=self.train_loss,
                    train_acc=self.train_acc, test_loss=self.test_loss, test_acc=self.test_acc,
                    n_evaluations=self.n_evaluations)


# the column names of an answer in a table (grok_lib.complexity.tracking.answer_columns)
def size_column(prefix: str, coder: str, unit: str = "bytes") -> str:
    """The column of an answer's size under a coder: {prefix}{coder}_bytes (unit "bits": _bits)."""
    return f"{prefix}{coder}_{unit}"


def bound_column(prefix: str, coder: str) -> str:
    """The column of an answer's Eq. 4 bound with K from a coder."""
    return f"{prefix}bound_{coder}"


def length_column(prefix: str, coder: str) -> str:
    """The column of an answer's total description length (bits) with model bits from a coder."""
    return f"{prefix}description_length_{coder}_bits"
