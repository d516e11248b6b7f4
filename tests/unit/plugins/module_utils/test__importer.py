# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_importer.py: Inflater, ImportPipeline.receive and install() over fakes."""

from __future__ import annotations

import base64
import bz2
import gzip
import hashlib
import json
import lzma
import os
import queue
import random
import socket
import threading
import types
import zlib

import pytest

from ansible_collections.smartos.images.plugins.module_utils import _host, _importer, _zfs
from ansible_collections.smartos.images.plugins.module_utils._errors import (
    CommandError, DownloadError, ImageError, SourceError,
)
from ansible_collections.smartos.images.plugins.module_utils._importer import ImportPipeline, Inflater, install
from ansible_collections.smartos.images.tests.unit.fakehost import FakeHost

U = '2f1dc911-6401-4fa4-8e9d-67ea2e39c271'
POOL = 'zones'
PARTIAL = '%s/%s-partial' % (POOL, U)
FINAL = '%s/%s' % (POOL, U)
SOURCE_URL = 'http://img.example.com'

COMPRESS = {
    'gzip': gzip.compress,
    'bzip2': bz2.compress,
    'xz': lzma.compress,
    'none': lambda data: data,
}


def payload(size, seed=1):
    """Incompressible bytes (a send stream stand-in), the same for the same size and seed."""
    return random.Random(seed).randbytes(size)


def inflate_all(compression, chunks):
    inflater = Inflater(compression)
    out = []
    for chunk in chunks:
        out.extend(inflater.feed(chunk))
    inflater.finish()
    return out


def split(data, size):
    return [data[i:i + size] for i in range(0, len(data), size)]


# ---- Inflater ----

@pytest.mark.parametrize('compression', ['gzip', 'bzip2', 'xz'])
@pytest.mark.parametrize('chunk', [1, 7, 4096, 1 << 20])
def test_inflater_round_trip(compression, chunk):
    data = payload(3000) + b'\0' * 3000 + payload(1000, seed=2)
    packed = COMPRESS[compression](data)
    assert b''.join(inflate_all(compression, split(packed, chunk))) == data


@pytest.mark.parametrize('compression', ['gzip', 'bzip2', 'xz'])
@pytest.mark.parametrize('chunk', [1, 100, 1 << 20])
def test_inflater_multi_member(compression, chunk):
    # pigz / pbzip2 / `cat a.gz b.gz` write several members; gzip -d concatenates their output
    parts = [payload(5000, seed=n) for n in range(3)] + [b'']
    packed = b''.join(COMPRESS[compression](p) for p in parts)
    assert b''.join(inflate_all(compression, split(packed, chunk))) == b''.join(parts)


@pytest.mark.parametrize('compression', ['gzip', 'bzip2', 'xz'])
def test_inflater_nul_padding_after_the_last_member(compression):
    data = payload(2000)
    packed = COMPRESS[compression](data) + COMPRESS[compression](b'tail') + b'\0' * 512
    assert b''.join(inflate_all(compression, [packed])) == data + b'tail'


@pytest.mark.parametrize('compression', ['gzip', 'bzip2', 'xz'])
def test_inflater_nul_padding_in_the_next_chunk(compression):
    data = payload(2000)
    packed = COMPRESS[compression](data)
    assert b''.join(inflate_all(compression, [packed, b'\0' * 8])) == data


@pytest.mark.parametrize('compression', ['gzip', 'bzip2', 'xz'])
@pytest.mark.parametrize('cut', [1, 10, -1, -9])
def test_inflater_truncated_stream(compression, cut):
    packed = COMPRESS[compression](payload(5000))
    inflater = Inflater(compression)
    for chunk in split(packed[:cut], 1000):
        list(inflater.feed(chunk))
    with pytest.raises(ValueError, match='truncated'):
        inflater.finish()


@pytest.mark.parametrize('compression', ['gzip', 'bzip2', 'xz'])
def test_inflater_truncated_after_a_complete_member(compression):
    one = COMPRESS[compression](b'first')
    two = COMPRESS[compression](b'second')
    inflater = Inflater(compression)
    assert b''.join(inflater.feed(one + two[:len(two) // 2])).startswith(b'first')
    with pytest.raises(ValueError, match='truncated'):
        inflater.finish()


@pytest.mark.parametrize('compression', ['gzip', 'bzip2', 'xz'])
@pytest.mark.parametrize('chunks', [[], [b'']])
def test_inflater_empty(compression, chunks):
    with pytest.raises(ValueError, match='empty'):
        inflate_all(compression, chunks)


@pytest.mark.parametrize('compression, error', [
    ('gzip', zlib.error),
    ('bzip2', OSError),
    ('xz', lzma.LZMAError),
])
def test_inflater_garbage(compression, error):
    with pytest.raises(error):
        inflate_all(compression, [b'this is not compressed at all' * 10])


@pytest.mark.parametrize('compression', ['gzip', 'bzip2', 'xz'])
def test_inflater_output_is_bounded(compression, monkeypatch):
    monkeypatch.setattr(_importer, 'OUT_MAX', 1000)
    data = b'\0' * 200000 + payload(5000) + b'\0' * 100000
    packed = COMPRESS[compression](data) + COMPRESS[compression](b'\0' * 50000)
    out = inflate_all(compression, split(packed, 3000))
    assert max(len(piece) for piece in out) <= 1000
    assert b''.join(out) == data + b'\0' * 50000


def test_inflater_output_is_bounded_at_the_real_limit():
    data = b'\0' * (3 * _importer.OUT_MAX + 12345)
    out = inflate_all('gzip', [gzip.compress(data)])  # one small input chunk, a ratio of about 1000
    assert max(len(piece) for piece in out) == _importer.OUT_MAX
    assert sum(len(piece) for piece in out) == len(data)


def test_inflater_unknown_compression():
    with pytest.raises(KeyError):
        Inflater('zstd')


# ---- ImportPipeline.receive over a fake client and the fake host ----

class FakeStream:
    """An open GetImageFile response: .status, .content_length, .raw_content_length, read(n), close()."""

    def __init__(self, data, start, status, content_length, drop_at=None, drop=ConnectionResetError):
        self.data = data
        self.pos = start            # absolute position in the file
        self.status = status
        self.content_length = content_length
        self.raw_content_length = None if content_length is None else str(content_length)
        self.drop_at = drop_at      # absolute position where the connection breaks
        self.drop = drop
        self.closed = False

    def read(self, size):
        assert not self.closed, 'read after close'
        end = self.pos + size
        if self.drop_at is not None:
            if self.pos >= self.drop_at:
                if self.drop is None:
                    return b''       # the server closed the connection early
                raise self.drop(104, 'Connection reset by peer') if self.drop is ConnectionResetError else self.drop('timed out')
            end = min(end, self.drop_at)
        chunk = self.data[self.pos:end]
        self.pos += len(chunk)
        return chunk

    def close(self):
        self.closed = True


class FakeClient:
    """open_file() answers one connection per entry of `connections`: a dict with
    honour_range (default True), drop_at, drop, content_length; or error, an exception to raise."""

    def __init__(self, data, *connections):
        self.data = data
        self.connections = list(connections) or [{}]
        self.source = types.SimpleNamespace(url=SOURCE_URL)
        self.offsets = []
        self.streams = []

    def open_file(self, uuid, offset=0):
        assert uuid == U
        self.offsets.append(offset)
        conn = self.connections.pop(0) if len(self.connections) > 1 else self.connections[0]
        if 'error' in conn:
            raise conn['error']
        if offset and conn.get('honour_range', True):
            status, start = 206, offset
        else:
            status, start = 200, 0
        length = conn.get('content_length', len(self.data) - start)
        stream = FakeStream(self.data, start, status, length, conn.get('drop_at'), conn.get('drop', ConnectionResetError))
        stream.content_md5 = conn.get('content_md5')
        self.streams.append(stream)
        return stream


def receive_host(stream=None):
    """A host with the pool, whose `zfs receive` of the image takes this stream (None: no stream is right)."""
    return FakeHost([POOL], streams=None if stream is None else {U: stream})


def manifest_for(data, compression='gzip', **file_fields):
    entry = {'sha1': hashlib.sha1(data).hexdigest(), 'size': len(data), 'compression': compression}
    entry.update(file_fields)
    return {'v': 2, 'uuid': U, 'name': 'base', 'version': '1.0', 'type': 'zone-dataset', 'files': [entry]}


def run_receive(host, client, manifest, retries=3, timeout=20):
    """pipeline.receive in a thread; fail the test (instead of hanging the suite) if it does not return."""
    sleeps = []
    pipeline = ImportPipeline(_zfs.Zfs(host), retries=retries, sleep=sleeps.append)
    outcome = {}

    def target():
        try:
            outcome['value'] = pipeline.receive(client, manifest, PARTIAL)
        except BaseException as e:  # pylint: disable=broad-exception-caught
            outcome['error'] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        ABORT.set()   # unblock the stuck download thread so that it ends
        thread.join(5)
        pytest.fail('ImportPipeline.receive did not return within %ss (hung)' % timeout)
    if 'error' in outcome:
        raise outcome['error']
    return outcome['value'], sleeps


ABORT = threading.Event()


class AbortableQueue(queue.Queue):
    """queue.Queue that drops items once a hung test has given up, so that no thread spins forever."""

    def put(self, item, block=True, timeout=None):
        if ABORT.is_set():
            return
        super().put(item, block, timeout)


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """Small network reads, so that test files span many chunks; a queue that a hung test can release."""
    monkeypatch.setattr(_importer, 'CHUNK', 4096)
    monkeypatch.setattr(_importer.queue, 'Queue', AbortableQueue)
    ABORT.clear()


def received_bytes(host):
    assert [proc.argv for proc in host.processes] == [['zfs', 'receive', '-u', PARTIAL]]
    assert host.processes[0].stdin.closed
    return host.processes[0].stdin.getvalue()


@pytest.mark.parametrize('compression', ['gzip', 'bzip2', 'xz', 'none'])
@pytest.mark.parametrize('size', [1, 3000, 100000])
def test_receive_success(compression, size):
    stream = payload(size)
    data = COMPRESS[compression](stream)
    host, client = receive_host(stream), FakeClient(data)
    result, sleeps = run_receive(host, client, manifest_for(data, compression))
    assert result == len(data)
    assert received_bytes(host) == stream
    assert client.offsets == [0]
    assert all(s.closed for s in client.streams)
    assert sleeps == []
    proc = host.processes[0]
    assert proc.waited and not proc.killed


def test_receive_sha1_compared_case_insensitively():
    data = gzip.compress(payload(1000))
    host = receive_host(payload(1000))
    result, dummy = run_receive(host, FakeClient(data), manifest_for(data, sha1=hashlib.sha1(data).hexdigest().upper()))
    assert result == len(data)


def test_receive_sha1_mismatch():
    data = gzip.compress(payload(20000))
    wrong = hashlib.sha1(b'something else').hexdigest()
    host = receive_host(payload(20000))
    with pytest.raises(DownloadError) as exc:
        run_receive(host, FakeClient(data), manifest_for(data, sha1=wrong))
    actual = hashlib.sha1(data).hexdigest()
    assert exc.value.msg == ('image %s file checksum (sha1) error: expected "%s", downloaded checksum was "%s"'
                             % (U, wrong, actual))
    assert exc.value.evidence == {'url': SOURCE_URL}


def md5_b64(data):
    return base64.b64encode(hashlib.md5(data).digest()).decode('ascii')


def test_receive_without_sha1_checks_the_content_md5_as_imgadm():
    data = gzip.compress(payload(30000))
    host = receive_host(payload(30000))
    manifest = manifest_for(data, sha1=None)
    del manifest['files'][0]['sha1']
    # resumed after a break: the MD5 of the whole file still covers every byte
    client = FakeClient(data, {'content_md5': md5_b64(data), 'drop_at': len(data) // 2}, {})
    result, dummy = run_receive(host, client, manifest)
    assert result == len(data) and host.processes[0].stdin.getvalue() == payload(30000)


def test_receive_without_sha1_refuses_a_content_md5_mismatch():
    data = gzip.compress(payload(20000))
    manifest = manifest_for(data)
    del manifest['files'][0]['sha1']
    wrong = md5_b64(b'other')
    with pytest.raises(DownloadError) as exc:
        run_receive(receive_host(payload(20000)), FakeClient(data, {'content_md5': wrong}), manifest)
    assert exc.value.msg == ('image %s file Content-MD5 error: expected "%s", downloaded checksum was "%s"'
                             % (U, wrong, md5_b64(data)))


@pytest.mark.parametrize('header', [None, '', 'not-base64', 'AAAA'])
def test_receive_without_sha1_or_content_md5_is_refused_before_receiving(header):
    data = gzip.compress(payload(1000))
    manifest = manifest_for(data)
    del manifest['files'][0]['sha1']
    host = receive_host(payload(1000))
    client = FakeClient(data, {'content_md5': header})
    with pytest.raises(DownloadError) as exc:
        run_receive(host, client, manifest)
    assert 'has no files[0].sha1' in exc.value.msg and 'Content-MD5' in exc.value.msg
    assert host.processes == [] and client.streams[0].closed


@pytest.mark.parametrize('content_length', [999, 1001])
def test_receive_content_length_differs_from_manifest(content_length):
    data = payload(1000)
    host, client = receive_host(data), FakeClient(data, {'content_length': content_length})
    with pytest.raises(DownloadError) as exc:
        run_receive(host, client, manifest_for(data, 'none'))
    assert exc.value.msg == ('image %s file: the manifest says 1000 bytes but the server sends Content-Length %d'
                             % (U, content_length))
    assert host.processes == []          # nothing was received
    assert client.streams[0].closed


def test_receive_missing_content_length():
    data = payload(1000)
    host, client = receive_host(data), FakeClient(data, {'content_length': None})
    with pytest.raises(DownloadError) as exc:
        run_receive(host, client, manifest_for(data, 'none'))
    assert exc.value.msg == 'image %s file: unexpected missing or invalid Content-Length header: None' % U
    assert host.processes == []
    assert client.streams[0].closed


@pytest.mark.parametrize('drop', [ConnectionResetError, socket.timeout, None])
def test_receive_resumes_with_range(drop):
    stream = payload(60000)
    data = gzip.compress(stream)
    host = receive_host(stream)
    client = FakeClient(data, {'drop_at': 10000, 'drop': drop}, {'drop_at': 30001, 'drop': drop}, {})
    result, sleeps = run_receive(host, client, manifest_for(data))
    assert result == len(data)
    assert received_bytes(host) == stream
    assert client.offsets == [0, 10000, 30001]
    assert [s.status for s in client.streams] == [200, 206, 206]
    assert sleeps == [_importer.RESUME_DELAY, _importer.RESUME_DELAY * 2]


def test_receive_resume_from_a_server_that_ignores_range():
    stream = payload(60000)
    data = gzip.compress(stream)
    host = receive_host(stream)
    client = FakeClient(data, {'drop_at': 25000}, {'honour_range': False})
    result, dummy = run_receive(host, client, manifest_for(data))
    assert result == len(data)
    assert client.offsets == [0, 25000]
    assert client.streams[1].status == 200
    # the bytes already received were skipped, not received twice
    assert received_bytes(host) == stream


def range_client(start, content_range):
    """A client whose server answers a resume with a 206 from start, with this Content-Range (a password in it)."""
    data = bytes(range(256)) * 8

    def open_file(uuid, offset):
        stream = FakeStream(data, start, 206, len(data) - start)
        stream.content_range = content_range
        return stream
    return types.SimpleNamespace(open_file=open_file, scrub=lambda text: str(text).replace(RANGE_SECRET, '***')), data


RANGE_SECRET = 'p#ss/w?rd@x:y'


@pytest.mark.parametrize('start, content_range', [(0, 'bytes 0-2047/2048'), (100, 'bytes 100-2047/2048'),
                                                  (500, None), (500, 'bytes 500-2047/*')])
def test_a_206_continues_at_the_offset(start, content_range):
    client, data = range_client(start, content_range)
    stream = _importer.resume_at(client, 'u', 500)
    assert stream.read(10) == data[500:510]


@pytest.mark.parametrize('content_range', ['bytes 600-2047/2048', 'bytes 500-2047/2048 ' + RANGE_SECRET, 'nonsense'])
def test_a_206_past_the_offset_or_unreadable_is_a_transient_error(content_range):
    client, dummy = range_client(600, content_range)
    with pytest.raises(ConnectionError) as e:
        _importer.resume_at(client, 'u', 500)
    assert 'Content-Range' in str(e.value) and RANGE_SECRET not in str(e.value)


def test_receive_resume_attempts_exhausted():
    data = gzip.compress(payload(60000))
    host = receive_host(payload(60000))
    client = FakeClient(data, {'drop_at': 10000}, {'drop_at': 12000}, {'drop_at': 12000}, {'drop_at': 12000}, {})
    with pytest.raises(DownloadError) as exc:
        run_receive(host, client, manifest_for(data), retries=3)
    assert exc.value.msg == ('image %s file: the download broke off after 12000 of %d bytes and 3 resume attempt(s) '
                             'failed: [Errno 104] Connection reset by peer' % (U, len(data)))
    assert exc.value.evidence == {'url': SOURCE_URL}
    assert client.offsets == [0, 10000, 12000, 12000]
    assert host.processes[0].killed


def test_receive_without_retries_does_not_resume():
    data = gzip.compress(payload(60000))
    host = receive_host(payload(60000))
    client = FakeClient(data, {'drop_at': 10000}, {})
    with pytest.raises(DownloadError):
        run_receive(host, client, manifest_for(data), retries=0)
    assert client.offsets == [0]


def test_receive_resume_that_cannot_reopen_is_an_image_error():
    data = gzip.compress(payload(60000))
    host = receive_host(payload(60000))
    client = FakeClient(data, {'drop_at': 10000}, {'error': SourceError('http://img.example.com/images/x/file answered HTTP 404: gone')})
    with pytest.raises(ImageError):
        run_receive(host, client, manifest_for(data))
    assert host.processes[0].killed


def test_receive_drop_while_skipping_is_retried():
    stream = payload(60000)
    data = gzip.compress(stream)
    host = receive_host(stream)
    client = FakeClient(data, {'drop_at': 30000}, {'honour_range': False, 'drop_at': 20000, 'drop': None},
                        {'honour_range': False})
    result, dummy = run_receive(host, client, manifest_for(data))
    assert result == len(data)
    assert received_bytes(host) == stream


def test_receive_closes_every_stream_it_opened():
    data = gzip.compress(payload(60000))
    client = FakeClient(data, {'drop_at': 10000}, {})
    run_receive(receive_host(payload(60000)), client, manifest_for(data))
    assert [s.closed for s in client.streams] == [True, True]


@pytest.mark.parametrize('compression, corrupt', [
    ('gzip', lambda packed: packed[:20] + bytes(b ^ 0xff for b in packed[20:40]) + packed[40:]),
    ('gzip', lambda packed: b'not gzip at all' + packed),
    ('bzip2', lambda packed: packed[:50] + b'\x00' * 20 + packed[70:]),
    ('gzip', lambda packed: packed[:-100]),     # truncated, yet the manifest describes these very bytes
])
def test_receive_corrupt_file_in_one_chunk(compression, corrupt):
    data = corrupt(COMPRESS[compression](payload(3000)))
    assert len(data) <= _importer.CHUNK
    with pytest.raises(ImageError) as exc:
        run_receive(receive_host(payload(3000)), FakeClient(data), manifest_for(data, compression))
    assert not isinstance(exc.value, DownloadError)
    assert 'file could not be decompressed as %s (' % compression in exc.value.msg and 'is damaged' in exc.value.msg


def test_receive_corrupt_gzip_across_many_chunks():
    data = b'not gzip at all' + gzip.compress(payload(200000))
    with pytest.raises(ImageError) as exc:
        run_receive(receive_host(payload(200000)), FakeClient(data), manifest_for(data, 'gzip'))
    assert 'file could not be decompressed as gzip (' in exc.value.msg


@pytest.mark.filterwarnings('ignore::pytest.PytestUnhandledThreadExceptionWarning')
def test_receive_corrupt_xz_across_many_chunks():
    data = b'not xz at all' + lzma.compress(payload(200000))
    with pytest.raises(ImageError) as exc:
        run_receive(receive_host(payload(200000)), FakeClient(data), manifest_for(data, 'xz'), timeout=2)
    assert 'file could not be decompressed as xz (' in exc.value.msg


def test_receive_zfs_receive_fails():
    stream = payload(3000)
    data = gzip.compress(stream)
    host = receive_host(stream)
    host.add(PARTIAL)
    with pytest.raises(CommandError) as exc:
        run_receive(host, FakeClient(data), manifest_for(data))
    assert exc.value.msg == ("zfs receive of image %s into %s failed: cannot receive new filesystem stream: "
                             "destination '%s' exists" % (U, PARTIAL, PARTIAL))
    assert exc.value.evidence == {'cmd': 'zfs receive -u ' + PARTIAL, 'rc': 1,
                                  'stderr': "cannot receive new filesystem stream: destination '%s' exists" % PARTIAL}


def test_receive_zfs_receive_fails_silently():
    data = gzip.compress(payload(3000))
    host = receive_host(payload(3000))
    host.receive_rc = 1
    with pytest.raises(CommandError) as exc:
        run_receive(host, FakeClient(data), manifest_for(data))
    assert exc.value.msg.endswith('failed: exit code 1')


@pytest.mark.parametrize('size', [3000, 200000])    # the file in one chunk, across many
def test_receive_zfs_receive_stops_reading(size):
    data = gzip.compress(payload(size))
    host = receive_host(payload(size))     # it reads 100 bytes, then fails for want of space
    host.receive_rc, host.receive_err, host.receive_accept = 1, 'cannot receive: out of space\n', 100
    with pytest.raises(CommandError) as exc:
        run_receive(host, FakeClient(data), manifest_for(data))
    assert exc.value.evidence['stderr'] == 'cannot receive: out of space'


# ---- install() over the fake host and a fake pipeline ----

class InstallZfs(_zfs.Zfs):
    """Zfs over a fake host (.host) that raises where told: fail maps a method name, or (old, new) of a rename, to the
    exception to raise; on_rename(old, new) is called at each rename."""

    def __init__(self, datasets=(), fail=None, on_rename=None):
        self.host = FakeHost(datasets)
        super().__init__(self.host)
        self.fail = fail or {}
        self.on_rename = on_rename

    def _maybe_fail(self, key):
        if key in self.fail:
            raise self.fail[key]

    def snapshots(self, name):
        self._maybe_fail('snapshots')
        return super().snapshots(name)

    def rename(self, old, new):
        if self.on_rename:
            self.on_rename(old, new)
        self._maybe_fail((old, new))
        super().rename(old, new)

    def set_property(self, name, prop, value):
        self._maybe_fail('set_property')
        super().set_property(name, prop, value)

    def destroy_recursive(self, name):
        self._maybe_fail('destroy_recursive')
        super().destroy_recursive(name)


def ops(zfs):
    """The zfs commands the host ran, as (Zfs method, arguments)."""
    done = []
    for argv in zfs.host.calls:
        verb, args = argv[1], argv[2:]
        if verb == 'list':
            kind = 'snapshots' if 'snapshot' in args else 'exists' if args[2] == 'name' else 'list'
            done.append((kind, args[-1]))
        elif verb == 'set':
            done.append(('set_property', args[1]) + tuple(args[0].split('=', 1)))
        else:
            done.append(({'destroy': 'destroy_recursive'}.get(verb, verb),) + tuple(a for a in args if a[0] != '-'))
    return done


def names(zfs):
    return set(zfs.host.datasets)


class FakePipeline:
    """Receives the dataset with the given snapshots on the fake host, or fails (after zfs made the dataset)."""

    def __init__(self, zfs, snapshots=('final',), error=None, received=1234):
        self.host = zfs.host
        self.snapshots = snapshots
        self.error = error
        self.received = received
        self.calls = []

    def receive(self, client, manifest, target):
        self.calls.append((client, manifest['uuid'], target))
        self.host.calls.append(['zfs', 'receive', '-u', target])
        self.host.add(target)   # zfs creates the dataset before it fails, too
        if self.error:
            raise self.error
        for snapshot in self.snapshots:
            self.host.add('%s@%s' % (target, snapshot))
        return self.received


MANIFEST = {'v': 2, 'uuid': U, 'name': 'base-64-lts', 'version': '24.4.1', 'type': 'zone-dataset',
            'files': [{'sha1': 'a' * 40, 'size': 10, 'compression': 'gzip'}]}


@pytest.fixture
def paths(tmp_path):
    return _host.HostPaths(str(tmp_path))


def record(paths):
    """What a modern host keeps of an import: imgadm's cache file."""
    return _host.modern_record(paths, POOL, MANIFEST, SOURCE_URL)


def cache_dir(paths):
    return os.path.dirname(paths.image_cache(POOL, U))


def cache_dir_files(paths):
    return sorted(os.listdir(cache_dir(paths))) if os.path.isdir(cache_dir(paths)) else []


def expected_cache():
    return json.dumps({'manifest': MANIFEST, 'zpool': POOL, 'source': SOURCE_URL}, indent=2) + '\n'


def test_install_success(paths):
    seen_at_rename = []

    def on_rename(old, new):
        seen_at_rename.append(cache_dir_files(paths))

    zfs = InstallZfs([POOL], on_rename=on_rename)
    pipeline = FakePipeline(zfs)
    client = object()
    assert install(zfs, pipeline, client, MANIFEST, POOL, record(paths)) == 1234
    assert ops(zfs) == [('exists', PARTIAL), ('receive', PARTIAL), ('snapshots', PARTIAL), ('rename', PARTIAL, FINAL)]
    assert pipeline.calls == [(client, U, PARTIAL)]
    assert names(zfs) == {POOL, FINAL, FINAL + '@final'}
    with open(paths.image_cache(POOL, U)) as f:
        assert f.read() == expected_cache()
    assert cache_dir_files(paths) == ['%s-%s.json' % (POOL, U)]
    # at the dataset rename, the cache file was prepared aside but not yet in place
    assert len(seen_at_rename) == 1
    assert '%s-%s.json' % (POOL, U) not in seen_at_rename[0]
    assert len(seen_at_rename[0]) == 1 and seen_at_rename[0][0].startswith('.')


@pytest.mark.parametrize('left', [[], ['@final'], ['@2024-01-01']])
def test_install_destroys_a_stale_partial_first(paths, left):
    """What a killed receive or a run killed before its rename leaves: at most one snapshot."""
    zfs = InstallZfs([POOL, PARTIAL] + [PARTIAL + s for s in left])
    install(zfs, FakePipeline(zfs), None, MANIFEST, POOL, record(paths))
    assert ops(zfs)[:4] == [('exists', PARTIAL), ('list', POOL), ('destroy_recursive', PARTIAL), ('receive', PARTIAL)]
    assert names(zfs) == {POOL, FINAL, FINAL + '@final'}


@pytest.mark.parametrize('extra, origins, why', [
    (['/child'], {}, 'child dataset(s) %s/child' % PARTIAL),
    (['@final', '@mine'], {}, '2 snapshots (final, mine)'),
    (['@final'], {'zones/vm': PARTIAL + '@final'}, 'clone(s) zones/vm'),
])
def test_install_refuses_a_partial_it_did_not_make(paths, extra, origins, why):
    before = [POOL, PARTIAL] + [PARTIAL + e for e in extra] + list(origins)
    zfs = InstallZfs([(name, origins.get(name)) for name in before])
    with pytest.raises(ImageError) as exc:
        install(zfs, FakePipeline(zfs), None, MANIFEST, POOL, record(paths))
    assert exc.value.msg == ('dataset %s is in the way of the import of image %s and is not what an interrupted '
                             'import leaves (it has %s); refusing to destroy it: look at it, then destroy or rename '
                             'it yourself' % (PARTIAL, U, why))
    assert exc.value.evidence == {'dataset': PARTIAL}
    assert names(zfs) == set(before)     # nothing destroyed, nothing received
    assert not [c for c in ops(zfs) if c[0] in ('destroy_recursive', 'receive', 'rename')]
    assert cache_dir_files(paths) == []


def test_install_renames_the_one_snapshot_to_final(paths):
    zfs = InstallZfs([POOL])
    install(zfs, FakePipeline(zfs, snapshots=('2024-01-01',)), None, MANIFEST, POOL, record(paths))
    assert ops(zfs)[2:] == [('snapshots', PARTIAL), ('rename', PARTIAL + '@2024-01-01', PARTIAL + '@final'),
                            ('rename', PARTIAL, FINAL)]
    assert names(zfs) == {POOL, FINAL, FINAL + '@final'}


def test_install_overwrites_an_old_cache_file(paths):
    os.makedirs(cache_dir(paths))
    with open(paths.image_cache(POOL, U), 'w') as f:
        f.write('{"manifest": {"uuid": "%s"}, "zpool": "zones"}\n' % U)
    zfs = InstallZfs([POOL])
    install(zfs, FakePipeline(zfs), None, MANIFEST, POOL, record(paths))
    with open(paths.image_cache(POOL, U)) as f:
        assert f.read() == expected_cache()


@pytest.mark.parametrize('snapshots, listed', [
    ((), ''),
    (('a', 'final'), 'a, final'),
    (('s1', 's2', 's3'), 's1, s2, s3'),
])
def test_install_unexpected_number_of_snapshots(paths, snapshots, listed):
    zfs = InstallZfs([POOL])
    with pytest.raises(ImageError) as exc:
        install(zfs, FakePipeline(zfs, snapshots=snapshots), None, MANIFEST, POOL, record(paths))
    assert exc.value.msg == 'image "%s" has an unexpected number of snapshots (%d): %s' % (U, len(snapshots), listed)
    assert ('destroy_recursive', PARTIAL) in ops(zfs)
    assert names(zfs) == {POOL}
    assert cache_dir_files(paths) == []


BOOM = CommandError('boom')


@pytest.mark.parametrize('step, fake_kwargs, pipeline_kwargs', [
    ('receive', {}, {'error': DownloadError('download broke')}),
    ('receive-interrupted', {}, {'error': KeyboardInterrupt()}),
    ('snapshots', {'fail': {'snapshots': BOOM}}, {}),
    ('rename snapshot', {'fail': {(PARTIAL + '@s', PARTIAL + '@final'): BOOM}}, {'snapshots': ('s',)}),
    ('rename dataset', {'fail': {(PARTIAL, FINAL): BOOM}}, {}),
])
def test_install_failure_cleans_up(paths, step, fake_kwargs, pipeline_kwargs):
    zfs = InstallZfs([POOL], **fake_kwargs)
    pipeline = FakePipeline(zfs, **pipeline_kwargs)
    expected = pipeline_kwargs.get('error') or BOOM
    with pytest.raises(type(expected)) as exc:
        install(zfs, pipeline, None, MANIFEST, POOL, record(paths))
    assert exc.value is expected
    assert ops(zfs)[-2:] == [('exists', PARTIAL), ('destroy_recursive', PARTIAL)]
    assert names(zfs) == {POOL}
    assert cache_dir_files(paths) == []   # no cache file, no temp file


def test_install_failure_to_prepare_the_cache_file_cleans_up(paths):
    os.makedirs(os.path.dirname(cache_dir(paths)))
    with open(cache_dir(paths), 'w') as f:   # /var/imgadm/images is a file: the cache cannot be written
        f.write('in the way')
    zfs = InstallZfs([POOL])
    with pytest.raises(ImageError, match='cannot write'):
        install(zfs, FakePipeline(zfs), None, MANIFEST, POOL, record(paths))
    assert ('rename', PARTIAL, FINAL) not in ops(zfs)
    assert ops(zfs)[-2:] == [('exists', PARTIAL), ('destroy_recursive', PARTIAL)]
    assert names(zfs) == {POOL}


def test_install_cleanup_failure_does_not_hide_the_first_error(paths):
    zfs = InstallZfs([POOL], fail={'destroy_recursive': CommandError('destroying: dataset is busy')})
    first = DownloadError('the real reason')
    with pytest.raises(DownloadError) as exc:
        install(zfs, FakePipeline(zfs, error=first), None, MANIFEST, POOL, record(paths))
    assert exc.value is first
    assert cache_dir_files(paths) == []


def failing_commit(tmp, path):
    raise OSError(30, 'Read-only file system')


@pytest.mark.parametrize('layout', ['modern', 'original'])
def test_install_failure_at_commit_leaves_the_host_as_before(paths, monkeypatch, layout):
    if layout == 'modern':
        monkeypatch.setattr(_host, 'commit_atomic', failing_commit)
        zfs = InstallZfs([POOL])
        rec = record(paths)
    else:
        zfs = InstallZfs([POOL], fail={'set_property': CommandError('setting imgadm:uuid failed: permission denied')})
        rec = _host.OriginalRecord(paths, MANIFEST)
    with pytest.raises((OSError, ImageError)):
        install(zfs, FakePipeline(zfs), None, MANIFEST, POOL, rec)
    assert cache_dir_files(paths) == []
    assert not os.path.exists(paths.original_manifest(U))
    assert names(zfs) == {POOL}


def test_install_original_layout_record(paths):
    zfs = InstallZfs([POOL])
    install(zfs, FakePipeline(zfs), None, MANIFEST, POOL, _host.OriginalRecord(paths, MANIFEST))
    assert ops(zfs)[-2:] == [('rename', PARTIAL, FINAL), ('set_property', FINAL, 'imgadm:uuid', U)]
    with open(paths.original_manifest(U)) as f:
        assert f.read() == json.dumps(MANIFEST, indent=2)   # imgadm v1: no trailing newline
    assert not os.path.exists(paths.image_cache(POOL, U))
