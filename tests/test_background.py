"""The loop between problem.py and the modules below it, made visible (issue 28, item 3): allocation and
reallocation read a ComplexityProblem only through the typed interfaces they define, and background
compression has one owner, grok_lib.complexity.background."""

import ast
import typing
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from grok_lib.complexity import allocation, background, reallocation
from grok_lib.complexity.background import Background, pool
from grok_lib.complexity.problem import ComplexityProblem
from grok_lib.errors import GrokError

PACKAGE = Path(__file__).resolve().parents[1] / "grok_lib"
INTERFACES = {allocation: allocation.Probed, reallocation: reallocation.Reallocatable}


def members(protocol) -> set[str]:
    return {n for n in (*typing.get_type_hints(protocol), *vars(protocol)) if not n.startswith("_")}


def tiny_problem(**kwargs):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    x = torch.randn(64, 6)
    return ComplexityProblem(net, F.cross_entropy, (x, net(x).argmax(-1)), **kwargs)


def test_a_problem_is_both_interfaces():
    problem = tiny_problem()
    for protocol in INTERFACES.values():
        assert isinstance(problem, protocol)
        assert all(hasattr(problem, name) for name in members(protocol)), protocol.__name__


@pytest.mark.parametrize("module", list(INTERFACES), ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_the_modules_below_the_problem_read_only_their_interface(module):
    source = Path(module.__file__).read_text()
    tree = ast.parse(source)
    allowed = members(INTERFACES[module])
    read = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name) and node.value.id == "problem"}
    assert read and read <= allowed, f"{module.__name__} reads {sorted(read - allowed)} beyond its interface"
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "problem" not in imported and "search" not in imported


def test_background_compression_has_one_owner():
    # in the complexity core and the explorer, only background.py makes a thread pool, submits to one or
    # times a call on one. coders.py's older `compressor` pool may still be defined, but nothing calls it.
    users = []
    for path in [*(PACKAGE / "complexity").glob("*.py"), PACKAGE / "paper" / "explorer.py"]:
        if path.name == "background.py":
            continue
        tree = ast.parse(path.read_text())
        unused = set()
        if path.name == "coders.py":
            unused = {n for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "compressor"
                      for n in ast.walk(f)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and node not in unused:
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if name in ("submit", "compressor", "timed_call", "ThreadPoolExecutor"):
                    users.append(f"{path.name}:{node.lineno} {name}")
    assert not users, users


def test_background_and_foreground_give_the_same_values_and_only_the_pool_is_timed():
    timings = {"compress_background": 0.0}
    on, off = Background(2, True, timings), Background(None, False, {})
    assert on.start(sum, [1, 2, 3]).result() == off.start(sum, [1, 2, 3]).result() == 6
    assert timings["compress_background"] >= 0 and off.threads >= 1
    assert on.start(len, "ab")._future is not None and pool(2) is pool(2)
    deferred = off.start(pytest.fail, "computed before its result was asked for")
    deferred.cancel()  # never computed
    with pytest.raises(GrokError, match="^compress_threads:"):
        Background(0, True, {})
    assert background.pool(2)._thread_name_prefix == "grok-compress"


def test_a_problem_compresses_through_its_background():
    problems = [tiny_problem(background=flag) for flag in (True, False)]
    for problem in problems:
        evaluation = problem.evaluate(0.9, 1e-2, 10.0, prefetch=True)
        assert problem.feasible(evaluation, 10.0)
        points = [(1e-2, (1.0,) * len(problem.grainer.names)), (2e-2, (2.0,) * len(problem.grainer.names))]
        problem.price(evaluation.ranks, evaluation.tau, points, problem.train)
        problem.size(evaluation)
        assert not problem.pending
    assert problems[0].background.enabled and not problems[1].background.enabled
    assert problems[0].sizes == problems[1].sizes
    priced = [p.price(p.grainer.ranks(0.9), 0.9, [(1e-2, (1.0,) * 4)], p.train) for p in problems]
    assert priced[0] == priced[1]
    assert "compress_background" in problems[0].timings and "compress_background" not in problems[1].timings
