# Private to the smartos.images collection: not a public API.
# The streaming import: download -> count + SHA-1 -> inflate -> zfs receive, verify, rename, record.
from __future__ import annotations

import bz2
import hashlib
import lzma
import queue
import tempfile
import threading
import time
import zlib

from ansible_collections.smartos.images.plugins.module_utils._errors import (
    CommandError, DownloadError, ImageError,
)
from ansible_collections.smartos.images.plugins.module_utils._imgapi import TRANSIENT_ERRORS

CHUNK = 1 << 20          # bytes read from the network per call
OUT_MAX = 4 << 20        # at most this much inflated output per step, whatever the ratio
QUEUE_DEPTH = 8          # chunks in flight between the download and inflate threads
RESUME_DELAY = 0.5
_DONE = object()


class Inflater:
    """Decompress gzip, bzip2 or xz incrementally, across concatenated members, in bounded steps."""

    def __init__(self, compression):
        self.compression = compression
        self._new = {
            'gzip': lambda: zlib.decompressobj(31),
            'bzip2': bz2.BZ2Decompressor,
            'xz': lzma.LZMADecompressor,
        }[compression]
        self._d = self._new()
        self._in_member = False
        self._members = 0
        self._trailer = False

    def feed(self, data):
        """Yield the inflated output of a chunk of compressed input, OUT_MAX bytes at a time."""
        gzip = self.compression == 'gzip'
        pending = bool(data)
        while pending and not self._trailer:
            self._in_member = True
            out = self._d.decompress(data, OUT_MAX)
            if out:
                yield out
            # zlib hands back input it had no room to inflate; bz2 and lzma keep it inside
            data = self._d.unconsumed_tail if gzip else b''
            if self._d.eof:
                rest = self._d.unused_data  # at a member's end zlib moves all leftover input here
                self._members += 1
                self._in_member = False
                self._d = self._new()
                if rest and not rest.strip(b'\0'):
                    self._trailer = True  # NUL padding after the last member, which gzip -d accepts
                    return
                data = rest
                pending = bool(data)
            elif gzip:
                pending = bool(data) or len(out) == OUT_MAX
            else:
                pending = not self._d.needs_input

    def finish(self):
        """Raise unless the input ended exactly at the end of a complete member."""
        if self._in_member:
            raise ValueError('the compressed stream ends in the middle of a member (truncated)')
        if not self._members:
            raise ValueError('the file is empty')


class ImportPipeline:
    """One pass over an image file: count, hash, inflate and receive, overlapping all four."""

    def __init__(self, zfs, retries=3, sleep=time.sleep):
        self.zfs = zfs
        self.retries = retries
        self.sleep = sleep

    def receive(self, client, manifest, target):
        """Stream the image file of manifest into `zfs receive target`; return bytes downloaded."""
        uuid = manifest['uuid']
        expected = manifest['files'][0]
        stream = client.open_file(uuid)
        total = stream.content_length
        if total is None:
            stream.close()
            raise DownloadError('image %s file: unexpected missing or invalid Content-Length header: %s'
                                % (uuid, stream.raw_content_length), url=client.source.url)
        if total != expected['size']:
            stream.close()
            raise DownloadError('image %s file: the manifest says %d bytes but the server sends '
                                'Content-Length %d' % (uuid, expected['size'], total),
                                url=client.source.url)
        compression = expected['compression']
        inflater = Inflater(compression) if compression != 'none' else None
        chunks = queue.Queue(QUEUE_DEPTH)
        failure = []
        with tempfile.TemporaryFile() as errfile:
            proc = self.zfs.receive(target, stderr=errfile)
            worker = threading.Thread(target=self._inflate_into, name='inflate',
                                      args=(chunks, inflater, proc, failure))
            worker.daemon = True
            worker.start()
            sha1 = hashlib.sha1()
            try:
                received = self._download(client, uuid, stream, total, sha1, chunks, failure)
            except BaseException:
                failure.append(None)
                proc.kill()
                raise
            finally:
                self._put(chunks, _DONE, failure, force=True)
                worker.join()
                stream.close()
            rc = proc.wait()
            errfile.seek(0)
            stderr = errfile.read().decode('utf-8', 'replace').strip()
        digest = sha1.hexdigest()
        if received != total:
            raise DownloadError('image %s file size error: expected %d bytes, downloaded %d bytes'
                                % (uuid, total, received), url=client.source.url)
        if digest != expected['sha1'].lower():
            raise DownloadError('image %s file checksum (sha1) error: expected "%s", downloaded '
                                'checksum was "%s"' % (uuid, expected['sha1'].lower(), digest),
                                url=client.source.url)
        if failure and failure[0] is not None:
            raise failure[0]
        if rc != 0:
            raise CommandError('zfs receive of image %s into %s failed: %s'
                               % (uuid, target, stderr or 'exit code %d' % rc),
                               cmd='zfs receive -u %s' % target, rc=rc, stderr=stderr)
        return received

    def _download(self, client, uuid, stream, total, sha1, chunks, failure):
        """Read the file, resuming with a Range request when the connection breaks."""
        received = 0
        attempts = 0
        while received < total and not failure:
            try:
                chunk = stream.read(min(CHUNK, total - received))
                if not chunk:
                    raise ConnectionError('the connection closed early')
            except TRANSIENT_ERRORS as e:
                attempts += 1
                if attempts > self.retries:
                    raise DownloadError('image %s file: the download broke off after %d of %d bytes '
                                        'and %d resume attempt(s) failed: %s'
                                        % (uuid, received, total, self.retries, e),
                                        url=client.source.url)
                stream.close()
                self.sleep(RESUME_DELAY * attempts)
                stream = self._resume(client, uuid, received)
                continue
            received += len(chunk)
            sha1.update(chunk)
            self._put(chunks, chunk, failure)
        return received

    @staticmethod
    def _resume(client, uuid, offset):
        """Reopen the file at offset; skip what we have if the server ignores Range."""
        stream = client.open_file(uuid, offset)
        if stream.status != 206:
            skip = offset
            while skip:
                data = stream.read(min(CHUNK, skip))
                if not data:
                    raise ConnectionError('the connection closed while skipping to byte %d' % offset)
                skip -= len(data)
        return stream

    @staticmethod
    def _put(chunks, item, failure, force=False):
        """Queue an item for the inflate thread, giving up when it has failed."""
        while True:
            try:
                chunks.put(item, timeout=0.2)
                return
            except queue.Full:
                if failure and not force:
                    return
                if failure:
                    try:
                        chunks.get_nowait()
                    except queue.Empty:
                        pass

    @staticmethod
    def _inflate_into(chunks, inflater, proc, failure):
        """Inflate queued chunks into the receive process; record the first failure."""
        sink = proc.stdin
        try:
            while True:
                item = chunks.get()
                if item is _DONE:
                    break
                if failure:
                    continue
                if inflater is None:
                    sink.write(item)
                else:
                    for out in inflater.feed(item):
                        sink.write(out)
            if not failure and inflater is not None:
                inflater.finish()
        except (zlib.error, OSError, EOFError, ValueError) as e:
            if isinstance(e, BrokenPipeError):
                failure.append(None)  # zfs receive stopped reading: its own error explains why
            else:
                failure.append(ImageError('image file could not be decompressed as %s: %s'
                                          % (inflater.compression if inflater else 'none', e)))
        finally:
            try:
                sink.close()
            except OSError:
                pass


def install(zfs, pipeline, client, manifest, pool, record):
    """Receive into <pool>/<uuid>-partial, check, rename to <pool>/<uuid>, record the manifest."""
    uuid = manifest['uuid']
    partial = '%s/%s-partial' % (pool, uuid)
    final = '%s/%s' % (pool, uuid)
    if zfs.exists(partial):
        # imgadm: a -partial left by a killed import; we hold the image lock, so nobody owns it
        zfs.destroy_recursive(partial)
    prepared = False
    try:
        received = pipeline.receive(client, manifest, partial)
        snaps = zfs.snapshots(partial)
        if len(snaps) != 1:
            raise ImageError('image "%s" has an unexpected number of snapshots (%d): %s'
                             % (uuid, len(snaps), ', '.join(s.split('@')[1] for s in snaps)))
        if not snaps[0].endswith('@final'):
            zfs.rename(snaps[0], partial + '@final')
        # imgadm writes the cache first and leaves it on failure; we commit it only with the dataset
        record.prepare()
        prepared = True
        zfs.rename(partial, final)
        record.commit(zfs, final)
        return received
    except BaseException:
        if prepared:
            record.abort()
        try:
            if zfs.exists(partial):
                zfs.destroy_recursive(partial)
        except ImageError:
            pass  # the original failure is what the user needs to see
        raise
