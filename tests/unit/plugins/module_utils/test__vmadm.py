# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_vmadm.py: vmadm through a scripted Runner (tests/unit/fakehost.py), and where a VM's image comes from."""

from __future__ import annotations

import json

import pytest

from ansible_collections.smartos.images.plugins.module_utils._errors import CommandError
from ansible_collections.smartos.images.plugins.module_utils._vmadm import Vmadm, vm_dataset, vm_zvol_fields
from ansible_collections.smartos.images.tests.unit.fakehost import ScriptedRunner

VM = '79ae2d1c-5e48-4ae4-9c2f-f9e4d6b7cf0d'


def test_get_parses_json():
    runner = ScriptedRunner((0, json.dumps({'uuid': VM, 'state': 'running'}), ''))
    assert Vmadm(runner).get(VM) == {'uuid': VM, 'state': 'running'} and runner.calls == [['vmadm', 'get', VM]]


@pytest.mark.parametrize('err', ['Could not find VM %s\n' % VM, 'Failed to get VM: No such zone configured\n'])
def test_get_missing_vm_is_none(err):
    assert Vmadm(ScriptedRunner((1, '', err))).get(VM) is None


@pytest.mark.parametrize('answer, words', [
    ((2, '', 'permission denied\n'), 'vmadm get %s failed: permission denied' % VM),
    ((0, 'not json', ''), 'printed no JSON'),
    ((0, '[1]', ''), 'no JSON object'),
])
def test_get_failures(answer, words):
    with pytest.raises(CommandError, match=words):
        Vmadm(ScriptedRunner(answer)).get(VM)


def test_stop():
    runner = ScriptedRunner((0, 'Successfully completed stop\n', ''))
    Vmadm(runner).stop(VM)
    assert runner.calls == [['vmadm', 'stop', VM]]
    with pytest.raises(CommandError, match='vmadm stop %s failed: timed out' % VM) as e:
        Vmadm(ScriptedRunner((1, '', 'timed out\n'))).stop(VM)
    assert e.value.evidence['rc'] == 1


def test_available():
    assert Vmadm(ScriptedRunner((0, '{}', ''))).available() and not Vmadm(ScriptedRunner(paths={})).available()


@pytest.mark.parametrize('vm, dataset', [
    ({'brand': 'joyent', 'zfs_filesystem': 'zones/' + VM}, 'zones/' + VM),
    ({'brand': 'lx', 'zfs_filesystem': 'zones/' + VM}, 'zones/' + VM),
    ({'brand': 'kvm', 'zfs_filesystem': 'zones/' + VM,
      'disks': [{'zfs_filesystem': 'zones/%s-disk0' % VM}, {'zfs_filesystem': 'zones/%s-disk1' % VM}]}, 'zones/%s-disk0' % VM),
    ({'brand': 'bhyve', 'zfs_filesystem': 'zones/' + VM,
      'disks': [{'zfs_filesystem': 'zones/%s/disk1' % VM}, {'zfs_filesystem': 'zones/%s/disk0' % VM, 'boot': True}]},
     'zones/%s/disk0' % VM),
    ({'brand': 'kvm', 'disks': []}, None),
])
def test_vm_dataset(vm, dataset):
    assert vm_dataset(vm) == dataset


def test_vm_zvol_fields():
    vm = {'brand': 'kvm', 'cpu_type': 'host', 'disks': [{'model': 'virtio', 'size': 10240}], 'nics': [{'model': 'e1000'}]}
    assert vm_zvol_fields(vm) == {'nic_driver': 'e1000', 'disk_driver': 'virtio', 'cpu_type': 'host', 'image_size': 10240}
    assert vm_zvol_fields({'brand': 'bhyve'}) == {} and vm_zvol_fields({'brand': 'joyent', 'cpu_type': 'x'}) == {}
