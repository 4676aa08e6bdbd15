"""The `entropy` coder: bin indices range-coded (ANS, from `constriction`) under a model fitted per array.

Any description that decodes exactly to the coarse-grained weights is an upper bound on their K; this one
spends close to the empirical entropy of each stored array's bin indices (plus its model) instead of
what a general-purpose compressor finds. Per stored array (a whole parameter, or one low-rank factor) the
description is the smallest of: ANS under the array's own histogram of indices (stored exactly, as counts),
ANS under a Laplace law per row or per column of a matrix (one scale byte per line; all-zero lines cost
nothing), or bzip2 / LZMA of the indices' bytes (which find repeated patterns an order-0 model cannot;
LZMA is tried only where bzip2 already beat the histogram); the
decoder rebuilds the same model and the same indices, bit for bit.

Byte format (integers unsigned LEB128 varints; signed ones zigzag-mapped first)::

    b"E" then a compressed header: 1 byte codec tag (B bzip2 | L LZMA | R raw), varint length, the bytes of
        b"GKEN" version(2 | 3) Delta(float64 LE) tau(float64 LE, NaN = none) n_params
        per parameter: len(name) name ndim dims... rank+1 (0 = stored whole)
            and in version 3 only (a per-group Delta) its own grid spacing (float64 LE)
        per stored array: its model, then its payload's length in bytes:
            0 (categorical): min index (signed), k = max - min + 1, then k counts
            1 / 2 (Laplace per row / per column, mean 0): min and max index (signed), one scale byte per
              row (column): b = 2^((byte - 128) / 8), byte 0 = a line of zeros (nothing coded)
            3 / 4 (bzip2 / LZMA of the indices' bytes): the integer type (0 int8, 1 int16, 2 int32, 3 int64)
    then each array's payload, in order: ANS words (uint32, little-endian), or the compressed bytes
    and last a CRC-32 of everything before it (byteio.seal: 4 bytes, counted; a damaged description is
    refused before anything is decoded)
"""

from __future__ import annotations

import bz2
import hashlib
import lzma
import math
import struct
import threading
from collections import OrderedDict

import numpy as np

from .byteio import (MAX_DECODED_BYTES, Encoded, Reader, bz2_decompress, factor_shapes, lzma_decompress, param_header,
                     read_param_header, seal, unseal, varint)
from .coarse import CoarseGrained, StoredParam
from ..errors import GrokError, require

MAGIC, VERSION, VERSION_SPACINGS = b"GKEN", 2, 3  # 3: every parameter's own grid spacing follows it
HEADER_CODECS = {b"B": (lambda d: bz2.compress(d, 9), lambda d: bz2_decompress(d, "entropy header")),
                 b"L": (lambda d: lzma.compress(d, lzma.FORMAT_XZ, preset=6),
                        lambda d: lzma_decompress(d, "entropy header")),
                 b"R": (lambda d: d, lambda d: d)}


def _zigzag(value: int) -> int:
    return 2 * value if value >= 0 else -2 * value - 1


def _unzigzag(value: int) -> int:
    return value // 2 if value % 2 == 0 else -(value + 1) // 2


# model codes: the array's histogram; Laplace per row / per column (ANS); the array's bytes (smallest integer
# type) through bzip2 / LZMA, which find repeated patterns (e.g. the equal rows of a low-rank matrix) that an
# order-0 model cannot
CATEGORICAL, ROWS, COLUMNS, BZIP2, LZMA = 0, 1, 2, 3, 4
INT_DTYPES = (np.dtype("<i1"), np.dtype("<i2"), np.dtype("<i4"), np.dtype("<i8"))
MAX_ALPHABET = 1 << 16  # index ranges up to this are range-coded; wider ones only packed
ZERO_ROW = 0  # scale code of a line that is all zeros (nothing coded)


def _categorical(counts: np.ndarray):
    import constriction

    return constriction.stream.model.Categorical(counts.astype(np.float64) / counts.sum(), perfect=False)


def _scale_codes(lines: np.ndarray) -> np.ndarray:
    """Per line (row) of integer indices, its Laplace scale as a byte: b = 2^((code - 128) / 8), code 0 for
    a line of zeros. The scale is the mean absolute index, at least 1/16."""
    b = np.maximum(np.abs(lines).mean(axis=1), 1 / 16)
    codes = np.clip(np.rint(8 * np.log2(b)) + 128, 1, 255).astype(np.int64)
    return np.where(np.abs(lines).max(axis=1) == 0, ZERO_ROW, codes)


def _scales(codes: np.ndarray) -> np.ndarray:
    return 2.0 ** ((codes.astype(np.float64) - 128) / 8)


def _words(coder) -> np.ndarray:
    return coder.get_compressed().astype("<u4")


def _smallest_dtype(low: int, high: int) -> int:
    return next(i for i, d in enumerate(INT_DTYPES) if np.iinfo(d).min <= low and high <= np.iinfo(d).max)


class _Memory:
    """The fast encodings of recent arrays, keyed by their indices' digest, up to `limit` bytes of
    encodings: a search that moves one matrix's Delta (grok_lib.complexity.reallocation) re-encodes only
    that matrix. Shared by the background compression threads, hence the lock."""

    def __init__(self, limit: int):
        self.limit, self.held, self.entries, self.lock = limit, 0, OrderedDict(), threading.Lock()

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.held = 0

    def encode(self, values: np.ndarray) -> tuple[bytes, bytes]:
        """_encode_array(values, fast=True), from memory when these indices were encoded recently."""
        values = np.ascontiguousarray(values)
        key = (values.dtype.str, values.shape, hashlib.blake2b(values.data, digest_size=16).digest())
        with self.lock:
            if key in self.entries:
                self.entries.move_to_end(key)
                return self.entries[key]
        encoded = _encode_array(values, fast=True)
        with self.lock:
            if key not in self.entries:
                self.entries[key] = encoded
                self.held += len(encoded[0]) + len(encoded[1])
            while self.held > self.limit and len(self.entries) > 1:
                header, data = self.entries.popitem(last=False)[1]
                self.held -= len(header) + len(data)
        return encoded


FAST_MEMORY = _Memory(32 << 20)


def clear_fast_cache() -> None:
    """Forget the remembered fast encodings (a benchmark timing fresh searches starts each from none)."""
    FAST_MEMORY.clear()


def _encode_array(values: np.ndarray, fast: bool = False) -> tuple[bytes, bytes]:
    """The smallest of the array's models: its header bytes (model code and parameters) and payload.
    fast: only the histogram and bzip2 (the searches' objective; LZMA and the Laplace models cost more
    time): never smaller. LZMA is tried only where bzip2 beat the histogram."""
    import constriction

    flat = values.ravel()
    low, high = int(flat.min()), int(flat.max())
    code = _smallest_dtype(low, high)
    raw = flat.astype(INT_DTYPES[code]).tobytes()
    best = (bytes([BZIP2, code]), bz2.compress(raw, 9))
    narrow = high - low < MAX_ALPHABET  # ANS models need a bounded alphabet; wide arrays are packed
    if narrow:
        counts = np.bincount(flat - low)
        coder = constriction.stream.stack.AnsCoder()
        if len(counts) > 1:
            coder.encode_reverse((flat - low).astype(np.int32), _categorical(counts))
        header = b"".join([bytes([CATEGORICAL]), varint(_zigzag(low)), varint(len(counts)),
                           *map(varint, counts.tolist())])
        if len(header) + 4 * len(_words(coder)) <= len(best[0]) + len(best[1]):
            best = (header, _words(coder).tobytes())
    if fast:
        return best
    if best[0][0] == BZIP2:  # bzip2 beat the histogram: a pattern, which LZMA may find better still (else
        packed = lzma.compress(raw, lzma.FORMAT_XZ)  # it rarely wins, at ~6x bzip2's time: RESULTS.md)
        if 2 + len(packed) < len(best[0]) + len(best[1]):
            best = (bytes([LZMA, code]), packed)
    if values.ndim == 2 and high > low and narrow:
        for code, lines in ((ROWS, values), (COLUMNS, values.T)):
            scales = _scale_codes(lines)
            kept = scales != ZERO_ROW
            symbols = lines[kept]
            coder = constriction.stream.stack.AnsCoder()
            model = constriction.stream.model.QuantizedLaplace(low, high)
            coder.encode_reverse(symbols.ravel().astype(np.int32), model, np.zeros(symbols.size),
                                 np.repeat(_scales(scales[kept]), symbols.shape[1]))
            header = b"".join([bytes([code]), varint(_zigzag(low)), varint(_zigzag(high)),
                               scales.astype(np.uint8).tobytes()])
            if len(header) + 4 * len(_words(coder)) < len(best[0]) + len(best[1]):
                best = (header, _words(coder).tobytes())
    return best


def _arrays(cg: CoarseGrained) -> list[np.ndarray]:
    return [np.asarray(a, dtype=np.int64) for p in cg.params for a in p.indices]


def encode_entropy(cg: CoarseGrained, limit: int | None = None, fast: bool = False) -> Encoded:
    """The `entropy` coder's bytes of `cg` (format in the module docstring); `limit` is not used.
    fast: each array's histogram and bzip2 models only (`entropy_search_size`)."""
    tau = math.nan if cg.tau is None else float(cg.tau)
    spacings = any(p.delta is not None for p in cg.params)
    header = [MAGIC, bytes([VERSION_SPACINGS if spacings else VERSION]), struct.pack("<dd", cg.delta, tau),
              varint(len(cg.params))]
    for p in cg.params:
        header.append(param_header(p.name, p.shape, p.rank))
        if spacings:
            header.append(struct.pack("<d", p.step(cg.delta)))
    payload = []
    for values in _arrays(cg):
        model, data = FAST_MEMORY.encode(values) if fast else _encode_array(values)
        header += [model, varint(len(data))]
        payload.append(data)
    raw = b"".join(header)
    tag, packed = min(((t, c(raw)) for t, (c, _) in HEADER_CODECS.items()), key=lambda tc: len(tc[1]))
    data = seal(b"E" + tag + varint(len(packed)) + packed + b"".join(payload))
    return Encoded(data, {b"B": "bzip2", b"L": "lzma", b"R": "raw"}[tag] + "+ans")


def entropy_search_size(cg: CoarseGrained) -> int:
    """What a search with the entropy objective minimizes: the fast encoding's size, >= the full one's
    (the same format with fewer models tried; a valid description itself)."""
    return encode_entropy(cg, fast=True).n_bytes


def decode_entropy(data: bytes) -> CoarseGrained:
    """Inverse of encode_entropy: the same CoarseGrained, hence bit-identical weights; a damaged description
    (checksum) or one that is not ours is GrokError("encoding", ...)."""
    outer = Reader(unseal(data, "entropy encoding"), "entropy encoding")
    if outer.take(1) != b"E":
        raise GrokError("encoding", "not an entropy encoding")
    tag = outer.take(1)
    if tag not in HEADER_CODECS:
        raise GrokError("encoding", f"unknown header codec {tag!r}; allowed: {sorted(HEADER_CODECS)}")
    packed = outer.take(outer.varint())
    reader = Reader(HEADER_CODECS[tag][1](packed), "entropy encoding")
    if reader.take(4) != MAGIC or (version := reader.take(1)[0]) not in (VERSION, VERSION_SPACINGS):
        raise GrokError("encoding", f"not a version {VERSION} or {VERSION_SPACINGS} entropy encoding")
    delta, tau = struct.unpack("<dd", reader.take(16))
    layouts = []
    for _ in range(reader.varint()):
        name, shape, rank = read_param_header(reader)
        own = struct.unpack("<d", reader.take(8))[0] if version == VERSION_SPACINGS else None
        layouts.append((name, shape, rank, factor_shapes(shape, rank), None if own == delta else own))
    models = []
    for name, _, _, shapes, _ in layouts:
        for array_shape in shapes:
            models.append((name, array_shape, *_read_model(reader, array_shape)))
    declared = sum(math.prod(shape) for _, shape, *_ in models)
    require(declared * 8 <= MAX_DECODED_BYTES, "encoding", f"the entropy encoding declares {declared} indices "
            f"({declared * 8} bytes as int64), over the {MAX_DECODED_BYTES} any description here decodes to")
    payload, params, index = outer.data[outer.pos:], [], 0
    position = 0
    for name, shape, rank, shapes, own in layouts:
        indices = []
        for _ in shapes:
            _, array_shape, model, n_bytes = models[index]
            index += 1
            data = payload[position:position + n_bytes]
            if len(data) != n_bytes:
                raise GrokError("encoding", "truncated entropy payload")
            position += n_bytes
            indices.append(_decode_array(model, array_shape, data, name))
        params.append(StoredParam(name, shape, rank, tuple(indices), own))
    return CoarseGrained(delta, None if math.isnan(tau) else tau, tuple(params))


def _read_model(reader: Reader, shape: tuple[int, ...]) -> tuple[tuple, int]:
    code = reader.take(1)[0]
    if code == CATEGORICAL:
        low = _unzigzag(reader.varint())
        counts = np.array([reader.varint() for _ in range(reader.varint())], dtype=np.int64)
        model = (CATEGORICAL, low, counts)
    elif code in (ROWS, COLUMNS) and len(shape) == 2:
        low, high = _unzigzag(reader.varint()), _unzigzag(reader.varint())
        lines = shape[0] if code == ROWS else shape[1]
        model = (code, low, high, np.frombuffer(reader.take(lines), dtype=np.uint8).astype(np.int64))
    elif code in (BZIP2, LZMA):
        dtype = reader.take(1)[0]
        if dtype >= len(INT_DTYPES):
            raise GrokError("encoding", f"unknown integer type code {dtype}")
        model = (code, dtype)
    else:
        raise GrokError("encoding", f"unknown model code {code} for an array of shape {shape}")
    return model, reader.varint()


def _guarded(decode, name: str):
    """decode(), with whatever the coder library raises on damaged data -- a Rust panic is a BaseException,
    not an Exception -- turned into one GrokError (an interrupt still interrupts)."""
    try:
        return decode()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as err:  # noqa: B036 -- pyo3's PanicException derives from BaseException
        raise GrokError("encoding", f"the ANS payload of {name} does not decode ({type(err).__name__}: "
                        f"{str(err)[:80]})") from None


def _decode_array(model: tuple, shape: tuple[int, ...], data: bytes, name: str) -> np.ndarray:
    import constriction

    n = math.prod(shape)
    if model[0] in (BZIP2, LZMA):
        expected = n * INT_DTYPES[model[1]].itemsize  # exactly this many bytes, never more
        raw = (bz2_decompress if model[0] == BZIP2 else lzma_decompress)(data, f"payload of {name}", expected)
        values = np.frombuffer(raw, dtype=INT_DTYPES[model[1]])
        if values.size != n:
            raise GrokError("encoding", f"{name} holds {values.size} indices, not {n}")
        return values.astype(np.int64).reshape(shape)
    if len(data) % 4:
        raise GrokError("encoding", f"truncated ANS payload of {name}")
    decoder = constriction.stream.stack.AnsCoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
    if model[0] == CATEGORICAL:
        _, low, counts = model
        if counts.sum() != n:
            raise GrokError("encoding", f"the counts of {name} add up to {counts.sum()}, not {n}")
        if len(counts) == 1:
            return np.full(shape, low, dtype=np.int64)
        values = _guarded(lambda: decoder.decode(_categorical(counts), n), name)
        return (values.astype(np.int64) + low).reshape(shape)
    code, low, high, scales = model
    rows, width = (shape[0], shape[1]) if code == ROWS else (shape[1], shape[0])
    kept = scales != ZERO_ROW
    lines = np.zeros((rows, width), dtype=np.int64)
    count = int(kept.sum()) * width
    if count:
        values = _guarded(lambda: decoder.decode(constriction.stream.model.QuantizedLaplace(low, high),
                                                 np.zeros(count), np.repeat(_scales(scales[kept]), width)), name)
        lines[kept] = values.astype(np.int64).reshape(-1, width)
    return lines if code == ROWS else lines.T.copy()
