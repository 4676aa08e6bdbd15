"""Where jobs run: in this process, local Dask worker processes, a running Dask scheduler, or Slurm.

    Cluster()                         in this process, one after another (no Dask, no cluster)
    Cluster(workers=4)                a dask.distributed LocalCluster of 4 worker processes, one thread each
    Cluster(scheduler="tcp://h:8786") a running Dask cluster (or the path of its scheduler file)
    Cluster(slurm=Slurm(queue=...))   Slurm jobs through dask-jobqueue (the `slurm` extra)

Dask is imported only when a cluster is used, so `grok_lib` imports and runs without it.
"""

from __future__ import annotations

import logging
import os
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import GrokError, require

# one thread per worker process: oversubscribed intra-op threads slow small-model training far more than
# they help (grok_lib.jobs.worker also sets torch's count)
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
# Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which makes glibc hand memory back after
# nearly every free: torch's many small tensors then train ~1.3x slower (benchmarks/bench_dask_workers.py).
# Local workers get glibc's default; Slurm workers this threshold (128 MiB) through Dask's config variable.
NO_TRIM = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
           "distributed.worker.profile.enabled": False,
           "distributed.admin.system-monitor.interval": "5s",
           "distributed.worker.memory.monitor-interval": "5s"}
SLURM_TRIM = "export DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON__MALLOC_TRIM_THRESHOLD_=134217728"


@dataclass(frozen=True)
class Slurm:
    """Slurm jobs for Dask workers (dask-jobqueue's SLURMCluster): each Slurm job runs `cores` worker
    processes of one thread each, in `memory` in all, for `walltime`; `jobs` of them are requested."""

    queue: str
    walltime: str = "01:00:00"
    cores: int = 4
    memory: str = "16GB"
    jobs: int = 1
    extra: tuple[str, ...] = ()  # extra #SBATCH directives, e.g. ("--gres=gpu:1",)

    def __post_init__(self):
        require(isinstance(self.queue, str) and self.queue.strip() != "", "slurm_queue", "name a Slurm partition")
        for name in ("cores", "jobs"):
            value = getattr(self, name)
            require(isinstance(value, int) and not isinstance(value, bool) and value >= 1, f"slurm_{name}",
                    f"must be a positive integer, got {value!r}")
        require(len(self.walltime.split(":")) in (2, 3) and all(p.isdigit() for p in self.walltime.split(":")),
                "slurm_walltime", f"must look like HH:MM:SS, got {self.walltime!r}")

    def cluster(self):
        """The SLURMCluster (nothing is submitted until it is scaled)."""
        try:
            from dask_jobqueue import SLURMCluster
        except ImportError:
            raise GrokError("slurm", "needs dask-jobqueue: pip install -e '.[slurm]'") from None
        return SLURMCluster(queue=self.queue, walltime=self.walltime, cores=self.cores, processes=self.cores,
                            memory=self.memory, job_extra_directives=list(self.extra),
                            job_script_prologue=[f"export {k}={v}" for k, v in WORKER_ENV.items()] + [SLURM_TRIM])


@dataclass(frozen=True)
class Cluster:
    """Where jobs run: in this process (the default), local worker processes, a running Dask scheduler or
    Slurm. At most one of scheduler and slurm."""

    workers: int = 1  # local worker processes; 1 = in this process
    scheduler: str | None = None  # tcp://host:port of a running scheduler, or the path of its scheduler file
    slurm: Slurm | None = None

    def __post_init__(self):
        require(isinstance(self.workers, int) and not isinstance(self.workers, bool) and self.workers >= 1,
                "workers", f"must be a positive integer, got {self.workers!r}")
        require(self.scheduler is None or self.slurm is None, "scheduler", "give a scheduler or Slurm, not both")
        require(self.scheduler is None or (isinstance(self.scheduler, str) and self.scheduler.strip() != ""),
                "scheduler", "must be an address (tcp://host:port) or a scheduler file")

    @property
    def in_process(self) -> bool:
        return self.workers <= 1 and self.scheduler is None and self.slurm is None

    @contextmanager
    def session(self):
        """A dask.distributed Client on this cluster, workers at one thread; the client, and any cluster it
        started, are closed on exit."""
        import dask
        from distributed import Client

        from .worker import OneThread

        cluster, config = None, ExitStack()
        if self.scheduler is not None:
            if "://" in self.scheduler:
                client = Client(self.scheduler)
            else:
                require(Path(self.scheduler).is_file(), "scheduler", f"no scheduler file at {self.scheduler}")
                client = Client(scheduler_file=_scheduler_file(self.scheduler))
        else:
            if self.slurm is not None:
                cluster = self.slurm.cluster()
                cluster.scale(jobs=self.slurm.jobs)
            else:
                from distributed import LocalCluster

                config.enter_context(dask.config.set(NO_TRIM))  # for the whole session: restarts too
                cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                       dashboard_address=":0" if has_dashboard() else None,
                                       silence_logs=logging.ERROR, env=dict(WORKER_ENV))
            client = Client(cluster)
        try:
            local = self.scheduler is None and self.slurm is None
            client.register_plugin(OneThread(os.getpid() if local else None))
            yield client
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
            config.close()


def has_dashboard() -> bool:
    """Whether Dask can serve its dashboard here (it needs bokeh)."""
    try:
        import bokeh  # noqa: F401  (Dask's dashboard needs it)
    except ImportError:
        return False
    return True


def _scheduler_file(path: str) -> str:
    """`path` if it is a Dask scheduler file (JSON naming the scheduler's address), else GrokError naming
    --scheduler: Dask itself fails on anything else with a bare AssertionError."""
    import json

    try:
        address = json.loads(Path(path).read_text(encoding="utf-8")).get("address")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError, RecursionError):
        address = None
    require(isinstance(address, str) and "://" in address, "scheduler",
            f"{path} is not a Dask scheduler file (JSON with the scheduler's \"address\", as `dask scheduler "
            "--scheduler-file` writes it)")
    return path
