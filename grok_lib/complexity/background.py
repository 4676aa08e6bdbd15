"""Background compression, in one place: compressed sizes computed on a thread pool while the caller's
thread measures losses.

bz2, lzma and constriction release the GIL, so threads compress in parallel without copying arrays to other
processes. Every background compression of the package goes through here: a `ComplexityProblem`'s
`Background` (the prefetched search sizes of points being evaluated, every coder's size of a result while
its test loss is measured, the priced moves of grok_lib.complexity.reallocation) and the slider explorer's
sizes (grok_lib.paper.explorer) run on `pool(threads)`, one pool per thread count, kept for the process.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from collections.abc import Callable
from typing import Any

from ..errors import require

_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def pool(threads: int = 1) -> ThreadPoolExecutor:
    """The process's background compression pool of `threads` threads (made on first use, then kept)."""
    with _POOLS_LOCK:
        if threads not in _POOLS:
            _POOLS[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="grok-compress")
        return _POOLS[threads]


def timed_call(fn: Callable, *args) -> tuple[Any, float]:
    """(fn(*args), the seconds it took)."""
    start = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - start


class Started:
    """One call handed to `Background.start`: its value when `result()` is asked for."""

    def __init__(self, owner: Background, future: Future | None, call: Callable[[], Any] | None = None):
        self._owner, self._future, self._call = owner, future, call

    def result(self) -> Any:
        """The call's value: waited for (its pool seconds added to the owner's timings["compress_background"]),
        or, with the background off, computed now in the caller's thread."""
        if self._future is None:
            return self._call()
        value, seconds = self._future.result()
        self._owner.timings["compress_background"] += seconds
        return value

    def cancel(self) -> None:
        """Drop the call: a no-op once it has started on the pool; its answer is never asked for."""
        if self._future is not None:
            self._future.cancel()


class Background:
    """Calls run beside the caller: on `pool(threads)` when `enabled`, otherwise deferred to the caller's
    thread until their result is asked for (the same values either way, computed in a different thread).
    threads None: one per CPU core."""

    def __init__(self, threads: int | None, enabled: bool, timings: dict[str, float]):
        require(threads is None or (isinstance(threads, int) and threads >= 1), "compress_threads",
                f"must be a positive integer or None, got {threads!r}")
        self.threads, self.enabled, self.timings = threads or os.cpu_count() or 1, enabled, timings

    def start(self, fn: Callable, *args) -> Started:
        if not self.enabled:
            return Started(self, None, lambda: fn(*args))
        return Started(self, pool(self.threads).submit(timed_call, fn, *args))
