"""The operations of the grokking experiment: one record per op, the only table keyed by op name.

An op is its symbol, its answer c(a, b) mod p, and the paper's per-op settings: train fraction (PROTOCOL
"Train fraction"), number of layers, and the weight-noise std delta of the `ours` regime (Table 1).
The last two ops exist only in the authors' code, which gives every op but + and x delta = 1e-3.

Adding an op is one entry here (and its answer function): the CLI's --op, the data, the model's depth and
the regimes' noise, the figures' labels and the README's numbers read this table, and the profiles take
their grid from it (PAPER_OPS, the entries with in_paper; the cpu profile's 2-layer ops by n_layers). Named
on purpose elsewhere, not lists of ops: x for the ci profile and Fig. 1 (the paper's Fig. 1 op), and the
values read off the paper's figures (grok_lib.paper.figures.PAPER_FIG1), keyed by the op they belong to.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable

import torch

from ..errors import require


def _inverse_table(p: int) -> torch.Tensor:
    return torch.tensor([pow(x, p - 2, p) for x in range(p)])  # Fermat: b^(p-2) = b^-1 mod a prime p


@dataclass(frozen=True)
class Op:
    name: str  # the key used in configs, stores and tables
    text: str  # plain-text form of the equation, for CLI help
    symbol: str  # the symbol figures print between a and b (or the whole expression)
    answer: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]  # c(a, b) mod p on tensors
    train_frac: float  # the paper's train fraction
    n_layers: int  # the paper's depth
    noise: float  # the paper's weight-noise std delta in the `ours` regime (Eq. 10)
    needs_prime: bool = False  # every b != 0 must be invertible mod p
    skip_zero_b: bool = False  # equations with b = 0 are left out
    in_paper: bool = False  # one of the paper's four ops: the profiles' grid (PAPER_OPS)

    def label(self, p: int | str = "p") -> str:
        """The equation as figures write it, e.g. 'a × b mod 113'."""
        expr = f"a {self.symbol} b" if len(self.symbol) == 1 else self.symbol
        return f"{expr} mod {p}"


OPS: dict[str, Op] = {op.name: op for op in (
    Op("add", "a+b", "+", lambda a, b, p: (a + b) % p, 0.2, 1, 1e-2, in_paper=True),
    Op("sub", "a-b", "−", lambda a, b, p: (a - b) % p, 0.3, 2, 1e-3, in_paper=True),
    Op("mul", "a*b", "×", lambda a, b, p: (a * b) % p, 0.2, 1, 1e-2, in_paper=True),
    Op("div", "a/b", "÷", lambda a, b, p: (a * _inverse_table(p)[b]) % p, 0.3, 2, 1e-3,
       needs_prime=True, skip_zero_b=True, in_paper=True),
    Op("sq_sum", "a^2+b^2", "a²+b²", lambda a, b, p: (a * a + b * b) % p, 0.4, 1, 1e-3),
    Op("quad", "a^2+ab+b^2", "a²+ab+b²", lambda a, b, p: (a * a + a * b + b * b) % p, 0.6, 1, 1e-3),
)}

PAPER_OPS: tuple[str, ...] = tuple(name for name, op in OPS.items() if op.in_paper)  # + - x /, in table order


def get_op(name: str) -> Op:
    """The record of op `name`; an unknown name is an error naming the allowed ones."""
    require(isinstance(name, str) and name in OPS, "op", f"unknown op {name!r}; allowed: {', '.join(OPS)}")
    return OPS[name]


def ordered(names) -> list[str]:
    """`names` in the table's order; an unknown name is an error, never silently dropped."""
    names = set(names)
    for name in names:
        get_op(name)
    return [name for name in OPS if name in names]
