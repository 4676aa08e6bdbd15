"""The one job runner: every parallel piece of work (training grids, complexity tracking, LMN) runs here.

A Job is a picklable call with a name, an estimated cost and the names of the jobs it waits for. `Runner`
executes a list of them on a `Cluster` (grok_lib.jobs.cluster): dependencies first and, among the jobs that
are ready, longest first (so no worker is left alone with a long job at the end); a job starts as soon as
the jobs it waits for are done, so tracking a finished run overlaps training the others. Results come
back to the calling process, which is the only writer of anything shared (`on_result`). On Dask, a
worker that dies mid-task has its task run again elsewhere (the scheduler retries it); an exception raised
by a job is re-raised here, once, after the other jobs are cancelled.

This module is the single place that decides how work is ordered and where results go.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable

from tqdm.auto import tqdm

from ..errors import require
from ..log import get as get_logger
from .cluster import Cluster, has_dashboard

LOG = get_logger(__name__)

STATUS_EVERY_S = 10.0  # how often status() is polled while no job finishes


@dataclass(frozen=True)
class Job:
    name: str  # unique within one run()
    fn: Callable  # a module-level function (workers import it by name)
    args: tuple = ()
    cost: float = 1.0  # relative estimate; only the order of starts depends on it
    after: tuple[str, ...] = ()  # names of jobs that must finish first
    units: int = 1  # progress units this job stands for (epochs, checkpoints, ...)


def _call(fn: Callable, args: tuple, *_dependencies):
    """A job on a worker; its dependencies' results arrive as extra arguments only so Dask orders them."""
    return fn(*args)


@dataclass
class Runner:
    """Runs jobs on a Cluster; `Runner(4)` is shorthand for local worker processes."""

    workers: int | Cluster = 1
    progress: bool = True
    cluster: Cluster = field(init=False)

    def __post_init__(self):
        self.cluster = self.workers if isinstance(self.workers, Cluster) else Cluster(workers=self.workers)

    def run(self, jobs: list[Job], desc: str = "jobs", unit: str = "job",
            on_result: Callable[[Job, Any], None] | None = None,
            status: Callable[[], str] | None = None) -> dict[str, Any]:
        """Run every job (dependencies first); returns {name: result}. on_result(job, result) is called in
        this process as each job finishes; status(), polled every few seconds, is shown beside the progress
        bar (e.g. epochs trained so far). The first error is re-raised once the other jobs are stopped."""
        order = _ordered(jobs)
        results: dict[str, Any] = {}
        bar = tqdm(total=sum(j.units for j in jobs), desc=desc, unit=unit, mininterval=2.0, disable=not self.progress)

        def finish(job: Job, result) -> None:
            results[job.name] = result
            if on_result is not None:
                on_result(job, result)
            bar.update(job.units)

        try:
            if self.cluster.in_process or (len(jobs) <= 1 and self.cluster.scheduler is None
                                           and self.cluster.slurm is None):
                for job in order:
                    finish(job, job.fn(*job.args))
            else:
                self._run_on_dask(order, finish, bar, status)
            return results
        finally:
            bar.close()

    def _run_on_dask(self, order: list[Job], finish, bar, status) -> None:
        from distributed import wait

        with self.cluster.session() as client:
            if self.progress and has_dashboard():
                LOG.info(f"Dask dashboard: {client.dashboard_link}")
            futures: dict[str, Any] = {}
            batch = uuid.uuid4().hex[:8]
            for job in order:  # dependencies are submitted before the jobs that wait for them
                futures[job.name] = client.submit(_call, job.fn, job.args, *(futures[a] for a in job.after),
                                                  key=f"{job.name}-{batch}", priority=job.cost, pure=False)
            by_future = {f: job for job, f in zip(order, (futures[j.name] for j in order))}
            pending = set(by_future)
            try:
                while pending:
                    try:
                        done, pending = wait(pending, timeout=STATUS_EVERY_S, return_when="FIRST_COMPLETED")
                    except TimeoutError:
                        done = set()
                    if status is not None:
                        bar.set_postfix_str(status())
                    for future in done:
                        finish(by_future[future], future.result())  # a job's exception is raised here
            except BaseException:
                client.cancel(list(pending))
                raise


def _ordered(jobs: list[Job]) -> list[Job]:
    """The jobs in the order they may start in one process: of the jobs whose dependencies are done, the
    costliest first. Refuses duplicate names, unknown dependencies and cycles."""
    by_name = {job.name: job for job in jobs}
    require(len(by_name) == len(jobs), "jobs", "job names must be unique")
    for job in jobs:
        missing = [a for a in job.after if a not in by_name]
        require(not missing, "jobs", f"{job.name} waits for unknown job(s) {missing}")
    waiting, done, order = sorted(jobs, key=lambda j: -j.cost), set(), []
    while waiting:
        ready = [j for j in waiting if all(a in done for a in j.after)]
        require(bool(ready), "jobs", "the jobs' dependencies form a cycle")
        waiting.remove(ready[0])
        done.add(ready[0].name)
        order.append(ready[0])
    return order
