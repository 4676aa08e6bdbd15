"""The run store: one directory per run config, with metrics, safetensors checkpoints and resume state.

Layout of a run directory::

    config.json                      the run's config (a StoredConfig), all defaults resolved
    metrics.csv                      one row per logged epoch or step (tidy: columns are quantities)
    checkpoints/epoch_000123.safetensors   model weights at each logged epoch (LMN runs: step_000123)
    resume.safetensors               weights + optimizer + RNG state at the latest logged epoch

Transformer runs (grok_lib.training.config.RunConfig) and LMN runs (grok_lib.lmn.tasks.LMNRunConfig)
live side by side in one store; each config says what its checkpoints hold.

Every write goes to a temporary file in the same directory and is renamed into place, so a crash
never leaves a half-written file, and nothing is ever loaded with pickle.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import asdict, fields
from pathlib import Path

import pandas as pd
import torch

from .errors import CheckpointError, GrokError, require
from .paths import REPO_ROOT, default_root  # noqa: F401  (re-exported: the store's public names)
from .files import retrain_advice, load_metadata, load_tensors, run_lock, save_tensors, write_text_atomic

class StoredConfig:
    """JSON round trip and a content hash for the frozen config dataclasses kept as config.json.

    A subclass names its checkpoint unit (UNIT), whether training stores resume state (RESUMABLE), its
    length in units (`length`) and the module its checkpoints hold (`build_model`); the store needs no more.
    """

    KINDS: list = []  # every subclass, in definition order: read_config tries each
    UNIT = "epoch"
    RESUMABLE = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        StoredConfig.KINDS.append(cls)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, indent=1)

    # Fields added after runs were stored, with the value those older runs were trained with.
    LEGACY: dict = {}

    @classmethod
    def from_dict(cls, data: dict):
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise GrokError("config", f"unknown fields {sorted(unknown)}; allowed: {sorted(known)}")
        missing = known - set(data) - set(cls.LEGACY)
        if missing:
            raise GrokError("config", f"missing fields {sorted(missing)}: a stored config holds every field")
        try:
            return cls(**{**cls.LEGACY, **data})
        except GrokError:
            raise
        except (TypeError, ValueError, AttributeError) as err:  # a field of the wrong type
            raise GrokError("config", f"a field has the wrong type ({err})") from None

    def digest(self) -> str:
        """The first 10 hex digits of the SHA-256 of the JSON: equal configs, equal digests. A field that
        holds its LEGACY value is left out, so runs stored before that field existed keep their keys."""
        data = {k: v for k, v in asdict(self).items() if not (k in self.LEGACY and v == self.LEGACY[k])}
        return hashlib.sha256(json.dumps(data, sort_keys=True, indent=1).encode()).hexdigest()[:10]



class Run:
    """A run directory: read its config, metrics and checkpoints; write them atomically."""

    def __init__(self, path: Path, config: StoredConfig):
        self.path = Path(path)
        self.config = config
        self.unit = config.UNIT  # "epoch" or "step"

    def __repr__(self):
        return f"Run({str(self.path)!r})"

    # --- metrics -------------------------------------------------------------------------------
    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.csv"

    def metrics(self) -> pd.DataFrame:
        """One row per logged epoch (or step); empty before the first log."""
        if not self.metrics_path.exists():
            return pd.DataFrame({self.unit: pd.Series(dtype=int)})
        try:
            frame = pd.read_csv(self.metrics_path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            frame, problem = None, str(err).strip().splitlines()[0]
        else:
            # a row cut short leaves its last fields empty
            complete = self.unit in frame and not (frame[self.unit].isna().any() or frame.iloc[:, -1].isna().any())
            problem = None if complete else "an incomplete row"
        if problem is not None:
            raise CheckpointError("metrics", f"{self.metrics_path} is damaged ({problem}); repair it or restore "
                                  "it from a copy (nothing else in the run needs to change; the checkpoints "
                                  "and resume state are intact)")
        return frame

    def write_metrics(self, frame: pd.DataFrame) -> None:
        write_text_atomic(self.metrics_path, frame.to_csv(index=False))

    # --- checkpoints ---------------------------------------------------------------------------
    def checkpoint_path(self, at: int) -> Path:
        return self.path / "checkpoints" / f"{self.unit}_{at:06d}.safetensors"

    def checkpoints(self) -> list[int]:
        """The epochs (or steps) with a stored checkpoint, ascending."""
        folder = self.path / "checkpoints"
        if not folder.exists():
            return []
        pattern = re.compile(rf"{self.unit}_(\d+)\.safetensors")  # anything else in the folder is ignored
        return sorted(int(m.group(1)) for m in map(pattern.fullmatch, os.listdir(folder)) if m)

    def save_weights(self, at: int, weights: dict[str, torch.Tensor]) -> None:
        save_tensors(self.checkpoint_path(at), weights, {self.unit: str(at)})

    def load_weights(self, at: int) -> dict[str, torch.Tensor]:
        """The tensors of checkpoint `at`, checked: its checksum, and the epoch it says it holds."""
        path = self.checkpoint_path(at)
        tensors = load_tensors(path)
        said = load_metadata(path).get(self.unit)
        if said is not None and said != str(at):
            raise CheckpointError(self.unit, f"{path} holds {self.unit} {said}, not {at} (a file renamed or "
                                  f"copied over another); {retrain_advice(path)}")
        return tensors

    def load_model(self, at: int | None = None, device="cpu"):
        """The run's module (config.build_model()) with the weights of checkpoint `at` (default: the last)."""
        stored = self.checkpoints()
        if not stored:
            raise CheckpointError(self.unit, f"run {self.path} has no checkpoints yet")
        at = stored[-1] if at is None else at
        if at not in stored:
            raise GrokError(self.unit, f"no checkpoint at {self.unit} {at}; stored: {stored}")
        model = self.config.build_model()
        load_state_strict(model, self.load_weights(at), self.checkpoint_path(at))
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
        epoch = load_metadata(self.resume_path).get("epoch", "")
        if not (epoch.isascii() and epoch.isdigit()):
            raise CheckpointError("resume", f"{self.resume_path} has no readable epoch in its metadata "
                                  f"({epoch[:20]!r}); {retrain_advice(self.resume_path)}")
        epoch = int(epoch)
        # the resume state is written last, after the checkpoint and the metrics row of its epoch: a store
        # without them was damaged, and is not believed
        logged = self.metrics()[self.unit]
        missing = [what for what, there in (("checkpoint", epoch in self.checkpoints()),
                                            ("metrics row", bool((logged == epoch).any()))) if not there]
        if missing:
            raise CheckpointError("resume", f"{self.resume_path} says {self.unit} {epoch}, but the run has no "
                                  f"{' and no '.join(missing)} for it (a damaged store); restore the missing "
                                  f"file from a copy, or {retrain_advice(self.resume_path)}")
        return epoch

    def load_resume(self) -> dict[str, torch.Tensor]:
        return load_tensors(self.resume_path)

    def save_config(self) -> None:
        """Write config.json unless it is there (open_dir has checked that a stored one matches)."""
        if not (self.path / "config.json").exists():
            write_text_atomic(self.path / "config.json", self.config.to_json())

    def lock(self, what: str, wait: float = math.inf):
        """The run's lock for one kind of writer ("train", "complexity", ...): grok_lib.files.run_lock."""
        return run_lock(self.path, what, wait)

    @property
    def is_complete(self) -> bool:
        """Resumable runs: the resume state is at the last epoch; others: the last step is logged."""
        if self.config.RESUMABLE:
            return self.resume_epoch() >= self.config.length
        m = self.metrics()
        return len(m) > 0 and int(m[self.unit].max()) == self.config.length


def load_state_strict(module: torch.nn.Module, weights: dict[str, torch.Tensor], source) -> None:
    """load_state_dict, but a mismatch of names or shapes is reported as a CheckpointError."""
    expected = {k: (tuple(v.shape), v.dtype) for k, v in module.state_dict().items()}
    found = {k: (tuple(v.shape), v.dtype) for k, v in weights.items()}
    if expected != found:
        missing = sorted(set(expected) - set(found))
        extra = sorted(set(found) - set(expected))
        shapes = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
        raise CheckpointError("checkpoint", f"{source} does not match the model "
                              f"(missing {missing}, unexpected {extra}, wrong shape or dtype {shapes})")
    module.load_state_dict(weights)


class RunStore:
    """Runs keyed by config under one root directory. Asking for an existing run reuses it."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = default_root() if root is None else Path(root)

    def run(self, config: StoredConfig) -> Run:
        """The run for `config`, created if new; its config.json must match `config` exactly."""
        return self.open_dir(self.root / config.key(), config)

    def open_dir(self, path: Path, config: StoredConfig) -> Run:
        """The run in `path`; a config.json already there must equal `config`. Nothing is written: a
        writer calls Run.save_config() once it holds the run's lock, so a command that fails first leaves
        no directory behind."""
        path = Path(path)
        config_path = path / "config.json"
        if config_path.exists():
            stored = read_config(config_path)
            if stored != config:
                diff = {k: (getattr(stored, k), getattr(config, k))
                        for k in json.loads(config.to_json()) if getattr(stored, k) != getattr(config, k)}
                raise GrokError("run_dir", f"{path} holds a run with a different config "
                                f"(field: stored vs requested) {diff}; choose another directory")
        return Run(path, config)

    def runs(self, problems: list | None = None) -> list[Run]:
        """Every run stored under the root. A directory whose config cannot be read raises, or, when a
        `problems` list is given, is appended to it as (path, message) and skipped. A root that exists but
        is not a directory is refused."""
        require(not self.root.exists() or self.root.is_dir(), "store",
                f"{self.root} is not a directory (the run store: --store, else $GROK_RUNS, else runs/)")
        found = []
        for config_path in sorted(self.root.glob("*/config.json")):
            try:
                found.append(Run(config_path.parent, read_config(config_path)))
            except GrokError as err:
                if problems is None:
                    raise
                problems.append((config_path.parent, str(err)))
        return found


MAX_CONFIG_BYTES = 1 << 16  # a config.json is a few hundred bytes; anything far larger is not one


def read_config(path: Path) -> StoredConfig:
    """The config in a config.json, of whichever registered kind (StoredConfig.KINDS) its fields match."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise CheckpointError("config", f"{path} is unreadable ({str(err)[:120]})") from None
    require(len(text) <= MAX_CONFIG_BYTES, "config", f"{path} is {len(text)} characters long; a config is a "
            f"few hundred (at most {MAX_CONFIG_BYTES})")
    try:
        data = json.loads(text)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError) as err:
        # RecursionError: nesting too deep to parse; ValueError: e.g. an integer of thousands of digits
        raise CheckpointError("config", f"{path} is unreadable ({str(err)[:120]})") from None
    if not isinstance(data, dict) or not StoredConfig.KINDS:
        raise CheckpointError("config", f"{path} holds no known config")
    # the kind sharing the most fields; its from_dict names any field that does not belong
    kind = max(StoredConfig.KINDS, key=lambda k: len(set(data) & {f.name for f in fields(k)}))
    try:
        return kind.from_dict(data)
    except CheckpointError:
        raise
    except GrokError as err:  # a stored value that no config accepts: say which file holds it
        raise CheckpointError("config", f"{path} holds a bad value ({err})") from None
