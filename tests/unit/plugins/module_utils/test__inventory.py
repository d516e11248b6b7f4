# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_inventory.py: imgadm's "what is installed" rules on recorded listings."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.smartos.images.plugins.module_utils import _inventory
from ansible_collections.smartos.images.plugins.module_utils._errors import CommandError
from ansible_collections.smartos.images.plugins.module_utils._host import HostPaths
from ansible_collections.smartos.images.plugins.module_utils._inventory import (
    CachedManifests, Inventory, cached_problem, ignore_flag, load_inventory, parse_zone_roots, read_cached_manifest,
)
from ansible_collections.smartos.images.plugins.module_utils._zfs import Zfs, parse_list
from ansible_collections.smartos.images.tests.unit.fakehost import (
    BASE, BHYVE_VM, COPY, IGN_FALSE, IGN_GARBAGE, IGN_TRUE, IGN_YES, INCR, KVM_IMG, KVM_VM, NO_FINAL, PARTIAL,
    SNAP_CLONE, UPPER, VM, FakeHost, ScriptedRunner, fixture, smartos_host,
)


def smartos(with_zones=True):
    roots = parse_zone_roots(fixture('zoneadm_list_pc_smartos.txt')) if with_zones else ()
    return Inventory(parse_list(fixture('zfs_list_smartos.txt')), roots)


def zfs_fuse():
    return Inventory(parse_list(fixture('zfs_list_zfs_fuse.txt')))


IMAGE = 'image'
NEITHER = 'neither'  # not named <pool>/<uuid>: outside the rules, in neither dict


@pytest.mark.parametrize('inventory, name, expected', [
    # images with @final, on a pool with and one without digits
    (smartos, 'zones/' + BASE, IMAGE),
    (smartos, 'zones2/' + BASE, IMAGE),
    (zfs_fuse, 'tank1/' + BASE, IMAGE),
    # an incremental image: a clone of its origin's @final that has its own @final
    (smartos, 'zones/' + INCR, IMAGE),
    (smartos, 'zones2/' + INCR, IMAGE),
    (zfs_fuse, 'tank1/' + INCR, IMAGE),
    # a zvol image
    (smartos, 'zones/' + KVM_IMG, IMAGE),
    # an OS VM: zone root, and a clone of an image @final without its own
    (smartos, 'zones/' + VM, 'it is the root of a zone (a VM), not an image'),
    # KVM / bhyve VMs: their zone roots are plain datasets, only zoneadm tells them apart
    (smartos, 'zones/' + KVM_VM, 'it is the root of a zone (a VM), not an image'),
    (smartos, 'zones/' + BHYVE_VM, 'it is the root of a zone (a VM), not an image'),
    # their disks are not named <pool>/<uuid>
    (smartos, 'zones/%s-disk0' % KVM_VM, NEITHER),
    (smartos, 'zones/%s/disk0' % BHYVE_VM, NEITHER),
    # imgadm:ignore
    (smartos, 'zones/' + IGN_TRUE, 'its imgadm:ignore property is set'),
    (smartos, 'zones/' + IGN_YES, 'its imgadm:ignore property is set'),
    (smartos, 'zones/' + IGN_FALSE, IMAGE),
    (smartos, 'zones/' + IGN_GARBAGE, IMAGE),
    # a clone of an @final without an @final of its own (a copy made by hand, not a zone)
    (smartos, 'zones/' + COPY, 'it is a clone of zones/%s@final with no @final snapshot of its own (a VM disk or copy)' % BASE),
    # imgadm only looks at @final origins: a clone of another snapshot counts as an image
    (smartos, 'zones/' + SNAP_CLONE, IMAGE),
    (zfs_fuse, 'tank1/' + COPY, IMAGE),
    # imported by an imgadm older than 2.0.3: no @final, still an image
    (smartos, 'zones/' + NO_FINAL, IMAGE),
    # everything else is outside the rules
    (smartos, 'zones/%s-partial' % PARTIAL, NEITHER),
    (smartos, 'zones/' + UPPER, NEITHER),
    (smartos, 'zones/%s@final' % BASE, NEITHER),
    (smartos, 'zones/%s/data' % VM, NEITHER),
    (smartos, 'zones/cores/' + VM, NEITHER),
    (smartos, 'zones', NEITHER),
    (smartos, 'zones/archive', NEITHER),
    (smartos, 'zones/global', NEITHER),
    (smartos, 'zones/dump', NEITHER),
    (zfs_fuse, 'tank1/%s/child' % BASE, NEITHER),
])
def test_is_it_an_image(inventory, name, expected):
    inv = inventory()
    assert name in inv.datasets
    if expected == IMAGE:
        pool, uuid = name.split('/')
        assert inv.images[name] == (pool, uuid)
        assert inv.is_image(pool, uuid)
        assert name not in inv.not_images
    elif expected == NEITHER:
        assert name not in inv.images
        assert name not in inv.not_images
    else:
        assert name not in inv.images
        assert inv.not_images[name] == expected


def test_every_image_and_not_image_of_the_smartos_listing():
    inv = smartos()
    assert sorted(inv.images) == sorted(
        ['zones/' + u for u in (BASE, INCR, KVM_IMG, IGN_FALSE, IGN_GARBAGE, SNAP_CLONE, NO_FINAL)]
        + ['zones2/' + BASE, 'zones2/' + INCR])
    assert sorted(inv.not_images) == sorted('zones/' + u for u in (VM, KVM_VM, BHYVE_VM, IGN_TRUE, IGN_YES, COPY))


def test_without_zone_roots_kvm_and_bhyve_vms_look_like_images():
    # the reason load_inventory asks zoneadm where it exists
    inv = smartos(with_zones=False)
    assert inv.is_image('zones', KVM_VM)
    assert inv.is_image('zones', BHYVE_VM)
    # an OS VM is still caught as a clone of an @final without its own
    assert inv.not_images['zones/' + VM].startswith('it is a clone of zones/%s@final' % BASE)


def test_zone_root_reason_wins_over_clone_reason():
    assert smartos().not_images['zones/' + VM] == 'it is the root of a zone (a VM), not an image'


@pytest.mark.parametrize('inventory, dataset, clones', [
    # the base has: an incremental image, an OS VM, a copy (all of @final), a clone of another snapshot
    (smartos, 'zones/' + BASE, sorted('zones/' + u for u in (COPY, SNAP_CLONE, INCR, VM))),
    (smartos, 'zones2/' + BASE, ['zones2/' + INCR]),
    # VM disks of both layouts
    (smartos, 'zones/' + KVM_IMG, sorted(['zones/%s-disk0' % KVM_VM, 'zones/%s/disk0' % BHYVE_VM])),
    (smartos, 'zones/' + INCR, []),
    (smartos, 'zones/' + VM, []),
    (smartos, 'zones/no-such-dataset', []),
    # a clone of a child dataset's snapshot belongs to the child, not to the image itself
    (zfs_fuse, 'tank1/%s/child' % BASE, ['tank1/' + COPY]),
    (zfs_fuse, 'tank1/' + BASE, ['tank1/' + INCR]),
])
def test_clones_of(inventory, dataset, clones):
    assert inventory().clones_of(dataset) == clones


@pytest.mark.parametrize('inventory, pool, uuids', [
    (smartos, 'zones', sorted([BASE, INCR, KVM_IMG, IGN_FALSE, IGN_GARBAGE, SNAP_CLONE, NO_FINAL])),
    (smartos, 'zones2', [BASE, INCR]),
    (smartos, 'zone', []),      # a prefix of a pool name is another pool
    (zfs_fuse, 'tank1', sorted([BASE, INCR, COPY])),
    (zfs_fuse, 'zones', []),
])
def test_images_on(inventory, pool, uuids):
    assert inventory().images_on(pool) == uuids


@pytest.mark.parametrize('value, ignored', [
    (None, False),
    ('true', True),
    ('yes', True),
    ('false', False),
    ('no', False),
    ('garbage', False),
    ('', False),
])
def test_ignore_flag(value, ignored):
    assert ignore_flag(value) is ignored


@pytest.mark.parametrize('value', ['TRUE', 'Yes', ' true '])
def test_ignore_flag_is_case_sensitive_as_in_imgadm(value):
    assert ignore_flag(value) is False


def test_parse_zone_roots_recorded():
    assert parse_zone_roots(fixture('zoneadm_list_pc_smartos.txt')) == {
        '/', '/zones/' + VM, '/zones/' + KVM_VM, '/zones/' + BHYVE_VM}


@pytest.mark.parametrize('text, roots', [
    ('', set()),
    ('\n', set()),
    ('0:global:running', set()),                      # too short: no zonepath field
    ('1:z1:running::uuid:joyent:excl:1', set()),      # empty zonepath
    ('1:z1:installed:/zones/z1', {'/zones/z1'}),
])
def test_parse_zone_roots(text, roots):
    assert parse_zone_roots(text) == roots


def test_load_inventory_asks_zoneadm_where_it_exists():
    host = smartos_host()
    inv = load_inventory(Zfs(host), host, 'zones')
    assert host.calls == [['zoneadm', 'list', '-pc'],
                          ['zfs', 'list', '-H', '-o', 'name,origin,mountpoint,imgadm:ignore', '-t',
                           'filesystem,volume,snapshot', '-r', 'zones']]
    assert not inv.is_image('zones', KVM_VM)
    assert inv.not_images['zones/' + BHYVE_VM] == 'it is the root of a zone (a VM), not an image'


def test_load_inventory_without_zoneadm_runs_only_zfs():
    host = FakeHost.recorded(fixture('zfs_list_zfs_fuse.txt'))
    inv = load_inventory(Zfs(host), host, 'tank1')
    assert [c[0] for c in host.calls] == ['zfs']
    assert inv.images_on('tank1') == sorted([BASE, INCR, COPY])


def test_load_inventory_zoneadm_failure():
    runner = ScriptedRunner({'zoneadm': (1, '', 'zoneadm: failed to get zone list\n'), 'zfs': (0, '', '')},
                            paths={'zoneadm': '/usr/sbin/zoneadm'})
    with pytest.raises(CommandError) as exc:
        load_inventory(Zfs(runner), runner, 'zones')
    assert exc.value.msg == 'zoneadm list -pc failed: zoneadm: failed to get zone list'
    assert exc.value.evidence['rc'] == 1
    assert [c[0] for c in runner.calls] == ['zoneadm']


def test_load_inventory_missing_pool():
    host = FakeHost(['zones'])
    with pytest.raises(CommandError) as exc:
        load_inventory(Zfs(host), host, 'nopool')
    assert 'nopool' in exc.value.msg


@pytest.mark.parametrize('text, roots', [
    ('1:z1:running:/zones/a\\:b:%s:joyent:excl:1\n' % ('c0ffee00-1111-4222-8333-444455556603'), {'/zones/a:b'}),
    ('1:z1:running:/zones/back\\\\slash:u:joyent:excl:1\n', {'/zones/back\\slash'}),
    ('1:z1:running\n\n::::\n', set()),
])
def test_parse_zone_roots_escaped_colons(text, roots):
    assert parse_zone_roots(text) == roots


@pytest.mark.parametrize('text', [None, b'0:global:running:/::liveimg:shared:0'])
def test_parse_zone_roots_refuses_what_is_not_text(text):
    with pytest.raises(CommandError):
        parse_zone_roots(text)


# ---- cached manifests: the one reader ----

U = '2f1dc911-6401-4fa4-8e9d-67ea2e39c271'
OTHER = '7b5981c4-1889-11e7-b4c5-3f3bdfc9b88b'


@pytest.mark.parametrize('info, problem', [
    ({'manifest': {'uuid': U, 'name': 'a', 'version': '1', 'published_at': '2024-01-01T00:00:00Z'}, 'zpool': 'zones'},
     None),
    ({'manifest': {'uuid': U}}, None),
    ({'manifest': {'uuid': U, 'name': None}}, None),          # absent and null are the same to a reader
    ([], 'is not a JSON object'),
    ('text', 'is not a JSON object'),
    ({}, 'has no "manifest" object'),
    ({'manifest': [U]}, 'has no "manifest" object'),
    ({'manifest': {'uuid': OTHER}}, "holds the manifest of another image (uuid '%s')" % OTHER),
    ({'manifest': {'name': 'a'}}, 'holds the manifest of another image (uuid None)'),
    ({'manifest': {'uuid': U}, 'zpool': 'tank'}, "is for pool 'tank'"),
    ({'manifest': {'uuid': U, 'name': 5}}, 'has fields of the wrong type: the manifest\'s "name" is a JSON number, '
                                           'not a string'),
    ({'manifest': {'uuid': U, 'name': 'a', 'version': 1.0, 'published_at': []}},
     'has fields of the wrong type: the manifest\'s "version" is a JSON number, not a string; '
     'the manifest\'s "published_at" is a JSON array, not a string'),
    ({'manifest': {'uuid': U, 'os': True}, 'source': 7}, 'has fields of the wrong type: the manifest\'s "os" is a JSON '
                                                         'boolean, not a string; "source" is a JSON number, not a URL string'),
    ({'manifest': {'uuid': U, 'name': 'x' * 500 + 'y'}}, None),
    ({'manifest': {'uuid': ['x' * 500]}}, "holds the manifest of another image (uuid ['%s...)" % ('x' * 75)),
])
def test_cached_problem(info, problem):
    assert cached_problem(info, U, 'zones') == problem


def test_cached_problem_without_a_pool_does_not_check_it():
    assert cached_problem({'manifest': {'uuid': U}, 'zpool': 'tank'}, U) is None


def put(path, body):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(body if isinstance(body, bytes) else json.dumps(body).encode())


@pytest.mark.parametrize('layout', ['modern', 'original'])
def test_read_cached_manifest_ok_and_missing(tmp_path, layout):
    paths = HostPaths(str(tmp_path))
    assert read_cached_manifest(paths, layout, 'zones', U).state == 'missing'
    put(paths.image_cache('zones', U), {'manifest': {'uuid': U, 'name': 'a'}, 'zpool': 'zones', 'source': 'https://s'})
    cached = read_cached_manifest(paths, layout, 'zones', U)
    assert (cached.state, cached.manifest, cached.source, cached.problem) == ('ok', {'uuid': U, 'name': 'a'},
                                                                              'https://s', None)
    assert cached.path == paths.image_cache('zones', U)


def test_read_cached_manifest_original_layout_reads_v1s_record(tmp_path):
    paths = HostPaths(str(tmp_path))
    put(paths.original_manifest(U), {'v': 2, 'uuid': U, 'name': 'a', '_url': 'https://s'})
    cached = read_cached_manifest(paths, 'original', 'zones', U)
    assert (cached.state, cached.manifest['name'], cached.source) == ('ok', 'a', 'https://s')
    assert read_cached_manifest(paths, 'modern', 'zones', U).state == 'missing'   # modern imgadm never reads it


@pytest.mark.parametrize('body, words', [
    (b'{"manifest": ', 'cannot be read: '),
    (b'\xff\xfe', 'cannot be read: '),
    (b'[' * 100000 + b']' * 100000, 'cannot be read: '),
    ({'manifest': {'uuid': OTHER}}, 'holds the manifest of another image'),
])
def test_read_cached_manifest_bad_files_name_the_file_and_give_nothing(tmp_path, body, words):
    paths = HostPaths(str(tmp_path))
    put(paths.image_cache('zones', U), body)
    cached = read_cached_manifest(paths, 'modern', 'zones', U)
    assert cached.state == 'bad' and cached.manifest is None and cached.source is None
    assert cached.problem.startswith('cache file %s %s' % (paths.image_cache('zones', U), words))


@pytest.mark.parametrize('record', [[], 'a3e0', {'uuid': U, 'name': 'no v, no creator_uuid'}])
def test_read_cached_manifest_bad_v1_records(tmp_path, record):
    paths = HostPaths(str(tmp_path))
    put(paths.original_manifest(U), record)
    cached = read_cached_manifest(paths, 'original', 'zones', U)
    assert cached.state == 'bad' and cached.problem.startswith('cache file %s cannot be read: '
                                                               % paths.original_manifest(U))


def test_read_cached_manifest_directory_and_size_limit(tmp_path, monkeypatch):
    paths = HostPaths(str(tmp_path))
    os.makedirs(paths.image_cache('zones', U))
    assert read_cached_manifest(paths, 'modern', 'zones', U).problem == \
        'cache file %s cannot be read: Is a directory' % paths.image_cache('zones', U)
    put(paths.image_cache('zones', OTHER), {'manifest': {'uuid': OTHER, 'description': 'x' * 200}})
    monkeypatch.setattr(_inventory, 'CACHE_FILE_MAX', 100)
    assert 'is larger than 100 bytes' in read_cached_manifest(paths, 'modern', 'zones', OTHER).problem


def test_cached_manifests_reads_each_file_once(tmp_path):
    paths = HostPaths(str(tmp_path))
    put(paths.image_cache('zones', U), {'manifest': {'uuid': U}})
    cache = CachedManifests(paths, 'modern')
    first = cache.get('zones', U)
    os.remove(paths.image_cache('zones', U))
    assert cache.get('zones', U) is first and first.state == 'ok'
    assert cache.get('zones2', U).state == 'missing'
