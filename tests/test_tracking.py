"""Complexity of every checkpoint of a stored run: the table, resuming, reuse, the join, the CLI."""

import shutil

import pandas as pd
import pytest

from grok_lib.complexity import tracking
from grok_lib.cli import main
from grok_lib.errors import GrokError
from grok_lib.complexity.search import BayesConfig
from grok_lib.complexity.tracking import COMPLEXITY_FILE, SETTINGS_FILE, TrackingSettings, load_complexity, track_complexity
from grok_lib.store import Run, RunStore
from grok_lib.training.train import train

FAST = TrackingSettings(eps=(1.0, 0.25), bayes=BayesConfig(n_random=2, n_guided=2, estimator="ET", n_trees=4))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from grok_lib.training.config import RunConfig

    config = RunConfig(op="add", regime="ours", p=11, train_frac=0.5, d_model=16, n_heads=2, d_mlp=32, epochs=4)
    return train(config, RunStore(tmp_path_factory.mktemp("runs")), progress=False)


@pytest.fixture
def run(trained_run, tmp_path):
    """A fresh copy of a 4-epoch tiny run (checkpoints at epochs 1, 2, 3, 4), trained once per module."""
    path = tmp_path / "runs" / trained_run.path.name
    shutil.copytree(trained_run.path, path)
    return Run(path, trained_run.config)


def test_every_checkpoint_gets_one_row_per_eps_and_complexity_falls_as_eps_grows(run):
    table = track_complexity(run, FAST, progress=False)
    epochs = run.checkpoints()
    assert list(zip(table.epoch, table.eps)) == [(e, eps) for e in epochs for eps in (0.25, 1.0)]
    for _, rows in table.groupby("epoch"):
        assert rows.pooled_bytes.is_monotonic_decreasing
        assert (rows.pooled_bytes <= rows[["complexity_bytes", "alg2_bytes"]].min(axis=1)).all()
    assert (table.symbols_bytes <= table.complexity_bytes).all()
    assert (table.complexity_bits == 8 * table.complexity_bytes).all()
    assert (table.complexity_bytes < table.naive_bytes).all()
    assert (table.bound > 0).all() and (table.description_length_bits > table.complexity_bits).all()


def test_a_second_call_measures_nothing(run, monkeypatch):
    first = track_complexity(run, FAST, progress=False)
    stamp = (run.path / COMPLEXITY_FILE).stat().st_mtime_ns

    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was measured again")

    monkeypatch.setattr(tracking, "measure_checkpoint", refuse)
    pd.testing.assert_frame_equal(track_complexity(run, FAST, progress=False), first)
    assert (run.path / COMPLEXITY_FILE).stat().st_mtime_ns == stamp


def test_an_interrupted_pass_resumes_after_its_last_finished_checkpoint(run, monkeypatch):
    real = tracking.measure_checkpoint
    measured = []

    def interrupted(run_, epoch, *args, **kwargs):
        if len(measured) == 2:
            raise KeyboardInterrupt
        measured.append(epoch)
        return real(run_, epoch, *args, **kwargs)

    monkeypatch.setattr(tracking, "measure_checkpoint", interrupted)
    with pytest.raises(KeyboardInterrupt):
        track_complexity(run, FAST, progress=False)
    partial = pd.read_csv(run.path / COMPLEXITY_FILE)
    assert sorted(set(partial.epoch)) == measured == run.checkpoints()[:2]

    resumed = []
    monkeypatch.setattr(tracking, "measure_checkpoint",
                        lambda run_, epoch, *a, **k: resumed.append(epoch) or real(run_, epoch, *a, **k))
    table = track_complexity(run, FAST, progress=False)
    assert resumed == run.checkpoints()[2:]
    pd.testing.assert_frame_equal(table[table.epoch.isin(measured)].reset_index(drop=True), partial)


def test_other_settings_are_refused_and_nothing_stored_changes(run):
    track_complexity(run, FAST, progress=False, epochs=run.checkpoints()[:1])
    before = {name: (run.path / name).read_bytes() for name in (COMPLEXITY_FILE, SETTINGS_FILE)}
    with pytest.raises(GrokError, match="^settings:"):
        track_complexity(run, TrackingSettings(eps=(1.0,), bayes=FAST.bayes), progress=False)
    assert before == {name: (run.path / name).read_bytes() for name in before}


def test_worker_processes_give_the_same_table_as_one_process(run, trained_run, tmp_path):
    other = Run(tmp_path / "copy" / run.path.name, run.config)
    shutil.copytree(trained_run.path, other.path)
    alone = track_complexity(run, FAST, progress=False)
    pooled = track_complexity(other, FAST, progress=False, workers=2)
    pd.testing.assert_frame_equal(alone.drop(columns="seconds"), pooled.drop(columns="seconds"))
    assert pooled.equals(tracking.read_complexity(other))  # the stored table is the returned one


def test_missing_checkpoints_and_bad_settings_are_rejected(run):
    with pytest.raises(GrokError, match="^epochs:"):
        track_complexity(run, FAST, progress=False, epochs=[999])
    with pytest.raises(GrokError, match="^workers:"):
        track_complexity(run, FAST, progress=False, workers=0)
    with pytest.raises(GrokError, match="^eps:"):
        TrackingSettings(eps=(1.0, 0.0))
    assert not (run.path / COMPLEXITY_FILE).exists() and not (run.path / SETTINGS_FILE).exists()


def test_the_loader_joins_complexity_with_the_training_metrics(run):
    track_complexity(run, FAST, progress=False)
    joined = load_complexity(run)
    for column in ("complexity_bytes", "naive_bytes", "train_acc", "test_acc", "l2_norm", "effective_rank", "regime"):
        assert column in joined
    assert len(joined) == 2 * len(run.checkpoints()) and joined.train_acc.notna().all()


def test_the_complexity_command_measures_a_run_and_rejects_bad_input_in_one_line(run, capsys):
    store = ["--store", str(run.path.parent)]
    fast = ["--n-random", "2", "--n-guided", "1", "--estimator", "ET", "--checkpoint", "4"]
    assert main([*store, "complexity", str(run.path), "--eps", "0", *fast]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: eps:") and len(err.strip().splitlines()) == 1
    assert not (run.path / COMPLEXITY_FILE).exists()
    assert main([*store, "complexity", str(run.path), "--eps", "1", *fast, "--algorithm-2", "golden"]) == 2
    assert capsys.readouterr().err.startswith("error: algorithm_2: unknown method 'golden'; allowed: sweep")
    assert main([*store, "complexity", str(run.path), "--eps", "1", *fast, "--quiet"]) == 0
    assert "Algorithm 1" in capsys.readouterr().out and (run.path / COMPLEXITY_FILE).exists()
    assert main([*store, "complexity", "--op", "add", "--p", "7"]) == 2
    assert capsys.readouterr().err.startswith("error: run:")
