# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_compress.py: parallel members that make one valid file, hashed as written."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import random
import shutil
import subprocess
import threading

import pytest

from ansible_collections.smartos.images.plugins.module_utils import _compress
from ansible_collections.smartos.images.plugins.module_utils._compress import HashingWriter, compress_stream
from ansible_collections.smartos.images.plugins.module_utils._importer import Inflater

LINE = b''.join(b'%06d the quick brown fox jumps over the lazy dog %d\n' % (n, n * 7919) for n in range(200))
DATA = (LINE * 40 + random.Random(3).randbytes(100000)) * 3   # text and random, ~1.6 MB
DECOMPRESS = {'gzip': gzip.decompress, 'bzip2': bz2.decompress, 'xz': lzma.decompress, 'none': bytes}
TOOLS = {'gzip': ['gzip', '-dc'], 'bzip2': ['bzip2', '-dc'], 'xz': ['xz', '-dc']}


def run(data, compression, workers=3, block_size=64 * 1024):
    out = io.BytesIO()
    written = compress_stream(io.BytesIO(data).read, out.write, compression, workers, block_size)
    return out.getvalue(), written


@pytest.mark.parametrize('compression', ['gzip', 'bzip2', 'xz', 'none'])
def test_many_blocks_make_one_valid_file(compression):
    body, written = run(DATA, compression)
    assert DECOMPRESS[compression](body) == DATA
    assert written.size == len(body) and written.sha1 == hashlib.sha1(body).hexdigest()
    if compression != 'none':
        inflater = Inflater(compression)   # what smartos_image's import reads it with
        assert b''.join(inflater.feed(body)) == DATA
        inflater.finish()


@pytest.mark.parametrize('compression', ['gzip', 'bzip2', 'xz'])
def test_the_command_line_tools_read_it(compression):
    # make system-deps installs all three: a missing one fails here instead of leaving the check out
    assert shutil.which(TOOLS[compression][0]), '%s is not installed (make system-deps)' % TOOLS[compression][0]
    body, dummy = run(DATA, compression)
    # imgadm inflates with `gzip -cdfq`; -q and -f change nothing for a valid file
    argv = ['gzip', '-cdfq'] if compression == 'gzip' else TOOLS[compression]
    assert subprocess.run(argv, input=body, capture_output=True, check=True).stdout == DATA


@pytest.mark.parametrize('block, stored', [
    (random.Random(1).randbytes(1 << 20), True),
    (LINE * 100, False),
    (random.Random(2).randbytes(1 << 19) + LINE * 50, False),     # half text: worth level 6
    (random.Random(3).randbytes(40000), False),                    # too small to sample
])
def test_incompressible_blocks_are_stored(block, stored):
    assert _compress.incompressible(block) is stored
    member = _compress.COMPRESSORS['gzip'](block)
    assert gzip.decompress(member) == block
    if stored:   # stored deflate blocks: a few bytes each, plus the gzip header and trailer
        assert len(member) <= len(block) * 1.001 + 18


def test_gzip_has_one_member_per_block():
    body, dummy = run(b'x' * 300000, 'gzip', block_size=100000)
    assert body.count(b'\x1f\x8b\x08\x00\x00\x00\x00\x00') == 3   # mtime 0 in every member header


@pytest.mark.parametrize('compression', ['gzip', 'bzip2', 'xz', 'none'])
def test_empty_stream_is_a_valid_empty_file(compression):
    body, written = run(b'', compression)
    assert DECOMPRESS[compression](body) == b'' and written.size == len(body)


@pytest.mark.parametrize('workers', [1, 2, 5])
def test_output_does_not_depend_on_the_workers(workers):
    assert run(DATA, 'gzip', workers=workers)[0] == run(DATA, 'gzip', workers=1)[0]


def test_memory_is_bounded():
    """At most two blocks per worker are read ahead of what has been written."""
    state = {'read': 0, 'written': 0, 'most': 0}
    source = io.BytesIO(DATA)

    def read(n):
        block = source.read(n)
        if block:
            state['read'] += 1
            state['most'] = max(state['most'], state['read'] - state['written'])
        return block

    def write(data):
        state['written'] += 1

    compress_stream(read, write, 'gzip', workers=2, block_size=16 * 1024)
    assert state['read'] == state['written'] > 50 and state['most'] <= 2 * 2


def test_blocks_are_compressed_on_several_threads(monkeypatch):
    seen = set()
    real = _compress.COMPRESSORS['gzip']

    def spy(data):
        seen.add(threading.get_ident())
        return real(data)

    monkeypatch.setitem(_compress.COMPRESSORS, 'gzip', spy)
    barrier = threading.Barrier(2, timeout=5)

    def slow(data):
        try:
            barrier.wait()   # two blocks in two threads at once, or a timeout
        except threading.BrokenBarrierError:
            pass
        return spy(data)

    monkeypatch.setitem(_compress.COMPRESSORS, 'gzip', slow)
    body, dummy = run(DATA, 'gzip', workers=2, block_size=256 * 1024)
    assert gzip.decompress(body) == DATA and len(seen) == 2


def test_a_failing_block_fails_the_whole_stream(monkeypatch):
    calls = []

    def broken(data):
        calls.append(1)
        if len(calls) == 3:
            raise MemoryError('no memory for block 3')
        return b''

    monkeypatch.setitem(_compress.COMPRESSORS, 'gzip', broken)
    with pytest.raises(MemoryError, match='block 3'):
        run(DATA, 'gzip', workers=2, block_size=16 * 1024)


def test_a_failing_write_stops_reading():
    reads = []
    source = io.BytesIO(DATA)

    def read(n):
        reads.append(n)
        return source.read(n)

    def write(data):
        raise OSError(28, 'No space left on device')

    with pytest.raises(OSError, match='No space'):
        compress_stream(read, write, 'gzip', workers=2, block_size=16 * 1024)
    assert len(reads) <= 5


def test_unknown_compression():
    with pytest.raises(ValueError, match='zstd'):
        compress_stream(io.BytesIO(b'').read, io.BytesIO().write, 'zstd')


def test_hashing_writer():
    sink = io.BytesIO()
    w = HashingWriter(sink.write)
    w.write(b'abc')
    w.write(b'def')
    assert sink.getvalue() == b'abcdef' and w.size == 6 and w.sha1 == hashlib.sha1(b'abcdef').hexdigest()


def test_default_workers_is_at_least_one():
    assert _compress.default_workers() >= 1
