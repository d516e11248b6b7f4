# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_inventory.py: imgadm's "what is installed" rules on recorded listings."""

from __future__ import annotations

import pytest

from ansible_collections.smartos.images.plugins.module_utils._errors import CommandError
from ansible_collections.smartos.images.plugins.module_utils._inventory import (
    Inventory, ignore_flag, load_inventory, parse_zone_roots,
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
def test_dependents(inventory, dataset, clones):
    assert inventory().dependents(dataset) == clones


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


class FakeRunner(ScriptedRunner):
    """A scripted runner built as (paths, answers by command)."""

    def __init__(self, paths, answers):
        super().__init__(answers, paths=paths)


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
    runner = FakeRunner({'zoneadm': '/usr/sbin/zoneadm'},
                        {'zoneadm': (1, '', 'zoneadm: failed to get zone list\n'), 'zfs': (0, '', '')})
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
