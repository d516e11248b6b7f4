# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Properties of the Inflater: any bytes, truncated or corrupted real gzip, bzip2 and xz streams raise only
INFLATE_ERRORS (ValueError included), and no step yields more than OUT_MAX bytes."""

from __future__ import annotations

import bz2
import gzip
import lzma

from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.smartos.images.plugins.module_utils._importer import INFLATE_ERRORS, OUT_MAX, Inflater

PLAIN = bytes(range(256)) * 64 + b'\0' * 40000
COMPRESSED = {'gzip': gzip.compress(PLAIN), 'bzip2': bz2.compress(PLAIN), 'xz': lzma.compress(PLAIN)}


@st.composite
def streams(draw):
    """(compression, bytes, chunk size): random bytes, or a real stream cut, flipped, padded or doubled."""
    compression = draw(st.sampled_from(sorted(COMPRESSED)))
    kind = draw(st.sampled_from(['random', 'cut', 'flip', 'tail', 'double']))
    real = COMPRESSED[compression]
    if kind == 'random':
        data = draw(st.binary(max_size=512))
    elif kind == 'cut':
        data = real[:draw(st.integers(min_value=0, max_value=len(real)))]
    elif kind == 'flip':
        data = bytearray(real)
        for dummy in range(draw(st.integers(min_value=1, max_value=4))):
            i = draw(st.integers(min_value=0, max_value=len(data) - 1))
            data[i] ^= draw(st.integers(min_value=1, max_value=255))
        data = bytes(data)
    elif kind == 'tail':
        data = real + draw(st.binary(max_size=32))
    else:
        data = real + real[:draw(st.integers(min_value=0, max_value=len(real)))]
    return compression, data, draw(st.integers(min_value=1, max_value=4096))


@given(streams())
def test_inflater_raises_only_inflate_errors_and_yields_bounded_pieces(stream):
    compression, data, chunk = stream
    inflater = Inflater(compression)
    total = 0
    try:
        for start in range(0, len(data), chunk):
            for piece in inflater.feed(data[start:start + chunk]):
                assert 0 < len(piece) <= OUT_MAX
                total += len(piece)
                assert total <= 3 * len(PLAIN)   # bounded: at most what the real streams hold
        inflater.finish()
    except INFLATE_ERRORS as e:
        assert isinstance(e, Exception)
        return
    assert total in (len(PLAIN), 2 * len(PLAIN)) or total % len(PLAIN) == 0
