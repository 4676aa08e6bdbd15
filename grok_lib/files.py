"""Files of the run store, written so that nothing is ever half-written or lost: atomic writes (a temporary
file renamed into place), safetensors tensors (never pickle), and the per-run writer locks."""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import CheckpointError, GrokError
from .log import get as get_logger

LOG = get_logger(__name__)


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


CHECKSUM = "sha256"  # the metadata key of a tensor file's checksum
LEGACY_KEYS = {"epoch", "step"}  # the metadata of the files written before checksums: loaded unchecked


def tensors_digest(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
    """sha256 over the metadata (but the checksum) and every tensor's name, dtype, shape and bytes, in name
    order: a flipped bit anywhere in what a load returns changes it."""
    digest = hashlib.sha256()
    for key in sorted(k for k in metadata if k != CHECKSUM):
        digest.update(f"{key}={metadata[key]}\n".encode())
    for name in sorted(tensors):
        value = tensors[name].detach().cpu()
        digest.update(f"{name} {value.dtype} {tuple(value.shape)}\n".encode())
        digest.update(value.reshape(-1).contiguous().view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """A safetensors file written atomically, its checksum (`tensors_digest`) in its metadata."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    metadata = dict(metadata or {})
    metadata[CHECKSUM] = tensors_digest(tensors, metadata)
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
    """Load a safetensors file; a missing, truncated or corrupt file, or one whose checksum does not match
    its contents, raises CheckpointError (files written before checksums were kept, whose metadata is only
    an epoch or step, load unchecked)."""
    if not Path(path).is_file():
        raise CheckpointError("checkpoint", f"{path} does not exist")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError("checkpoint", f"{path} is truncated or corrupt ({err}); {retrain_advice(path)}") from None
    metadata = load_metadata(path)
    legacy = CHECKSUM not in metadata and set(metadata) <= LEGACY_KEYS  # written before checksums were kept
    if not legacy and metadata.get(CHECKSUM) != tensors_digest(tensors, metadata):
        raise CheckpointError("checkpoint", f"{path} does not match its checksum (a damaged file); "
                              f"{retrain_advice(path)}")
    return tensors


def load_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError("checkpoint", f"{path} is truncated or corrupt ({err}); {retrain_advice(path)}") from None


LOCK_POLL_S = 0.5
# a lock file is created, then written at once: one still empty or unreadable after this long was left by
# a process killed in between (or is not ours), and is taken over
LOCK_GRACE_S = 5.0


def _started_after(pid: int, stamp: str) -> bool:
    """Whether process `pid` of this host started after the time `stamp` (the lock's, %Y-%m-%dT%H:%M:%S):
    then it is not the process that took the lock, but another that got its number later."""
    try:
        taken = time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%S"))
        with open(f"/proc/{pid}/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime, in clock ticks since boot
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration, OverflowError):
        return False
    return boot + ticks / os.sysconf("SC_CLK_TCK") > taken + 1.0


def _stale(lock: Path, holder: list[str]) -> str | None:
    """Why the lock at `lock` (its words: pid, host, time) is stale, or None while its holder may be live."""
    pid = int(holder[0]) if holder and holder[0].isdigit() else None
    if pid is None or len(holder) < 3:
        try:
            age = time.time() - lock.stat().st_mtime
        except OSError:
            return None
        return f"empty or unreadable for {age:.0f} s" if age > LOCK_GRACE_S else None
    if holder[1] != socket.gethostname():
        return None  # another host's process: cannot be checked from here
    if not _process_alive(pid):
        return f"process {pid} is gone"
    if _started_after(pid, holder[2]):
        return f"process {pid} started after the lock was taken: another program got its number"
    return None


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
            try:
                holder = lock.read_text(errors="replace").split()[:3]
            except FileNotFoundError:
                continue  # released meanwhile
            why = _stale(lock, holder)
            if why is not None:
                LOG.warning(f"{lock}: stale lock ({why}) taken over")
                lock.unlink(missing_ok=True)
                continue
            pid = holder[0] if holder else "?"
            host = holder[1] if len(holder) > 1 else "?"
            if time.monotonic() >= deadline:
                raise GrokError("run", f"{path} is being written ({what}) by process {pid} on {host} since "
                                f"{holder[2] if len(holder) > 2 else '?'}; wait for it, or delete {lock} if "
                                "that process no longer exists") from None
            if not told:
                LOG.warning(f"{path.name}: waiting for process {pid} on {host} ({what}; Ctrl-C to stop; if that "
                            f"process is not writing this run, delete {lock})")
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
