"""Modular-arithmetic datasets: sequences [a, op, b, =] and the answer c."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import require
from .ops import OPS, get_op

def is_prime(n: int) -> bool:
    if n < 2:
        return False
    return all(n % d for d in range(2, int(n**0.5) + 1))


def check_op(op: str, p: int) -> None:
    """Validate an (op, modulus) pair, naming the offending argument."""
    record = get_op(op)
    require(isinstance(p, int) and not isinstance(p, bool) and p >= 3, "p",
            f"modulus must be an integer >= 3, got {p!r}")
    if record.needs_prime:
        require(is_prime(p), "p", f"{op} needs a prime modulus (every b != 0 invertible), got {p}")


def all_equations(op: str, p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every equation of `op` mod p: tokens (N, 4) = [a, op, b, =] and answers (N,).

    Vocabulary: numbers 0..p-1, the op token p, the '=' token p+1 (the answer functions: grok_lib.training.ops).
    For division b runs over 1..p-1 and c = a * b^(p-2) mod p (Fermat), so c*b = a mod p.
    """
    check_op(op, p)
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    a, b = a.flatten(), b.flatten()
    record = OPS[op]
    if record.skip_zero_b:
        keep = b != 0
        a, b = a[keep], b[keep]
    c = record.answer(a, b, p)
    tokens = torch.stack([a, torch.full_like(a, p), b, torch.full_like(a, p + 1)], dim=1)
    return tokens, c


@dataclass(frozen=True)
class Split:
    """A seeded train/test split of one op's equations."""

    train_x: torch.Tensor  # (N_train, 4) long
    train_y: torch.Tensor  # (N_train,) long
    test_x: torch.Tensor  # (N_test, 4) long
    test_y: torch.Tensor  # (N_test,) long
    vocab_size: int

    def to(self, device) -> Split:
        return Split(
            self.train_x.to(device), self.train_y.to(device),
            self.test_x.to(device), self.test_y.to(device), self.vocab_size,
        )


def seeded_split(n: int, train_frac: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Train and test indices of n examples: the first round(train_frac * n) of a permutation seeded with
    `seed` (every dataset of grok_lib is split this way)."""
    n_train = int(round(train_frac * n))
    require(0 < n_train < n, "train_frac", f"{train_frac} leaves an empty train or test set")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[:n_train], order[n_train:]


def make_split(op: str, p: int = 113, train_frac: float | None = None, seed: int = 0) -> Split:
    """Split all equations of `op` by a random permutation seeded with `seed`.

    `train_frac` defaults to the paper's fraction for the op (20 % for + and x, 30 % for - and /).
    """
    check_op(op, p)
    if train_frac is None:
        train_frac = OPS[op].train_frac
    require(0.0 < train_frac < 1.0, "train_frac", f"must lie in (0, 1), got {train_frac}")
    x, y = all_equations(op, p)
    train, test = seeded_split(len(x), train_frac, seed)
    return Split(x[train], y[train], x[test], y[test], vocab_size=p + 2)
