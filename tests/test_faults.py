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
from grok_lib.complexity.measurement import PAPER, BayesConfig
from grok_lib.errors import GrokError
from grok_lib.files import run_lock
from grok_lib.store import RunStore
from grok_lib.training.config import RunConfig
from grok_lib.training.train import logged_epochs, resume_training, train

TINY = dict(op="add", p=11, train_frac=0.5, d_model=16, n_heads=2, d_mlp=32, epochs=10, regime="ours")
FAST = TrackingSettings(eps=(1.0,), how=PAPER.but(budget=BayesConfig(n_random=2, n_guided=0, estimator="ET"),
                                                  algorithm_2="sweep-top"))


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


def test_a_lock_of_a_live_process_is_named_and_a_dead_ones_is_taken_over(tmp_path, caplog):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    time.sleep(1.1)  # the lock is taken after its holder started
    try:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        (tmp_path / ".lock-train").write_text(f"{sleeper.pid} {os.uname().nodename} {stamp}\n")
        with pytest.raises(GrokError, match=f"process {sleeper.pid}"):
            with run_lock(tmp_path, "train", wait=0.2):
                pass
    finally:
        sleeper.kill()
        sleeper.wait()
    with run_lock(tmp_path, "train", wait=0.2):  # the holder is gone: reported, then taken over
        assert (tmp_path / ".lock-train").read_text().split()[0] == str(os.getpid())
    assert "stale lock" in caplog.text
    assert not (tmp_path / ".lock-train").exists()


@pytest.mark.parametrize("content", ["", "garbage", "12 host", "\x00\xff\x00"])
def test_an_empty_or_garbage_lock_is_waited_for_briefly_then_taken_over(tmp_path, caplog, monkeypatch, content):
    """What a kill between creating and writing a lock leaves (or anything not ours): never a hang."""
    import grok_lib.files as files

    lock = tmp_path / ".lock-train"
    lock.write_text(content)
    with pytest.raises(GrokError, match="being written"):  # young: a writer may be about to fill it
        with run_lock(tmp_path, "train", wait=0.2):
            pass
    monkeypatch.setattr(files, "LOCK_GRACE_S", 0.0)
    old = time.time() - 60
    os.utime(lock, (old, old))
    with run_lock(tmp_path, "train", wait=0.2):
        assert lock.read_text().split()[0] == str(os.getpid())
    assert "stale lock (empty or unreadable" in caplog.text


def test_a_lock_whose_process_number_was_reused_is_taken_over(tmp_path, caplog):
    """A live process that started after the lock was taken is not its holder (the number was reused)."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / ".lock-train").write_text(f"{sleeper.pid} {os.uname().nodename} 2026-12-01T00:00:00\n")
        with run_lock(tmp_path, "train", wait=0.2):
            pass
    finally:
        sleeper.kill()
        sleeper.wait()
    assert "another program got its number" in caplog.text


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
    other = TrackingSettings(eps=(0.5,), how=FAST.how)
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


# 5. bad stored data is refused on read -------------------------------------------------------------------
def test_a_checkpoint_of_the_wrong_dtype_is_refused(tmp_path, reference):
    from grok_lib.files import save_tensors

    run = train(RunConfig(**TINY), RunStore(tmp_path), progress=False)
    epoch = run.checkpoints()[-1]
    weights = {k: (v * 100).to(torch.int32) for k, v in run.load_weights(epoch).items()}
    save_tensors(run.checkpoint_path(epoch), weights)
    with pytest.raises(GrokError, match="dtype"):
        run.load_model(epoch)


def test_a_metrics_table_cut_mid_line_is_refused_not_resumed(tmp_path, reference):
    run = train(RunConfig(**TINY), RunStore(tmp_path), progress=False, stop_after=6)
    text = run.metrics_path.read_text()
    run.metrics_path.write_text(text[: len(text) - 40])  # the last row loses its last fields
    with pytest.raises(GrokError, match="metrics.csv is damaged"):
        train(RunConfig(**TINY), RunStore(tmp_path), progress=False)


def test_a_config_missing_a_field_or_with_a_wrong_type_is_named(tmp_path):
    import json

    from grok_lib.store import read_config

    data = json.loads(RunConfig(**TINY).to_json())
    path = tmp_path / "config.json"
    path.write_text(json.dumps({k: v for k, v in data.items() if k != "d_model"}))
    with pytest.raises(GrokError, match="missing fields \\['d_model'\\]"):
        read_config(path)
    path.write_text(json.dumps({**data, "epochs": "ten"}))
    with pytest.raises(GrokError, match="epochs|type"):
        read_config(path)
    path.write_text(json.dumps({**data, "p": "eleven"}))  # a value the config refuses: the file is named
    with pytest.raises(GrokError, match=f"^config: {path} holds a bad value \\(p: "):
        read_config(path)
    path.write_bytes(b'{"op": "\xff\xfe"}')
    with pytest.raises(GrokError, match="unreadable"):
        read_config(path)


def test_eps_must_be_a_number_not_a_bool():
    from grok_lib.complexity.problem import check_eps

    with pytest.raises(GrokError, match="eps"):
        check_eps(True)


def test_garbled_resume_metadata_and_stray_checkpoint_files(tmp_path, reference):
    from grok_lib.files import save_tensors

    run = train(RunConfig(**TINY), RunStore(tmp_path), progress=False)
    (run.path / "checkpoints" / "epoch_notanumber.safetensors").write_text("stray")
    (run.path / "checkpoints" / "notes.txt").write_text("stray")
    assert run.checkpoints() == reference.checkpoints()
    save_tensors(run.resume_path, run.load_resume(), {"epoch": "ten"})
    with pytest.raises(GrokError, match="resume"):
        run.resume_epoch()


# 8. one line instead of a traceback ------------------------------------------------------------------------
def cli(*args, store, env=None):
    return subprocess.run([sys.executable, "-m", "grok_lib", "--store", str(store), *args], capture_output=True,
                          text=True, env=env)


TINY_ARGS = ["--op", "add", "--p", "11", "--train-frac", "0.5", "--d-model", "16", "--n-heads", "2", "--d-mlp",
             "32", "--epochs", "3", "--quiet"]


@pytest.mark.parametrize("args, field", [
    (["--device", "tpu"], "device"), (["--seed", str(2**63)], "seed"), (["--p", "100003"], "p"),
    (["--d-model", "1000000"], "d_model"),
] + ([] if torch.cuda.is_available() else [(["--device", "cuda"], "device")]))
def test_bad_input_is_one_line_and_leaves_no_run_behind(tmp_path, args, field):
    result = cli("train", *TINY_ARGS, *args, store=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"error: {field}:")
    assert not list(tmp_path.glob("*/config.json"))  # 9: no config-only run directory


def test_a_store_that_is_a_file_or_read_only_is_one_line(tmp_path):
    as_file = tmp_path / "store-file"
    as_file.write_text("")
    result = cli("train", *TINY_ARGS, store=as_file)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "store" in result.stderr, result.stderr
    result = cli("runs", store=as_file)  # listing it too: not an empty store
    assert result.returncode == 2 and result.stderr.startswith("error: store:"), result.stderr
    too_long = tmp_path / ("x" * 300)
    result = cli("train", *TINY_ARGS, store=too_long)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    if os.geteuid() != 0:  # root writes anywhere
        read_only = tmp_path / "ro"
        read_only.mkdir()
        read_only.chmod(0o500)
        result = cli("train", *TINY_ARGS, store=read_only)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr


def test_a_bad_device_is_refused_for_a_finished_run_and_for_complexity(tmp_path):
    assert cli("train", *TINY_ARGS, store=tmp_path).returncode == 0
    for command in (["train", *TINY_ARGS, "--device", "tpu"], ["complexity", *TINY_ARGS, "--device", "tpu"]):
        result = cli(*command, store=tmp_path)
        assert result.returncode == 2 and result.stderr.startswith("error: device:"), (command, result.stderr)


def test_reproduce_with_an_unknown_profile_is_one_line():
    result = subprocess.run([sys.executable, "-m", "grok_lib.paper.reproduce", "--profile", "foo"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "error: profile: unknown profile 'foo'; allowed: ci, cpu, p113, paper or auto"


def interrupt(args, store, ready: str) -> tuple[int, str]:
    """Run `python -m grok_lib --store STORE ARGS`, send it SIGINT once a file matching `ready` exists in the
    store; (exit status, stderr). A shell's background job inherits SIGINT ignored and Python keeps it so:
    the child gets the default back."""
    import signal

    proc = subprocess.Popen([sys.executable, "-m", "grok_lib", "--store", str(store), *args], stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list(store.glob(ready)):
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()  # never leave a long run behind
        proc.wait()
    return proc.returncode, err


def test_ctrl_c_says_how_to_resume(tmp_path):
    code, err = interrupt(["train", *TINY_ARGS[:-3], "--epochs", "100000", "--quiet"], tmp_path, "*/metrics.csv")
    assert code == 130 and "Traceback" not in err
    assert err.strip() == "interrupted; run the same command again to resume"
    assert not list(tmp_path.glob("*/.lock-train"))  # the lock went with it


def test_ctrl_c_in_a_complexity_pass_keeps_its_rows_and_says_how_to_resume(tmp_path):
    run_args = [*TINY_ARGS[:-3], "--epochs", "60", "--quiet"]
    assert cli("train", *run_args, store=tmp_path).returncode == 0
    code, err = interrupt(["complexity", *run_args, "--eps", "1", "--n-random", "2", "--n-guided", "2",
                           "--estimator", "ET", "--algorithm-2", "sweep-top"], tmp_path, "*/complexity.csv")
    assert code == 130 and "Traceback" not in err, err
    assert err.strip().startswith("interrupted")
    (table,) = tmp_path.glob("*/complexity.csv")
    rows = pd.read_csv(table)
    assert len(rows) >= 1 and not rows.isna().all(axis=1).any()  # what was measured is kept, whole
    assert not list(tmp_path.glob("*/.lock-complexity"))


# 9. leftovers ------------------------------------------------------------------------------------------------
def test_stored_files_are_readable_by_collaborators_and_leftover_temporaries_are_removed(tmp_path, reference):
    run = train(RunConfig(**TINY), RunStore(tmp_path), stop_after=4, progress=False)
    leftover = run.path / ".metrics.csv.abc123.tmp"  # what a kill inside atomic_write leaves
    leftover.write_text("half")
    train(RunConfig(**TINY), RunStore(tmp_path), progress=False)
    assert not leftover.exists()
    umask = os.umask(0)
    os.umask(umask)
    for path in [run.metrics_path, run.resume_path, run.path / "config.json", run.checkpoint_path(10)]:
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path


def test_an_empty_grok_runs_is_unset(monkeypatch):
    from grok_lib.store import REPO_ROOT, default_root

    monkeypatch.setenv("GROK_RUNS", "")
    assert default_root() == REPO_ROOT / "runs"


# 10. your own networks: any floating dtype, buffers in the description ------------------------------------
def _mlp_problem(dtype, with_norm=False):
    torch.manual_seed(0)
    layers = [torch.nn.Linear(6, 16)] + ([torch.nn.BatchNorm1d(16)] if with_norm else []) + \
             [torch.nn.ReLU(), torch.nn.Linear(16, 3)]
    model = torch.nn.Sequential(*layers).to(dtype)
    x = torch.randn(64, 6, dtype=dtype)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    if with_norm:  # running statistics that the output depends on in eval mode
        model.train()
        with torch.no_grad():
            model(x)
        model.eval()
    return model, x, y


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_measure_complexity_takes_any_floating_dtype(dtype):
    from grok_lib.complexity.problem import ComplexityProblem
    from grok_lib.complexity.search import measure_complexity

    model, x, y = _mlp_problem(dtype)
    loss = lambda out, t: torch.nn.functional.cross_entropy(out.float(), t)  # noqa: E731
    result = measure_complexity(model, loss, (x, y), eps=0.5, algorithm=2)
    problem = ComplexityProblem(model, loss, (x, y))
    assert result.paper_bytes > 0 and abs(result.train_loss - problem.reference_loss) < 0.5
    cg = problem.coarse_grain(problem.grainer.ranks(None), result.delta, None)
    weights = problem.weights_on_device(cg)
    assert all(w.dtype == dtype for w in weights.values())  # evaluated in the module's own dtype


def test_floating_buffers_are_part_of_the_description():
    from grok_lib.complexity.problem import ComplexityProblem, described_tensors

    model, x, y = _mlp_problem(torch.float32, with_norm=True)
    described = described_tensors(model)
    assert {"1.running_mean", "1.running_var"} <= set(described) and "1.num_batches_tracked" not in described
    problem = ComplexityProblem(model, torch.nn.functional.cross_entropy, (x, y))
    assert set(problem.grainer.names) == set(described)
    with torch.no_grad():
        model[1].running_var.mul_(100.0)  # the buffers change the output: the measured loss must follow
    moved = ComplexityProblem(model, torch.nn.functional.cross_entropy, (x, y))
    assert moved.reference_loss != problem.reference_loss


def test_a_full_disk_loses_nothing_already_written(tmp_path, monkeypatch, reference):
    import errno

    import grok_lib.files as files

    config = RunConfig(**TINY)
    run = train(config, RunStore(tmp_path), progress=False, stop_after=6)
    before = {p: p.read_bytes() for p in [run.metrics_path, run.resume_path]}
    real = files.os.replace

    def full_disk(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(files.os, "replace", full_disk)
    with pytest.raises(OSError):
        train(config, RunStore(tmp_path), progress=False)
    monkeypatch.setattr(files.os, "replace", real)
    assert {p: p.read_bytes() for p in before} == before  # the last complete state is intact
    assert not list(run.path.rglob("*.tmp")) and not (run.path / ".lock-train").exists()
    train(config, RunStore(tmp_path), progress=False)  # and resumes from it
    same_training(run, reference)


def test_every_single_bit_flip_of_a_checkpoint_is_detected(tmp_path):
    """Exhaustively, on a small file: a flip anywhere (header, metadata, checksum, data) fails the load with
    one CheckpointError; nothing loads as other weights."""
    from grok_lib.errors import CheckpointError
    from grok_lib.files import load_tensors, save_tensors

    path = tmp_path / "epoch_000007.safetensors"
    tensors = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.tensor([0.5])}
    save_tensors(path, tensors, {"epoch": "7"})
    original = path.read_bytes()
    assert load_tensors(path).keys() == tensors.keys()
    undetected = []
    for bit in range(8 * len(original)):
        flipped = bytearray(original)
        flipped[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(bytes(flipped))
        try:
            loaded = load_tensors(path)
        except CheckpointError:
            continue
        if loaded.keys() != tensors.keys() or any(not torch.equal(loaded[k], tensors[k]) for k in tensors):
            undetected.append(bit)
    assert undetected == [], f"{len(undetected)} of {8 * len(original)} flips loaded as other weights"


def test_a_checkpoint_that_holds_another_epoch_is_refused(tmp_path, reference):
    run = train(RunConfig(**TINY), RunStore(tmp_path), progress=False)
    first, last = run.checkpoints()[0], run.checkpoints()[-1]
    run.checkpoint_path(last).write_bytes(run.checkpoint_path(first).read_bytes())
    with pytest.raises(GrokError, match=f"holds epoch {first}, not {last}"):
        run.load_model(last)


def test_a_resume_state_without_its_optimizer_moments_is_refused(tmp_path):
    """Adam restarting from zero would give other metrics than an uninterrupted run: refused, not resumed."""
    from safetensors.torch import load_file

    from grok_lib.files import save_tensors

    config = RunConfig(**TINY)
    run = train(config, RunStore(tmp_path), progress=False, stop_after=3)
    tensors = load_file(str(run.resume_path))
    epoch = run.resume_epoch()
    kept = {k: v for k, v in tensors.items() if not k.startswith("optim/")}
    save_tensors(run.resume_path, kept, {"epoch": str(epoch)})
    before = run.metrics()
    with pytest.raises(GrokError, match="lacks optim/"):
        train(config, RunStore(tmp_path), progress=False)
    pd.testing.assert_frame_equal(run.metrics(), before)  # nothing was trained on or rewritten


@pytest.mark.parametrize("damage", ["last checkpoint", "metrics rows after epoch 3", "resume epoch 90"])
def test_a_finished_run_is_finished_only_if_its_files_say_so(tmp_path, damage):
    """A damaged store is refused, never believed: no training called finished, no checkpoint taken as final."""
    from safetensors.torch import load_file, save_file

    config = RunConfig(**TINY)
    store = RunStore(tmp_path)
    run = train(config, store, progress=False, stop_after=None if damage != "resume epoch 90" else 3)
    if damage == "last checkpoint":
        run.checkpoint_path(run.checkpoints()[-1]).unlink()
    elif damage == "metrics rows after epoch 3":
        metrics = run.metrics()
        run.write_metrics(metrics[metrics.epoch <= 3])
    else:
        save_file(load_file(str(run.resume_path)), str(run.resume_path), metadata={"epoch": "90"})
    with pytest.raises(GrokError, match="resume: .* says epoch .* but the run has no"):
        store.run(config).is_complete
    with pytest.raises(GrokError, match="damaged store"):
        train(config, store, progress=False)


def test_hostile_config_files_are_listed_as_unreadable_and_hide_no_other_run(tmp_path, reference, capsys):
    """Deep nesting, a huge file, an integer of thousands of digits: each its own line in `runs`."""
    from grok_lib.cli import main

    train(RunConfig(**TINY), RunStore(tmp_path), progress=False)
    for name, text in (("deep", "[" * 30000 + "]" * 30000), ("huge", " " * 100_000 + "{}"),
                       ("digits", '{"p": ' + "9" * 5000 + "}")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(text)
    capsys.readouterr()
    assert main(["--store", str(tmp_path), "runs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sum("unreadable: config:" in line for line in lines) == 3
    assert any(line.startswith("add-ours") and "epoch" in line for line in lines)  # the good run still listed


def test_a_model_on_the_meta_device_or_labels_out_of_range_name_the_culprit():
    import torch.nn.functional as F

    from grok_lib.complexity import measure_complexity

    x = torch.randn(32, 8)
    y = (x[:, 0] > 0).long()
    with torch.device("meta"):
        meta = torch.nn.Linear(8, 2)
    with pytest.raises(GrokError, match="module: has parameters on the meta device"):
        measure_complexity(meta, F.cross_entropy, (x, y), eps=0.1, search="edge")
    for bad in (y + 5, y - 3):  # class labels outside the two outputs
        with pytest.raises(GrokError, match=r"train_data: loss_fn\(module\(x\), y\) fails .*out of bounds"):
            measure_complexity(torch.nn.Linear(8, 2), F.cross_entropy, (x, bad), eps=0.1, search="edge")


def test_a_figures_folder_that_is_a_file_is_named_before_anything_runs(tmp_path, monkeypatch, capsys):
    from grok_lib.paper import reproduce

    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("GROK_FIGURES", str(tmp_path / "afile"))
    monkeypatch.setenv("GROK_RUNS", str(tmp_path / "runs"))
    monkeypatch.setattr(reproduce, "precompute", lambda *a, **k: pytest.fail("ran before the check"))
    assert reproduce.main(["--profile", "ci", "--only", "02_training.ipynb"]) == 2
    assert capsys.readouterr().err.strip() == f"error: GROK_FIGURES: {tmp_path / 'afile'} is a file; it must be a folder"
    assert not (tmp_path / "runs").exists()
