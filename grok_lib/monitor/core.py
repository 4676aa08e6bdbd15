"""ComplexityMonitor: the complexity of any PyTorch network, measured while it trains, off the training thread.

The training loop calls `monitor.step(step)`; on a scheduled step the weights are copied to the CPU and
serialized (the only work done on the training thread), and a worker process measures them: the
coarse-grained complexity (measure_complexity, by default the deterministic edge search), the Eq. 4 bound,
the network's own losses, L2 norm, spectral entropy and effective rank, and LMN for an MLP. Each result is
written to every sink (CSV, TensorBoard, wandb) as it arrives, so an interrupted loop keeps everything
measured so far. `close()` (or leaving the `with` block) waits for the measurements still pending.

The model reaches the worker by pickling: the module object is pickled once, with its weights, when the
monitor is made (its class must be importable: defined in a module, or in a script run as
`python script.py` whose training code is under `if __name__ == "__main__":`, as any spawned process needs);
each snapshot then sends only the state dict. The loss function must be picklable too (F.cross_entropy, a
module-level function or an nn.Module loss; not a lambda).
"""

from __future__ import annotations

import copy
import dataclasses
import multiprocessing
import os
import pickle
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pandas as pd
import torch

from ..complexity.problem import check_eps
from ..complexity.measurement import PAPER, Measurement
from ..errors import GrokError, require
from ..log import get as get_logger
from .schedule import Schedule
from .sinks import CsvSink, TensorBoardSink, WandbSink
from .worker import init_worker, measure_snapshot, serialize

LOG = get_logger(__name__)
DEFAULT_OPTIONS = {"search": "edge"}  # deterministic, about a tenth of a second on a small MLP
# measure_complexity's keyword options the monitor passes through (the rest are the monitor's own arguments)
OPTIONS = ("how",) + tuple(f.name for f in dataclasses.fields(Measurement))  # `how`, or fields of it changed


def _cpu_pair(data, field: str):
    require(isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data),
            field, "must be an (inputs, targets) pair of tensors")
    require(len(data[0]) == len(data[1]) and len(data[0]) > 0, field,
            f"inputs and targets need the same, non-zero length, got {len(data[0])} and {len(data[1])}")
    return data[0].detach().cpu(), data[1].detach().cpu()


class ComplexityMonitor:
    """Measures a training network's complexity at scheduled steps in a worker process; see the module doc.

    model: the nn.Module being trained (any device); loss_fn(outputs, targets): the MEAN loss over a batch.
    train_data, test_data: (inputs, targets) tensor pairs; complexity is measured on all of train_data.
    schedule: "log" (steps floor(1.3^n): 1, 2, 3, 4, 6, 8, ...), every N steps (an int), a list of steps, or
        None (only `measure()` calls); grok_lib.monitor.schedule.Schedule.
    eps: the distortion bound (nats of mean loss) of the coarse-graining; options: how to measure, as
        measure_complexity takes it: {"how": a Measurement (e.g. TIGHTEST)} and/or fields of it changed
        (default {"search": "edge"}; {"algorithm": 2} is Algorithm 2, quantization only).
    csv, tensorboard: a CSV file, a TensorBoard log folder to write; wandb: True or a project name for a
        wandb run in offline mode; sinks: more sink objects (grok_lib.monitor.sinks).
    model_stats: also the network's own losses, accuracies, L2 norm, spectral entropy and effective rank.
    lmn_samples: LMN on this many training inputs, for an MLP of nn.Linear layers (0: never).
    workers: worker processes (one torch thread each); nice: how much lower their priority is than the
        training process's (0: the same); max_queued_mb: snapshots waiting in memory at most, in MiB (step()
        waits for a free slot beyond it; one snapshot is always let through).
    bound_delta: Eq. 4's confidence parameter.
    """

    def __init__(self, model: torch.nn.Module, loss_fn, train_data, *, test_data=None,
                 schedule: int | str | list[int] | None = "log", eps: float = 1.0, options: dict | None = None,
                 csv: str | Path | None = None, tensorboard: str | Path | None = None,
                 wandb: bool | str = False, sinks: tuple = (), model_stats: bool = True, lmn_samples: int = 64,
                 workers: int = 1, nice: int = 10, max_queued_mb: float = 1024.0, bound_delta: float = 0.05):
        require(isinstance(model, torch.nn.Module), "model", f"must be a torch.nn.Module, got {type(model).__name__}")
        require(callable(loss_fn), "loss_fn", "must be callable as loss_fn(outputs, targets) -> mean loss")
        train = _cpu_pair(train_data, "train_data")
        test = None if test_data is None else _cpu_pair(test_data, "test_data")
        self.schedule = Schedule(schedule)
        check_eps(eps)
        options = dict(DEFAULT_OPTIONS if options is None else options)
        unknown = sorted(set(options) - set(OPTIONS))
        require(not unknown, "options", f"not options of measure_complexity: {', '.join(unknown)}; "
                f"allowed: {', '.join(OPTIONS)}")
        fields = {k: v for k, v in options.items() if k != "how"}
        options = {"how": options.get("how", PAPER).but(**fields)}  # one Measurement, validated here, once
        for name, value, low in (("workers", workers, 1), ("nice", nice, 0)):
            require(isinstance(value, int) and not isinstance(value, bool) and value >= low, name,
                    f"must be an integer >= {low}, got {value!r}")
        require(nice <= 19, "nice", f"must lie in 0..19, got {nice}")
        require(isinstance(max_queued_mb, (int, float)) and max_queued_mb > 0, "max_queued_mb",
                f"must be a number of MiB > 0, got {max_queued_mb!r}")
        require(isinstance(lmn_samples, int) and (lmn_samples == 0 or lmn_samples >= 2), "lmn_samples",
                f"must be 0 (no LMN) or an integer >= 2, got {lmn_samples!r}")
        require(0.0 < bound_delta < 1.0, "bound_delta", f"must lie in (0, 1), got {bound_delta!r}")
        setup = dict(model=copy.deepcopy(model).cpu(), loss_fn=loss_fn, train=train, test=test, eps=float(eps),
                     options=options, model_stats=bool(model_stats), lmn_samples=lmn_samples, bound_delta=bound_delta)
        try:
            pickle.dumps(setup)
        except Exception as err:
            raise GrokError("model", f"the model and loss_fn must be picklable to reach the worker process ({err}); "
                            "define the model's class and the loss function at module level, not a lambda") from None
        self.sinks = list(sinks)
        if csv is not None:
            self.sinks.append(CsvSink(csv))
        if tensorboard is not None:
            self.sinks.append(TensorBoardSink(tensorboard))
        if wandb:
            self.sinks.append(WandbSink(**({} if wandb is True else {"project": str(wandb)})))
        self.model, self.max_queued, self.nice = model, int(max_queued_mb * 2**20), nice
        self._niced: set[int] = set()
        self.rows: list[dict] = []  # every result, in arrival order
        self.failures: list[tuple[int, BaseException]] = []  # (step, error) of measurements or writes that failed
        self.t0, self._unix0 = time.perf_counter(), time.time()
        self._lock = threading.Lock()
        self._pending: dict[Future, tuple[int, float, int]] = {}  # step, when taken, bytes
        self._closed = self._broken = False
        self._start = lambda: ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                                  initializer=init_worker, initargs=(setup, 1))
        self._executor: ProcessPoolExecutor | None = None
        if schedule is not None:  # the worker starts now: its imports (seconds) overlap the first steps
            self._executor = self._start()
            self._executor.submit(int)
            self._lower_priority()

    def step(self, step: int) -> bool:
        """Call once per training step (or every few): snapshots and queues a measurement if `step` is due
        by the schedule. Returns whether it did."""
        if not self.schedule.due(step):
            return False
        return self.measure(step)

    def measure(self, step: int, state: dict[str, torch.Tensor] | None = None) -> bool:
        """Queue a measurement of the model's weights now (or of `state`, a state dict) as step `step`."""
        require(not self._closed, "monitor", "is closed")
        require(isinstance(step, int) and not isinstance(step, bool), "step", f"must be an integer, got {step!r}")
        if self._broken:
            return False
        payload = serialize(self.model.state_dict() if state is None else state)
        taken = time.perf_counter()
        while self._pending and self._queued_bytes() + len(payload) > self.max_queued:  # bounded memory
            with self._lock:
                queued = list(self._pending)
            wait(queued, return_when=FIRST_COMPLETED)
        if self._executor is None:
            self._executor = self._start()
        try:
            future = self._executor.submit(measure_snapshot, step, payload)
            self._lower_priority()
        except BrokenProcessPool as err:
            self._broken = True
            LOG.warning(f"monitor: the worker process died ({err}); no more measurements")
            return False
        with self._lock:
            self._pending[future] = (step, taken, len(payload))
        future.add_done_callback(self._arrived)
        return True

    def _queued_bytes(self) -> int:
        with self._lock:
            return sum(size for _, _, size in self._pending.values())

    def _lower_priority(self) -> None:
        """Raise the niceness of each worker process just started by `nice` (from here, at once: in the worker
        itself it would come after its imports, seconds of CPU that would compete with training)."""
        for pid in set(getattr(self._executor, "_processes", None) or ()) - self._niced:
            self._niced.add(pid)
            if self.nice:
                try:
                    os.setpriority(os.PRIO_PROCESS, pid, min(19, os.getpriority(os.PRIO_PROCESS, 0) + self.nice))
                except OSError:  # gone already, or not allowed: it measures at the training's priority
                    pass

    def _arrived(self, future: Future) -> None:
        """A result back from the worker (on the executor's thread): written to every sink at once."""
        with self._lock:
            step, taken, _ = self._pending.pop(future)
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            self.failures.append((step, error))
            if not isinstance(error, BrokenProcessPool):
                LOG.warning(f"monitor: step {step} was not measured: {type(error).__name__}: {error}")
            elif not self._broken:  # said once: every later snapshot fails the same way
                self._broken = True
                LOG.warning(f"monitor: the worker process died or could not start ({error}); no more "
                            "measurements (can it unpickle the model? its class must be importable)")
            return
        row = future.result()
        row = dict(step=row.pop("step"), wall_s=taken - self.t0, **row, lag_s=time.perf_counter() - taken)
        with self._lock:
            self.rows.append(row)
            for sink in self.sinks:
                try:
                    sink.write(row, walltime=self._unix0 + row["wall_s"])
                except Exception as err:  # a full disk must not stop training; reported, kept in failures
                    LOG.warning(f"monitor: step {step} not written to {type(sink).__name__}: {err}")
                    self.failures.append((step, err))

    @property
    def pending(self) -> int:
        """Measurements queued or running."""
        return len(self._pending)

    def results(self) -> pd.DataFrame:
        """Every row measured so far, sorted by step."""
        with self._lock:
            rows = list(self.rows)
        return pd.DataFrame(rows).sort_values("step", kind="stable", ignore_index=True) if rows \
            else pd.DataFrame({"step": pd.Series(dtype=int)})

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the measurements pending now; True when none is left."""
        with self._lock:
            futures = list(self._pending)
        done, not_done = wait(futures, timeout=timeout)
        return not not_done

    def close(self, wait: bool = True) -> None:
        """Wait for the pending measurements (wait=False: only those already running; queued ones are
        dropped), stop the worker and close the sinks. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._executor is not None:
                self._executor.shutdown(wait=True, cancel_futures=not wait)
        finally:
            for sink in self.sinks:
                sink.close()

    def __enter__(self) -> ComplexityMonitor:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        # an exception (Ctrl-C included) leaves the loop: what is measured is already written; the measurement
        # running now is waited for, the queued ones are dropped
        self.close(wait=kind is None)
