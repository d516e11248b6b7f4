# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_mirror.py and _mirror_fetch.py: sources, the plan, one file's fetch."""

from __future__ import annotations

import hashlib
import json
import os
import types

import pytest

from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, InvalidParameter
from ansible_collections.smartos.images.plugins.module_utils._http_body import FileStream
from ansible_collections.smartos.images.plugins.module_utils._imgapi import DsapiClient, ImageServerClient
from ansible_collections.smartos.images.plugins.module_utils._mirror import ImageMirror, MirrorResolver, mirror_source
from ansible_collections.smartos.images.plugins.module_utils import _mirror_store
from ansible_collections.smartos.images.plugins.module_utils._mirror_fetch import fetch
from ansible_collections.smartos.images.plugins.module_utils._mirror_store import MirrorStore
from ansible_collections.smartos.images.plugins.module_utils._resolver import Found
from ansible_collections.smartos.images.plugins.module_utils._urls import ImageSource
from ansible_collections.smartos.images.tests.unit.fakehost import FakeResponse

U1 = '2f1dc911-6401-4fa4-8e9d-67ea2e39c271'
U2 = 'c58161c0-2547-11e2-a75e-9fdca1940570'
DATA = bytes(range(256)) * 40


def params(**changes):
    values = dict(path='/nonexistent', images=[], source=['http://up.example.com'], validate_certs=True,
                  ca_path=None, timeout=30, retries=0, state='present', prune=False)
    values.update(changes)
    return values


@pytest.mark.parametrize('url, kind', [
    ('http://up.example.com', 'imgapi'), ('https://ds.example.com/datasets', 'dsapi'),
    ('https://ds.example.com/datasets/', 'dsapi'), ('https://ds.example.com/datasets-old', 'imgapi'),
])
def test_a_source_is_dsapi_when_its_path_ends_in_datasets(url, kind):
    assert mirror_source(url).type == kind


@pytest.mark.parametrize('url', ['https://registry-1.docker.io', 'https://docker.io/', 'https://reg.example/v2/'])
def test_a_docker_registry_is_refused(url):
    with pytest.raises(InvalidParameter, match='docker registry'):
        mirror_source(url)


def test_the_resolver_asks_the_given_sources_with_the_server_options():
    made = []
    sources = [mirror_source('http://a.example'), mirror_source('http://b.example/datasets')]
    resolver = MirrorResolver(params(timeout=7), sources, lambda source, **kw: made.append((source, kw)) or source)
    assert resolver.sources('x') == sources
    resolver.client(sources[1])
    assert made == [(sources[1], dict(validate_certs=True, ca_path=None, timeout=7, retries=0))]


@pytest.mark.parametrize('changes, message', [
    (dict(source=[]), 'at least one'), (dict(timeout=0), 'timeout'), (dict(retries=-1), 'retries'),
    (dict(state='absent', prune=True), 'one or the other'), (dict(images=[{'uuid': U1.upper()}]), 'lower-case'),
    (dict(images=[{'uuid': U1, 'name': 'x'}]), 'exactly one'), (dict(images=[{'name': 'x', 'version': 1.10}]), 'quote'),
    (dict(source=['ftp://x.example']), 'http'),
])
def test_bad_parameters_are_refused_before_anything_is_asked(changes, message):
    with pytest.raises(InvalidParameter, match=message):
        ImageMirror(params(**changes), client_factory=lambda *a, **k: pytest.fail('asked'))


def put_image(root, uuid, origin=None):
    folder = os.path.join(root, 'images', uuid)
    os.makedirs(folder)
    m = {'v': 2, 'uuid': uuid, 'name': 'n', 'version': '1', 'state': 'active', 'type': 'zone-dataset',
         'files': [{'sha1': hashlib.sha1(DATA).hexdigest(), 'size': len(DATA), 'compression': 'gzip'}]}
    if origin:
        m['origin'] = origin
    with open(os.path.join(folder, 'manifest.json'), 'w') as f:
        json.dump(m, f)
    with open(os.path.join(folder, 'file'), 'wb') as f:
        f.write(DATA)


def test_a_loop_of_origins_on_disk_is_an_error_not_a_hang(tmp_path):
    put_image(str(tmp_path), U1, origin=U2)
    put_image(str(tmp_path), U2, origin=U1)
    mirror = ImageMirror(params(path=str(tmp_path), images=[{'uuid': U1}]), check_mode=True,
                         client_factory=lambda *a, **k: pytest.fail('asked'))
    with pytest.raises(ImageError, match='loops'):
        mirror.run()


def test_absent_of_an_image_not_mirrored_asks_nothing_and_changes_nothing(tmp_path):
    put_image(str(tmp_path), U2)
    mirror = ImageMirror(params(path=str(tmp_path), images=[{'uuid': U1}, {'name': 'other'}], state='absent'),
                         client_factory=lambda *a, **k: pytest.fail('asked'))
    result = mirror.run()
    assert result['removed'] == [] and [k['uuid'] for k in result['kept']] == [U2]


# ---- one file ----

class Client:
    """A client whose open_file serves DATA (with Range unless ignore_range), recording each offset."""

    def __init__(self, data=DATA, ignore_range=False):
        self.source = ImageSource('http://up.example.com')
        self.data, self.ignore_range, self.offsets = data, ignore_range, []

    def open_file(self, uuid, offset=0):
        self.offsets.append(offset)
        headers = {'Content-Length': str(len(self.data))}
        body, status = self.data, 200
        if offset and not self.ignore_range:
            body, status = self.data[offset:], 206
            headers = {'Content-Length': str(len(body)),
                       'Content-Range': 'bytes %d-%d/%d' % (offset, len(self.data) - 1, len(self.data))}
        return FileStream(FakeResponse(body, status, headers), offset)


def found(client):
    m = {'v': 2, 'uuid': U1, 'files': [{'sha1': hashlib.sha1(DATA).hexdigest(), 'size': len(DATA),
                                       'compression': 'gzip'}]}
    return Found(client.source, client, m, m)


def test_a_symlinked_partial_is_replaced_not_written_through(tmp_path):
    store = MirrorStore(str(tmp_path / 'm'))
    store.check_image_dir(U1)
    target = tmp_path / 'precious'
    target.write_bytes(b'do not touch')
    os.symlink(str(target), store.file_of(U1, 'file.partial'))
    client = Client()
    stored, downloaded = fetch(store, found(client), 0, lambda s: None)
    assert target.read_bytes() == b'do not touch'
    assert downloaded == len(DATA) and client.offsets == [0]
    with open(store.file_of(U1), 'rb') as f:
        assert f.read() == DATA


@pytest.mark.parametrize('ignore_range', [False, True])
def test_a_partial_is_resumed_at_its_end(tmp_path, ignore_range):
    store = MirrorStore(str(tmp_path))
    store.check_image_dir(U1)
    with open(store.file_of(U1, 'file.partial'), 'wb') as f:
        f.write(DATA[:3000])
    client = Client(ignore_range=ignore_range)
    stored, downloaded = fetch(store, found(client), 0, lambda s: None)
    assert client.offsets == [3000] and downloaded == len(DATA) - 3000
    assert stored == found(client).manifest and U1 in store.complete


def test_a_partial_longer_than_the_file_starts_over(tmp_path):
    store = MirrorStore(str(tmp_path))
    store.check_image_dir(U1)
    with open(store.file_of(U1, 'file.partial'), 'wb') as f:
        f.write(DATA + b'more')
    client = Client()
    fetch(store, found(client), 0, lambda s: None)
    assert client.offsets == [0]


def test_dsapi_client_is_made_for_a_datasets_url():
    assert isinstance(MirrorResolver(params(), [mirror_source('http://d.example/datasets')]).client(
        mirror_source('http://d.example/datasets')), DsapiClient)
    client = MirrorResolver(params(), []).client(mirror_source('http://i.example'))
    assert isinstance(client, ImageServerClient) and not isinstance(client, DsapiClient)


# ---- verify: a kept file hashed ----

def mirrored(root, uuid=U1):
    put_image(root, uuid)
    store = MirrorStore(root).scan()
    return store, store.complete[uuid].manifest


def test_a_sound_file_has_no_damage_and_is_read_in_bounded_chunks(tmp_path, monkeypatch):
    store, manifest = mirrored(str(tmp_path))
    monkeypatch.setattr(_mirror_store, 'HASH_CHUNK', 1000)
    reads = []

    class Recorded:
        def __init__(self):
            self.real = hashlib.sha1()

        def update(self, data):
            reads.append(len(data))
            self.real.update(data)

        def hexdigest(self):
            return self.real.hexdigest()

    monkeypatch.setattr(_mirror_store, 'hashlib', types.SimpleNamespace(sha1=Recorded))
    assert store.file_damage(U1, manifest) is None
    assert sum(reads) == len(DATA) and max(reads) == 1000


def _grow(path):
    with open(path, 'ab') as f:
        f.write(b'x')


def _symlinked(path):
    os.unlink(path)
    os.symlink('/etc/hostname', path)


@pytest.mark.parametrize('change, why', [
    (lambda p: _flip(p, 7), 'the SHA-1 of its file is'), (os.unlink, 'its file is missing'),
    (_grow, 'its file is %d bytes' % (len(DATA) + 1)), (_symlinked, 'its file cannot be read'),
])
def test_a_damaged_file_says_why(tmp_path, change, why):
    store, manifest = mirrored(str(tmp_path))
    change(store.file_of(U1))
    assert why in store.file_damage(U1, manifest)


def _flip(path, at):
    with open(path, 'r+b') as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 1]))


def test_check_mode_verify_hashes_and_asks_only_about_the_damaged_image(tmp_path):
    root = str(tmp_path)
    put_image(root, U1)
    put_image(root, U2)
    _flip(os.path.join(root, 'images', U1, 'file'), 0)
    asked = []

    class Upstream:
        source = ImageSource('http://up.example.com')

        def get_image(self, uuid):
            asked.append(uuid)
            return dict(MirrorStore(root).scan().complete[uuid].manifest, uuid=uuid)

        def open_file(self, uuid, offset=0):
            pytest.fail('a file asked in check mode')

    before = {n: os.stat(os.path.join(d, n)).st_mtime_ns for d, ds, ns in os.walk(root) for n in ns}
    mirror = ImageMirror(params(path=root, verify=True), check_mode=True, client_factory=lambda *a, **k: Upstream())
    result = mirror.run(diff=True)
    assert asked == [U1] and [r['uuid'] for r in result['repaired']] == [U1] and result['changed']
    assert [k['uuid'] for k in result['kept']] == [U2]
    assert {n: os.stat(os.path.join(d, n)).st_mtime_ns for d, ds, ns in os.walk(root) for n in ns} == before


# ---- the listing's size ----

@pytest.mark.parametrize('over', [True, False])
def test_a_listing_larger_than_hosts_read_in_one_answer_is_warned_of(tmp_path, monkeypatch, over):
    """Hosts read at most PAGE_MAX_BYTES of one answer, and the mirror answers GET /images with its whole
    images.json: one byte over is warned of (naming the size and the limit), exactly the limit is not."""
    from ansible_collections.smartos.images.plugins.module_utils import _mirror
    root = str(tmp_path)
    put_image(root, U2)
    size = len(MirrorStore(root).scan().index())
    monkeypatch.setattr(_mirror, 'PAGE_MAX_BYTES', size - 1 if over else size)
    mirror = ImageMirror(params(path=root, images=[{'uuid': U1}], state='absent'),
                         client_factory=lambda *a, **k: pytest.fail('asked'))
    mirror.run()
    with open(os.path.join(root, 'images.json'), 'rb') as f:
        assert len(f.read()) == size
    said = [w for w in mirror.warnings if 'images.json' in w]
    if over:
        assert len(said) == 1 and '%d bytes' % size in said[0] and '%d bytes' % (size - 1) in said[0], said
        assert 'other sources only' in said[0]
    else:
        assert said == []
