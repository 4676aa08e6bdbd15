"""Where things live, without importing torch (the CLI's top-level help reads it): the checkout and the
default run store."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout that holds grok_lib/ (when it is one)


def default_root() -> Path:
    """The one default run store: $GROK_RUNS when set and not empty, else runs/ at the repository root
    (any working directory), else ./runs for an installed package."""
    if os.environ.get("GROK_RUNS", "").strip():
        return Path(os.environ["GROK_RUNS"])
    return REPO_ROOT / "runs" if (REPO_ROOT / "pyproject.toml").is_file() else Path("runs")
