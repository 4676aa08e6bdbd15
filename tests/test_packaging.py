"""The conda file delegates to pyproject, and the CI script runs the README's test command."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_is_conda_forge_only_and_delegates_to_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    pip_entries = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    assert pip_entries == [["-e .[notebooks,dev]"]]
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {"notebooks", "dev"} <= set(extras)
    python = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
    assert python == ["python=3.11"]


def test_torch_is_declared_as_a_range_admitting_the_gpu_machines_2_11():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch = next(d for d in deps if d.startswith("torch"))
    assert "==" not in torch and ">=2.4" in torch


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make reproduce" in readme
    assert re.search(r"^make test$", (ROOT / ".ci/run").read_text(), re.M)
