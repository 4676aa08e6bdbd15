import math
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from grok_lib.training.config import DEMO, RunConfig
from grok_lib.errors import CheckpointError, GrokError
from grok_lib.store import RunStore
from grok_lib.training.train import grokking_epochs, log_schedule, train
from test_faults import same_training

DETERMINISTIC = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "l2_norm", "spectral_entropy"]


def test_log_schedule_is_floor_of_powers_deduplicated():
    expected = sorted({math.floor(1.3**n) for n in range(40) if math.floor(1.3**n) <= 100})
    assert log_schedule(100) == expected
    assert log_schedule(100)[:8] == [1, 2, 3, 4, 6, 8, 10, 13]
    assert log_schedule(10_000)[-1] == 9_727  # floor(1.3^35) = floor(9727.86)


def test_training_logs_metrics_and_checkpoints(store, tiny_config):
    run = train(tiny_config, store, progress=False)
    metrics = run.metrics()
    assert list(metrics.epoch) == log_schedule(12) + [12]
    assert run.checkpoints() == list(metrics.epoch)
    for column in ["train_loss", "test_acc", "l2_norm", "effective_rank", "erank/embed.weight"]:
        assert metrics[column].notna().all()
    assert run.is_complete


def test_finished_run_is_reused_not_retrained(store, tiny_config):
    run = train(tiny_config, store, progress=False)
    stamp = run.metrics_path.stat().st_mtime_ns
    again = train(tiny_config, store, progress=False)
    assert again.path == run.path and run.metrics_path.stat().st_mtime_ns == stamp


def test_resumed_run_matches_uninterrupted_run_bitwise(tmp_path, tiny_config):
    config = tiny_config.with_(epochs=20)
    whole = train(config, RunStore(tmp_path / "a"), progress=False)
    store = RunStore(tmp_path / "b")
    partial = train(config, store, progress=False, stop_after=9)  # stops after logging epoch 8
    assert partial.resume_epoch() == 8
    resumed = train(config, store, progress=False)
    pd.testing.assert_frame_equal(whole.metrics().drop(columns="wall_s"), resumed.metrics().drop(columns="wall_s"),
                                  check_exact=True)
    for epoch in whole.checkpoints():
        a, b = whole.load_weights(epoch), resumed.load_weights(epoch)
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_killed_process_resumes_to_identical_metrics(tmp_path):
    """SIGKILL a real training process mid-run, resume it, and compare with an uninterrupted run."""
    args = ["--op", "add", "--regime", "ours", "--p", "11", "--train-frac", "0.5", "--d-model", "16",
            "--n-heads", "2", "--d-mlp", "32", "--epochs", "400", "--quiet"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "grok_lib", "--store"]
    proc = subprocess.Popen(cmd + [str(tmp_path / "killed"), "train", *args], env=env)
    config = RunConfig(op="add", regime="ours", p=11, train_frac=0.5, d_model=16, n_heads=2, d_mlp=32, epochs=400)
    run = RunStore(tmp_path / "killed").run(config)
    deadline = time.time() + 60
    while run.resume_epoch() < 30 and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 0 < run.resume_epoch() < 400, "the process should have been killed mid-run"
    subprocess.run(cmd + [str(tmp_path / "killed"), "train", *args], env=env, check=True)
    subprocess.run(cmd + [str(tmp_path / "whole"), "train", *args], env=env, check=True)
    whole = RunStore(tmp_path / "whole").run(config)
    pd.testing.assert_frame_equal(whole.metrics()[DETERMINISTIC], run.metrics()[DETERMINISTIC], check_exact=True)


def test_cpu_demo_groks_memorizing_early_and_generalizing_much_later(store):
    """The README's demo (about a minute on 2 CPU cores): >= 99 % train accuracy early, >= 99 % test accuracy
    at least twice as late; it ends near there (a brief late instability at epoch ~1,192 recovers by 1,200)."""
    metrics = train(RunConfig(**DEMO), store, progress=False).metrics()
    marks = grokking_epochs(metrics)
    assert marks["memorized"] is not None and marks["memorized"] <= 600
    assert marks["generalized"] is not None and marks["generalized"] >= 2 * marks["memorized"]
    assert metrics.train_acc.iloc[-1] >= 0.95 and metrics.test_acc.iloc[-1] >= 0.9


def test_corrupt_checkpoint_gets_clear_error_and_is_not_overwritten(store, tiny_config):
    run = train(tiny_config.with_(epochs=5), store, progress=False)
    data = run.resume_path.read_bytes()
    run.resume_path.write_bytes(data[: len(data) // 2])
    truncated = run.resume_path.read_bytes()
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        train(tiny_config.with_(epochs=5), store, progress=False)
    assert run.resume_path.read_bytes() == truncated


def test_run_directory_with_other_config_is_refused(store, tiny_config):
    run = store.run(tiny_config)
    run.save_config()  # what a writer does once it holds the run
    with pytest.raises(GrokError) as err:
        store.open_dir(run.path, tiny_config.with_(lr=2e-3))
    assert err.value.field == "run_dir"
    assert RunConfig.from_dict(__import__("json").loads((run.path / "config.json").read_text())) == tiny_config


@pytest.mark.parametrize("changes, field", [
    (dict(op="pow"), "op"), (dict(op="div", p=15), "p"), (dict(p=2), "p"),
    (dict(train_frac=1.5), "train_frac"), (dict(noise=-0.1), "noise"), (dict(beta=-1.0), "beta"),
    (dict(weight_decay=-1.0), "weight_decay"), (dict(lr=-1e-3), "lr"), (dict(lr=0.0), "lr"),
    (dict(epochs=0), "epochs"), (dict(regime="l1"), "regime"),
])
def test_bad_run_config_names_the_field(changes, field):
    with pytest.raises(GrokError) as err:
        RunConfig(**changes)
    assert err.value.field == field


def test_corrupt_weight_checkpoint_is_reported_on_load(store, tiny_config):
    run = train(tiny_config.with_(epochs=3), store, progress=False)
    path = run.checkpoint_path(3)
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="epoch_000003"):
        run.load_model(3)


def test_a_longer_run_continues_from_its_stored_shorter_twin_bit_for_bit(tmp_path, tiny_config):
    short, long = tiny_config.with_(epochs=13), tiny_config.with_(epochs=23)  # 13 = floor(1.3^10) is a logged epoch
    assert 13 in log_schedule(23)
    store = RunStore(tmp_path / "extended")
    train(short, store, progress=False)
    extended = train(long, store, progress=False)
    assert int(extended.metrics().epoch.iloc[0]) == 1 and extended.checkpoints()[-1] == 23
    afresh = train(long, RunStore(tmp_path / "afresh"), progress=False)
    same_training(extended, afresh)
    assert torch.equal(extended.load_resume()["model/embed.weight"], afresh.load_resume()["model/embed.weight"])
    assert store.run(short).is_complete  # the twin is left as it was


def test_a_shorter_twin_off_the_log_schedule_or_extend_false_is_not_used(tmp_path, tiny_config):
    store = RunStore(tmp_path / "runs")
    train(tiny_config.with_(epochs=12), store, progress=False)  # 12 is not a logged epoch
    run = train(tiny_config.with_(epochs=23), store, progress=False, stop_after=1)
    assert run.checkpoints() == [1]
    train(tiny_config.with_(epochs=13), store, progress=False)
    fresh = train(tiny_config.with_(epochs=30), store, progress=False, stop_after=2, extend=False)
    assert fresh.checkpoints() == [1, 2]
