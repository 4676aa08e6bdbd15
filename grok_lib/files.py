"""Files of the run store, written so that nothing is ever half-written or lost: atomic writes (a temporary
file renamed into place), safetensors tensors (never pickle), and the per-run writer locks."""

from __future__ import annotations

import math
import os
import shutil
import socket
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import CheckpointError, GrokError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def atomic_write(path: Path, write) -> None:
    """Call write(tmp_path), then rename tmp_path onto path (atomic on POSIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)  # as an ordinary file would be, not mkstemp's 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def copy_atomic(source: Path, path: Path) -> None:
    """Copy the file `source` to `path` (through a temporary file and a rename)."""
    atomic_write(path, lambda tmp: shutil.copyfile(source, tmp))


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def retrain_advice(path: Path) -> str:
    """What to do about a corrupt file of a run: retraining from epoch 0 rewrites every checkpoint (the
    same config reproduces the run), and training restarts from 0 exactly when resume.safetensors is gone."""
    path = Path(path)
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    resume = run_dir / "resume.safetensors"
    if path == resume:
        return "delete it to retrain the run from epoch 0"
    if path.name.startswith("step_"):  # an LMN run: no resume state, finished when its last step is logged
        return f"delete it and {run_dir / 'metrics.csv'} to retrain the run from step 0"
    return f"delete it and {resume} to retrain the run from epoch 0"


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file; a missing, truncated or corrupt file raises CheckpointError."""
    if not Path(path).is_file():
        raise CheckpointError("checkpoint", f"{path} does not exist")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError("checkpoint", f"{path} is truncated or corrupt ({err}); {retrain_advice(path)}") from None


def load_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError("checkpoint", f"{path} is truncated or corrupt ({err}); {retrain_advice(path)}") from None


LOCK_POLL_S = 0.5


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    try:  # a zombie has exited
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return True


# the files each kind of writer owns: holding its lock, their temporary files are a dead writer's leftovers
OWNED = {"train": ("config.json", "metrics.csv", "resume.safetensors", "checkpoints/"),
         "complexity": ("complexity.csv", "complexity.json"), "rate_distortion": ("rate_distortion.csv",)}


def _remove_leftovers(path: Path, what: str) -> None:
    for owned in OWNED.get(what, ()):
        folder, name = (path / owned, "") if owned.endswith("/") else (path, owned)
        if folder.is_dir():
            for tmp in folder.glob(f".{name}*.tmp"):
                tmp.unlink(missing_ok=True)


@contextmanager
def run_lock(path: Path, what: str, wait: float = math.inf):
    """Hold `path`/.lock-`what` (pid, host and start time inside) while writing; O_EXCL creation makes
    taking it atomic, also on a shared filesystem. A lock left by a dead process on this host is reported
    and taken over; a live holder is waited for up to `wait` seconds, then named in a GrokError."""
    path.mkdir(parents=True, exist_ok=True)
    lock = path / f".lock-{what}"
    me = f"{os.getpid()} {socket.gethostname()} {time.strftime('%Y-%m-%dT%H:%M:%S')}"
    deadline, told = time.monotonic() + wait, False
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = lock.read_text(errors="replace").split() if lock.exists() else []
            pid = int(holder[0]) if holder and holder[0].isdigit() else None
            host = holder[1] if len(holder) > 1 else "?"
            if pid is not None and host == socket.gethostname() and not _process_alive(pid):
                print(f"{lock}: stale lock of process {pid} (gone) taken over", file=sys.stderr)
                lock.unlink(missing_ok=True)
                continue
            if time.monotonic() >= deadline:
                raise GrokError("run", f"{path} is being written ({what}) by process {pid} on {host} since "
                                f"{holder[2] if len(holder) > 2 else '?'}; wait for it, or delete {lock} if "
                                "that process no longer exists") from None
            if not told:
                print(f"{path.name}: waiting for process {pid} on {host} ({what})", file=sys.stderr)
                told = True
            time.sleep(LOCK_POLL_S)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(me + "\n")
        break
    _remove_leftovers(path, what)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
