"""The committed results (results/<profile>/): every run its profile names has its tables tracked by git, and
with an empty run store the notebooks draw from them without planning a single training epoch."""

from __future__ import annotations

import subprocess

import pytest

from grok_lib.paper import notebook, pipeline, reproduce
from grok_lib.paper.profiles import get_profile
from grok_lib.paper.tables import PROVENANCE, RESULTS_DIR, TABLES
from grok_lib.store import REPO_ROOT

COMMITTED = sorted(p.parent for p in RESULTS_DIR.glob(f"*/{PROVENANCE}"))
REQUIRED = ("config.json", "metrics.csv", "complexity.json", "complexity.csv", "rate_distortion.csv")
assert set(REQUIRED) <= set(TABLES)


def tracked(folder) -> set[str]:
    out = subprocess.run(["git", "ls-files", "-z", str(folder.relative_to(REPO_ROOT))], cwd=REPO_ROOT,
                         capture_output=True, text=True, check=True).stdout
    return {p for p in out.split("\0") if p}


def test_the_committed_folders_are_what_the_readme_promises():
    assert [p.name for p in COMMITTED] == ["cpu", "p113"]


@pytest.mark.parametrize("folder", COMMITTED, ids=lambda p: p.name)
def test_every_run_of_the_profile_has_its_tables_tracked_by_git(folder):
    files = tracked(folder)
    assert f"results/{folder.name}/{PROVENANCE}" in files
    profile = get_profile(folder.name)
    for config in profile.configs():
        for name in REQUIRED:
            assert f"results/{folder.name}/runs/{config.key()}/{name}" in files, f"{config.key()}/{name} untracked"
    assert any("/checkpoints/" in f for f in files), "the specimen's checkpoint (the sliders') is untracked"


@pytest.mark.parametrize("folder", COMMITTED, ids=lambda p: p.name)
def test_an_empty_store_draws_from_the_committed_tables_and_plans_no_training(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("GROK_RUNS", str(tmp_path / "empty"))
    planned = []
    monkeypatch.setattr(notebook, "train_missing", lambda configs, *a, **k: planned.extend(configs) or [])
    monkeypatch.setattr(pipeline.Runner, "run", lambda self, jobs, *a, **k: planned.extend(jobs))
    grid = notebook.setup(folder.name)
    assert grid.source == "tables" and planned == []
    assert len(grid.complexity()) > 0 and len(grid.rate_distortion()) > 0
    if not get_profile(folder.name).reproduce_computes:  # the batch reproduction draws from them too
        monkeypatch.setattr(pipeline, "compute", lambda *a, **k: planned.append("compute"))
        reproduce.precompute(folder.name, with_lmn=False)
        # nothing of the grid: only notebook 01's own small specimen, which is not a committed table
        assert [getattr(job, "fn", None) for job in planned] in ([], [reproduce.train_specimen])


@pytest.mark.parametrize("folder", COMMITTED, ids=lambda p: p.name)
def test_the_stored_settings_written_before_measurement_read_as_the_profiles_settings(folder):
    """complexity.json and rate_distortion.csv's settings were written in the flat format (seed, objective,
    split, bayes with refine, ...) before `Measurement`; they read as the TrackingSettings the profile asks for
    now, so nothing committed is measured again or refused."""
    import json

    import pandas as pd

    from grok_lib.complexity.tracking import TrackingSettings, as_stored
    from grok_lib.paper.profiles import tracking_settings

    profile = get_profile(folder.name)
    along, final = tracking_settings(profile), tracking_settings(profile, final=True)
    for config in profile.configs():
        run = folder / "runs" / config.key()
        stored = (run / "complexity.json").read_text()
        assert as_stored(stored) == json.loads(along.to_json()) and TrackingSettings.from_json(stored) == along
        inline = pd.read_csv(run / "rate_distortion.csv")["settings"].iloc[0]
        assert TrackingSettings.from_json(inline) == final
