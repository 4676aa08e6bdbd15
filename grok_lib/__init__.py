"""grok_lib: the complexity dynamics of grokking (DeMoss et al.), as a reusable package."""
