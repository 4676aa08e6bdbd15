import pytest

from grok_lib.config import RunConfig
from grok_lib.store import RunStore


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs")


@pytest.fixture
def tiny_config():
    """A run small enough to train in about a second on CPU."""
    return RunConfig(op="add", regime="ours", p=11, train_frac=0.5, d_model=16, n_heads=2, d_mlp=32, epochs=12)
