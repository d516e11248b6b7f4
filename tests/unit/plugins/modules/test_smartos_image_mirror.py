# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""smartos_image_mirror main() end to end over a fake upstream behind the Request that ImageServerClient opens
(Range, Content-MD5 and cut connections as a real server sends them); the mirror is a real directory."""

from __future__ import annotations

import base64
import copy
import email.message
import hashlib
import io
import json
import os
import random
import subprocess
import sys
from urllib.error import HTTPError

import pytest

from ansible_collections.smartos.images.plugins.module_utils import _imgapi, _mirror_store
from ansible_collections.smartos.images.plugins.modules import smartos_image_mirror
from ansible_collections.smartos.images.tests.unit.fakehost import FakeResponse, FakeServers, warnings_of

SRC = 'http://up.example.com'
OWNER = '930896af-bf8c-48d4-885c-6573a94b1853'
BASE = 'c58161c0-2547-11e2-a75e-9fdca1940570'
CHILD = '2f1dc911-6401-4fa4-8e9d-67ea2e39c271'
OTHER = '7b5981c4-1889-11e7-b4c5-3f3bdfc9b88b'
FILES = {u: random.Random(u).randbytes(30000 + i * 1000) for i, u in enumerate((BASE, CHILD, OTHER))}


def manifest(uuid, name, version, published, origin=None, **extra):
    data = FILES[uuid]
    m = {'v': 2, 'uuid': uuid, 'owner': OWNER, 'name': name, 'version': version, 'state': 'active',
         'disabled': False, 'public': True, 'published_at': published, 'type': 'zone-dataset', 'os': 'smartos',
         'files': [{'sha1': hashlib.sha1(data).hexdigest(), 'size': len(data), 'compression': 'gzip'}]}
    if origin:
        m['origin'] = origin
    m.update(extra)
    return m


M_BASE = manifest(BASE, 'base-64', '1.0', '2024-01-01T00:00:00Z')
M_CHILD = manifest(CHILD, 'base-64', '2.0', '2024-06-01T00:00:00Z', origin=BASE)
M_OTHER = manifest(OTHER, 'minimal-64', '1.0', '2023-01-01T00:00:00Z')


class Upstream(FakeServers):
    """conftest's fake image servers (routes, the request log) with what a real one does for an image file: Range,
    Content-MD5, and a connection cut once after some bytes; DSAPI file URLs count as files too."""

    def __init__(self):
        super().__init__()
        self.ranges = []
        self.ignore_range = False
        self.cut = {}          # uuid -> bytes after which the next file answer breaks off (once)
        self.md5 = True

    def offer(self, m, data=None, base=SRC):
        self.image(base, m, FILES[m['uuid']] if data is None else data)

    def listing(self, manifests, base=SRC):
        self.serve('%s/images' % base, manifests)

    @staticmethod
    def is_file(url):
        path = url.split('?')[0]
        return path.endswith('/file') or '/datasets/' in path and path.count('/') > 5

    def file_requests(self):
        return [u for u in self.requests if self.is_file(u)]

    def open(self, method, url, headers=None, decompress=True):
        body = super().open(method, url, headers, decompress).read()   # logged; a 404 HTTPError without a route
        status, headers_out = 200, {}
        wanted = (headers or {}).get('Range')
        if self.is_file(url):
            self.ranges.append(wanted)
            if wanted and not self.ignore_range:
                start = int(wanted.split('=')[1].rstrip('-'))
                headers_out['Content-Range'] = 'bytes %d-%d/%d' % (start, len(body) - 1, len(body))
                body, status = body[start:], 206
            elif self.md5:
                headers_out['Content-MD5'] = base64.b64encode(hashlib.md5(body).digest()).decode()
        headers_out['Content-Length'] = str(len(body))
        uuid = url.split('/')[-2]
        if uuid in self.cut and status == 200:
            body = body[:self.cut.pop(uuid)]
        return FakeResponse(body, status, headers_out)


@pytest.fixture
def up(monkeypatch):
    fake = Upstream()
    monkeypatch.setattr(_imgapi, 'Request', fake)
    monkeypatch.setattr('time.sleep', lambda seconds: None)
    return fake


@pytest.fixture
def mirror_dir(tmp_path):
    return str(tmp_path / 'mirror')


@pytest.fixture
def run(run_module, mirror_dir):
    """run(check=False, diff=True, **args) -> smartos_image_mirror's result (conftest's run_module)."""

    def runner(check=False, diff=True, **args):
        args.setdefault('path', mirror_dir)
        args.setdefault('source', [SRC])
        args.setdefault('retries', 0)
        return run_module(smartos_image_mirror, check=check, diff=diff, **args)

    return runner


def tree(root):
    """Every file under root with its bytes."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            with open(path, 'rb') as f:
                found[os.path.relpath(path, root)] = f.read()
    return found


def read(root, *parts):
    with open(os.path.join(root, *parts), 'rb') as f:
        return f.read()


def offer_chain(up):
    for m in (M_BASE, M_CHILD, M_OTHER):
        up.offer(m)


# ---- mirroring ----

def test_mirrors_an_image_with_its_origin_in_the_layout(up, run, mirror_dir):
    offer_chain(up)
    result = run(images=[{'uuid': CHILD}])
    assert result['changed'] is True
    assert [a['uuid'] for a in result['added']] == [BASE, CHILD]
    assert result['added'][1] == {'uuid': CHILD, 'name': 'base-64', 'version': '2.0', 'bytes': len(FILES[CHILD])}
    assert result['bytes'] == len(FILES[BASE]) + len(FILES[CHILD])
    assert result['images'] == sorted([BASE, CHILD]) and result['kept'] == [] and result['removed'] == []
    files = tree(mirror_dir)
    assert files['images/%s/file' % CHILD] == FILES[CHILD]
    assert files['images/%s/manifest.json' % CHILD] == json.dumps(M_CHILD, separators=(',', ':')).encode()
    assert json.loads(files['images.json']) == [M_BASE, M_CHILD]   # published_at order
    assert files['ping.json'] == b'{"ping":"pong","imgapi":true,"version":"%s"}' % _mirror_store.COLLECTION_VERSION.encode()
    assert sorted(f for f in files if not f.startswith('images/')) == ['.lock', 'images.json', 'ping.json']
    assert result['diff'] == {'before': {'images': []},
                              'after': {'images': sorted(['%s base-64@1.0' % BASE, '%s base-64@2.0' % CHILD])}}


def test_a_second_run_asks_upstream_nothing_and_changes_nothing(up, run, mirror_dir):
    offer_chain(up)
    run(images=[{'uuid': CHILD}])
    before = tree(mirror_dir)
    up.requests.clear()
    result = run(images=[{'uuid': CHILD}])
    assert result['changed'] is False and result['added'] == [] and result['bytes'] == 0
    assert up.requests == []
    assert [k['uuid'] for k in result['kept']] == sorted([BASE, CHILD])
    assert result['kept'][0]['bytes'] == len(FILES[CHILD])
    assert tree(mirror_dir) == before


def test_check_mode_downloads_and_writes_nothing_and_predicts_the_run(up, run, mirror_dir):
    offer_chain(up)
    check = run(check=True, images=[{'uuid': CHILD}])
    assert not os.path.exists(mirror_dir) and up.file_requests() == []
    real = run(images=[{'uuid': CHILD}])
    for key in ('changed', 'added', 'removed', 'kept', 'images', 'diff'):
        assert check[key] == real[key], key
    assert check['bytes'] == 0
    again = run(check=True, images=[{'uuid': CHILD}])
    assert again['changed'] is False


def test_an_origin_already_mirrored_is_not_fetched_again(up, run):
    offer_chain(up)
    run(images=[{'uuid': BASE}])
    up.requests.clear()
    result = run(images=[{'uuid': CHILD}])
    assert [a['uuid'] for a in result['added']] == [CHILD]
    assert up.file_requests() == ['%s/images/%s/file' % (SRC, CHILD)]
    assert [k['uuid'] for k in result['kept']] == [BASE]


def test_a_name_resolves_to_the_newest_active_on_the_client_side(up, run):
    """The listing ignores the query (as a static mirror does): the client-side rule picks the image."""
    offer_chain(up)
    newer_disabled = dict(M_OTHER, uuid='11111111-2222-4333-8444-555555555555', name='base-64', version='9',
                          state='disabled', published_at='2025-01-01T00:00:00Z')
    up.listing([M_OTHER, M_BASE, M_CHILD, newer_disabled])
    result = run(images=[{'name': 'base-64'}])
    assert [a['uuid'] for a in result['added']] == [BASE, CHILD]
    assert run(images=[{'name': 'base-64', 'version': '1.0'}])['changed'] is False


def test_a_name_without_a_match_fails_clearly(up, run):
    up.listing([M_OTHER])
    result = run(images=[{'name': 'nothing-like-it'}])
    assert result['failed'] and 'no active image named "nothing-like-it"' in result['msg']


# ---- checks of what arrives ----

def test_a_corrupt_file_leaves_nothing_under_the_final_name(up, run, mirror_dir):
    bad = bytearray(FILES[OTHER])
    bad[100] ^= 0xFF
    up.offer(M_OTHER, bytes(bad))
    result = run(images=[{'uuid': OTHER}])
    assert result['failed'] and 'checksum (sha1) error' in result['msg']
    assert sorted(tree(mirror_dir)) == ['.lock', 'images.json', 'ping.json']
    assert read(mirror_dir, 'images.json') == b'[]'


def test_a_content_length_that_is_not_the_manifest_size_is_refused(up, run, mirror_dir):
    up.offer(M_OTHER, FILES[OTHER] + b'x')
    result = run(images=[{'uuid': OTHER}])
    assert result['failed'] and 'Content-Length' in result['msg']
    assert not os.path.exists(os.path.join(mirror_dir, 'images', OTHER, 'file'))


def test_without_sha1_the_content_md5_checks_and_the_sha1_is_added(up, run, mirror_dir):
    bare = copy.deepcopy(M_OTHER)
    del bare['files'][0]['sha1']
    up.offer(bare)
    result = run(images=[{'uuid': OTHER}])
    assert result['changed'] and not result.get('failed')
    stored = json.loads(read(mirror_dir, 'images', OTHER, 'manifest.json'))
    assert stored['files'][0]['sha1'] == hashlib.sha1(FILES[OTHER]).hexdigest()


def test_without_sha1_or_content_md5_nothing_is_stored(up, run, mirror_dir):
    bare = copy.deepcopy(M_OTHER)
    del bare['files'][0]['sha1']
    up.offer(bare)
    up.md5 = False
    result = run(images=[{'uuid': OTHER}])
    assert result['failed'] and 'no Content-MD5' in result['msg']
    assert not os.path.exists(os.path.join(mirror_dir, 'images', OTHER, 'manifest.json'))


def test_a_broken_connection_is_resumed_within_the_run(up, run, mirror_dir):
    up.offer(M_OTHER)
    up.cut[OTHER] = 10000
    result = run(images=[{'uuid': OTHER}], retries=2)
    assert not result.get('failed') and result['bytes'] == len(FILES[OTHER])
    assert up.ranges == [None, 'bytes=10000-']
    assert read(mirror_dir, 'images', OTHER, 'file') == FILES[OTHER]


def test_a_break_past_the_retries_keeps_the_partial_and_the_next_run_resumes(up, run, mirror_dir):
    up.offer(M_OTHER)
    up.cut[OTHER] = 12345
    failed = run(images=[{'uuid': OTHER}])
    assert failed['failed'] and 'broke off after 12345' in failed['msg']
    assert os.path.getsize(os.path.join(mirror_dir, 'images', OTHER, 'file.partial')) == 12345
    up.ranges.clear()
    result = run(images=[{'uuid': OTHER}])
    assert up.ranges == ['bytes=12345-']
    assert result['bytes'] == len(FILES[OTHER]) - 12345
    assert read(mirror_dir, 'images', OTHER, 'file') == FILES[OTHER]
    assert not os.path.exists(os.path.join(mirror_dir, 'images', OTHER, 'file.partial'))


def write_partial(mirror_dir, uuid, data):
    os.makedirs(os.path.join(mirror_dir, 'images', uuid), exist_ok=True)
    with open(os.path.join(mirror_dir, 'images', uuid, 'file.partial'), 'wb') as f:
        f.write(data)


def test_a_resume_from_a_server_that_ignores_range_skips_what_is_there(up, run, mirror_dir):
    up.offer(M_OTHER)
    up.ignore_range = True
    write_partial(mirror_dir, OTHER, FILES[OTHER][:5000])
    result = run(images=[{'uuid': OTHER}])
    assert not result.get('failed') and up.ranges == ['bytes=5000-']
    assert read(mirror_dir, 'images', OTHER, 'file') == FILES[OTHER]


def test_a_complete_partial_is_checked_and_kept_without_a_file_request(up, run, mirror_dir):
    up.offer(M_OTHER)
    write_partial(mirror_dir, OTHER, FILES[OTHER])
    result = run(images=[{'uuid': OTHER}])
    assert result['changed'] and result['bytes'] == 0 and up.file_requests() == []
    assert read(mirror_dir, 'images', OTHER, 'file') == FILES[OTHER]


def test_a_resume_the_server_refuses_starts_over_in_the_same_run(up, run, mirror_dir, monkeypatch):
    up.offer(M_OTHER)
    write_partial(mirror_dir, OTHER, FILES[OTHER][:5000])
    answer = up.open

    def refuse_ranges(method, url, headers=None, decompress=True):
        if (headers or {}).get('Range'):
            up.ranges.append(headers['Range'])
            raise HTTPError(url, 416, 'Range Not Satisfiable', email.message.Message(), io.BytesIO(b''))
        return answer(method, url, headers, decompress)

    monkeypatch.setattr(up, 'open', refuse_ranges)
    result = run(images=[{'uuid': OTHER}])
    assert not result.get('failed') and up.ranges == ['bytes=5000-', None]
    assert result['bytes'] == len(FILES[OTHER]) and read(mirror_dir, 'images', OTHER, 'file') == FILES[OTHER]


def test_a_file_left_without_its_manifest_is_checked_not_downloaded(up, run, mirror_dir):
    up.offer(M_OTHER)
    write(mirror_dir, 'images/%s/file' % OTHER, FILES[OTHER])
    check = run(check=True, images=[])
    assert check['changed'] is True   # the file must stop being served until it is checked
    result = run(images=[{'uuid': OTHER}])
    assert result['changed'] and result['bytes'] == 0 and up.file_requests() == []
    assert read(mirror_dir, 'images', OTHER, 'manifest.json') == json.dumps(M_OTHER, separators=(',', ':')).encode()


def test_a_file_larger_than_the_free_space_is_refused_before_downloading(up, run, mirror_dir, monkeypatch):
    up.offer(M_OTHER)
    real = os.statvfs
    monkeypatch.setattr(os, 'statvfs', lambda p: type('S', (), {'f_bavail': 1, 'f_frsize': 4096})()
                        if 'images' in p else real(p))
    result = run(images=[{'uuid': OTHER}])
    assert result['failed'] and 'bytes free' in result['msg'] and up.file_requests() == []


@pytest.mark.parametrize('junk', [b'x' * 40000, b'y' * 31000 + b'z' * 1000])
def test_a_partial_that_is_not_the_image_is_downloaded_again(up, run, mirror_dir, junk):
    up.offer(M_OTHER)
    write_partial(mirror_dir, OTHER, junk)
    result = run(images=[{'uuid': OTHER}])
    assert not result.get('failed') and up.ranges == [None]
    assert read(mirror_dir, 'images', OTHER, 'file') == FILES[OTHER]


def test_a_partial_with_wrong_bytes_is_downloaded_again_from_the_start(up, run, mirror_dir):
    up.offer(M_OTHER)
    write_partial(mirror_dir, OTHER, b'\0' * 1000)
    result = run(images=[{'uuid': OTHER}])
    assert not result.get('failed') and up.ranges == ['bytes=1000-', None]
    assert read(mirror_dir, 'images', OTHER, 'file') == FILES[OTHER]
    assert not os.path.exists(os.path.join(mirror_dir, 'images', OTHER, 'file.partial'))


def test_a_file_that_fails_its_checksum_twice_leaves_no_partial(up, run, mirror_dir):
    bad = bytearray(FILES[OTHER])
    bad[-1] ^= 0xFF
    up.offer(M_OTHER, bytes(bad))
    write_partial(mirror_dir, OTHER, FILES[OTHER][:1000])
    result = run(images=[{'uuid': OTHER}])
    assert result['failed'] and 'checksum (sha1) error' in result['msg']
    assert os.listdir(os.path.join(mirror_dir, 'images', OTHER)) == []


# ---- DSAPI upstream ----

def test_a_dsapi_manifest_is_stored_upgraded_without_its_file_url(up, run, mirror_dir):
    ds = 'http://ds.example.com'
    v1 = {'uuid': OTHER, 'name': 'minimal-64', 'version': '1.0', 'creator_uuid': OWNER, 'os': 'smartos',
          'type': 'zone-dataset', 'created_at': '2023-01-01T00:00Z', 'urn': 'sdc:sdc:minimal-64:1.0',
          'files': [{'path': 'minimal.zfs.gz', 'sha1': hashlib.sha1(FILES[OTHER]).hexdigest(),
                     'size': len(FILES[OTHER]), 'url': ds + '/datasets/%s/minimal.zfs.gz' % OTHER}]}
    up.serve(ds + '/datasets/' + OTHER, json.dumps(v1).encode())
    up.serve(ds + '/datasets/%s/minimal.zfs.gz' % OTHER, FILES[OTHER])
    result = run(images=[{'uuid': OTHER}], source=[ds + '/datasets'])
    assert not result.get('failed'), result
    stored = json.loads(read(mirror_dir, 'images', OTHER, 'manifest.json'))
    assert stored['v'] == 2 and stored['state'] == 'active' and stored['owner'] == OWNER
    assert stored['files'] == [{'sha1': v1['files'][0]['sha1'], 'size': len(FILES[OTHER]), 'compression': 'gzip'}]
    assert stored['published_at'] == '2023-01-01T00:00:00Z'


# ---- refused ----

def test_a_docker_image_is_refused(up, run, mirror_dir):
    up.offer(dict(M_OTHER, type='docker'))
    result = run(images=[{'uuid': OTHER}])
    assert result['failed'] and 'docker image' in result['msg']
    assert up.file_requests() == []


def test_a_docker_registry_source_is_refused(up, run):
    result = run(images=[{'uuid': OTHER}], source=['https://registry-1.docker.io'])
    assert result['failed'] and 'docker registry' in result['msg']
    assert up.requests == []


def test_prune_with_absent_is_refused(up, run):
    result = run(images=[{'uuid': OTHER}], state='absent', prune=True)
    assert result['failed'] and 'use one or the other' in result['msg']


@pytest.mark.parametrize('field, value', [('extra', 'NaN'), ('name', '5'), ('published_at', '[1]')])
def test_a_manifest_no_host_could_read_in_the_listing_is_refused(up, run, mirror_dir, field, value):
    body = json.dumps(M_OTHER)[:-1] + ', "%s": %s}' % (field, value)
    up.serve('%s/images/%s' % (SRC, OTHER), body.encode())
    up.serve('%s/images/%s/file' % (SRC, OTHER), FILES[OTHER])
    result = run(images=[{'uuid': OTHER}])
    assert result['failed'] and 'cannot be mirrored' in result['msg'] and up.file_requests() == []
    assert os.listdir(mirror_dir) == ['.lock']   # refused while planning: nothing written


def test_a_lone_surrogate_upstream_sent_is_mirrored_as_it_sent_it(up, run, mirror_dir):
    """A "\\ud800" in upstream's JSON is valid and reads as a lone surrogate, which UTF-8 cannot hold: the mirror
    writes the escape again (as IMGAPI does), reports the image (U+FFFD in its place: the controller refuses a result
    with a lone surrogate), and the next run reads it back unchanged."""
    body = json.dumps(M_OTHER)[:-1].replace('"minimal-64"', '"minimal-\\ud800"') + ', "description": "a\\udfffb"}'
    up.serve('%s/images/%s' % (SRC, OTHER), body.encode())
    up.serve('%s/images/%s/file' % (SRC, OTHER), FILES[OTHER])
    result = run(images=[{'uuid': OTHER}])
    assert not result.get('failed'), result
    assert result['added'][0]['name'] == 'minimal-\ufffd'
    assert result['diff']['after'] == {'images': ['%s minimal-\ufffd@1.0' % OTHER]}
    stored = read(mirror_dir, 'images', OTHER, 'manifest.json')
    assert b'"name":"minimal-\\ud800"' in stored and b'"description":"a\\udfffb"' in stored
    assert json.loads(stored) == json.loads(body) and json.loads(read(mirror_dir, 'images.json')) == [json.loads(body)]
    again = run(images=[{'uuid': OTHER}])
    assert again['changed'] is False and warnings_of(again) == [] and up.file_requests() == [
        '%s/images/%s/file' % (SRC, OTHER)]


def test_an_inactive_image_is_not_mirrored(up, run):
    up.offer(dict(M_OTHER, state='disabled'))
    result = run(images=[{'uuid': OTHER}])
    assert result['failed'] and 'only active images' in result['msg']


def test_credentials_in_a_source_are_never_shown(up, run):
    result = run(images=[{'uuid': OTHER}], source=['http://user:s3cr3tpw@nowhere.example.com'])
    assert result['failed'] and 's3cr3tpw' not in json.dumps(result)


# ---- removing ----

def test_absent_refuses_to_remove_an_origin_of_an_image_that_stays(up, run, mirror_dir):
    offer_chain(up)
    run(images=[{'uuid': CHILD}])
    before = tree(mirror_dir)
    result = run(images=[{'uuid': BASE}], state='absent')
    assert result['failed'] and 'has it as its origin' in result['msg'] and CHILD in result['msg']
    assert tree(mirror_dir) == before
    both = run(images=[{'uuid': BASE}, {'uuid': CHILD}], state='absent')
    assert sorted(r['uuid'] for r in both['removed']) == sorted([BASE, CHILD])
    assert both['removed'][0]['bytes'] > 0 and not os.path.exists(os.path.join(mirror_dir, 'images', BASE))
    assert read(mirror_dir, 'images.json') == b'[]'
    assert run(images=[{'uuid': BASE}], state='absent')['changed'] is False


def test_absent_by_name_removes_every_mirrored_image_of_the_name(up, run, mirror_dir):
    offer_chain(up)
    run(images=[{'uuid': CHILD}, {'uuid': OTHER}])
    check = run(check=True, images=[{'name': 'base-64'}], state='absent')
    result = run(images=[{'name': 'base-64'}], state='absent')
    assert check['removed'] == result['removed'] and len(result['removed']) == 2
    assert result['images'] == [OTHER] and [k['uuid'] for k in result['kept']] == [OTHER]


def test_prune_removes_what_is_not_listed_and_keeps_ancestors(up, run, mirror_dir):
    offer_chain(up)
    run(images=[{'uuid': CHILD}, {'uuid': OTHER}])
    write_partial(mirror_dir, '11111111-2222-4333-8444-555555555555', b'abc')
    up.requests.clear()
    result = run(images=[{'uuid': CHILD}], prune=True)
    assert sorted(r['uuid'] for r in result['removed']) == ['11111111-2222-4333-8444-555555555555', OTHER]
    assert result['images'] == sorted([BASE, CHILD]) and up.requests == []
    assert sorted(os.listdir(os.path.join(mirror_dir, 'images'))) == sorted([BASE, CHILD])
    assert [m['uuid'] for m in json.loads(read(mirror_dir, 'images.json'))] == [BASE, CHILD]


# ---- what is on disk is hostile too ----

def write(mirror_dir, rel, data):
    path = os.path.join(mirror_dir, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)


@pytest.mark.parametrize('damage', [
    ('manifest.json', b'{"v": 2, "uuid": '), ('manifest.json', b'[]'), ('manifest.json', b'\xff\xfe'),
    ('file', b'short'), ('manifest.json', json.dumps(dict(M_OTHER, uuid=BASE)).encode()),
])
def test_a_damaged_image_is_withdrawn_reported_and_mirrored_again(up, run, mirror_dir, damage):
    up.offer(M_OTHER)
    run(images=[{'uuid': OTHER}])
    write(mirror_dir, 'images/%s/%s' % (OTHER, damage[0]), damage[1])
    check = run(check=True, images=[{'uuid': OTHER}])
    assert check['changed'] and [a['uuid'] for a in check['added']] == [OTHER]
    assert read(mirror_dir, 'images', OTHER, damage[0]) == damage[1]
    result = run(images=[{'uuid': OTHER}])
    assert any('cannot be served as it is' in w for w in warnings_of(result)), result
    assert read(mirror_dir, 'images', OTHER, 'file') == FILES[OTHER]
    assert read(mirror_dir, 'images', OTHER, 'manifest.json') == json.dumps(M_OTHER, separators=(',', ':')).encode()
    assert run(images=[{'uuid': OTHER}])['changed'] is False


def test_a_damaged_image_not_listed_stops_being_served(up, run, mirror_dir):
    offer_chain(up)
    run(images=[{'uuid': OTHER}, {'uuid': BASE}])
    write(mirror_dir, 'images/%s/file' % OTHER, b'short')
    result = run(images=[{'uuid': BASE}])
    assert result['changed'] and result['images'] == [BASE]
    assert not os.path.exists(os.path.join(mirror_dir, 'images', OTHER, 'manifest.json'))
    assert [m['uuid'] for m in json.loads(read(mirror_dir, 'images.json'))] == [BASE]


def test_strays_are_reported_and_left_and_leftovers_removed(up, run, mirror_dir):
    up.offer(M_OTHER)
    run(images=[{'uuid': OTHER}])
    write(mirror_dir, 'images/README', b'hello')
    write(mirror_dir, 'images/%s/.manifest.json.abc123' % OTHER, b'{')
    write(mirror_dir, '.images.json.xyz', b'[')
    result = run(images=[{'uuid': OTHER}])
    assert result['changed'] and any('README is not an image directory' in w for w in warnings_of(result))
    assert read(mirror_dir, 'images', 'README') == b'hello'
    assert not os.path.exists(os.path.join(mirror_dir, '.images.json.xyz'))
    assert not os.path.exists(os.path.join(mirror_dir, 'images', OTHER, '.manifest.json.abc123'))


def test_a_tampered_images_json_is_rewritten(up, run, mirror_dir):
    up.offer(M_OTHER)
    run(images=[{'uuid': OTHER}])
    write(mirror_dir, 'images.json', b'[]')
    assert run(check=True, images=[{'uuid': OTHER}])['changed'] is True
    assert run(images=[{'uuid': OTHER}])['changed'] is True
    assert json.loads(read(mirror_dir, 'images.json')) == [M_OTHER]


def test_a_path_that_is_a_file_fails_clearly(run, up, tmp_path):
    target = tmp_path / 'plain'
    target.write_text('x')
    result = run(path=str(target), images=[])
    assert result['failed'] and 'is not a directory' in result['msg']


HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.lockf(fd, fcntl.LOCK_EX)
print('held', flush=True)
sys.stdin.read()
"""


def test_a_lock_held_by_another_run_is_waited_for_then_fails(up, run, mirror_dir, monkeypatch):
    os.makedirs(mirror_dir)
    monkeypatch.setattr(_mirror_store, 'LOCK_WAIT', 0)
    holder = subprocess.Popen([sys.executable, '-c', HOLDER, os.path.join(mirror_dir, '.lock')],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        result = run(images=[])
    finally:
        holder.communicate('', timeout=10)
    assert result['failed'] and 'mirror lock' in result['msg']
    assert os.listdir(mirror_dir) == ['.lock']
    assert run(images=[])['changed'] is True


def test_the_ping_version_is_the_collection_version():
    root = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..')
    with open(os.path.join(root, 'galaxy.yml'), encoding='utf-8') as f:
        version = [ln.split(':', 1)[1].strip() for ln in f if ln.startswith('version:')][0]
    assert _mirror_store.COLLECTION_VERSION == version


# ---- verify: a file damaged in place, its size unchanged ----

def rot(mirror_dir, uuid, at=100):
    """Flip one byte of a mirrored file in place: same size, other SHA-1."""
    with open(os.path.join(mirror_dir, 'images', uuid, 'file'), 'r+b') as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0xFF]))


def test_without_verify_a_same_size_damage_is_not_found(up, run, mirror_dir):
    offer_chain(up)
    run(images=[{'uuid': CHILD}])
    rot(mirror_dir, BASE)
    damaged = tree(mirror_dir)
    up.requests.clear()
    result = run(images=[{'uuid': CHILD}])
    assert result['changed'] is False and result['repaired'] == [] and warnings_of(result) == []
    assert up.requests == [] and tree(mirror_dir) == damaged


def test_verify_finds_a_same_size_damage_and_downloads_the_file_again(up, run, mirror_dir):
    offer_chain(up)
    run(images=[{'uuid': CHILD}])
    rot(mirror_dir, BASE)
    manifest_before = read(mirror_dir, 'images', BASE, 'manifest.json')
    up.requests.clear()
    result = run(images=[{'uuid': CHILD}], verify=True)
    assert result['changed'] is True and not result.get('failed')
    assert result['repaired'] == [{'uuid': BASE, 'name': 'base-64', 'version': '1.0', 'bytes': len(FILES[BASE])}]
    assert result['bytes'] == len(FILES[BASE]) and result['added'] == [] and result['removed'] == []
    assert [k['uuid'] for k in result['kept']] == [CHILD] and result['images'] == sorted([BASE, CHILD])
    assert up.file_requests() == ['%s/images/%s/file' % (SRC, BASE)]
    assert any('image %s in the mirror is damaged (the SHA-1 of its file is' % BASE in w
               for w in warnings_of(result)), result
    assert read(mirror_dir, 'images', BASE, 'file') == FILES[BASE]
    assert read(mirror_dir, 'images', BASE, 'manifest.json') == manifest_before
    assert sorted(os.listdir(os.path.join(mirror_dir, 'images', BASE))) == ['file', 'manifest.json']
    assert result['diff'] == {
        'before': {'images': sorted(['%s base-64@1.0 (damaged)' % BASE, '%s base-64@2.0' % CHILD])},
        'after': {'images': sorted(['%s base-64@1.0' % BASE, '%s base-64@2.0' % CHILD])}}
    up.requests.clear()
    again = run(images=[{'uuid': CHILD}], verify=True)
    assert again['changed'] is False and again['repaired'] == [] and up.requests == []


def test_verify_of_an_image_not_listed_repairs_it_too(up, run, mirror_dir):
    offer_chain(up)
    run(images=[{'uuid': OTHER}])
    rot(mirror_dir, OTHER, at=len(FILES[OTHER]) - 1)
    result = run(images=[], verify=True)
    assert [r['uuid'] for r in result['repaired']] == [OTHER] and result['kept'] == []
    assert read(mirror_dir, 'images', OTHER, 'file') == FILES[OTHER]


def test_verify_in_check_mode_reports_the_repair_and_writes_nothing(up, run, mirror_dir):
    offer_chain(up)
    run(images=[{'uuid': CHILD}])
    rot(mirror_dir, CHILD)
    damaged = tree(mirror_dir)
    up.requests.clear()
    check = run(check=True, images=[{'uuid': CHILD}], verify=True)
    assert check['changed'] is True and check['bytes'] == 0
    assert [r['uuid'] for r in check['repaired']] == [CHILD]
    assert any('its file would be downloaded again' in w for w in warnings_of(check))
    assert up.file_requests() == [] and tree(mirror_dir) == damaged
    real = run(images=[{'uuid': CHILD}], verify=True)
    for key in ('changed', 'added', 'removed', 'kept', 'repaired', 'images', 'diff'):
        assert check[key] == real[key], key


def test_verify_of_a_sound_mirror_changes_nothing_and_asks_upstream_nothing(up, run, mirror_dir):
    offer_chain(up)
    run(images=[{'uuid': CHILD}, {'uuid': OTHER}])
    before = tree(mirror_dir)
    up.requests.clear()
    for check in (True, False):
        result = run(check=check, images=[{'uuid': CHILD}], verify=True)
        assert result['changed'] is False and result['repaired'] == [] and warnings_of(result) == []
        assert len(result['kept']) == 3
    assert up.requests == [] and tree(mirror_dir) == before


def test_verify_leaves_the_file_when_upstream_sends_another_one(up, run, mirror_dir):
    offer_chain(up)
    run(images=[{'uuid': OTHER}])
    rot(mirror_dir, OTHER)
    damaged = tree(mirror_dir)
    other = bytearray(FILES[OTHER])
    other[5] ^= 0x01
    up.offer(M_OTHER, bytes(other))   # the same manifest, another file
    up.requests.clear()
    result = run(images=[{'uuid': OTHER}], verify=True)
    assert result['failed']
    assert 'image %s in the mirror is damaged' % OTHER in result['msg']
    assert 'could not be downloaded again' in result['msg'] and 'checksum (sha1) error' in result['msg']
    assert 'its file is left as it is' in result['msg']
    assert up.file_requests() == ['%s/images/%s/file' % (SRC, OTHER)]
    assert tree(mirror_dir) == damaged   # the damaged file still in place, no file.partial left


def test_verify_leaves_the_file_when_upstream_publishes_another_manifest(up, run, mirror_dir):
    offer_chain(up)
    run(images=[{'uuid': OTHER}])
    rot(mirror_dir, OTHER)
    damaged = tree(mirror_dir)
    changed = copy.deepcopy(M_OTHER)
    changed['files'][0]['sha1'] = hashlib.sha1(b'something else').hexdigest()
    up.offer(changed)
    up.requests.clear()
    result = run(images=[{'uuid': OTHER}], verify=True)
    assert result['failed'] and 'now publishes another file for it' in result['msg']
    assert up.file_requests() == [] and tree(mirror_dir) == damaged


def test_verify_of_an_image_upstream_no_longer_has_fails_and_keeps_it(up, run, mirror_dir):
    up.offer(M_OTHER)
    run(images=[{'uuid': OTHER}])
    rot(mirror_dir, OTHER)
    damaged = tree(mirror_dir)
    up.routes.clear()
    result = run(images=[], verify=True)
    assert result['failed'] and 'cannot be downloaded again' in result['msg'] and OTHER in result['msg']
    assert tree(mirror_dir) == damaged


def test_verify_does_not_hash_what_is_removed(up, run, mirror_dir):
    offer_chain(up)
    run(images=[{'uuid': OTHER}, {'uuid': BASE}])
    rot(mirror_dir, OTHER)
    result = run(images=[{'uuid': BASE}], prune=True, verify=True)
    assert [r['uuid'] for r in result['removed']] == [OTHER] and result['repaired'] == []


def test_with_verify_a_file_of_the_wrong_size_is_still_withdrawn_and_mirrored_again(up, run, mirror_dir):
    up.offer(M_OTHER)
    run(images=[{'uuid': OTHER}])
    write(mirror_dir, 'images/%s/file' % OTHER, b'short')
    result = run(images=[{'uuid': OTHER}], verify=True)
    assert any('cannot be served as it is' in w for w in warnings_of(result)), result
    assert [a['uuid'] for a in result['added']] == [OTHER] and result['repaired'] == []
    assert read(mirror_dir, 'images', OTHER, 'file') == FILES[OTHER]
