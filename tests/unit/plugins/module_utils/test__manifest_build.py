# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_manifest_build.py: v2 and v1 manifests of new images, and node-imgmanifest's rules."""

from __future__ import annotations

import datetime
import uuid as uuidlib

import pytest

from ansible_collections.smartos.images.plugins.module_utils._manifest import ManifestError, upgrade_manifest
from ansible_collections.smartos.images.plugins.module_utils._manifest_build import (
    INHERITED, NO_OWNER, build_v1, build_v2, derive_uuid, desired_fields, dumps, manifest_problems, published_at,
    requirements_problems, v1_problems,
)
from ansible_collections.smartos.images.tests.unit.manifest_fixtures import OWN, OWN_CHANNELS, lane_params

U = '2f1dc911-6401-4fa4-8e9d-67ea2e39c271'
ORIGIN = 'c58161c0-2547-11e2-a75e-9fdca1940570'
OWNER = '930896af-bf8c-48d4-885c-6573a94b1853'
SHA1 = '3bc7f0d7e4bd0a2c6a7a4a7b1e0a4dd8f6b1c8a2'
ENTRY = {'sha1': SHA1, 'size': 1234, 'compression': 'gzip', 'dataset_guid': '11192632609860586301'}


def task(**kw):
    t = dict(name='img', version='1.0.0', description=None, homepage=None, os=None, type=None, owner=None,
             requirements=None, fields=None, origin=None)
    t.update(kw)
    return t


# ---- published_at and the UUID ----

@pytest.mark.parametrize('now, expected', [
    (datetime.datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.timezone.utc), '2025-01-02T03:04:05.678Z'),
    (datetime.datetime(2012, 8, 31, 23, 59, 59, 0, tzinfo=datetime.timezone.utc), '2012-08-31T23:59:59.000Z'),
])
def test_published_at_is_the_wikis_format(now, expected):
    assert published_at(now) == expected
    assert manifest_problems({'published_at': published_at(now)}, required=()) == []


def test_published_at_now_is_valid():
    assert manifest_problems({'published_at': published_at()}, required=()) == []


def test_derived_uuid_is_stable_and_distinct():
    a = derive_uuid('123', 'img', '1.0.0', 'zone-dataset', None)
    assert a == derive_uuid(123, 'img', '1.0.0', 'zone-dataset', None)
    assert uuidlib.UUID(a).version == 5 and a == a.lower()
    others = {derive_uuid('124', 'img', '1.0.0', 'zone-dataset', None), derive_uuid('123', 'img', '1.0.1', 'zone-dataset', None),
              derive_uuid('123', 'img', '1.0.0', 'lx-dataset', None), derive_uuid('123', 'img', '1.0.0', 'zone-dataset', ORIGIN)}
    assert a not in others and len(others) == 4


# ---- v2 ----

def test_v2_minimal_image():
    fields = desired_fields(task(), None, {'type': 'zone-dataset', 'os': 'smartos'})
    m = build_v2(fields, U, '2025-01-02T03:04:05.678Z', ENTRY)
    assert list(m) == ['v', 'uuid', 'owner', 'name', 'version', 'state', 'disabled', 'public', 'published_at', 'type',
                       'os', 'files']
    assert m['v'] == 2 and m['owner'] == NO_OWNER and m['state'] == 'active' and m['public'] is True
    assert m['files'] == [ENTRY] and manifest_problems(m) == []


def test_v2_every_option():
    fields = desired_fields(task(description='d', homepage='https://example.com/img', os='linux', type='lx-dataset',
                                 owner=OWNER, requirements={'brand': 'lx', 'min_ram': 512},
                                 fields={'tags': {'role': 'web'}, 'public': False, 'acl': [OWNER], 'billing_tags': ['x']}),
                            None, {'type': 'zone-dataset', 'os': 'smartos'})
    m = build_v2(fields, U, '2025-01-02T03:04:05Z', ENTRY)
    assert (m['type'], m['os'], m['owner'], m['public'], m['acl']) == ('lx-dataset', 'linux', OWNER, False, [OWNER])
    assert m['requirements'] == {'brand': 'lx', 'min_ram': 512} and m['tags'] == {'role': 'web'}
    assert manifest_problems(m) == []


def test_disabled_image_says_so_in_state():
    fields = desired_fields(task(fields={'disabled': True}), None, {'type': 'other', 'os': 'other'})
    assert fields['state'] == 'disabled'


def test_inherited_fields_task_first_then_origin_then_defaults():
    origin = {'uuid': ORIGIN, 'name': 'base', 'version': '9', 'description': 'base image', 'type': 'zvol', 'os': 'windows',
              'requirements': {'min_ram': 4096}, 'users': [{'name': 'administrator'}], 'billing_tags': ['w'],
              'traits': {'ssd': True}, 'generate_passwords': False, 'nic_driver': 'e1000', 'disk_driver': 'ide',
              'cpu_type': 'host', 'image_size': 40960, 'tags': {'role': 'os'}, 'homepage': 'https://example.com'}
    fields = desired_fields(task(origin=ORIGIN, os='other', fields={'cpu_type': 'qemu64'}), origin,
                            {'type': 'zvol', 'os': 'smartos', 'nic_driver': 'virtio', 'image_size': 10240})
    assert fields['origin'] == ORIGIN and fields['os'] == 'other' and fields['cpu_type'] == 'qemu64'   # the task's
    for key in ('type', 'requirements', 'users', 'billing_tags', 'traits', 'generate_passwords', 'nic_driver',
                'disk_driver', 'image_size'):
        assert fields[key] == origin[key], key                                                      # the origin's
    for key in ('name', 'version', 'description', 'tags', 'homepage'):
        assert key not in fields or fields[key] != origin[key], key                                 # never inherited
    assert set(INHERITED) == {'type', 'os', 'requirements', 'users', 'billing_tags', 'traits', 'generate_passwords',
                              'inherited_directories', 'nic_driver', 'disk_driver', 'cpu_type', 'image_size'}


def test_dumps_is_imgadms_format():
    assert dumps({'v': 2, 'name': 'é'}) == b'{\n  "v": 2,\n  "name": "\xc3\xa9"\n}\n'


# ---- v1 ----

def v2_image(**kw):
    fields = desired_fields(task(description='An image', owner=OWNER, **kw), None, {'type': 'zone-dataset', 'os': 'smartos'})
    return build_v2(fields, U, '2025-01-02T03:04:05.678Z', ENTRY)


def test_v1_has_the_wikis_required_fields_and_urn():
    v1 = build_v1(v2_image(requirements={'networks': [{'name': 'net0', 'description': 'public'}]}), 'img-1.0.0.zfs.gz', 'acme')
    for key in ('uuid', 'name', 'version', 'description', 'published_at', 'creator_uuid', 'creator_name', 'urn', 'type',
                'os', 'files'):
        assert key in v1, key
    assert v1['urn'] == 'smartos:acme:img:1.0.0' and v1['creator_uuid'] == OWNER and v1['creator_name'] == 'acme'
    assert v1['files'] == [{'path': 'img-1.0.0.zfs.gz', 'sha1': SHA1, 'size': 1234}]
    assert v1['published_at'] == '2025-01-02T03:04:05.678Z' and 'v' not in v1 and 'owner' not in v1
    assert v1['requirements'] == {'networks': [{'name': 'net0', 'description': 'public'}]}


def test_v1_upgrades_back_to_the_v2():
    v2 = v2_image()
    again = upgrade_manifest(build_v1(v2, 'img-1.0.0.zfs.gz', 'acme'))
    assert again.pop('urn') == 'smartos:acme:img:1.0.0'
    assert again['files'][0] == {k: ENTRY[k] for k in ('sha1', 'size', 'compression')}
    again['files'] = v2['files']
    assert again == v2


@pytest.mark.parametrize('compression, path, says', [
    ('gzip', 'a.zfs.gz', None), ('bzip2', 'a.zfs.bz2', None), ('xz', 'a.zfs.xz', 'xz'), ('none', 'a.zfs', 'none'),
])
def test_v1_names_compression_where_the_upgrade_would_guess_wrong(compression, path, says):
    v2 = dict(v2_image(), files=[dict(ENTRY, compression=compression)])
    v1 = build_v1(v2, path, 'acme')
    assert v1['files'][0].get('compression') == says
    assert upgrade_manifest(v1)['files'][0]['compression'] == compression


def test_v1_of_a_private_zvol_image():
    fields = desired_fields(task(description='d', owner=OWNER, fields={'public': False}), None,
                            {'type': 'zvol', 'os': 'linux', 'nic_driver': 'virtio', 'disk_driver': 'virtio',
                             'cpu_type': 'qemu64', 'image_size': 10240})
    v1 = build_v1(build_v2(fields, U, '2025-01-02T03:04:05Z', ENTRY), 'img.zvol.gz', 'acme')
    assert v1['restricted_to_uuid'] == OWNER and v1['image_size'] == 10240 and v1['cpu_type'] == 'qemu64'
    v2 = upgrade_manifest(v1)
    assert v2['public'] is False and v2['acl'] == [OWNER] and manifest_problems(v2) == []


@pytest.mark.parametrize('kw, creator, words', [
    ({}, 'acme', None),
    ({'name': 'x' * 33}, 'acme', 'name'),
    ({'name': '1starts-with-a-digit'}, 'acme', 'name'),
    ({'version': 'a/b'}, 'acme', 'version'),
    ({'description': 'x' * 256}, 'acme', 'description'),
    ({}, None, 'creator_name'),
    ({}, 'a:b', 'creator_name'),
    ({'origin': ORIGIN}, 'acme', 'origin'),
])
def test_v1_problems(kw, creator, words):
    fields = dict(dict(name='img', version='1.0.0', description='d'), **kw)
    problems = v1_problems(fields, creator)
    assert (problems == []) if words is None else (len(problems) == 1 and problems[0].startswith(words))


# ---- node-imgmanifest's rules ----

GOOD = {'v': 2, 'uuid': U, 'name': 'img', 'version': '1.0.0', 'type': 'zone-dataset', 'os': 'smartos'}


@pytest.mark.parametrize('changes, expected', [
    ({}, []),
    ({'v': '2'}, []),
    ({'v': 'two'}, ['v: must be a positive integer']),
    ({'uuid': U.upper()}, ['uuid: must be a lower-case UUID']),
    ({'name': None}, ['name: missing']),
    ({'name': 'a|b'}, ['name: letters, digits, space and . _ / - only, at most 1024']),
    ({'name': 'x' * 1025}, ['name: letters, digits, space and . _ / - only, at most 1024']),
    ({'version': '1.0 beta'}, ['version: letters, digits and . _ / + - only, at most 512']),
    ({'version': '1.0.0+build.7'}, []),
    ({'published_at': '2011-05-10T09:25Z'}, ['published_at: must be YYYY-MM-DDTHH:MM:SS(.mmm)Z']),
    ({'published_at': '2011-05-10T09:25:00+01:00'}, ['published_at: must be YYYY-MM-DDTHH:MM:SS(.mmm)Z']),
    ({'type': 'vmimage'}, ['type: must be one of zone-dataset, lx-dataset, lxd, zvol, docker, other']),
    ({'type': 'null'}, ['type: must be one of zone-dataset, lx-dataset, lxd, zvol, docker, other']),
    ({'type': 'null', 'state': 'creating'}, []),
    ({'os': 'plan9'}, ['os: must be one of smartos, linux, windows, bsd, illumos, other']),
    ({'state': 'gone'}, ['state: must be one of active, unactivated, disabled, failed, creating']),
    ({'icon': {'sha1': SHA1}}, ['icon: must be a boolean']),
    ({'disabled': 'false', 'public': 'true'}, []),
    ({'acl': OWNER}, ['acl: must be an array of UUIDs']),
    ({'objectclass': 'sdcimage'}, ['objectclass: unknown field']),
    ({'homepage': 'javascript:alert(1)'}, ['homepage: must be an http: or https: URL']),
    ({'files': [ENTRY, ENTRY]}, ['files: too many entries (2)']),
    ({'files': [ENTRY, ENTRY], 'type': 'lxd'}, []),
    ({'files': [{'sha1': SHA1, 'size': 0, 'compression': 'gzip'}]}, ['files[0].size: missing']),
    ({'files': [{'sha1': SHA1, 'size': 1, 'compression': 'zstd'}]}, ['files[0].compression: must be one of gzip, bzip2, xz, none']),
    ({'files': [dict(ENTRY, stor='local')]}, []),
    ({'users': [{'name': 'root', 'uid': 0}]}, ['users: must be an array of {"name"} objects']),
    ({'billing_tags': ['x' * 129]}, ['billing_tags: must be an array of strings of at most 128 characters']),
    ({'traits': {'a': 1}}, ['traits: must be an object of strings, booleans or arrays']),
    ({'tags': ['a']}, ['tags: must be an object (at most 102400 characters as JSON)']),
    ({'inherited_directories': ['/opt'], 'type': 'lx-dataset'}, ['inherited_directories: only allowed for type zone-dataset']),
    ({'type': 'zvol'}, ['nic_driver: required for type zvol', 'disk_driver: required for type zvol',
                        'cpu_type: required for type zvol', 'image_size: required for type zvol']),
    ({'type': 'zvol', 'nic_driver': 'virtio', 'disk_driver': 'virtio', 'cpu_type': 'host', 'image_size': '16384'}, []),
    ({'type': 'zvol', 'nic_driver': 'virtio', 'disk_driver': 'virtio', 'cpu_type': 'host', 'image_size': 'big'},
     ['image_size: must be an integer (MiB)']),
    ({'image_size': 10}, ['image_size: only allowed for type zvol']),
    ({'activated': True}, ['published_at: required for an activated image', 'files: required for an activated image']),
    ({'channels': ['dev', 1]}, ['channels: must be an array of strings']),
])
def test_manifest_problems(changes, expected):
    manifest = {k: v for k, v in dict(GOOD, **changes).items() if v is not None}
    assert manifest_problems(manifest) == expected


@pytest.mark.parametrize('req, expected', [
    ({'networks': [{'name': 'net0', 'description': 'public'}], 'ssh_key': True, 'min_ram': 256, 'max_ram': 1024,
      'brand': 'bhyve', 'bootrom': 'uefi', 'min_platform': {'7.0': '20141030T081701Z'}}, []),
    ({'networks': [{'name': 'net0'}]}, ['requirements.networks: must be an array of {"name", "description"} objects']),
    ({'password': 'x'}, ['requirements: unsupported requirement "password"']),
    ({'min_ram': '256'}, ['requirements.min_ram: must be an integer (MiB)']),
    ({'min_ram': 2048, 'max_ram': 1024}, ['requirements.min_ram: must not be more than max_ram']),
    ({'ssh_key': 'yes'}, ['requirements.ssh_key: must be a boolean']),
    ({'min_platform': {}}, ['requirements.min_platform: must be a non-empty object {<SDC version>: "YYYYMMDDTHHMMSSZ"}']),
    ({'max_platform': {'7.0': '20111030T081701Z'}},
     ["requirements.max_platform: has an invalid platform timestamp '20111030T081701Z' (YYYYMMDDTHHMMSSZ, 2012 or later)"]),
    ({'min_platform': {'7.0': '20141330T081701Z'}},
     ["requirements.min_platform: has an invalid platform timestamp '20141330T081701Z' (YYYYMMDDTHHMMSSZ, 2012 or later)"]),
    ({'bootrom': 'bios'}, ['requirements.bootrom: needs requirements.brand "bhyve"']),
    ({'bootrom': 'coreboot', 'brand': 'bhyve'}, ['requirements.bootrom: must be "bios" or "uefi"']),
    ([], ['requirements: must be an object']),
])
def test_requirements_problems(req, expected):
    assert requirements_problems(req) == expected


# ---- the example manifests (tests/unit/manifest_fixtures.py): what node-imgmanifest accepts and rejects ----


@pytest.mark.parametrize('lane, name', lane_params(lambda lane: lane.valid_v1 + lane.valid_v2))
def test_node_imgmanifest_accepts(lane, name):
    assert manifest_problems(upgrade_manifest(lane.load(name))) == []


@pytest.mark.parametrize('lane, name', lane_params(lambda lane: lane.dc_records))
def test_node_imgmanifest_rejects_dc_records(lane, name):
    records = lane.load(name)
    assert isinstance(records, list) and any(isinstance(r.get('acl'), str) for r in records) \
        and not all(isinstance(r.get('acl'), str) for r in records)
    for record in records:
        problems = manifest_problems(record)
        assert 'objectclass: unknown field' in problems
        assert ('acl: must be an array of UUIDs' in problems) == isinstance(record.get('acl'), str)
        assert len(problems) == 1 + isinstance(record.get('acl'), str)


@pytest.mark.parametrize('lane, name', lane_params(lambda lane: lane.icon_records))
def test_node_imgmanifest_rejects_an_icon_object(lane, name):
    records = lane.load(name)
    assert isinstance(records, list) and records
    for record in records:
        assert manifest_problems(record) == ['icon: must be a boolean']


@pytest.mark.parametrize('lane, name', lane_params(lambda lane: lane.no_v))
def test_a_manifest_without_v_is_not_upgraded(lane, name):
    with pytest.raises(ManifestError, match='does not have a "v" field'):
        upgrade_manifest(lane.load(name))


def test_a_manifest_with_channels_is_accepted_and_its_channels_checked():
    manifest = OWN.load(OWN_CHANNELS)
    assert manifest['channels'] and manifest_problems(manifest) == []
    assert manifest_problems(dict(manifest, channels='dev')) == ['channels: must be an array of strings']


def test_an_origins_empty_arrays_are_not_inherited_as_imgadm_create_drops_them():
    origin = {'uuid': ORIGIN, 'type': 'zone-dataset', 'os': 'smartos', 'billing_tags': [], 'users': [],
              'inherited_directories': [], 'traits': {}, 'requirements': {'brand': 'joyent'}}
    fields = desired_fields(task(origin=ORIGIN), origin, {'type': 'zone-dataset', 'os': 'smartos'})
    for key in ('billing_tags', 'users', 'inherited_directories'):
        assert key not in fields, key
    assert fields['traits'] == {} and fields['requirements'] == {'brand': 'joyent'}     # not an array: kept
    given = desired_fields(task(origin=ORIGIN, fields={'billing_tags': []}), origin)
    assert given['billing_tags'] == []                                                   # the task's own: kept
