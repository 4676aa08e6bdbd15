"""What `python -m grok_lib.paper.reproduce` leaves behind: figures whose bytes depend on the figure alone,
executed notebooks without execution times, HTML pages that load nothing from a network, LMN figures that
never land on the committed paper-profile ones, and a last line that names only the figures it wrote.

No notebook of the paper is executed here (tests/test_notebooks.py and tests/test_nbval.py do that); the
browser test opens one exported page in Debian's Chromium with every non-file request blocked.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import nbformat
import pytest

from grok_lib.paper import pages, reproduce
from grok_lib.paper.lmn_reproduce import lmn_figures_env, lmn_figures_folder, lmn_kernel_manager
from grok_lib.paper.plots import clock_ns, figures_written, save, written_summary

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
WIDGET_VIEW, WIDGET_STATE = pages.WIDGET_VIEW, pages.WIDGET_STATE


def _figure():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([1, 2, 3], [1, 4, 9], label=r"$\epsilon$ = 1")
    ax.set(xscale="log", xlabel="epoch", title="complexity (kB)")
    ax.legend()
    return fig


def test_saving_the_same_figure_twice_writes_the_same_bytes(tmp_path, monkeypatch):
    fig = _figure()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1000000000")  # matplotlib's date for a PDF, if it wrote one
    first = save(fig, tmp_path / "a" / "fig")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "2000000000")
    second = save(fig, tmp_path / "b" / "fig")
    plt.close(fig)
    for suffix in (".png", ".pdf"):
        a, b = first.with_suffix(suffix).read_bytes(), second.with_suffix(suffix).read_bytes()
        assert a == b and len(a) > 1000, suffix
    assert b"CreationDate" not in first.with_suffix(".pdf").read_bytes()
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]  # written atomically, nothing left


def test_the_figures_of_a_run_are_those_it_modified(tmp_path):
    base = tmp_path / "figures"
    old = [base / "fig01_tighter.png", base / "fig02_tighter.png", base / "lmn_dynamics.png"]
    for path in old:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"old")
    since = clock_ns(base)
    for path in old:  # written long before the run started
        os.utime(path, ns=(since - 10**10, since - 10**10))
    new = [base / "fig01_complexity_mul.png", base / "cpu" / "lmn_dynamics.png"]
    for path in new:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"new")
        os.utime(path, ns=(since + 10**6, since + 10**6))
    assert not [p for p in base.iterdir() if p.name.startswith(".clock-")]  # the clock's file is gone
    written = figures_written(base, since)
    assert written == sorted(new)
    line = written_summary(base, written)
    assert "fig01_complexity_mul" in line and "cpu/lmn_dynamics" in line
    assert "tighter" not in line and " lmn_dynamics" not in line
    assert written_summary(base, []).startswith("no figure written")


def test_the_last_line_of_a_reproduction_names_only_the_figures_it_drew(tmp_path, monkeypatch, capsys):
    """fig01_tighter lay in figures/ from another command: the reproduction's last line leaves it out."""
    monkeypatch.setenv("GROK_FIGURES", str(tmp_path / "figures"))
    fig = _figure()
    save(fig, tmp_path / "figures" / "fig01_tighter")
    stale = (tmp_path / "figures" / "fig01_tighter.png").stat().st_mtime_ns - 10**10
    os.utime(tmp_path / "figures" / "fig01_tighter.png", ns=(stale, stale))

    def draw(profile, notebooks, **kwargs):  # stands in for the notebooks: one figure, as notebook 02 saves it
        save(fig, Path(os.environ["GROK_FIGURES"]) / "fig10_accuracy")

    monkeypatch.setattr(reproduce, "run_notebooks", draw)
    assert reproduce.main(["--profile", "ci", "--per-notebook", "--only", "02_training.ipynb"]) == 0
    plt.close(fig)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.endswith(f"1 figure written (PNG and PDF) in {tmp_path / 'figures'}: fig10_accuracy"), last


def test_lmn_figures_of_a_profile_without_a_subfolder_go_to_one_named_after_it(tmp_path, monkeypatch):
    monkeypatch.setenv("GROK_FIGURES", str(tmp_path / "figures"))
    # figures/lmn_* are the paper profile's: cpu's Figs 1-11 share figures/ with them, its LMN ones do not
    assert lmn_figures_env("cpu") == {"GROK_FIGURES": str(tmp_path / "figures" / "cpu")}
    assert lmn_figures_folder("cpu") == tmp_path / "figures" / "cpu"
    for profile in ("ci", "p113", "paper"):  # a subfolder of their own already
        assert lmn_figures_env(profile) == {}
        assert lmn_figures_folder(profile) == tmp_path / "figures" / profile


def test_notebook_06_gets_its_figure_folder_without_changing_this_process(tmp_path, monkeypatch):
    """The GROK_FIGURES of lmn_figures_env reaches notebook 06's kernel alone: os.environ, which the other
    lane's kernels inherit, keeps the batch run's folder."""
    import papermill

    monkeypatch.setenv("GROK_FIGURES", str(tmp_path / "figures"))
    assert lmn_kernel_manager("paper") is not None and lmn_figures_env("paper") == {}
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import os; print(os.environ['GROK_FIGURES'])")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "in.ipynb")
    papermill.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"), kernel_name="python3",
                               progress_bar=False, record_timing=False, kernel_manager_class=lmn_kernel_manager("cpu"))
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert reproduce.stream_text(out.cells[0].outputs).strip() == str(tmp_path / "figures" / "cpu")
    assert os.environ["GROK_FIGURES"] == str(tmp_path / "figures")


def _widget_state(ids: list[str]) -> dict:
    """A slider and a tqdm-like progress bar (HBox of HTML, FloatProgress, HTML), under the given ids."""
    slider, box, label, bar, rate = ids

    def model(name, **state):
        return {"model_module": "@jupyter-widgets/controls", "model_module_version": "2.0.0", "model_name": name,
                "state": state}

    return {"version_major": 2, "version_minor": 0, "state": {
        slider: model("FloatSliderModel", value=1.0, description="ε"),
        box: model("HBoxModel", children=[f"IPY_MODEL_{label}", f"IPY_MODEL_{bar}", f"IPY_MODEL_{rate}"]),
        label: model("HTMLModel", value="train 3 tasks: 100%"),
        bar: model("FloatProgressModel", value=3.0, max=3.0),
        rate: model("HTMLModel", value=" 3/3 [00:01&lt;00:00]")}}


def _executed_notebook(ids: list[str], cell_id: str, split: bool, stamp: str):
    """A small notebook as papermill leaves it: `ids` the widget model ids, `cell_id` the injected cell's id,
    `split` whether the kernel flushed a printed line in two messages, `stamp` its execution times."""
    v4 = nbformat.v4
    times = {"start_time": stamp, "end_time": stamp, "duration": 0.1, "status": "completed", "exception": False}
    injected = v4.new_code_cell('profile = "ci"', id=cell_id, metadata={"tags": ["injected-parameters"]})
    text = [v4.new_output("stream", name="stdout", text=t) for t in (["a = 1", "\n"] if split else ["a = 1\n"])]
    printed = v4.new_code_cell("print('a = 1')", id="c-print", outputs=text, execution_count=2)
    widgets = v4.new_code_cell("widgets", id="c-widgets", execution_count=3, outputs=[
        v4.new_output("display_data", data={WIDGET_VIEW: {"model_id": ids[0], "version_major": 2,
                                                          "version_minor": 0}, "text/plain": "FloatSlider(...)"}),
        v4.new_output("display_data", data={WIDGET_VIEW: {"model_id": ids[1], "version_major": 2,
                                                          "version_minor": 0}, "text/plain": "HBox(...)"})])
    nb = v4.new_notebook(cells=[
        v4.new_markdown_cell(r"# A formula" "\n\n" r"The bound $\epsilon$ and $$\sum_i x_i^2 \leq \epsilon$$",
                             id="c-md"),
        injected, printed, widgets])
    for cell in nb.cells[1:]:
        cell.metadata["papermill"] = dict(times)
        cell.metadata["execution"] = {"iopub.status.busy": stamp, "shell.execute_reply": stamp}
    nb.metadata["papermill"] = dict(times, parameters={"profile": "ci"})
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["widgets"] = {WIDGET_STATE: _widget_state(ids)}
    return nb


IDS_A = ["5aa42b1c00404cbdb2f6ebde361e1132", "53909c8337d84414b7693d8c5198cd7e", "194ffb33122d42aaa874d9e4a067b838",
         "2a84b123ac844a26b8c5f48a8fe58c93", "dad94ab371f942b1982a1760028042ab"]
IDS_B = ["eba0daed323a4c9586f5e776fe647613", "fb2d79452b204eb9b0f344a3eb043479", "fa50eec441034bc1be372d0e87dfca14",
         "61928477ee284efe94f5b748e0bfaa15", "8060b9b923754df7a98623ae3cd0d780"]


def test_two_executions_of_an_unchanged_notebook_give_the_same_file(tmp_path):
    first, second = tmp_path / "a" / "nb.ipynb", tmp_path / "b" / "nb.ipynb"
    for path, ids, cell_id, split, stamp in ((first, IDS_A, "0012de83", False, "2026-12-07T15:55:41.1+00:00"),
                                             (second, IDS_B, "dcbf90e4", True, "2026-12-08T09:01:02.3+00:00")):
        path.parent.mkdir()
        nbformat.write(_executed_notebook(ids, cell_id, split, stamp), path)
        reproduce.tidy_executed(path)
    assert first.read_bytes() == second.read_bytes()
    text = first.read_text()
    assert "2026-12" not in text and IDS_A[0] not in text
    tidied = nbformat.read(first, as_version=4)
    nbformat.validate(tidied)
    assert [o.text for o in tidied.cells[2].outputs] == ["a = 1\n"]
    html_a, html_b = reproduce.export_html(first), reproduce.export_html(second)
    assert html_a.read_bytes() == html_b.read_bytes()


def _exported(tmp_path) -> Path:
    path = tmp_path / "executed" / "nb.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(_executed_notebook(IDS_A, "injected-parameters", False, "2026-12-07T15:55:41+00:00"), path)
    return reproduce.export_html(path)


def test_an_exported_page_loads_no_script_from_a_network(tmp_path):
    page = _exported(tmp_path)
    text = page.read_text()
    sources = re.findall(r"<script[^>]*\bsrc\s*=\s*[\"']([^\"']*)", text)
    assert sources and not [s for s in sources if re.match(r"(https?:)?//", s)], sources
    assert not re.search(r"import\(\s*[\"']https?:", text)  # no module import from a CDN (mermaid)
    assert "unpkg.com" not in text and "cdnjs" not in text
    for source in sources:  # every script lies beside the page
        assert (page.parent / source.split("?")[0]).is_file(), source
    assert (page.parent / "_static" / "mathjax" / "LICENSE").is_file()
    # the lab template's CSS (about 7,000 lines) is one stylesheet beside the page, not inlined in its head
    links = re.findall(r"<link[^>]*\bhref=\"([^\"]*)\"", text)
    assert links == [pages.STYLESHEET] and (page.parent / pages.STYLESHEET).is_file()
    assert "<style" not in text.split("</head>")[0] and len(text.splitlines()) < 400
    assert WIDGET_STATE not in text and WIDGET_VIEW not in text  # no widget renderer to read them
    assert "live only with a running kernel" in text and "notebooks/" not in text  # the slider: a note
    assert "<progress" in text and "train 3 tasks: 100%" in text  # the progress bar: drawn from its state


@pytest.fixture(scope="module")
def chromium():
    if not Path(CHROMIUM).exists():
        pytest.skip("no Chromium: install Debian's with `apt-get install chromium` (never `playwright install`, "
                    "which downloads a browser)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is missing: pip install -e '.[dev]'")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.mark.browser
def test_an_exported_page_typesets_its_formulas_offline(tmp_path, chromium):
    html = _exported(tmp_path)
    page = chromium.new_page()
    refused: list[str] = []

    def refuse(route):
        refused.append(route.request.url)
        route.abort()

    page.route(re.compile(r"^(?!file:).*"), refuse)  # offline: every request but file:// fails
    page.goto(html.as_uri())
    page.wait_for_function("window.MathJax && MathJax.Hub && MathJax.Hub.queue.pending === 0 "
                           "&& MathJax.Hub.queue.running === 0", timeout=30_000)
    assert page.locator(".MathJax_CHTML, .MathJax, mjx-container").count() >= 2
    assert page.locator(".MathJax_Error, merror").count() == 0
    body = page.inner_text("body")
    assert "$" not in body and "\\epsilon" not in body, body[:500]
    typeset = page.evaluate("MathJax.Hub.getAllJax().map(jax => jax.originalText)")
    assert len(typeset) == 2 and all("\\epsilon" in t for t in typeset), typeset
    styled = "getComputedStyle(document.querySelector('.jp-Cell')).getPropertyValue('--jp-layout-color0').trim()"
    assert page.evaluate(styled) == "white"  # JupyterLab's light theme, from the stylesheet
    assert refused == []
    page.close()


def test_progress_bar_clocks_are_dropped_from_stream_text_and_widget_state():
    from grok_lib.paper.pages import TQDM_CLOCK

    assert TQDM_CLOCK.sub("", "tasks: 100%|##| 3/3 [00:14<00:00, 11.58s/task]") == "tasks: 100%|##| 3/3"
    assert TQDM_CLOCK.sub("", " 3/3 [01:02:03&lt;?, ?it/s]") == " 3/3"  # as a widget's HTML value holds it
    assert TQDM_CLOCK.sub("", "seeds [0, 1] and [12:30] stay") == "seeds [0, 1] and [12:30] stay"


def test_notebook_01s_specimen_is_trained_before_the_notebooks_on_one_thread(tmp_path, monkeypatch):
    """Trained by notebook 01's kernel, the specimen's weights (01's table, figures/theory_coarse_graining)
    would depend on the machine's number of cores (torch's threads): the batch reproduction trains it with
    the grid's runs, on one thread."""
    import torch

    from grok_lib.paper import pipeline
    from grok_lib.paper.profiles import get_profile, theory_config
    from grok_lib.training import train as training

    monkeypatch.setenv("GROK_RUNS", str(tmp_path / "runs"))
    seen: dict = {}
    monkeypatch.setattr(pipeline, "compute", lambda profile, store, extra=(): seen.update(extra=list(extra)))
    reproduce.precompute("cpu", with_lmn=False)
    [job] = seen["extra"]
    assert job.fn is reproduce.train_specimen and job.args[0] == theory_config(get_profile("cpu"))
    reproduce.precompute("cpu", with_lmn=False, with_theory=False)
    assert seen["extra"] == []
    threads = torch.get_num_threads()
    monkeypatch.setattr(training, "train", lambda *a, **k: seen.update(threads=torch.get_num_threads()))
    reproduce.train_specimen(job.args[0], str(tmp_path / "runs"))
    assert seen["threads"] == 1 and torch.get_num_threads() == threads


def test_the_committed_stylesheet_is_the_one_this_nbconvert_writes():
    """notebooks/_static/notebook.css, which the committed pages link, is what `export_html` writes: a
    reproduction leaves it unchanged."""
    assert (pages.STATIC_DIR / "notebook.css").read_text() == pages.notebook_css()


def _run_notebook(store: Path, cold: bool):
    """A notebook as a run leaves it: the store's path printed; `cold`: it trained, so tqdm drew a progress
    widget and wrote bars to stderr."""
    v4 = nbformat.v4
    printed = [v4.new_output("stream", name="stdout", text=f"12 runs from {store}; figures go to figures\n")]
    if cold:
        printed.append(v4.new_output("stream", name="stderr",
                                     text="training:  50%|##  | 1/2 [00:01<00:01, 1.0s/run]\rtraining: 100%|####| "
                                          "2/2 [00:02<00:00, 1.0s/run]\nnot a bar\n"))
    else:
        printed.append(v4.new_output("stream", name="stderr", text="not a bar\n"))
    if cold:
        printed.append(v4.new_output("display_data", data={
            WIDGET_VIEW: {"model_id": IDS_A[1], "version_major": 2, "version_minor": 0}, "text/plain": "HBox()"}))
    nb = v4.new_notebook(cells=[v4.new_code_cell("grid = setup(profile)", id="c-setup", outputs=printed)])
    if cold:
        state = _widget_state(IDS_A)
        del state["state"][IDS_A[0]]  # the slider: tqdm's bar alone
        nb.metadata["widgets"] = {WIDGET_STATE: state}
    return nb


def test_an_executed_notebook_is_the_same_whether_it_trained_and_wherever_the_store_lies(tmp_path, monkeypatch):
    """A cold run (it trained: progress bars) with its store in the checkout (runs/, a fresh clone's) and a
    warm run with the store elsewhere ($GROK_RUNS) tidy to the same bytes."""
    files = []
    for store, cold in ((reproduce.REPO_ROOT / "runs", True), (tmp_path / "store", False)):
        monkeypatch.setenv("GROK_RUNS", str(store))
        path = tmp_path / f"{cold}" / "nb.ipynb"
        path.parent.mkdir()
        nbformat.write(_run_notebook(store, cold), path)
        reproduce.tidy_executed(path)
        files.append(path.read_text())
    assert files[0] == files[1]
    assert "12 runs from <run store>; figures go to figures" in files[0] and "not a bar" in files[0]
    assert "%|" not in files[0] and "widgets" not in nbformat.reads(files[0], as_version=4).metadata


def test_a_reproduction_draws_the_tighter_figures_from_their_committed_tables(tmp_path, monkeypatch, capsys):
    """At cpu, after the notebooks, Figs. 1 and 2 with the tighter bound are drawn from results/cpu/ where the
    run store has no tighter.csv (a fresh clone), and the last line names them; --only leaves them alone."""
    monkeypatch.setenv("GROK_FIGURES", str(tmp_path / "figures"))
    monkeypatch.setenv("GROK_RUNS", str(tmp_path / "runs"))
    monkeypatch.setattr(reproduce, "run_notebooks", lambda *a, **k: None)  # the notebooks are checked elsewhere
    assert reproduce.main(["--profile", "cpu", "--per-notebook"]) == 0
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.endswith("2 figures written (PNG and PDF) in "
                         f"{tmp_path / 'figures'}: fig01_tighter, fig02_tighter"), last
    assert reproduce.main(["--profile", "cpu", "--per-notebook", "--only", "02_training.ipynb"]) == 0
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith("no figure written in "
                                                                      f"{tmp_path / 'figures'}")
