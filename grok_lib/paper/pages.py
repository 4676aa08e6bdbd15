"""The executed notebooks as a reader gets them: tidied so that a rerun on unchanged data writes the same
bytes whether or not it trained anything and wherever the run store lies (no timestamps, fixed ids, no
progress bars, the store named "<run store>"), and exported as HTML pages that need no network (MathJax and
one stylesheet in notebooks/_static/, widgets drawn from their saved state with a note where they need a
kernel). `static_widgets` draws the widgets of the documentation site's notebook pages too (docs/_hooks)."""

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
# notebooks/_static/, README.md there) and the lab template's CSS, written once to notebooks/_static/notebook.css
# (STYLESHEET), are loaded by relative URLs; the lab template's require.js, widget renderer (3.6 MB:
# `static_widgets` stands in) and mermaid loader are left out.
STATIC_DIR = NOTEBOOK_DIR / "_static"
MATHJAX_URL = "_static/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe"  # nbconvert's configuration
STYLESHEET = "_static/notebook.css"
OFFLINE_TEMPLATE = ("{%- extends 'index.html.j2' -%}" + "".join(f"{{% block {b} %}}{{% endblock %}}" for b in (
    "html_head_js_requirejs", "jupyter_widgets", "html_head_js_mermaidjs"))
    + '{% block notebook_css %}<link rel="stylesheet" href="{{ resources.stylesheet_url }}">{% endblock %}')
WIDGET_VIEW, WIDGET_STATE = "application/vnd.jupyter.widget-view+json", "application/vnd.jupyter.widget-state+json"
WIDGET_NOTE = ('<div class="grok-widget-note" style="border-left:3px solid #999;padding:0.3em 0.8em;color:#555;'
               'font-style:italic">An interactive widget{}: live only with a running kernel, which this page has '
               'not. Open <code>{}</code> in JupyterLab (<code>make lab</code>) and run it.</div>')
BOXES = ("HBoxModel", "VBoxModel", "BoxModel", "GridBoxModel")
PROGRESS = ("FloatProgressModel", "IntProgressModel")


# a tqdm bar's clock and rate, e.g. " [00:03<00:00, 1.52task/s]" or " [01:02<?, ?it/s]" (in stream text and in
# a progress widget's saved state)
TQDM_CLOCK = re.compile(r" ?\[(?:\d+:)?\d\d:\d\d(?:<|&lt;)(?:(?:\d+:)?\d\d:\d\d|\?)(?:,[^\]]*)?\]")
# a tqdm bar printed as text (no ipywidgets): "desc:  40%|####      | 2/5 [00:01<00:02, ...]" or "3it [00:01, ...]"
TQDM_TEXT = re.compile(r"\d+%\|.*\||\d+\s*\w* \[(?:\d+:)?\d\d:\d\d")


def is_progress_bar(model_id: str, state: dict) -> bool:
    """Whether a widget is a tqdm progress bar (an HBox of HTML, a progress bar and HTML, tqdm.notebook's)."""
    model = state.get(model_id.removeprefix("IPY_MODEL_"), {})
    children = [state.get(c.removeprefix("IPY_MODEL_"), {}).get("model_name")
                for c in model.get("state", {}).get("children", [])]
    return model.get("model_name") == "HBoxModel" and len(children) == 3 and children[1] in PROGRESS \
        and children[0] == children[2] == "HTMLModel"


def without_progress_text(text: str) -> str:
    """`text` (a stderr stream) without the lines, or carriage-return-separated updates, that are tqdm bars."""
    lines = []
    for line in text.splitlines(keepends=True):
        parts = line.split("\r")
        kept = [part.rstrip("\n") for part in parts if not TQDM_TEXT.search(part)]
        if len(kept) == len(parts):
            lines.append(line)
        elif "".join(kept).strip():
            lines.append("\r".join(kept) + ("\n" if line.endswith("\n") else ""))
    return "".join(lines)


def without_progress_bars(nb) -> None:
    """Drop from `nb` the progress bars of training and measurement, which a run that computed something shows
    and a run that found it all stored does not: tqdm's widgets (with their models) and its text on stderr."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    dropped = []
    for cell in nb.cells:
        outputs = []
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(WIDGET_VIEW)
            if view is not None and is_progress_bar(view.get("model_id", ""), state):
                dropped.append(view["model_id"])
                continue
            if out.output_type == "stream" and out.name == "stderr":
                out.text = without_progress_text(out.text)
                if not out.text:
                    continue
            outputs.append(out)
        if cell.cell_type == "code":
            cell.outputs = outputs
    kept = [o.data[WIDGET_VIEW]["model_id"] for c in nb.cells for o in c.get("outputs", [])
            if WIDGET_VIEW in o.get("data", {})]
    for model in set(reachable(dropped, state)) - set(reachable(kept, state)):
        state.pop(model, None)
    if dropped and not state:  # as a run that showed no widget leaves it
        nb.metadata.pop("widgets")


def reachable(models: list[str], state: dict) -> list[str]:
    """The widget models `models` refer to, themselves included, depth first in order (IPY_MODEL_ references)."""
    pending, order = list(models), []
    while pending:
        model = pending.pop(0)
        if model not in order:
            order.append(model)
            pending[:0] = re.findall(r"IPY_MODEL_(\w+)", json.dumps(state.get(model, {})))
    return order


def tidy_executed(path: Path) -> None:
    """Rewrite an executed notebook without what differs between two executions of an unchanged notebook:
    papermill's times (notebook and cells), nbclient's timestamps, the random id of the injected-parameters
    cell, the split of printed text into stream messages (consecutive ones joined), the progress bars of
    training and measurement (`without_progress_bars`: a cold run shows them, a warm one does not), the random
    widget model ids (numbered in the order the cells reach them) and the elapsed time and rate of progress
    bars left in other text (`[00:03<00:00, 1.52task/s]`, TQDM_CLOCK); the run store is written "<run store>"
    wherever it lies and other paths relative to the checkout, so that every clone writes the same bytes.
    What the cells print otherwise stays."""
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
    without_progress_bars(nb)
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    views = [o.data[WIDGET_VIEW]["model_id"] for c in nb.cells for o in c.get("outputs", [])
             if WIDGET_VIEW in o.get("data", {})]
    order = reachable(views + list(state), state)  # depth first from each view, then the models no view shows
    text = TQDM_CLOCK.sub("", nbformat.writes(nb))
    for store in sorted({str(default_root()), str(default_root().resolve())}, key=len, reverse=True):
        # the store's path, in the checkout (runs/) or elsewhere ($GROK_RUNS), the same words in every clone
        text = re.sub(re.escape(store) + r"(?![\w.-])", "<run store>", text)
    text = text.replace(str(REPO_ROOT) + "/", "")  # paths relative to the checkout, the same in every clone
    for number, model in enumerate(order, 1):
        text = text.replace(model, f"{number:032x}")
    text = nbformat.writes(nbformat.reads(text, as_version=4))  # the state's keys sorted again, by the new ids
    write_text_atomic(path, text if text.endswith("\n") else text + "\n")


def notebook_css() -> str:
    """The CSS that nbconvert's lab template writes into the head of every page (the code highlighting,
    JupyterLab's index.css and light theme, the template's own rules), as one stylesheet."""
    import nbconvert
    import nbformat

    page, _ = nbconvert.HTMLExporter(template_name="lab").from_notebook_node(nbformat.v4.new_notebook())
    head = page.split("</head>", 1)[0]
    return "\n".join(css.strip("\n") for css in re.findall(r'<style type="text/css">(.*?)</style>', head, re.S)) + "\n"


def export_html(executed: Path) -> Path:
    """The executed notebook as an HTML page beside it, readable without a kernel and without a network:
    figures inline, formulas typeset by the vendored MathJax and the lab template's CSS in one stylesheet
    (STATIC_DIR: ../_static/ from notebooks/executed/, ../../_static/ from notebooks/executed/<profile>/,
    which git tracks; elsewhere copied to <folder>/_static/), every script local; widget views drawn from
    their stored state, with a note where they need a kernel (`static_widgets`)."""
    import nbconvert
    import nbformat
    from traitlets.config import Config

    from ..files import write_text_atomic

    executed = Path(executed)
    folder = executed.parent.resolve()
    beside = folder.is_relative_to(NOTEBOOK_DIR.resolve())  # the committed pages: notebooks/executed[/profile]
    up = Path(os.path.relpath(NOTEBOOK_DIR.resolve(), folder)).as_posix() + "/" if beside else ""
    static = STATIC_DIR if beside else executed.parent / "_static"
    if not beside and static.resolve() != STATIC_DIR.resolve():
        shutil.copytree(STATIC_DIR, static, dirs_exist_ok=True)
    css = notebook_css()  # written where it is missing or differs (another nbconvert), else left alone
    if not (static / Path(STYLESHEET).name).is_file() or (static / Path(STYLESHEET).name).read_text() != css:
        write_text_atomic(static / Path(STYLESHEET).name, css)
    # the code highlighting's CSS (CSSHTMLHeaderPreprocessor) is in the stylesheet, not inlined
    exporter = nbconvert.HTMLExporter(template_name="lab", mathjax_url=up + MATHJAX_URL,
                                      config=Config({"CSSHTMLHeaderPreprocessor": {"enabled": False}}))
    exporter.raw_template = OFFLINE_TEMPLATE
    source = f"notebooks/{executed.name}" if executed.name in NOTEBOOKS else executed.name
    nb = static_widgets(nbformat.read(executed, as_version=4), source)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": executed.stem},
                                                         "stylesheet_url": up + STYLESHEET})
    target = executed.with_suffix(".html")
    write_text_atomic(target, body)
    return target


def static_widgets(nb, source: str):
    """A copy of `nb` (a NotebookNode or its JSON) without widget state, each widget view replaced by
    `widget_html` of it: the executed pages' and the documentation site's notebooks draw widgets alike."""
    nb = copy.deepcopy(nb)
    state = nb.get("metadata", {}).pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            view = data.pop(WIDGET_VIEW, None)
            if view is not None:
                data.pop("text/plain", None)  # "VBox(children=(...))": nothing a reader can use
                data["text/html"] = widget_html(view.get("model_id", ""), state, source)
    return nb


def widget_html(model_id: str, state: dict, source: str) -> str:
    """Static HTML of a widget view from its saved state (model id -> model): boxes, HTML and labels, progress
    bars, images (the explorer's last picture) and the values of sliders; a widget with a control (a slider,
    a button, ...) or a part that cannot be drawn also gets WIDGET_NOTE, naming `source` (the notebook)."""
    live: list[str] = []

    def draw(reference: str) -> str:
        model = state.get(reference.removeprefix("IPY_MODEL_"))
        name, values = (model or {}).get("model_name", ""), (model or {}).get("state", {})
        if name in BOXES:
            flow = "row" if name == "HBoxModel" else "column"
            inner = "".join(draw(child) for child in values.get("children", []))
            return f'<div style="display:flex;flex-direction:{flow};gap:0.5em;flex-wrap:wrap">{inner}</div>'
        if name in ("HTMLModel", "HTMLMathModel"):
            return f"<div>{values.get('value', '')}</div>"
        if name == "LabelModel":
            return f"<span>{html_lib.escape(str(values.get('value', '')))}</span>"
        if name in PROGRESS:
            low = values.get("min", 0)
            return f'<progress value="{values.get("value", 0) - low}" max="{values.get("max", 100) - low}"></progress>'
        if name == "ImageModel":
            buffer = next((b for b in model.get("buffers", []) if b.get("path") == ["value"]), None)
            if buffer is not None and buffer.get("encoding") == "base64":
                return (f'<img alt="the widget\'s last picture" src="data:image/'
                        f'{html_lib.escape(values.get("format", "png"))};base64,{buffer["data"]}">')
        live.append(name)  # a control (its value shown where it has one) or a model this page cannot draw
        value = values.get("value")
        if name.endswith("SliderModel") and value is not None:
            value = ", ".join(map(str, value)) if isinstance(value, list) else value
            return f"<span><code>{html_lib.escape(str(values.get('description', '')))} = " \
                   f"{html_lib.escape(str(value))}</code></span>"
        return ""

    body = draw(model_id)
    note = WIDGET_NOTE.format(", shown as it was executed" if body else "", html_lib.escape(source)) if live else ""
    return f'<div class="grok-widget">{body}{note}</div>'
