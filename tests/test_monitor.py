"""grok_lib.monitor: the ComplexityMonitor in a plain training loop (CSV and TensorBoard written, read back and
compared), close() waiting for pending work, Ctrl-C keeping what was measured, bad arguments refused by name,
`grok_lib train --tensorboard`, and the complexity chart shown by a real `tensorboard --logdir` in Chromium.

Each monitor starts one worker process (a few seconds of imports), so the module shares one monitored loop
(`monitored`) among most tests. Without the tensorboard package the TensorBoard tests are skipped; without
Chromium or playwright the browser test is skipped, as in tests/test_browser.py.
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from grok_lib.errors import GrokError
from grok_lib.monitor import ComplexityMonitor, Schedule, log_steps, read_wandb_history, tag
from grok_lib.training.train import log_schedule

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None
needs_tensorboard = pytest.mark.skipif(not HAS_TENSORBOARD, reason="the tensorboard package is missing: "
                                       "pip install tensorboard (or -e '.[dev]')")
SCHEDULE = 5  # every 5 steps
STEPS = 40  # so 8 snapshots: steps 0, 5, ..., 35


def classifier_data(seed: int = 0):
    """Three classes of 8-d points (the largest of the first three coordinates); 96 train, 48 test."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(144, 8, generator=g)
    y = x[:, :3].argmax(dim=1)
    return (x[:96], y[:96]), (x[96:], y[96:])


def mlp() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))


@pytest.fixture(scope="module")
def monitored(tmp_path_factory):
    """A plain AdamW loop of STEPS steps with a monitor every SCHEDULE steps, closed at once after the loop."""
    if not HAS_TENSORBOARD:
        pytest.skip("the tensorboard package is missing: pip install tensorboard")
    out = tmp_path_factory.mktemp("monitor")
    train, test = classifier_data()
    model = mlp()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    monitor = ComplexityMonitor(model, F.cross_entropy, train, test_data=test, schedule=SCHEDULE,
                                csv=out / "complexity.csv", tensorboard=out / "tb", nice=0)
    taken = []
    for step in range(STEPS):
        optimizer.zero_grad()
        F.cross_entropy(model(train[0]), train[1]).backward()
        optimizer.step()
        if monitor.step(step):
            taken.append(step)
    pending = monitor.pending  # the worker is still starting: nothing can have come back yet
    start = time.perf_counter()
    monitor.close()
    return {"out": out, "monitor": monitor, "taken": taken, "pending_at_close": pending,
            "close_s": time.perf_counter() - start}


def test_the_schedules():
    assert log_steps(10_000) == log_schedule(10_000)  # the same floor(1.3^n) as our runs
    log = Schedule("log")
    assert [s for s in range(200) if log.due(s)] == log_steps(199)
    every = Schedule(10)
    assert [s for s in range(0, 50, 4) if every.due(s)] == [0, 12, 20, 32, 40]  # a step past one is due
    listed = Schedule([3, 7])
    assert [s for s in range(20) if listed.due(s)] == [3, 7]
    never = Schedule(None)
    assert not any(never.due(s) for s in range(100))


@pytest.mark.parametrize("options, field", [
    ({"schedule": -5}, "schedule"), ({"schedule": 0}, "schedule"), ({"schedule": "often"}, "schedule"),
    ({"schedule": [3, -1]}, "schedule"), ({"eps": -1.0}, "eps"), ({"options": {"serach": "edge"}}, "options"),
    ({"workers": 0}, "workers"), ({"nice": 25}, "nice"), ({"lmn_samples": 1}, "lmn_samples"),
    ({"max_queued_mb": 0}, "max_queued_mb"), ({"bound_delta": 1.5}, "bound_delta"),
    ({"loss_fn": lambda out, y: F.cross_entropy(out, y)}, "model"), ({"train_data": torch.zeros(3)}, "train_data"),
])
def test_a_bad_argument_is_one_grok_error_naming_it(options, field, tmp_path):
    train, _ = classifier_data()
    arguments = {"model": mlp(), "loss_fn": F.cross_entropy, "train_data": train, **options}
    with pytest.raises(GrokError) as err:
        ComplexityMonitor(arguments.pop("model"), arguments.pop("loss_fn"), arguments.pop("train_data"),
                          csv=tmp_path / "c.csv", **arguments)
    assert err.value.field == field and str(err.value).startswith(f"{field}: ")
    assert not (tmp_path / "c.csv").exists()


def test_the_loop_writes_one_csv_row_per_snapshot(monitored):
    table = pd.read_csv(monitored["out"] / "complexity.csv")
    assert monitored["taken"] == list(range(0, STEPS, SCHEDULE))
    assert list(table.step) == monitored["taken"]
    for column in ["paper_bytes", "symbols_bytes", "entropy_bytes", "bound_paper", "bound_entropy", "train_loss",
                   "train_acc", "test_acc", "l2_norm", "spectral_entropy", "effective_rank", "lmn", "lag_s",
                   "measure_s", "coarse_train_loss"]:
        assert table[column].notna().all() and (table[column] >= 0).all(), column
    assert (table.lmn >= 1).all()  # an MLP of nn.Linear layers: LMN is measured
    assert table.train_loss.iloc[-1] < table.train_loss.iloc[0]


def test_close_waits_for_the_pending_measurements(monitored):
    monitor = monitored["monitor"]
    assert monitored["pending_at_close"] > 0  # close() was called with work outstanding ...
    assert monitor.pending == 0 and len(monitor.results()) == len(monitored["taken"])  # ... and waited for it
    assert not monitor.failures
    with pytest.raises(GrokError, match="monitor: is closed"):
        monitor.measure(99)


@needs_tensorboard
def test_the_tensorboard_events_match_the_csv(monitored):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(monitored["out"] / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"complexity/paper_bytes", "complexity/symbols_bytes", "complexity/entropy_bytes", "bound/paper",
            "weights/l2_norm", "weights/spectral_entropy", "weights/effective_rank", "lmn/lmn", "train/loss",
            "test/acc", "monitor/lag_s"} <= tags
    table = pd.read_csv(monitored["out"] / "complexity.csv")
    compared = 0
    for column in table.columns:
        if column in ("step", "wall_s", "eps") or not pd.api.types.is_numeric_dtype(table[column]):
            continue
        written = table[["step", column]].dropna()
        if written.empty:
            assert tag(column) not in tags  # a column of NaN (tau with no low-rank step) draws nothing
            continue
        scalars = events.Scalars(tag(column))
        assert [e.step for e in scalars] == list(written.step), column
        assert [e.value for e in scalars] == pytest.approx(list(written[column]), rel=1e-6), column
        compared += 1
    assert compared >= 20


def test_ctrl_c_in_the_loop_keeps_what_was_measured(tmp_path):
    train, test = classifier_data()
    model = mlp()
    with pytest.raises(KeyboardInterrupt):
        with ComplexityMonitor(model, F.cross_entropy, train, schedule=None, csv=tmp_path / "c.csv",
                               lmn_samples=0, nice=0) as monitor:
            monitor.measure(1)
            assert monitor.wait(timeout=120)
            for step in range(2, 6):
                monitor.measure(step)
            raise KeyboardInterrupt  # as Ctrl-C in the loop
    table = pd.read_csv(tmp_path / "c.csv")
    measured = sorted(int(row["step"]) for row in monitor.rows)
    assert 1 in measured and list(table.step) == measured  # every result that came back is in the file
    assert monitor.pending == 0


@needs_tensorboard
def test_grok_lib_train_tensorboard_writes_metrics_and_complexity(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from grok_lib.cli import main

    args = ["--store", str(tmp_path / "runs"), "train", "--op", "add", "--regime", "ours", "--p", "11",
            "--train-frac", "0.5", "--d-model", "16", "--n-heads", "2", "--d-mlp", "32", "--epochs", "6", "--quiet",
            "--tensorboard", str(tmp_path / "tb")]
    assert main(args) == 0
    (folder,) = (tmp_path / "tb").iterdir()  # DIR/<run name>/
    assert folder.name.startswith("add-ours-s0-") and list(folder.glob("events.out.tfevents.*"))
    events = EventAccumulator(str(folder))
    events.Reload()
    logged = [1, 2, 3, 4, 6]  # floor(1.3^n) up to 6, and the last epoch
    metrics = pd.read_csv(next((tmp_path / "runs").iterdir()) / "metrics.csv")
    for name, column in [("train/loss", "train_loss"), ("test/acc", "test_acc"), ("weights/l2_norm", "l2_norm"),
                         ("weights/spectral_entropy", "spectral_entropy"),
                         ("weights/effective_rank", "effective_rank")]:
        scalars = events.Scalars(name)
        assert [e.step for e in scalars] == logged, name
        assert [e.value for e in scalars] == pytest.approx(list(metrics[column]), rel=1e-6), name
    for name in ["complexity/paper_bytes", "complexity/entropy_bytes", "bound/paper"]:
        assert sorted(e.step for e in events.Scalars(name)) == logged, name
    # the same command again: the run is reused and nothing is written twice
    assert main(args) == 0
    events = EventAccumulator(str(folder))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == logged
    assert sorted(e.step for e in events.Scalars("complexity/paper_bytes")) == logged


def _browser_skip_reason() -> str | None:
    if not HAS_TENSORBOARD:
        return "the tensorboard package is missing: pip install tensorboard"
    if not Path(CHROMIUM).exists():
        return "no Chromium: install Debian's with `apt-get install chromium` (never `playwright install`)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing: pip install -e '.[dev]'"
    return None


@pytest.mark.browser
def test_tensorboard_shows_the_complexity_chart_in_chromium(monitored, tmp_path):
    reason = _browser_skip_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path / "tensorboard.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(monitored["out"] / "tb"),
                               "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                              env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/data/runs", timeout=2)
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    log_text = (tmp_path / "tensorboard.log").read_text()
                    raise AssertionError(f"tensorboard did not start: {log_text}") from None
                time.sleep(0.3)
        table = pd.read_csv(monitored["out"] / "complexity.csv")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"{url}/#timeseries", timeout=60_000)
                page.fill("input[placeholder='Filter tags (regex)']", "complexity/paper_bytes")
                card = page.locator("card-view", has_text="complexity/paper_bytes").first
                card.wait_for(timeout=60_000)
                card.locator("canvas, svg").first.wait_for(timeout=60_000)  # the line chart is drawn
                last = table.iloc[-1]  # its data table: the last step and its value
                wanted = [f"{int(last.step):,}", f"{int(last.paper_bytes):,}"]
                deadline = time.time() + 30
                while not all(w in card.inner_text() for w in wanted) and time.time() < deadline:
                    time.sleep(0.25)
                text = card.inner_text()
                if not all(w in text for w in wanted):
                    page.screenshot(path=str(tmp_path / "tensorboard.png"))
                assert all(w in text for w in wanted), (wanted, text[:500])
                assert math.isfinite(float(last.paper_bytes))
            finally:
                browser.close()
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def test_the_offline_wandb_run_holds_what_the_csv_holds(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="wandb is not installed (an optional extra: pip install wandb)")
    home = tmp_path / "wandb-home"  # wandb's settings, cache and data: nothing written outside tmp_path
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(home))
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONSOLE", "off")  # pytest's capture of stdout stays as it is
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    train, test = classifier_data()
    model = mlp()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    with ComplexityMonitor(model, F.cross_entropy, train, test_data=test, schedule=4, csv=tmp_path / "c.csv",
                           wandb="grok-monitor-test", nice=0) as monitor:
        (sink,) = [s for s in monitor.sinks if type(s).__name__ == "WandbSink"]
        assert sink.run.settings.mode == "offline"
        sink.run.log({"note": "x" * 70_000})  # a record longer than two of the log's 32 KiB blocks
        for step in range(12):
            optimizer.zero_grad()
            F.cross_entropy(model(train[0]), train[1]).backward()
            optimizer.step()
            monitor.step(step)
    assert not monitor.failures
    # read back from the file alone, at once: close() returned once wandb's service had written it whole
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    frame = read_wandb_history(run_dir)
    assert list(frame.note.dropna()) == ["x" * 70_000]
    history = {int(row["step"]): {k: v for k, v in row.items() if v == v and k != "note"}
               for row in frame[frame.note.isna()].to_dict("records")}
    table = pd.read_csv(tmp_path / "c.csv")
    assert sorted(history) == list(table.step) == [0, 4, 8]
    compared = set()
    for row in table.to_dict("records"):
        logged = history[row["step"]]
        wanted = {tag(c): v for c, v in row.items() if c not in ("step", "wall_s", "eps")
                  and isinstance(v, float) and math.isfinite(v)}
        assert set(logged) - {"step", "_step", "_runtime", "_timestamp"} == set(wanted), row["step"]
        assert [logged[t] for t in wanted] == pytest.approx(list(wanted.values()), rel=1e-12, abs=1e-300)
        compared |= set(wanted)
    assert {"complexity/paper_bytes", "complexity/entropy_bytes", "bound/paper", "lmn/lmn", "train/loss",
            "weights/l2_norm", "monitor/lag_s"} <= compared
    run_file = next(run_dir.glob("run-*.wandb"))
    torn = tmp_path / "torn.wandb"  # a log cut short (a run still writing): the whole records before the cut
    torn.write_bytes(run_file.read_bytes()[: run_file.stat().st_size * 3 // 4])
    assert len(read_wandb_history(torn)) < len(frame)
    (tmp_path / "other.wandb").write_bytes(b"not a wandb log")
    with pytest.raises(GrokError, match="wandb: "):
        read_wandb_history(tmp_path / "other.wandb")
