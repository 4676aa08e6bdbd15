"""When a ComplexityMonitor measures: every N steps, log-spaced (floor(1.3^n), as our runs log), listed steps,
or only when asked (`ComplexityMonitor.measure`)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from fractions import Fraction

from ..errors import require

LOG_BASE = Fraction(13, 10)  # grok_lib.training.train.log_schedule's base


def log_steps(last: int, base: Fraction = LOG_BASE) -> list[int]:
    """floor(base^n) for n = 0, 1, ... up to `last`, deduplicated: 1, 2, 3, 4, 6, 8, 10, 13, 17, 23, ..."""
    found, n = set(), 0
    while (value := int(base**n)) <= last:  # exact arithmetic: int() of a positive Fraction is its floor
        found.add(value)
        n += 1
    return sorted(found)


class Schedule:
    """Which steps a monitor snapshots. `spec`:

    * "log": the steps floor(1.3^n), n = 0, 1, ... (1, 2, 3, 4, 6, 8, 10, 13, ...), as grok_lib's runs log;
    * an integer N > 0: every N steps (0, N, 2N, ...);
    * an iterable of steps (integers >= 0);
    * None: never by itself (only explicit `ComplexityMonitor.measure` calls).

    A step is *due* when it has reached the next scheduled step, so a loop that calls `step()` only every few
    steps still measures once per scheduled step it passed (at the first call at or after it)."""

    def __init__(self, spec: int | str | Iterable[int] | None = "log"):
        self.spec = spec
        self.every: int | None = None
        self.steps: list[int] | None = None
        if spec is None or spec == "log":
            pass
        elif isinstance(spec, bool) or isinstance(spec, float) and not spec.is_integer():
            require(False, "schedule", f"must be 'log', a positive integer, a list of steps or None, got {spec!r}")
        elif isinstance(spec, (int, float)):
            require(spec > 0, "schedule", f"every N steps needs N > 0, got {spec!r}")
            self.every = int(spec)
        elif isinstance(spec, str):
            require(False, "schedule", f"unknown schedule {spec!r}; allowed: 'log', a positive integer, a list "
                    "of steps, None")
        else:
            try:
                steps = sorted(set(spec))
            except TypeError:
                steps = None
            require(steps is not None and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                              for s in steps), "schedule",
                    f"a list of steps must hold integers >= 0, got {spec!r}")
            self.steps = steps
        self._next = self._after(-1)

    def _after(self, step: int) -> float:
        """The first scheduled step > `step` (inf when there is none)."""
        if self.spec is None:
            return math.inf
        if self.every is not None:
            return (step // self.every + 1) * self.every
        if self.steps is not None:
            return next((s for s in self.steps if s > step), math.inf)
        n = max(0, math.floor(math.log(max(step, 1)) / math.log(1.3)) - 1)
        while (value := int(LOG_BASE**n)) <= step:
            n += 1
        return value

    def due(self, step: int) -> bool:
        """Whether `step` has reached the next scheduled step (which then moves past `step`)."""
        require(isinstance(step, int) and not isinstance(step, bool) and step >= 0, "step",
                f"must be an integer >= 0, got {step!r}")
        if step < self._next:
            return False
        self._next = self._after(step)
        return True
