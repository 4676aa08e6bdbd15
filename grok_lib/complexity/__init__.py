"""Coarse-grained complexity of any network: Algorithms 1 and 2 of DeMoss et al., the edge search, the coders,
the generalization bound and the description length.

    from grok_lib.complexity import measure_complexity
    result = measure_complexity(model, loss_fn, (x_train, y_train), eps=1.0, search="edge")
"""

from .bounds import fit_rate_distortion, generalization_bound, total_description_length
from .results import ComplexityResult
from .search import SEARCHES, BayesConfig, measure_complexity

__all__ = ["measure_complexity", "ComplexityResult", "BayesConfig", "SEARCHES", "generalization_bound",
           "total_description_length", "fit_rate_distortion"]
