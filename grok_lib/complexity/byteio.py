"""The byte-level pieces of our self-describing encodings (coders.py's symbols, entropy.py's entropy):
an encoding's bytes (`Encoded`), unsigned LEB128 varints, a reader that reports a truncated encoding as bad
input, a parameter's layout (name, shape, rank; the shapes of its stored arrays), and the checksum that
ends every description (`seal`, `unseal`): a description is a bound only if it decodes to the weights it
was made from, so a damaged one is refused before anything is decoded, and its 4 bytes are counted in
every size we report."""

from __future__ import annotations

import bz2
import lzma
import math
import struct
import zlib
from dataclasses import dataclass

from ..errors import GrokError


def varint(value: int) -> bytes:
    """Unsigned LEB128: 7 bits a byte, the high bit set on every byte but the last."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


# No description made here decodes to more than this; a larger claim (a decompression bomb, a forged size)
# is refused before the memory is taken
MAX_DECODED_BYTES = 1 << 30


CHECK_BYTES = 4  # CRC-32 (little-endian) of everything before it: finds every flip of 1 bit and burst of <= 32


def seal(data: bytes) -> bytes:
    """`data` followed by its CRC-32, the last 4 bytes of every symbols and entropy description."""
    return data + struct.pack("<I", zlib.crc32(data))


def unseal(data: bytes, what: str) -> bytes:
    """The body of a sealed description, after its checksum is checked: a mismatch (a flipped bit, a
    truncation, bytes from elsewhere) is GrokError("encoding", ...), before anything is decoded."""
    if len(data) < CHECK_BYTES + 1:
        raise GrokError("encoding", f"truncated {what} ({len(data)} bytes)")
    body, check = data[:-CHECK_BYTES], data[-CHECK_BYTES:]
    if struct.unpack("<I", check)[0] != zlib.crc32(body):
        raise GrokError("encoding", f"the {what} does not match its checksum (damaged or truncated); not decoded")
    return body


def bounded_decompress(decompressor, data: bytes, what: str, limit: int = MAX_DECODED_BYTES) -> bytes:
    """`decompressor` (a fresh bz2.BZ2Decompressor or lzma.LZMADecompressor) run over `data`, producing at
    most `limit` bytes: more, or a stream that does not end, is GrokError("encoding", ...)."""
    try:
        out = decompressor.decompress(data, max_length=limit + 1)
    except (OSError, EOFError, ValueError, lzma.LZMAError) as err:
        raise GrokError("encoding", f"corrupt {what} ({err})") from None
    if len(out) > limit:
        raise GrokError("encoding", f"{what} decompresses to more than {limit} bytes")
    if not decompressor.eof:
        raise GrokError("encoding", f"truncated {what}")
    return out


def bz2_decompress(data: bytes, what: str, limit: int = MAX_DECODED_BYTES) -> bytes:
    return bounded_decompress(bz2.BZ2Decompressor(), data, what, limit)


def lzma_decompress(data: bytes, what: str, limit: int = MAX_DECODED_BYTES, **options) -> bytes:
    return bounded_decompress(lzma.LZMADecompressor(**options), data, what, limit)


class Reader:
    """Reads bytes and varints from `data`; running past its end is GrokError("encoding", truncated `what`)."""

    def __init__(self, data: bytes, what: str = "encoding"):
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise GrokError("encoding", f"truncated {self.what}")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def varint(self) -> int:
        value, shift = 0, 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value


def param_header(name: str, shape: tuple[int, ...], rank: int | None) -> bytes:
    """One parameter's layout: len(name) name(utf-8) ndim dims... rank+1 (0 = stored whole)."""
    encoded = name.encode()
    return b"".join([varint(len(encoded)), encoded, varint(len(shape)), *map(varint, shape),
                     varint(0 if rank is None else rank + 1)])


def read_param_header(reader: Reader) -> tuple[str, tuple[int, ...], int | None]:
    """Inverse of param_header: (name, shape, rank)."""
    try:
        name = reader.take(reader.varint()).decode()
    except UnicodeDecodeError:
        raise GrokError("encoding", f"a parameter name in the {reader.what} is not UTF-8") from None
    shape = tuple(reader.varint() for _ in range(reader.varint()))
    rank_code = reader.varint()
    return name, shape, None if rank_code == 0 else rank_code - 1


def factor_shapes(shape: tuple[int, ...], rank: int | None) -> list[tuple[int, ...]]:
    """The shapes of a parameter's stored arrays: itself, or its (m x k) and (k x n) low-rank factors."""
    if rank is None:
        return [shape]
    return [(shape[0], rank), (rank, math.prod(shape[1:]))]


@dataclass(frozen=True)
class Encoded:
    """An encoding: the bytes and the compressor that made them (for `symbols`, the one that won)."""

    data: bytes
    codec: str  # bzip2 | lzma | ...+ans

    @property
    def n_bytes(self) -> int:
        return len(self.data)

    @property
    def n_bits(self) -> int:
        return 8 * self.n_bytes
