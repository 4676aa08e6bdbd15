"""Every notebook runs under nbval (--nbval-lax) at the ci profile, and its check cells print the stored text.

The committed notebooks carry no outputs, so nbval runs on copies that have the reference text of the
`# NBVAL_CHECK_OUTPUT` cells put back (grok_lib.paper.reproduce.with_references), in a separate pytest process
whose environment selects the ci profile and a throw-away run store and figure folder.
"""

import os
import subprocess
import sys

import nbformat

from grok_lib.paper.reproduce import NOTEBOOK_DIR, NOTEBOOKS, with_references


def test_notebooks_pass_nbval_at_the_ci_profile(tmp_path):
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
