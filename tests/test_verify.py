"""`python -m grok_lib verify`: committed results retrained and re-measured, a changed number caught."""

import json
import shutil

import pandas as pd
import pytest
import torch

from grok_lib.cli import main
from grok_lib.paper.pipeline import compute
from grok_lib.paper.profiles import get_profile
from grok_lib.paper.tables import RESULTS_DIR, export_tables
from grok_lib.paper.verify import recorded, settings_from
from grok_lib.paper.profiles import tracking_settings
from grok_lib.store import RunStore


@pytest.fixture(scope="module")
def committed(tmp_path_factory):
    """The ci grid computed (one thread, as the Dask workers) and exported as a committed folder would be."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        store = RunStore(tmp_path_factory.mktemp("runs"))
        compute(get_profile("ci"), store)
        return export_tables(get_profile("ci"), store, tmp_path_factory.mktemp("results") / "ci", threads=1)
    finally:
        torch.set_num_threads(previous)


def test_the_provenance_records_what_a_retraining_needs(committed):
    provenance = json.loads((committed / "PROVENANCE.json").read_text())
    assert {"commit", "command", "machine", "date", "torch", "threads"} <= set(provenance)
    assert recorded(provenance) == (torch.__version__, 1)
    # provenance from before these fields: torch read from the machine line, one-thread workers
    assert recorded({"machine": "vm (x86_64, 2 CPU cores, torch 2.13.0+cpu, no GPU)"}) == ("2.13.0+cpu", 1)


def test_stored_settings_read_back_as_the_settings_that_wrote_them(committed):
    run = next(p for p in (committed / "runs").iterdir() if (p / "complexity.json").is_file())
    assert settings_from((run / "complexity.json").read_text()) == tracking_settings(get_profile("ci"))


def test_verify_retrains_a_prefix_and_remeasures_the_checkpoint_bit_for_bit(committed, capsys):
    assert main(["verify", str(committed), "--runs", "2", "--epochs", "25"]) == 0
    out = capsys.readouterr().out
    assert "bit for bit" in out and "3 passed, 0 failed" in out
    assert "complexity at epoch 40" in out


def test_verify_fails_on_a_changed_metric_and_on_a_changed_complexity(committed, tmp_path, capsys):
    altered = tmp_path / "ci"
    shutil.copytree(committed, altered)
    run = sorted((altered / "runs").iterdir())[0]
    metrics = pd.read_csv(run / "metrics.csv")
    metrics.loc[metrics.epoch == 3, "test_loss"] += 1e-9
    metrics.to_csv(run / "metrics.csv", index=False)
    assert main(["verify", str(altered), "--run", run.name, "--epochs", "5", "--no-complexity"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "test_loss" in out and "0 passed, 1 failed" in out

    specimen = next(p for p in (altered / "runs").iterdir() if (p / "checkpoints").is_dir())
    table = pd.read_csv(specimen / "complexity.csv")
    table.loc[table.index[-1], "edge_paper_bytes"] += 1
    table.to_csv(specimen / "complexity.csv", index=False)
    assert main(["verify", str(altered), "--run", run.name, "--epochs", "2"]) == 1
    assert "edge_paper_bytes" in capsys.readouterr().out


def test_verify_refuses_what_is_not_a_committed_folder(tmp_path, committed, capsys):
    assert main(["verify", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: folder:")
    assert main(["verify", str(committed), "--run", "nope"]) == 2
    assert capsys.readouterr().err.startswith("error: run: no committed run 'nope'")
    assert main(["verify", str(committed), "--epochs", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: epochs:")


@pytest.mark.skipif(not (RESULTS_DIR / "cpu" / "PROVENANCE.json").is_file(), reason="no committed cpu tables")
def test_the_committed_cpu_tables_verify_on_a_prefix(capsys):
    """What CI checks on every change: a short prefix of a committed run retrains to the committed metrics."""
    assert main(["verify", str(RESULTS_DIR / "cpu"), "--run", "add-ours-s0-a903a40111", "--epochs", "20",
                 "--no-complexity"]) == 0
    assert "1 passed, 0 failed" in capsys.readouterr().out
