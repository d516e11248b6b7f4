# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for schemas/imgmanifest-v2.json: draft 2020-12, self-contained, and in agreement with node-imgmanifest
(the example manifests it accepts and rejects) and with the manifests smartos_image_create builds."""

from __future__ import annotations

import json
import os

import jsonschema
import pytest

from ansible_collections.smartos.images.plugins.module_utils._manifest import upgrade_manifest
from ansible_collections.smartos.images.plugins.module_utils._manifest_build import (
    build_v1, build_v2, desired_fields, manifest_problems,
)
from ansible_collections.smartos.images.tests.unit.manifest_fixtures import OWN, OWN_CHANNELS, lane_params

SCHEMA_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))),
                           'schemas', 'imgmanifest-v2.json')
U = '2f1dc911-6401-4fa4-8e9d-67ea2e39c271'
OWNER = '930896af-bf8c-48d4-885c-6573a94b1853'
SHA1 = '3bc7f0d7e4bd0a2c6a7a4a7b1e0a4dd8f6b1c8a2'
ENTRY = {'sha1': SHA1, 'size': 1234, 'compression': 'gzip', 'dataset_guid': '11192632609860586301'}
GOOD = {'v': 2, 'uuid': U, 'name': 'img', 'version': '1.0.0', 'type': 'zone-dataset', 'os': 'smartos'}
ZVOL = {'type': 'zvol', 'nic_driver': 'virtio', 'disk_driver': 'virtio', 'cpu_type': 'host', 'image_size': 10240}


@pytest.fixture(scope='module')
def schema():
    with open(SCHEMA_PATH, encoding='utf-8') as f:
        return json.load(f)


@pytest.fixture(scope='module')
def validator(schema):
    return jsonschema.Draft202012Validator(schema)


def errors(validator, manifest):
    return sorted(e.message for e in validator.iter_errors(manifest))


def test_is_a_valid_draft_2020_12_schema(schema):
    assert schema['$schema'] == 'https://json-schema.org/draft/2020-12/schema'
    jsonschema.Draft202012Validator.check_schema(schema)


def test_is_self_contained(schema):
    """Every $ref points inside the file: a lookup plugin can load it with nothing else."""
    refs = []

    def walk(node):
        if isinstance(node, dict):
            refs.extend(v for k, v in node.items() if k == '$ref')
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    assert refs and all(r.startswith('#/$defs/') for r in refs)


# The schema and _manifest_build.manifest_problems (node-imgmanifest's rules) agree on each of these.
@pytest.mark.parametrize('changes, valid', [
    ({}, True),
    ({'v': '2'}, True),
    ({'v': 'two'}, False),
    ({'v': None}, False),
    ({'uuid': U.upper()}, False),
    ({'owner': 'nobody'}, False),
    ({'name': 'Private vader image'}, True),
    ({'name': 'a|b'}, False),
    ({'name': 'x' * 1025}, False),
    ({'version': '1.0.0+build.7'}, True),
    ({'version': '1.0 beta'}, False),
    ({'description': 'x' * 10241}, False),
    ({'homepage': 'https://example.com/img'}, True),
    ({'homepage': 'javascript:alert(1)'}, False),
    ({'published_at': '2025-01-02T03:04:05Z'}, True),
    ({'published_at': '2025-01-02T03:04:05.678Z'}, True),
    ({'published_at': '2011-05-10T09:25Z'}, False),
    ({'type': 'vmimage'}, False),
    ({'type': 'null'}, False),
    ({'type': 'null', 'state': 'creating'}, True),
    ({'os': 'plan9'}, False),
    ({'state': 'gone'}, False),
    ({'icon': True}, True),
    ({'icon': {'sha1': SHA1}}, False),
    ({'disabled': 'false', 'public': 'true'}, True),
    ({'disabled': 'no'}, False),
    ({'acl': [OWNER]}, True),
    ({'acl': OWNER}, False),
    ({'objectclass': 'sdcimage'}, False),
    ({'origin': 'not-a-uuid'}, False),
    ({'files': [ENTRY]}, True),
    ({'files': [dict(ENTRY, stor='local', contentMD5='x')]}, True),
    ({'files': [ENTRY, ENTRY]}, False),
    ({'files': [ENTRY, ENTRY], 'type': 'lxd'}, True),
    ({'files': [{'sha1': SHA1, 'size': 0, 'compression': 'gzip'}]}, False),
    ({'files': [{'size': 5, 'compression': 'gzip'}]}, False),
    ({'files': [{'sha1': SHA1, 'size': 5, 'compression': 'zstd'}]}, False),
    ({'requirements': {'networks': [{'name': 'net0', 'description': 'public'}], 'ssh_key': True, 'brand': 'bhyve',
                       'bootrom': 'uefi', 'min_ram': 256, 'min_platform': {'7.0': '20141030T081701Z'}}}, True),
    ({'requirements': {'password': 'x'}}, False),
    ({'requirements': {'networks': [{'name': 'net0'}]}}, False),
    ({'requirements': {'bootrom': 'bios'}}, False),
    ({'requirements': {'bootrom': 'bios', 'brand': 'kvm'}}, False),
    ({'requirements': {'min_platform': {}}}, False),
    ({'requirements': {'max_platform': {'7.0': '20111030T081701Z'}}}, False),
    ({'requirements': {'min_ram': '256'}}, False),
    ({'users': [{'name': 'root'}]}, True),
    ({'users': [{'name': 'root', 'uid': 0}]}, False),
    ({'billing_tags': ['x' * 129]}, False),
    ({'traits': {'a': 1}}, False),
    ({'tags': ['a']}, False),
    ({'tags': {'role': 'os', 'n': 1}}, True),
    ({'inherited_directories': ['/opt']}, True),
    ({'inherited_directories': ['/opt'], 'type': 'lx-dataset'}, False),
    (ZVOL, True),
    (dict(ZVOL, image_size='16384'), True),
    (dict(ZVOL, image_size='big'), False),
    (dict(ZVOL, cpu_type=None), False),
    ({'image_size': 10}, False),
    ({'nic_driver': 'virtio'}, False),
    ({'activated': True}, False),
    ({'activated': True, 'published_at': '2025-01-02T03:04:05Z', 'files': [ENTRY]}, True),
    ({'channels': ['dev', 1]}, False),
])
def test_agrees_with_node_imgmanifests_rules(validator, changes, valid):
    manifest = {k: v for k, v in dict(GOOD, **changes).items() if v is not None}
    assert (errors(validator, manifest) == []) == valid
    assert (manifest_problems(manifest) == []) == valid


def test_what_smartos_image_create_builds_is_valid(validator):
    base = desired_fields({'name': 'img', 'version': '1.0.0'}, None, {'type': 'zone-dataset', 'os': 'smartos'})
    zvol = desired_fields({'name': 'img', 'version': '1.0.0', 'description': 'd', 'owner': OWNER,
                           'requirements': {'brand': 'bhyve', 'bootrom': 'uefi'}, 'origin': U},
                          None, dict(ZVOL, os='linux'))
    for fields in (base, zvol):
        v2 = build_v2(fields, U, '2025-01-02T03:04:05.678Z', ENTRY)
        assert errors(validator, v2) == []
    v1 = build_v1(build_v2(dict(base, description='d'), U, '2025-01-02T03:04:05.678Z', ENTRY), 'img-1.0.0.zfs.gz', 'acme')
    assert errors(validator, upgrade_manifest(v1)) == []


# ---- the example manifests (tests/unit/manifest_fixtures.py: what node-imgmanifest accepts and rejects) ----


@pytest.mark.parametrize('lane, name', lane_params(lambda lane: lane.valid_v1 + lane.valid_v2 + (
    [OWN_CHANNELS] if lane is OWN else [])))
def test_accepts_every_valid_example_manifest(validator, lane, name):
    """v1 ones after the v1 -> v2 upgrade, as imgadm install reads them."""
    assert errors(validator, upgrade_manifest(lane.load(name))) == []


@pytest.mark.parametrize('lane, name', lane_params(lambda lane: lane.dc_records))
def test_rejects_dc_records_objectclass_and_string_acl(validator, lane, name):
    for record in lane.load(name):
        found = errors(validator, record)
        assert "Additional properties are not allowed ('objectclass' was unexpected)" in found
        assert any("is not of type 'array'" in e for e in found) == isinstance(record.get('acl'), str)


@pytest.mark.parametrize('lane, name', lane_params(lambda lane: lane.icon_records))
def test_rejects_an_icon_object(validator, lane, name):
    for record in lane.load(name):
        assert len(errors(validator, record)) == 1 and list(validator.iter_errors(record))[0].path[0] == 'icon'


@pytest.mark.parametrize('lane, name', lane_params(lambda lane: lane.no_v))
def test_rejects_a_manifest_without_v(validator, lane, name):
    assert errors(validator, lane.load(name)) == ["'v' is a required property"]


# ---- where the schema and the target disagreed (found by tests/unit/property/test_schema_differential.py) ----
@pytest.mark.parametrize('changes, valid', [
    # node-imgmanifest only asks for truthy sha1 and size (the import checks 40 hex digits and a positive integer)
    ({'files': [{'sha1': 'x', 'size': 1.5, 'compression': 'gzip'}]}, True),
    ({'files': [{'sha1': SHA1, 'size': 0.0, 'compression': 'gzip'}]}, False),
    ({'files': [{'sha1': False, 'size': 5, 'compression': 'gzip'}]}, False),
    # users: the key "name" only, of any type
    ({'users': [{'name': None}]}, True),
    # "0" is truthy in JavaScript: an image_size text "0" is refused on a non-zvol image
    ({'image_size': '0'}, False),
    ({'image_size': 0}, True),
    # Number() of decimal text, with a sign
    (dict(ZVOL, image_size='-1'), True),
    (dict(ZVOL, image_size='.0'), True),
    (dict(ZVOL, image_size='1_0'), False),
    (dict(ZVOL, image_size='1e3'), False),     # Number() reads it; refused on both sides on purpose
    ({'v': '-0'}, True),
    ({'v': 'nan'}, False),
    ({'v': '\u0662'}, False),                  # Python's float() reads other scripts' digits; Number() does not
    # a final newline: Python's $ accepts it, ECMA-262's does not
    ({'name': 'img\n'}, False),
    ({'uuid': U + '\n'}, False),
    ({'published_at': '2025-01-02T03:04:05Z\n'}, False),
    ({'requirements': {'min_platform': {'7.0': '20141030T081701Z\n'}}}, False),
    ({'requirements': {'min_platform': {'7.0': '\u0662\u0660\u0661\u0664' + '1030T081701Z'}}}, False),
    # JSON.parse makes 256.0 and 256 the same number
    ({'requirements': {'min_ram': 256.0, 'max_ram': 512}}, True),
    # url.parse() lower-cases the protocol and is happy with an unclosed IPv6 bracket
    ({'homepage': 'HTTPS://example.com'}, True),
    ({'homepage': 'https://[::1'}, True),
])
def test_agrees_where_they_once_differed(validator, changes, valid):
    manifest = dict(GOOD, **changes)
    assert (errors(validator, manifest) == []) == valid
    assert (manifest_problems(manifest) == []) == valid
