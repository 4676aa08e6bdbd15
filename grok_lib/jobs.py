"""The one job runner: every parallel piece of work (training grids, complexity tracking, LMN) runs here.

A Job is a picklable call with a name, an estimated cost and the names of the jobs it waits for. `run`
executes a list of them: in this process when workers <= 1, else in `workers` spawned processes with one
torch thread each (oversubscribed intra-op threads slow small-model training far more than they help).
Ready jobs start longest first, so no worker is left alone with a long job at the end; a job starts as
soon as the jobs it waits for are done, so tracking a finished run overlaps training the others. Results
come back to the calling process, which is the only writer of anything shared.

This module is the single place that decides where work runs.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any, Callable

from tqdm.auto import tqdm

from .errors import require


STATUS_EVERY_S = 2.0


@dataclass(frozen=True)
class Job:
    name: str  # unique within one run()
    fn: Callable  # a module-level function (workers import it by name)
    args: tuple = ()
    cost: float = 1.0  # relative estimate; only the order of starts depends on it
    after: tuple[str, ...] = ()  # names of jobs that must finish first
    units: int = 1  # progress units this job stands for (epochs, checkpoints, ...)


@dataclass
class Runner:
    """Where jobs run: `workers` processes (1: in this process)."""

    workers: int = 1
    progress: bool = True
    _pool: Any = field(default=None, init=False, repr=False)

    def __post_init__(self):
        require(isinstance(self.workers, int) and not isinstance(self.workers, bool) and self.workers >= 1,
                "workers", f"must be a positive integer, got {self.workers!r}")

    def run(self, jobs: list[Job], desc: str = "jobs", unit: str = "job",
            on_result: Callable[[Job, Any], None] | None = None,
            status: Callable[[], str] | None = None) -> dict[str, Any]:
        """Run every job (dependencies first); returns {name: result}. on_result(job, result) is called in
        this process as each job finishes; status(), polled every few seconds, is shown beside the progress
        bar (e.g. epochs trained so far). The first error is re-raised once running jobs have stopped."""
        by_name = {job.name: job for job in jobs}
        require(len(by_name) == len(jobs), "jobs", "job names must be unique")
        for job in jobs:
            missing = [a for a in job.after if a not in by_name]
            require(not missing, "jobs", f"{job.name} waits for unknown job(s) {missing}")
        results: dict[str, Any] = {}
        waiting = sorted(jobs, key=lambda j: -j.cost)
        bar = tqdm(total=sum(j.units for j in jobs), desc=desc, unit=unit, mininterval=2.0, disable=not self.progress)

        def ready() -> list[Job]:
            return [j for j in waiting if all(a in results for a in j.after)]

        def finish(job: Job, result) -> None:
            results[job.name] = result
            if on_result is not None:
                on_result(job, result)
            bar.update(job.units)

        try:
            if self.workers <= 1 or len(jobs) <= 1:
                while waiting:
                    runnable = ready()
                    require(bool(runnable), "jobs", "the jobs' dependencies form a cycle")
                    job = runnable[0]
                    waiting.remove(job)
                    finish(job, job.fn(*job.args))
                return results
            with ProcessPoolExecutor(max_workers=min(self.workers, len(jobs)), mp_context=get_context("spawn"),
                                     initializer=worker_start, initargs=(os.getpid(),)) as pool:
                running: dict[Any, Job] = {}
                while waiting or running:
                    for job in ready()[: max(0, self.workers - len(running))]:
                        waiting.remove(job)
                        running[pool.submit(job.fn, *job.args)] = job
                    require(bool(running), "jobs", "the jobs' dependencies form a cycle")
                    done, _ = wait(running, timeout=STATUS_EVERY_S, return_when=FIRST_COMPLETED)
                    if status is not None:
                        bar.set_postfix_str(status())
                    for future in done:
                        job = running.pop(future)
                        try:
                            result = future.result()
                        except BaseException:
                            for other in running:
                                other.cancel()
                            raise
                        finish(job, result)
            return results
        finally:
            bar.close()


def worker_start(parent: int) -> None:
    """Worker initializer: one torch (and BLAS) thread, and an exit as soon as the parent is gone (a killed
    parent must not leave its workers running)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    threading.Thread(target=_exit_with, args=(parent,), daemon=True, name="exit-with-parent").start()


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)
