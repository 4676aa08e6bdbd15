"""Run the notebooks in order with papermill; every paper figure lands in figures/ (PNG and PDF).

    python -m grok_lib.paper.reproduce --profile auto      # paper on a CUDA machine, else cpu
    python -m grok_lib.paper.reproduce --profile ci        # seconds: checks that every cell runs
    python -m grok_lib.paper.reproduce --refresh-checks    # rewrite the reference outputs nbval compares

The executed copies go to notebooks/executed/ (notebooks/executed/<profile>/ but for cpu), the same bytes
from a cold run and a warm one (`tidy_executed`: no execution times, no progress bars, the run store named
"<run store>"), each with an HTML page beside it that needs neither a kernel nor a network (`export_html`).
Figures go to figures/ ($GROK_FIGURES), the same bytes for the same figure: only this batch run writes
there (notebook 06 at ci and cpu into figures/<profile>/, never over the committed paper-profile
figures/lmn_*: lmn_reproduce.lmn_figures_env), and then Figs. 1 and 2 with the tighter bound from their
stored tables (paper.tighter.draw_stored; measured by paper.tighter, committed for cpu). The last line
names the figures it wrote. Training and complexity measurements are cached in the run store, so a second
run only re-draws. The kernel is `python3` resolved to this interpreter (jupyter_client starts "python"
kernels with sys.executable), so the notebooks run in the same environment as this command whether or not
a named kernel was installed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from ..errors import GrokError, require, run_command
from ..log import configure, get as get_logger
from ..store import REPO_ROOT
from .lmn_reproduce import kernel_manager, lmn_kernel_manager
from .pages import NOTEBOOK_DIR, NOTEBOOKS, export_html, tidy_executed  # noqa: F401  (re-exported)
from .plots import clock_ns, figures_written, written_summary
from .profiles import FIGURE_SUBFOLDERS, figures_dir, get_profile

# Notebooks that may run at the same time: each lane runs in order, the lanes side by side. 01, 03 and 04
# cache slider points in a run directory (at ci all three on one run), so they share a lane.
LANES = (("01_theory.ipynb", "03_coarse_graining.ipynb", "04_rate_distortion.ipynb"),
         ("02_training.ipynb", "05_bounds.ipynb", "06_lmn.ipynb"))
KERNEL = "python3"
LOG = get_logger(__name__)
CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
REFERENCES = NOTEBOOK_DIR / "nbval_references.json"
def writable_folder(path: Path, name: str) -> None:
    """A folder the reproduction writes to, made if missing; a file in its place or one it cannot write is
    refused naming `name` (the environment variable or folder a user sets), before anything runs."""
    require(not path.exists() or path.is_dir(), name, f"{path} is a file; it must be a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GrokError(name, f"cannot make {path} ({err.strerror or err})") from None
    require(os.access(path, os.W_OK | os.X_OK), name, f"{path} is not writable")


def executed_dir(profile: str) -> Path:
    """Where the batch reproduction writes a profile's executed notebooks: notebooks/executed/ for the cpu
    profile (make reproduce's, committed), notebooks/executed/<profile>/ for the others (as their figures)."""
    return NOTEBOOK_DIR / "executed" / (profile if profile in FIGURE_SUBFOLDERS else "")


def run_notebooks(profile: str = "auto", notebooks=NOTEBOOKS, out_dir: Path | None = None,
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
    out_dir = executed_dir(name) if out_dir is None else Path(out_dir)
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
    LOG.info(f"[{name}] {notebook} ...")
    # quiet kernels; notebook 06's with its figures' folder (lmn_figures_env)
    manager = lmn_kernel_manager(name) if notebook == "06_lmn.ipynb" else kernel_manager()
    extra = {"kernel_manager_class": manager}
    papermill.execute_notebook(str(NOTEBOOK_DIR / notebook), str(out_dir / notebook),
                               parameters={"profile": name}, kernel_name=kernel, cwd=str(NOTEBOOK_DIR),
                               progress_bar=progress, log_output=False, request_save_on_cell_execute=True,
                               record_timing=False, **extra)
    tidy_executed(out_dir / notebook)
    html = export_html(out_dir / notebook)
    LOG.info(f"[{name}] {notebook} done in {time.perf_counter() - start:.0f} s; {html}")


def precompute(profile: str = "auto", with_lmn: bool = True, with_theory: bool = True) -> None:
    """Train and measure everything the notebooks of `profile` read, as one set of jobs (grok_lib.jobs):
    no worker waits for a notebook boundary, and a run's tracking starts as soon as it is trained.

    with_theory: notebook 01's specimen run (profiles.theory_config) is trained here too, on one thread
    (`train_specimen`), so that its weights, and 01's table and figure, are the same on every machine."""
    from ..jobs.runner import Job, Runner
    from .lmn_reproduce import lmn_jobs, notebook_out_dir
    from .pipeline import compute
    from .profiles import run_store, theory_config

    from .tables import committed_store, has_tables

    p = get_profile(profile)
    start = time.perf_counter()
    store = run_store()
    configs = p.configs()
    specimen = theory_config(p)
    theory = [Job(f"train {store.run(specimen).path.name}", train_specimen, (specimen, str(store.root)),
                  units=specimen.epochs)] if with_theory and not store.run(specimen).is_complete else []
    if not p.reproduce_computes and not all(store.run(c).is_complete for c in configs):
        committed = committed_store(p, store)
        if committed is not None and has_tables(committed, configs):
            if theory:
                Runner(1).run(theory, "notebook 01's specimen", "epoch")
            LOG.info(f"[{p.name}] the run store lacks this profile's grid: the notebooks draw from its committed "
                     f"tables (results/{p.name}/); `python -m grok_lib compute --profile {p.name}` trains it")
            return
    extra = (lmn_jobs(notebook_out_dir(p.name), p.name) if with_lmn else []) + (
        theory if specimen not in configs else [])  # at ci the specimen is a run of the grid (trained with it)
    compute(p, store, extra=extra)
    LOG.info(f"[{p.name}] training and measurements done in {time.perf_counter() - start:.0f} s")


def train_specimen(config, root: str) -> None:
    """A job: train notebook 01's specimen run on one thread, as the grid's runs train in the workers. By the
    notebook's kernel it would train on every core, and its weights would depend on how many there are."""
    import torch

    from ..store import RunStore
    from ..training.train import train

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(config, RunStore(root), progress=False)
    finally:
        torch.set_num_threads(previous)


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
    LOG.info(f"refreshed {REFERENCES}")


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
    configure()  # progress lines on stderr
    if args.refresh_checks:
        refresh_checks(kernel=args.kernel)
        return 0
    unknown = sorted(set(args.only or ()) - set(NOTEBOOKS))
    notebooks = [n for n in NOTEBOOKS if not args.only or n in args.only]

    def body() -> int:
        start = time.perf_counter()
        os.environ.setdefault("GROK_FIGURES", str(REPO_ROOT / "figures"))  # as run_notebooks sets it
        base = figures_dir(None)
        writable_folder(base, "GROK_FIGURES")
        writable_folder(executed_dir(get_profile(args.profile).name), "notebooks")
        since = clock_ns(base)
        require(not unknown, "only", f"unknown notebook(s) {unknown}; allowed: {', '.join(NOTEBOOKS)}")
        if not get_profile(args.profile).with_lmn and not args.only:  # a bad --profile is refused here
            notebooks.remove("06_lmn.ipynb")  # the LMN paper's figures are the cpu and paper profiles'
        if not args.per_notebook:
            precompute(args.profile, with_lmn="06_lmn.ipynb" in notebooks, with_theory="01_theory.ipynb" in notebooks)
        lanes = args.lanes if args.lanes is not None else (2 if (os.cpu_count() or 1) >= 2 else 1)
        run_notebooks(args.profile, notebooks, kernel=args.kernel, lanes=lanes)
        if not args.only:  # Figs. 1 and 2 with the tighter bound, where their tables are stored (paper.tighter)
            from .tighter import draw_stored

            draw_stored(args.profile)
        LOG.info(f"all {len(notebooks)} notebooks in {time.perf_counter() - start:.0f} s; "
                 + written_summary(base, figures_written(base, since)))
        return 0

    return run_command(body, "interrupted; run the same command again: what is stored is reused")


if __name__ == "__main__":
    sys.exit(main())
