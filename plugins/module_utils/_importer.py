# Private to the smartos.images collection: not a public API.
# The streaming import: download -> count + SHA-1 -> inflate -> zfs receive, verify, rename, record.
from __future__ import annotations

import base64
import bz2
import hashlib
import lzma
import queue
import re
import tempfile
import threading
import time
import zlib

from ansible_collections.smartos.images.plugins.module_utils._errors import (
    CommandError, DownloadError, ImageError,
)
from ansible_collections.smartos.images.plugins.module_utils._http_body import TRANSIENT_ERRORS
from ansible_collections.smartos.images.plugins.module_utils._inventory import Inventory
from ansible_collections.smartos.images.plugins.module_utils._plan import check_partial

CHUNK = 1 << 20          # bytes read from the network per call
OUT_MAX = 1 << 20        # at most this much inflated output per step, whatever the ratio
QUEUE_DEPTH = 4          # pieces in flight between two threads: memory stays a few MiB
RESUME_DELAY = 0.5
CONTENT_RANGE_RE = re.compile(r'bytes\s+(\d{1,20})-(\d{1,20})/(\d{1,20}|\*)\Z')
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
        if self._trailer or (self._members and not self._in_member and data and not data.strip(b'\0')):
            if data.strip(b'\0'):
                raise ValueError('unexpected data after the NUL padding that ends the stream')
            self._trailer = True  # NUL padding after the last member, as gzip -d accepts
            return
        pending = bool(data)
        while pending:
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
                    self._trailer = True  # NUL padding after the last member, as gzip -d accepts
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


class _Flow:
    """What the three threads of one receive share: download -> inflate -> write to zfs receive."""

    def __init__(self):
        self.chunks = queue.Queue(QUEUE_DEPTH)   # downloaded bytes, to inflate
        self.pieces = queue.Queue(QUEUE_DEPTH)   # inflated bytes, to write
        self.inflate_error = None   # the file does not decompress: keep hashing to tell corruption apart
        self.sink_closed = False    # zfs receive stopped reading: its own error says why
        self.inflated = threading.Event()   # the inflate thread has ended
        self.written = threading.Event()    # the write thread has ended


class ImportPipeline:
    """One pass over an image file: count, hash, inflate and receive, overlapping all four."""

    def __init__(self, zfs, retries=3, sleep=None):
        self.zfs = zfs
        self.retries = retries
        self._sleep = sleep

    def pause(self, seconds):
        (self._sleep or time.sleep)(seconds)

    def receive(self, client, manifest, target):
        """Stream the image file of manifest into `zfs receive target`; return bytes downloaded."""
        uuid = manifest['uuid']
        expected = manifest['files'][0]
        stream = open_sized(client, uuid, expected['size'])
        total = stream.content_length
        want_sha1 = expected.get('sha1')
        want_md5 = None if want_sha1 else content_md5(stream, uuid, client)
        compression = expected['compression']
        flow = _Flow()
        # imgadm: the manifest's SHA-1 when it has one, else the answer's Content-MD5 (reference 3.4)
        digest = hashlib.sha1() if want_sha1 else hashlib.md5()
        received, rc, stderr = self._pump(client, uuid, stream, target, digest, flow,
                                          Inflater(compression) if compression != 'none' else None)
        complete = received == total
        mismatch = digest_error(client, uuid, digest, want_sha1, want_md5) if complete else None
        if mismatch is not None:
            raise mismatch
        if flow.inflate_error is not None:
            raise ImageError('image %s file could not be decompressed as %s (%s), although its %s matches: the '
                             'image on %s is damaged' % (uuid, compression, flow.inflate_error,
                                                         'SHA-1 of the manifest' if want_sha1 else 'Content-MD5',
                                                         client.source.url), url=client.source.url)
        if rc != 0:
            raise CommandError('zfs receive of image %s into %s failed: %s'
                               % (uuid, target, stderr or 'exit code %d' % rc),
                               cmd='zfs receive -u %s' % target, rc=rc, stderr=stderr)
        if not complete:
            raise DownloadError('image %s file size error: expected %d bytes, downloaded %d bytes'
                                % (uuid, total, received), url=client.source.url)
        return received

    def _pump(self, client, uuid, stream, target, digest, flow, inflater):
        """Download, hash, inflate and zfs receive at once: (bytes received, zfs receive's rc, its stderr)."""
        with tempfile.TemporaryFile() as errfile:
            proc = self.zfs.receive(target, stderr=errfile)
            # inflating and writing each get a thread: zlib and pipe writes release the GIL, so
            # download + SHA-1, inflate and zfs receive all run at once
            workers = [threading.Thread(target=_inflate, name='inflate', args=(flow, inflater)),
                       threading.Thread(target=_write, name='write', args=(flow, proc.stdin))]
            for worker in workers:
                worker.daemon = True
                worker.start()
            try:
                received = self._download(client, uuid, stream, stream.content_length, digest, flow)
            except BaseException:
                proc.kill()  # nothing good can come of the rest of the stream
                raise
            finally:
                _put(flow.chunks, _DONE, flow.inflated)
                for worker in workers:
                    worker.join()
            rc = proc.wait()
            errfile.seek(0)
            return received, rc, errfile.read().decode('utf-8', 'replace').strip()

    def _download(self, client, uuid, stream, total, digest, flow):
        """Read the file by the one download rule (read_file), feeding the inflate thread."""
        return read_file(client, uuid, stream, total, digest, lambda chunk: _put(flow.chunks, chunk, flow.inflated),
                         self.retries, self.pause, stopped=lambda: flow.sink_closed)


def read_file(client, uuid, stream, total, digest, feed, retries, pause, received=0, stopped=None):
    """The one rule for downloading an image file, shared by the importer and the mirror: read it up to total
    bytes, hash each chunk and hand it to feed; when the connection breaks, reopen at the byte reached (resume_at)
    up to retries times. stream: the open answer, or None to open at byte `received` (a resumed download).
    stopped(): True when the consumer gave up. Every stream is closed; returns the bytes reached."""
    attempts = 0
    try:
        while received < total and not (stopped and stopped()):
            try:
                if stream is None:
                    stream = resume_at(client, uuid, received)
                chunk = stream.read(min(CHUNK, total - received))
                if not chunk:
                    raise ConnectionError('the connection closed early')
            except TRANSIENT_ERRORS as e:
                attempts += 1
                if attempts > retries:
                    raise DownloadError('image %s file: the download broke off after %d of %d bytes '
                                        'and %d resume attempt(s) failed: %s'
                                        % (uuid, received, total, retries, _scrub(client, e)[:300]),
                                        url=client.source.url)
                _close(stream)
                stream = None
                pause(RESUME_DELAY * attempts)
                continue
            received += len(chunk)
            digest.update(chunk)
            feed(chunk)
    finally:
        _close(stream)
    return received


def resume_at(client, uuid, offset):
    """The file reopened at offset (Range); what comes before it is skipped when the server ignores Range."""
    stream = client.open_file(uuid, offset)
    skip = offset
    if stream.status == 206:
        # a 206 must say where its bytes start; one that starts elsewhere would splice the wrong bytes in
        given = getattr(stream, 'content_range', None)
        found = CONTENT_RANGE_RE.match((given or '').strip())
        start = int(found.group(1)) if found else offset   # none given: the SHA-1 still checks what arrives
        if start > offset or (given is not None and not found):
            _close(stream)
            raise ConnectionError('the server answered the resume at byte %d with Content-Range "%s"'
                                  % (offset, _scrub(client, given)[:80]))
        skip = offset - start
    while skip:
        data = stream.read(min(CHUNK, skip))
        if not data:
            _close(stream)
            raise ConnectionError('the connection closed while skipping to byte %d' % offset)
        skip -= len(data)
    return stream


def digest_error(client, uuid, digest, want_sha1, want_md5):
    """The DownloadError of a complete file whose digest is not the expected one (SHA-1 of the manifest, else
    the answer's Content-MD5 in base64); None when it matches."""
    if want_sha1 and digest.hexdigest() != want_sha1.lower():
        return DownloadError('image %s file checksum (sha1) error: expected "%s", downloaded checksum was "%s"'
                             % (uuid, want_sha1.lower(), digest.hexdigest()), url=client.source.url)
    if not want_sha1 and digest.digest() != base64.b64decode(want_md5):
        return DownloadError('image %s file Content-MD5 error: expected "%s", downloaded checksum was "%s"'
                             % (uuid, want_md5, base64.b64encode(digest.digest()).decode('ascii')),
                             url=client.source.url)
    return None


MD5_B64_RE = re.compile(r'^[A-Za-z0-9+/]{22}==\Z')


def content_md5(stream, uuid, client):
    """The Content-MD5 (base64) of a file answer, for a manifest without files[0].sha1. imgadm then installs the
    file unchecked when the answer has none; we refuse it: only its size would vouch for it (a deliberate
    difference, docs: guide_imgadm_differences)."""
    value = getattr(stream, 'content_md5', None)
    value = value.strip() if isinstance(value, str) else None
    if value and MD5_B64_RE.match(value):
        return value
    stream.close()
    raise DownloadError('image %s file: its manifest has no files[0].sha1 and the server sent %s, so nothing '
                        'could check the downloaded bytes; the image was not imported (imgadm would import it '
                        'unchecked): ask the source to publish files[0].sha1'
                        % (uuid, 'a malformed Content-MD5 header' if value else 'no Content-MD5 header'),
                        url=client.source.url)


def _scrub(client, text):
    """Server-given text without the source's credentials (clients that cannot scrub are fakes in tests)."""
    scrub = getattr(client, 'scrub', None)
    return scrub(text) if scrub is not None else str(text)


def _close(stream):
    if stream is not None:
        stream.close()


def open_sized(client, uuid, size):
    """The image file's stream, once its Content-Length is known and is the manifest's size."""
    stream = client.open_file(uuid)
    total = stream.content_length
    if total is None:
        stream.close()
        raise DownloadError('image %s file: unexpected missing or invalid Content-Length header: %s'
                            % (uuid, stream.raw_content_length), url=client.source.url)
    if total != size:
        stream.close()
        raise DownloadError('image %s file: the manifest says %d bytes but the server sends '
                            'Content-Length %d' % (uuid, size, total), url=client.source.url)
    return stream


def _until_done(source):
    """The items of a queue up to _DONE."""
    while True:
        item = source.get()
        if item is _DONE:
            return
        yield item


def _put(target, item, consumer_ended):
    """Queue an item for the next thread, unless that thread has ended."""
    while not consumer_ended.is_set():
        try:
            target.put(item, timeout=0.2)
            return
        except queue.Full:
            continue


# bz2 reports bad data as OSError, lzma as LZMAError, zlib as zlib.error; a truncated stream is ValueError.
INFLATE_ERRORS = (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError)


def _inflate(flow, inflater):
    """Inflate queued chunks into pieces for the write thread until _DONE; record a bad stream."""
    try:
        for item in _until_done(flow.chunks):
            if flow.inflate_error is not None or flow.sink_closed:
                continue  # drain: the download thread goes on hashing (or stops) on its own
            pieces = iter([item]) if inflater is None else inflater.feed(item)
            while not flow.sink_closed:
                try:
                    out = next(pieces)
                except StopIteration:
                    break
                except INFLATE_ERRORS as e:
                    flow.inflate_error = e
                    break
                _put(flow.pieces, out, flow.written)
        if inflater is not None and flow.inflate_error is None and not flow.sink_closed:
            try:
                inflater.finish()
            except ValueError as e:
                flow.inflate_error = e
    finally:
        flow.inflated.set()
        _put(flow.pieces, _DONE, flow.written)


def _write(flow, sink):
    """Write inflated pieces into zfs receive until _DONE, then close its stdin."""
    try:
        for item in _until_done(flow.pieces):
            if flow.sink_closed or flow.inflate_error is not None:
                continue  # drain; a stream that failed to inflate must not reach zfs receive whole
            try:
                sink.write(item)
            except OSError:
                flow.sink_closed = True  # zfs receive exited (EPIPE): its stderr says why
    finally:
        flow.written.set()
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
        # imgadm: a -partial left by a killed import; we hold the image lock, so no import owns it.
        # Anything more than a killed import leaves (children, clones, snapshots) is not ours to destroy.
        check_partial(Inventory(zfs.list(pool)), pool, uuid)
        zfs.destroy_recursive(partial)
    prepared = renamed = False
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
        renamed = True
        record.commit(zfs, final)
        return received
    except BaseException:
        if prepared:
            record.abort()
        try:
            # an image without its record would look installed to vmadm but unknown to imgadm: undo it all
            for name in (final,) if renamed else (partial,):
                if zfs.exists(name):
                    zfs.destroy_recursive(name)
        except ImageError:
            pass  # the original failure is what the user needs to see
        raise
