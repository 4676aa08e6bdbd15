"""The package's shape: imports go one way (base <- training <- complexity <- lmn <- monitor <- paper <- cli), the
complexity core measures any nn.Module without knowing how it was trained, and modules stay short."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "grok_lib"
# a module may import only from its own layer or a layer to its left
LAYERS = ["base", "training", "complexity", "lmn", "monitor", "paper", "cli"]
MAX_LINES = 320  # the longest a module may be (ARCHITECTURE.md says so)
BASE = {"errors", "files", "log", "paths", "store", "jobs"}
# the complexity core: measures any module, so it imports nothing from training/
CORE = {"coarse", "coders", "distortion", "problem", "results", "search", "quantization", "surrogate", "bounds",
        "edge", "measurement", "table", "recode", "byteio", "entropy", "allocation", "reallocation", "background"}


def layer_of(module: str) -> str:
    parts = module.split(".")[1:]  # drop "grok_lib"
    if not parts or parts[0] in BASE or parts[0] in ("__init__", "__main__"):
        return "base" if parts and parts[0] in BASE else "cli"
    return parts[0] if parts[0] in LAYERS else "cli"


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts)
        found[name.removesuffix(".__init__")] = path
    return found


def imports_of(name: str, path: Path) -> set[str]:
    """grok_lib modules imported by `name` (module level and inside functions)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("grok_lib"):
                known = modules()
                for alias in node.names:  # "from .lmn import tasks" imports a module
                    if f"{target}.{alias.name}" in known:
                        out.add(f"{target}.{alias.name}")
                out.add(target)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("grok_lib"))
    return {m for m in out if m != "grok_lib"}


def graph() -> dict[str, set[str]]:
    return {name: imports_of(name, path) for name, path in modules().items()}


def test_imports_go_one_way():
    upward = [f"{a} -> {b}" for a, deps in graph().items() for b in deps
              if LAYERS.index(layer_of(b)) > LAYERS.index(layer_of(a))]
    assert not upward, "imports against the layers " + " < ".join(LAYERS) + ":\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
    g = graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        for dep in g.get(node, ()):
            if dep not in g:
                continue
            if state.get(dep) == 1:
                cycles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = 2

    for node in g:
        if node not in state:
            visit(node, [node])
    # a package __init__ re-exporting its own modules is not a cycle of design
    packages = {name for name, path in modules().items() if path.name == "__init__.py"}
    cycles = [c for c in cycles if not set(c.split(" -> ")) & packages]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_complexity_core_does_not_know_how_networks_are_trained():
    bad = [f"{a} -> {b}" for a, deps in graph().items() if a.startswith("grok_lib.complexity.")
           and a.split(".")[-1] in CORE for b in deps if layer_of(b) != "base" and layer_of(b) != "complexity"]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("name", sorted(modules()))
def test_modules_stay_short(name):
    lines = len(modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it along its design"


def test_the_layer_rule_fails_on_an_upward_import(tmp_path):
    # the checker itself: a training module importing the paper layer is flagged
    assert LAYERS.index(layer_of("grok_lib.paper.profiles")) > LAYERS.index(layer_of("grok_lib.training.config"))
    assert layer_of("grok_lib.store") == "base" and layer_of("grok_lib.cli") == "cli"
