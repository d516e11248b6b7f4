# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_plan.py: clones, the not-an-image refusal, deletion order, vacuum and diff, as tables."""

from __future__ import annotations

import itertools

import pytest

from ansible_collections.smartos.images.plugins.module_utils import _plan
from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, ImageInUse
from ansible_collections.smartos.images.plugins.module_utils._inventory import Inventory, parse_zone_roots
from ansible_collections.smartos.images.plugins.module_utils._plan import (
    check_is_image, check_partial, clones_of_tree, deletion_order, diff_after, foreign_partial, unused_images,
)
from ansible_collections.smartos.images.plugins.module_utils._resolver import Found
from ansible_collections.smartos.images.plugins.module_utils._zfs import Dataset, parse_list
from ansible_collections.smartos.images.tests.unit import fakehost
from ansible_collections.smartos.images.tests.unit.fakehost import fixture

U = '2f1dc911-6401-4fa4-8e9d-67ea2e39c271'
OTHER = '7b5981c4-1889-11e7-b4c5-3f3bdfc9b88b'
VM1 = 'c0ffee00-1111-4222-8333-444455556603'
VM2 = 'c0ffee00-1111-4222-8333-444455556604'
VM3 = 'c0ffee00-1111-4222-8333-444455556605'
DS = 'zones/' + U
# a chain base <- parent <- top whose UUIDs sort base first, and one whose UUIDs sort top first
BASE, MID, TOP = ('10000000-0000-4000-8000-00000000000%d' % i for i in (1, 2, 3))
RBASE, RMID, RTOP = ('20000000-0000-4000-8000-00000000000%d' % i for i in (3, 2, 1))
ZVOL = '30000000-0000-4000-8000-000000000001'   # a zvol image for KVM/bhyve VMs
NAMES = dict(U=U, OTHER=OTHER, VM1=VM1, VM2=VM2, VM3=VM3, BASE=BASE, MID=MID, TOP=TOP,
             RBASE=RBASE, RMID=RMID, RTOP=RTOP, ZVOL=ZVOL)


def listing(text):
    """Recorded-style `zfs list -H -o name,origin,mountpoint,imgadm:ignore` text, written here with aligned columns."""
    return ''.join('\t'.join(line.split()) + '\n' for line in text.format(**NAMES).splitlines() if line.strip())


def inventory(*texts, zone_roots=''):
    """An Inventory from listing texts and `zoneadm list -pc` text, through the real parsers."""
    return Inventory(parse_list(''.join(listing(t) for t in texts)), parse_zone_roots(zone_roots.format(**NAMES)))


POOL = '''
zones                 -                     /zones               -
'''
CHAIN = '''
zones/{BASE}          -                     /zones/{BASE}        -
zones/{BASE}@final    -                     -                    -
zones/{MID}           zones/{BASE}@final    /zones/{MID}         -
zones/{MID}@final     -                     -                    -
zones/{TOP}           zones/{MID}@final     /zones/{TOP}         -
zones/{TOP}@final     -                     -                    -
'''
REVERSED_CHAIN = '''
zones/{RBASE}         -                     /zones/{RBASE}       -
zones/{RBASE}@final   -                     -                    -
zones/{RMID}          zones/{RBASE}@final   /zones/{RMID}        -
zones/{RMID}@final    -                     -                    -
zones/{RTOP}          zones/{RMID}@final    /zones/{RTOP}        -
zones/{RTOP}@final    -                     -                    -
'''
# an OS VM whose zone root is a clone of the top image
VM_ON_TOP = '''
zones/{VM1}           zones/{TOP}@final     /zones/{VM1}         -
'''
VM_ON_TOP_ZONES = '1:{VM1}:running:/zones/{VM1}:{VM1}:joyent:excl:1\n'
ZVOL_IMAGE = '''
zones/{ZVOL}          -                     -                    -
zones/{ZVOL}@final    -                     -                    -
'''
# a KVM VM: zone root plus <pool>/<uuid>-disk0 cloned from the zvol image
KVM_VM = '''
zones/{VM2}           -                     /zones/{VM2}         -
zones/{VM2}-disk0     zones/{ZVOL}@final    -                    -
'''
# a bhyve VM: zone root plus <pool>/<uuid>/disk0 cloned from the zvol image
BHYVE_VM = '''
zones/{VM3}           -                     /zones/{VM3}         -
zones/{VM3}/disk0     zones/{ZVOL}@final    -                    -
'''
VM_ZONES = '2:{VM2}:running:/zones/{VM2}:{VM2}:kvm:excl:2\n-:{VM3}:installed:/zones/{VM3}:{VM3}:bhyve:excl:0\n'
# the base image has a child dataset whose snapshot was cloned
CHILD_DATASET_CLONE = '''
zones/{BASE}/x        -                     /zones/{BASE}/x      -
zones/{BASE}/x@s      -                     -                    -
zones/{OTHER}-copy    zones/{BASE}/x@s      /zones/copy          -
'''
# the same chain and a VM on a second pool
SECOND_POOL = '''
zones2                -                     /zones2              -
zones2/{BASE}         -                     /zones2/{BASE}       -
zones2/{BASE}@final   -                     -                    -
zones2/{MID}          zones2/{BASE}@final   /zones2/{MID}        -
zones2/{MID}@final    -                     -                    -
zones2/{VM1}          zones2/{MID}@final    /zones2/{VM1}        -
zones2/{OTHER}        -                     /zones2/{OTHER}      -
zones2/{OTHER}@final  -                     -                    -
'''
SECOND_POOL_ZONES = '3:{VM1}:running:/zones2/{VM1}:{VM1}:joyent:excl:3\n'

# ---- clones_of_tree ----

INSTALLED = POOL + '''
zones/{U}             -                     /zones/{U}           -
zones/{U}@final       -                     -                    -
'''


def test_clones_of_tree_covers_children_but_not_name_prefixes():
    inv = inventory(INSTALLED, '''
zones/{U}/data        -                     /zones/{U}/data      -
zones/{U}/data@snap   -                     -                    -
zones/{OTHER}-copy    zones/{U}/data@snap   /zones/copy          -
zones/{U}-partial     -                     -                    -
zones/{U}-partial@x   -                     -                    -
zones/p               zones/{U}-partial@x   /zones/p             -
''')
    assert clones_of_tree(inv, DS) == ['zones/%s-copy' % OTHER]
    assert clones_of_tree(inv, DS + '-partial') == ['zones/p']


def test_clones_of_tree_sorted_and_unique():
    inv = inventory(INSTALLED, '''
zones/{U}/a           -                     -                    -
zones/{U}/a@s         -                     -                    -
zones/z               zones/{U}/a@s         -                    -
zones/b               zones/{U}@final       -                    -
zones/a               zones/{U}@final       -                    -
zones/{U}@older       -                     -                    -
zones/b2              zones/{U}@older       -                    -
''')
    assert clones_of_tree(inv, DS) == ['zones/a', 'zones/b', 'zones/b2', 'zones/z']


# ---- check_is_image ----

ZONE_OF_U = '1:z:running:/zones/{U}:{U}:joyent:excl:1\n'


@pytest.mark.parametrize('state, verb', [('present', 'import over'), ('absent', 'delete')])
@pytest.mark.parametrize('text, zone_roots, why', [
    (POOL + 'zones/{U}  -  /zones/{U}  -', ZONE_OF_U, 'it is the root of a zone (a VM), not an image'),
    (INSTALLED + 'zones/{U}/data  -  /zones/{U}/data  -', ZONE_OF_U, 'it is the root of a zone (a VM), not an image'),
    (POOL + 'zones/{U}  -  /zones/{U}  true\nzones/{U}@final  -  -  -', '', 'its imgadm:ignore property is set'),
    (POOL + 'zones/{U}  -  /zones/{U}  yes\nzones/{U}@final  -  -  -', '', 'its imgadm:ignore property is set'),
    (POOL + 'zones/{U}  zones/{OTHER}@final  /zones/{U}  -', '',
     'it is a clone of zones/%s@final with no @final snapshot of its own (a VM disk or copy)' % OTHER),
])
def test_check_is_image_refuses_a_dataset_that_is_not_an_image(state, verb, text, zone_roots, why):
    with pytest.raises(ImageError) as exc:
        check_is_image('zones', U, inventory(text, zone_roots=zone_roots), state)
    assert not isinstance(exc.value, ImageInUse)     # nothing to delete or promote
    assert exc.value.msg == 'dataset %s exists but is not an image: %s; refusing to %s it' % (DS, why, verb)
    assert exc.value.evidence == {'dataset': DS}


@pytest.mark.parametrize('state', ['present', 'absent'])
@pytest.mark.parametrize('text', [
    POOL,                                                       # nothing there
    INSTALLED,                                                  # an image
    INSTALLED + 'zones/{VM1}  zones/{U}@final  /zones/{VM1}  -',  # an image in use
    POOL + 'zones/{U}  -  /zones/{U}  false',                   # imgadm:ignore=false keeps it an image
    POOL + 'zones/{U}  -  /zones/{U}  garbage',                 # imgadm warns and keeps it
    POOL + 'zones/{U}  zones/{OTHER}@older  /zones/{U}  -',     # a clone of a snapshot that is not @final
    POOL + 'zones/{U}-disk0  zones/{OTHER}@final  -  -',        # a VM disk is not named <pool>/<uuid>
    POOL + 'zones/{U}-partial  -  /zones/{U}-partial  true',    # neither is a leftover -partial
])
def test_check_is_image_lets_images_and_free_names_pass(state, text):
    assert check_is_image('zones', U, inventory(text, zone_roots=VM_ON_TOP_ZONES), state) is None


def test_check_is_image_looks_at_the_given_pool_only():
    inv = inventory(POOL, 'zones2  -  /zones2  -\nzones2/{U}  -  /zones2/{U}  true')
    assert check_is_image('zones', U, inv, 'present') is None
    with pytest.raises(ImageError) as exc:
        check_is_image('zones2', U, inv, 'absent')
    assert exc.value.evidence == {'dataset': 'zones2/' + U}


# ---- deletion_order: children before origins; a refusal names exactly the users that stay ----

@pytest.mark.parametrize('uuids', list(itertools.permutations([BASE, MID, TOP])))
def test_deletion_order_children_before_origins(uuids):
    assert deletion_order(inventory(POOL, CHAIN), 'zones', list(uuids)) == [TOP, MID, BASE]


@pytest.mark.parametrize('uuids', list(itertools.permutations([RBASE, RMID, RTOP])))
def test_deletion_order_does_not_follow_uuid_order(uuids):
    assert deletion_order(inventory(POOL, REVERSED_CHAIN), 'zones', list(uuids)) == [RTOP, RMID, RBASE]


@pytest.mark.parametrize('uuids, order', [
    ([], []),
    ([TOP], [TOP]),
    ([TOP, MID], [TOP, MID]),
    ([MID, TOP], [TOP, MID]),
    ([TOP, TOP, MID, BASE, MID], [TOP, MID, BASE]),       # duplicates: each once
    ([BASE, BASE, BASE, TOP, MID, TOP], [TOP, MID, BASE]),
    ([OTHER], [OTHER]),                                    # not installed: nothing uses it
    ([OTHER, TOP, OTHER], [OTHER, TOP]),                   # unrelated images keep their order
])
def test_deletion_order(uuids, order):
    inv = inventory(POOL, CHAIN)
    given = list(uuids)
    assert deletion_order(inv, 'zones', uuids) == order
    assert uuids == given   # the input list is not changed


def test_deletion_order_ignores_users_on_other_pools():
    inv = inventory(POOL, CHAIN, SECOND_POOL, zone_roots=SECOND_POOL_ZONES)   # zones2/MID has a VM
    assert deletion_order(inv, 'zones', [BASE, MID, TOP]) == [TOP, MID, BASE]
    with pytest.raises(ImageInUse) as exc:
        deletion_order(inv, 'zones2', [BASE, MID])
    assert exc.value.evidence == {'dataset': 'zones2/' + MID, 'clones': ['zones2/' + VM1]}


IMAGE_WITH_VMS = INSTALLED + '''
zones/{VM1}           zones/{U}@final       /zones/{VM1}         -
zones/{VM2}-disk0     zones/{U}@final       -                    -
zones/{VM3}           -                     /zones/{VM3}         -
zones/{VM3}/disk0     zones/{U}@final       -                    -
'''
IMAGE_WITH_VMS_ZONES = '1:{VM1}:running:/zones/{VM1}:{VM1}:joyent:excl:1\n-:{VM3}:installed:/zones/{VM3}:{VM3}:bhyve:excl:0\n'


@pytest.mark.parametrize('texts, zone_roots, uuids, image, clones', [
    # an OS VM, a KVM disk and a bhyve disk: all named, sorted
    ((IMAGE_WITH_VMS,), IMAGE_WITH_VMS_ZONES, [U], U,
     ['zones/' + VM1, 'zones/%s-disk0' % VM2, 'zones/%s/disk0' % VM3]),
    # a child image that is not deleted
    ((POOL, CHAIN), '', [BASE], BASE, ['zones/' + MID]),
    ((POOL, CHAIN), '', [TOP, BASE], BASE, ['zones/' + MID]),
    # the origin's user is going too: only the top's user is named, on the top
    ((POOL, CHAIN), '', [BASE, MID], MID, ['zones/' + TOP]),
    ((POOL, CHAIN, VM_ON_TOP), VM_ON_TOP_ZONES, [BASE, MID, TOP], TOP, ['zones/' + VM1]),
    ((POOL, CHAIN, VM_ON_TOP), VM_ON_TOP_ZONES, [BASE, TOP, BASE, MID], TOP, ['zones/' + VM1]),
    # a clone of a child dataset's snapshot (<pool>/<uuid>/x@s)
    ((POOL, CHAIN, CHILD_DATASET_CLONE), '', [TOP, MID, BASE], BASE, ['zones/%s-copy' % OTHER]),
    # a clone of a snapshot other than @final
    ((INSTALLED, 'zones/{U}@older  -  -  -\nzones/{VM1}  zones/{U}@older  /zones/{VM1}  -'), '', [U], U, ['zones/' + VM1]),
])
def test_deletion_order_refuses_an_image_in_use(texts, zone_roots, uuids, image, clones):
    with pytest.raises(ImageInUse) as exc:
        deletion_order(inventory(*texts, zone_roots=zone_roots), 'zones', uuids)
    assert exc.value.msg == 'image "%s" has dependent clones: %s; delete or promote them first' % (image, ', '.join(clones))
    assert exc.value.evidence == {'dataset': 'zones/' + image, 'clones': clones}


# a clone inside the image's own tree: `zfs destroy -r` takes it along (zfs_main.c destroy_check_dependent skips descendants)
SELF_CLONE = INSTALLED + '''
zones/{U}/b           -                     -                    -
zones/{U}/b@s         -                     -                    -
zones/{U}/a           zones/{U}/b@s         -                    -
'''


@pytest.mark.parametrize('what', ['deletion_order', 'unused_images'])
def test_a_clone_inside_the_image_itself_does_not_keep_it(what):
    inv = inventory(SELF_CLONE)
    if what == 'deletion_order':
        assert deletion_order(inv, 'zones', [U]) == [U]
    else:
        assert unused_images(inv, 'zones', set()) == [U]


# ---- unused_images: imgadm vacuum, again and again until nothing more is free ----

@pytest.mark.parametrize('texts, zone_roots, keep, going, unused', [
    # an unused chain goes, top to base, whatever order its UUIDs sort in
    ((POOL, CHAIN), '', (), (), [TOP, MID, BASE]),
    ((POOL, REVERSED_CHAIN), '', (), (), [RTOP, RMID, RBASE]),
    # a VM on the top keeps the whole chain
    ((POOL, CHAIN, VM_ON_TOP), VM_ON_TOP_ZONES, (), (), []),
    ((POOL, CHAIN, VM_ON_TOP, REVERSED_CHAIN), VM_ON_TOP_ZONES, (), (), [RTOP, RMID, RBASE]),
    # KVM (<uuid>-disk0) and bhyve (<uuid>/disk0) disks keep their image (smartos-live #771); their zone roots are no images
    ((POOL, ZVOL_IMAGE, KVM_VM), VM_ZONES, (), (), []),
    ((POOL, ZVOL_IMAGE, BHYVE_VM), VM_ZONES, (), (), []),
    ((POOL, ZVOL_IMAGE, KVM_VM, BHYVE_VM, CHAIN), VM_ZONES, (), (), [TOP, MID, BASE]),
    ((POOL, ZVOL_IMAGE), '', (), (), [ZVOL]),
    # keep keeps an image, and so its ancestors
    ((POOL, CHAIN), '', {TOP}, (), []),
    ((POOL, CHAIN), '', {MID}, (), [TOP]),
    ((POOL, CHAIN), '', {BASE}, (), [TOP, MID]),
    ((POOL, CHAIN, ZVOL_IMAGE), '', {TOP, ZVOL}, (), []),
    # explicit deletes of the same task free their origins, and are not listed again
    ((POOL, CHAIN), '', (), [TOP], [MID, BASE]),
    ((POOL, CHAIN), '', (), [TOP, MID], [BASE]),
    ((POOL, CHAIN), '', (), [TOP, MID, BASE], []),
    ((POOL, CHAIN), '', {BASE}, [TOP], [MID]),
    ((POOL, CHAIN, VM_ON_TOP), VM_ON_TOP_ZONES, (), [OTHER], []),
    # a clone of a child dataset keeps the image
    ((POOL, CHAIN, CHILD_DATASET_CLONE), '', (), (), [TOP, MID]),
    # datasets that are no images are never listed
    ((POOL, 'zones/{U}  -  /zones/{U}  true\nzones/{U}@final  -  -  -'), '', (), (), []),
    ((POOL, CHAIN, VM_ON_TOP), '', (), (), []),     # the VM (a clone of @final without its own) is no image either
])
def test_unused_images(texts, zone_roots, keep, going, unused):
    inv = inventory(*texts, zone_roots=zone_roots)
    given = list(going)
    assert unused_images(inv, 'zones', keep, going) == unused
    assert list(going) == given   # the caller's list is not extended
    # what vacuum lists can be deleted in that order, after the explicit deletes
    assert deletion_order(inv, 'zones', list(going) + unused)[len(going):] == unused


@pytest.mark.parametrize('pool, unused', [
    ('zones', [TOP, MID, BASE]),
    ('zones2', [OTHER]),    # zones2's chain has a VM: only the lone image there goes
    ('tank', []),
])
def test_unused_images_leaves_other_pools_alone(pool, unused):
    inv = inventory(POOL, CHAIN, SECOND_POOL, zone_roots=SECOND_POOL_ZONES)
    assert unused_images(inv, pool, set()) == unused


@pytest.mark.parametrize('pool, unused', [
    # the images nothing clones from; the base stays for its OS VM and the copy, the zvol image for its KVM and bhyve disks
    ('zones', [fakehost.IGN_FALSE, fakehost.IGN_GARBAGE, fakehost.SNAP_CLONE, fakehost.NO_FINAL, fakehost.INCR]),
    ('zones2', [fakehost.INCR, fakehost.BASE]),
])
def test_unused_images_on_the_recorded_smartos_listing(pool, unused):
    inv = Inventory(parse_list(fixture('zfs_list_smartos.txt')), parse_zone_roots(fixture('zoneadm_list_pc_smartos.txt')))
    assert unused_images(inv, pool, set()) == unused


# ---- diff_after ----

IMPORT = [{'action': 'import', 'uuid': U, 'dataset': DS}]
DELETE = [{'action': 'delete', 'uuid': U, 'dataset': DS}]
BEFORE = {OTHER: 'base-64@1.0', U: 'minimal@2'}


@pytest.mark.parametrize('before, actions, labels, after', [
    ({}, [], {}, {}),
    (BEFORE, [], {}, BEFORE),
    ({OTHER: 'base-64@1.0'}, IMPORT, {U: 'minimal@2'}, BEFORE),
    ({OTHER: 'base-64@1.0'}, IMPORT, {}, {OTHER: 'base-64@1.0', U: '-'}),
    (BEFORE, DELETE, {}, {OTHER: 'base-64@1.0'}),
    ({OTHER: 'base-64@1.0'}, DELETE, {}, {OTHER: 'base-64@1.0'}),
    (BEFORE, [{'action': 'refresh', 'uuid': U, 'fields': ['description']}], {}, BEFORE),
    (BEFORE, [{'action': 'repair', 'uuid': U, 'snapshot': DS + '@s', 'dataset': DS}], {}, BEFORE),
    ({}, [{'action': 'import', 'uuid': BASE}, {'action': 'import', 'uuid': TOP}, {'action': 'delete', 'uuid': BASE}],
     {BASE: 'b@1', TOP: 't@1'}, {TOP: 't@1'}),
])
def test_diff_after(before, actions, labels, after):
    original = dict(before)
    assert diff_after(before, actions, labels) == after
    assert before == original  # the before dict is not changed in place


# ---- a <pool>/<uuid>-partial: left by a killed import, or someone else's ----

PARTIAL = DS + '-partial'


def rows(*names, origins=None):
    origins = origins or {}
    return Inventory([Dataset(n, origins.get(n), None, None) for n in ('zones',) + names])


@pytest.mark.parametrize('inventory, why', [
    (rows(), None),
    (rows(PARTIAL), None),
    (rows(PARTIAL, PARTIAL + '@final'), None),
    (rows(PARTIAL, PARTIAL + '@2024'), None),
    (rows(PARTIAL, 'zones/' + OTHER, origins={PARTIAL: 'zones/%s@final' % OTHER}), None),  # incremental: a clone itself
    (rows(PARTIAL, PARTIAL + '/data'), 'child dataset(s) %s/data' % PARTIAL),
    (rows(PARTIAL, PARTIAL + '@a', PARTIAL + '@b'), '2 snapshots (a, b)'),
    (rows(PARTIAL, PARTIAL + '@final', 'zones/' + VM1, origins={'zones/' + VM1: PARTIAL + '@final'}),
     'clone(s) zones/' + VM1),
    (rows(PARTIAL, PARTIAL + '/d', PARTIAL + '/d@s', 'zones/' + VM1, origins={'zones/' + VM1: PARTIAL + '/d@s'}),
     'child dataset(s) %s/d, %s/d@s and clone(s) zones/%s' % (PARTIAL, PARTIAL, VM1)),
])
def test_foreign_partial(inventory, why):
    assert foreign_partial(inventory, PARTIAL) == why
    if why:
        with pytest.raises(ImageError) as exc:
            check_partial(inventory, 'zones', U)
        assert why in exc.value.msg and exc.value.evidence == {'dataset': PARTIAL}
    else:
        check_partial(inventory, 'zones', U)


def test_diff_after_a_record_gives_the_image_its_label():
    before = {U: '-', OTHER: 'b@1'}
    actions = [{'action': 'record', 'uuid': U}, {'action': 'cleanup', 'uuid': OTHER, 'path': '/x'}]
    assert diff_after(before, actions, {U: 'a@2'}) == {U: 'a@2', OTHER: 'b@1'}


# ---- the plan of smartos_image: result shaping and diff ----

def test_image_plan_adds_each_import_once():
    plan = _plan.ImagePlan()
    a, b = Found(None, None, {'uuid': 'a'}, {}), Found(None, None, {'uuid': 'b', 'name': 'n'}, {})
    plan.add_imports([a, b])
    plan.add_imports([b])
    assert plan.imports == [a, b] and plan.import_uuids() == {'a', 'b'} and plan.manifest_of('b')['name'] == 'n'
    assert plan.manifest_of('c') is None


def test_ordered_actions_and_diff():
    actions = _plan.ordered_actions('zones', [Found(None, None, {'uuid': 'n'}, {})], ['o'],
                                    [{'action': 'refresh', 'uuid': 'k'}])
    assert [(a['action'], a['uuid']) for a in actions] == [('import', 'n'), ('delete', 'o'), ('refresh', 'k')]
    diff = _plan.images_diff({'o': 'old@1', 'k': 'k@1'}, actions, {'n': 'new@2', 'k': 'k@2'})
    assert diff == {'before': {'images': {'o': 'old@1', 'k': 'k@1'}}, 'after': {'images': {'n': 'new@2', 'k': 'k@2'}}}


def test_shape_result_one_image_at_the_top_several_in_results():
    entries = [{'uuid': 'u', 'source': 'http://s'}]
    result = {}
    _plan.shape_result(result, entries, 'zones', False, lambda u: {'uuid': u})
    assert result == {'uuid': 'u', 'dataset': 'zones/u', 'image': {'uuid': 'u'}, 'source': 'http://s'}
    result = {}
    _plan.shape_result(result, entries, 'zones', True, lambda u: {'uuid': u})
    assert result == {'results': entries}


def test_drop_skipped_takes_out_what_another_process_imported():
    result = {'actions': [{'action': 'import', 'uuid': 'a'}], 'imported': ['a'], 'changed': True}
    entries = [{'imported': ['a'], 'changed': True}]
    _plan.drop_skipped(result, entries, ['a'])
    assert result['actions'] == [] and result['imported'] == [] and result['changed'] is False
    assert 'another process' in result['msg'] and entries == [{'imported': [], 'changed': False}]
