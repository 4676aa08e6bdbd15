"""The notebooks as committed: reading order, no outputs, one JSON-typed parameters cell, nbval-ready widgets.

Executing them under nbval is tests/test_nbval.py's job; these tests check what must hold before anything
runs.
"""

import ast
import json
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from grok_lib.errors import GrokError
from grok_lib.paper.figures import mean_se
from grok_lib.paper.profiles import get_profile, profile_configs
from grok_lib.paper.reproduce import CHECK_MARK, LANES, NOTEBOOK_DIR, NOTEBOOKS, read_references, run_notebooks

NOTEBOOK_PATHS = [NOTEBOOK_DIR / name for name in NOTEBOOKS]
JSON_TYPES = (str, int, float, bool, type(None), list, dict)


def code_cells(path: Path):
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def test_the_batch_runs_every_notebook_in_reading_order():
    on_disk = sorted(p.name for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    assert list(NOTEBOOKS) == on_disk
    assert [n[:2] for n in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06"]


def test_the_two_lanes_hold_every_notebook_once_in_reading_order_and_slider_caches_share_one():
    assert sorted(n for lane in LANES for n in lane) == sorted(NOTEBOOKS)
    for lane in LANES:
        assert list(lane) == sorted(lane)
    sliders = [n for n in NOTEBOOKS if "explorer" in "".join(c.source for c in code_cells(NOTEBOOK_DIR / n))]
    assert len(sliders) >= 2 and any(set(sliders) <= set(lane) for lane in LANES)


def test_a_third_lane_is_refused_naming_the_argument(tmp_path):
    with pytest.raises(GrokError, match="lanes"):
        run_notebooks("ci", NOTEBOOKS, tmp_path, lanes=3)


def test_cpu_profile_trains_the_two_layer_ops_for_fewer_epochs(monkeypatch):
    monkeypatch.delenv("GROK_PROFILE", raising=False)
    cpu = get_profile("cpu")
    epochs = {(c.op, c.n_layers): c.epochs for c in cpu.configs()}
    assert epochs == {("add", 1): 1200, ("mul", 1): 1200, ("sub", 2): 705, ("div", 2): 705}
    assert cpu.epochs == 1200 and cpu.fields_for("sub")["p"] == cpu.fields_for("add")["p"] == 59


def test_p113_profile_trains_fig1_runs_to_the_papers_length_and_the_rest_to_1550():
    p113 = get_profile("p113")
    runs = {(c.op, c.regime, c.seed): c.epochs for c in p113.configs()}
    long = {(op, regime, seed) for op, regime in (("mul", "none"), ("mul", "ours")) for seed in (0, 1, 2)}
    assert {k for k, e in runs.items() if e == 10_000} == long
    assert {e for k, e in runs.items() if k not in long} == {1550} and len(runs) == 16
    assert p113.epochs == 10_000 and {p113.op_epochs(op) for op in p113.ops} == {1550}
    frame = pd.DataFrame(dict(op=["mul", "mul", "add"], epoch=[1550, 1700, 1550]))
    assert p113.common_epochs(frame).index.tolist() == [0, 2]
    cpu = get_profile("cpu")
    assert cpu.op_epochs("add") == 1200 and cpu.op_epochs("sub") == 705


@pytest.mark.parametrize("path", NOTEBOOK_PATHS, ids=NOTEBOOKS)
def test_committed_notebook_has_no_outputs(path):
    for cell in code_cells(path):
        assert cell.outputs == [] and cell.execution_count is None, cell.source[:80]


@pytest.mark.parametrize("path", NOTEBOOK_PATHS, ids=NOTEBOOKS)
def test_every_check_cell_has_a_short_stored_reference(path):
    texts = read_references()[path.name]
    checks = [c for c in code_cells(path) if c.source.startswith(CHECK_MARK)]
    assert sorted(c["id"] for c in checks) == sorted(texts)
    assert all(0 < len(texts[c["id"]]) < 2000 for c in checks)


@pytest.mark.parametrize("path", NOTEBOOK_PATHS, ids=NOTEBOOKS)
def test_notebook_has_one_parameters_cell_of_json_values_with_a_profile(path):
    cells = code_cells(path)
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    values = {}
    for node in ast.parse(cells[tagged[0]].source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, ast.dump(node)
        value = ast.literal_eval(node.value)  # literals only: papermill can inject them
        assert isinstance(value, JSON_TYPES) and json.loads(json.dumps(value)) == value
        values[node.targets[0].id] = value
    assert values["profile"] in ("ci", "cpu", "paper", "auto")
    # the derived values come from grok_lib in the very next cell
    derived = cells[tagged[0] + 1].source
    assert "get_profile(profile)" in derived or "setup(profile, ops, regimes, seeds)" in derived


@pytest.mark.parametrize("name", NOTEBOOKS[1:5])
def test_transformer_notebooks_share_one_set_up(name):
    """02-05 derive profile, grid, runs and figure folder with grok_lib.paper.notebook.setup, none by hand."""
    cells = code_cells(NOTEBOOK_DIR / name)
    tagged = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    assert "grid = setup(profile, ops, regimes, seeds)" in cells[tagged + 1].source
    assert not any("train_missing(" in c.source or "get_profile(" in c.source for c in cells)


def test_lmn_notebook_draws_every_figure_with_the_library():
    """Each LMN figure is drawn in one place, grok_lib.paper.lmn_figures; notebook 06 only names it."""
    from grok_lib.paper.lmn_figures import FIGURE_STEMS

    sources = [c.source for c in code_cells(NOTEBOOK_DIR / "06_lmn.ipynb")]
    drawn = [stem for stem in FIGURE_STEMS for s in sources if f'draw_and_save("{stem}"' in s]
    assert drawn == list(FIGURE_STEMS)
    assert not any(re.search(r"\bplot_|subplots\(|\bsave\(|savefig\(", s) for s in sources)


@pytest.mark.parametrize("path", NOTEBOOK_PATHS, ids=NOTEBOOKS)
def test_widget_cells_are_ignored_by_nbval_and_follow_a_saved_static_figure(path):
    cells = code_cells(path)
    for i, cell in enumerate(cells):
        if "explorer(" in cell.source and "import" not in cell.source:
            assert cell.source.startswith("# NBVAL_IGNORE_OUTPUT")
            assert "save(" in cells[i - 1].source


def test_nbval_checks_some_cells_and_has_a_sanitize_file():
    checked = sum(c.source.startswith(CHECK_MARK) for p in NOTEBOOK_PATHS for c in code_cells(p))
    assert checked >= 4
    assert (NOTEBOOK_DIR / "nbval_sanitize.cfg").is_file()


def test_an_explicit_profile_beats_the_environment_which_only_fills_in_auto(monkeypatch):
    monkeypatch.setenv("GROK_PROFILE", "ci")
    assert get_profile("paper").name == "paper" and get_profile("auto").name == "ci"
    monkeypatch.delenv("GROK_PROFILE")
    assert get_profile("auto").name == "cpu"  # no CUDA here
    monkeypatch.setenv("GROK_PROFILE", "laptop")
    with pytest.raises(GrokError, match="GROK_PROFILE"):
        get_profile("auto")


def test_every_notebook_defaults_to_auto():
    paths = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("0*.ipynb"))
    assert len(paths) == 6
    for path in paths:
        parameters = [c for c in nbformat.read(path, 4).cells if "parameters" in c.metadata.get("tags", [])]
        assert parameters and parameters[0].source.startswith('profile = "auto"'), path.name


def test_unknown_profile_is_refused_naming_the_field(monkeypatch):
    monkeypatch.delenv("GROK_PROFILE", raising=False)
    with pytest.raises(GrokError, match="profile"):
        get_profile("laptop")


def test_paper_profile_is_the_full_protocol(monkeypatch):
    monkeypatch.delenv("GROK_PROFILE", raising=False)
    paper = get_profile("paper")
    configs = profile_configs(paper)
    assert len(configs) == 4 * 3 * 6
    assert {c.p for c in configs} == {113} and {c.epochs for c in configs} == {10_000}
    assert (paper.how.budget.n_random, paper.how.budget.n_guided, len(paper.track_eps)) == (10, 50, 7)


def test_empty_grid_arguments_take_the_profile_defaults_and_lists_narrow_it(monkeypatch):
    monkeypatch.delenv("GROK_PROFILE", raising=False)
    cpu = get_profile("cpu")
    assert len(cpu.configs([], [], [])) == len(cpu.ops) * len(cpu.regimes) * len(cpu.seeds)
    assert [(c.op, c.regime, c.seed) for c in cpu.configs(["mul"], ["ours"], [3])] == [("mul", "ours", 3)]


def test_standard_error_is_std_over_sqrt_seeds_and_zero_for_one_seed():
    frame = pd.DataFrame(dict(epoch=[1, 1, 1, 2], y=[1.0, 2.0, 3.0, 5.0]))
    stats = mean_se(frame, "y").set_index("epoch")
    assert stats.loc[1, "mean"] == 2.0 and stats.loc[1, "se"] == pytest.approx(1.0 / 3**0.5)
    assert stats.loc[2, "se"] == 0.0


@pytest.mark.parametrize("path", NOTEBOOK_PATHS, ids=NOTEBOOKS)
def test_notebooks_ask_for_the_kernel_the_makefile_installs(path):
    name = nbformat.read(path, as_version=4).metadata.kernelspec.name
    assert name == "grok-complexity"
    assert f"--name {name}" in (NOTEBOOK_DIR.parent / "Makefile").read_text()


@pytest.mark.parametrize("path", NOTEBOOK_PATHS, ids=NOTEBOOKS)
def test_no_cell_ends_in_a_bare_save_that_would_echo_its_path(path):
    for cell in code_cells(path):
        last = cell.source.rstrip().splitlines()[-1] if cell.source.strip() else ""
        assert not last.startswith(("save(", "save_figure(")), cell.source[:80]


PROGRESS = re.compile(r"\d+%\||\d+/\d+ \[|it/s|s/it")  # a tqdm bar's text


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_executed_notebook_shows_a_reader_no_warning_and_no_error(name):
    """The executed copies `make reproduce` commits (notebooks/executed/) print no warning, traceback or
    stderr other than progress bars between the figures."""
    path = NOTEBOOK_DIR / "executed" / name
    if not path.exists():
        pytest.skip(f"{path.name} has not been executed (make reproduce writes it)")
    for cell in nbformat.read(path, as_version=4).cells:
        for out in cell.get("outputs", []):
            assert out.output_type != "error", (cell.id, out.get("ename"))
            text = out.get("text", "") if out.output_type == "stream" else ""
            text += str(out.get("data", {}).get("text/plain", ""))
            assert "Warning" not in text, (cell.id, text[:300])
            if out.output_type == "stream" and out.name == "stderr":
                lines = [ln for ln in re.split(r"[\r\n]", text) if ln.strip()]
                assert all(PROGRESS.search(ln) for ln in lines), (cell.id, text[:300])
