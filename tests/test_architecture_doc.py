"""ARCHITECTURE.md says what the code is (issue 28, item 6): its layers and line limit are the ones
tests/test_architecture.py enforces, every module of the package is named under its layer, the op table is
what the profiles read, and its "where to add" table works when followed literally in a copy of the package."""

from __future__ import annotations

import ast
import importlib
import re
import shutil
import sys
from pathlib import Path

from test_architecture import LAYERS, MAX_LINES, PACKAGE, graph, layer_of, modules

DOC = (PACKAGE.parent / "ARCHITECTURE.md").read_text()
NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
MODULE = re.compile(r"(?<![\w/.])((?:\w+/)*\w+\.py)\b")


def layer_block() -> str:
    """The code block after the layer count: one section per layer, its name in the first column."""
    return DOC.split("```", 2)[1]


def documented() -> dict[str, str]:
    """Module path (relative to grok_lib/) -> the layer whose section names it."""
    out, section, prefix = {}, None, ""
    for line in layer_block().splitlines():
        if line and not line[0].isspace():
            head = line.split()[0]
            section = head.rstrip("/")
            prefix = head if head.endswith("/") else ""
        for name in MODULE.findall(line):
            assert section is not None, line
            assert out.setdefault(prefix + name, section) == section, f"{prefix + name} is named under two layers"
    return out


def module_files() -> dict[str, str]:
    """Every module file with code (an empty __init__.py has none) -> its layer."""
    return {str(path.relative_to(PACKAGE)): layer_of(name) for name, path in modules().items()
            if path.read_text().strip()}


def test_the_layers_and_the_line_limit_are_the_enforced_ones():
    assert f"`grok_lib` is {NUMBERS[len(LAYERS)]} layers" in DOC
    assert "    " + " ← ".join(LAYERS) + "\n" in DOC
    sections = [line.split()[0].rstrip("/") for line in layer_block().splitlines() if line and not line[0].isspace()]
    assert sections == LAYERS
    assert f"a module over {MAX_LINES} lines" in DOC and "~300" not in DOC


def test_every_module_is_named_under_its_layer():
    named, actual = documented(), module_files()
    missing = sorted(set(actual) - set(named))
    assert not missing, f"modules ARCHITECTURE.md does not name: {missing}"
    stale = sorted(set(named) - set(actual))
    assert not stale, f"ARCHITECTURE.md names modules that do not exist: {stale}"
    wrong = sorted(f"{m}: under {named[m]}, in layer {actual[m]}" for m in actual if named[m] != actual[m])
    assert not wrong, wrong


def test_the_complexity_core_is_what_the_text_says():
    claim = "(everything in `complexity/` but `tracking.py` and `authors.py`) imports nothing\nfrom `training/`"
    assert claim in DOC
    outside = {a.rsplit(".", 1)[1] for a, deps in graph().items() if a.startswith("grok_lib.complexity.")
               for b in deps if layer_of(b) not in ("base", "complexity")}
    assert outside <= {"tracking", "authors"}, outside


def test_the_profiles_read_their_ops_from_the_table():
    # no tuple or list of two or more op names is written out in the paper layer: they come from OPS / PAPER_OPS
    from grok_lib.training.ops import OPS

    written = []
    for path in (PACKAGE / "paper").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Tuple, ast.List)) and len(node.elts) >= 2 and all(
                    isinstance(e, ast.Constant) and e.value in OPS for e in node.elts):
                written.append(f"{path.name}:{node.lineno}")
    assert not written, written


# ---- the "where to add" table, followed in a copy -------------------------------------------------------

NEW_OP = 'Op("cube_sum", "a^3+b^3", "a³+b³", lambda a, b, p: (a ** 3 + b ** 3) % p, 0.5, 1, 2e-3)'
NEW_CODER_FUNCTIONS = '''
def encode_raw(cg: CoarseGrained, limit: int | None = None) -> Encoded:
    """The stored arrays' float32 values, uncompressed (a coder added by tests/test_architecture_doc.py)."""
    return Encoded(b"".join(np.asarray(a, dtype="<f4").tobytes() for a in cg.stored_arrays()), "raw")


def raw_size(cg: CoarseGrained) -> int:
    return 4 * sum(int(np.asarray(a).size) for a in cg.stored_arrays())

'''
NEW_CODER = '"raw": Coder("the float32 values, uncompressed", encode_raw, raw_size, exact_codec="raw")'
def row(thing: str) -> str:
    """The 'touch' cell of the where-to-add table's row `thing`."""
    for line in DOC.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0] == thing:
            return cells[1]
    raise AssertionError(f"ARCHITECTURE.md's where-to-add table has no row {thing!r}")


def insert(path: Path, name: str, entry: str = "", before: str = "") -> None:
    """Add `entry` after the last element of the module-level collection literal assigned to `name` (a
    dict, or the tuple a dict comprehension runs over), and `before` above that assignment."""
    source = path.read_bytes()
    tree = ast.parse(source)
    node = next(n for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign)) and name in
                {t.id for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Name)})
    value = node.value.generators[0].iter if isinstance(node.value, ast.DictComp) else node.value
    last = value.values[-1] if isinstance(value, ast.Dict) else value.elts[-1]
    lines = source.splitlines(keepends=True)
    end = sum(len(line) for line in lines[:last.end_lineno - 1]) + last.end_col_offset  # byte offsets
    start = sum(len(line) for line in lines[:node.lineno - 1])
    source = source[:end] + (",\n    " + entry).encode() * bool(entry) + source[end:]
    path.write_bytes(source[:start] + before.encode() + source[start:])


def test_where_to_add_an_op_and_a_coder_followed_in_a_copy(tmp_path, monkeypatch):
    op_cell, coder_cell = row("an op"), row("a coder")
    op_file, coder_file = (re.search(r"`([\w/]+\.py)`", cell).group(1) for cell in (op_cell, coder_cell))
    assert "`OPS`" in op_cell and "`CODERS` entry" in coder_cell and "function" in coder_cell
    # the copy is imported beside the package under a name of its own (every import inside it is relative)
    copy = tmp_path / COPY
    shutil.copytree(PACKAGE, copy)  # with its __pycache__: compiled files of unchanged modules stay valid
    insert(copy / op_file, "OPS", NEW_OP)  # one Op record in the OPS table
    insert(copy / coder_file, "CODERS", NEW_CODER, before=NEW_CODER_FUNCTIONS)  # the functions, one CODERS entry
    changed = {str(p.relative_to(copy)) for p in copy.rglob("*.py")
               if p.read_bytes() != (PACKAGE / p.relative_to(copy)).read_bytes()}
    assert changed == {op_file, coder_file}
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        check_the_copy(tmp_path / "runs")
    finally:
        for name in [m for m in sys.modules if m == COPY or m.startswith(COPY + ".")]:
            del sys.modules[name]


COPY = "grok_lib_copy"


def check_the_copy(runs: Path) -> None:
    """The op trains and evaluates in a tiny run; the coder is in the registry, coded_sizes and a search's
    objective and result."""
    import torch
    import torch.nn.functional as F

    def part(name):
        return importlib.import_module(f"{COPY}.{name}")

    ops, config_module, data, train = part("training.ops"), part("training.config"), part("training.data"), \
        part("training.train")
    coders, problem_module, store = part("complexity.coders"), part("complexity.problem"), part("store")
    assert list(ops.OPS)[-1] == "cube_sum" and "cube_sum" not in ops.PAPER_OPS
    config = config_module.RunConfig(op="cube_sum", regime="ours", p=11, train_frac=0.5, d_model=16, n_heads=2,
                                     d_mlp=32, epochs=3)
    assert (config.n_layers, config.noise) == (1, 2e-3)  # the record's depth and delta
    split = data.make_split("cube_sum", 11, seed=0)
    a, b = split.train_x[:, 0], split.train_x[:, 2]
    assert torch.equal(split.train_y, (a ** 3 + b ** 3) % 11) and len(split.train_y) == round(0.5 * 121)
    run = train.train(config, store.RunStore(runs), progress=False)
    metrics = run.metrics()
    assert run.is_complete and len(metrics) > 0 and metrics.test_acc.notna().all()

    assert list(coders.CODERS)[-1] == "raw" and "raw" in problem_module.OBJECTIVES
    problem = problem_module.ComplexityProblem(run.load_model(run.checkpoints()[-1]), F.cross_entropy,
                                               (split.train_x, split.train_y), (split.test_x, split.test_y),
                                               objective="raw")
    evaluation = problem.evaluate(None, 1e-3, 1.0)
    cg = problem.coarse_grain(evaluation.ranks, evaluation.delta, evaluation.tau, evaluation.scales)
    assert problem.size(evaluation) == coders.raw_size(cg) == coders.coded_sizes(cg)["raw"].n_bytes
    result = problem.result(evaluation, 1.0, 2, 1)
    assert result.sizes["raw"].n_bytes == coders.raw_size(cg) and set(result.sizes) == set(coders.CODERS)
