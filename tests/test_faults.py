"""Fault injection (the reliability issue): concurrent writers, half-finished state, advice that must work
when followed. The concurrent cases interleave two writers at the racy point through the run's lock, so
nothing depends on timing."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest
import torch

from grok_lib.complexity.tracking import TrackingSettings, _track_locked, read_complexity, track_complexity
from grok_lib.complexity.search import BayesConfig
from grok_lib.errors import GrokError
from grok_lib.store import RunStore, run_lock
from grok_lib.training.config import RunConfig
from grok_lib.training.train import logged_epochs, resume_training, train

TINY = dict(op="add", p=11, train_frac=0.5, d_model=16, n_heads=2, d_mlp=32, epochs=10, regime="ours")
FAST = TrackingSettings(eps=(1.0,), bayes=BayesConfig(n_random=2, n_guided=0, estimator="ET"),
                        algorithm_2="sweep-edges")


def same_training(a, b):
    cols = [c for c in a.metrics().columns if c != "wall_s"]
    pd.testing.assert_frame_equal(a.metrics()[cols], b.metrics()[cols])
    assert a.checkpoints() == b.checkpoints()
    for epoch in a.checkpoints():
        wa, wb = a.load_weights(epoch), b.load_weights(epoch)
        assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return train(RunConfig(**TINY), RunStore(tmp_path_factory.mktemp("reference")), progress=False)


# 1. two `train` processes on one config ----------------------------------------------------------------
def test_a_second_train_waits_for_the_first_and_resumes_from_its_state(tmp_path, reference):
    config = RunConfig(**TINY)
    store = RunStore(tmp_path)
    run = train(config, store, progress=False, stop_after=6)
    second = {}
    with run.lock("train"):  # we are the first writer, holding the run
        waiting = threading.Thread(target=lambda: second.update(run=train(config, store, progress=False)))
        waiting.start()
        time.sleep(0.5)  # the second writer is now at (or on its way to) the lock: it cannot pass it
        assert waiting.is_alive() and run.resume_epoch() == 6
        resume_training(run, progress=False, stop_after=8)  # the first writer goes on to epoch 8
    waiting.join(timeout=120)
    assert list(run.metrics().epoch) == logged_epochs(config)  # each epoch once, in order, rightly labelled
    same_training(run, reference)


def test_a_lock_of_a_live_process_is_named_and_a_dead_ones_is_taken_over(tmp_path, capsys):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / ".lock-train").write_text(f"{sleeper.pid} {os.uname().nodename} 2026-12-01T00:00:00\n")
        with pytest.raises(GrokError, match=f"process {sleeper.pid}"):
            with run_lock(tmp_path, "train", wait=0.2):
                pass
    finally:
        sleeper.kill()
        sleeper.wait()
    with run_lock(tmp_path, "train", wait=0.2):  # the holder is gone: reported, then taken over
        assert (tmp_path / ".lock-train").read_text().split()[0] == str(os.getpid())
    assert "stale lock" in capsys.readouterr().err
    assert not (tmp_path / ".lock-train").exists()


# 2. resume state missing while metrics.csv exists ------------------------------------------------------
def test_retraining_without_resume_state_leaves_no_duplicate_rows(tmp_path, reference):
    config = RunConfig(**TINY)
    run = train(config, RunStore(tmp_path), progress=False)
    run.resume_path.unlink()
    train(config, RunStore(tmp_path), progress=False)
    assert list(run.metrics().epoch) == logged_epochs(config)
    same_training(run, reference)


# 3. two `complexity` processes on one run -------------------------------------------------------------
def test_a_second_complexity_pass_waits_then_keeps_every_row(tmp_path, reference):
    store = RunStore(tmp_path)
    run = train(RunConfig(**TINY), store, progress=False)
    first, second = run.checkpoints()[-2:]
    result = {}
    with run.lock("complexity"):
        waiting = threading.Thread(
            target=lambda: result.update(table=track_complexity(run, FAST, progress=False, epochs=[second])))
        waiting.start()
        time.sleep(0.5)
        _track_locked(run, FAST, "cpu", False, [first], 1)  # the first writer measures its checkpoint
    waiting.join(timeout=120)
    assert sorted(read_complexity(run).epoch) == [first, second]
    assert sorted(result["table"].epoch) == [first, second]


# 4. advice that must work when followed ----------------------------------------------------------------
def test_the_settings_mismatch_advice_works_when_followed(tmp_path, reference):
    store = RunStore(tmp_path)
    run = train(RunConfig(**TINY), store, progress=False)
    last = run.checkpoints()[-1]
    track_complexity(run, FAST, progress=False, epochs=[last])
    other = TrackingSettings(eps=(0.5,), bayes=FAST.bayes, algorithm_2=FAST.algorithm_2)
    with pytest.raises(GrokError, match="move both complexity.csv and complexity.json") as err:
        track_complexity(run, other, progress=False, epochs=[last])
    aside = tmp_path / "aside"
    aside.mkdir()
    for name in ("complexity.csv", "complexity.json"):  # what the message says
        (run.path / name).rename(aside / name)
    table = track_complexity(run, other, progress=False, epochs=[last])
    assert list(table.eps) == [0.5]
    assert "complexity.csv" in str(err.value)


def test_the_corrupt_checkpoint_advice_retrains_a_finished_run(tmp_path, reference):
    config = RunConfig(**TINY)
    run = train(config, RunStore(tmp_path), progress=False)
    broken = run.checkpoint_path(run.checkpoints()[-1])
    broken.write_bytes(b"not a safetensors file")
    with pytest.raises(GrokError, match="resume.safetensors") as err:
        run.load_weights(run.checkpoints()[-1])
    assert "retrain" in str(err.value)
    broken.unlink()  # what the message says: delete it and the resume state
    run.resume_path.unlink()
    train(config, RunStore(tmp_path), progress=False)
    same_training(run, reference)


# 6. one unreadable run directory ------------------------------------------------------------------------
def test_one_unreadable_run_does_not_hide_the_store(tmp_path, reference):
    store = RunStore(tmp_path)
    train(RunConfig(**TINY), store, progress=False)
    (tmp_path / "broken-run").mkdir()
    (tmp_path / "broken-run" / "config.json").write_text("{ not json")
    out = subprocess.run([sys.executable, "-m", "grok_lib", "--store", str(tmp_path), "runs"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert RunConfig(**TINY).key() in out.stdout and "broken-run" in out.stdout and "unreadable" in out.stdout
