"""The README as a reader meets it: short, every fenced python block runs as written in a fresh interpreter,
every local link resolves, no commit hashes, and its results table is what the committed tables give."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from grok_lib.paper import summary
from grok_lib.store import REPO_ROOT

README = REPO_ROOT / "README.md"
TEXT = README.read_text()
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, flags=re.S)


def test_readme_is_short():
    assert len(TEXT.splitlines()) <= 200


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_every_python_block_runs_as_written(index, tmp_path):
    result = subprocess.run([sys.executable, "-c", PYTHON_BLOCKS[index]], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip(), "a README example prints what it computed"
    assert "Warning" not in result.stderr, result.stderr[-2000:]


def test_there_is_a_python_example():
    assert PYTHON_BLOCKS and "measure_complexity" in PYTHON_BLOCKS[0]


def test_every_local_link_resolves():
    links = re.findall(r"\]\(([^)#]+)\)", TEXT)
    local = [link for link in links if not re.match(r"[a-z]+://", link)]
    assert local
    missing = [link for link in local if not (REPO_ROOT / link).exists()]
    assert not missing, missing


def test_no_commit_hashes_or_diary():
    assert not re.search(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b", TEXT)


def test_the_results_block_is_what_the_committed_tables_give(tmp_path, monkeypatch):
    monkeypatch.setenv("GROK_RUNS", str(tmp_path / "runs"))  # an empty store: the committed tables
    block = re.search(r"<!-- summary:p113 -->\n(.*?)<!-- /summary -->", TEXT, flags=re.S)
    assert block, "README.md has no generated p113 block"
    assert block.group(1).strip() == summary.readme_block("p113").strip()
