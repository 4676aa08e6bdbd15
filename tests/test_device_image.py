"""The GPU call cannot fail on a missing package: grok_lib's runtime requirements, followed through their own
requirements (as installed here, markers evaluated for the image's Python 3.12 on Linux), are each either in
the device image (benchmarks/device_image.txt, from the device tool's KINDS.md) or among the wheels the GPU
scripts carry (benchmarks/gpu_wheels.txt), and those wheels are pinned as a set that satisfies itself."""

from __future__ import annotations

import importlib.metadata as md
import re

import pytest
from packaging.requirements import Requirement

from grok_lib.store import REPO_ROOT

IMAGE_PYTHON = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
                "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
                "os_name": "posix", "platform_python_implementation": "CPython", "extra": ""}
SCRIPTS = ("benchmarks/gpu_grid.sh", "benchmarks/gpu_session.sh")


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def image() -> set[str]:
    text = (REPO_ROOT / "benchmarks" / "device_image.txt").read_text()
    return {norm(w) for line in text.splitlines() if not line.startswith("#") for w in line.split()}


def wheels() -> dict[str, Requirement]:
    text = (REPO_ROOT / "benchmarks" / "gpu_wheels.txt").read_text()
    reqs = [Requirement(line) for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return {norm(r.name): r for r in reqs}


def requirements(root: str = "grok-complexity", env: dict = IMAGE_PYTHON) -> dict[str, list[str]]:
    """Every distribution `root` needs at run time (no extras), name -> who asked for it."""
    needed: dict[str, list[str]] = {}
    todo = [(root, "")]
    while todo:
        name, by = todo.pop()
        key = norm(name)
        if key in needed:
            needed[key].append(by)
            continue
        needed[key] = [by]
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue  # not installed here: its own requirements cannot be followed (it is still checked)
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate(env):
                todo.append((req.name, key))
    needed.pop(norm(root))
    return needed


def test_every_runtime_requirement_is_in_the_image_or_carried():
    missing = {name: by for name, by in requirements().items() if name not in image() and name not in wheels()}
    assert not missing, f"neither in the device image nor in benchmarks/gpu_wheels.txt: {missing}"


def test_the_carried_wheels_are_pinned_and_satisfy_each_other():
    pins = wheels()
    assert pins and all(len(r.specifier) == 1 and next(iter(r.specifier)).operator == "==" for r in pins.values())
    version = {name: next(iter(r.specifier)).version for name, r in pins.items()}
    for name in pins:
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            pytest.fail(f"{name} is carried but not installed here, so its requirements cannot be checked")
        assert dist.version == version[name], f"{name}: here {dist.version}, carried {version[name]}"
        for line in dist.requires or []:
            req = Requirement(line)
            if (req.marker is None or req.marker.evaluate(IMAGE_PYTHON)) and norm(req.name) in version:
                assert req.specifier.contains(version[norm(req.name)], prereleases=True), \
                    f"{name} {version[name]} needs {req}, the set carries {version[norm(req.name)]}"


def test_nothing_carried_is_already_in_the_image():
    assert not set(wheels()) & image()


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_gpu_scripts_download_exactly_this_list(script):
    text = (REPO_ROOT / script).read_text()
    assert "-r benchmarks/gpu_wheels.txt" in text and "--no-index --no-deps" in text


def test_a_requirement_missing_from_both_lists_is_named():
    """The checker itself: drop a carried wheel and the test names it."""
    pins = wheels()
    pins.pop("constriction")
    missing = [name for name in requirements() if name not in image() and name not in pins]
    assert missing == ["constriction"]
