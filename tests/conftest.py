import pytest
import torch

from grok_lib.training.config import RunConfig
from grok_lib.store import RunStore


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
