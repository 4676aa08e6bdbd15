"""grok_lib.jobs: dependencies first, longest first, errors surface, the same results in and out of process."""

import os

import pytest

from grok_lib.errors import GrokError
from grok_lib.jobs.runner import Job, Runner


def record(path, name):
    with open(path, "a") as f:
        f.write(name + "\n")
    return name.upper()


def fail(message):
    raise ValueError(message)


def threads():
    import torch

    return torch.get_num_threads(), os.getpid()


def test_serial_runs_dependencies_first_then_longest_first(tmp_path):
    log = tmp_path / "log"
    jobs = [Job("short", record, (str(log), "short"), cost=1), Job("long", record, (str(log), "long"), cost=9),
            Job("after", record, (str(log), "after"), cost=100, after=("short",))]
    results = Runner(1, progress=False).run(jobs)
    assert results == {"short": "SHORT", "long": "LONG", "after": "AFTER"}
    order = log.read_text().split()
    assert order.index("short") < order.index("after")  # waits for its dependency despite its cost
    assert order.index("long") < order.index("short")  # of the ready jobs, the longest starts first


def test_two_workers_give_the_serial_results_in_one_thread_each(tmp_path):
    jobs = [Job(f"j{i}", record, (str(tmp_path / "log"), f"j{i}"), cost=i) for i in range(4)]
    jobs.append(Job("last", record, (str(tmp_path / "log"), "last"), after=("j0", "j3")))
    serial = Runner(1, progress=False).run(jobs)
    assert Runner(2, progress=False).run(jobs) == serial
    seen = Runner(2, progress=False).run([Job(f"t{i}", threads) for i in range(3)])
    assert {n for n, _ in seen.values()} == {1} and os.getpid() not in {pid for _, pid in seen.values()}


def test_on_result_sees_every_result_in_the_caller():
    got = []
    Runner(1, progress=False).run([Job("a", str.upper, ("x",)), Job("b", str.upper, ("y",))],
                                  on_result=lambda job, result: got.append((job.name, result)))
    assert sorted(got) == [("a", "X"), ("b", "Y")]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_job_raises_its_error(workers):
    with pytest.raises(ValueError, match="broken"):
        Runner(workers, progress=False).run([Job("ok", str.upper, ("x",)), Job("bad", fail, ("broken",))])


def test_bad_job_lists_are_refused_with_one_message():
    with pytest.raises(GrokError, match="unique"):
        Runner(1, progress=False).run([Job("a", str.upper, ("x",)), Job("a", str.upper, ("y",))])
    with pytest.raises(GrokError, match="unknown job"):
        Runner(1, progress=False).run([Job("a", str.upper, ("x",), after=("nope",))])
    with pytest.raises(GrokError, match="cycle"):
        Runner(1, progress=False).run([Job("a", str.upper, ("x",), after=("b",)),
                                       Job("b", str.upper, ("y",), after=("a",))])
    with pytest.raises(GrokError, match="workers"):
        Runner(0)


def test_workers_exit_when_their_parent_is_killed(tmp_path):
    """SIGKILL the process that owns a 2-worker runner: its workers must not keep running."""
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(f"""
        import os, time
        from grok_lib.jobs.runner import Job, Runner
        def pid_then_sleep(path):
            with open(path, "a") as f:
                f.write(f"{{os.getpid()}}\\n")
            time.sleep(120)
        if __name__ == "__main__":
            Runner(2, progress=False).run([Job(f"s{{i}}", pid_then_sleep, ({str(tmp_path / 'pids')!r},))
                                           for i in range(2)])
    """))
    parent = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path)
    pids_file = tmp_path / "pids"
    deadline = time.time() + 60
    while time.time() < deadline and (not pids_file.exists() or len(pids_file.read_text().split()) < 2):
        time.sleep(0.2)
    workers = [int(p) for p in pids_file.read_text().split()]
    assert len(workers) == 2
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 10
    alive = workers
    while alive and time.time() < deadline:
        time.sleep(0.2)
        alive = [p for p in workers if _alive(p)]
    assert not alive, f"workers {alive} outlived their killed parent"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by init) counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
