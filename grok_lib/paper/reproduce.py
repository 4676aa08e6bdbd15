"""Run the notebooks in order with papermill; every paper figure lands in figures/ (PNG and PDF).

    python -m grok_lib.paper.reproduce --profile auto      # paper on a CUDA machine, else cpu
    python -m grok_lib.paper.reproduce --profile ci        # seconds: checks that every cell runs
    python -m grok_lib.paper.reproduce --refresh-checks    # rewrite the reference outputs nbval compares

The executed copies go to notebooks/executed/ (ignored by git), without execution times (`tidy_executed`),
each with an HTML page beside it that needs neither a kernel nor a network (`export_html`). Figures go to
figures/ ($GROK_FIGURES), the same bytes for the same figure: only this batch run writes there (notebook 06
at ci and cpu into figures/<profile>/, never over the committed paper-profile figures/lmn_*:
lmn_reproduce.lmn_figures_env); the last line names the figures it wrote. Training and complexity
measurements are cached in the run store, so a second run only re-draws. The kernel is `python3` resolved to
this interpreter (jupyter_client starts "python" kernels with sys.executable), so the notebooks run in the
same environment as this command whether or not a named kernel was installed.
"""

from __future__ import annotations

import argparse
import copy
import html as html_lib
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

from ..errors import require, run_command
from ..store import REPO_ROOT
from .lmn_reproduce import lmn_kernel_manager
from .plots import clock_ns, figures_written, written_summary
from .profiles import figures_dir, get_profile

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
NOTEBOOKS = ("01_theory.ipynb", "02_training.ipynb", "03_coarse_graining.ipynb", "04_rate_distortion.ipynb",
             "05_bounds.ipynb", "06_lmn.ipynb")
# Notebooks that may run at the same time: each lane runs in order, the lanes side by side. 01, 03 and 04
# cache slider points in a run directory (at ci all three on one run), so they share a lane.
LANES = (("01_theory.ipynb", "03_coarse_graining.ipynb", "04_rate_distortion.ipynb"),
         ("02_training.ipynb", "05_bounds.ipynb", "06_lmn.ipynb"))
KERNEL = "python3"
CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
REFERENCES = NOTEBOOK_DIR / "nbval_references.json"
# The pages load nothing from a network: MathJax 2.7.9 (TeX-AMS_CHTML-full and its CommonHTML fonts, committed in
# notebooks/_static/, README.md there) is copied beside each page (_static/) and loaded by a relative URL; the
# lab template's require.js, widget renderer (3.6 MB: `static_widgets` stands in) and mermaid loader are left out.
STATIC_DIR = NOTEBOOK_DIR / "_static"
MATHJAX_URL = "_static/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe"  # nbconvert's configuration
OFFLINE_TEMPLATE = "{%- extends 'index.html.j2' -%}" + "".join(f"{{% block {b} %}}{{% endblock %}}" for b in (
    "html_head_js_requirejs", "jupyter_widgets", "html_head_js_mermaidjs"))
WIDGET_VIEW, WIDGET_STATE = "application/vnd.jupyter.widget-view+json", "application/vnd.jupyter.widget-state+json"
WIDGET_NOTE = ('<div class="grok-widget-note" style="border-left:3px solid #999;padding:0.3em 0.8em;color:#555;'
               'font-style:italic">An interactive widget: live only with a running kernel, which this page has '
               'not. Open <code>{}</code> in JupyterLab (<code>make lab</code>) and run it.</div>')


def run_notebooks(profile: str = "auto", notebooks=NOTEBOOKS, out_dir: Path = NOTEBOOK_DIR / "executed",
                  kernel: str = KERNEL, progress: bool = True, lanes: int = 1) -> list[Path]:
    """Execute `notebooks` at `profile` into out_dir; return the executed paths (in NOTEBOOKS order).

    lanes=1 runs them one after another; lanes=2 runs the two LANES side by side (a kernel each; their
    papermill progress bars are then off, each notebook prints a line when done). The resolved profile is
    also exported as GROK_PROFILE, which the notebooks' derived cell honours, so a notebook never runs at a
    different size from the one it was asked for.
    """
    require(lanes in (1, 2), "lanes", f"must be 1 or 2, got {lanes!r}")
    name = get_profile(profile).name
    os.environ["GROK_PROFILE"] = name
    os.environ.setdefault("GROK_FIGURES", str(REPO_ROOT / "figures"))  # only the batch run writes figures/
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    wanted = [n for n in NOTEBOOKS if n in notebooks]
    if lanes == 1:
        groups = [wanted]
    else:
        groups = [[n for n in lane if n in wanted] for lane in LANES]
        groups.append([n for n in wanted if not any(n in lane for lane in LANES)])
        groups = [g for g in groups if g]

    def run_lane(group) -> None:
        for notebook in group:
            _execute(name, notebook, out_dir, kernel, progress and len(groups) == 1)

    if len(groups) == 1:
        run_lane(groups[0])
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(groups)) as pool:  # each thread waits on its own kernel process
            for future in [pool.submit(run_lane, g) for g in groups]:
                future.result()  # the first failure is raised, after every lane has stopped
    return [out_dir / n for n in wanted]


def _execute(name: str, notebook: str, out_dir: Path, kernel: str, progress: bool) -> None:
    import papermill

    start = time.perf_counter()
    print(f"[{name}] {notebook} ...", flush=True)
    manager = lmn_kernel_manager(name) if notebook == "06_lmn.ipynb" else None  # its figures' folder
    extra = {"kernel_manager_class": manager} if manager else {}
    papermill.execute_notebook(str(NOTEBOOK_DIR / notebook), str(out_dir / notebook),
                               parameters={"profile": name}, kernel_name=kernel, cwd=str(NOTEBOOK_DIR),
                               progress_bar=progress, log_output=False, request_save_on_cell_execute=True,
                               record_timing=False, **extra)
    tidy_executed(out_dir / notebook)
    html = export_html(out_dir / notebook)
    print(f"[{name}] {notebook} done in {time.perf_counter() - start:.0f} s; {html}", flush=True)


def precompute(profile: str = "auto", with_lmn: bool = True) -> None:
    """Train and measure everything the notebooks of `profile` read, as one set of jobs (grok_lib.jobs):
    no worker waits for a notebook boundary, and a run's tracking starts as soon as it is trained."""
    from .lmn_reproduce import lmn_jobs, notebook_out_dir
    from .pipeline import compute
    from .profiles import run_store

    from .tables import committed_store, has_tables

    p = get_profile(profile)
    start = time.perf_counter()
    store = run_store()
    configs = p.configs()
    if not p.reproduce_computes and not all(store.run(c).is_complete for c in configs):
        committed = committed_store(p, store)
        if committed is not None and has_tables(committed, configs):
            print(f"[{p.name}] the run store lacks this profile's grid: the notebooks draw from its committed tables "
                  f"(results/{p.name}/); `python -m grok_lib compute --profile {p.name}` trains it", flush=True)
            return
    extra = lmn_jobs(notebook_out_dir(p.name), p.name) if with_lmn else []
    compute(p, store, extra=extra)
    print(f"[{p.name}] training and measurements done in {time.perf_counter() - start:.0f} s", flush=True)


def tidy_executed(path: Path) -> None:
    """Rewrite an executed notebook without what differs between two executions of an unchanged notebook:
    papermill's times (notebook and cells), nbclient's timestamps, the random id of the injected-parameters
    cell, the split of printed text into stream messages (consecutive ones joined) and the random widget model
    ids (numbered in the order the cells reach them). What the cells print (timings, progress rates) stays."""
    import nbformat

    from ..files import write_text_atomic

    nb = nbformat.read(path, as_version=4)
    for meta in [nb.metadata.get("papermill", {})] + [c.metadata.get("papermill", {}) for c in nb.cells]:
        for key in ("start_time", "end_time", "duration"):
            meta.pop(key, None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell["id"] = "injected-parameters"
        joined = []
        for out in cell.get("outputs", []):
            if joined and out.output_type == "stream" == joined[-1].output_type and out.name == joined[-1].name:
                joined[-1].text += out.text
            else:
                joined.append(out)
        if cell.cell_type == "code":
            cell.outputs = joined
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    pending = [o.data[WIDGET_VIEW]["model_id"] for c in nb.cells for o in c.get("outputs", [])
               if WIDGET_VIEW in o.get("data", {})] + list(state)
    order: list[str] = []
    while pending:  # depth first from each view, then the models no view shows
        model = pending.pop(0)
        if model not in order:
            order.append(model)
            pending[:0] = re.findall(r"IPY_MODEL_(\w+)", json.dumps(state.get(model, {})))
    text = nbformat.writes(nb)
    for number, model in enumerate(order, 1):
        text = text.replace(model, f"{number:032x}")
    text = nbformat.writes(nbformat.reads(text, as_version=4))  # the state's keys sorted again, by the new ids
    write_text_atomic(path, text if text.endswith("\n") else text + "\n")


def export_html(executed: Path) -> Path:
    """The executed notebook as an HTML page beside it, readable without a kernel and without a network:
    figures inline, formulas typeset by the vendored MathJax (STATIC_DIR, copied to <folder>/_static/), every
    script local; widget views drawn from their stored state or noted as needing a kernel (`static_widgets`)."""
    import nbconvert
    import nbformat

    from ..files import write_text_atomic

    executed = Path(executed)
    exporter = nbconvert.HTMLExporter(template_name="lab", mathjax_url=MATHJAX_URL)
    exporter.raw_template = OFFLINE_TEMPLATE
    source = f"notebooks/{executed.name}" if executed.name in NOTEBOOKS else executed.name
    nb = static_widgets(nbformat.read(executed, as_version=4), source)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": executed.stem}})
    if (executed.parent / "_static").resolve() != STATIC_DIR.resolve():
        shutil.copytree(STATIC_DIR, executed.parent / "_static", dirs_exist_ok=True)
    target = executed.with_suffix(".html")
    write_text_atomic(target, body)
    return target


def static_widgets(nb, source: str):
    """A copy of `nb` without widget state, each widget view replaced by HTML drawn from the stored state where
    every model of it is a box, text or progress bar (tqdm's), else by a note that it needs a kernel."""
    nb = copy.deepcopy(nb)
    state = nb.metadata.pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})

    def draw(model_id: str) -> str | None:  # None: some model of it is live (a slider, an output, ...)
        model = state.get(model_id, {})
        name, values = model.get("model_name"), model.get("state", {})
        if name in ("HBoxModel", "VBoxModel"):
            inner = [draw(c.removeprefix("IPY_MODEL_")) for c in values.get("children", [])]
            flow = "column" if name == "VBoxModel" else "row"
            return None if None in inner else f'<div style="display:flex;flex-direction:{flow}">{"".join(inner)}</div>'
        if name in ("HTMLModel", "LabelModel"):
            value = str(values.get("value", ""))
            return f"<div>{value if name == 'HTMLModel' else html_lib.escape(value)}</div>"
        if name in ("FloatProgressModel", "IntProgressModel"):
            low = values.get("min", 0)
            return f'<progress value="{values.get("value", 0) - low}" max="{values.get("max", 100) - low}"></progress>'
        return None

    for cell in nb.cells:
        for output in cell.get("outputs", []):
            view = output.get("data", {}).pop(WIDGET_VIEW, None)
            if view is not None:
                output.data["text/html"] = draw(view.get("model_id", "")) or WIDGET_NOTE.format(html_lib.escape(source))
    return nb


def stream_text(outputs) -> str:
    """The printed text of a cell's outputs (the only kind nbval compares here)."""
    return "".join(o["text"] for o in outputs if o.get("output_type") == "stream")


def read_references() -> dict[str, dict[str, str]]:
    """{notebook: {cell id: printed text}} for the NBVAL_CHECK_OUTPUT cells (notebooks/nbval_references.json)."""
    return json.loads(REFERENCES.read_text()) if REFERENCES.exists() else {}


def with_references(path: Path):
    """The notebook at `path` with its stored reference text put back into its check cells, for nbval.

    Committed notebooks carry no outputs; the reference text nbval compares lives beside them in
    nbval_references.json, so only the copy that nbval runs has outputs.
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    texts = read_references().get(Path(path).name, {})
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.startswith(CHECK_MARK):
            require(cell.get("id") in texts, "nbval_references.json",
                    f"no reference for check cell {cell.get('id')} of {Path(path).name}; run --refresh-checks")
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=texts[cell["id"]])]
            cell.execution_count = 1
    return nb


def refresh_checks(notebooks=NOTEBOOKS, kernel: str = KERNEL) -> None:
    """Re-execute at the ci profile and store the printed text of the cells marked NBVAL_CHECK_OUTPUT in
    nbval_references.json (the reference nbval compares); the committed notebooks keep no outputs."""
    import tempfile

    import nbformat

    from ..files import write_text_atomic

    references = read_references()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("GROK_RUNS", str(Path(tmp) / "runs"))
        os.environ.setdefault("GROK_FIGURES", str(Path(tmp) / "figures"))
        executed = run_notebooks("ci", notebooks, Path(tmp) / "executed", kernel, progress=False)
        for source, result in zip(notebooks, executed):
            ran = nbformat.read(result, as_version=4)
            references[source] = {c["id"]: stream_text(c.outputs) for c in ran.cells
                                  if c.cell_type == "code" and c.source.startswith(CHECK_MARK)}
    write_text_atomic(REFERENCES, json.dumps(references, indent=1, sort_keys=True) + "\n")
    print(f"refreshed {REFERENCES}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grok_lib.paper.reproduce", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="auto", help="ci, cpu, p113, paper or auto (paper with CUDA, else cpu)")
    parser.add_argument("--only", nargs="*", help="run only these notebooks (file names), still in order")
    parser.add_argument("--lanes", type=int, default=None,
                        help="notebooks run side by side: 1 or 2 (default: 2 with at least 2 CPU cores, else 1)")
    parser.add_argument("--kernel", default=KERNEL, help=f"Jupyter kernel name (default {KERNEL})")
    parser.add_argument("--refresh-checks", action="store_true",
                        help="re-execute at ci and store the NBVAL_CHECK_OUTPUT reference outputs")
    parser.add_argument("--per-notebook", action="store_true",
                        help="let each notebook compute what it needs, in turn (default: all the profile's training "
                             "and measurements first, as one set of jobs, then the notebooks)")
    args = parser.parse_args(argv)
    if args.refresh_checks:
        refresh_checks(kernel=args.kernel)
        return 0
    unknown = sorted(set(args.only or ()) - set(NOTEBOOKS))
    notebooks = [n for n in NOTEBOOKS if not args.only or n in args.only]

    def body() -> int:
        start = time.perf_counter()
        os.environ.setdefault("GROK_FIGURES", str(REPO_ROOT / "figures"))  # as run_notebooks sets it
        base = figures_dir(None)
        since = clock_ns(base)
        require(not unknown, "only", f"unknown notebook(s) {unknown}; allowed: {', '.join(NOTEBOOKS)}")
        if not get_profile(args.profile).with_lmn and not args.only:  # a bad --profile is refused here
            notebooks.remove("06_lmn.ipynb")  # the LMN paper's figures are the cpu and paper profiles'
        if not args.per_notebook:
            precompute(args.profile, with_lmn="06_lmn.ipynb" in notebooks)
        lanes = args.lanes if args.lanes is not None else (2 if (os.cpu_count() or 1) >= 2 else 1)
        run_notebooks(args.profile, notebooks, kernel=args.kernel, lanes=lanes)
        print(f"all {len(notebooks)} notebooks in {time.perf_counter() - start:.0f} s; "
              + written_summary(base, figures_written(base, since)))
        return 0

    return run_command(body, "interrupted; run the same command again: what is stored is reused")


if __name__ == "__main__":
    sys.exit(main())
