# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mirror attacked: one image file fetched from a hostile or broken server (wrong ranges, lies about sizes,
wrong bytes, short bodies, refusals) and a mirror directory left in odd states (symlinks, a directory where a file
goes). Each test says what a user may rely on: the mirror never serves bytes it has not verified, never writes
outside its directory, and keeps what a later run can resume."""

from __future__ import annotations

import hashlib
import os

import pytest

from ansible_collections.smartos.images.plugins.module_utils._errors import DownloadError, ImageError, SourceError
from ansible_collections.smartos.images.plugins.module_utils._http_body import FileStream
from ansible_collections.smartos.images.plugins.module_utils._mirror_fetch import fetch
from ansible_collections.smartos.images.plugins.module_utils._mirror_store import MirrorStore
from ansible_collections.smartos.images.plugins.module_utils._resolver import Found
from ansible_collections.smartos.images.plugins.module_utils._urls import ImageSource
from ansible_collections.smartos.images.tests.unit.fakehost import FakeResponse

U1 = '2f1dc911-6401-4fa4-8e9d-67ea2e39c271'
DATA = bytes(range(256)) * 40
HALF = len(DATA) // 2


class Hostile:
    """A client whose open_file answers as `answer(offset)` says: (status, headers, body) or an exception to raise.
    Records every offset asked."""

    def __init__(self, answer=None):
        self.source = ImageSource('http://up.example.com')
        self.offsets = []
        self.answer = answer or honest

    def open_file(self, uuid, offset=0):
        self.offsets.append(offset)
        status, headers, body = self.answer(offset)
        return FileStream(FakeResponse(body, status, headers), offset)


def honest(offset, data=DATA):
    if not offset:
        return 200, {'Content-Length': str(len(data))}, data
    return 206, {'Content-Length': str(len(data) - offset),
                 'Content-Range': 'bytes %d-%d/%d' % (offset, len(data) - 1, len(data))}, data[offset:]


def found(client, sha1=True):
    files = {'size': len(DATA), 'compression': 'gzip'}
    if sha1:
        files['sha1'] = hashlib.sha1(DATA).hexdigest()
    m = {'v': 2, 'uuid': U1, 'files': [files]}
    return Found(client.source, client, m, m)


def store_with_partial(tmp_path, data):
    store = MirrorStore(str(tmp_path / 'm'))
    store.check_image_dir(U1)
    with open(store.file_of(U1, 'file.partial'), 'wb') as f:
        f.write(data)
    return store


def read(path):
    with open(path, 'rb') as f:
        return f.read()


def no_pause(seconds):
    return None


# ---- resuming ----

def test_a_resume_answered_with_bytes_from_elsewhere_starts_over_instead_of_failing_every_run(tmp_path):
    """A server that answers Range with a 206 starting past the byte asked would splice in the wrong bytes; the
    importer's rule refuses it as a broken connection. For the mirror that would fail every later run the same
    way (the partial stays, is resumed, is refused): the file must be downloaded once from the start instead."""
    store = store_with_partial(tmp_path, DATA[:3000])

    def answer(offset):
        if not offset:
            return honest(0)
        return 206, {'Content-Length': str(len(DATA) - 5000),
                     'Content-Range': 'bytes 5000-%d/%d' % (len(DATA) - 1, len(DATA))}, DATA[5000:]
    client = Hostile(answer)
    stored, downloaded = fetch(store, found(client), 0, no_pause)
    assert client.offsets == [3000, 0]
    assert read(store.file_of(U1)) == DATA and downloaded == len(DATA)
    assert not os.path.exists(store.file_of(U1, 'file.partial'))


def test_a_resume_with_a_malformed_content_range_starts_over(tmp_path):
    store = store_with_partial(tmp_path, DATA[:3000])

    def answer(offset):
        if not offset:
            return honest(0)
        return 206, {'Content-Length': str(len(DATA) - 3000), 'Content-Range': 'bytes lots'}, DATA[3000:]
    client = Hostile(answer)
    fetch(store, found(client), 0, no_pause)
    assert client.offsets == [3000, 0] and read(store.file_of(U1)) == DATA


def test_a_resume_answered_with_earlier_bytes_skips_to_the_byte_asked(tmp_path):
    store = store_with_partial(tmp_path, DATA[:3000])

    def answer(offset):
        return 206, {'Content-Length': str(len(DATA) - 1000),
                     'Content-Range': 'bytes 1000-%d/%d' % (len(DATA) - 1, len(DATA))}, DATA[1000:]
    client = Hostile(answer)
    stored, downloaded = fetch(store, found(client), 0, no_pause)
    assert client.offsets == [3000] and read(store.file_of(U1)) == DATA
    assert downloaded == len(DATA) - 3000


def test_a_resume_refused_with_416_starts_over(tmp_path):
    store = store_with_partial(tmp_path, DATA[:3000])

    def answer(offset):
        if offset:
            raise SourceError('http://up.example.com/images/%s/file answered HTTP 416: range' % U1, status=416)
        return honest(0)
    client = Hostile(answer)
    fetch(store, found(client), 0, no_pause)
    assert client.offsets == [3000, 0] and read(store.file_of(U1)) == DATA


def test_an_unreachable_server_at_resume_keeps_the_partial_for_the_next_run(tmp_path):
    """A network failure says nothing about the bytes already kept: they must stay for the next run to resume,
    not be thrown away for a download from byte 0 that cannot happen either."""
    store = store_with_partial(tmp_path, DATA[:3000])

    def answer(offset):
        raise SourceError('http://up.example.com/images/%s/file could not be reached after 1 attempt(s): '
                          'timed out' % U1)
    client = Hostile(answer)
    with pytest.raises(SourceError, match='could not be reached'):
        fetch(store, found(client), 0, no_pause)
    assert read(store.file_of(U1, 'file.partial')) == DATA[:3000]
    assert not os.path.exists(store.file_of(U1))


def test_a_resume_that_breaks_again_keeps_what_arrived(tmp_path):
    store = store_with_partial(tmp_path, DATA[:3000])

    def answer(offset):
        status, headers, body = honest(offset)
        return status, headers, body[:2000]      # Content-Length says more: the body is cut
    client = Hostile(answer)
    with pytest.raises(DownloadError, match='broke off after 7000'):
        fetch(store, found(client), 1, no_pause)
    assert read(store.file_of(U1, 'file.partial')) == DATA[:7000]
    assert client.offsets == [3000, 5000]
    # the next run, against an honest server, takes only the rest
    client = Hostile()
    stored, downloaded = fetch(store, found(client), 0, no_pause)
    assert client.offsets == [7000] and downloaded == len(DATA) - 7000 and read(store.file_of(U1)) == DATA


def test_a_resumed_file_that_changed_upstream_is_downloaded_again_from_the_start(tmp_path):
    """The partial's bytes hash right so far, but the server now sends other bytes after them: the SHA-1 of the
    whole file fails, and the download starts over once (not spliced, not kept)."""
    store = store_with_partial(tmp_path, DATA[:3000])
    other = DATA[:3000] + bytes(len(DATA) - 3000)
    calls = []

    def answer(offset):
        calls.append(offset)
        return honest(offset, other if offset else DATA)
    client = Hostile(answer)
    stored, downloaded = fetch(store, found(client), 0, no_pause)
    assert client.offsets == [3000, 0] and read(store.file_of(U1)) == DATA


def test_a_whole_partial_that_hashes_right_asks_for_nothing(tmp_path):
    store = store_with_partial(tmp_path, DATA)
    client = Hostile(lambda offset: pytest.fail('asked for bytes at %d' % offset))
    stored, downloaded = fetch(store, found(client), 0, no_pause)
    assert downloaded == 0 and read(store.file_of(U1)) == DATA


def test_a_whole_partial_that_hashes_wrong_is_downloaded_again(tmp_path):
    store = store_with_partial(tmp_path, bytes(len(DATA)))
    client = Hostile()
    fetch(store, found(client), 0, no_pause)
    assert client.offsets == [0] and read(store.file_of(U1)) == DATA


def test_without_a_sha1_a_partial_is_never_trusted(tmp_path):
    """Content-MD5 covers a whole answer only: the bytes kept cannot be checked, so they are not resumed."""
    import base64
    store = store_with_partial(tmp_path, DATA[:3000])
    md5 = base64.b64encode(hashlib.md5(DATA).digest()).decode()

    def answer(offset):
        status, headers, body = honest(offset)
        return status, dict(headers, **{'Content-MD5': md5}), body
    client = Hostile(answer)
    stored, downloaded = fetch(store, found(client, sha1=False), 0, no_pause)
    assert client.offsets == [0] and stored['files'][0]['sha1'] == hashlib.sha1(DATA).hexdigest()


# ---- a server that lies about the file ----

def test_wrong_bytes_leave_nothing_served_nor_kept(tmp_path):
    store = MirrorStore(str(tmp_path / 'm'))
    bad = DATA[:HALF] + bytes([DATA[HALF] ^ 0xFF]) + DATA[HALF + 1:]
    client = Hostile(lambda offset: honest(offset, bad))
    with pytest.raises(DownloadError, match='checksum'):
        fetch(store, found(client), 0, no_pause)
    assert os.listdir(store.image_dir(U1)) == []


@pytest.mark.parametrize('length', [len(DATA) - 1, len(DATA) + 1, 0])
def test_a_content_length_other_than_the_manifest_size_is_refused_unread(tmp_path, length):
    store = MirrorStore(str(tmp_path / 'm'))
    client = Hostile(lambda offset: (200, {'Content-Length': str(length)}, DATA))
    with pytest.raises(DownloadError, match='Content-Length %d' % length):
        fetch(store, found(client), 0, no_pause)
    assert os.listdir(store.image_dir(U1)) == []


@pytest.mark.parametrize('length', [None, '-5', '1e3', '12, 12'])
def test_a_missing_or_odd_content_length_is_refused_unread(tmp_path, length):
    store = MirrorStore(str(tmp_path / 'm'))
    client = Hostile(lambda offset: (200, {} if length is None else {'Content-Length': length}, DATA))
    with pytest.raises(DownloadError, match='Content-Length'):
        fetch(store, found(client), 0, no_pause)
    assert os.listdir(store.image_dir(U1)) == []


def test_a_body_longer_than_its_content_length_stops_at_the_size(tmp_path):
    store = MirrorStore(str(tmp_path / 'm'))
    client = Hostile(lambda offset: (200, {'Content-Length': str(len(DATA))}, DATA + b'trailing junk'))
    fetch(store, found(client), 0, no_pause)
    assert read(store.file_of(U1)) == DATA


def test_a_short_body_keeps_the_partial_and_serves_nothing(tmp_path):
    store = MirrorStore(str(tmp_path / 'm'))
    client = Hostile(lambda offset: (200, {'Content-Length': str(len(DATA))}, DATA[:HALF]))
    with pytest.raises(DownloadError, match='broke off after %d' % HALF):
        fetch(store, found(client), 0, no_pause)
    assert sorted(os.listdir(store.image_dir(U1))) == ['file.partial']
    assert read(store.file_of(U1, 'file.partial')) == DATA[:HALF]


def test_a_missing_content_md5_without_sha1_is_refused(tmp_path):
    store = MirrorStore(str(tmp_path / 'm'))
    client = Hostile()
    with pytest.raises(DownloadError, match='no Content-MD5'):
        fetch(store, found(client, sha1=False), 0, no_pause)
    assert os.listdir(store.image_dir(U1)) == []


# ---- the mirror directory in odd states ----

def test_a_file_symlinked_outside_is_withdrawn_without_touching_its_target(tmp_path):
    store = MirrorStore(str(tmp_path / 'm'))
    store.check_image_dir(U1)
    target = tmp_path / 'precious'
    target.write_bytes(DATA)
    os.symlink(str(target), store.file_of(U1))
    m = dict(found(Hostile()).manifest, name='n', version='1', state='active', type='zone-dataset')
    with open(store.file_of(U1, 'manifest.json'), 'wb') as f:
        from ansible_collections.smartos.images.plugins.module_utils._mirror_store import serialize
        f.write(serialize(m))
    store.scan()
    assert U1 in store.broken and 'not a regular file' in store.broken[U1]
    store.withdraw(U1)
    assert target.read_bytes() == DATA and os.listdir(store.image_dir(U1)) == []


def test_an_image_directory_symlinked_outside_is_refused_not_written_through(tmp_path):
    outside = tmp_path / 'outside'
    outside.mkdir()
    store = MirrorStore(str(tmp_path / 'm'))
    store.create(images=True)
    os.symlink(str(outside), store.image_dir(U1))
    store.scan()
    assert store.stray == [U1]
    with pytest.raises(ImageError, match='symlink'):
        fetch(store, found(Hostile()), 0, no_pause)
    assert os.listdir(str(outside)) == []


def test_a_partial_that_is_a_directory_is_a_clear_error(tmp_path):
    store = MirrorStore(str(tmp_path / 'm'))
    store.check_image_dir(U1)
    os.mkdir(store.file_of(U1, 'file.partial'))
    with pytest.raises(ImageError, match='file.partial'):
        fetch(store, found(Hostile()), 0, no_pause)


def test_a_partial_symlinked_outside_is_not_resumed_through(tmp_path):
    """A partial that is a symlink counts as no partial (its size is not read through it), and is replaced."""
    store = MirrorStore(str(tmp_path / 'm'))
    store.check_image_dir(U1)
    target = tmp_path / 'precious'
    target.write_bytes(DATA[:3000])
    os.symlink(str(target), store.file_of(U1, 'file.partial'))
    client = Hostile()
    fetch(store, found(client), 0, no_pause)
    assert client.offsets == [0] and target.read_bytes() == DATA[:3000]
    assert not os.path.islink(store.file_of(U1)) and read(store.file_of(U1)) == DATA
