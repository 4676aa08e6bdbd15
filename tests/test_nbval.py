"""Every notebook runs under nbval (--nbval-lax) at the ci profile, and its check cells print the stored text.
In `make test-slow` (heavy): the batch reproduction's executed notebooks, pages and figures are the same bytes
from a cold run (an empty run store: everything trained and measured in that run) and a warm one (the same
runs copied to another place).

The committed notebooks carry no outputs, so nbval runs on copies that have the reference text of the
`# NBVAL_CHECK_OUTPUT` cells put back (grok_lib.paper.reproduce.with_references), in a separate pytest process
whose environment selects the ci profile and a throw-away run store and figure folder.
"""

import difflib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from grok_lib.paper.reproduce import NOTEBOOK_DIR, NOTEBOOKS, with_references

# what `make reproduce` runs (grok_lib.paper.reproduce.main), into a folder of the test's
REPRODUCE = ("import sys; from grok_lib.paper.reproduce import precompute, run_notebooks; "
             "precompute('ci'); run_notebooks('ci', out_dir=sys.argv[1], lanes=2)")


def _reproduce(store: Path, figures: Path, out: Path) -> dict[str, bytes]:
    """The executed notebooks, their pages and the figures of a ci reproduction from `store`, by name."""
    env = dict(os.environ, GROK_PROFILE="ci", GROK_RUNS=str(store), GROK_FIGURES=str(figures), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", REPRODUCE, str(out)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]
    files = {p.name: p.read_bytes() for p in out.iterdir() if p.suffix in (".ipynb", ".html")}
    files.update({f"figures/{p.relative_to(figures)}": p.read_bytes() for p in figures.rglob("*") if p.is_file()})
    shutil.rmtree(out)
    return files


def _first_difference(a: bytes, b: bytes) -> str:
    if b"\0" in a + b:
        return "binary files differ"
    lines = difflib.unified_diff(a.decode().splitlines(), b.decode().splitlines(), "cold", "warm", n=2, lineterm="")
    return "\n".join(line[:300] for line in list(lines)[:40])


def test_notebooks_pass_nbval(tmp_path):
    for name in NOTEBOOKS:
        nbformat.write(with_references(NOTEBOOK_DIR / name), tmp_path / name)
    env = dict(os.environ, GROK_PROFILE="ci", GROK_RUNS=str(tmp_path / "runs"),
               GROK_FIGURES=str(tmp_path / "figures"))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
         "--nbval-sanitize-with", str(NOTEBOOK_DIR / "nbval_sanitize.cfg"), *[name for name in NOTEBOOKS]],
        cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout


@pytest.mark.heavy
def test_cold_and_warm_reproductions_write_the_same_bytes_wherever_the_store_lies(tmp_path):
    figures, out = tmp_path / "reproduced-figures", tmp_path / "executed"
    cold = _reproduce(tmp_path / "store", figures, out)  # an empty store: everything trained and measured here
    shutil.rmtree(figures)
    shutil.copytree(tmp_path / "store", tmp_path / "elsewhere")  # the same runs, in another place
    warm = _reproduce(tmp_path / "elsewhere", figures, out)
    assert sorted(cold) == sorted(warm)
    assert {n for n in cold if n.endswith(".ipynb")} == set(NOTEBOOKS)
    differ = [n for n in cold if cold[n] != warm[n]]
    assert differ == [], _first_difference(cold[differ[0]], warm[differ[0]]) if differ else ""
    for name in NOTEBOOKS:
        text = cold[name].decode()
        assert str(tmp_path) not in text.replace(str(figures), "").replace(str(out), "")  # "<run store>"
        assert "coarse-graining epoch" not in text and "%|" not in text  # no progress bar of the cold run
