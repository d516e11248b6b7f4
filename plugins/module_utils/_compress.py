# Private to the smartos.images collection: not a public API.
# Parallel compression of one stream into one valid file: independent blocks written in order, hashed as written.
from __future__ import annotations

import bz2
import collections
import hashlib
import lzma
import os
import zlib
from concurrent.futures import ThreadPoolExecutor

MIB = 1 << 20
COMPRESSIONS = ('gzip', 'bzip2', 'xz', 'none')
# imgadm create: <prefix>.zfs|.zvol, then .gz, .bz2 or .xz
SUFFIXES = {'gzip': '.gz', 'bzip2': '.bz2', 'xz': '.xz', 'none': ''}
# Input bytes per independent block: big enough that the lost context across blocks costs
# under 1% of the ratio, small enough that a few blocks per core stay in memory.
BLOCK_SIZES = {'gzip': MIB, 'bzip2': 900 * 1000, 'xz': 4 * MIB, 'none': MIB}
GZIP_LEVEL = 6      # gzip's default, as `zfs send | gzip` uses
BZIP2_LEVEL = 9     # bzip2's default (900 kB blocks)
XZ_PRESET = 3       # a 4 MiB dictionary (one block); xz's default preset 6 needs ~94 MiB per core


# Deflate stores what it cannot shrink, but at level 6 it searches for matches first, at under half
# the speed it compresses text: a block whose samples do not shrink at level 1 is stored straight away.
SAMPLES = 4
SAMPLE_SIZE = 8 * 1024
SHRINKS = 0.95


def incompressible(data):
    """True when every one of a few samples spread over the block fails to shrink by 5% at level 1."""
    if len(data) < 2 * SAMPLES * SAMPLE_SIZE:
        return False
    view = memoryview(data)
    step = len(data) // SAMPLES
    for i in range(SAMPLES):
        sample = view[i * step:i * step + SAMPLE_SIZE]
        if len(zlib.compress(sample, 1)) < SHRINKS * SAMPLE_SIZE:
            return False
    return True


def _gzip(data):
    # wbits 31: a complete gzip member (header with mtime 0, so equal input gives equal bytes; CRC-32; size)
    compressor = zlib.compressobj(0 if incompressible(data) else GZIP_LEVEL, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


def _bzip2(data):
    return bz2.compress(data, BZIP2_LEVEL)


def _xz(data):
    return lzma.compress(data, format=lzma.FORMAT_XZ, preset=XZ_PRESET)


# Each makes one self-contained member; members concatenated are one valid file for gzip -d,
# bzip2 -d, xz -d, Python's gzip/bz2/lzma and imgadm's `gzip -cdfq`. zlib, bz2 and lzma release
# the GIL while they work, so threads compress on every core.
COMPRESSORS = {'gzip': _gzip, 'bzip2': _bzip2, 'xz': _xz}


class HashingWriter:
    """Writes bytes through, counting them and hashing them (SHA-1) on the way."""

    def __init__(self, write):
        self._write = write
        self._sha1 = hashlib.sha1()
        self.size = 0

    def write(self, data):
        self._write(data)
        self._sha1.update(data)
        self.size += len(data)

    @property
    def sha1(self):
        return self._sha1.hexdigest()


def default_workers():
    """One compressing thread per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def compress_stream(read, write, compression, workers=None, block_size=None):
    """Read with read(n) until b'', compress blocks on `workers` threads, write them in order; a HashingWriter.

    At most two blocks per worker are in flight, so memory stays bounded whatever the stream size.
    """
    if compression not in COMPRESSIONS:
        raise ValueError('unknown compression %r' % (compression,))
    out = HashingWriter(write)
    block_size = block_size or BLOCK_SIZES[compression]
    if compression == 'none':
        for block in iter(lambda: read(block_size), b''):
            out.write(block)
        return out
    compress = COMPRESSORS[compression]
    workers = workers or default_workers()
    pending = collections.deque()
    executor = ThreadPoolExecutor(max_workers=workers)
    try:
        block = read(block_size)
        pending.append(executor.submit(compress, block))  # an empty stream still gets one (empty) member
        while block:
            block = read(block_size)
            if block:
                pending.append(executor.submit(compress, block))
            while len(pending) >= 2 * workers:
                out.write(pending.popleft().result())
        while pending:
            out.write(pending.popleft().result())
    finally:
        for future in pending:
            future.cancel()
        executor.shutdown(wait=True)
    return out
