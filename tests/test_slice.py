"""The GPU machine's one call (benchmarks/gpu_grid.sh -> grok_lib.paper.slice), rehearsed end to end on CPU
at the ci profile, so that the device call cannot fail on a bug."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from grok_lib.errors import GrokError
from grok_lib.paper.slice import largest_epochs
from grok_lib.store import REPO_ROOT


@pytest.mark.slow
def test_the_gpu_grid_script_runs_a_ci_slice_and_brings_back_its_tables(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path / "out"), PYTHON=sys.executable, PROFILE="ci", BUDGET_S="120",
               GROK_RUNS=str(tmp_path / "runs"))
    done = subprocess.run(["bash", "benchmarks/gpu_grid.sh"], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    info = json.loads((tmp_path / "out" / "slice.json").read_text())
    assert info["profile"] == "ci" and info["epochs"] >= 1 and set(info["seconds_per_epoch"]) == {"mul"}
    with tarfile.open(tmp_path / "out" / "tables.tar.gz") as tar:
        names = tar.getnames()
    assert "tables/PROVENANCE.json" in names
    assert sum(n.endswith("complexity.csv") for n in names) == info["runs"] == 2
    assert len([p for p in (tmp_path / "out").iterdir()]) <= 8  # what the device tool brings back


def test_the_slice_takes_the_largest_logged_epoch_that_fits():
    assert largest_epochs({"add": 0.01, "mul": 0.01}, budget_s=10.0, most=10_000) == 417  # floor(1.3^n) <= 500
    assert largest_epochs({"add": 0.001}, budget_s=1e9, most=1200) == 1200
    with pytest.raises(GrokError, match="budget_s"):
        largest_epochs({"add": 5.0}, budget_s=1.0, most=100)
