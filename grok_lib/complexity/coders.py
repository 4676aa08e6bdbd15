"""Compressed size of a coarse-grained network: a computable upper bound on its K (Eq. 3).

`CODERS` is the registry: each entry says how to encode a coarse-graining, what size a search minimizes
with it as objective, and how to decode it. A new coder is a function here and one entry in `CODERS`;
results, searches and `ComplexityProblem(objective=...)` read the registry.

* "paper": exactly the authors' measure, len(bz2.compress(pickle.dumps(list_of_float32_arrays))) of the
  stored arrays (matrices or low-rank factors, then the 1-D parameters, in parameter order). pickle is
  only used to *measure*; nothing is ever unpickled.
* "symbols": the integer bin indices plus what decodes them (Delta, tau, names, shapes, ranks) in a small
  self-describing format, compressed with the better of bzip2 and LZMA (the first byte says which). Where
  Delta is finer than float32 resolution it also tries the float32 grid values (layout 1), the paper's
  byte stream without pickle's framing, so it is in practice never larger than "paper" on the same weights.
* "entropy": grok_lib.complexity.entropy, the bin indices range-coded under a model fitted per array (not
  in the paper; the tightest of the three).
* `naive_size`: the paper's coder on the raw float32 weights, no coarse-graining (Fig. 9).

Symbols byte format (integers unsigned LEB128 varints unless said otherwise), before compression::

    b"GKCG" version(1 | 2) layout(0 indices | 1 float32)  Delta(float64 LE)  tau(float64 LE, NaN = none)
    n_params, then per parameter: len(name) name(utf-8)  ndim  dims...  rank+1 (0 = stored whole)
                   in version 2 only (a per-group Delta), its own grid spacing (float64 LE)
                   and, in layout 0, one dtype code per stored array (0 int8, 1 int16, 2 int32, 3 int64)
    then every stored array, little-endian: its indices in that dtype, or its float32 grid values

Headers come first and data after, so the compressor sees one long stream of small integers. The
encoding is the codec tag (b"B" bzip2 | b"L" LZMA), the compressed payload, and a CRC-32 of both
(byteio.seal: 4 bytes, counted in its size; a damaged encoding is refused, never decoded).
"""

from __future__ import annotations

import bz2
import lzma
import math
import pickle
import struct
from dataclasses import dataclass
from collections.abc import Callable

import numpy as np
import torch

from .byteio import (CHECK_BYTES, Encoded, Reader, bz2_decompress, factor_shapes, lzma_decompress, param_header,
                     read_param_header, seal, unseal, varint)
from .coarse import CoarseGrained, StoredParam, dequantize
from .entropy import decode_entropy, encode_entropy, entropy_search_size
from ..errors import GrokError

MAGIC = b"GKCG"
VERSION, VERSION_SPACINGS = 1, 2  # 2: every parameter's own grid spacing follows its layout
INDICES, FLOATS = 0, 1  # payload layouts
INT_DTYPES = (np.dtype("<i1"), np.dtype("<i2"), np.dtype("<i4"), np.dtype("<i8"))
LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 6}]  # 9e: little gain for its time (benchmarks/RESULTS.md)
CODECS = {
    b"B": ("bzip2", lambda data: bz2.compress(data, 9), bz2.decompress),
    b"L": ("lzma", lambda data: lzma.compress(data, lzma.FORMAT_RAW, filters=LZMA_FILTERS),
           lambda data: lzma.decompress(data, lzma.FORMAT_RAW, filters=LZMA_FILTERS)),
}


def _paper_bytes(arrays: list[np.ndarray]) -> bytes:
    return bz2.compress(pickle.dumps([np.asarray(a, dtype=np.float32) for a in arrays]))


def paper_size(arrays: list[np.ndarray]) -> int:
    """Bytes of bz2.compress(pickle.dumps(arrays)) with every array float32: the paper's complexity."""
    return len(_paper_bytes(arrays))


def paper_size_of(cg: CoarseGrained) -> int:
    """The paper's complexity of a coarse-grained network: paper_size of its stored arrays."""
    return paper_size(cg.stored_arrays())


def naive_size(weights: dict[str, torch.Tensor]) -> int:
    """Fig. 9: the paper's coder on the raw float32 weights, without coarse-graining (bytes)."""
    return paper_size([w.detach().cpu().numpy() for w in weights.values()])


def encode_paper(cg: CoarseGrained, limit: int | None = None) -> Encoded:
    """The "paper" coder's bytes, bz2(pickle(stored float32 arrays)); `limit` is not used."""
    return Encoded(_paper_bytes(cg.stored_arrays()), "bzip2")


def _smallest_dtype(indices: np.ndarray) -> int:
    """Code of the smallest little-endian integer dtype holding every index."""
    low, high = (int(indices.min()), int(indices.max())) if indices.size else (0, 0)
    for code, dtype in enumerate(INT_DTYPES):
        info = np.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return code
    raise AssertionError("bin indices are bounded by MAX_INDEX < 2**63")


def serialize(cg: CoarseGrained, layout: int = INDICES) -> bytes:
    """The uncompressed symbols payload of `cg` in `layout` (format in the module docstring)."""
    tau = math.nan if cg.tau is None else float(cg.tau)
    spacings = any(p.delta is not None for p in cg.params)
    version = VERSION_SPACINGS if spacings else VERSION
    header = [MAGIC, bytes([version, layout]), struct.pack("<dd", cg.delta, tau), varint(len(cg.params))]
    data = []
    for p in cg.params:
        header.append(param_header(p.name, p.shape, p.rank))
        if spacings:
            header.append(struct.pack("<d", p.step(cg.delta)))
        for indices in p.indices:
            if layout == FLOATS:
                data.append(dequantize(indices, p.step(cg.delta)).astype("<f4").tobytes())
                continue
            code = _smallest_dtype(indices)
            header.append(bytes([code]))
            data.append(np.ascontiguousarray(indices, dtype=INT_DTYPES[code]).tobytes())
    return b"".join(header + data)


def _grid_values_decode_exactly(cg: CoarseGrained) -> bool:
    """Whether rint(value / Delta) recovers indices with the same grid values (needed by layout 1)."""
    for p in cg.params:
        step = p.step(cg.delta)
        for indices in p.indices:
            values = dequantize(indices, step)
            again = np.rint(values.astype(np.float64) / step).astype(np.int64)
            if not np.array_equal(dequantize(again, step), values):
                return False
    return True


def encode_symbols(cg: CoarseGrained, limit: int | None = None) -> Encoded:
    """The `symbols` coder: the smallest of {bzip2, LZMA} x {indices, and if needed float32 values}.

    The float32 layout is tried only when the indices do not already beat `limit` (the paper's size).
    """
    candidates = [serialize(cg, INDICES)]
    best = None
    while candidates:
        payload = candidates.pop()
        for tag, (codec, compress, _) in CODECS.items():
            data = seal(tag + compress(payload))
            if best is None or len(data) < best.n_bytes:
                best = Encoded(data, codec)
        if limit is not None and best.n_bytes >= limit and payload[5] == INDICES \
                and _grid_values_decode_exactly(cg):
            candidates.append(serialize(cg, FLOATS))
    return best


def symbols_bzip2_size(cg: CoarseGrained) -> int:
    """The bzip2 candidate of encode_symbols (>= its size): the searches' objective, as LZMA costs more
    time; encode_symbols tries both for a result."""
    return 1 + len(CODECS[b"B"][1](serialize(cg, INDICES))) + CHECK_BYTES


def decode_symbols(data: bytes) -> CoarseGrained:
    """Inverse of encode_symbols: the same CoarseGrained, hence bit-identical weights; a damaged encoding
    (checksum) or one that is not ours is GrokError("encoding", ...)."""
    data = unseal(data, "symbols encoding")
    tag, body = data[:1], data[1:]
    if tag not in CODECS:
        raise GrokError("encoding", f"unknown codec tag {tag!r}; allowed: {sorted(CODECS)}")
    if tag == b"B":
        reader = Reader(bz2_decompress(body, "symbols encoding"), "symbols encoding")
    else:
        reader = Reader(lzma_decompress(body, "symbols encoding", format=lzma.FORMAT_RAW, filters=LZMA_FILTERS),
                        "symbols encoding")
    if reader.take(4) != MAGIC or (version := reader.take(1)[0]) not in (VERSION, VERSION_SPACINGS):
        raise GrokError("encoding", f"not a version {VERSION} or {VERSION_SPACINGS} symbols encoding")
    layout = reader.take(1)[0]
    if layout not in (INDICES, FLOATS):
        raise GrokError("encoding", f"unknown layout {layout}; allowed: {INDICES}, {FLOATS}")
    delta, tau = struct.unpack("<dd", reader.take(16))
    layouts = []
    for _ in range(reader.varint()):
        name, shape, rank = read_param_header(reader)
        own = struct.unpack("<d", reader.take(8))[0] if version == VERSION_SPACINGS else None
        own = None if own == delta else own
        shapes = factor_shapes(shape, rank)
        codes = [reader.take(1)[0] if layout == INDICES else None for _ in shapes]
        if any(code is not None and code >= len(INT_DTYPES) for code in codes):
            raise GrokError("encoding", f"unknown integer dtype code in {codes}")
        layouts.append((name, shape, rank, own, shapes, codes))
    params = []
    for name, shape, rank, own, shapes, codes in layouts:
        indices = []
        for array_shape, code in zip(shapes, codes):
            dtype = np.dtype("<f4") if code is None else INT_DTYPES[code]
            values = np.frombuffer(reader.take(math.prod(array_shape) * dtype.itemsize), dtype=dtype)
            if code is None:  # float32 grid values -> indices with exactly these values (checked on encode)
                values = np.rint(values.astype(np.float64) / (delta if own is None else own))
            indices.append(values.astype(np.int64).reshape(array_shape))
        params.append(StoredParam(name, shape, rank, tuple(indices), own))
    return CoarseGrained(delta, None if math.isnan(tau) else tau, tuple(params))


@dataclass(frozen=True)
class Coder:
    """One entry of the registry: a way to write a coarse-grained network as bytes."""

    description: str  # one line, for help texts
    encode: Callable[[CoarseGrained, int | None], Encoded]  # the reported encoding; limit: see coded_sizes
    search_size: Callable[[CoarseGrained], int]  # what a search with this objective minimizes, >= encode's size
    exact_codec: str | None = None  # set when search_size equals encode's size, always with this codec
    decode: Callable[[bytes], CoarseGrained] | None = None  # None: measured only, never read back


CODERS: dict[str, Coder] = {
    "paper": Coder("bz2 of the pickled float32 arrays (the paper's measure)", encode_paper, paper_size_of,
                   exact_codec="bzip2"),
    "symbols": Coder("integer bin indices, bzip2 or LZMA, self-describing", encode_symbols, symbols_bzip2_size,
                     decode=decode_symbols),
    "entropy": Coder("bin indices range-coded (ANS) under a model per array, or bzip2 / LZMA where smaller",
                     encode_entropy, entropy_search_size, decode=decode_entropy),
}


@dataclass(frozen=True)
class CodedSize:
    """The size of one coarse-grained network under one coder."""

    n_bytes: int
    codec: str

    @property
    def n_bits(self) -> int:
        return 8 * self.n_bytes


def coded_sizes(cg: CoarseGrained, known: dict[str, int] | None = None) -> dict[str, CodedSize]:
    """`cg`'s size under every coder, in CODERS order.

    known: sizes already computed by a coder's search_size (a search's objective), reused where that is
    the coder's exact size. Each coder's encode gets as `limit` the smallest size of the coders before it,
    so that it may skip work that cannot win (the symbols coder tries float32 values only above it).
    """
    known = known or {}
    out: dict[str, CodedSize] = {}
    for name, coder in CODERS.items():
        if name in known and coder.exact_codec is not None:
            out[name] = CodedSize(int(known[name]), coder.exact_codec)
            continue
        limit = min((s.n_bytes for s in out.values()), default=None)
        encoded = coder.encode(cg, limit)
        out[name] = CodedSize(encoded.n_bytes, encoded.codec)
    return out
