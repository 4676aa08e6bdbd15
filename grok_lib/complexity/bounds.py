"""Bounds and description lengths from a measured complexity: Eq. 4, Eq. 8 / Fig. 11, and the Fig. 4 fit.

Choices (the paper leaves them implicit):
* Eq. 4's logarithms are base 2, so every term under the root is in bits like K: (K + 2 log2 K +
  log2(1/delta)) / (2n). The Occam/Hoeffding argument behind it (Lotfi et al.) holds in nats, with
  log 1/P(h) <= K ln 2 + 2 ln K; the base-2 form is that numerator times 1/ln 2 >= 1, so it is a valid but
  looser bound. `units="nats"` gives the tighter K ln 2 + 2 ln K + ln(1/delta).
* The empirical risk R_hat is the 0-1 error rate on the training set of the coarse-grained network
  theta_hat, the hypothesis whose description length is K.
* The data term of the description length (Fig. 11) is sum over the training set of -log2 p(y|x) at
  theta_hat = n * mean cross-entropy (nats) / ln 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import require


def generalization_bound(train_error: float, complexity_bits: float, n_train: int, delta: float = 0.05,
                         units: str = "bits") -> float:
    """Eq. 4: R(h) <= R_hat(h) + sqrt((K + 2 log K + log(1/delta)) / (2n)), K in bits (base 2, see module doc)."""
    require(0.0 <= train_error <= 1.0, "train_error", f"is a 0-1 error rate in [0, 1], got {train_error!r}")
    require(math.isfinite(complexity_bits) and complexity_bits >= 1, "complexity_bits",
            f"must be a finite number of bits >= 1, got {complexity_bits!r}")
    require(isinstance(n_train, int) and n_train >= 1, "n_train", f"must be a positive integer, got {n_train!r}")
    require(0.0 < delta < 1.0, "delta", f"confidence parameter must lie in (0, 1), got {delta!r}")
    require(units in ("bits", "nats"), "units", f"must be 'bits' or 'nats', got {units!r}")
    k = complexity_bits
    if units == "bits":
        numerator = k + 2 * math.log2(k) + math.log2(1 / delta)
    else:
        numerator = k * math.log(2) + 2 * math.log(k) + math.log(1 / delta)
    return train_error + math.sqrt(numerator / (2 * n_train))


def data_bits(mean_loss_nats: float, n_train: int) -> float:
    """H(D | theta_hat) = sum_train -log2 p(y|x) = n * mean cross-entropy (nats) / ln 2."""
    require(math.isfinite(mean_loss_nats) and mean_loss_nats >= 0, "mean_loss_nats",
            f"must be a finite cross-entropy >= 0, got {mean_loss_nats!r}")
    require(isinstance(n_train, int) and n_train >= 1, "n_train", f"must be a positive integer, got {n_train!r}")
    return n_train * mean_loss_nats / math.log(2)


def total_description_length(complexity_bits: float, mean_loss_nats: float, n_train: int) -> float:
    """Fig. 11 / Eq. 8: model bits + data bits, K(theta_hat) + H(D | theta_hat)."""
    require(math.isfinite(complexity_bits) and complexity_bits >= 0, "complexity_bits",
            f"must be a finite number of bits >= 0, got {complexity_bits!r}")
    return complexity_bits + data_bits(mean_loss_nats, n_train)


@dataclass(frozen=True)
class RateDistortionFit:
    """Fig. 4's curve of best fit, complexity = a * ln(eps) + b, and its coefficient of determination."""

    a: float
    b: float
    r2: float

    def __call__(self, eps):
        return self.a * np.log(eps) + self.b


def fit_rate_distortion(eps, complexity) -> RateDistortionFit:
    """Least-squares fit of complexity = a * ln(eps) + b (Fig. 4), with R^2 = 1 - SS_res / SS_tot."""
    x = np.asarray(eps, dtype=float)
    y = np.asarray(complexity, dtype=float)
    require(x.shape == y.shape and x.ndim == 1, "complexity",
            f"needs one value per eps, got shapes {x.shape}, {y.shape}")
    require(len(np.unique(x)) >= 2, "eps", "needs at least two distinct distortion bounds to fit a line")
    require(bool(np.all(x > 0)) and bool(np.all(np.isfinite(x))), "eps", "distortion bounds must be finite and > 0")
    require(bool(np.all(np.isfinite(y))), "complexity", "values must be finite")
    a, b = np.polyfit(np.log(x), y, 1)
    residual = float(np.sum((y - (a * np.log(x) + b)) ** 2))
    total = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - residual / total if total > 0 else 1.0
    return RateDistortionFit(float(a), float(b), r2)
