# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_plan.py: desired vs actual, as a table."""

from __future__ import annotations

import pytest

from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, ImageInUse
from ansible_collections.smartos.images.plugins.module_utils._inventory import Inventory
from ansible_collections.smartos.images.plugins.module_utils._plan import dependents, diff_after, plan_image
from ansible_collections.smartos.images.plugins.module_utils._zfs import Dataset

U = '2f1dc911-6401-4fa4-8e9d-67ea2e39c271'
OTHER = '7b5981c4-1889-11e7-b4c5-3f3bdfc9b88b'
VM1 = 'c0ffee00-1111-4222-8333-444455556603'
VM2 = 'c0ffee00-1111-4222-8333-444455556604'
DS = 'zones/' + U


def ds(name, origin=None, mountpoint=None, ignore=None):
    return Dataset(name, origin, mountpoint, ignore)


POOL_ONLY = [ds('zones', mountpoint='/zones')]
INSTALLED = POOL_ONLY + [ds(DS, mountpoint='/' + DS), ds(DS + '@final')]
# an OS VM and a KVM disk cloned from the image's @final
WITH_VMS = INSTALLED + [
    ds('zones/' + VM1, origin=DS + '@final', mountpoint='/zones/' + VM1),
    ds('zones/%s-disk0' % VM2, origin=DS + '@final'),
]
# a child dataset of the image has a snapshot that something cloned
WITH_CHILD_CLONE = INSTALLED + [
    ds(DS + '/data', mountpoint='/%s/data' % DS), ds(DS + '/data@snap'),
    ds('zones/' + OTHER + '-copy', origin=DS + '/data@snap', mountpoint='/zones/copy'),
]
# a clone of another snapshot of the image (not @final)
WITH_SNAP_CLONE = INSTALLED + [ds(DS + '@older'), ds('zones/' + VM1, origin=DS + '@older', mountpoint='/zones/' + VM1)]
ZONE_ROOT = POOL_ONLY + [ds(DS, mountpoint='/' + DS)]
IGNORED = POOL_ONLY + [ds(DS, mountpoint='/' + DS, ignore='true'), ds(DS + '@final')]
# another image whose name starts with this one's must not count as a child
PREFIX_SIBLING = INSTALLED + [ds(DS + '-partial'), ds(DS + '-partial@final'),
                              ds('zones/' + VM1, origin=DS + '-partial@final', mountpoint='/zones/' + VM1)]
ON_OTHER_POOL = [ds('zones2'), ds('zones2/' + U), ds('zones2/%s@final' % U)]

IMPORT = [{'action': 'import', 'uuid': U, 'dataset': DS}]
DELETE = [{'action': 'delete', 'uuid': U, 'dataset': DS}]


@pytest.mark.parametrize('state, datasets, zone_roots, expected', [
    ('present', POOL_ONLY, (), IMPORT),
    ('present', INSTALLED, (), []),
    ('present', WITH_VMS, (), []),
    ('present', ON_OTHER_POOL, (), IMPORT),
    ('absent', POOL_ONLY, (), []),
    ('absent', INSTALLED, (), DELETE),
    ('absent', PREFIX_SIBLING, (), DELETE),
    ('absent', ON_OTHER_POOL, (), []),
])
def test_plan_image(state, datasets, zone_roots, expected):
    assert plan_image(state, 'zones', U, Inventory(datasets, zone_roots)) == expected


@pytest.mark.parametrize('state, verb', [('present', 'import over'), ('absent', 'delete')])
@pytest.mark.parametrize('datasets, zone_roots, why', [
    (ZONE_ROOT, ('/' + DS,), 'it is the root of a zone (a VM), not an image'),
    (IGNORED, (), 'its imgadm:ignore property is set'),
    (POOL_ONLY + [ds(DS, origin='zones/%s@final' % OTHER)], (), 'it is a clone of zones/%s@final' % OTHER),
])
def test_plan_refuses_a_dataset_that_is_not_an_image(state, verb, datasets, zone_roots, why):
    with pytest.raises(ImageError) as exc:
        plan_image(state, 'zones', U, Inventory(datasets, zone_roots))
    assert not isinstance(exc.value, ImageInUse)
    assert exc.value.msg.startswith('dataset %s exists but is not an image: %s' % (DS, why))
    assert exc.value.msg.endswith('refusing to %s it' % verb)
    assert exc.value.evidence == {'dataset': DS}


@pytest.mark.parametrize('datasets, clones', [
    (WITH_VMS, ['zones/' + VM1, 'zones/%s-disk0' % VM2]),
    (WITH_CHILD_CLONE, ['zones/%s-copy' % OTHER]),
    (WITH_SNAP_CLONE, ['zones/' + VM1]),
])
def test_absent_with_clones_names_every_clone(datasets, clones):
    with pytest.raises(ImageInUse) as exc:
        plan_image('absent', 'zones', U, Inventory(datasets))
    assert exc.value.msg == 'image "%s" has dependent clones: %s; delete or promote them first' % (U, ', '.join(clones))
    assert exc.value.evidence == {'dataset': DS, 'clones': clones}


def test_clones_do_not_block_present():
    assert plan_image('present', 'zones', U, Inventory(WITH_CHILD_CLONE)) == []


def test_dependents_covers_children_but_not_name_prefixes():
    inv = Inventory(WITH_CHILD_CLONE + [ds(DS + '-partial'), ds(DS + '-partial@x'),
                                        ds('zones/p', origin=DS + '-partial@x')])
    assert dependents(inv, DS) == ['zones/%s-copy' % OTHER]
    assert dependents(inv, DS + '-partial') == ['zones/p']


def test_dependents_sorted_and_unique():
    inv = Inventory(INSTALLED + [ds(DS + '/a'), ds(DS + '/a@s'), ds('zones/z', origin=DS + '/a@s'),
                                 ds('zones/b', origin=DS + '@final'), ds('zones/a', origin=DS + '@final')])
    assert dependents(inv, DS) == ['zones/a', 'zones/b', 'zones/z']


BEFORE = {OTHER: 'base-64@1.0', U: 'minimal@2'}


@pytest.mark.parametrize('before, actions, labels, after', [
    ({}, [], {}, {}),
    (BEFORE, [], {}, BEFORE),
    ({OTHER: 'base-64@1.0'}, IMPORT, {U: 'minimal@2'}, BEFORE),
    ({OTHER: 'base-64@1.0'}, IMPORT, {}, {OTHER: 'base-64@1.0', U: '-'}),
    (BEFORE, DELETE, {}, {OTHER: 'base-64@1.0'}),
    ({OTHER: 'base-64@1.0'}, DELETE, {}, {OTHER: 'base-64@1.0'}),
])
def test_diff_after(before, actions, labels, after):
    original = dict(before)
    assert diff_after(before, actions, labels) == after
    assert before == original  # the before dict is not changed in place
