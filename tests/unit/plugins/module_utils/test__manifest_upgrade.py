# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the v1 -> v2 manifest upgrade in plugins/module_utils/_manifest.py, on the shared real manifests."""

from __future__ import annotations

import pytest

from ansible_collections.smartos.images.plugins.module_utils._manifest import (
    ManifestError, manifest_version, upgrade_manifest,
)
from ansible_collections.smartos.images.tests.unit.shared_manifests import VALID_V1, load, needs_shared


@needs_shared
def test_fauxubuntu_zvol_upgrade_matches_node_imgmanifest():
    """The reference's worked example (§5.4), observed by running node-imgmanifest."""
    v1 = load('sdc-imgapi__fauxubuntu-zvol-dsapi-v1.json')
    v2 = upgrade_manifest(v1)
    assert v2['v'] == 2 and v2['image_size'] == 16384
    assert v2['files'] == [{'sha1': v1['files'][0]['sha1'], 'size': v1['files'][0]['size'], 'compression': 'bzip2'}]
    assert v2['urn'] == 'sdc:jpc:ubuntu-12.04:2.2.1'
    assert v2['owner'] == v1['creator_uuid'] and v2['public'] is True
    assert v2['disabled'] is False and v2['state'] == 'active'
    assert v2['published_at'] == '2012-11-30T11:40:03.494Z'
    for gone in ('creator_uuid', 'vendor_uuid', 'creator_name', 'cloud_name', 'platform_type', 'created_at', 'updated_at'):
        assert gone not in v2
    assert 'creator_uuid' in v1, 'the input must not be changed'


@needs_shared
@pytest.mark.parametrize('name', VALID_V1)
def test_every_v1_fixture_upgrades(name):
    v1 = load(name)
    assert manifest_version(v1) == 1
    v2 = upgrade_manifest(v1)
    assert v2['v'] == 2 and v2['uuid'] == v1['uuid'] and v2['state'] == 'active'
    assert all(f['compression'] in ('gzip', 'bzip2', 'none') and 'path' not in f and 'url' not in f for f in v2['files'])
    assert 'T' in v2['published_at'] and v2['published_at'].endswith('Z') and v2['published_at'].count(':') == 2


@needs_shared
def test_short_published_at_gets_seconds():
    v2 = upgrade_manifest(load('restdown__dsapi-doc-manifest-spec-smartos-1.3.13.json'))
    assert v2['published_at'] == '2011-05-10T09:25:00Z'


@needs_shared
@pytest.mark.parametrize('name', [
    'sdc-imgapi__fauxnodejs-1.4.0-imgmanifest-v2.json',
    'sdc-imgapi__xdc-inc-level-2-900cffef.json',
    'sdc-vmtools-windows__readme-ws2012-zvol.json',
])
def test_v2_fixtures_are_returned_unchanged(name):
    v2 = load(name)
    assert upgrade_manifest(v2) is v2


@needs_shared
def test_manifest_without_v_or_creator_is_refused():
    with pytest.raises(ManifestError, match='does not have a "v" field'):
        upgrade_manifest(load('sdc-imgapi__docs-getimage-smartos-1.6.3.json'))


V1 = {'uuid': '63ce06d8-7ae7-11e0-b0df-1fcf8f45c5d5', 'creator_uuid': '930896af-bf8c-48d4-885c-6573a94b1853',
      'name': 'x', 'version': '1', 'files': [{'path': 'x.zfs.gz', 'sha1': 'a' * 40, 'size': 3}]}


@pytest.mark.parametrize('change,key,expected', [
    ({}, 'public', True),
    ({'restricted_to_uuid': 'b1c2d3e4-0000-4000-8000-000000000000'}, 'acl', ['b1c2d3e4-0000-4000-8000-000000000000']),
    ({'restricted_to_uuid': 'b1c2d3e4-0000-4000-8000-000000000000'}, 'public', False),
    ({'disabled': True}, 'state', 'disabled'),
    ({'disabled': 'false'}, 'state', 'disabled'),  # JavaScript's Boolean('false') is true, as in node-imgmanifest
    ({'created_at': '2011-01-01T01:02Z'}, 'published_at', '2011-01-01T01:02:00Z'),
    ({'image_size': '512'}, 'image_size', 512),
    ({'files': [{'url': 'http://h/d/x.bz2', 'sha1': 'a' * 40, 'size': 3}]}, 'files', [{'sha1': 'a' * 40, 'size': 3, 'compression': 'bzip2'}]),
    ({'files': [{'path': 'x.zfs', 'sha1': 'a' * 40, 'size': 3}]}, 'files', [{'sha1': 'a' * 40, 'size': 3, 'compression': 'none'}]),
    ({'files': [{'path': 'x.zfs.gz', 'sha1': 'a' * 40, 'size': 3, 'compression': 'xz'}]}, 'files',
     [{'sha1': 'a' * 40, 'size': 3, 'compression': 'xz'}]),
])
def test_upgrade_rules(change, key, expected):
    assert upgrade_manifest(dict(V1, **change))[key] == expected


@pytest.mark.parametrize('manifest,words', [
    ({'name': 'x'}, 'does not have a "v" field'),
    ({'v': 'two'}, 'is not a number'),
    (dict(V1, uuid='NOT-A-UUID'), 'is not a UUID'),
    (dict(V1, owner='x'), 'already has an "owner"'),
])
def test_upgrade_refusals(manifest, words):
    with pytest.raises(ManifestError, match=words):
        upgrade_manifest(manifest)


# ---- outside data of the wrong shape: a ManifestError naming the field, never a Python error ----

V1_BASE = {'uuid': '2f1dc911-6401-4fa4-8e9d-67ea2e39c271', 'creator_uuid': '930896af-bf8c-48d4-885c-6573a94b1853',
           'name': 'base64', 'version': '1.8.1'}


@pytest.mark.parametrize('files, message', [
    (['base64.zfs.bz2'], 'v1 manifest "files[0]" is a JSON string, not an object'),
    ([None], 'v1 manifest "files[0]" is a JSON null, not an object'),
    ([{'path': 'a.gz', 'sha1': 'x', 'size': 1}, 7], 'v1 manifest "files[1]" is a JSON number, not an object'),
    ([['path']], 'v1 manifest "files[0]" is a JSON array, not an object'),
    ('base64.zfs.bz2', 'v1 manifest "files" is a JSON string, not an array'),
    ({'path': 'a.gz'}, 'v1 manifest "files" is a JSON object, not an array'),
    (5, 'v1 manifest "files" is a JSON number, not an array'),
    ([{'path': 42}], 'v1 manifest "files[0].path" is a JSON number, not a string'),
    ([{'url': ['http://x/a.gz']}], 'v1 manifest "files[0].path" is a JSON array, not a string'),
])
def test_v1_files_of_the_wrong_shape_are_a_manifest_error(files, message):
    with pytest.raises(ManifestError) as exc:
        upgrade_manifest(dict(V1_BASE, files=files))
    assert str(exc.value) == message


@pytest.mark.parametrize('files', [None, [], '', 0, False])
def test_v1_without_files_upgrades_as_node_imgmanifest_does(files):
    m = upgrade_manifest(dict(V1_BASE, files=files))
    assert m['v'] == 2 and m['files'] == files


def test_v1_file_with_a_compression_keeps_an_odd_path_untouched():
    """compression given: the path is not looked at (node-imgmanifest only reads it to guess one), and dropped."""
    m = upgrade_manifest(dict(V1_BASE, files=[{'path': 42, 'compression': 'xz', 'sha1': 'a' * 40, 'size': 1}]))
    assert m['files'] == [{'compression': 'xz', 'sha1': 'a' * 40, 'size': 1}]


@pytest.mark.parametrize('value, expected', [
    ('1' * 400, float('inf')),         # Number('111...') is Infinity, not an OverflowError
    (10 ** 400, float('inf')),
    ({'a': 1}, None),                  # NaN: not truthy after Number(), so it is kept as NaN
    ([1], None),
])
def test_v1_image_size_of_any_type_does_not_crash(value, expected):
    m = upgrade_manifest(dict(V1_BASE, image_size=value))
    if expected is None:
        assert m['image_size'] != m['image_size']   # NaN
    else:
        assert m['image_size'] == expected


@pytest.mark.parametrize('v', [10 ** 400, '1e999', [2], {'v': 2}])
def test_v_of_any_type_is_a_number_or_a_manifest_error(v):
    try:
        version = manifest_version({'v': v})
    except ManifestError:
        return
    assert version >= 2
