"""nbval runs every notebook here at the `ci` profile, against a throw-away run store and figure folder.

The kernel nbval starts for a notebook inherits this process's environment, and the notebooks' derived
cell reads GROK_PROFILE before its own `profile` parameter, so setting the variables just before the first
notebook cell is set up (that is when nbval starts the kernel) is enough; tests collected before the
notebooks never see them. Executed copies written by `python -m grok_lib.reproduce` are not collected.
"""

import atexit
import os
import shutil
import tempfile

import pytest

collect_ignore = ["executed"]
_configured = []


def _scratch() -> str:
    path = tempfile.mkdtemp(prefix="grok-nbval-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if item.path.suffix == ".ipynb" and not _configured:
        _configured.append(True)
        scratch = _scratch()
        os.environ.update(GROK_PROFILE="ci", GROK_RUNS=os.path.join(scratch, "runs"),
                          GROK_FIGURES=os.path.join(scratch, "figures"),
                          GROK_HEADLESS="1")  # slider cells print one line (grok_lib.plots.coarse_graining_explorer)
