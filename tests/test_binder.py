"""The Binder configuration resolves and installs: a fresh venv, the binder requirements, the imports."""

import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BINDER = REPO / "binder"


def test_the_binder_files_ask_for_cpu_torch_python_311_and_the_notebooks_kernel():
    lines = [line.strip() for line in (BINDER / "requirements.txt").read_text().splitlines()]
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    assert "-e .[notebooks]" in lines and any(line.startswith("torch>=2.4") for line in lines)
    assert (BINDER / "runtime.txt").read_text().strip() == "python-3.11"
    assert "--name grok-complexity" in (BINDER / "postBuild").read_text()


@pytest.mark.slow
@pytest.mark.heavy
def test_the_binder_requirements_install_in_a_fresh_venv(tmp_path):
    """torch comes first from the CPU wheel this machine has (the PyTorch index is out of reach here, and
    unpinned PyPI torch is a multi-GB CUDA build); everything else resolves from the requirements."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    pip = [python, "-m", "pip", "install", "-q", "--retries", "0", "--timeout", "10"]
    torch_version = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__.split('+')[0])"],
                                   capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([*pip, f"torch=={torch_version}"], check=True, cwd=REPO)
    result = subprocess.run([*pip, "-r", str(BINDER / "requirements.txt")], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    check = subprocess.run([python, "-c", "import grok_lib.paper.explorer, ipywidgets, jupyterlab, papermill, torch; "
                            "print(torch.__version__)"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr[-3000:]
    assert check.stdout.strip().startswith(torch_version)
