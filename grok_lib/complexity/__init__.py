"""Coarse-grained complexity of any network: Algorithms 1 and 2 of DeMoss et al., the edge search, the coders,
the generalization bound and the description length.

    from grok_lib.complexity import measure_complexity
    result = measure_complexity(model, loss_fn, (x_train, y_train), eps=1.0)                 # the paper's
    result = measure_complexity(model, loss_fn, (x_train, y_train), eps=1.0, how=TIGHTEST)   # a preset

How to measure is one value, a Measurement (grok_lib.complexity.measurement), with the presets PAPER,
AUTHORS, TIGHTEST and EDGE.
"""

from .bounds import fit_rate_distortion, generalization_bound, total_description_length
from .results import ComplexityResult
from .measurement import AUTHORS, EDGE, PAPER, PRESETS, SEARCHES, TIGHTEST, BayesConfig, Measurement
from .search import measure_complexity

__all__ = ["measure_complexity", "Measurement", "PAPER", "AUTHORS", "TIGHTEST", "EDGE", "PRESETS", "BayesConfig",
           "ComplexityResult", "SEARCHES", "generalization_bound", "total_description_length", "fit_rate_distortion"]
