"""The authors' container without JAX: pickle.dumps(jax.tree_util.tree_flatten(tree)), byte for byte.

Their size is bz2 of this pickle (`get_compressed_sizes` in their main.py): the leaves as float32
jax.Arrays and the PyTreeDef, both written here with the opcodes pickle would emit, so that neither JAX
nor its types are needed. tests/test_authors.py compares the bytes with a recorded JAX pickle.
"""

from __future__ import annotations

import bz2
import io
import pickle
import sys

import numpy as np


class _Global:
    """A module attribute named in the pickle, written without importing the module."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name


class _Call:
    """An object pickled as func(*args) (REDUCE, or NEWOBJ when new), then BUILD with state."""

    def __init__(self, func, args: tuple, state=None, new: bool = False):
        self.func, self.args, self.state, self.new = func, args, state, new


class _Pickler(pickle._Pickler):
    """The pure-Python pickler, which writes the same opcodes as the C one, plus the two types above."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_global(self, obj: _Global):
        self.save(obj.module)
        self.save(obj.name)
        self.write(pickle.STACK_GLOBAL)
        self.memoize(obj)

    def _save_call(self, obj: _Call):
        self.save(obj.func)
        self.save(obj.args)
        self.write(pickle.NEWOBJ if obj.new else pickle.REDUCE)
        self.memoize(obj)
        if obj.state is not None:
            self.save(obj.state)
            self.write(pickle.BUILD)

    dispatch[_Global] = _save_global
    dispatch[_Call] = _save_call


# The globals jax 0.10 with numpy 2 writes; older releases name other modules (numpy 1: numpy.core.multiarray).
_RECONSTRUCT_ARRAY = _Global("jax._src.array", "_reconstruct_array")
_NP_RECONSTRUCT = _Global("numpy._core.multiarray", "_reconstruct")
_NDARRAY = _Global("numpy", "ndarray")
_FLOAT32 = _Call(_Global("numpy", "dtype"), ("f4", False, True), (3, "<", None, None, None, -1, -1, 0))
_PYTREEDEF = _Global("jaxlib._jax.pytree", "PyTreeDef")
_REGISTRY = _Global("jax._src.tree_util", "default_registry")
LEAF, TUPLE, DICT = 0, 2, 5  # PyTreeKind


def _jax_array(x: np.ndarray) -> _Call:
    """A float32 jax.Array as it pickles: _reconstruct_array(ndarray.__reduce__() parts, {'weak_type': False})."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    state = (1, tuple(x.shape), _FLOAT32, False, x.tobytes())
    return _Call(_RECONSTRUCT_ARRAY, (_NP_RECONSTRUCT, (_NDARRAY, tuple([0]), b"b"), state, {"weak_type": False}))


def _flatten(node, leaves: list, nodes: list) -> tuple[int, int]:
    """Post-order PyTreeDef nodes (kind, arity, node data, custom, leaves, nodes) of dicts, tuples, arrays."""
    if isinstance(node, (dict, tuple)):
        keys = sorted(node) if isinstance(node, dict) else range(len(node))
        counts = [_flatten(node[k], leaves, nodes) for k in keys]
        n_leaves, n_nodes = sum(c[0] for c in counts), sum(c[1] for c in counts) + 1
        data = [sys.intern(k) for k in keys] if isinstance(node, dict) else None
        nodes.append((DICT if data is not None else TUPLE, len(node), data, None, n_leaves, n_nodes))
        return n_leaves, n_nodes
    leaves.append(_jax_array(node))
    nodes.append(tuple([LEAF, 0, None, None, 1, 1]))
    return 1, 1


def jax_pickle(tree: dict) -> bytes:
    """pickle.dumps(jax.tree_util.tree_flatten({'params': nested(tree)})) for {path: array or (array, ...)}."""
    nested: dict = {}
    for path, value in tree.items():
        *parents, leaf = path.split("/")
        node = nested
        for key in parents:
            node = node.setdefault(sys.intern(key), {})
        node[sys.intern(leaf)] = value
    leaves, nodes = [], []
    _flatten({"params": nested}, leaves, nodes)
    treedef = _Call(_PYTREEDEF, (), (_REGISTRY, nodes), new=True)
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.DEFAULT_PROTOCOL).dump((leaves, treedef))
    return buffer.getvalue()


def container_size(tree: dict, ravel: bool) -> int:
    """Their `get_compressed_sizes(...)['bzip2']`; ravel=True as `get_compressed_sizes_svd` (each factor raveled)."""
    if ravel:
        tree = {p: tuple(a.ravel() for a in v) if isinstance(v, tuple) else v.ravel() for p, v in tree.items()}
    return len(bz2.compress(jax_pickle(tree)))
