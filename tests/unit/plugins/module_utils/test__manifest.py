# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_manifest.py: UUIDs, labels and the fields an import relies on."""

from __future__ import annotations

import pytest

from ansible_collections.smartos.images.plugins.module_utils._errors import SourceError
from ansible_collections.smartos.images.plugins.module_utils._manifest import (
    ManifestError, check_importable, import_problems, is_active, is_uuid, label, manifest_version, minimal_problems,
    upgrade_manifest,
)
from ansible_collections.smartos.images.tests.unit.fakehost import manifest_with
from ansible_collections.smartos.images.tests.unit.manifest_fixtures import lane_params

U = '2f1dc911-6401-4fa4-8e9d-67ea2e39c271'
ORIGIN = '7b5981c4-1889-11e7-b4c5-3f3bdfc9b88b'
SHA1 = 'b0a2c3c2f0b8d1fb6a8d1d3f4e9d5a6b7c8d9e0f'

GOOD = {
    'v': 2, 'uuid': U, 'name': 'base-64-lts', 'version': '24.4.1', 'type': 'zone-dataset', 'os': 'smartos',
    'state': 'active', 'files': [{'sha1': SHA1, 'size': 246812672, 'compression': 'gzip'}],
}


def changed(**fields):
    """GOOD with top-level fields replaced (None removes) and files[0] fields given as file_<key>."""
    return manifest_with(GOOD, **fields)


@pytest.mark.parametrize('manifest', [
    GOOD,
    changed(file_compression='none'),
    changed(file_compression='bzip2'),
    changed(file_compression='xz'),
    changed(file_sha1=SHA1.upper()),
    changed(origin=ORIGIN),
    changed(type='zvol'),
    changed(file_size=1),
])
def test_importable(manifest):
    assert import_problems(manifest, U) == []
    check_importable(manifest, U, 'http://img')  # does not raise


@pytest.mark.parametrize('manifest, problems', [
    (changed(uuid=None), ["uuid is None, not '%s'" % U]),
    (changed(uuid=ORIGIN), ["uuid is '%s', not '%s'" % (ORIGIN, U)]),
    (changed(uuid=U.upper()), ["uuid is '%s', not '%s'" % (U.upper(), U)]),
    (changed(type=None), ['type is missing']),
    (changed(type=''), ['type is missing']),
    (changed(type=5), ['type is not a string']),
    (changed(files=None), ['files[0] is missing']),
    (changed(files=[]), ['files[0] is missing']),
    (changed(files=['x']), ['files[0] is missing']),
    (changed(files={'sha1': SHA1}), ['files[0] is missing']),
    (changed(file_sha1=None), ['files[0].sha1 is missing or not 40 hex digits']),
    (changed(file_sha1=SHA1[:-1]), ['files[0].sha1 is missing or not 40 hex digits']),
    (changed(file_sha1='g' * 40), ['files[0].sha1 is missing or not 40 hex digits']),
    (changed(file_size=0), ['files[0].size is missing or not a positive integer']),
    (changed(file_size=-1), ['files[0].size is missing or not a positive integer']),
    (changed(file_size=True), ['files[0].size is missing or not a positive integer']),
    (changed(file_size='1024'), ['files[0].size is missing or not a positive integer']),
    (changed(file_size=1024.0), ['files[0].size is missing or not a positive integer']),
    (changed(file_size=None), ['files[0].size is missing or not a positive integer']),
    (changed(file_compression='zstd'), ["files[0].compression is 'zstd', not one of gzip, bzip2, xz, none"]),
    (changed(file_compression=None), ['files[0].compression is None, not one of gzip, bzip2, xz, none']),
    (changed(origin='not-a-uuid'), ["origin 'not-a-uuid' is not a UUID"]),
    (changed(origin=ORIGIN.upper()), ["origin '%s' is not a UUID" % ORIGIN.upper()]),
    (changed(origin=''), ["origin '' is not a UUID"]),
    # every problem is listed, not only the first
    (changed(uuid=None, type=None, file_sha1=None, file_size=0, file_compression='lz4'), [
        "uuid is None, not '%s'" % U, 'type is missing', 'files[0].sha1 is missing or not 40 hex digits',
        'files[0].size is missing or not a positive integer', "files[0].compression is 'lz4', not one of gzip, bzip2, xz, none"]),
])
def test_import_problems(manifest, problems):
    assert import_problems(manifest, U) == problems


def test_check_importable_names_image_source_and_every_problem():
    with pytest.raises(SourceError) as exc:
        check_importable(changed(type=5, file_size=0), U, 'https://***@img.example.com')
    assert exc.value.msg == ('the manifest of image %s from https://***@img.example.com cannot be imported: '
                             'type is not a string; files[0].size is missing or not a positive integer' % U)
    assert exc.value.evidence == {'url': 'https://***@img.example.com'}


@pytest.mark.parametrize('manifest, text', [
    (GOOD, 'base-64-lts@24.4.1'),
    ({'name': 'minimal'}, 'minimal@-'),
    ({'uuid': U}, '-'),
    ({'name': ''}, '-'),
    ({}, '-'),
    (None, '-'),
    ('base-64', '-'),
])
def test_label(manifest, text):
    assert label(manifest) == text


@pytest.mark.parametrize('value, ok', [
    (U, True),
    ('00000000-0000-0000-0000-000000000000', True),
    (U.upper(), False),                      # imgadm accepts lower case only
    ('2F1dc911-6401-4fa4-8e9d-67ea2e39c271', False),
    (U[:-1], False),
    (U + '0', False),
    (U.replace('-', ''), False),
    ('{%s}' % U, False),
    ('', False),
    (None, False),
    (12345, False),
])
def test_is_uuid(value, ok):
    assert is_uuid(value) is ok


@pytest.mark.parametrize('value', [U + '\n', ORIGIN + '\n'])
def test_is_uuid_rejects_a_trailing_newline(value):
    assert is_uuid(value) is False


@pytest.mark.parametrize('manifest', [changed(type=None), changed(file_sha1=None), changed(type=None, file_sha1=None)])
def test_server_import_needs_neither_type_nor_sha1_as_imgadm_import(manifest):
    # imgadm import: no type installs as ZFS (only "docker" differs); no sha1: the answer's Content-MD5 checks the file
    assert import_problems(manifest, U, from_server=True) == []
    check_importable(manifest, U, 'http://img')  # does not raise
    assert import_problems(manifest, U) != []    # a local install still needs both


@pytest.mark.parametrize('manifest, problem', [
    (changed(type=''), 'type is missing'), (changed(type=5), 'type is not a string'),
    (changed(file_sha1='g' * 40), 'files[0].sha1 is missing or not 40 hex digits'),
])
def test_server_import_still_refuses_a_malformed_type_or_sha1(manifest, problem):
    assert import_problems(manifest, U, from_server=True) == [problem]


@pytest.mark.parametrize('manifest, active', [
    (changed(state='active'), True), (changed(state='disabled'), False), ({'uuid': U}, False), (None, False),
])
def test_is_active_needs_the_state_active(manifest, active):
    assert is_active(manifest) is active


def test_sha1_with_trailing_newline_is_a_problem():
    assert import_problems(changed(file_sha1=SHA1 + '\n'), U) == ['files[0].sha1 is missing or not 40 hex digits']


# ---- minimal_problems: node-imgmanifest validateMinimalManifest (what imgadm install checks) ----

NAME_RULE = 'is invalid (letters, digits, space and . _ / - only, at most 1024)'
VERSION_RULE = 'is invalid (letters, digits and . _ / + - only, at most 512)'
TYPES = 'zone-dataset, lx-dataset, lxd, zvol, docker, other'
OSES = 'smartos, linux, windows, bsd, illumos, other'
MINIMAL = {k: GOOD[k] for k in ('v', 'uuid', 'name', 'version', 'type', 'os')}


@pytest.mark.parametrize('manifest', [
    GOOD,
    MINIMAL,                                            # no files, state, owner...: not required for install
    dict(MINIMAL, v='2'),                               # a text "v" passes Number(v)
    dict(MINIMAL, v=0),                                 # present, even if falsy
    dict(MINIMAL, name='Base 64/LTS_x.y-z'),            # every character NAME_RE allows
    dict(MINIMAL, name='n' * 1024),
    dict(MINIMAL, version='1.0.0-rc.1+build_7/x'),      # every character VERSION_RE allows, "+" since imgadm 3.7.0
    dict(MINIMAL, version='v' * 512),
    dict(MINIMAL, uuid='00000000-0000-0000-0000-000000000000'),
    dict(MINIMAL, extra={'anything': True}),            # other fields are not looked at
] + [dict(MINIMAL, type=t) for t in TYPES.split(', ')] + [dict(MINIMAL, os=o) for o in OSES.split(', ')])
def test_minimal_problems_none(manifest):
    assert minimal_problems(manifest) == []


@pytest.mark.parametrize('manifest, problems', [
    ({}, ['v is missing', 'uuid is missing', 'name is missing', 'version is missing', 'type is missing', 'os is missing']),
    (changed(v=None), ['v is missing']),
    (changed(uuid=None), ['uuid is missing']),
    (changed(name=None), ['name is missing']),
    (changed(version=None), ['version is missing']),
    (changed(type=None), ['type is missing']),
    (changed(os=None), ['os is missing']),
    (changed(name='', os=''), ['name is missing', 'os is missing']),
    (changed(uuid=U.upper()), ['uuid is not a lower-case UUID']),
    (changed(uuid=U + '\n'), ['uuid is not a lower-case UUID']),
    (changed(uuid='base-64'), ['uuid is not a lower-case UUID']),
    (changed(name='base@64'), ["name 'base@64' " + NAME_RULE]),
    (changed(name='base:64'), ["name 'base:64' " + NAME_RULE]),
    (changed(name='caf\u00e9'), ["name 'caf\u00e9' " + NAME_RULE]),
    (changed(name='base\n'), ["name 'base\\n' " + NAME_RULE]),
    (changed(name='n' * 1025), ["name '%s' %s" % ('n' * 1025, NAME_RULE)]),
    (changed(name=64), ['name 64 ' + NAME_RULE]),
    (changed(version='1.0 beta'), ["version '1.0 beta' " + VERSION_RULE]),
    (changed(version='1.0~rc1'), ["version '1.0~rc1' " + VERSION_RULE]),
    (changed(version='v' * 513), ["version '%s' %s" % ('v' * 513, VERSION_RULE)]),
    (changed(version=2), ['version 2 ' + VERSION_RULE]),
    (changed(type='vmimage'), ["type 'vmimage' is not one of " + TYPES]),
    (changed(type='ZVOL'), ["type 'ZVOL' is not one of " + TYPES]),
    (changed(os='Linux'), ["os 'Linux' is not one of " + OSES]),
    (changed(os='solaris'), ["os 'solaris' is not one of " + OSES]),
    # every problem, in field order
    (changed(v=None, uuid='X', name='a@b', version='1 2', type='vm', os='plan9'), [
        'v is missing', 'uuid is not a lower-case UUID', "name 'a@b' " + NAME_RULE, "version '1 2' " + VERSION_RULE,
        "type 'vm' is not one of " + TYPES, "os 'plan9' is not one of " + OSES]),
])
def test_minimal_problems(manifest, problems):
    assert minimal_problems(manifest) == problems


def test_minimal_problems_leaves_import_fields_alone():
    # files, sha1, size, compression and origin are import_problems' business
    manifest = changed(files=None, origin='not-a-uuid')
    assert minimal_problems(manifest) == []
    assert import_problems(manifest, U) == ['files[0] is missing']


# ---- outside data of the wrong shape ----

@pytest.mark.parametrize('manifest, expected', [
    ([], 'the manifest is a JSON array, not an object'),
    ('text', 'the manifest is a JSON string, not an object'),
    (None, 'the manifest is a JSON null, not an object'),
])
def test_import_and_minimal_problems_of_a_non_object(manifest, expected):
    assert import_problems(manifest, U) == [expected]
    assert minimal_problems(manifest) == [expected]


@pytest.mark.parametrize('field, value, problem', [
    ('name', [], "name [] is invalid (letters, digits, space and . _ / - only, at most 1024)"),
    ('version', 0, "version 0 is invalid (letters, digits and . _ / + - only, at most 512)"),
    ('uuid', False, 'uuid is not a lower-case UUID'),
    ('type', {}, "type {} is not one of zone-dataset, lx-dataset, lxd, zvol, docker, other"),
    ('os', 0, "os 0 is not one of smartos, linux, windows, bsd, illumos, other"),
])
def test_minimal_problems_checks_falsy_values_of_the_wrong_type(field, value, problem):
    """Found by the property tests: a falsy [] or 0 was taken as present and then never checked."""
    manifest = {'v': 2, 'uuid': U, 'name': 'n', 'version': '1', 'type': 'other', 'os': 'other', field: value}
    assert minimal_problems(manifest) == [problem]


# ---- the v1 -> v2 upgrade (upgrade_manifest), on the example manifests (tests/unit/manifest_fixtures.py) ----

@pytest.mark.parametrize('lane, case', lane_params(lambda lane: lane.zvol_v1))
def test_zvol_upgrade_matches_node_imgmanifest(lane, case):
    name, expected = case
    v1 = lane.load(name)
    v2 = upgrade_manifest(v1)
    assert v2['v'] == 2 and isinstance(v1['image_size'], str) and isinstance(v2['image_size'], int)
    assert {k: v2[k] for k in expected} == expected
    assert v2['files'] == [{'sha1': v1['files'][0]['sha1'], 'size': v1['files'][0]['size'],
                            'compression': v2['files'][0]['compression']}]
    assert v2['owner'] == v1['creator_uuid'] and v2['public'] is True
    assert v2['disabled'] is False and v2['state'] == 'active'
    for gone in ('creator_uuid', 'vendor_uuid', 'creator_name', 'cloud_name', 'platform_type', 'created_at', 'updated_at'):
        assert gone in v1 and gone not in v2
    assert 'creator_uuid' in v1, 'the input must not be changed'


@pytest.mark.parametrize('lane, name', lane_params(lambda lane: lane.valid_v1))
def test_every_v1_fixture_upgrades(lane, name):
    v1 = lane.load(name)
    assert manifest_version(v1) == 1
    v2 = upgrade_manifest(v1)
    assert v2['v'] == 2 and v2['uuid'] == v1['uuid'] and v2['state'] == 'active'
    assert all(f['compression'] in ('gzip', 'bzip2', 'none') and 'path' not in f and 'url' not in f for f in v2['files'])
    assert 'T' in v2['published_at'] and v2['published_at'].endswith('Z') and v2['published_at'].count(':') == 2
    # the file's compression comes from its name (path, else url): .gz gzip, .bz2 bzip2
    names = [f.get('path') or f['url'] for f in v1['files']]
    assert [f['compression'] for f in v2['files']] == [{'gz': 'gzip', 'bz2': 'bzip2'}[n.rsplit('.', 1)[1]] for n in names]


@pytest.mark.parametrize('lane, case', lane_params(lambda lane: lane.short_published_at))
def test_short_published_at_gets_seconds(lane, case):
    name, expected = case
    v1 = lane.load(name)
    assert v1['published_at'] == expected[:-4] + 'Z'     # hours and minutes only
    assert upgrade_manifest(v1)['published_at'] == expected


@pytest.mark.parametrize('lane, name', lane_params(lambda lane: lane.valid_v2))
def test_v2_fixtures_are_returned_unchanged(lane, name):
    v2 = lane.load(name)
    assert manifest_version(v2) == 2
    assert upgrade_manifest(v2) is v2


@pytest.mark.parametrize('lane, name', lane_params(lambda lane: lane.no_v))
def test_manifest_without_v_or_creator_is_refused(lane, name):
    manifest = lane.load(name)
    assert 'v' not in manifest and 'creator_uuid' not in manifest
    with pytest.raises(ManifestError, match='does not have a "v" field'):
        upgrade_manifest(manifest)


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
