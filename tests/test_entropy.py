"""The entropy coder (grok_lib.complexity.entropy): every description decodes to the same weights, bit for
bit, whichever model each array chose; a damaged one is reported, not decoded into something else."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from grok_lib.complexity.coarse import CoarseGrained, StoredParam
from grok_lib.complexity.coders import paper_size_of
from grok_lib.complexity.entropy import BZIP2, CATEGORICAL, COLUMNS, LZMA, ROWS, _encode_array, decode_entropy, \
    encode_entropy
from grok_lib.errors import GrokError
from test_coarse import coarse_grain, some_weights


def same(a: CoarseGrained, b: CoarseGrained) -> bool:
    if (a.delta, a.tau, a.ranks) != (b.delta, b.tau, b.ranks):
        return False
    return all(torch.equal(x, b.weights()[name]) for name, x in a.weights().items())


@pytest.mark.parametrize("tau, delta", [(None, 1e-5), (None, 1e-3), (0.6, 1e-3), (0.9, 0.02), (1.0, 0.5), (None, 10.0)])
def test_entropy_descriptions_decode_bit_for_bit(tau, delta):
    cg = coarse_grain(some_weights(), tau, delta)
    encoded = encode_entropy(cg)
    assert same(cg, decode_entropy(encoded.data)) and encoded.n_bytes == len(encoded.data)


def test_each_model_is_chosen_where_it_wins_and_every_one_decodes():
    rng = np.random.default_rng(0)
    arrays = {
        CATEGORICAL: rng.choice([-1, 0, 0, 0, 1, 2], size=(40, 30)),  # an uneven histogram, no structure
        ROWS: np.vstack([np.round(rng.laplace(0, s, 64)) for s in (0.01, 40.0) * 20]).astype(np.int64),
        COLUMNS: np.vstack([np.round(rng.laplace(0, s, 64)) for s in (0.01, 40.0) * 20]).astype(np.int64).T.copy(),
        BZIP2: np.tile(rng.integers(-3, 4, size=(1, 64)), (50, 1)),  # equal rows: a pattern, not a histogram
    }
    chosen = {}
    for model, values in arrays.items():
        header, _ = _encode_array(values)
        chosen[model] = header[0]
    assert chosen[CATEGORICAL] == CATEGORICAL and chosen[ROWS] == ROWS and chosen[COLUMNS] == COLUMNS
    assert chosen[BZIP2] in (BZIP2, LZMA)
    params = tuple(StoredParam(f"p{i}", v.shape, None, (v,)) for i, v in enumerate(arrays.values()))
    params += (StoredParam("one value", (7,), None, (np.full(7, -5),)),
               StoredParam("wide", (300,), None, (rng.integers(-10**9, 10**9, 300),)))
    cg = CoarseGrained(0.01, None, params)
    assert same(cg, decode_entropy(encode_entropy(cg).data))


def test_on_trained_like_weights_it_is_smaller_than_the_paper_coder():
    cg = coarse_grain(some_weights(), 0.9, 0.02)
    assert encode_entropy(cg).n_bytes < paper_size_of(cg)


def test_a_damaged_description_is_reported():
    data = encode_entropy(coarse_grain(some_weights(), None, 0.1)).data
    for broken in (b"X" + data[1:], data[:-3], data[:1] + b"Q" + data[2:], data[:10]):
        with pytest.raises(GrokError, match="encoding"):
            decode_entropy(broken)


def test_decompression_is_bounded_and_a_forged_size_is_refused_before_allocating(monkeypatch):
    """A bz2 bomb stops at the limit; an encoding that declares more indices than any description here
    holds is refused before the memory is taken; the symbols coder's payload is bounded the same way."""
    import bz2

    from grok_lib.complexity import entropy
    from grok_lib.complexity.byteio import bz2_decompress, seal
    from grok_lib.complexity.coders import decode_symbols

    bomb = bz2.compress(b"\0" * (8 << 20))  # 8 MiB of zeros in ~50 bytes
    assert len(bomb) < 100
    with pytest.raises(GrokError, match="decompresses to more than 1048576 bytes"):
        bz2_decompress(bomb, "test payload", limit=1 << 20)
    assert len(bz2_decompress(bomb, "test payload", limit=8 << 20)) == 8 << 20
    with pytest.raises(GrokError, match="^encoding: truncated test payload"):
        bz2_decompress(bomb[:-10], "test payload")
    with pytest.raises(GrokError, match="^encoding: not a version"):  # decodes within bounds, then is not ours
        decode_symbols(seal(b"B" + bomb))
    cg = coarse_grain(some_weights(), 0.9, 0.02)
    data = encode_entropy(cg).data
    monkeypatch.setattr(entropy, "MAX_DECODED_BYTES", 1000)
    with pytest.raises(GrokError, match="declares .* indices"):
        decode_entropy(data)


def test_a_panic_of_the_coder_library_is_one_encoding_error():
    """pyo3 turns a Rust panic into a BaseException, which `except Exception` would let through."""
    from grok_lib.complexity.entropy import _guarded

    class Panic(BaseException):
        pass

    def panics():
        raise Panic("index out of bounds")

    with pytest.raises(GrokError, match="^encoding: the ANS payload of w does not decode .Panic"):
        _guarded(panics, "w")
    with pytest.raises(KeyboardInterrupt):
        _guarded(lambda: (_ for _ in ()).throw(KeyboardInterrupt()), "w")


def small_network() -> CoarseGrained:
    """Two small arrays, one stored as low-rank factors: every layout field of a description occurs."""
    generator = torch.Generator().manual_seed(3)
    weights = {"w": torch.randn(6, 5, generator=generator) @ torch.randn(5, 7, generator=generator) * 0.1,
               "b": torch.randn(7, generator=generator) * 0.1}
    return coarse_grain(weights, 0.8, 0.02)


@pytest.mark.parametrize("coder", ["symbols", "entropy"])
def test_every_single_bit_flip_of_a_description_is_refused(coder):
    """Exhaustively, on a small description: a flip of any bit (header, payload or checksum) is one
    encoding error, never a decode to other weights; truncations likewise."""
    from grok_lib.complexity.coders import CODERS

    cg = small_network()
    data = CODERS[coder].encode(cg, None).data
    assert same(cg, CODERS[coder].decode(data))
    silent = []
    for bit in range(8 * len(data)):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        try:
            CODERS[coder].decode(bytes(flipped))
            silent.append(bit)
        except GrokError as err:
            assert err.field == "encoding"
    assert silent == [], f"{len(silent)} of {8 * len(data)} flips decoded"
    for cut in range(len(data)):
        with pytest.raises(GrokError, match="^encoding: "):
            CODERS[coder].decode(data[:cut])


@pytest.mark.parametrize("coder", ["symbols", "entropy"])
def test_the_checksum_is_counted_in_the_reported_size(coder):
    from grok_lib.complexity.byteio import CHECK_BYTES, unseal
    from grok_lib.complexity.coders import CODERS, coded_sizes

    cg = small_network()
    encoded = CODERS[coder].encode(cg, None)
    assert len(unseal(encoded.data, "test")) == encoded.n_bytes - CHECK_BYTES
    assert coded_sizes(cg)[coder].n_bytes == encoded.n_bytes
    assert CODERS[coder].search_size(cg) >= encoded.n_bytes
