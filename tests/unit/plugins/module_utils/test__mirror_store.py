# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_mirror_store.py: the mirror's layout, read as hostile."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError
from ansible_collections.smartos.images.plugins.module_utils._mirror_store import (
    MANIFEST_MAX, MirrorStore, ping_document, serialize, sort_key,
)

U1 = '2f1dc911-6401-4fa4-8e9d-67ea2e39c271'
U2 = 'c58161c0-2547-11e2-a75e-9fdca1940570'
DATA = b'image bytes' * 100


def manifest(uuid=U1, **extra):
    m = {'v': 2, 'uuid': uuid, 'name': 'n\u00e9', 'version': '1', 'state': 'active', 'type': 'zone-dataset',
         'published_at': '2024-01-01T00:00:00Z',
         'files': [{'sha1': hashlib.sha1(DATA).hexdigest(), 'size': len(DATA), 'compression': 'gzip'}]}
    m.update(extra)
    return m


def put(root, rel, data):
    path = os.path.join(str(root), rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data if isinstance(data, bytes) else json.dumps(data).encode())
    return path


def image(root, uuid=U1, m=None, data=DATA):
    put(root, 'images/%s/manifest.json' % uuid, manifest(uuid) if m is None else m)
    if data is not None:
        put(root, 'images/%s/file' % uuid, data)


def test_serialize_is_compact_utf8_in_key_order_without_newline():
    assert serialize({'b': 1, 'a': 'n\u00e9'}) == '{"b":1,"a":"n\u00e9"}'.encode('utf-8')
    assert ping_document() == b'{"ping":"pong","imgapi":true,"version":"0.1.0"}'


@pytest.mark.parametrize('raw, written', [
    (r'"a\ud800b"', r'"a\ud800b"'),                           # a lone high surrogate, as upstream escaped it
    (r'{"\udfff":"\udc00\ud800"}', r'{"\udfff":"\udc00\ud800"}'),   # in a key; a low before a high: no pair
    (r'"\ud83d\ude00 \u00e9"', '"\U0001f600 \u00e9"'),         # a pair is one character: UTF-8, as is the rest
])
def test_a_lone_surrogate_is_written_escaped_as_upstream_wrote_it(raw, written):
    """JSON lets a string hold a lone surrogate, which has no UTF-8 form: it is escaped again (as JSON.stringify
    does), everything else stays UTF-8, and what is written reads back as the same document."""
    document = json.loads(raw)
    assert serialize(document) == written.encode('utf-8')
    assert json.loads(serialize(document).decode('utf-8')) == document


def test_a_manifest_with_a_lone_surrogate_is_stored_and_read_back_whole(tmp_path):
    m = manifest(description=json.loads(r'"broken \ud800 half"'))
    store = MirrorStore(str(tmp_path))
    put(tmp_path, 'images/%s/file' % U1, DATA)
    store.commit_image(m, len(DATA))
    with open(store.file_of(U1, 'manifest.json'), 'rb') as f:
        assert b'"description":"broken \\ud800 half"' in f.read()
    again = MirrorStore(str(tmp_path)).scan()
    assert again.broken == {} and again.complete[U1].manifest == m
    assert json.loads(again.index()) == [m]


def test_the_index_is_sorted_by_published_at_then_uuid(tmp_path):
    image(tmp_path, U2)
    image(tmp_path, U1)
    early = '00000000-0000-4000-8000-000000000000'
    image(tmp_path, early, manifest(early, published_at='2020-01-01T00:00:00Z'))
    store = MirrorStore(str(tmp_path)).scan()
    assert [m['uuid'] for m in json.loads(store.index())] == ['00000000-0000-4000-8000-000000000000', U1, U2]
    assert sort_key({'uuid': U1, 'published_at': 5}) == ('', U1)


def test_a_missing_path_is_empty_and_a_file_path_is_refused(tmp_path):
    assert MirrorStore(str(tmp_path / 'none')).scan().complete == {}
    put(tmp_path, 'plain', b'x')
    with pytest.raises(ImageError, match='is not a directory'):
        MirrorStore(str(tmp_path / 'plain')).scan()


@pytest.mark.parametrize('raw, why', [
    (b'{"v": 2', 'cannot be read'),
    (b'\xff\xfe\x00', 'cannot be read'),
    (b'[1, 2]', 'cannot be read'),
    (b'[' * 100000 + b']' * 100000, 'cannot be read'),
    (b' ' * (MANIFEST_MAX + 1), 'cannot be read'),
    (json.dumps(manifest(U2)).encode(), 'unusable'),
    (json.dumps(manifest(files=[{'size': True}])).encode(), 'unusable'),
    (json.dumps(manifest(origin='../../etc')).encode(), 'unusable'),
    (json.dumps(dict(manifest(), v=1, creator_uuid=U2)).encode(), 'not a v2 manifest'),
    (json.dumps(manifest(files=[{'size': len(DATA), 'compression': 'gzip'}])).encode(), 'no files[0].sha1'),
    (json.dumps(manifest())[:-1].encode() + b', "x": NaN}', 'cannot be written as JSON'),
    (json.dumps(manifest(name=['x'])).encode(), 'not a string'),
])
def test_a_manifest_that_cannot_be_served_is_broken_with_why(tmp_path, raw, why):
    put(tmp_path, 'images/%s/manifest.json' % U1, raw)
    put(tmp_path, 'images/%s/file' % U1, DATA)
    store = MirrorStore(str(tmp_path)).scan()
    assert store.complete == {} and why in store.broken[U1]


def test_a_v1_manifest_on_disk_is_broken_not_served(tmp_path):
    v1 = {'uuid': U1, 'creator_uuid': U2, 'name': 'x', 'version': '1', 'type': 'zone-dataset',
          'files': [{'path': 'x.zfs.gz', 'sha1': hashlib.sha1(DATA).hexdigest(), 'size': len(DATA)}]}
    image(tmp_path, m=v1)
    assert 'not a v2 manifest' in MirrorStore(str(tmp_path)).scan().broken[U1]


@pytest.mark.parametrize('data, why', [(None, 'missing'), (DATA[:-1], 'is 1099 bytes, its manifest says 1100'),
                                       (DATA + b'x', 'is 1101 bytes')])
def test_a_file_that_is_not_the_manifest_size_is_broken(tmp_path, data, why):
    image(tmp_path, data=data)
    assert why in MirrorStore(str(tmp_path)).scan().broken[U1]


def test_a_file_that_is_a_symlink_or_a_directory_is_broken(tmp_path):
    image(tmp_path, data=None)
    os.symlink('/etc/hostname', str(tmp_path / 'images' / U1 / 'file'))
    image(tmp_path, U2, data=None)
    os.mkdir(str(tmp_path / 'images' / U2 / 'file'))
    store = MirrorStore(str(tmp_path)).scan()
    assert 'not a regular file' in store.broken[U1] and 'not a regular file' in store.broken[U2]


def test_strays_partials_orphans_and_leftovers_are_told_apart(tmp_path):
    image(tmp_path)
    put(tmp_path, 'images/NOT-A-UUID/file', b'x')
    put(tmp_path, 'images/%s' % U1.upper(), b'x')
    os.symlink(str(tmp_path), str(tmp_path / 'images' / '00000000-0000-4000-8000-000000000000'))
    put(tmp_path, 'images/%s/file.partial' % U2, b'abc')
    put(tmp_path, 'images/%s/.manifest.json.x1' % U1, b'{')
    put(tmp_path, '.images.json.x2', b'[')
    put(tmp_path, '.lock', b'')
    store = MirrorStore(str(tmp_path)).scan()
    assert list(store.complete) == [U1]
    assert sorted(store.stray) == sorted(['NOT-A-UUID', U1.upper(), '00000000-0000-4000-8000-000000000000'])
    assert store.partial == {U2} and store.orphans == set() and store.partial_size(U2) == 3
    assert sorted(os.path.basename(p) for p in store.leftovers) == ['.images.json.x2', '.manifest.json.x1']
    store.clean_leftovers()
    assert os.path.exists(str(tmp_path / '.lock'))
    assert not os.path.exists(str(tmp_path / '.images.json.x2'))


def test_withdraw_keeps_the_longer_bytes_as_the_partial(tmp_path):
    image(tmp_path, data=DATA[:500])
    put(tmp_path, 'images/%s/file.partial' % U1, DATA[:100])
    store = MirrorStore(str(tmp_path)).scan()
    store.withdraw(U1)
    assert sorted(os.listdir(str(tmp_path / 'images' / U1))) == ['file.partial']
    assert store.partial_size(U1) == 500 and U1 in store.partial


def test_adopting_a_symlinked_file_removes_the_link_only(tmp_path):
    target = put(tmp_path, 'outside', b'keep me')
    os.makedirs(str(tmp_path / 'm' / 'images' / U1))
    os.symlink(target, str(tmp_path / 'm' / 'images' / U1 / 'file'))
    store = MirrorStore(str(tmp_path / 'm')).scan()
    assert store.orphans == {U1}
    store.adopt_file(U1)
    assert os.listdir(str(tmp_path / 'm' / 'images' / U1)) == []
    with open(target, 'rb') as f:
        assert f.read() == b'keep me'


def test_an_image_dir_that_is_a_symlink_is_refused_for_a_download(tmp_path):
    os.makedirs(str(tmp_path / 'images'))
    os.symlink(str(tmp_path), str(tmp_path / 'images' / U1))
    with pytest.raises(ImageError, match='not a directory'):
        MirrorStore(str(tmp_path)).check_image_dir(U1)


def test_stale_documents_are_those_not_byte_equal(tmp_path):
    image(tmp_path)
    store = MirrorStore(str(tmp_path)).scan()
    assert sorted(store.stale_documents()) == ['images.json', 'ping.json']
    store.write_documents(store.stale_documents())
    assert store.stale_documents() == {}
    put(tmp_path, 'ping.json', ping_document() + b'\n')
    os.remove(str(tmp_path / 'images.json'))
    os.mkdir(str(tmp_path / 'images.json'))
    assert sorted(store.stale_documents()) == ['images.json', 'ping.json']
    with pytest.raises(ImageError, match='cannot write'):
        store.write_documents(store.stale_documents())


def test_remove_takes_the_manifest_first_then_the_directory(tmp_path):
    image(tmp_path)
    store = MirrorStore(str(tmp_path)).scan()
    store.remove(U1)
    assert os.listdir(str(tmp_path / 'images')) == [] and store.complete == {}
    store.remove(U1)   # gone already: nothing to do


@pytest.mark.parametrize('kind', ['symlink', 'dangling symlink', 'directory', 'fifo'])
def test_a_manifest_that_is_not_a_regular_file_is_broken_and_withdrawn(tmp_path, kind):
    """nginx follows no symlink and the module writes none: a manifest.json that is no regular file is not
    served, so the image is broken, whatever it points to; withdrawing it removes the link, not its target."""
    outside = put(tmp_path, 'outside/manifest.json', manifest())
    path = str(tmp_path / 'm' / 'images' / U1 / 'manifest.json')
    image(tmp_path / 'm', data=DATA, m=manifest())
    os.unlink(path)
    if kind == 'symlink':
        os.symlink(outside, path)
    elif kind == 'dangling symlink':
        os.symlink(str(tmp_path / 'nowhere'), path)
    elif kind == 'directory':
        os.mkdir(path)
    else:
        os.mkfifo(path)
    store = MirrorStore(str(tmp_path / 'm')).scan()
    assert store.complete == {} and store.broken == {U1: 'its manifest.json is not a regular file'}
    if kind != 'directory':
        store.withdraw(U1)
        assert sorted(os.listdir(str(tmp_path / 'm' / 'images' / U1))) == ['file.partial']
    assert os.path.isfile(outside) and not os.path.lexists(str(tmp_path / 'nowhere'))


def test_the_directories_the_store_makes_are_0755_under_umask_077(tmp_path):
    """nginx runs as another user: every directory the store makes (the mirror, missing parents of it,
    images/, images/<uuid>/) is walkable by all whatever the run's umask; one that was there keeps its mode."""
    mine = tmp_path / 'mine'
    mine.mkdir()
    os.chmod(str(mine), 0o750)
    store = MirrorStore(str(mine / 'deep' / 'mirror'))
    old = os.umask(0o077)
    try:
        store.create()
        store.create(images=True)
        store.check_image_dir(U1)
    finally:
        os.umask(old)
    for path in (mine / 'deep', mine / 'deep' / 'mirror', mine / 'deep' / 'mirror' / 'images',
                 mine / 'deep' / 'mirror' / 'images' / U1):
        assert os.stat(str(path)).st_mode & 0o777 == 0o755, (path, oct(os.stat(str(path)).st_mode))
    assert os.stat(str(mine)).st_mode & 0o777 == 0o750


def test_a_mirror_directory_the_user_made_keeps_its_mode(tmp_path):
    root = tmp_path / 'm'
    root.mkdir()
    os.chmod(str(root), 0o700)
    (root / 'images').mkdir()
    os.chmod(str(root / 'images'), 0o711)
    store = MirrorStore(str(root))
    store.create()
    store.create(images=True)
    assert os.stat(str(root)).st_mode & 0o777 == 0o700 and os.stat(str(root / 'images')).st_mode & 0o777 == 0o711


def test_a_mirror_path_that_is_a_file_is_still_refused_on_create(tmp_path):
    put(tmp_path, 'm', b'x')
    with pytest.raises(ImageError, match='cannot create'):
        MirrorStore(str(tmp_path / 'm')).create(images=True)
