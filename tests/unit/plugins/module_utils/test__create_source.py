# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_create_source.py: what an image is made from, on a fake host (zfs, vmadm)."""

from __future__ import annotations

import json

import pytest

from ansible_collections.smartos.images.plugins.module_utils._create_source import (
    SourceFinder, descends_from, inherited_problems, snapshot_name,
)
from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, InvalidParameter
from ansible_collections.smartos.images.plugins.module_utils._host import HostPaths
from ansible_collections.smartos.images.plugins.module_utils._inventory import Inventory
from ansible_collections.smartos.images.plugins.module_utils._vmadm import Vmadm
from ansible_collections.smartos.images.plugins.module_utils._zfs import Dataset, Zfs
from ansible_collections.smartos.images.tests.unit.fakehost import FakeHost, zone_vm

VM = '79ae2d1c-5e48-4ae4-9c2f-f9e4d6b7cf0d'
ORIGIN = 'c58161c0-2547-11e2-a75e-9fdca1940570'


def finder(host, tmp_path, layout='modern', **params):
    p = dict(vm=None, dataset=None, snapshot=None, origin=None, pool='zones', name='img', version='1.0.0')
    p.update(params)
    return SourceFinder(p, Zfs(host), Vmadm(host), host, HostPaths(str(tmp_path)), layout)


def test_snapshot_name_is_recognisable_and_one_per_name_and_version():
    a = snapshot_name('zones/src', 'img', '1.0.0')
    assert a.startswith('zones/src@smartos-images-create-') and len(a.split('@')[1]) == len('smartos-images-create-') + 12
    assert a == snapshot_name('zones/src', 'img', '1.0.0') != snapshot_name('zones/src', 'img', '1.0.1')


def test_descends_from():
    inv = Inventory([Dataset('p/a', None, None, None), Dataset('p/a@final', None, None, None),
                     Dataset('p/b', 'p/a@final', None, None), Dataset('p/b@s', None, None, None),
                     Dataset('p/c', 'p/b@s', None, None), Dataset('p/x', 'p/x@loop', None, None)])
    assert descends_from(inv, 'p/c', 'p/a') and descends_from(inv, 'p/b', 'p/a') and descends_from(inv, 'p/a', 'p/a')
    assert not descends_from(inv, 'p/a', 'p/b') and not descends_from(inv, 'p/x', 'p/a')
    assert not descends_from(inv, 'p/missing', 'p/a')


def test_a_dataset_gets_the_modules_own_snapshot(tmp_path):
    host = FakeHost.from_rows([('zones',), ('zones/src',)])
    source = finder(host, tmp_path, dataset='zones/src').find()
    assert (source.dataset, source.kind, source.own, source.guid) == ('zones/src', 'filesystem', True, None)
    assert source.snapshot == snapshot_name('zones/src', 'img', '1.0.0')
    guid = host.add(source.snapshot)
    assert finder(host, tmp_path, dataset='zones/src').find().guid == guid    # found again once made


def test_a_users_snapshot_is_sent_as_it_is_and_never_owned(tmp_path):
    host = FakeHost.from_rows([('zones',), ('zones/src',), ('zones/src@mine',)])
    source = finder(host, tmp_path, snapshot='zones/src@mine').find()
    assert (source.snapshot, source.own, source.guid) == ('zones/src@mine', False, host.guid('zones/src@mine'))


@pytest.mark.parametrize('params, error, words', [
    ({'dataset': 'zones/src@x'}, InvalidParameter, 'is a snapshot: give it as snapshot'),
    ({'snapshot': 'zones/src'}, InvalidParameter, 'is not a snapshot name'),
    ({'snapshot': 'zones/src@none'}, ImageError, 'does not exist'),
    ({'dataset': 'zones/none'}, ImageError, 'does not exist'),
    ({'vm': VM}, ImageError, 'has no dataset on pool zones'),
])
def test_what_cannot_be_a_source_is_refused(tmp_path, params, error, words):
    host = FakeHost.from_rows([('zones',), ('zones/src',)])
    with pytest.raises(error, match=words):
        finder(host, tmp_path, **params).find()
    assert host.mutations() == []


def test_a_vm_from_vmadm_brings_its_state(tmp_path):
    host = FakeHost.from_rows([('zones',), ('zones/' + VM,)], vms={VM: zone_vm(VM, state='running')})
    source = finder(host, tmp_path, vm=VM).find()
    assert (source.dataset, source.vm, source.vm_state) == ('zones/' + VM, VM, 'running')


def test_a_vm_without_vmadm_is_found_by_its_disk_first(tmp_path):
    host = FakeHost.from_rows([('zones',), ('zones/' + VM,), ('zones/%s-disk0' % VM, 'volume', None, 1 << 30)])
    source = finder(host, tmp_path, vm=VM).find()
    assert (source.dataset, source.kind, source.vm) == ('zones/%s-disk0' % VM, 'volume', VM)


def origin_host(clone_of='zones/%s@final' % ORIGIN):
    return FakeHost.from_rows([('zones',), ('zones/' + ORIGIN,), ('zones/%s@final' % ORIGIN,), ('zones/child', None, clone_of)])


def test_the_origin_is_checked_and_its_cached_manifest_read(tmp_path):
    path = tmp_path / 'var' / 'imgadm' / 'images' / ('zones-%s.json' % ORIGIN)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({'manifest': {'uuid': ORIGIN, 'name': 'base', 'version': '1', 'os': 'illumos'}}))
    f = finder(origin_host(), tmp_path, dataset='zones/child', origin=ORIGIN)
    final, manifest = f.find_origin(f.find())
    assert final == 'zones/%s@final' % ORIGIN and manifest['os'] == 'illumos' and f.warnings == []


def test_an_origin_without_a_cached_manifest_warns(tmp_path):
    f = finder(origin_host(), tmp_path, dataset='zones/child', origin=ORIGIN)
    assert f.find_origin(f.find())[1] == {}
    assert 'nothing is inherited' in f.warnings[0]


def test_an_origin_that_is_no_ancestor_is_refused(tmp_path):
    host = origin_host(clone_of=None)
    f = finder(host, tmp_path, dataset='zones/child', origin=ORIGIN)
    with pytest.raises(ImageError, match='is not an ancestor'):
        f.find_origin(f.find())


@pytest.mark.parametrize('manifest, words', [
    ({'image_size': True}, 'image_size: True is not an integer'),
    ({'requirements': []}, 'requirements: [] is not an object'),
    ({'users': 'root'}, "users: 'root' is not a list"),
    ({'generate_passwords': 'yes'}, "generate_passwords: 'yes' is not true or false"),
])
def test_inherited_problems(manifest, words):
    assert words in inherited_problems(dict(manifest, uuid=ORIGIN, name='a', version='1'))


def test_good_inherited_fields_have_no_problems():
    assert inherited_problems({'uuid': ORIGIN, 'name': 'a', 'version': '1', 'os': 'smartos', 'users': []}) == []


def test_a_cached_manifest_the_reader_finds_bad_is_refused_naming_the_file(tmp_path):
    path = tmp_path / 'var' / 'imgadm' / 'images' / ('zones-%s.json' % ORIGIN)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({'manifest': {'uuid': 'other', 'name': 'b', 'version': '1'}}))
    f = finder(origin_host(), tmp_path, dataset='zones/child', origin=ORIGIN)
    with pytest.raises(ImageError, match='cache file %s holds the manifest of another image' % path) as e:
        f.find_origin(f.find())
    assert e.value.evidence['path'] == str(path) and 'update_manifests' in e.value.msg
