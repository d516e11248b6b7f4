# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""smartos_image_create main() end to end: the fake host (zfs, vmadm; tests/unit/fakehost.py) behind the Runner seam; the module's JSON is parsed
from stdout."""

from __future__ import annotations

import gzip
import os

import pytest

from ansible_collections.smartos.images.plugins.modules import smartos_image_create
from ansible_collections.smartos.images.tests.unit.fakehost import FakeHost, stream_of, zone_vm

VM = '79ae2d1c-5e48-4ae4-9c2f-f9e4d6b7cf0d'


@pytest.fixture
def run(run_module, tmp_path):
    """run(host, check=..., diff=..., **module args) -> the result of smartos_image_create's main()."""

    def runner(host, **args):
        args.setdefault('host_root', str(tmp_path / 'root'))
        args.setdefault('output_dir', str(tmp_path / 'out'))
        args.setdefault('name', 'img')
        args.setdefault('version', '1.0.0')
        return run_module(smartos_image_create, host, **args)

    return runner


def test_check_real_idempotent_check_idempotent_real(run, tmp_path):
    host = FakeHost(['zones', 'zones/' + VM], vms={VM: zone_vm(VM, state='running')})
    results = []
    for check in (True, False, True, False):
        before = list(host.mutations())
        results.append(run(host, check=check, vm=VM, stop_vm=True, dsmanifest=True, description='d',
                           creator_name='acme', remove_snapshot=True))
        if check:
            assert host.mutations() == before   # check mode runs nothing that changes the host
    check, real, check2, real2 = results
    assert check['changed'] and real['changed'] and not check2['changed'] and not real2['changed']
    assert check['actions'] == real['actions'] and check['diff'] == real['diff']
    expected = ['stop_vm', 'snapshot', 'send', 'write_manifest', 'write_dsmanifest', 'remove_snapshot']
    assert [a['action'] for a in real['actions']] == expected
    assert [c[:2] for c in host.mutations()] == [['vmadm', 'stop'], ['zfs', 'snapshot'], ['zfs', 'destroy']]
    assert sorted(os.listdir(str(tmp_path / 'out'))) == ['img-1.0.0.dsmanifest', 'img-1.0.0.imgmanifest',
                                                         'img-1.0.0.zfs.gz']
    with open(real['file_path'], 'rb') as f:
        assert gzip.decompress(f.read()) == stream_of(real['snapshot'])
    assert real2['manifest'] == real['manifest'] and real2['uuid'] == real['uuid']


def test_no_diff_unless_asked(run):
    host = FakeHost(['zones', 'zones/src'])
    assert 'diff' not in run(host, diff=False, dataset='zones/src', check=True)


@pytest.mark.parametrize('args, words', [
    ({'dataset': 'zones/src', 'snapshot': 'zones/src@s'}, 'mutually exclusive'),
    ({}, 'one of the following is required: vm, dataset, snapshot'),
    ({'dataset': 'zones/src', 'dsmanifest': True}, 'dsmanifest is True but all of the following are missing'),
    ({'dataset': 'zones/src', 'compression': 'zstd'}, 'value of compression must be one of'),
    ({'dataset': 'zones/src', 'version': 'bad version!'}, 'the manifest would be invalid: version'),
    ({'vm': 'VM-1'}, 'vm "VM-1" is not a lower-case UUID'),
])
def test_bad_input_fails_before_any_command(run, args, words):
    host = FakeHost(['zones', 'zones/src'])
    result = run(host, **args)
    assert result['failed'] and words in result['msg'] and host.calls == []


def test_failure_carries_the_evidence(run, tmp_path):
    host = FakeHost(['zones', 'zones/src'])
    host.send_rc, host.send_err = 1, 'cannot send: I/O error\n'
    result = run(host, dataset='zones/src')
    assert result['failed'] and 'zfs send of zones/src@smartos-images-create-' in result['msg']
    assert result['rc'] == 1 and result['cmd'].startswith('zfs send ') and 'I/O error' in result['stderr']
    assert os.listdir(str(tmp_path / 'out')) == []


def test_running_vm_refused(run):
    host = FakeHost(['zones', 'zones/' + VM], vms={VM: zone_vm(VM, state='running')})
    result = run(host, vm=VM)
    assert result['failed'] and 'is running: stop it first' in result['msg'] and result['vm'] == VM
    assert host.mutations() == []


def test_another_images_files_fail_the_task_with_the_path(run, tmp_path):
    host = FakeHost(['zones', 'zones/src'])
    made = run(host, dataset='zones/src', name='a', version='b-1')
    host.calls = []
    for check in (True, False):
        result = run(host, check=check, dataset='zones/src', name='a-b', version='1')
        assert result['failed'] and not result.get('changed') and result['path'] == made['manifest_path']
        assert "belongs to another image, 'a' version 'b-1'" in result['msg'] and host.mutations() == []


def test_a_snapshot_left_after_written_files_fails_with_changed(run, tmp_path):
    host = FakeHost(['zones', 'zones/src'])
    host.destroy_fails = 'cannot destroy: dataset is busy\n'
    result = run(host, dataset='zones/src', remove_snapshot=True)
    assert result['failed'] and result['changed'] is True and 'the image files are written' in result['msg']
    assert sorted(os.listdir(str(tmp_path / 'out'))) == ['img-1.0.0.imgmanifest', 'img-1.0.0.zfs.gz']
