"""MkDocs hooks of the documentation site (mkdocs.yml `hooks:`). What the site shows of the repository is read
from it at build time, never copied into docs/ by hand, so a fresh clone builds and the pages follow the files:

- the notebooks notebooks/NN_*.ipynb, each from its executed copy in notebooks/executed/ where `make reproduce`
  left one (else the committed notebook, without outputs), with a note saying which; their widget outputs
  (the slider explorers) become static HTML, their last state, drawn by grok_lib.paper.pages.static_widgets
  as on the executed notebooks' own pages, so no page loads a widget renderer from a CDN;
- the results page (<!-- grok:results --> in results.md): per committed folder results/<profile>/ its
  README.md, the numbers table computed from its tables by grok_lib.paper.summary, its figures and its
  PROVENANCE.json;
- MathJax 2.7 for the notebook pages, copied from the jupyter-server-mathjax package into the site and
  referenced relative to each page;
- the includes of pymdownx.snippets and mkdocs-jupyter's cache, resolved against the repository root, so the
  build does not depend on the working directory.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

from grok_lib.paper.pages import static_widgets

log = logging.getLogger("mkdocs.hooks.grok_docs")

PROFILE_ORDER = ("ci", "cpu", "p113", "paper")  # grok_lib.paper.profiles.PROFILES
EXPECTED = ("cpu", "p113")  # the profiles whose results the results page promises (a note when absent)
RESULTS_MARKER = "<!-- grok:results -->"
NOTEBOOKS_MARKER = "<!-- grok:notebooks -->"
# jupyter-server-mathjax ships MathJax 2.7 with the HTML-CSS output and the STIX-Web fonts only; configured as
# JupyterLab configures it. (Opened from the file system, Chromium refuses web fonts to the page, origin null:
# MathJax then typesets with the system's fonts; served over HTTP it uses STIX-Web.)
MATHJAX_CONFIG = ('<script type="text/x-mathjax-config">MathJax.Hub.Config({"HTML-CSS": {availableFonts: [], '
                  'preferredFont: null, webFont: "STIX-Web", imageFont: null}});</script>\n')

_state: dict = {}


# --- configuration ----------------------------------------------------------------------------------------
def on_config(config):
    repo = Path(config.config_file_path).resolve().parent
    _state.clear()
    _state.update(repo=repo, tmp=Path(tempfile.mkdtemp(prefix="grok-docs-")), notebooks=[])
    snippets = config.mdx_configs.get("pymdownx.snippets")
    if snippets is not None:
        snippets["base_path"] = [str(repo / p) for p in snippets.get("base_path", ["."])]
    jupyter = config.plugins.get("mkdocs-jupyter")
    if jupyter is not None:
        if not Path(jupyter.config["cache_dir"]).is_absolute():
            jupyter.config["cache_dir"] = str(repo / jupyter.config["cache_dir"])
        _state["mathjax_url"] = jupyter.config["custom_mathjax_url"]
    try:
        import jupyter_server_mathjax

        _state["mathjax_src"] = Path(jupyter_server_mathjax.__file__).parent / "static"
    except ImportError:
        log.warning("jupyter-server-mathjax is not installed (pip install -e '.[dev]'): the notebook pages' "
                    "formulas would need MathJax from the network")
    _state["results"] = committed_results(repo, _state["tmp"])
    return config


# --- files: the notebooks and the figures of the results page ---------------------------------------------
@event_priority(100)  # before mkdocs-jupyter's on_files, which turns .ipynb files into pages
def on_files(files, config):
    repo, tmp = _state["repo"], _state["tmp"]
    for source in sorted((repo / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        executed = repo / "notebooks" / "executed" / source.name
        notebook, info = prepare_notebook(source, executed if executed.is_file() else None)
        target = tmp / "notebooks" / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(notebook, indent=1), encoding="utf-8")
        # a File under a source folder of its own, not File.generated: mkdocs-jupyter's NotebookFile wrapper
        # derives the source path from src_dir, which a generated file lacks
        files.append(File(f"notebooks/{source.name}", src_dir=str(tmp), dest_dir=config.site_dir,
                          use_directory_urls=config.use_directory_urls))
        _state["notebooks"].append(dict(info, name=source.name, title=notebook_title(notebook)))
    figures = [path for entry in _state["results"] for _, path in entry.get("figures", [])]
    figures += [p.relative_to(repo).as_posix() for p in sorted((repo / "figures").glob("lmn_*.png"))]
    for path in dict.fromkeys(figures):
        files.append(File(path, src_dir=str(repo), dest_dir=config.site_dir,
                          use_directory_urls=config.use_directory_urls))
    return files


def on_nav(nav, config, files):
    listed = {page.file.src_uri for page in nav.pages}
    for info in _state["notebooks"]:
        if f"notebooks/{info['name']}" not in listed:
            log.warning(f"notebooks/{info['name']} is not in mkdocs.yml's nav: add it under Notebooks")
    return nav


# --- pages --------------------------------------------------------------------------------------------------
def on_page_markdown(markdown, page, config, files):
    if RESULTS_MARKER in markdown:
        markdown = markdown.replace(RESULTS_MARKER, results_markdown(_state["results"]))
    if NOTEBOOKS_MARKER in markdown:
        markdown = markdown.replace(NOTEBOOKS_MARKER, notebooks_markdown(_state["notebooks"]))
    return markdown


def on_post_page(output, page, config):
    if not page.file.src_uri.endswith(".ipynb"):
        return output
    url = _state.get("mathjax_url")
    if url and "mathjax_src" in _state:
        up = "../" * page.file.dest_uri.count("/")
        output = output.replace(f'<script src="{url}">', MATHJAX_CONFIG + f'<script src="{up}{url}">')
    elif url:
        cdn = "https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js?config=TeX-AMS_CHTML-full,Safe"
        output = output.replace(f'src="{url}"', f'src="{cdn}"')
    if 'class="mermaid"' not in output:  # nbconvert's loader imports mermaid from a CDN when a diagram is shown
        output = re.sub(r'<script type="module">(?:(?!</script>).)*?mermaid(?:(?!</script>).)*</script>', "",
                        output, flags=re.S)
    return output


def on_build_error(error, **kwargs):
    shutil.rmtree(_state.get("tmp", ""), ignore_errors=True)


def on_post_build(config):
    source = _state.get("mathjax_src")
    if source is not None:
        shutil.copytree(source, Path(config.site_dir) / "assets" / "mathjax", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("localization", "__pycache__"))
    shutil.rmtree(_state.get("tmp", ""), ignore_errors=True)


# --- notebooks ----------------------------------------------------------------------------------------------
def code_cells(notebook) -> list[str]:
    return ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"
            and "injected-parameters" not in c.get("metadata", {}).get("tags", [])]


def notebook_title(notebook) -> str:
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return ""


def prepare_notebook(source: Path, executed: Path | None) -> tuple[dict, dict]:
    """The notebook a page shows (the executed copy where there is one) with a note saying which, and its
    widget outputs replaced by static HTML; and {"executed": bool, "profile": str | None, "stale": bool}."""
    committed = json.loads(source.read_text(encoding="utf-8"))
    notebook = json.loads(executed.read_text(encoding="utf-8")) if executed else committed
    profile = (notebook.get("metadata", {}).get("papermill", {}).get("parameters", {}) or {}).get("profile")
    stale = bool(executed) and code_cells(notebook) != code_cells(committed)
    repo_path = f"notebooks/{source.name}"
    if executed:
        note = (f"**This page** shows `{repo_path}` as `make reproduce` executed it"
                f"{f' (profile `{profile}`)' if profile else ''}: its copy in `notebooks/executed/`, "
                "outputs included. Widgets (the sliders of notebooks 3 and 4) appear as their last picture; "
                "`make lab` opens the notebook in JupyterLab with live sliders.")
        if stale:
            note += (f" *The notebook has changed since this copy was executed (its code differs from "
                     f"`{repo_path}`); `make reproduce` refreshes it.*")
    else:
        note = (f"**This page** shows `{repo_path}` without outputs: there was no executed copy in "
                "`notebooks/executed/` when the site was built. `make reproduce` writes one (figures and "
                "tables included); `make docs` after it shows them here.")
    notebook = static_widgets(notebook, repo_path)
    first = notebook["cells"][0] if notebook["cells"] else None
    text = "".join(first["source"]) if first else ""
    if first and first["cell_type"] == "markdown" and text.startswith("# "):  # the note goes under the title
        title, _, rest = text.partition("\n")
        first["source"] = f"{title}\n\n> {note}\n\n{rest.lstrip()}"
    else:
        notebook["cells"].insert(0, {"cell_type": "markdown", "metadata": {}, "source": f"> {note}\n"})
        for cell in notebook["cells"]:  # nbformat 4.5 wants ids; the inserted cell has none
            cell.pop("id", None)
        notebook["nbformat_minor"] = min(notebook.get("nbformat_minor", 4), 4)
    return notebook, {"executed": bool(executed), "profile": profile, "stale": stale}


def notebooks_markdown(notebooks: list[dict]) -> str:
    lines = ["| notebook | what this site shows |", "|---|---|"]
    for info in notebooks:
        link = f"[{info['title'] or info['name']}](notebooks/{info['name']})"
        if info["executed"]:
            shown = f"executed copy (profile `{info['profile']}`)" if info["profile"] else "executed copy"
            if info["stale"]:
                shown += "; the notebook has changed since"
        else:
            shown = "the committed notebook, without outputs"
        lines.append(f"| {link} | {shown} |")
    return "\n".join(lines)


# --- results --------------------------------------------------------------------------------------------------
SUMMARY = r"""
import json, os, sys
from grok_lib.paper import summary
from grok_lib.paper.figures import FIGURE_NAMES
from grok_lib.paper.profiles import figures_dir
out = {}
for name in sys.argv[2:]:
    entry = {}
    try:
        frame = summary.numbers_table(name)
        entry["table"] = summary.markdown(frame)
        entry["versus"] = summary.markdown(summary.versus_paper(frame))
    except Exception as err:  # reported on the page and as a build warning
        entry["error"] = f"{type(err).__name__}: {err}"
    os.environ["GROK_FIGURES"] = sys.argv[1]
    folder = figures_dir(name)
    entry["figures"] = [(n, str((folder / (f + ".png")).relative_to(sys.argv[1])))
                        for n, f in sorted(FIGURE_NAMES.items()) if (folder / (f + ".png")).is_file()]
    out[name] = entry
print("GROK-DOCS-JSON " + json.dumps(out))
"""


def committed_results(repo: Path, tmp: Path) -> list[dict]:
    """One entry per committed results/<profile>/ (PROVENANCE.json present), in profile order: its README,
    provenance, numbers tables (computed from its tables by grok_lib.paper.summary in a subprocess with a
    scratch run store) and the committed figures drawn from them."""
    folders = [p for p in sorted((repo / "results").glob("*/PROVENANCE.json"))]
    names = sorted((p.parent.name for p in folders),
                   key=lambda n: (PROFILE_ORDER.index(n) if n in PROFILE_ORDER else len(PROFILE_ORDER), n))
    if not names:
        return []
    env = dict(os.environ, GROK_RUNS=str(tmp / "runs"), GROK_FIGURES=str(tmp / "figures"), OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")])))
    env.pop("GROK_PROFILE", None)
    figures_root = repo / "figures"
    done = None
    try:
        done = subprocess.run([sys.executable, "-c", SUMMARY, str(figures_root), *names], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=600)
        line = next(line for line in done.stdout.splitlines() if line.startswith("GROK-DOCS-JSON "))
        computed = json.loads(line.split(" ", 1)[1])
    except (subprocess.SubprocessError, OSError, StopIteration, json.JSONDecodeError) as err:
        tail = (done.stderr.strip().splitlines() or [""])[-1] if done is not None else str(err)
        computed = {n: {"error": f"grok_lib.paper.summary did not run: {tail}"} for n in names}
    entries = []
    for name in names:
        folder = repo / "results" / name
        entry = dict(computed.get(name, {}), name=name,
                     provenance=json.loads((folder / "PROVENANCE.json").read_text(encoding="utf-8")),
                     readme=(folder / "README.md").read_text(encoding="utf-8") if (folder / "README.md").is_file()
                     else "")
        entry["figures"] = [(n, f"figures/{path}") for n, path in entry.get("figures", [])]
        if "error" in entry:
            log.warning(f"results/{name}: the numbers table could not be computed ({entry['error']})")
        entries.append(entry)
    return entries


def _demote(markdown: str, levels: int) -> str:
    return re.sub(r"^(#+) ", lambda m: "#" * min(6, len(m.group(1)) + levels) + " ", markdown, flags=re.M)


def results_markdown(entries: list[dict]) -> str:
    """The results page's sections, one per committed profile and per expected profile not yet committed."""
    committed = {e["name"]: e for e in entries}
    names = sorted(set(committed) | set(EXPECTED),
                   key=lambda n: (PROFILE_ORDER.index(n) if n in PROFILE_ORDER else len(PROFILE_ORDER), n))
    return "\n".join(profile_section(committed[n]) if n in committed else missing_section(n) for n in names)


def missing_section(name: str) -> str:
    return (f"## The `{name}` profile\n\n!!! note \"Not committed yet\"\n    There is no `results/{name}/` in "
            f"this checkout. `python -m grok_lib compute --profile {name} --export results/{name}` computes and "
            f"exports its tables; this page shows them once they are committed.\n")


def profile_section(entry: dict) -> str:
    name = entry["name"]
    readme = re.sub(r"\A# [^\n]*\n+", "", entry["readme"])  # its title: the heading below says the same
    parts = [f"## The `{name}` profile\n\n*From `results/{name}/README.md`:*\n\n{_demote(readme, 2).strip()}\n"]
    if "error" in entry:
        parts.append(f"!!! failure \"The numbers table could not be computed\"\n    "
                     f"`{html.escape(entry['error'])}`\n")
    else:
        parts.append(f"### Numbers\n\n*Computed when this site was built, from the tables in `results/{name}/`, "
                     f"by `python -m grok_lib.paper.summary --profile {name}`.*\n\n{entry['table']}\n")
        parts.append(f"### Beside the paper's values\n\n*`python -m grok_lib.paper.summary --profile {name} "
                     f"--versus-paper`; the paper's values are read off its plots (regularized runs, "
                     f"p = 113, 6 seeds, 10⁴ epochs), so they compare with a p = 113 profile.*\n\n"
                     f"{entry['versus']}\n")
    if entry.get("figures"):
        cells = "\n\n".join(f"**Fig. {n}** (`{path}`)\n\n![Fig. {n} of the {name} profile]({path})"
                            for n, path in entry["figures"])
        parts.append(f"### Figures\n\n*The committed figures drawn from these tables "
                     f"(`python -m grok_lib.paper.reproduce --profile {name}`).*\n\n{cells}\n")
    parts.append(f"### PROVENANCE.json\n\n```json\n{json.dumps(entry['provenance'], indent=1)}\n```\n")
    return "\n".join(parts)
