"""grok_lib: the complexity dynamics of grokking (DeMoss et al.), as a reusable package.

    from grok_lib import measure_complexity, TIGHTEST   # grok_lib.complexity's public names, on first use
"""

__all__ = ["measure_complexity", "Measurement", "PAPER", "AUTHORS", "TIGHTEST", "EDGE", "ComplexityResult",
           "BayesConfig", "generalization_bound", "total_description_length"]


def __getattr__(name: str):
    # lazily, so that `python -m grok_lib --help` answers without importing torch
    if name in __all__:
        from . import complexity

        return getattr(complexity, name)
    raise AttributeError(f"module 'grok_lib' has no attribute {name!r}")
