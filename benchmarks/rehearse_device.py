"""Rehearse the GPU call here: a fresh venv that holds only what the device image holds (those of its packages
that grok_lib needs, from the index; torch as the local CPU wheel), the carried wheels installed exactly as
benchmarks/gpu_grid.sh does (--no-index --no-deps into a target folder), and gpu_grid.sh run at the ci profile
in a clean clone. A package missing from benchmarks/gpu_wheels.txt fails it with an ImportError here, not on a
lent GPU.

    .venv/bin/python benchmarks/rehearse_device.py            # about a few minutes; prints each step
    .venv/bin/python benchmarks/rehearse_device.py --drop tblib   # the same without one carried wheel: fails

This machine's Python is 3.11 where the image's is 3.12: the wheels are downloaded for the Python that runs
the rehearsal (pure-Python and abi3 wheels are the same files; constriction is built per version), plus what
only a Python below 3.12 needs (printed; dask's importlib_metadata backport), which the image does not.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_device_image import IMAGE_PYTHON, image, norm, requirements, wheels  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TORCH = "torch==2.13.0"  # the CPU wheel on this machine's index; the image has 2.11.0+cu130


def step(what: str, cmd: list[str], **kw) -> subprocess.CompletedProcess:
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, **kw)
    print(f"{what}: exit {result.returncode} in {time.perf_counter() - start:.0f} s", flush=True)
    if result.returncode != 0:
        print((result.stdout + result.stderr)[-3000:])
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drop", action="append", default=[], help="leave this carried wheel out (a check)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rehearse-") as tmp:
        tmp = Path(tmp)
        venv, py = tmp / "venv", tmp / "venv" / "bin" / "python"
        from_image = sorted(name for name in requirements() if name in image() and name != "torch")
        if step("venv", [sys.executable, "-m", "venv", str(venv)]).returncode:
            return 1
        if step(f"the image's packages ({len(from_image)}) and {TORCH}",
                [str(py), "-m", "pip", "install", "-q", TORCH, *from_image]).returncode:
            return 1
        clone = tmp / "clone"
        if step("clean clone", ["git", "clone", "-q", str(REPO), str(clone)]).returncode:
            return 1
        carried = [str(r) for name, r in wheels().items() if name not in {norm(d) for d in args.drop}]
        # what only a Python below the image's 3.12 needs (dask's importlib_metadata backport on 3.11 here)
        here = dict(IMAGE_PYTHON, python_version=f"{sys.version_info[0]}.{sys.version_info[1]}",
                    python_full_version=".".join(map(str, sys.version_info[:3])))
        older = sorted(set(requirements(env=here)) - set(requirements()) - image() - set(wheels()))
        if older:
            print(f"needed on Python {here['python_version']} only, not by the image's 3.12: {older}")
            carried += older
        if step(f"download {len(carried)} carried wheels", [str(py), "-m", "pip", "download", "-q", "--no-deps",
                "--only-binary=:all:", "-d", str(clone / ".whl"), *carried]).returncode:
            return 1
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp), "PYTHON": str(py), "PROFILE": "ci", "BUDGET_S": "120",
               "TIMEOUT_S": "400", "OUT": str(tmp / "out"), "GROK_RUNS": str(tmp / "runs")}
        result = step("bash benchmarks/gpu_grid.sh at the ci profile", ["bash", "benchmarks/gpu_grid.sh"],
                      cwd=clone, env=env)
        made = sorted(p.name for p in (tmp / "out").glob("*"))
        ok = result.returncode == 0 and {"slice.json", "tables.tar.gz"} <= set(made)
        print(f"{'passed' if ok else 'FAILED'}: $OUT holds {made}")
        if not ok:
            print(result.stdout[-3000:])
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
