"""The job runner on Dask: a 2-worker LocalCluster gives the serial tables even when a worker is killed
mid-task; grok_lib runs without a cluster; Slurm is checked on the job script it would submit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from grok_lib.errors import GrokError
from grok_lib.jobs.cluster import Cluster, Slurm
from grok_lib.jobs.runner import Job, Runner
from grok_lib.paper.pipeline import compute
from grok_lib.paper.profiles import get_profile
from grok_lib.store import RunStore


def square(x):
    return x * x


def die_once_then_square(marker: str, x: int):
    """Kills its own worker process the first time it runs (the marker records that it did)."""
    if not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return x * x


def kill_a_training_worker(store_root: str, marker: str, timeout: float = 120.0) -> bool:
    """Wait until another worker is training a run (its resume state is short of the last epoch), SIGKILL
    that worker process, write `marker` and return True; False if no run was caught mid-training."""
    import psutil

    from grok_lib.store import read_config

    me, parent = os.getpid(), psutil.Process(os.getppid())
    deadline = time.time() + timeout
    while time.time() < deadline:
        for path in Path(store_root).glob("*/metrics.csv"):
            run = RunStore(store_root).run(read_config(path.parent / "config.json"))
            if 0 < run.resume_epoch() < run.config.epochs:
                siblings = [c for c in parent.children() if c.pid != me and "resource_tracker" not in " ".join(c.cmdline())]
                if siblings:
                    for worker in siblings:
                        worker.kill()
                    Path(marker).write_text(f"killed {[w.pid for w in siblings]} training {path.parent.name}")
                    return True
        time.sleep(0.005)
    return False


def test_two_workers_with_one_killed_mid_task_give_the_serial_results(tmp_path):
    jobs = [Job(f"j{i}", square, (i,), cost=i) for i in range(4)]
    jobs.append(Job("dies", die_once_then_square, (str(tmp_path / "marker"), 7), after=("j1",)))
    results = Runner(Cluster(workers=2), progress=False).run(jobs)
    assert (tmp_path / "marker").exists()  # the first attempt did kill its worker
    assert results == Runner(1, progress=False).run([j for j in jobs if j.name != "dies"]) | {"dies": 49}


def _tables(store: RunStore, profile) -> dict[str, pd.DataFrame]:
    out = {}
    for config in profile.configs():
        run = store.run(config)
        out[f"{run.path.name}/metrics"] = run.metrics().drop(columns="wall_s")
        for name in ("complexity.csv", "rate_distortion.csv"):
            out[f"{run.path.name}/{name}"] = pd.read_csv(run.path / name).drop(columns="seconds")
    return out


@pytest.mark.slow
def test_a_ci_sweep_on_two_dask_workers_survives_a_killed_worker_with_the_serial_tables(tmp_path):
    profile = get_profile("ci")
    parallel, serial = RunStore(tmp_path / "parallel"), RunStore(tmp_path / "serial")
    marker = tmp_path / "killed"
    compute(profile, parallel, extra=[Job("killer", kill_a_training_worker, (str(parallel.root), str(marker)),
                                          cost=1e9)], cluster=Cluster(workers=2))
    assert marker.exists(), "no worker was caught training"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as on the workers: another thread count changes float sums
    try:
        compute(profile, serial, cluster=Cluster(workers=1))
    finally:
        torch.set_num_threads(threads)
    a, b = _tables(parallel, profile), _tables(serial, profile)
    assert a.keys() == b.keys() and len(a) == 3 * len(profile.configs())
    for key in a:
        pd.testing.assert_frame_equal(a[key], b[key], check_exact=True, obj=key)


def test_grok_lib_runs_jobs_without_a_cluster_and_without_importing_dask():
    code = ("import sys\nfrom grok_lib.jobs.runner import Job, Runner\n"
            "assert Runner(1, progress=False).run([Job('a', pow, (2, 5))]) == {'a': 32}\n"
            "import grok_lib.paper.pipeline, grok_lib.cli\n"
            "assert 'distributed' not in sys.modules and 'dask' not in sys.modules, 'dask imported'\nprint('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_slurm_workers_get_one_thread_each_in_the_job_script_they_would_submit():
    spec = Slurm(queue="gpu", walltime="02:30:00", cores=8, memory="32GB", extra=("--gres=gpu:1",))
    cluster = spec.cluster()
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH -p gpu" in script and "#SBATCH -t 02:30:00" in script and "#SBATCH --gres=gpu:1" in script
    assert "--cpus-per-task=8" in script and "--nworkers 8" in script and "--nthreads 1" in script
    assert "export OMP_NUM_THREADS=1" in script


@pytest.mark.parametrize("make, field", [
    (lambda: Cluster(workers=0), "workers"),
    (lambda: Cluster(scheduler="tcp://h:1", slurm=Slurm(queue="q")), "scheduler"),
    (lambda: Slurm(queue=""), "slurm_queue"),
    (lambda: Slurm(queue="q", cores=0), "slurm_cores"),
    (lambda: Slurm(queue="q", walltime="two hours"), "slurm_walltime"),
])
def test_bad_cluster_options_name_the_field(make, field):
    with pytest.raises(GrokError, match=field):
        make()


def test_a_missing_scheduler_file_is_one_clear_error(tmp_path):
    with pytest.raises(GrokError, match="scheduler"):
        Runner(Cluster(scheduler=str(tmp_path / "nope.json")), progress=False).run([Job("a", square, (2,))])
