# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_create.py: the smartos_image_create worker on a fake host (zfs, vmadm)."""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import lzma
import os
import re
import signal
import subprocess
import time

import pytest

from ansible_collections.smartos.images.plugins.module_utils._create import ImageCreator
from ansible_collections.smartos.images.plugins.module_utils._create_files import TEMP_EXTRA, host_tag
from ansible_collections.smartos.images.plugins.module_utils._create_source import snapshot_name
from ansible_collections.smartos.images.plugins.module_utils._errors import CommandError, ImageError, InvalidParameter
from ansible_collections.smartos.images.plugins.module_utils._manifest import upgrade_manifest
from ansible_collections.smartos.images.plugins.module_utils._manifest_build import derive_uuid, manifest_problems
from ansible_collections.smartos.images.tests.unit.fakehost import (
    FakeHost, bhyve_vm, stream_of, zone_vm,
)

VM = '79ae2d1c-5e48-4ae4-9c2f-f9e4d6b7cf0d'
ORIGIN = 'c58161c0-2547-11e2-a75e-9fdca1940570'
SRC = 'zones/src'


def params(tmp_path, **kw):
    """The module's parameters with their defaults, as AnsibleModule hands them over."""
    p = dict(vm=None, dataset=None, snapshot=None, stop_vm=False, output_dir=str(tmp_path / 'out'), name='img',
             version='1.0.0', description=None, homepage=None, uuid=None, os=None, type=None, compression='gzip',
             origin=None, owner=None, requirements=None, fields=None, dsmanifest=False, creator_name=None,
             remove_snapshot=False, pool='zones', host_root=str(tmp_path / 'root'), layout='auto')
    p.update(kw)
    if not (p['vm'] or p['dataset'] or p['snapshot']):
        p['dataset'] = SRC
    return p


def create(host, tmp_path, check=False, **kw):
    return ImageCreator(params(tmp_path, **kw), host, check_mode=check, workers=2).run(diff=True)


def pool_host(*extra, **kw):
    return FakeHost.from_rows([('zones',), (SRC,)] + list(extra), **kw)


def listing(tmp_path):
    out = tmp_path / 'out'
    return sorted(os.listdir(str(out))) if out.exists() else []


def read_json(path):
    with open(path, encoding='utf-8') as f:
        return json.load(f)


# ---- a dataset: check, real, idempotent ----

def test_dataset_check_then_real_then_idempotent(tmp_path):
    host = pool_host()
    check = create(host, tmp_path, check=True)
    snap = snapshot_name(SRC, 'img', '1.0.0')
    out = str(tmp_path / 'out')
    assert check['changed'] and [a['action'] for a in check['actions']] == ['snapshot', 'send', 'write_manifest']
    assert check['snapshot'] == snap and check['dataset_guid'] is None and check['uuid'] is None
    assert check['sha1'] is None and check['manifest']['type'] == 'zone-dataset' and 'published_at' not in check['manifest']
    assert host.mutations() == [] and host.sends == [] and listing(tmp_path) == []

    real = create(host, tmp_path)
    assert real['actions'] == check['actions'] and real['diff'] == check['diff']
    assert listing(tmp_path) == ['img-1.0.0.imgmanifest', 'img-1.0.0.zfs.gz']
    guid = host.guid(snap)
    assert real['dataset_guid'] == guid and real['uuid'] == derive_uuid(guid, 'img', '1.0.0', 'zone-dataset', None)
    with open(real['file_path'], 'rb') as f:
        data = f.read()
    assert gzip.decompress(data) == stream_of(snap)
    manifest = read_json(real['manifest_path'])
    assert manifest == real['manifest'] and manifest_problems(manifest) == []
    assert manifest['files'] == [{'sha1': hashlib.sha1(data).hexdigest(), 'size': len(data), 'compression': 'gzip',
                                  'dataset_guid': guid}]
    assert (real['sha1'], real['size']) == (manifest['files'][0]['sha1'], len(data))
    assert real['file_path'] == os.path.join(out, 'img-1.0.0.zfs.gz')

    host.calls = []
    for check_mode in (True, False):
        again = create(host, tmp_path, check=check_mode)
        assert not again['changed'] and again['actions'] == [] and again['manifest'] == manifest
        assert again['uuid'] == real['uuid'] and again['sha1'] == real['sha1']
        assert again['diff']['before'] == again['diff']['after']
    assert host.mutations() == [] and len(host.sends) == 1


def test_published_at_is_not_what_makes_an_image_new(tmp_path):
    host = pool_host()
    first = create(host, tmp_path)
    assert not create(host, tmp_path)['changed']
    assert read_json(first['manifest_path'])['published_at'] == first['manifest']['published_at']


def test_changed_description_rewrites_only_the_manifest(tmp_path):
    host = pool_host()
    first = create(host, tmp_path, description='one')
    second = create(host, tmp_path, description='two')
    assert [a['action'] for a in second['actions']] == ['write_manifest'] and len(host.sends) == 1
    assert second['manifest']['description'] == 'two' and second['uuid'] == first['uuid']
    assert second['manifest']['published_at'] == first['manifest']['published_at']
    assert second['manifest']['files'] == first['manifest']['files']


def test_changed_compression_replaces_the_file(tmp_path):
    host = pool_host()
    create(host, tmp_path)
    second = create(host, tmp_path, compression='xz')
    assert [a['action'] for a in second['actions']] == ['send', 'write_manifest', 'remove_file']
    assert listing(tmp_path) == ['img-1.0.0.imgmanifest', 'img-1.0.0.zfs.xz']
    with open(second['file_path'], 'rb') as f:
        assert lzma.decompress(f.read()) == stream_of(snapshot_name(SRC, 'img', '1.0.0'))
    assert second['manifest']['files'][0]['compression'] == 'xz'


def test_a_file_gone_is_sent_again_from_the_same_snapshot(tmp_path):
    host = pool_host()
    first = create(host, tmp_path)
    os.unlink(first['file_path'])
    second = create(host, tmp_path)
    assert [a['action'] for a in second['actions']] == ['send', 'write_manifest']
    assert second['sha1'] == first['sha1'] and second['uuid'] == first['uuid']  # same snapshot, same bytes


def test_a_new_snapshot_of_the_same_name_makes_a_new_image(tmp_path):
    host = pool_host()
    first = create(host, tmp_path)
    del host.datasets[first['snapshot']]
    host.add(first['snapshot'])   # someone re-made it: another guid
    second = create(host, tmp_path)
    assert [a['action'] for a in second['actions']] == ['send', 'write_manifest']
    assert second['uuid'] != first['uuid'] and second['dataset_guid'] == host.guid(first['snapshot'])


def test_remove_snapshot_then_idempotent(tmp_path):
    host = pool_host()
    check = create(host, tmp_path, check=True, remove_snapshot=True)
    real = create(host, tmp_path, remove_snapshot=True)
    assert [a['action'] for a in real['actions']] == ['snapshot', 'send', 'write_manifest', 'remove_snapshot']
    assert check['actions'] == real['actions'] and check['diff'] == real['diff']
    assert real['snapshot'] not in host.datasets and real['diff']['after']['snapshot'] is None
    for check_mode in (True, False):
        again = create(host, tmp_path, check=check_mode, remove_snapshot=True)
        assert not again['changed'] and again['uuid'] == real['uuid'] and again['dataset_guid'] == real['dataset_guid']
    assert len(host.sends) == 1


def test_remove_snapshot_asked_later_removes_the_kept_one(tmp_path):
    host = pool_host()
    create(host, tmp_path)
    later = create(host, tmp_path, remove_snapshot=True)
    assert later['actions'] == [{'action': 'remove_snapshot', 'snapshot': later['snapshot']}]
    assert later['snapshot'] not in host.datasets


# ---- a snapshot ----

def test_snapshot_is_sent_as_is_and_never_removed(tmp_path):
    host = pool_host((SRC + '@mine',))
    result = create(host, tmp_path, snapshot=SRC + '@mine', remove_snapshot=True)
    assert [a['action'] for a in result['actions']] == ['send', 'write_manifest']
    assert SRC + '@mine' in host.datasets and result['dataset_guid'] == host.guid(SRC + '@mine')
    assert [c for c in host.mutations() if c[1] in ('snapshot', 'destroy')] == []
    assert not create(host, tmp_path, snapshot=SRC + '@mine', remove_snapshot=True)['changed']


@pytest.mark.parametrize('kw, words', [
    ({'snapshot': SRC + '@nope'}, 'snapshot "zones/src@nope" does not exist'),
    ({'snapshot': SRC}, 'is not a snapshot name'),
    ({'dataset': 'zones/nope'}, 'dataset "zones/nope" does not exist'),
    ({'dataset': SRC + '@x'}, 'give it as snapshot'),
])
def test_missing_sources(tmp_path, kw, words):
    host = pool_host()
    with pytest.raises(ImageError, match=words.replace('(', r'\(')):
        create(host, tmp_path, **kw)
    assert host.mutations() == [] and listing(tmp_path) == []


# ---- volumes ----

def test_volume_makes_a_zvol_image(tmp_path):
    host = FakeHost.from_rows([('zones',), ('zones/vol', 'volume', None, str(10 << 30))])
    result = create(host, tmp_path, dataset='zones/vol', compression='bzip2')
    assert result['file_path'].endswith('/img-1.0.0.zvol.bz2')
    m = result['manifest']
    assert m['type'] == 'zvol' and m['image_size'] == 10240
    assert (m['nic_driver'], m['disk_driver'], m['cpu_type']) == ('virtio', 'virtio', 'qemu64')
    assert manifest_problems(m) == []


def test_a_volume_snapshot_gives_the_size_it_was_taken_at(tmp_path):
    """Kernel ZFS: a volume resized after its snapshot; the image (the snapshot's stream) has the snapshot's volsize."""
    host = FakeHost.from_rows([('zones',), ('zones/vol', 'volume', None, str(20 << 30)),
                               ('zones/vol@old', 'snapshot', None, str(10 << 30))])
    result = create(host, tmp_path, snapshot='zones/vol@old')
    assert result['manifest']['type'] == 'zvol' and result['manifest']['image_size'] == 10240


def test_volume_fields_can_be_given(tmp_path):
    host = FakeHost.from_rows([('zones',), ('zones/vol', 'volume', None, str(1 << 30))])
    result = create(host, tmp_path, dataset='zones/vol', fields={'cpu_type': 'host', 'image_size': 20480})
    assert result['manifest']['cpu_type'] == 'host' and result['manifest']['image_size'] == 20480


@pytest.mark.parametrize('dataset, image_type', [('zones/src', 'zvol'), ('zones/vol', 'zone-dataset'),
                                                 ('zones/vol', 'lx-dataset')])
def test_type_must_fit_the_dataset(tmp_path, dataset, image_type):
    host = FakeHost.from_rows([('zones',), ('zones/src',), ('zones/vol', 'volume', None, str(1 << 30))])
    with pytest.raises(InvalidParameter, match='does not fit'):
        create(host, tmp_path, dataset=dataset, type=image_type)
    assert host.mutations() == []


# ---- VMs ----

def test_stopped_zone_vm_via_vmadm(tmp_path):
    host = pool_host(('zones/' + VM,), vms={VM: zone_vm(VM)})
    result = create(host, tmp_path, vm=VM)
    assert result['dataset'] == 'zones/' + VM and [a['action'] for a in result['actions']] == ['snapshot', 'send',
                                                                                               'write_manifest']
    assert ['vmadm', 'get', VM] in host.calls and not [c for c in host.calls if c[:2] == ['vmadm', 'stop']]


def test_running_vm_is_refused_without_stop_vm(tmp_path):
    host = pool_host(('zones/' + VM,), vms={VM: zone_vm(VM, state='running')})
    for check in (True, False):
        with pytest.raises(ImageError, match='VM "%s" is running: stop it first' % VM):
            create(host, tmp_path, check=check, vm=VM)
    assert host.mutations() == [] and listing(tmp_path) == []


def test_running_vm_is_stopped_when_asked(tmp_path):
    host = pool_host(('zones/' + VM,), vms={VM: zone_vm(VM, state='running')})
    check = create(host, tmp_path, check=True, vm=VM, stop_vm=True)
    assert check['actions'][0] == {'action': 'stop_vm', 'vm': VM} and host.mutations() == []
    real = create(host, tmp_path, vm=VM, stop_vm=True)
    assert real['actions'] == check['actions']
    stop = host.calls.index(['vmadm', 'stop', VM])
    snap = next(i for i, c in enumerate(host.calls) if c[:2] == ['zfs', 'snapshot'])
    assert stop < snap and host.vms[VM]['state'] == 'stopped'


def test_vm_that_does_not_stop_is_not_snapshotted(tmp_path):
    host = pool_host(('zones/' + VM,), vms={VM: zone_vm(VM, state='running')}, stop_works=False)
    with pytest.raises(ImageError, match='still running after vmadm stop'):
        create(host, tmp_path, vm=VM, stop_vm=True)
    assert not [c for c in host.calls if c[:2] == ['zfs', 'snapshot']] and listing(tmp_path) == []


def test_running_vm_with_its_image_already_made_needs_no_stop(tmp_path):
    host = pool_host(('zones/' + VM,), vms={VM: zone_vm(VM)})
    create(host, tmp_path, vm=VM)
    host.vms[VM]['state'] = 'running'
    assert not create(host, tmp_path, vm=VM)['changed']


def test_bhyve_vm_image_is_its_boot_disk(tmp_path):
    host = FakeHost.from_rows([('zones',), ('zones/' + VM,), ('zones/%s/disk0' % VM, 'volume', None, str(10 << 30))],
                              vms={VM: bhyve_vm(VM)})
    result = create(host, tmp_path, vm=VM)
    m = result['manifest']
    assert result['dataset'] == 'zones/%s/disk0' % VM and result['file_path'].endswith('.zvol.gz')
    assert (m['type'], m['nic_driver'], m['disk_driver'], m['cpu_type'], m['image_size']) == \
        ('zvol', 'e1000', 'virtio', 'host', 10240)


def test_vm_unknown_to_vmadm(tmp_path):
    host = pool_host(vms={})
    with pytest.raises(ImageError, match='VM "%s" does not exist' % VM):
        create(host, tmp_path, vm=VM)


@pytest.mark.parametrize('datasets, expected', [
    ([('zones/' + VM,)], 'zones/' + VM),
    ([('zones/' + VM,), ('zones/%s-disk0' % VM, 'volume', None, str(1 << 30))], 'zones/%s-disk0' % VM),
    ([('zones/' + VM,), ('zones/%s/disk0' % VM, 'volume', None, str(1 << 30))], 'zones/%s/disk0' % VM),
])
def test_vm_without_vmadm_is_found_by_its_dataset_names(tmp_path, datasets, expected):
    host = FakeHost.from_rows([('zones',)] + datasets)
    result = create(host, tmp_path, check=True, vm=VM, stop_vm=True)
    assert result['dataset'] == expected and not [c for c in host.calls if c[0] == 'vmadm']


def test_vm_without_vmadm_and_without_datasets(tmp_path):
    with pytest.raises(ImageError, match='has no dataset on pool zones'):
        create(pool_host(), tmp_path, vm=VM)


# ---- incremental ----

def origin_host(tmp_path, clone_of='zones/%s@final' % ORIGIN, cached=True):
    """An installed origin image with its @final, a clone of it (the VM), and imgadm's cache of its manifest."""
    host = FakeHost.from_rows([('zones',), ('zones/' + ORIGIN,), ('zones/%s@final' % ORIGIN,), ('zones/other',),
                               ('zones/other@s',), ('zones/child', None, clone_of)])
    if cached:
        path = tmp_path / 'root' / 'var' / 'imgadm' / 'images' / ('zones-%s.json' % ORIGIN)
        path.parent.mkdir(parents=True)
        manifest = {'v': 2, 'uuid': ORIGIN, 'name': 'base', 'version': '1.0.0', 'type': 'zone-dataset', 'os': 'illumos',
                    'requirements': {'networks': [{'name': 'net0', 'description': 'public'}]},
                    'users': [{'name': 'root'}], 'generate_passwords': True, 'inherited_directories': ['/opt'],
                    'tags': {'role': 'os'}, 'homepage': 'https://example.com/base', 'description': 'the base'}
        path.write_text(json.dumps({'manifest': manifest, 'zpool': 'zones'}))
    return host


def test_incremental_on_an_installed_origin(tmp_path):
    host = origin_host(tmp_path)
    result = create(host, tmp_path, dataset='zones/child', origin=ORIGIN, requirements={'brand': 'joyent'})
    m = result['manifest']
    assert result['actions'][1]['incremental_from'] == 'zones/%s@final' % ORIGIN
    assert host.sends == [('zones/%s@final' % ORIGIN, result['snapshot'])]
    assert m['origin'] == ORIGIN and m['os'] == 'illumos' and m['type'] == 'zone-dataset'
    assert m['users'] == [{'name': 'root'}] and m['generate_passwords'] is True and m['inherited_directories'] == ['/opt']
    assert m['requirements'] == {'brand': 'joyent'}   # given: not inherited
    assert 'tags' not in m and 'homepage' not in m and 'description' not in m   # not inheritable
    assert result['uuid'] == derive_uuid(result['dataset_guid'], 'img', '1.0.0', 'zone-dataset', ORIGIN)
    assert manifest_problems(m) == []
    assert not create(host, tmp_path, dataset='zones/child', origin=ORIGIN, requirements={'brand': 'joyent'})['changed']


def test_incremental_through_a_chain_of_clones(tmp_path):
    host = origin_host(tmp_path)
    host.add('zones/child@s')
    host.add('zones/grandchild', None, 'zones/child@s')
    result = create(host, tmp_path, check=True, dataset='zones/grandchild', origin=ORIGIN)
    assert result['actions'][1]['incremental_from'] == 'zones/%s@final' % ORIGIN


def test_incremental_without_a_cached_origin_manifest_warns(tmp_path):
    creator = ImageCreator(params(tmp_path, dataset='zones/child', origin=ORIGIN), origin_host(tmp_path, cached=False),
                           workers=2)
    result = creator.run(diff=True)
    # the worker keeps its warnings; the module scaffold warns them (the result has no 'warnings' key of its own)
    assert result['manifest']['os'] == 'smartos' and 'nothing is inherited' in creator.warnings[0]
    assert 'warnings' not in result


@pytest.mark.parametrize('origin, clone_of, words', [
    ('0bad0000-0000-4000-8000-0000000000aa', 'zones/%s@final' % ORIGIN, 'is not installed on pool zones'),
    (ORIGIN, 'zones/other@s', 'is not an ancestor of zones/child@'),
    (ORIGIN, None, 'is not an ancestor'),
])
def test_bad_origins(tmp_path, origin, clone_of, words):
    host = origin_host(tmp_path, clone_of=clone_of)
    with pytest.raises(ImageError, match=words):
        create(host, tmp_path, dataset='zones/child', origin=origin)
    assert host.mutations() == [] and listing(tmp_path) == []


def test_origin_without_final(tmp_path):
    host = origin_host(tmp_path)
    del host.datasets['zones/%s@final' % ORIGIN]
    host.datasets['zones/child']['origin'] = None
    with pytest.raises(ImageError, match='has no @final snapshot'):
        create(host, tmp_path, dataset='zones/child', origin=ORIGIN)


# ---- the v1 manifest ----

def test_dsmanifest_is_written_and_upgrades_to_the_v2(tmp_path):
    host = pool_host()
    result = create(host, tmp_path, dsmanifest=True, description='An image', creator_name='example-org')
    assert result['dsmanifest_path'].endswith('img-1.0.0.dsmanifest')
    v1 = read_json(result['dsmanifest_path'])
    assert v1['urn'] == 'smartos:example-org:img:1.0.0' and v1['creator_name'] == 'example-org'
    assert v1['files'] == [{'path': 'img-1.0.0.zfs.gz', 'sha1': result['sha1'], 'size': result['size']}]
    v2 = upgrade_manifest(v1)
    for key in ('uuid', 'name', 'version', 'description', 'owner', 'published_at', 'type', 'os', 'public', 'state'):
        assert v2[key] == result['manifest'][key], key
    assert v2['files'][0]['compression'] == 'gzip'
    assert not create(host, tmp_path, dsmanifest=True, description='An image', creator_name='example-org')['changed']
    os.unlink(result['dsmanifest_path'])
    again = create(host, tmp_path, dsmanifest=True, description='An image', creator_name='example-org')
    assert [a['action'] for a in again['actions']] == ['write_dsmanifest']
    assert read_json(result['dsmanifest_path']) == v1


@pytest.mark.parametrize('kw, words', [
    ({'name': 'a-name-that-is-far-too-long-for-dsapi'}, 'name'),
    ({'name': 'with space'}, 'name'),
    ({'version': '1.0+build'}, 'version'),
    ({'creator_name': 'has space'}, 'creator_name'),
    ({'origin': ORIGIN}, 'no incremental images'),
])
def test_dsmanifest_refusals(tmp_path, kw, words):
    args = dict(dsmanifest=True, description='d', creator_name='org')
    args.update(kw)
    host = origin_host(tmp_path)
    with pytest.raises(InvalidParameter, match='dsmanifest') as e:
        create(host, tmp_path, dataset='zones/child', **args)
    assert words in e.value.msg and host.mutations() == []


# ---- bad input and failures ----

@pytest.mark.parametrize('kw, words', [
    ({'version': 'bad version!'}, 'version: letters, digits'),
    ({'name': 'bad|name'}, 'name: letters, digits'),
    ({'homepage': 'ftp://example.com'}, 'homepage: must be an http'),
    ({'uuid': 'ABC'}, 'uuid "ABC" is not a lower-case UUID'),
    ({'owner': 'nobody'}, 'owner "nobody"'),
    ({'requirements': {'password': 'x'}}, 'unsupported requirement "password"'),
    ({'requirements': {'bootrom': 'uefi'}}, 'needs requirements.brand "bhyve"'),
    ({'fields': {'uuid': 'x'}}, 'fields: "uuid" is set by the module'),
    ({'fields': {'objectclass': 'sdcimage'}}, 'not a field of a v2 image manifest'),
    ({'pool': '1bad'}, 'not a valid ZFS pool name'),
])
def test_bad_input_fails_before_any_command(tmp_path, kw, words):
    host = pool_host()
    with pytest.raises(InvalidParameter) as e:
        create(host, tmp_path, **kw)
    assert words in e.value.msg and host.calls == []


@pytest.mark.parametrize('fields, words', [
    ({'inherited_directories': ['/opt']}, 'only allowed for type zone-dataset'),
    ({'nic_driver': 'virtio'}, 'nic_driver: only allowed for type zvol'),
    ({'users': ['root']}, 'users: must be an array'),
])
def test_fields_checked_against_the_type(tmp_path, fields, words):
    host = pool_host()
    with pytest.raises(InvalidParameter, match=words):
        create(host, tmp_path, type='lx-dataset', fields=fields)
    assert host.mutations() == []


def test_output_dir_that_is_a_file(tmp_path):
    (tmp_path / 'file').write_text('x')
    host = pool_host()
    for check in (True, False):
        with pytest.raises(ImageError, match='is not a directory'):
            create(host, tmp_path, check=check, output_dir=str(tmp_path / 'file' / 'sub'))
    assert host.mutations() == []


def test_output_dir_made_when_missing(tmp_path):
    result = create(pool_host(), tmp_path, output_dir=str(tmp_path / 'out' / 'deeper' / 'still'))
    assert os.path.isfile(result['file_path'])


def test_send_failure_leaves_no_file_and_no_snapshot(tmp_path):
    host = pool_host()
    host.send_rc, host.send_err = 1, 'warning: cannot send zones/src@x: I/O error\n'
    with pytest.raises(CommandError, match='zfs send of zones/src@smartos-images-create-.* failed: warning: cannot send') as e:
        create(host, tmp_path)
    assert e.value.evidence['rc'] == 1 and e.value.evidence['cmd'].startswith('zfs send ')
    assert listing(tmp_path) == [] and not [n for n in host.datasets if '@smartos-images-create-' in n]


def test_write_failure_leaves_no_file(tmp_path, monkeypatch):
    from ansible_collections.smartos.images.plugins.module_utils import _create

    def full(read, write, compression, workers=None, block_size=None):
        write(b'partial')
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(_create, 'compress_stream', full)
    host = pool_host()
    with pytest.raises(ImageError, match='No space left on device'):
        create(host, tmp_path)
    assert listing(tmp_path) == [] and not [n for n in host.datasets if '@smartos-images-create-' in n]


# ---- issue 10: never another image's files ----

def every_file(tmp_path):
    """Every name in the output directory, hidden temporary files included, with its bytes."""
    out = tmp_path / 'out'
    return {p.name: p.read_bytes() for p in out.iterdir()} if out.exists() else {}


def own_snapshots(host):
    return [n for n in host.datasets if '@smartos-images-create-' in n]


def assert_create_fails_leaving_nothing(tmp_path, match, host=None, error=ImageError):
    """The create fails with `error` matching `match`, and leaves no output file and no snapshot of its own."""
    host = pool_host() if host is None else host
    with pytest.raises(error, match=match):
        create(host, tmp_path)
    assert every_file(tmp_path) == {} and own_snapshots(host) == []


@pytest.mark.parametrize('first, second', [
    (('a', 'b-1'), ('a-b', '1')),
    (('a/b', '1'), ('a_b', '1')),
    (('my image', '1'), ('my_image', '1')),
    (('x', '1+b/2'), ('x', '1+b_2')),
])
@pytest.mark.parametrize('check', [True, False])
def test_another_images_files_are_never_touched(tmp_path, first, second, check):
    host = pool_host()
    made = create(host, tmp_path, name=first[0], version=first[1], dsmanifest=False)
    before = every_file(tmp_path)
    host.calls, host.sends = [], []
    with pytest.raises(ImageError) as e:
        create(host, tmp_path, check=check, name=second[0], version=second[1])
    assert made['manifest_path'] in e.value.msg and 'belongs to another image, %r version %r' % first in e.value.msg
    assert made['uuid'] in e.value.msg and 'another output_dir' in e.value.msg
    assert e.value.evidence['path'] == made['manifest_path']
    assert every_file(tmp_path) == before and host.mutations() == [] and host.sends == []
    assert own_snapshots(host) == [snapshot_name(SRC, *first)]


def test_another_images_dsmanifest_alone_is_enough_to_refuse(tmp_path):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'a-b-1.dsmanifest').write_text(json.dumps({'name': 'a', 'version': 'b-1', 'uuid': ORIGIN}))
    host = pool_host()
    with pytest.raises(ImageError, match=r'a-b-1\.dsmanifest belongs to another image'):
        create(host, tmp_path, name='a-b', version='1')
    assert sorted(every_file(tmp_path)) == ['a-b-1.dsmanifest'] and host.mutations() == []


def test_a_json_object_that_names_no_image_is_not_replaced(tmp_path):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'img-1.0.0.imgmanifest').write_text('{"something": "else"}')
    with pytest.raises(ImageError, match='is not a manifest of this image'):
        create(pool_host(), tmp_path)
    assert sorted(every_file(tmp_path)) == ['img-1.0.0.imgmanifest']


def test_a_manifest_that_is_not_json_is_replaced_as_before(tmp_path):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'img-1.0.0.imgmanifest').write_text('not json {')
    result = create(pool_host(), tmp_path)
    assert read_json(result['manifest_path'])['uuid'] == result['uuid']


def test_the_same_image_again_is_still_idempotent_and_ordinary_names_keep_their_files(tmp_path):
    host = pool_host()
    first = create(host, tmp_path, name='base-64', version='1.0.0')
    assert os.path.basename(first['file_path']) == 'base-64-1.0.0.zfs.gz'
    assert not create(host, tmp_path, name='base-64', version='1.0.0')['changed']


def test_a_symlinked_manifest_of_another_image_is_refused(tmp_path):
    elsewhere = tmp_path / 'elsewhere.imgmanifest'
    elsewhere.write_text(json.dumps({'name': 'other', 'version': '9', 'uuid': ORIGIN}))
    out = tmp_path / 'out'
    out.mkdir()
    os.symlink(str(elsewhere), str(out / 'img-1.0.0.imgmanifest'))
    with pytest.raises(ImageError, match="belongs to another image, 'other' version '9'"):
        create(pool_host(), tmp_path)
    assert json.loads(elsewhere.read_text())['name'] == 'other' and os.path.islink(str(out / 'img-1.0.0.imgmanifest'))


def test_a_symlink_at_the_image_file_is_replaced_not_followed(tmp_path):
    target = tmp_path / 'precious'
    target.write_bytes(b'keep me')
    out = tmp_path / 'out'
    out.mkdir()
    os.symlink(str(target), str(out / 'img-1.0.0.zfs.gz'))
    result = create(pool_host(), tmp_path)
    assert target.read_bytes() == b'keep me' and not os.path.islink(result['file_path'])


@pytest.mark.parametrize('name, version', [('n' * 240, '1'), ('n', 'v' * 240), ('n' * 200, 'v' * 40)])
def test_names_too_long_for_a_file_are_refused_before_any_command(tmp_path, name, version):
    host = pool_host()
    with pytest.raises(InvalidParameter, match='bytes a file system allows: shorten the name or version'):
        create(host, tmp_path, name=name, version=version)
    assert host.mutations() == [] and listing(tmp_path) == []


# ---- issue 10: a failed create removes what it made, and says why ----

def fail_in_write(monkeypatch, after, err=errno.ENOSPC):
    """os.write into the image's temp file fails after `after` bytes, as on a full disk."""
    from ansible_collections.smartos.images.plugins.module_utils import _create
    real = os.write
    state = {'written': 0}

    def write(fd, data):
        if '.img-1.0.0.zfs.gz.' in os.readlink('/proc/self/fd/%d' % fd):
            if state['written'] + len(data) > after:
                raise OSError(err, os.strerror(err))
            state['written'] += len(data)
        return real(fd, data)

    monkeypatch.setattr(_create.os, 'write', write)


@pytest.mark.parametrize('after', [0, 20000])
@pytest.mark.parametrize('err', [errno.ENOSPC, errno.EDQUOT])
def test_full_disk_leaves_nothing_and_says_so(tmp_path, monkeypatch, after, err):
    fail_in_write(monkeypatch, after, err)
    host = pool_host()
    with pytest.raises(ImageError) as e:
        create(host, tmp_path)
    path = str(tmp_path / 'out' / 'img-1.0.0.zfs.gz')
    assert e.value.msg.startswith('cannot write %s: %s' % (path, os.strerror(err)))
    assert 'full: free some space in %s' % (tmp_path / 'out') in e.value.msg and e.value.evidence['path'] == path
    assert every_file(tmp_path) == {} and own_snapshots(host) == []
    assert host.sends  # the failure came during the send, not before it


def test_short_writes_are_completed(tmp_path, monkeypatch):
    from ansible_collections.smartos.images.plugins.module_utils import _create
    real = os.write
    monkeypatch.setattr(_create.os, 'write', lambda fd, data: real(fd, bytes(data[:1000])))
    result = create(pool_host(), tmp_path)
    with open(result['file_path'], 'rb') as f:
        data = f.read()
    assert len(data) == result['size'] and gzip.decompress(data) == stream_of(result['snapshot'])


def test_a_failing_close_is_reported_and_cleaned_up(tmp_path, monkeypatch):
    from ansible_collections.smartos.images.plugins.module_utils import _create
    real = os.close

    def close(fd):
        target = os.readlink('/proc/self/fd/%d' % fd)
        real(fd)
        if '.img-1.0.0.zfs.gz.' in target:
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))

    monkeypatch.setattr(_create.os, 'close', close)
    assert_create_fails_leaving_nothing(tmp_path, 'cannot write .*img-1.0.0.zfs.gz: %s' % os.strerror(errno.EDQUOT))


def test_a_failing_fsync_is_reported_and_cleaned_up(tmp_path, monkeypatch):
    from ansible_collections.smartos.images.plugins.module_utils import _create

    def fsync(fd):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(_create.os, 'fsync', fsync)
    assert_create_fails_leaving_nothing(tmp_path, 'cannot write .*img-1.0.0.zfs.gz: %s$' % os.strerror(errno.EIO))


@pytest.mark.parametrize('error', [lzma.LZMAError('Memory limit reached'), MemoryError(), ValueError('odd block')])
def test_a_compressor_failure_is_the_modules_error(tmp_path, monkeypatch, error):
    from ansible_collections.smartos.images.plugins.module_utils import _compress

    def broken(data):
        raise error

    monkeypatch.setitem(_compress.COMPRESSORS, 'gzip', broken)
    assert_create_fails_leaving_nothing(tmp_path, 'compressing the send stream of zones/src@smartos-images-create-.* with '
                                        'gzip failed: .*' + (type(error).__name__ if not str(error) else ''))


def test_a_failing_read_of_the_send_stream_is_a_command_error(tmp_path, monkeypatch):
    host = pool_host()
    real_popen = host.popen_out

    def popen_out(argv, stderr):
        proc = real_popen(argv, stderr)

        class Broken:
            def read(self, size):
                raise OSError(errno.EIO, os.strerror(errno.EIO))

            def close(self):
                pass
        proc.stdout = Broken()
        return proc

    host.popen_out = popen_out
    assert_create_fails_leaving_nothing(tmp_path, 'reading the send stream of zones/src@.* failed: %s' % os.strerror(errno.EIO),
                                        host=host, error=CommandError)


@pytest.mark.parametrize('failing', ['img-1.0.0.zfs.gz', 'img-1.0.0.imgmanifest'])
def test_a_failing_rename_leaves_nothing(tmp_path, monkeypatch, failing):
    from ansible_collections.smartos.images.plugins.module_utils import _host
    real = _host.os.replace

    def replace(src, dst):
        if os.path.basename(dst) == failing:
            raise OSError(errno.EPERM, os.strerror(errno.EPERM))
        return real(src, dst)

    monkeypatch.setattr(_host.os, 'replace', replace)
    assert_create_fails_leaving_nothing(tmp_path, 'cannot write .*%s: %s' % (failing, os.strerror(errno.EPERM)))


def test_a_failing_dsmanifest_rename_keeps_the_described_image(tmp_path, monkeypatch):
    from ansible_collections.smartos.images.plugins.module_utils import _host
    real = _host.os.replace

    def replace(src, dst):
        if dst.endswith('.dsmanifest'):
            raise OSError(errno.EPERM, os.strerror(errno.EPERM))
        return real(src, dst)

    monkeypatch.setattr(_host.os, 'replace', replace)
    with pytest.raises(ImageError, match=r'cannot write .*img-1\.0\.0\.dsmanifest'):
        create(pool_host(), tmp_path, dsmanifest=True, description='d', creator_name='c')
    assert sorted(every_file(tmp_path)) == ['img-1.0.0.imgmanifest', 'img-1.0.0.zfs.gz']


def test_a_snapshot_that_cannot_be_destroyed_is_named_with_the_first_failure(tmp_path, monkeypatch):
    fail_in_write(monkeypatch, 0)
    host = pool_host()
    host.destroy_fails = "cannot destroy 'zones/src@x': dataset is busy\n"
    with pytest.raises(ImageError) as e:
        create(host, tmp_path)
    snap = snapshot_name(SRC, 'img', '1.0.0')
    assert e.value.msg.startswith('cannot write ') and os.strerror(errno.ENOSPC) in e.value.msg
    assert 'cleaning up failed: the snapshot %s this run made could not be removed' % snap in e.value.msg
    assert '`zfs destroy %s`' % snap in e.value.msg and every_file(tmp_path) == {}


def test_remove_snapshot_that_fails_says_the_files_are_written(tmp_path):
    host = pool_host()
    host.destroy_fails = "cannot destroy: dataset is busy\n"
    with pytest.raises(ImageError) as e:
        create(host, tmp_path, remove_snapshot=True)
    snap = snapshot_name(SRC, 'img', '1.0.0')
    assert 'the image files are written, but the snapshot %s could not be removed' % snap in e.value.msg
    assert e.value.evidence['changed'] is True
    assert sorted(every_file(tmp_path)) == ['img-1.0.0.imgmanifest', 'img-1.0.0.zfs.gz']


def test_a_temp_file_that_cannot_be_removed_is_named(tmp_path, monkeypatch):
    from ansible_collections.smartos.images.plugins.module_utils import _create, _host
    fail_in_write(monkeypatch, 0)
    real = _host.discard

    def discard(path):
        raise ImageError('cannot remove %s: Operation not permitted' % path, path=path)

    monkeypatch.setattr(_create._host, 'discard', discard)
    host = pool_host()
    with pytest.raises(ImageError, match=r'cleaning up failed: cannot remove .*/\.img-1\.0\.0\.zfs\.gz\.'):
        create(host, tmp_path)
    assert own_snapshots(host) == []    # one clean-up step failing does not skip the others
    monkeypatch.setattr(_create._host, 'discard', real)


def test_sigterm_during_the_send_cleans_up_and_restores_the_handler(tmp_path, monkeypatch):
    from ansible_collections.smartos.images.plugins.module_utils import _create
    real = _create.compress_stream

    def interrupted(read, write, compression, workers=None, block_size=None):
        write(b'partial')
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        return real(read, write, compression, workers, block_size)

    monkeypatch.setattr(_create, 'compress_stream', interrupted)
    before = signal.getsignal(signal.SIGTERM)
    assert_create_fails_leaving_nothing(tmp_path, 'interrupted by signal %d' % signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) == before


# ---- issue 10: the origin's cached manifest is outside data ----

def write_cache(tmp_path, body):
    path = tmp_path / 'root' / 'var' / 'imgadm' / 'images' / ('zones-%s.json' % ORIGIN)
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    return str(path)


def good_origin(**changes):
    m = {'v': 2, 'uuid': ORIGIN, 'name': 'base', 'version': '1.0.0', 'type': 'zone-dataset', 'os': 'illumos'}
    m.update(changes)
    return {'manifest': m, 'zpool': 'zones'}


@pytest.mark.parametrize('body, words', [
    (good_origin(uuid='0bad0000-0000-4000-8000-0000000000aa'),
     "holds the manifest of another image (uuid '0bad0000-0000-4000-8000-0000000000aa')"),
    (good_origin(uuid=None), "holds the manifest of another image (uuid None)"),
    (good_origin(name=['base']), 'the manifest\'s "name" is a JSON array, not a string'),
    (good_origin(version=1), 'the manifest\'s "version" is a JSON number, not a string'),
    (good_origin(requirements=['net0']), "requirements: ['net0'] is not an object"),
    (good_origin(users='root'), "users: 'root' is not a list"),
    (good_origin(os=7), 'the manifest\'s "os" is a JSON number, not a string'),
    (good_origin(image_size=True), 'image_size: True is not an integer'),
    (good_origin(generate_passwords='yes'), "generate_passwords: 'yes' is not true or false"),
    (good_origin(requirements={'min_ram': 'lots'}), 'min_ram'),
    ({'manifest': 'text', 'zpool': 'zones'}, 'has no "manifest" object'),
    ([1, 2], 'is not a JSON object'),
    ('{"manifest": ', 'cannot be read: Expecting value'),
    ('[' * 100000, 'cannot be read: %s: JSON nested too deeply'),
])
def test_a_bad_cached_origin_manifest_is_never_used(tmp_path, body, words):
    host = origin_host(tmp_path)
    path = write_cache(tmp_path, body)
    with pytest.raises(ImageError) as e:
        create(host, tmp_path, dataset='zones/child', origin=ORIGIN)
    assert 'the cached manifest of origin image %s cannot be used: cache file %s' % (ORIGIN, path) in e.value.msg
    assert (words.replace('%s', path) if '%s' in words else words) in e.value.msg, e.value.msg
    assert 'update_manifests' in e.value.msg and e.value.evidence['path'] == path
    assert host.mutations() == [] and listing(tmp_path) == []


def test_a_bad_v1_manifest_of_the_original_layout_is_never_used(tmp_path):
    host = origin_host(tmp_path, cached=False)
    db = tmp_path / 'root' / 'var' / 'db' / 'imgadm'
    db.mkdir(parents=True)
    (db / 'sources.list').write_text('')
    path = db / ('%s.json' % ORIGIN)
    path.write_text(json.dumps({'uuid': '0bad0000-0000-4000-8000-0000000000aa', 'name': 'base', 'version': '1',
                                'creator_uuid': ORIGIN, 'type': 'zone-dataset', 'os': 'smartos'}))
    with pytest.raises(ImageError, match='cached manifest of origin image %s cannot be used: cache file %s holds the '
                                         'manifest of another image' % (ORIGIN, path)):
        create(host, tmp_path, dataset='zones/child', origin=ORIGIN, layout='original')
    assert host.mutations() == []


def test_a_deeply_nested_manifest_in_the_output_dir_is_replaced(tmp_path):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'img-1.0.0.imgmanifest').write_text('[' * 200000)
    result = create(pool_host(), tmp_path)
    assert read_json(result['manifest_path'])['uuid'] == result['uuid']


def test_sigterm_with_a_snapshot_that_cannot_be_removed_names_it(tmp_path, monkeypatch):
    from ansible_collections.smartos.images.plugins.module_utils import _create

    def interrupted(read, write, compression, workers=None, block_size=None):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)

    monkeypatch.setattr(_create, 'compress_stream', interrupted)
    host = pool_host()
    host.destroy_fails = 'cannot destroy: dataset is busy\n'
    with pytest.raises(ImageError, match='interrupted by signal %d; cleaning up failed: the snapshot %s this run made'
                                         % (signal.SIGTERM, snapshot_name(SRC, 'img', '1.0.0'))):
        create(host, tmp_path)
    assert every_file(tmp_path) == {}


@pytest.mark.parametrize('make, words', [
    (os.mkfifo, 'it is not a regular file (a FIFO)'),
    (os.mkdir, 'it is not a regular file (a directory)'),
    (lambda path: os.symlink('/dev/zero', path), 'it is not a regular file (a device or socket)'),
    (lambda path: open(path, 'wb').truncate(9 << 20), 'it is larger than the 8 MiB a manifest may be'),
])
@pytest.mark.parametrize('suffix', ['.imgmanifest', '.dsmanifest'])
def test_something_in_a_manifests_place_is_refused_without_hanging(tmp_path, make, words, suffix):
    out = tmp_path / 'out'
    out.mkdir()
    make(str(out / ('img-1.0.0' + suffix)))
    host = pool_host()
    with pytest.raises(ImageError, match=r'img-1\.0\.0%s is in the way of this image\'s manifest: %s'
                                         % (re.escape(suffix), re.escape(words))):
        create(host, tmp_path, dsmanifest=True, description='d', creator_name='c')
    assert host.mutations() == [] and sorted(os.listdir(str(out))) == ['img-1.0.0' + suffix]


def test_a_fifo_as_the_cached_origin_manifest_is_refused_without_hanging(tmp_path):
    host = origin_host(tmp_path, cached=False)
    path = tmp_path / 'root' / 'var' / 'imgadm' / 'images' / ('zones-%s.json' % ORIGIN)
    path.parent.mkdir(parents=True)
    os.mkfifo(str(path))
    with pytest.raises(ImageError, match=r'cache file %s cannot be read: not a regular file \(a FIFO\)' % path):
        create(host, tmp_path, dataset='zones/child', origin=ORIGIN)
    assert host.mutations() == []


def test_a_killed_runs_temporary_file_is_removed_by_the_next_run(tmp_path):
    out = tmp_path / 'out'
    out.mkdir()
    dead = subprocess.Popen(['true'])
    dead.wait()
    orphan = out / ('.img-1.0.0.zfs.xz.%s-%d.abcd_123' % (host_tag(), dead.pid))
    alive = out / ('.img-1.0.0.zfs.gz.%s-%d.abcd_123' % (host_tag(), os.getpid()))
    elsewhere = out / ('.img-1.0.0.zfs.gz.%s-%d.abcd_123' % ('0' * 8 if host_tag() != '0' * 8 else '1' * 8, dead.pid))
    other_image = out / ('.img-1.0.1.zfs.gz.%s-%d.abcd_123' % (host_tag(), dead.pid))
    for path in (orphan, alive, elsewhere, other_image):
        path.write_bytes(b'partial')
    host = pool_host()
    check = create(host, tmp_path, check=True)
    assert check['actions'][0] == {'action': 'remove_file', 'path': str(orphan)} and orphan.exists()
    real = create(host, tmp_path)
    assert real['actions'] == check['actions'] and not orphan.exists()
    assert alive.exists() and elsewhere.exists() and other_image.exists()   # running, another host's, another image's
    assert not create(host, tmp_path)['changed']


def test_the_temporary_file_names_this_host_and_process(tmp_path, monkeypatch):
    from ansible_collections.smartos.images.plugins.module_utils import _create
    names = []
    real = _create.open_temp

    def spy(path):
        fd, tmp = real(path)
        names.append(os.path.basename(tmp))
        return fd, tmp

    monkeypatch.setattr(_create, 'open_temp', spy)
    create(pool_host(), tmp_path)
    assert re.match(r'\.img-1\.0\.0\.zfs\.gz\.%s-%d\.[a-z0-9_]{8}\Z' % (host_tag(), os.getpid()), names[0])
    assert len(names[0]) - len('img-1.0.0.zfs.gz') <= TEMP_EXTRA
