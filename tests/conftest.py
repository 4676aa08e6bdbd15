import shutil

import pytest
import torch

from grok_lib.training.config import RunConfig
from grok_lib.store import Run, RunStore


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs")


@pytest.fixture
def tiny_config():
    """A run small enough to train in about a second on CPU."""
    return RunConfig(op="add", regime="ours", p=11, train_frac=0.5, d_model=16, n_heads=2, d_mlp=32, epochs=12)


# CUDA variants of the tests whose point is the GPU path; CI has no GPU, so there they are skipped
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=cuda)]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A 4-epoch tiny run (checkpoints at epochs 1, 2, 3, 4), trained once per test module."""
    from grok_lib.training.train import train

    config = RunConfig(op="add", regime="ours", p=11, train_frac=0.5, d_model=16, n_heads=2, d_mlp=32, epochs=4)
    return train(config, RunStore(tmp_path_factory.mktemp("runs")), progress=False)


@pytest.fixture
def run(trained_run, tmp_path):
    """A fresh copy of `trained_run` for one test to change."""
    path = tmp_path / "runs" / trained_run.path.name
    shutil.copytree(trained_run.path, path)
    return Run(path, trained_run.config)
