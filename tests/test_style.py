"""The package passes ruff with the configuration in pyproject.toml ([tool.ruff]: pycodestyle, pyflakes,
bugbear and pyupgrade at 120 columns, each ignore explained there)."""

import shutil
import subprocess
import sys

import pytest

from grok_lib.store import REPO_ROOT


def test_ruff_finds_nothing_in_the_package():
    if shutil.which("ruff") is None and subprocess.run([sys.executable, "-m", "ruff", "--version"],
                                                        capture_output=True).returncode != 0:
        pytest.skip("ruff is not installed (pip install -e '.[dev]')")
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", "grok_lib"],
                            cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-1000:]
