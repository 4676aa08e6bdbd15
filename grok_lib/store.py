"""The run store: one directory per run config, with metrics, safetensors checkpoints and resume state.

Layout of a run directory::

    config.json                      the RunConfig, all defaults resolved
    metrics.csv                      one row per logged epoch (tidy: columns are quantities)
    checkpoints/epoch_000123.safetensors   model weights at each logged epoch
    resume.safetensors               weights + optimizer + RNG state at the latest logged epoch

Every write goes to a temporary file in the same directory and is renamed into place, so a crash
never leaves a half-written file, and nothing is ever loaded with pickle.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .training.config import RunConfig
from .errors import CheckpointError, GrokError

DEFAULT_ROOT = Path(os.environ.get("GROK_RUNS", "runs"))


def atomic_write(path: Path, write) -> None:
    """Call write(tmp_path), then rename tmp_path onto path (atomic on POSIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file; a missing, truncated or corrupt file raises CheckpointError."""
    if not Path(path).is_file():
        raise CheckpointError("checkpoint", f"{path} does not exist")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError("checkpoint", f"{path} is truncated or corrupt ({err}); delete it to retrain") from None


def load_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError("checkpoint", f"{path} is truncated or corrupt ({err}); delete it to retrain") from None


class Run:
    """A run directory: read its config, metrics and checkpoints; write them atomically."""

    def __init__(self, path: Path, config: RunConfig):
        self.path = Path(path)
        self.config = config

    def __repr__(self):
        return f"Run({str(self.path)!r})"

    # --- metrics -------------------------------------------------------------------------------
    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.csv"

    def metrics(self) -> pd.DataFrame:
        """One row per logged epoch; empty before the first log."""
        if not self.metrics_path.exists():
            return pd.DataFrame({"epoch": pd.Series(dtype=int)})
        return pd.read_csv(self.metrics_path)

    def write_metrics(self, frame: pd.DataFrame) -> None:
        write_text_atomic(self.metrics_path, frame.to_csv(index=False))

    # --- checkpoints ---------------------------------------------------------------------------
    def checkpoint_path(self, epoch: int) -> Path:
        return self.path / "checkpoints" / f"epoch_{epoch:06d}.safetensors"

    def checkpoint_epochs(self) -> list[int]:
        folder = self.path / "checkpoints"
        if not folder.exists():
            return []
        return sorted(int(p.stem.split("_")[1]) for p in folder.glob("epoch_*.safetensors"))

    def save_weights(self, epoch: int, weights: dict[str, torch.Tensor]) -> None:
        save_tensors(self.checkpoint_path(epoch), weights, {"epoch": str(epoch)})

    def load_weights(self, epoch: int) -> dict[str, torch.Tensor]:
        return load_tensors(self.checkpoint_path(epoch))

    def load_model(self, epoch: int | None = None, device="cpu"):
        """The transformer with the weights of `epoch` (default: the last checkpoint)."""
        from .training.model import Transformer

        epochs = self.checkpoint_epochs()
        if not epochs:
            raise CheckpointError("epoch", f"run {self.path} has no checkpoints yet")
        epoch = epochs[-1] if epoch is None else epoch
        if epoch not in epochs:
            raise GrokError("epoch", f"no checkpoint at epoch {epoch}; stored: {epochs}")
        model = Transformer(self.config.model_config())
        load_state_strict(model, self.load_weights(epoch), self.checkpoint_path(epoch))
        return model.to(device).eval()

    # --- resume state --------------------------------------------------------------------------
    @property
    def resume_path(self) -> Path:
        return self.path / "resume.safetensors"

    def save_resume(self, epoch: int, tensors: dict[str, torch.Tensor]) -> None:
        save_tensors(self.resume_path, tensors, {"epoch": str(epoch)})

    def resume_epoch(self) -> int:
        """The epoch the resume state was written at; 0 when the run has not started."""
        if not self.resume_path.exists():
            return 0
        return int(load_metadata(self.resume_path)["epoch"])

    def load_resume(self) -> dict[str, torch.Tensor]:
        return load_tensors(self.resume_path)

    @property
    def is_complete(self) -> bool:
        return self.resume_epoch() >= self.config.epochs


def load_state_strict(module: torch.nn.Module, weights: dict[str, torch.Tensor], source) -> None:
    """load_state_dict, but a mismatch of names or shapes is reported as a CheckpointError."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in weights.items()}
    if expected != found:
        missing = sorted(set(expected) - set(found))
        extra = sorted(set(found) - set(expected))
        shapes = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
        raise CheckpointError("checkpoint", f"{source} does not match the model "
                              f"(missing {missing}, unexpected {extra}, wrong shape {shapes})")
    module.load_state_dict(weights)


class RunStore:
    """Runs keyed by config under one root directory. Asking for an existing run reuses it."""

    def __init__(self, root: str | os.PathLike = DEFAULT_ROOT):
        self.root = Path(root)

    def run(self, config: RunConfig) -> Run:
        """The run for `config`, created if new; its config.json must match `config` exactly."""
        return self.open_dir(self.root / config.key(), config)

    def open_dir(self, path: Path, config: RunConfig) -> Run:
        path = Path(path)
        config_path = path / "config.json"
        if config_path.exists():
            stored = read_config(config_path)
            if stored != config:
                diff = {k: (getattr(stored, k), getattr(config, k))
                        for k in json.loads(config.to_json()) if getattr(stored, k) != getattr(config, k)}
                raise GrokError("run_dir", f"{path} holds a run with a different config "
                                f"(field: stored vs requested) {diff}; choose another directory")
        else:
            write_text_atomic(config_path, config.to_json())
        return Run(path, config)

    def runs(self) -> list[Run]:
        """Every run stored under the root."""
        found = []
        for config_path in sorted(self.root.glob("*/config.json")):
            found.append(Run(config_path.parent, read_config(config_path)))
        return found

    def find(self, **criteria) -> list[Run]:
        """Stored runs whose config fields equal the given values, e.g. find(op="mul", regime="ours")."""
        return [r for r in self.runs() if all(getattr(r.config, k) == v for k, v in criteria.items())]


def read_config(path: Path) -> RunConfig:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError("config", f"{path} is unreadable ({err})") from None
    return RunConfig.from_dict(data)
