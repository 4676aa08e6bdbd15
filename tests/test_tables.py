"""A profile's committed tables (grok_lib.paper.tables): exported from a run store with provenance, read
back by the notebooks' set-up when the run store lacks the runs, and never written into by them."""

from __future__ import annotations

import json

import pytest

from grok_lib.errors import GrokError
from grok_lib.paper import notebook, summary, tables
from grok_lib.paper.pipeline import compute
from grok_lib.paper.profiles import get_profile
from grok_lib.store import RunStore


@pytest.fixture(scope="module")
def computed(tmp_path_factory):
    """The ci grid computed once, and its tables exported to a stand-in results/ folder."""
    root = tmp_path_factory.mktemp("tables")
    store = RunStore(root / "runs")
    profile = get_profile("ci")
    compute(profile, store)
    out = tables.export_tables(profile, store, root / "results" / "ci", command="test", wall_s=1.0)
    return root, store, out


def test_export_writes_the_small_tables_the_specimen_checkpoint_and_provenance(computed):
    root, store, out = computed
    provenance = json.loads((out / tables.PROVENANCE).read_text())
    assert provenance["profile"] == "ci" and provenance["command"] == "test" and provenance["commit"]
    assert {"machine", "date", "wall_s", "train_wall_s"} <= set(provenance)
    runs = sorted((out / "runs").iterdir())
    assert len(runs) == len(get_profile("ci").configs())
    for run in runs:
        assert {"config.json", "metrics.csv", "complexity.csv", "rate_distortion.csv"} <= {p.name for p in run.iterdir()}
        assert not (run / "resume.safetensors").exists()
    checkpoints = list(out.glob("runs/*/checkpoints/*.safetensors"))
    assert len(checkpoints) == 1  # the specimen's final checkpoint, for the sliders


def test_setup_reads_the_committed_tables_when_the_store_lacks_the_runs(computed, tmp_path, monkeypatch):
    root, _, out = computed
    monkeypatch.setattr(tables, "RESULTS_DIR", root / "results")
    monkeypatch.setenv("GROK_RUNS", str(tmp_path / "empty"))
    grid = notebook.setup("ci")
    assert grid.source == "tables" and str(grid.store.root).startswith(str(tmp_path / "empty"))
    assert len(grid.complexity()) > 0 and len(grid.rate_distortion()) > 0  # read, not measured
    assert not any(tmp_path.glob("empty/*-s0-*"))  # nothing was trained into the live store
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert summary.numbers_table("ci").shape[0] == len(get_profile("ci").regimes)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before  # the repo copy untouched
    with pytest.raises(GrokError, match="source"):
        notebook.setup("ci", source="somewhere")


def test_source_store_ignores_committed_tables_and_tables_requires_them(computed, tmp_path, monkeypatch):
    root, _, _ = computed
    monkeypatch.setattr(tables, "RESULTS_DIR", tmp_path / "nothing-committed")
    monkeypatch.setenv("GROK_RUNS", str(tmp_path / "empty"))
    with pytest.raises(GrokError, match="source"):
        notebook.setup("ci", source="tables")
    with pytest.raises(GrokError, match="profile"):
        summary.numbers_table("ci")  # neither a computed store nor committed tables: refused, not trained


def test_export_refuses_an_unfinished_grid(tmp_path):
    with pytest.raises(GrokError, match="export"):
        tables.export_tables(get_profile("ci"), RunStore(tmp_path / "runs"), tmp_path / "out")


def test_the_tighter_bound_is_measured_beside_the_papers_resumed_and_drawn(computed, tmp_path, monkeypatch):
    from grok_lib.complexity.tracking import read_complexity
    from grok_lib.paper import tighter

    root, store, _ = computed
    monkeypatch.setenv("GROK_RUNS", str(store.root))
    monkeypatch.setenv("GROK_FIGURES", str(tmp_path / "figures"))
    assert tighter.main(["--profile", "ci", "--runs", "mul-none", "mul-ours", "--refine", "2", "--quiet"]) == 0
    for config in get_profile("ci").configs():
        run = store.run(config)
        tight, paper = tighter.read_tighter(run), read_complexity(run)
        assert sorted(tight.epoch) == sorted(paper[paper.eps == 1.0].epoch.unique())
        assert (tight.tight_entropy_bytes <= tight.tight_paper_bytes).all()
        assert (tight.tight_n_evaluations > paper[paper.eps == 1.0].alg1_n_evaluations.min()).all()  # + refine
    assert {p.name for p in (tmp_path / "figures" / "ci").glob("*.png")} == {"fig01_tighter.png", "fig02_tighter.png"}
    # a second pass measures nothing; other settings are refused, naming them, before anything is written
    monkeypatch.setattr(tighter, "bayesian_complexity", lambda *a, **k: pytest.fail("measured again"))
    assert tighter.main(["--profile", "ci", "--runs", "mul-none", "--refine", "2", "--quiet"]) == 0
    assert tighter.main(["--profile", "ci", "--runs", "mul-none", "--refine", "3", "--quiet"]) == 2
    assert tighter.main(["--profile", "ci", "--runs", "add-wd", "--quiet"]) == 2


def test_the_committed_tighter_tables_draw_figs_1_and_2_in_a_store_without_runs(tmp_path, monkeypatch):
    """A fresh clone (an empty run store) redraws fig01_tighter and fig02_tighter from results/cpu/, measuring
    nothing, as make reproduce does; the paper's and the tighter bytes drawn are the committed tables' own."""
    from grok_lib.complexity.tracking import read_complexity
    from grok_lib.paper import tighter
    from grok_lib.paper.figures import variant_column

    monkeypatch.setenv("GROK_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("GROK_FIGURES", str(tmp_path / "figures"))
    monkeypatch.setattr(tighter, "bayesian_complexity", lambda *a, **k: pytest.fail("measured"))
    profile = get_profile("cpu")
    configs = [c for c in profile.configs() if f"{c.op}-{c.regime}" in tighter.FIG_RUNS]
    runs = tighter.stored_runs(profile, configs)
    assert runs is not None and all(r.path.parents[1] == tmp_path / "runs" / "committed" / "cpu" for r in runs)
    shown = variant_column(profile.algorithm_1)  # the curve the cpu Fig. 1 draws: the edge search
    frame = tighter.both_tables(runs, 1.0, profile.algorithm_1)
    for run in runs:
        paper, tight = read_complexity(run), tighter.read_tighter(run)
        paper = paper[paper.eps == 1.0].set_index("epoch")
        rows = frame[(frame.op == run.config.op) & (frame.regime == run.config.regime)].sort_values("epoch")
        assert len(rows) == len(tight) > 0
        assert list(rows[shown]) == list(paper.loc[rows.epoch, shown])
        assert (tight.tight_entropy_bytes.values < paper.loc[tight.epoch, "alg1_paper_bytes"].values).all()
    written = tighter.draw_stored("cpu")
    assert sorted(p.name for p in written) == ["fig01_tighter.png", "fig02_tighter.png"]
    first = [p.read_bytes() for p in written]
    assert [p.read_bytes() for p in tighter.draw_stored("cpu")] == first  # the same bytes again
    assert tighter.main(["--profile", "cpu", "--draw-only", "--quiet"]) == 0
    # the legend names a search seed other than the default (the title's seeds are the training's)
    assert "search seed" not in tighter.describe(tighter.settings_for(profile))
    assert tighter.describe(tighter.settings_for(profile, how=tighter.TIGHTEST.but(seed=1))).endswith("search seed 1")
    # where no tighter table is stored (the ci profile), the reproduction draws nothing and says so
    assert tighter.draw_stored("ci") == []
    assert tighter.main(["--profile", "ci", "--draw-only"]) == 2
