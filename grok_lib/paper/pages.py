"""The executed notebooks as a reader gets them: tidied so that a rerun on unchanged data writes the same
bytes (no timestamps, fixed ids), and exported as standalone HTML pages that need no network (MathJax
vendored in notebooks/_static/, widgets drawn from their saved state or a note saying they need a kernel)."""

from __future__ import annotations

import copy
import html as html_lib
import json
import os
import re
import shutil
from pathlib import Path

from ..paths import REPO_ROOT, default_root

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
NOTEBOOKS = ("01_theory.ipynb", "02_training.ipynb", "03_coarse_graining.ipynb", "04_rate_distortion.ipynb",
             "05_bounds.ipynb", "06_lmn.ipynb")
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


# a tqdm bar's clock and rate, e.g. " [00:03<00:00, 1.52task/s]" or " [01:02<?, ?it/s]" (in stream text and in
# a progress widget's saved state)
TQDM_CLOCK = re.compile(r" ?\[(?:\d+:)?\d\d:\d\d(?:<|&lt;)(?:(?:\d+:)?\d\d:\d\d|\?)(?:,[^\]]*)?\]")


def tidy_executed(path: Path) -> None:
    """Rewrite an executed notebook without what differs between two executions of an unchanged notebook:
    papermill's times (notebook and cells), nbclient's timestamps, the random id of the injected-parameters
    cell, the split of printed text into stream messages (consecutive ones joined) and the random widget model
    ids (numbered in the order the cells reach them) and the elapsed time and rate of progress bars
    (`[00:03<00:00, 1.52task/s]`, TQDM_CLOCK); paths are written relative to the checkout (a run store outside
    it as "<run store>"), so that every clone writes the same bytes. What the cells print otherwise stays."""
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
    text = TQDM_CLOCK.sub("", nbformat.writes(nb))
    store = str(default_root())
    if not store.startswith(str(REPO_ROOT)):  # a store elsewhere ($GROK_RUNS): not this machine's path
        text = text.replace(store, "<run store>")
    text = text.replace(str(REPO_ROOT) + "/", "")  # paths relative to the checkout, the same in every clone
    for number, model in enumerate(order, 1):
        text = text.replace(model, f"{number:032x}")
    text = nbformat.writes(nbformat.reads(text, as_version=4))  # the state's keys sorted again, by the new ids
    write_text_atomic(path, text if text.endswith("\n") else text + "\n")


def export_html(executed: Path) -> Path:
    """The executed notebook as an HTML page beside it, readable without a kernel and without a network:
    figures inline, formulas typeset by the vendored MathJax (STATIC_DIR: ../_static/ from notebooks/executed/,
    ../../_static/ from notebooks/executed/<profile>/, which git tracks; elsewhere copied to <folder>/_static/),
    every script local; widget views drawn from
    their stored state or noted as needing a kernel (`static_widgets`)."""
    import nbconvert
    import nbformat

    from ..files import write_text_atomic

    executed = Path(executed)
    folder = executed.parent.resolve()
    beside = folder.is_relative_to(NOTEBOOK_DIR.resolve())  # the committed pages: notebooks/executed[/profile]
    up = Path(os.path.relpath(NOTEBOOK_DIR.resolve(), folder)).as_posix() + "/" if beside else ""
    exporter = nbconvert.HTMLExporter(template_name="lab", mathjax_url=up + MATHJAX_URL)
    exporter.raw_template = OFFLINE_TEMPLATE
    source = f"notebooks/{executed.name}" if executed.name in NOTEBOOKS else executed.name
    nb = static_widgets(nbformat.read(executed, as_version=4), source)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": executed.stem}})
    if not beside and (executed.parent / "_static").resolve() != STATIC_DIR.resolve():
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
