# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""smartos_image main() end to end: the fake host (zfs, zoneadm) behind the Runner seam and the fake image servers
behind the Request that ImageServerClient uses (tests/unit/fakehost.py); the module's JSON is parsed from stdout."""

from __future__ import annotations

import copy
import functools
import gzip
import hashlib
import json
import os
import re
import random

import pytest

from ansible_collections.smartos.images.plugins.module_utils import _zfs
from ansible_collections.smartos.images.plugins.modules import smartos_image
from ansible_collections.smartos.images.tests.unit.fakehost import FakeHost, warnings_of
from ansible_collections.smartos.images.tests.unit.manifest_fixtures import OWN

U = '2f1dc911-6401-4fa4-8e9d-67ea2e39c271'
OTHER = '7b5981c4-1889-11e7-b4c5-3f3bdfc9b88b'
VM = 'c0ffee00-1111-4222-8333-444455556603'
POOL = 'zones'
DS = '%s/%s' % (POOL, U)
SRC = 'http://img1.example.com'
SRC2 = 'http://img2.example.com'


SEND_STREAM = b'ZFS send stream of ' + U.encode() + random.Random(7).randbytes(50000)
IMAGE_FILE = gzip.compress(SEND_STREAM, mtime=0)  # the same bytes in every pytest-xdist worker
MANIFEST = {
    'v': 2, 'uuid': U, 'owner': '930896af-bf8c-48d4-885c-6573a94b1853', 'name': 'base-64-lts', 'version': '24.4.1',
    'state': 'active', 'disabled': False, 'public': True, 'type': 'zone-dataset', 'os': 'smartos',
    'files': [{'sha1': hashlib.sha1(IMAGE_FILE).hexdigest(), 'size': len(IMAGE_FILE), 'compression': 'gzip'}],
}
OTHER_CACHE = {'manifest': {'uuid': OTHER, 'name': 'minimal-64', 'version': '1.0'}, 'zpool': POOL}


# ---- the fake host, the fake servers and main() (tests/unit/fakehost.py, tests/unit/conftest.py) ----

def image_host(datasets=(), streams=None, **kw):
    """A fake host whose `zfs receive` accepts the send stream of U (or of the images in streams)."""
    return FakeHost(datasets, streams={U: SEND_STREAM} if streams is None else streams, **kw)


def offer(servers, base, manifest=None, file_body=IMAGE_FILE):
    """Serve an image (MANIFEST and IMAGE_FILE unless told) from the server at base."""
    servers.image(base, MANIFEST if manifest is None else manifest, file_body)


@pytest.fixture
def run(run_module):
    """run(host, check=..., diff=..., **module args) -> the result of smartos_image's main()."""
    return functools.partial(run_module, smartos_image)


def cache_path(tmp_path, uuid=U, pool=POOL):
    return str(tmp_path / 'var' / 'imgadm' / 'images' / ('%s-%s.json' % (pool, uuid)))


def write_cache(tmp_path, info, uuid):
    path = cache_path(tmp_path, uuid)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(info, f)


def pool_with_other_image():
    return [(POOL, None, '/zones'), ('zones/' + OTHER, None, '/zones/' + OTHER), ('zones/%s@final' % OTHER,)]


def installed_host():
    return image_host(pool_with_other_image() + [(DS, None, '/' + DS), (DS + '@final',)])


SAME_IN_CHECK = ('changed', 'actions', 'diff', 'image', 'source', 'uuid', 'dataset')


# ---- import: the four runs ----

def test_import_check_then_real_then_idempotent(run, servers, tmp_path):
    write_cache(tmp_path, OTHER_CACHE, OTHER)
    offer(servers, SRC)
    host = image_host(pool_with_other_image())
    args = dict(uuid=U, source=[SRC])

    check = run(host, check=True, **args)
    assert check['changed'] is True
    assert check['actions'] == [{'action': 'import', 'uuid': U, 'dataset': DS}]
    assert check['diff'] == {'before': {'images': {OTHER: 'minimal-64@1.0'}},
                             'after': {'images': {OTHER: 'minimal-64@1.0', U: 'base-64-lts@24.4.1'}}}
    assert check['source'] == SRC
    assert check['image'] == MANIFEST
    assert check['downloaded_bytes'] == 0
    assert host.mutations() == []
    assert servers.file_requests() == []
    assert servers.requests == ['%s/images/%s' % (SRC, U)]
    assert not os.path.exists(cache_path(tmp_path))
    assert not os.path.exists(str(tmp_path / 'var' / 'run'))   # no lock taken in check mode

    real = run(host, **args)
    assert {k: real.get(k) for k in SAME_IN_CHECK} == {k: check.get(k) for k in SAME_IN_CHECK}
    assert real['downloaded_bytes'] == len(IMAGE_FILE)
    assert host.mutations() == [['zfs', 'receive', '-u', DS + '-partial'], ['zfs', 'rename', DS + '-partial', DS]]
    assert DS in host.datasets and DS + '@final' in host.datasets and DS + '-partial' not in host.datasets
    assert servers.file_requests() == ['%s/images/%s/file' % (SRC, U)]
    with open(cache_path(tmp_path)) as f:
        assert f.read() == json.dumps({'manifest': MANIFEST, 'zpool': POOL, 'source': SRC}, indent=2) + '\n'
    assert os.path.exists(str(tmp_path / 'var' / 'run' / ('img.%s.import.lock' % U)))

    del host.calls[:], servers.requests[:]
    again_check = run(host, check=True, **args)
    again = run(host, **args)
    for result in (again_check, again):
        assert result['changed'] is False
        assert result['actions'] == []
        assert result['diff']['before'] == result['diff']['after'] == {
            'images': {OTHER: 'minimal-64@1.0', U: 'base-64-lts@24.4.1'}}
        assert result['image'] == MANIFEST   # from imgadm's cache file
    assert host.mutations() == []
    assert servers.requests == []          # installed: no network at all


def test_import_first_source_without_the_image_is_skipped(run, servers):
    servers.serve('%s/images/%s' % (SRC, U), {'code': 'InternalError', 'message': 'oops'}, status=500)
    offer(servers, SRC2)
    host = image_host([POOL])
    result = run(host, uuid=U, source=[SRC, SRC2], retries=0)
    assert result['changed'] is True
    assert result['source'] == SRC2
    assert servers.file_requests() == ['%s/images/%s/file' % (SRC2, U)]


def test_import_with_channel_and_credentials(run, servers, tmp_path):
    offer(servers, 'https://img.example.com')
    host = image_host([POOL])
    result = run(host, uuid=U, source=['https://bob:pw1@img.example.com?channel=dev'])
    assert result['source'] == 'https://***@img.example.com?channel=dev'
    assert servers.requests == ['https://img.example.com/images/%s?channel=dev' % U,
                                'https://img.example.com/images/%s/file?channel=dev' % U]
    assert 'url_username' not in servers.made[0]  # credentials go as a per-origin Authorization header (issue 10)
    with open(cache_path(tmp_path)) as f:
        assert json.load(f)['source'] == 'https://***@img.example.com?channel=dev'


def test_import_replaces_a_stale_partial(run, servers):
    offer(servers, SRC)
    host = image_host([POOL, (DS + '-partial',), (DS + '-partial@final',)])
    result = run(host, uuid=U, source=[SRC])
    assert result['changed'] is True
    assert host.mutations()[0] == ['zfs', 'destroy', '-r', DS + '-partial']
    assert sorted(host.datasets) == [POOL, DS, DS + '@final']


def flip_middle_byte(data):
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 1]) + data[middle + 1:]


WRONG_SHA1 = hashlib.sha1(b'another file').hexdigest()


@pytest.mark.parametrize('manifest, file_body, expected, actual', [
    # the stream breaks zfs receive: nothing is created
    (MANIFEST, flip_middle_byte(IMAGE_FILE), MANIFEST['files'][0]['sha1'], hashlib.sha1(flip_middle_byte(IMAGE_FILE)).hexdigest()),
    # zfs receive succeeds, then the checksum fails: the -partial dataset is destroyed
    (dict(MANIFEST, files=[dict(MANIFEST['files'][0], sha1=WRONG_SHA1)]), IMAGE_FILE, WRONG_SHA1, MANIFEST['files'][0]['sha1']),
], ids=['corrupt-stream', 'wrong-sha1-in-manifest'])
def test_import_with_a_bad_checksum_leaves_the_host_as_before(run, servers, tmp_path, manifest, file_body, expected, actual):
    offer(servers, SRC, manifest, file_body=file_body)
    host = image_host([POOL])
    result = run(host, uuid=U, source=[SRC])
    assert result['failed'] is True
    assert result['msg'] == ('image %s file checksum (sha1) error: expected "%s", downloaded checksum was "%s"'
                             % (U, expected, actual))
    assert result['url'] == SRC
    assert sorted(host.datasets) == [POOL]
    if file_body == IMAGE_FILE:
        assert host.mutations()[-1] == ['zfs', 'destroy', '-r', DS + '-partial']
    assert not os.path.exists(os.path.dirname(cache_path(tmp_path)))   # no cache file, no temp file


def test_import_zfs_receive_failure_reports_zfs(run, servers):
    offer(servers, SRC)
    host = image_host([POOL], streams={U: b'something else'})
    result = run(host, uuid=U, source=[SRC])
    assert result['failed'] is True
    assert result['msg'] == 'zfs receive of image %s into %s-partial failed: cannot receive: invalid stream (bad magic number)' % (U, DS)
    assert result['cmd'] == 'zfs receive -u %s-partial' % DS
    assert result['rc'] == 1
    assert sorted(host.datasets) == [POOL]


# ---- delete ----

def test_delete_check_then_real_then_idempotent(run, servers, tmp_path):
    write_cache(tmp_path, {'manifest': MANIFEST, 'zpool': POOL, 'source': SRC}, U)
    write_cache(tmp_path, OTHER_CACHE, OTHER)
    host = installed_host()
    check = run(host, check=True, uuid=U, state='absent')
    assert check['changed'] is True
    assert check['actions'] == [{'action': 'delete', 'uuid': U, 'dataset': DS}]
    assert check['diff'] == {'before': {'images': {OTHER: 'minimal-64@1.0', U: 'base-64-lts@24.4.1'}},
                             'after': {'images': {OTHER: 'minimal-64@1.0'}}}
    assert check['image'] == MANIFEST
    assert host.mutations() == []
    assert DS in host.datasets and os.path.exists(cache_path(tmp_path))

    real = run(host, uuid=U, state='absent')
    assert {k: real.get(k) for k in SAME_IN_CHECK} == {k: check.get(k) for k in SAME_IN_CHECK}
    assert host.mutations() == [['zfs', 'destroy', '-r', DS]]
    assert DS not in host.datasets and DS + '@final' not in host.datasets
    assert not os.path.exists(cache_path(tmp_path))
    assert os.path.exists(cache_path(tmp_path, OTHER))

    del host.calls[:]
    for check_mode in (True, False):
        again = run(host, check=check_mode, uuid=U, state='absent')
        assert again['changed'] is False
        assert again['actions'] == []
        assert again['image'] == {'uuid': U}
    assert host.mutations() == []
    assert servers.requests == []


def test_absent_when_not_installed(run, servers):
    host = image_host(pool_with_other_image())
    result = run(host, uuid=U, state='absent', source=[SRC])
    assert result['changed'] is False
    assert result['actions'] == []
    assert result['diff']['before'] == result['diff']['after']
    assert host.mutations() == []
    assert servers.requests == []


@pytest.mark.parametrize('check', [True, False])
def test_absent_with_clones_fails_and_destroys_nothing(run, servers, check):
    host = image_host(pool_with_other_image() + [
        (DS, None, '/' + DS), (DS + '@final',),
        ('zones/' + VM, DS + '@final', '/zones/' + VM),
        ('zones/%s-disk0' % OTHER, DS + '@final'),
    ], zone_roots=['/zones/' + VM])
    before = copy.deepcopy(host.datasets)
    result = run(host, check=check, uuid=U, state='absent')
    assert result['failed'] is True
    assert result['msg'] == ('image "%s" has dependent clones: zones/%s-disk0, zones/%s; delete or promote them first'
                             % (U, OTHER, VM))
    assert result['clones'] == ['zones/%s-disk0' % OTHER, 'zones/' + VM]
    assert host.mutations() == []
    assert host.datasets == before
    assert ['zoneadm', 'list', '-pc'] in host.calls


def test_a_vm_zone_root_is_never_deleted(run, servers):
    host = image_host([POOL, (DS, None, '/' + DS)], zone_roots=['/' + DS])
    result = run(host, uuid=U, state='absent')
    assert result['failed'] is True
    assert result['msg'] == ('dataset %s exists but is not an image: it is the root of a zone (a VM), not an image; '
                             'refusing to delete it' % DS)
    assert host.mutations() == []


def test_no_diff_unless_asked(run, servers):
    result = run(installed_host(), diff=False, uuid=U, state='absent')
    assert result['changed'] is True
    assert 'diff' not in result


# ---- present when installed: nothing to do, nothing asked ----

def test_present_when_installed_uses_no_network(run, servers, tmp_path):
    host = installed_host()
    write_cache(tmp_path, {'manifest': MANIFEST, 'zpool': POOL}, U)
    result = run(host, uuid=U, source=[SRC, SRC2])
    assert result['changed'] is False
    assert result['actions'] == []
    assert result['image'] == MANIFEST
    assert 'source' not in result
    assert servers.made == [] and servers.requests == []
    assert host.mutations() == []


# ---- errors before anything runs ----

@pytest.mark.parametrize('args, msg', [
    (dict(uuid=U.upper()), 'uuid "%s" is not a lower-case UUID such as "01234567-89ab-cdef-0123-456789abcdef"' % U.upper()),
    (dict(uuid='2f1dc911-6401-4fa4-8e9d'), 'uuid "2f1dc911-6401-4fa4-8e9d" is not a lower-case UUID such as '
                                           '"01234567-89ab-cdef-0123-456789abcdef"'),
    (dict(uuid='zones/' + U), 'uuid "zones/%s" is not a lower-case UUID' % U),
    (dict(uuid=U, pool='1bad'), 'pool "1bad" is not a valid ZFS pool name'),
    (dict(uuid=U, pool='zones/sub'), 'pool "zones/sub" is not a valid ZFS pool name'),
    (dict(uuid=U, pool=''), 'pool "" is not a valid ZFS pool name'),
    (dict(uuid=U, source=['ftp://x']), 'image source "ftp://x" is not an http:// or https:// URL'),
    (dict(uuid=U, source=[SRC, 'http://']), 'image source "http://" is not an http:// or https:// URL'),
    (dict(uuid=U, source=['ftp://u:hidden@x']), 'image source "ftp://***@x" is not an http:// or https:// URL'),
    (dict(uuid=U, timeout=0), 'timeout must be a positive number of seconds, not 0'),
    (dict(uuid=U, timeout=-5), 'timeout must be a positive number of seconds, not -5'),
    (dict(uuid=U, retries=-1), 'retries must be 0 or more, not -1'),
])
@pytest.mark.parametrize('state', ['present', 'absent'])
def test_bad_input_fails_before_any_command(run, servers, args, msg, state):
    host = installed_host()
    result = run(host, state=state, **args)
    assert result['failed'] is True
    assert result['msg'].startswith(msg)
    assert 'hidden' not in result['msg']
    assert host.calls == []
    assert servers.made == [] and servers.requests == []


def test_uuid_with_trailing_newline_is_rejected(run, servers):
    host = installed_host()
    result = run(host, uuid=U + '\n', state='absent')
    assert result.get('failed') is True
    assert host.calls == []


def write_config(tmp_path, config):
    path = tmp_path / 'var' / 'imgadm' / 'imgadm.conf'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config))
    return str(path)


@pytest.mark.parametrize('check', [True, False])
def test_no_source_and_not_installed(run, servers, tmp_path, check):
    config = write_config(tmp_path, {'sources': []})
    host = image_host([POOL])
    result = run(host, check=check, uuid=U)
    assert result['failed'] is True
    assert result['msg'] == ('no image source to import %s from (%s has none): set source to one or more IMGAPI URLs, '
                             'or add sources with smartos_image_source' % (U, config))
    assert host.mutations() == []
    assert servers.made == []


def test_no_source_option_uses_the_host_sources(run, servers, tmp_path):
    write_config(tmp_path, {'sources': [{'type': 'imgapi', 'url': SRC2}]})
    offer(servers, SRC2)
    result = run(image_host([POOL]), uuid=U)
    assert result['changed'] is True
    assert result['source'] == SRC2


def test_no_source_option_and_no_config_uses_imgadm_default_source(run, servers):
    host = image_host([POOL])
    result = run(host, check=True, uuid=U)
    assert result['failed'] is True
    assert result['msg'] == ('an active image "%s" was not found in image sources: https://images.smartos.org: not found '
                             '(HTTP 404); add a source that has it, or check the UUID' % U)
    assert servers.requests == ['https://images.smartos.org/images/' + U]


def test_missing_pool(run, servers):
    host = image_host([POOL])
    result = run(host, uuid=U, pool='tank', source=[SRC])
    assert result['failed'] is True
    assert result['msg'] == 'zfs pool or dataset "tank" does not exist (cannot open \'tank\': dataset does not exist)'
    assert servers.requests == []


# ---- what the sources answer ----

@pytest.mark.parametrize('check', [True, False])
def test_image_unknown_on_all_sources_names_each_source(run, servers, check):
    servers.serve('%s/images/%s' % (SRC2, U), {'code': 'ServiceUnavailableError', 'message': 'down for maintenance'}, status=503)
    host = image_host([POOL])
    result = run(host, check=check, uuid=U, source=[SRC, SRC2], retries=0)
    assert result['failed'] is True
    assert result['msg'] == (
        'an active image "%s" was not found in image sources: %s: not found (HTTP 404); %s: %s/images/%s answered HTTP 503: '
        'ServiceUnavailableError: down for maintenance; add a source that has it, or check the UUID' % (U, SRC, SRC2, SRC2, U))
    assert result['sources'] == [SRC, SRC2]
    assert host.mutations() == []
    assert servers.file_requests() == []


def test_inactive_image(run, servers):
    offer(servers, SRC, dict(MANIFEST, state='disabled', disabled=True))
    host = image_host([POOL])
    result = run(host, uuid=U, source=[SRC])
    assert result['failed'] is True
    assert result['msg'] == ('an active image "%s" was not found in image sources (%s: state "disabled"); only active images can be '
                             'imported' % (U, SRC))
    assert servers.file_requests() == []
    assert host.mutations() == []


def test_manifest_without_state_is_not_imported(run, servers):
    # imgadm: only state "active" is imported; a v2 manifest without a state is "an active image ... was not found"
    offer(servers, SRC, {k: v for k, v in MANIFEST.items() if k != 'state'})
    host = image_host([POOL])
    result = run(host, uuid=U, source=[SRC])
    assert result['failed'] is True
    assert result['msg'].startswith('an active image "%s" was not found in image sources (%s: no "state" in its manifest)'
                                    % (U, SRC))
    assert servers.file_requests() == [] and host.mutations() == []


def test_inactive_on_one_source_active_on_the_next(run, servers):
    offer(servers, SRC, dict(MANIFEST, state='unactivated'))
    offer(servers, SRC2)
    result = run(image_host([POOL]), uuid=U, source=[SRC, SRC2])
    assert result['changed'] is True
    assert result['source'] == SRC2


@pytest.mark.parametrize('check', [True, False])
def test_docker_image_is_refused(run, servers, check):
    offer(servers, SRC, dict(MANIFEST, type='docker'))
    host = image_host([POOL])
    result = run(host, check=check, uuid=U, source=[SRC])
    assert result['failed'] is True
    assert result['msg'] == ('image %s from %s is a docker image; importing docker images is not supported yet' % (U, SRC))
    assert servers.file_requests() == []
    assert host.mutations() == []


@pytest.mark.parametrize('name', ['v2-docker-base-layer.json', 'v2-docker-tagged-layer.json'])
def test_a_docker_layer_as_image_servers_list_it_is_refused(run, servers, name):
    """A docker manifest as an image server gives it (docker tags, an origin layer, files[].digest)."""
    manifest = OWN.load(name)
    offer(servers, SRC, manifest)
    host = image_host([POOL])
    result = run(host, uuid=manifest['uuid'], source=[SRC])
    assert result['failed'] is True
    assert result['msg'] == ('image %s from %s is a docker image; importing docker images is not supported yet'
                             % (manifest['uuid'], SRC))
    assert servers.file_requests() == [] and host.mutations() == []


def test_unusable_manifest_is_reported_per_source(run, servers):
    bad = dict(MANIFEST, files=[{'sha1': 'x', 'size': 0, 'compression': 'gzip'}])
    offer(servers, SRC, bad)
    result = run(image_host([POOL]), uuid=U, source=[SRC])
    assert result['failed'] is True
    assert ('the manifest of image %s from %s cannot be imported: files[0].sha1 is missing or not 40 hex digits; '
            'files[0].size is missing or not a positive integer' % (U, SRC)) in result['msg']


# ---- secrets and robustness ----

@pytest.mark.parametrize('check', [True, False])
@pytest.mark.parametrize('has_image', [True, False])
def test_source_password_is_never_shown(run, servers, check, has_image):
    if has_image:
        offer(servers, 'https://img.example.com')
    result = run(image_host([POOL]), check=check, uuid=U, source=['https://bob:Sup3rSecret@img.example.com'], retries=0)
    assert result.get('failed', False) is not has_image
    assert 'https://***@img.example.com' in json.dumps(result)
    assert 'Sup3rSecret' not in json.dumps(result)   # nor in invocation.module_args: ansible masks URL passwords


def test_unwritable_host_root_fails_cleanly(run, servers, tmp_path):
    offer(servers, SRC)
    blocker = tmp_path / 'not-a-directory'
    blocker.write_text('x')
    host = image_host([POOL])
    result = run(host, uuid=U, source=[SRC], host_root=str(blocker))
    assert result['failed'] is True
    assert str(blocker) in result['msg']


def test_source_with_a_bad_port_fails_cleanly(run, servers):
    host = image_host([POOL])
    result = run(host, uuid=U, source=['http://img.example.com:80a/'])
    assert result['failed'] is True
    assert 'img.example.com:80a' in result['msg']
    assert host.calls == []


# ---- more images: by name, origin chains, several per task, prune, update, local files ----

SRC3 = 'http://img3.example.com'
BASE = 'a1000000-0000-4000-8000-000000000001'
MID = 'a1000000-0000-4000-8000-000000000002'
TOP = 'a1000000-0000-4000-8000-000000000003'
N1, N2, N3, N4, N5 = ('b2000000-0000-4000-8000-00000000000%d' % i for i in range(1, 6))


class Image:
    """An image a fake server offers: its manifest, its (gzip) file and the send stream inside."""

    def __init__(self, uuid, name='chain', version='1.0', origin=None, **fields):
        self.stream = b'ZFS send stream of ' + uuid.encode() + random.Random(uuid).randbytes(3000)
        self.body = gzip.compress(self.stream, mtime=0)
        self.manifest = dict(MANIFEST, uuid=uuid, name=name, version=version, **fields)
        self.manifest['files'] = [{'sha1': hashlib.sha1(self.body).hexdigest(), 'size': len(self.body), 'compression': 'gzip'}]
        if origin:
            self.manifest['origin'] = origin
        self.uuid = uuid

    def offer(self, servers, *bases):
        for base in bases:
            offer(servers, base, self.manifest, file_body=self.body)
        return self


def host_for(images, datasets=(), **kw):
    """A FakeHost with the zones pool, the given datasets, and the streams (incremental where they have an origin) of images."""
    return image_host([POOL] + list(datasets), streams={i.uuid: i.stream for i in images},
                      origins={i.uuid: i.manifest['origin'] for i in images if i.manifest.get('origin')}, **kw)


def installed(uuid, origin=None):
    """The datasets of an installed image."""
    return [('zones/' + uuid, 'zones/%s@final' % origin if origin else None, '/zones/' + uuid), ('zones/%s@final' % uuid,)]


def inventory_listings(host):
    return [c for c in host.calls if c[:2] == ['zfs', 'list'] and _zfs.LIST_COLUMNS in c]


def imports(*uuids):
    return [{'action': 'import', 'uuid': u, 'dataset': 'zones/' + u} for u in uuids]


def deletes(*uuids):
    return [{'action': 'delete', 'uuid': u, 'dataset': 'zones/' + u} for u in uuids]


def received(*uuids):
    """The mutating zfs commands of importing these images, in this order."""
    calls = []
    for u in uuids:
        calls += [['zfs', 'receive', '-u', 'zones/%s-partial' % u], ['zfs', 'rename', 'zones/%s-partial' % u, 'zones/' + u]]
    return calls


def list_url(base, query):
    return '%s/images?%s' % (base, query)


# ---- by name ----

def test_name_without_version_is_the_newest_active_across_sources(run, servers):
    old = Image(N1, 'base-64-lts', '23.4.0', published_at='2023-11-01T00:00:00Z')
    newest = Image(N2, 'base-64-lts', '24.4.1', published_at='2024-11-01T00:00:00Z').offer(servers, SRC2)
    disabled = Image(N3, 'base-64-lts', '25.1.0', published_at='2025-02-01T00:00:00Z', state='disabled', disabled=True)
    linux = Image(N4, 'base-64-lts', '25.2.0', published_at='2025-03-01T00:00:00Z', os='linux')
    lx = Image(N5, 'base-64-lts', '25.3.0', published_at='2025-04-01T00:00:00Z', type='lx-dataset')
    other = Image(BASE, 'minimal-64', '26.1.0', published_at='2026-01-01T00:00:00Z')
    # the fake servers ignore the query: the module must filter what they send itself
    servers.serve(SRC + '/images', [old.manifest, disabled.manifest, linux.manifest, other.manifest])
    servers.serve(SRC2 + '/images', [lx.manifest, newest.manifest])
    host = host_for([newest])
    args = dict(name='base-64-lts', filters={'os': 'smartos', 'type': 'zone-dataset'}, source=[SRC, SRC2])
    query = 'name=base-64-lts&os=smartos&type=zone-dataset'

    check = run(host, check=True, **args)
    assert check['uuid'] == N2
    assert check['source'] == SRC2
    assert check['image'] == newest.manifest
    assert check['actions'] == imports(N2)
    assert servers.requests[:2] == [list_url(SRC, query), list_url(SRC2, query)]
    assert servers.file_requests() == []
    assert host.mutations() == []

    real = run(host, **args)
    assert {k: real.get(k) for k in SAME_IN_CHECK} == {k: check.get(k) for k in SAME_IN_CHECK}
    assert host.mutations() == received(N2)
    assert servers.file_requests() == ['%s/images/%s/file' % (SRC2, N2)]

    # "newest" is asked again on every run; it is installed now
    del servers.requests[:], host.calls[:]
    again = run(host, **args)
    assert again['changed'] is False and again['uuid'] == N2 and again['image'] == newest.manifest
    assert servers.requests == [list_url(SRC, query), list_url(SRC2, query)]
    assert host.mutations() == []


@pytest.mark.parametrize('check', [True, False])
@pytest.mark.parametrize('images', [False, True])
def test_name_and_version_installed_asks_no_source(run, servers, tmp_path, check, images):
    write_cache(tmp_path, {'manifest': MANIFEST, 'zpool': POOL, 'source': SRC}, U)
    write_cache(tmp_path, OTHER_CACHE, OTHER)
    host = installed_host()
    ref = dict(name='base-64-lts', version='24.4.1')
    result = run(host, check=check, source=[SRC, SRC2], **(dict(images=[ref]) if images else ref))
    assert result['changed'] is False
    assert result['actions'] == []
    entry = result['results'][0] if images else result
    assert entry['uuid'] == U and entry['image'] == MANIFEST
    assert servers.made == [] and servers.requests == []
    assert host.mutations() == []


def test_name_matching_nothing_names_each_source_and_its_answer(run, servers):
    servers.serve(SRC + '/images', [Image(N1, 'nope', '1.0', state='unactivated').manifest,
                                    Image(N2, 'something-else', '1.0').manifest,
                                    Image(N3, 'nope', '1.0', os='linux').manifest])
    servers.serve(SRC3 + '/images', {'code': 'ServiceUnavailableError', 'message': 'down'}, status=503)
    host = image_host([POOL])
    result = run(host, name='nope', filters={'os': 'smartos'}, source=[SRC, SRC2, SRC3], retries=0)
    assert result['failed'] is True
    assert result['msg'] == (
        'no active image named "nope" matching {"os": "smartos"} was found in image sources: '
        '%s: 0 match(es); '
        '%s: %s answered ListImages with HTTP 404, not a list of images; '
        '%s: %s/images?name=nope&os=smartos answered HTTP 503: ServiceUnavailableError: down' % (SRC, SRC2, SRC2, SRC3, SRC3))
    assert result['sources'] == [SRC, SRC2, SRC3]
    assert host.mutations() == []
    assert servers.file_requests() == []


def test_name_and_version_matching_nothing(run, servers):
    servers.serve(SRC + '/images', [Image(N1, 'base-64-lts', '23.4.0').manifest])
    result = run(image_host([POOL]), name='base-64-lts', version='24.4.1', source=[SRC])
    assert result['msg'] == ('no active image named "base-64-lts" version "24.4.1" was found in image sources: '
                             '%s: 0 match(es)' % SRC)
    assert servers.requests == [list_url(SRC, 'name=base-64-lts&version=24.4.1')]


# ---- origin chains ----

def chain_images(servers):
    base = Image(BASE, 'chain-base').offer(servers, SRC2)       # origins may live on another source
    mid = Image(MID, 'chain-mid', origin=BASE, state='disabled', disabled=True).offer(servers, SRC)   # and be inactive
    top = Image(TOP, 'chain-top', origin=MID).offer(servers, SRC)
    return base, mid, top


def test_origin_chain_imports_missing_ancestors_base_first(run, servers, tmp_path):
    base, mid, top = chain_images(servers)
    host = host_for([base, mid, top])
    args = dict(uuid=TOP, source=[SRC, SRC2])

    check = run(host, check=True, **args)
    assert check['actions'] == imports(BASE, MID, TOP)
    assert check['imported'] == [BASE, MID, TOP]
    assert check['uuid'] == TOP and check['image'] == top.manifest and check['source'] == SRC
    assert check['diff']['after'] == {'images': {BASE: 'chain-base@1.0', MID: 'chain-mid@1.0', TOP: 'chain-top@1.0'}}
    assert host.mutations() == []
    assert servers.file_requests() == []

    real = run(host, **args)
    assert {k: real.get(k) for k in SAME_IN_CHECK} == {k: check.get(k) for k in SAME_IN_CHECK}
    assert real['imported'] == [BASE, MID, TOP]
    assert host.mutations() == received(BASE, MID, TOP)     # each receive finds its origin's @final
    assert host.datasets['zones/' + TOP]['origin'] == 'zones/%s@final' % MID
    assert host.datasets['zones/' + MID]['origin'] == 'zones/%s@final' % BASE
    assert real['downloaded_bytes'] == sum(len(i.body) for i in (base, mid, top))
    for image in (base, mid, top):
        assert os.path.exists(cache_path(tmp_path, image.uuid))

    del host.calls[:], servers.requests[:]
    again = run(host, **args)
    assert again['changed'] is False and again['imported'] == []
    assert servers.requests == [] and host.mutations() == []


def test_origin_chain_with_the_base_installed_imports_the_rest(run, servers):
    base, mid, top = chain_images(servers)
    host = host_for([mid, top], installed(BASE))
    result = run(host, uuid=TOP, source=[SRC, SRC2])
    assert result['actions'] == imports(MID, TOP)
    assert host.mutations() == received(MID, TOP)
    assert not any(BASE in url for url in servers.requests)    # an installed origin is not looked up


def test_origin_chain_with_the_parent_installed_imports_only_the_top(run, servers):
    base, mid, top = chain_images(servers)
    host = host_for([top], installed(BASE) + installed(MID, origin=BASE))
    result = run(host, uuid=TOP, source=[SRC, SRC2])
    assert result['actions'] == imports(TOP)
    assert host.mutations() == received(TOP)
    assert servers.requests == ['%s/images/%s' % (SRC, TOP), '%s/images/%s/file' % (SRC, TOP)]


@pytest.mark.parametrize('check', [True, False])
def test_origin_missing_on_every_source(run, servers, check):
    Image(TOP, 'chain-top', origin=MID).offer(servers, SRC)
    host = host_for([], installed(BASE))
    result = run(host, check=check, uuid=TOP, source=[SRC, SRC2])
    assert result['failed'] is True
    assert result['msg'].startswith('origin %s of image %s is not installed and no source has it (' % (MID, TOP))
    assert '%s: not found (HTTP 404); %s: not found (HTTP 404)' % (SRC, SRC2) in result['msg']
    assert servers.requests == ['%s/images/%s' % (SRC, TOP), '%s/images/%s' % (SRC, MID), '%s/images/%s' % (SRC2, MID)]
    assert host.mutations() == []
    assert [c for c in host.calls if 'receive' in c] == []


# ---- several images in one task ----

def test_images_list_reads_the_host_once_and_reports_each_entry(run, servers, tmp_path):
    write_cache(tmp_path, OTHER_CACHE, OTHER)
    offer(servers, SRC)
    tools = Image(N1, 'tools', '2.0', published_at='2024-01-01T00:00:00Z').offer(servers, SRC)
    servers.serve(SRC + '/images', [Image(N2, 'tools', '1.0').manifest, tools.manifest])
    host = image_host(pool_with_other_image(), streams={U: SEND_STREAM, N1: tools.stream})
    args = dict(images=[{'uuid': U}, {'name': 'tools', 'version': '2.0'}, {'uuid': OTHER, 'state': 'absent'}], source=[SRC])
    results = [
        {'state': 'present', 'changed': True, 'uuid': U, 'image': MANIFEST, 'source': SRC, 'imported': [U]},
        {'state': 'present', 'changed': True, 'uuid': N1, 'image': tools.manifest, 'source': SRC, 'imported': [N1]},
        {'state': 'absent', 'changed': True, 'uuid': OTHER, 'uuids': [OTHER]},
    ]

    check = run(host, check=True, **args)
    assert check['results'] == results
    assert check['actions'] == imports(U, N1) + deletes(OTHER)
    assert 'uuid' not in check and 'image' not in check
    assert host.calls == inventory_listings(host) and len(host.calls) == 1   # one zfs list, nothing else
    assert host.mutations() == []

    del host.calls[:]
    real = run(host, **args)
    assert real['results'] == results
    assert real['actions'] == check['actions'] and real['diff'] == check['diff']
    assert len(inventory_listings(host)) == 1
    assert sorted(host.mutations()) == sorted(received(U, N1) + [['zfs', 'destroy', '-r', 'zones/' + OTHER]])
    assert sorted(servers.file_requests()) == sorted('%s/images/%s/file' % (SRC, u) for u in (U, N1))

    del host.calls[:], servers.requests[:], servers.made[:]
    again = run(host, **args)
    assert again['changed'] is False and again['actions'] == []
    assert again['results'] == [
        {'state': 'present', 'changed': False, 'uuid': U, 'image': MANIFEST},
        {'state': 'present', 'changed': False, 'uuid': N1, 'image': tools.manifest},
        {'state': 'absent', 'changed': False, 'uuid': OTHER, 'uuids': []},
    ]
    assert servers.made == [] and servers.requests == []      # everything is installed, or gone: no server asked
    assert len(inventory_listings(host)) == 1
    assert host.mutations() == []


@pytest.mark.parametrize('check', [True, False])
@pytest.mark.parametrize('entries, is_installed', [
    ([{'uuid': U}, {'uuid': U, 'state': 'absent'}], True),
    ([{'uuid': U, 'state': 'absent'}, {'uuid': U}], True),
    ([{'name': 'base-64-lts', 'version': '24.4.1'}, {'uuid': U, 'state': 'absent'}], True),
    ([{'uuid': U}, {'uuid': U, 'state': 'absent'}], False),
], ids=['installed', 'absent-first', 'by-name', 'not-installed'])
def test_present_and_absent_of_the_same_image(run, servers, tmp_path, check, entries, is_installed):
    write_cache(tmp_path, {'manifest': MANIFEST, 'zpool': POOL, 'source': SRC}, U)
    offer(servers, SRC)
    host = installed_host() if is_installed else image_host(pool_with_other_image())
    result = run(host, check=check, images=entries, source=[SRC])
    assert result['failed'] is True
    assert result['msg'] == 'image(s) %s are declared both present and absent' % U
    assert host.mutations() == []
    assert servers.file_requests() == []


# ---- prune_unused ----

def prune_host():
    """OTHER (minimal-64, kept by name), U with a VM on it, and an unused chain BASE <- MID."""
    return image_host(pool_with_other_image() + [(DS, None, '/' + DS), (DS + '@final',),
                                                 ('zones/' + VM, DS + '@final', '/zones/' + VM)]
                      + installed(BASE) + installed(MID, origin=BASE), zone_roots=['/zones/' + VM])


def write_chain_caches(tmp_path):
    for uuid in (BASE, MID):
        write_cache(tmp_path, {'manifest': {'uuid': uuid, 'name': 'chain', 'version': uuid[-1]}, 'zpool': POOL}, uuid)


def test_prune_unused_check_mode_lists_what_would_go_and_destroys_nothing(run, servers, tmp_path):
    write_cache(tmp_path, OTHER_CACHE, OTHER)
    write_chain_caches(tmp_path)
    host = prune_host()
    before = copy.deepcopy(host.datasets)
    args = dict(prune_unused=True, keep=['minimal-64'])

    check = run(host, check=True, **args)
    assert check['changed'] is True
    assert check['unused'] == [MID, BASE]
    assert check['removed'] == [MID, BASE]
    assert check['actions'] == deletes(MID, BASE)
    assert sorted(check['diff']['after']['images']) == sorted([OTHER, U])
    assert host.mutations() == []
    assert host.datasets == before
    assert servers.made == []

    real = run(host, **args)
    assert {k: real.get(k) for k in SAME_IN_CHECK + ('unused', 'removed')} == \
        {k: check.get(k) for k in SAME_IN_CHECK + ('unused', 'removed')}
    assert host.mutations() == [['zfs', 'destroy', '-r', 'zones/' + MID], ['zfs', 'destroy', '-r', 'zones/' + BASE]]

    again = run(host, check=True, **args)
    assert again['changed'] is False and again['unused'] == [] and again['actions'] == []


def test_prune_unused_without_keep_and_with_a_declared_image(run, servers, tmp_path):
    write_cache(tmp_path, OTHER_CACHE, OTHER)
    host = prune_host()
    result = run(host, check=True, prune_unused=True)
    assert result['unused'] == [OTHER, MID, BASE]     # a chain child first
    # an image the task declares present stays, and so does its origin
    result = run(host, check=True, prune_unused=True, uuid=MID)
    assert result['unused'] == [OTHER]
    assert host.mutations() == []


# ---- update_manifests ----

GUID = '12517151515612385723'


def update_host():
    """U has lost its @final; its original snapshot is @snap1 (the guid in the source's manifest), not @snap0."""
    host = image_host(pool_with_other_image() + [(DS, None, '/' + DS), (DS + '@snap0',), (DS + '@snap1',)])
    host.datasets[DS + '@snap0']['guid'], host.datasets[DS + '@snap1']['guid'] = '4242', GUID
    return host


def test_update_manifests_check_mode_renames_nothing(run, servers, tmp_path):
    write_cache(tmp_path, {'manifest': MANIFEST, 'zpool': POOL, 'source': SRC}, U)
    newer = dict(MANIFEST, description='Base image', files=[dict(MANIFEST['files'][0], dataset_guid=GUID)])
    offer(servers, SRC, newer)
    host = update_host()
    with open(cache_path(tmp_path)) as f:
        cached = f.read()
    actions = [{'action': 'refresh', 'uuid': U, 'fields': ['description', 'files']},
               {'action': 'repair', 'uuid': U, 'snapshot': DS + '@snap1', 'dataset': DS}]

    check = run(host, check=True, update_manifests=True, source=[SRC])
    assert check['changed'] is True
    assert check['actions'] == actions
    assert host.mutations() == []
    assert DS + '@final' not in host.datasets
    with open(cache_path(tmp_path)) as f:
        assert f.read() == cached
    assert servers.file_requests() == []

    real = run(host, update_manifests=True, source=[SRC])
    assert real['actions'] == actions
    assert host.mutations() == [['zfs', 'rename', DS + '@snap1', DS + '@final']]
    with open(cache_path(tmp_path)) as f:
        assert json.load(f) == {'manifest': newer, 'zpool': POOL, 'source': SRC}

    again = run(host, update_manifests=True, source=[SRC])
    assert again['changed'] is False and again['actions'] == []


def test_update_manifests_diff_shows_a_back_filled_label(run, servers):
    offer(servers, SRC)
    host = installed_host()
    result = run(host, check=True, update_manifests=True, source=[SRC])
    assert result['actions'] == [{'action': 'refresh', 'uuid': U, 'fields': sorted(MANIFEST)}]
    assert result['diff']['before']['images'][U] == '-'
    assert result['diff']['after']['images'][U] == 'base-64-lts@24.4.1'


# ---- local install ----

@pytest.mark.parametrize('check', [True, False])
@pytest.mark.parametrize('good', [True, False], ids=['good-sha1', 'bad-sha1'])
def test_local_install_checks_the_file_before_receiving(run, servers, tmp_path, check, good):
    local = tmp_path / 'files'
    local.mkdir()
    manifest = MANIFEST if good else dict(MANIFEST, files=[dict(MANIFEST['files'][0], sha1=WRONG_SHA1)])
    (local / 'manifest.json').write_text(json.dumps(manifest))
    (local / 'image.zfs.gz').write_bytes(IMAGE_FILE)
    path = str(local / 'image.zfs.gz')
    host = image_host([POOL])
    result = run(host, check=check, manifest=str(local / 'manifest.json'), file=path)
    assert servers.made == []
    if not good:
        assert result['failed'] is True
        assert result['msg'] == ('image file checksum (sha1) error: manifest says "%s", %s is "%s"'
                                 % (WRONG_SHA1, path, hashlib.sha1(IMAGE_FILE).hexdigest()))
        assert host.mutations() == []
        assert [c for c in host.calls if 'receive' in c] == []
        assert not os.path.exists(cache_path(tmp_path))
        return
    assert result['changed'] is True and result['actions'] == imports(U) and result['uuid'] == U
    assert 'source' not in result
    if check:
        assert host.mutations() == []
    else:
        assert host.mutations() == received(U)
        with open(cache_path(tmp_path)) as f:
            cached = json.load(f)
        # imgadm install publishes a manifest that has no published_at at the time of the install
        assert re.match(r'^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.000Z$', cached['manifest'].pop('published_at'))
        assert cached == {'manifest': MANIFEST, 'zpool': POOL}   # no source: it came from a file


# ---- safety (issue 10): never the wrong image, repair what a kill leaves, validate first ----

S_MANIFEST = {'uuid': OTHER, 'name': 'minimal-64', 'version': '1.0'}


def two_images_host():
    return image_host(pool_with_other_image() + [(DS, None, '/' + DS), (DS + '@final',)])


@pytest.mark.parametrize('check', [True, False])
def test_a_cache_file_holding_another_image_never_matches_a_name(run, servers, tmp_path, check):
    """The cache file of image U holds image OTHER's manifest: deleting OTHER's name deletes OTHER only."""
    write_cache(tmp_path, {'manifest': S_MANIFEST, 'zpool': POOL}, U)
    write_cache(tmp_path, OTHER_CACHE, OTHER)
    host = two_images_host()
    result = run(host, check=check, name='minimal-64', state='absent')
    assert result['changed'] is True
    assert result['actions'] == deletes(OTHER)
    assert result['diff']['before']['images'] == {U: '-', OTHER: 'minimal-64@1.0'}
    assert [w for w in warnings_of(result) if U in w and 'another image' in w and OTHER in w]
    if check:
        assert host.mutations() == []
    else:
        assert host.mutations() == [['zfs', 'destroy', '-r', 'zones/' + OTHER]]
        assert DS in host.datasets


def test_a_cache_file_holding_another_image_alone_deletes_nothing(run, servers, tmp_path):
    write_cache(tmp_path, {'manifest': S_MANIFEST, 'zpool': POOL}, U)
    host = image_host([POOL, (DS, None, '/' + DS), (DS + '@final',)])
    result = run(host, name='minimal-64', state='absent')
    assert result['changed'] is False and result['actions'] == []
    assert host.mutations() == []
    assert len([w for w in warnings_of(result) if U in w]) == 1


def test_a_wrong_cache_file_is_not_the_image_of_a_present_task(run, servers, tmp_path):
    write_cache(tmp_path, {'manifest': S_MANIFEST, 'zpool': POOL}, U)
    result = run(installed_host(), uuid=U, source=[SRC])
    assert result['changed'] is False
    assert result['image'] == {'uuid': U}
    assert [w for w in warnings_of(result) if 'update_manifests' in w]
    assert servers.requests == []       # a bad cache file is reported, not recorded over


@pytest.mark.parametrize('check', [True, False])
def test_prune_spares_an_image_whose_manifest_is_wrong_while_keep_names_images(run, servers, tmp_path, check):
    """OTHER is kept by name; U's cache claims to be OTHER: U is neither kept nor pruned by that claim."""
    write_cache(tmp_path, {'manifest': S_MANIFEST, 'zpool': POOL}, U)
    write_cache(tmp_path, OTHER_CACHE, OTHER)
    host = two_images_host()
    result = run(host, check=check, prune_unused=True, keep=['minimal-64'])
    assert result['changed'] is False and result['unused'] == []
    assert [w for w in warnings_of(result) if 'is not pruned' in w and U in w]
    assert host.mutations() == []
    # by uuid, keep needs no manifest: U goes, as imgadm vacuum would
    result = run(host, check=check, prune_unused=True, keep=[OTHER])
    assert result['unused'] == [U]


@pytest.mark.parametrize('manifest, problem', [
    (dict(S_MANIFEST, uuid=U, name=5), 'the manifest\'s "name" is a JSON number, not a string'),
    (dict(S_MANIFEST, uuid=U, version=['1.0']), 'the manifest\'s "version" is a JSON array, not a string'),
    (dict(S_MANIFEST, uuid=U, published_at={'at': 1}), 'the manifest\'s "published_at" is a JSON object, not a string'),
    (dict(S_MANIFEST, uuid=U.upper()), 'holds the manifest of another image'),
    (dict(S_MANIFEST, uuid=None), 'holds the manifest of another image (uuid None)'),
])
def test_cache_fields_of_the_wrong_type_never_match_and_never_crash(run, servers, tmp_path, manifest, problem):
    write_cache(tmp_path, {'manifest': manifest, 'zpool': POOL}, U)
    write_cache(tmp_path, {'manifest': dict(S_MANIFEST, published_at=3), 'zpool': POOL}, OTHER)
    host = two_images_host()
    for args in (dict(name='minimal-64', state='absent'), dict(name='minimal-64', version='1.0', state='absent'),
                 dict(prune_unused=True, keep=['minimal-64'])):
        result = run(host, check=True, **args)
        assert 'failed' not in result, result
        assert result['changed'] is False
        assert [w for w in warnings_of(result) if U in w and problem in w]
        assert [w for w in warnings_of(result) if OTHER in w and '"published_at" is a JSON number' in w]


@pytest.mark.parametrize('body', [b'{"manifest": ', b'[' * 100000 + b']' * 100000, b'\xff\xfe', b'[]', b'{"manifest": 3}',
                                  b'{"manifest": {"uuid": "%s"}, "zpool": "other"}' % U.encode()])
def test_unreadable_cache_files_are_warned_about(run, servers, tmp_path, body):
    path = cache_path(tmp_path)
    os.makedirs(os.path.dirname(path))
    with open(path, 'wb') as f:
        f.write(body)
    result = run(installed_host(), uuid=U, state='absent', check=True)
    assert result['changed'] is True    # by uuid the image is still deleted
    assert [w for w in warnings_of(result) if path in w]


def test_a_cache_path_that_is_a_directory_is_warned_about(run, servers, tmp_path):
    os.makedirs(cache_path(tmp_path))
    result = run(installed_host(), name='base-64-lts', state='absent')
    assert 'failed' not in result and result['changed'] is False
    assert [w for w in warnings_of(result) if 'cannot be read' in w]


# -- an import killed between the rename and the cache commit --

@pytest.mark.parametrize('args', [dict(uuid=U), dict(name='base-64-lts', version='24.4.1'),
                                  dict(images=[{'uuid': U}]), dict(name='base-64-lts')])
def test_an_installed_image_without_a_cache_file_is_recorded(run, servers, tmp_path, args):
    offer(servers, SRC)
    servers.serve(SRC + '/images', [MANIFEST])
    host = installed_host()
    record = {'action': 'record', 'uuid': U, 'dataset': DS, 'source': SRC,
              'reason': 'installed without a cached manifest (an import was interrupted before recording it)'}

    check = run(host, check=True, source=[SRC], **args)
    assert check['changed'] is True and check['actions'] == [record]
    assert check['diff']['before']['images'][U] == '-'
    assert check['diff']['after']['images'][U] == 'base-64-lts@24.4.1'
    assert not os.path.exists(cache_path(tmp_path))

    real = run(host, source=[SRC], **args)
    for key in ('changed', 'actions', 'diff', 'uuid', 'image', 'results'):
        assert real.get(key) == check.get(key), key
    with open(cache_path(tmp_path)) as f:
        assert json.load(f) == {'manifest': MANIFEST, 'zpool': POOL, 'source': SRC}
    assert host.mutations() == [] and servers.file_requests() == []

    again = run(host, source=[SRC], **args)
    assert again['changed'] is False and again['actions'] == []


def test_an_installed_image_without_a_cache_file_on_no_source_is_a_warning(run, servers, tmp_path):
    result = run(installed_host(), uuid=U, source=[SRC])
    assert 'failed' not in result
    assert result['changed'] is False and result['actions'] == []
    assert [w for w in warnings_of(result) if 'has no cached manifest, and it cannot be recorded' in w and SRC in w]
    assert not os.path.exists(cache_path(tmp_path))


def test_an_installed_image_without_a_cache_file_original_layout(run, servers, tmp_path):
    offer(servers, SRC)
    os.makedirs(str(tmp_path / 'var' / 'db' / 'imgadm'))
    host = installed_host()
    result = run(host, uuid=U, source=[SRC])
    assert result['changed'] is True and result['actions'][0]['action'] == 'record'
    with open(str(tmp_path / 'var' / 'db' / 'imgadm' / ('%s.json' % U))) as f:
        assert json.load(f)['uuid'] == U
    assert ['zfs', 'set', 'imgadm:uuid=%s' % U, DS] in host.calls


def temp_cache(tmp_path, uuid=U, pool=POOL, suffix='a1b2c3d4', age=3600):
    path = os.path.join(os.path.dirname(cache_path(tmp_path)), '.%s-%s.json.%s' % (pool, uuid, suffix))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write('{"half": ')
    os.utime(path, (os.path.getmtime(path) - age,) * 2)
    return path


class LockHolder:
    """Another process holding imgadm's import lock of an image (fcntl locks belong to a process)."""

    def __init__(self, tmp_path, uuid=U):
        import subprocess
        import sys
        self.path = str(tmp_path / 'var' / 'run' / ('img.%s.import.lock' % uuid))
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        code = ('import fcntl,os,sys; fd=os.open(sys.argv[1], os.O_RDWR|os.O_CREAT, 0o644); '
                'fcntl.lockf(fd, fcntl.LOCK_EX); print("locked", flush=True); sys.stdin.read()')
        self.proc = subprocess.Popen([sys.executable, '-c', code, self.path], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == 'locked'

    def release(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def test_stale_temporary_cache_files_are_cleaned_up(run, servers, tmp_path):
    write_cache(tmp_path, {'manifest': MANIFEST, 'zpool': POOL}, U)
    stale = temp_cache(tmp_path)
    fresh = temp_cache(tmp_path, suffix='zzzzzzzz', age=0)          # a writer may still commit it
    other_pool = temp_cache(tmp_path, pool='tank')                  # another pool's: not this task's
    not_ours = temp_cache(tmp_path, suffix='abc')                   # not a name mkstemp makes
    host = installed_host()
    cleanup = {'action': 'cleanup', 'uuid': U, 'path': stale, 'reason': 'temporary cache file left by an interrupted run'}

    check = run(host, check=True, uuid=U)
    assert check['changed'] is True and check['actions'] == [cleanup]
    assert os.path.exists(stale)
    real = run(host, uuid=U)
    assert real['changed'] is True and real['actions'] == [cleanup] and real['diff'] == check['diff']
    assert not os.path.exists(stale)
    assert all(os.path.exists(p) for p in (fresh, other_pool, not_ours))
    assert run(host, uuid=U)['changed'] is False
    assert host.mutations() == []


def test_a_temporary_cache_file_of_an_import_in_progress_is_left_alone(run, servers, tmp_path):
    write_cache(tmp_path, {'manifest': MANIFEST, 'zpool': POOL}, U)
    stale = temp_cache(tmp_path)
    holder = LockHolder(tmp_path)
    try:
        result = run(installed_host(), uuid=U)
        assert result['changed'] is False and result['actions'] == []
        assert os.path.exists(stale)
    finally:
        holder.release()
    assert run(installed_host(), uuid=U)['actions'][0]['action'] == 'cleanup'
    assert not os.path.exists(stale)


def test_stale_temporary_files_of_the_original_layout_are_cleaned_up(run, servers, tmp_path):
    db = tmp_path / 'var' / 'db' / 'imgadm'
    db.mkdir(parents=True)
    (db / ('%s.json' % U)).write_text(json.dumps(dict(MANIFEST, v=2)))
    stale = db / ('.%s.json.q_w3e4r5' % U)
    stale.write_text('{')
    os.utime(str(stale), (1, 1))
    unrelated = db / '.sources.list.q_w3e4r5'
    unrelated.write_text('x')
    os.utime(str(unrelated), (1, 1))
    result = run(installed_host(), uuid=U)
    assert [a['action'] for a in result['actions']] == ['cleanup']
    assert not stale.exists() and unrelated.exists()


# -- the import lock --

def test_lock_timeout_names_the_lock_file(run, servers, tmp_path):
    offer(servers, SRC)
    host = image_host([POOL])
    holder = LockHolder(tmp_path)
    try:
        result = run(host, uuid=U, source=[SRC], lock_timeout=0)
    finally:
        holder.release()
    assert result['failed'] is True
    assert result['msg'] == 'timed out after 0s waiting for the import lock %s held by another process' % holder.path
    assert result['path'] == holder.path
    assert host.mutations() == []


def test_lock_timeout_must_not_be_negative(run, servers):
    host = image_host([POOL])
    result = run(host, uuid=U, lock_timeout=-1)
    assert result['failed'] is True and result['msg'] == 'lock_timeout must be 0 or more seconds, not -1'
    assert host.calls == []


# -- validation before anything runs --

@pytest.mark.parametrize('args, msg', [
    (dict(images=[{'uuid': U, 'stat': 'absent'}]), 'stat'),
    (dict(images=[{'uuid': U, 'state': 'absnt'}]), 'absnt'),
    (dict(images=[{'uuid': U, 'filters': ['os']}]), 'filters'),
    (dict(images=[{'uuid': U, 'filters': {'os': 'smartos'}}]), 'filters need a name'),
    (dict(images=[{'uuid': U, 'version': '1'}]), 'needs a name'),
    (dict(images=[{'uuid': U, 'name': 'a'}]), 'exactly one of'),
    (dict(), 'one of the following is required'),
    (dict(prune_unused=False), 'nothing to do'),
    (dict(update_manifests=False, prune_unused=False), 'nothing to do'),
    (dict(images=[]), 'nothing to do'),
    (dict(uuid=U, state='absnt'), 'absnt'),
])
def test_bad_tasks_fail_before_touching_the_host(run, servers, args, msg):
    host = installed_host()
    result = run(host, **args)
    assert result['failed'] is True
    assert msg in result['msg']
    assert host.calls == [] and servers.requests == []


# -- outside data: listings and the manifest asked for --

def test_bad_listing_entries_are_skipped_with_a_warning(run, servers):
    good = Image(N1, 'base-64-lts', '24.4.1', published_at='2024-11-01T00:00:00Z').offer(servers, SRC)
    listing = [dict(good.manifest, uuid=N2, published_at=20251101), dict(good.manifest, uuid=N3, published_at=None),
               dict(good.manifest, uuid='not-a-uuid'), dict(good.manifest, uuid=N4, name=['base-64-lts']),
               'a string', 7, None, {'v': 'x'}, good.manifest]
    servers.serve(SRC + '/images', listing)
    result = run(host_for([good]), check=True, name='base-64-lts', source=[SRC])
    assert 'failed' not in result, result
    assert result['uuid'] == N1     # N3 has no date: older than any dated one
    warning = [w for w in warnings_of(result) if w.startswith(SRC + ': skipped 7 bad image(s) in its listing')]
    assert warning and 'published_at is 20251101' in warning[0] and "not a UUID" in warning[0]


def test_non_string_published_at_on_installed_images_does_not_crash(run, servers, tmp_path):
    write_cache(tmp_path, {'manifest': dict(MANIFEST, published_at=5), 'zpool': POOL}, U)
    result = run(installed_host(), check=True, name='base-64-lts', version='24.4.1', state='absent')
    assert 'failed' not in result and result['changed'] is False


@pytest.mark.parametrize('bad, field', [
    (dict(files=[{'sha1': 'x', 'size': 10, 'compression': 'gzip'}]), 'files[0].sha1'),
    (dict(files=[{'sha1': 'a' * 40, 'size': '10', 'compression': 'gzip'}]), 'files[0].size'),
    (dict(origin=['x']), "origin ['x'] is not a UUID"),
    (dict(files='nope'), 'files[0] is missing'),
])
def test_a_bad_manifest_of_the_image_asked_for_is_refused_naming_the_field(run, servers, bad, field):
    offer(servers, SRC, dict(MANIFEST, **bad))
    host = image_host([POOL])
    for check in (True, False):
        result = run(host, check=check, uuid=U, source=[SRC])
        assert result['failed'] is True
        assert result['msg'].startswith('image "%s" is refused: the manifest of image %s from %s cannot be imported: '
                                        % (U, U, SRC))
        assert field in result['msg']
    assert host.mutations() == []


# -- honest results --

def test_a_chain_that_fails_part_way_reports_what_it_imported(run, servers, tmp_path):
    base, mid, top = chain_images(servers)
    offer(servers, SRC, top.manifest, file_body=b'not the file' + top.body[12:])
    host = host_for([base, mid, top])
    result = run(host, uuid=TOP, source=[SRC, SRC2])
    assert result['failed'] is True
    assert result['changed'] is True
    assert result['imported'] == [BASE, MID]
    assert 'checksum' in result['msg'] and result['msg'].endswith('(after importing %s, %s)' % (BASE, MID))
    assert 'zones/' + MID in host.datasets and 'zones/' + TOP not in host.datasets


def test_a_failure_before_anything_changed_is_not_changed(run, servers):
    image = Image(N1).offer(servers, SRC)
    offer(servers, SRC, image.manifest, file_body=b'x' * len(image.body))
    result = run(host_for([image]), uuid=N1, source=[SRC])
    assert result['failed'] is True and 'changed' not in result and 'imported' not in result


@pytest.mark.parametrize('check', [True, False])
def test_an_origin_cycle_is_reported_as_a_cycle(run, servers, check):
    Image(BASE, origin=MID).offer(servers, SRC)
    Image(MID, origin=BASE).offer(servers, SRC)
    Image(TOP, origin=MID).offer(servers, SRC)
    host = image_host([POOL])
    result = run(host, check=check, uuid=TOP, source=[SRC])
    assert result['failed'] is True
    assert result['msg'] == 'the origin chain of image %s is a cycle: %s -> %s -> %s' % (TOP, MID, BASE, MID)
    assert host.mutations() == []


@pytest.mark.parametrize('check', [True, False])
def test_a_partial_dataset_we_did_not_make_is_refused_in_check_mode_too(run, servers, check):
    offer(servers, SRC)
    partial = DS + '-partial'
    host = image_host([POOL, partial, partial + '@one', partial + '@two'])
    result = run(host, check=check, uuid=U, source=[SRC])
    assert result['failed'] is True
    assert result['msg'].startswith('dataset %s is in the way of the import of image %s' % (partial, U))
    assert '2 snapshots (one, two)' in result['msg']
    assert result['dataset'] == partial
    assert host.mutations() == []


def test_a_partial_dataset_a_kill_left_is_replaced(run, servers):
    offer(servers, SRC)
    partial = DS + '-partial'
    host = image_host([POOL, partial, partial + '@final'])
    result = run(host, uuid=U, source=[SRC])
    assert result['changed'] is True
    assert host.mutations()[0] == ['zfs', 'destroy', '-r', partial]


@pytest.mark.parametrize('check', [True, False])
def test_a_local_install_killed_before_its_commit_is_recorded_from_the_local_manifest(run, servers, tmp_path, check):
    local = tmp_path / 'files'
    local.mkdir()
    (local / 'manifest.json').write_text(json.dumps(MANIFEST))
    (local / 'image.zfs.gz').write_bytes(IMAGE_FILE)
    host = installed_host()
    result = run(host, check=check, manifest=str(local / 'manifest.json'), file=str(local / 'image.zfs.gz'))
    assert result['changed'] is True
    assert result['actions'] == [{'action': 'record', 'uuid': U, 'dataset': DS, 'source': 'file://%s' % (local / 'image.zfs.gz'),
                                  'reason': 'installed without a cached manifest (an import was interrupted before '
                                            'recording it)'}]
    assert servers.made == [] and host.mutations() == []
    assert os.path.exists(cache_path(tmp_path)) is not check
    if not check:
        with open(cache_path(tmp_path)) as f:
            assert 'source' not in json.load(f)


def test_a_cache_file_too_large_is_not_read(run, servers, tmp_path, monkeypatch):
    from ansible_collections.smartos.images.plugins.module_utils import _inventory
    monkeypatch.setattr(_inventory, 'CACHE_FILE_MAX', 100)
    write_cache(tmp_path, {'manifest': dict(MANIFEST, description='x' * 200), 'zpool': POOL}, U)
    result = run(installed_host(), name='base-64-lts', state='absent', check=True)
    assert result['changed'] is False
    assert [w for w in warnings_of(result) if 'is larger than 100 bytes' in w]


def test_update_manifests_rewrites_a_cache_file_holding_another_image(run, servers, tmp_path):
    write_cache(tmp_path, {'manifest': S_MANIFEST, 'zpool': POOL}, U)
    write_cache(tmp_path, OTHER_CACHE, OTHER)
    offer(servers, SRC)
    host = two_images_host()
    result = run(host, update_manifests=True, source=[SRC])
    assert result['actions'] == [{'action': 'refresh', 'uuid': U, 'fields': sorted(MANIFEST)}]
    assert result['diff']['before']['images'][U] == '-'
    with open(cache_path(tmp_path)) as f:
        assert json.load(f)['manifest'] == MANIFEST
    assert host.mutations() == []


def test_update_manifests_skips_an_image_whose_manifest_a_source_sends_bad(run, servers, tmp_path):
    write_cache(tmp_path, {'manifest': MANIFEST, 'zpool': POOL}, U)
    offer(servers, SRC, dict(MANIFEST, files=[{'sha1': 'no', 'size': 1, 'compression': 'gzip'}]))
    result = run(installed_host(), update_manifests=True, source=[SRC])
    assert 'failed' not in result and result['changed'] is False
    assert [w for w in warnings_of(result) if w.startswith('image %s on pool zones is not refreshed: ' % U)
            and 'files[0].sha1' in w]
    with open(cache_path(tmp_path)) as f:
        assert json.load(f)['manifest'] == MANIFEST


def test_original_layout_manifest_of_another_image_is_not_used(run, servers, tmp_path):
    db = tmp_path / 'var' / 'db' / 'imgadm'
    db.mkdir(parents=True)
    (db / ('%s.json' % U)).write_text(json.dumps(dict(MANIFEST, uuid=OTHER)))
    host = installed_host()
    result = run(host, name='base-64-lts', state='absent')
    assert result['changed'] is False and host.mutations() == []
    assert [w for w in warnings_of(result) if str(db / ('%s.json' % U)) in w and 'another image' in w]


# ---- update_manifests goes on past one image (imgadm update, reference 4.3) ----

THIRD = 'aaaa0000-1111-4222-8333-444455556666'


def test_update_manifests_goes_on_past_an_image_it_cannot_repair(run, servers, tmp_path):
    """U lost @final and its source manifest has no dataset_guid (as a DSAPI one never has): imgadm warns and goes
    on; so do we, refreshing OTHER after it, and saying per image what happened; THIRD is in no source."""
    offer(servers, SRC)                                          # U's manifest: no files[0].dataset_guid
    other = dict(MANIFEST, uuid=OTHER, name='minimal-64', version='1.0')
    servers.serve('%s/images/%s' % (SRC, OTHER), other)
    write_cache(tmp_path, OTHER_CACHE, OTHER)
    host = update_host()
    host.add('zones/' + THIRD)
    host.add('zones/%s@final' % THIRD)
    result = run(host, update_manifests=True, source=[SRC])
    assert not result.get('failed') and result['changed']
    by_uuid = {e['uuid']: e for e in result['updates']}
    assert by_uuid[U]['result'] == 'failed'
    assert 'its manifest has no files[0].dataset_guid' in by_uuid[U]['msg']
    assert by_uuid[OTHER]['result'] == 'refreshed' and by_uuid[OTHER]['source'] == SRC
    assert by_uuid[THIRD] == {'uuid': THIRD, 'result': 'not found'}
    warnings = warnings_of(result)
    assert 'Could not find image %s in image sources (skipping)' % THIRD in warnings
    assert any(w.startswith('image %s on pool zones: its @final snapshot is not repaired' % U) for w in warnings)
    assert DS + '@final' not in host.datasets
    with open(cache_path(tmp_path, OTHER)) as f:
        assert json.load(f)['manifest'] == other
    assert [a['action'] for a in result['actions']] == ['refresh', 'refresh']   # U's manifest is back-filled too


def test_update_manifests_without_snapshots_is_reported_not_fatal(run, servers, tmp_path):
    offer(servers, SRC, dict(MANIFEST, files=[dict(MANIFEST['files'][0], dataset_guid=GUID)]))
    host = image_host(pool_with_other_image() + [(DS, None, '/' + DS)])
    result = run(host, check=True, update_manifests=True, source=[SRC])
    entry = [e for e in result['updates'] if e['uuid'] == U][0]
    assert not result.get('failed')
    assert entry['result'] == 'failed' and entry['msg'] == 'image "%s" is missing its original snapshot' % U


# ---- state present on a dataset imgadm's list hides (reference 2.2, 3.1 step 3) ----

@pytest.mark.parametrize('row, zone_roots, why', [
    ((DS, None, '/' + DS, 'true'), None, 'its imgadm:ignore property is set'),
    ((DS, None, '/' + DS), '1:z:running:/%s:%s:joyent:excl:1\n' % (DS, U), 'it is the root of a zone (a VM)'),
])
def test_present_on_a_hidden_dataset_is_already_installed_as_imgadm_says(run, servers, row, zone_roots, why):
    offer(servers, SRC)
    host = image_host(pool_with_other_image() + [row, (DS + '@final',)], zone_roots=zone_roots)
    for check in (True, False):
        result = run(host, check=check, uuid=U, source=[SRC])
        assert not result.get('failed') and result['changed'] is False and result['imported'] == []
        assert result['uuid'] == U
        assert any(w.startswith('image %s: dataset %s exists but imgadm\'s list hides it (%s' % (U, DS, why))
                   for w in warnings_of(result))
    assert host.mutations() == [] and servers.requests == []
    refused = run(host, uuid=U, state='absent')
    assert refused['failed'] and 'exists but is not an image' in refused['msg'] and 'refusing to delete' in refused['msg']


def test_name_filters_refuse_fields_of_where_an_image_is(run, servers):
    host = installed_host()
    result = run(host, name='base-64-lts', filters={'clones': 0}, source=[SRC])
    assert result['failed'] and host.calls == [] and servers.requests == []
    assert result['msg'].startswith('filter field "clones" is not a field of the images a name matches')


def test_name_filters_on_pub_and_size_match_as_imgadm_avail(run, servers):
    servers.serve(SRC + '/images', [dict(MANIFEST, published_at='2024-12-05T09:54:41Z')])
    host = installed_host()
    for filters, found in (({'pub': '2024-12-05'}, True), ({'size': len(IMAGE_FILE)}, True), ({'pub': '2023'}, False)):
        result = run(host, check=True, name='base-64-lts', filters=filters, source=[SRC])
        assert bool(result.get('failed')) is not found, result


def test_a_listing_entry_without_v_is_skipped_not_the_whole_source(run, servers):
    """imgadm avail lists what the server sent; one entry without "v" must not hide the source's other images."""
    good = Image(N1, 'base-64-lts', '24.4.1', published_at='2024-11-01T00:00:00Z').offer(servers, SRC)
    newer = {k: v for k, v in dict(good.manifest, uuid=N2, published_at='2025-11-01T00:00:00Z').items() if k != 'v'}
    servers.serve(SRC + '/images', [newer, good.manifest])
    result = run(host_for([good]), check=True, name='base-64-lts', source=[SRC])
    assert 'failed' not in result and result['uuid'] == N1
    assert any(w.startswith(SRC + ': skipped 1 bad image(s) in its listing: entry 0') and 'does not have a "v"' in w
               for w in warnings_of(result))
