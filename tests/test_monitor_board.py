"""`grid --tensorboard DIR` and `compute --tensorboard DIR` (grok_lib.monitor.board): the event files, read back
with TensorBoard's EventAccumulator, hold the tags and values of the run store's tables, and a second call
writes nothing twice. (`train --tensorboard` is tested in tests/test_monitor.py.)"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import replace

import pandas as pd
import pytest

from grok_lib.cli import main

pytestmark = pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                                reason="the tensorboard package is missing: pip install tensorboard (or -e '.[dev]')")
TINY = ["--p", "11", "--train-frac", "0.5", "--d-model", "16", "--n-heads", "2", "--d-mlp", "32"]
METRICS = [("train/loss", "train_loss"), ("train/acc", "train_acc"), ("test/loss", "test_loss"),
           ("weights/l2_norm", "l2_norm"), ("weights/effective_rank", "effective_rank")]


def events_of(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return events


def series(events, tag: str) -> tuple[list[int], list[float]]:
    scalars = events.Scalars(tag)
    return [e.step for e in scalars], [e.value for e in scalars]


def assert_metrics_match(events, metrics: pd.DataFrame) -> None:
    for name, column in METRICS:
        steps, values = series(events, name)
        assert steps == list(metrics.epoch), name
        assert values == pytest.approx(list(metrics[column]), rel=1e-6), name


def test_grid_tensorboard_writes_each_runs_metrics_and_complexity(tmp_path):
    # --ensemble: the runs train in one batched step, then each run's board is filled in from the store
    args = ["--store", str(tmp_path / "runs"), "grid", "--op", "add", "--regimes", "ours", "--seeds", "0", "1",
            "--epochs", "6", *TINY, "--ensemble", "--tensorboard", str(tmp_path / "tb")]
    assert main(args) == 0
    runs = sorted(p for p in (tmp_path / "runs").iterdir() if (p / "metrics.csv").is_file())
    assert [p.name for p in sorted((tmp_path / "tb").iterdir())] == [p.name for p in runs] and len(runs) == 2
    for run in runs:
        events = events_of(tmp_path / "tb" / run.name)
        metrics = pd.read_csv(run / "metrics.csv")
        assert list(metrics.epoch) == [1, 2, 3, 4, 6]  # floor(1.3^n) up to 6, and the last epoch
        assert_metrics_match(events, metrics)
        for name in ["complexity/paper_bytes", "complexity/entropy_bytes", "bound/paper", "coarse/train_loss"]:
            assert sorted(series(events, name)[0]) == [1, 2, 3, 4, 6], name
        assert all(v > 0 for v in series(events, "complexity/paper_bytes")[1])
    assert main(args) == 0  # again: the runs are reused, nothing is written twice
    events = events_of(tmp_path / "tb" / runs[0].name)
    assert series(events, "train/loss")[0] == [1, 2, 3, 4, 6]
    assert sorted(series(events, "complexity/paper_bytes")[0]) == [1, 2, 3, 4, 6]


@pytest.fixture
def tiny_profile(monkeypatch):
    """The ci profile cut to one 8-epoch run, tracked at two eps from epoch 3, as `compute` sees it."""
    from grok_lib.paper import profiles

    ci = profiles.get_profile("ci")
    tiny = replace(ci, regimes=("ours",), run_fields={**ci.run_fields, "epochs": 8}, track_eps=(1.0, 0.5),
                   final_eps=(1.0,), min_epoch=3)
    monkeypatch.setattr(profiles, "get_profile", lambda name: tiny)
    return tiny


def test_compute_tensorboard_writes_the_tracked_complexity_at_each_eps(tmp_path, tiny_profile):
    args = ["--store", str(tmp_path / "runs"), "compute", "--profile", "ci", "--workers", "1",
            "--tensorboard", str(tmp_path / "tb")]
    assert main(args) == 0
    (run,) = [p for p in (tmp_path / "runs").iterdir() if (p / "complexity.csv").is_file()]
    folder = tmp_path / "tb" / run.name
    events = events_of(folder)
    assert_metrics_match(events, pd.read_csv(run / "metrics.csv"))
    table = pd.read_csv(run / "complexity.csv")
    assert sorted(set(table.eps)) == [0.5, 1.0] and sorted(set(table.epoch)) == [3, 4, 6, 8]
    tags = set(events.Tags()["scalars"])
    for eps, rows in table.groupby("eps"):
        for name, column in [("complexity/alg1_paper_bytes", "alg1_paper_bytes"),
                             ("complexity/edge_entropy_bytes", "edge_entropy_bytes"),
                             ("complexity/alg2_symbols_bytes", "alg2_symbols_bytes"),
                             ("complexity/naive_bytes", "naive_bytes"), ("bound/alg1_paper", "alg1_bound_paper"),
                             ("bound/edge_entropy", "edge_bound_entropy"),
                             ("description_length/pooled_paper_bits", "pooled_description_length_paper_bits"),
                             ("coarse/alg1_train_loss", "alg1_train_loss"), ("coarse/edge_delta", "edge_delta"),
                             ("tracking/reference_train_loss", "reference_train_loss")]:
            steps, values = series(events, f"{name}/eps_{eps:g}")
            assert steps == list(rows.epoch), (name, eps)
            assert values == pytest.approx(list(rows[column]), rel=1e-6), (name, eps)
    tracked = {t for t in tags if not t.startswith(("train/", "test/", "weights/"))}
    assert len(tracked) > 40 and all(t.endswith(("/eps_1", "/eps_0.5")) for t in tracked)
    written = json.loads((folder / "board.json").read_text())
    assert sorted(written["tracked"]) == sorted(f"{e}@{x:g}" for e, x in zip(table.epoch, table.eps))
    files = sorted(folder.glob("events.out.tfevents.*"))
    assert main(args) == 0  # again: everything is stored and written, so no new event file
    assert sorted(folder.glob("events.out.tfevents.*")) == files


def test_compute_tensorboard_is_refused_before_computing_when_dir_is_a_file(tmp_path, tiny_profile, capsys):
    (tmp_path / "tb").write_text("")
    args = ["--store", str(tmp_path / "runs"), "compute", "--profile", "ci", "--workers", "1",
            "--tensorboard", str(tmp_path / "tb")]
    assert main(args) == 2
    assert capsys.readouterr().err.strip().startswith("error: tensorboard: ")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_the_commands_help_imports_no_tensorboard():
    code = ("import sys\nfrom grok_lib.cli import build_parser\n"
            "for command in ('train', 'grid', 'compute'):\n"
            "    try:\n        build_parser().parse_args([command, '--help'])\n    except SystemExit:\n        pass\n"
            "print(sorted(m for m in sys.modules if m.startswith(('tensorboard', 'torch.utils.tensorboard', "
            "'grok_lib.monitor'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert sum(line.lstrip().startswith("--tensorboard DIR") for line in out.splitlines()) == 3  # in each help
    assert out.strip().splitlines()[-1] == "[]"  # and imported neither TensorBoard nor the monitor for it
