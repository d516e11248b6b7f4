# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Differential test: the shipped JSON Schema (schemas/imgmanifest-v2.json) and the target-side manifest checks
accept and reject the same generated manifests.

The target-side checks compared here:
- _manifest_build.manifest_problems: node-imgmanifest's rules, which smartos_image_create applies to what it
  builds and load_local_manifest applies to a manifest file (imgadm install); it must agree exactly;
- _manifest.minimal_problems: the required fields and their forms, which imgadm install checks first: everything
  the schema accepts passes it (it checks less, so only that direction holds).
Where they disagreed, imgadm's rule (docs/imgadm-reference.md section 6, node-imgmanifest) decided which side
was fixed.
"""

from __future__ import annotations

import json
import os

import jsonschema
from hypothesis import given, note
from hypothesis import strategies as st

from ansible_collections.smartos.images.plugins.module_utils._manifest import minimal_problems
from ansible_collections.smartos.images.plugins.module_utils._manifest_build import FIELDS, manifest_problems

SCHEMA_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))),
                           'schemas', 'imgmanifest-v2.json')
with open(SCHEMA_PATH, encoding='utf-8') as _f:
    VALIDATOR = jsonschema.Draft202012Validator(json.load(_f))

U = '2f1dc911-6401-4fa4-8e9d-67ea2e39c271'
U2 = '930896af-bf8c-48d4-885c-6573a94b1853'
SHA1 = '3bc7f0d7e4bd0a2c6a7a4a7b1e0a4dd8f6b1c8a2'
BASE = {'v': 2, 'uuid': U, 'name': 'img', 'version': '1.0.0', 'type': 'zone-dataset', 'os': 'smartos'}

# Standard JSON only (what JSON.parse in node gives): no NaN or Infinity.
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2 ** 60, max_value=2 ** 60),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
any_json = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                        max_leaves=8)
stamps = st.sampled_from(['20141030T081701Z', '20111030T081701Z', '20141330T081701Z', '20141030T241701Z',
                          '20141032T081701Z', '2014-10-30', '20141030T081701z', '20120101T000000Z',
                          '20141030T081701Z\n', '\u0662\u0660\u0661\u0664' + '1030T081701Z'])
platforms = st.one_of(st.dictionaries(st.sampled_from(['7.0', '6.5', '']), st.one_of(stamps, scalars), max_size=2),
                      any_json)
files_entry = st.one_of(st.fixed_dictionaries(
    {'sha1': st.one_of(st.just(SHA1), st.sampled_from(['', 'x', SHA1.upper(), SHA1[:39]]), scalars),
     'size': st.one_of(st.sampled_from([1, 1234, 0, -1, 1.0, 1.5, '12', True]), scalars),
     'compression': st.one_of(st.sampled_from(['gzip', 'bzip2', 'xz', 'none', 'zstd', 'GZIP']), scalars)},
    optional={'dataset_guid': st.one_of(st.sampled_from(['11192632609860586301', 'x', '']), scalars),
              'stor': scalars}), any_json)
requirements = st.one_of(st.fixed_dictionaries({}, optional={
    'networks': st.one_of(st.just([{'name': 'net0', 'description': 'public'}]),
                          st.lists(st.dictionaries(st.sampled_from(['name', 'description', 'x']), scalars, max_size=3),
                                   max_size=2), any_json),
    'brand': st.one_of(st.sampled_from(['joyent', 'bhyve', 'kvm']), scalars),
    'ssh_key': st.one_of(st.booleans(), scalars),
    'min_ram': st.one_of(st.sampled_from([256, 1024, 256.0, '256']), scalars),
    'max_ram': st.one_of(st.sampled_from([512, 128]), scalars),
    'min_platform': platforms, 'max_platform': platforms,
    'bootrom': st.one_of(st.sampled_from(['bios', 'uefi', 'efi']), scalars),
    'password': scalars}), any_json)
numbers_as_text = st.sampled_from(['2', ' 2 ', '2.0', '2.', '2.5', '0', '-1', 'two', '', '16384', '16384.0', '1.5', '.0',
                                   '.5', '-0', '-0.0', '+3', '1e3', '0x10', '1_0', 'nan', 'inf', 'Infinity', '\u0662',
                                   '2\n', ' ', '--1', '2..0', '-.0'])
VALUES = {
    'v': st.one_of(st.sampled_from([2, 1, 0, -1, 2.5, 3]), numbers_as_text, scalars),
    'uuid': st.one_of(st.sampled_from([U, U.upper(), U[:-1], '', U + '\n']), scalars),
    'owner': st.one_of(st.sampled_from([U2, U2.upper()]), scalars),
    'origin': st.one_of(st.sampled_from([U2, 'base']), scalars),
    'urn': scalars,
    'name': st.one_of(st.sampled_from(['img', 'a b/c_d.e-f', 'a|b', 'x' * 1025, '', 'ünï', 'img\n']), scalars),
    'version': st.one_of(st.sampled_from(['1.0.0', '1.0+b.7', '1 0', 'x' * 513, '', '1:2', '1\n']), scalars),
    'description': st.one_of(st.sampled_from(['d', 'x' * 10241, '']), scalars),
    'homepage': st.one_of(st.sampled_from(['https://example.com/x', 'http://a', 'ftp://a', 'http://', 'https://[::1',
                                           'javascript:x', 'http:///x', 'https://a b', 'HTTPS://A', ' http://a',
                                           'http://a\n']), scalars),
    'eula': st.one_of(st.sampled_from(['https://example.com/eula', 'mailto:a@b']), scalars),
    'icon': st.one_of(st.sampled_from([True, False, 'true', 'false', 'yes']), scalars),
    'disabled': st.one_of(st.sampled_from([True, 'false', 'no', 0]), scalars),
    'activated': st.one_of(st.sampled_from([True, False, 'true']), scalars),
    'public': st.one_of(st.sampled_from([True, 'true', 1]), scalars),
    'generate_passwords': st.one_of(st.booleans(), scalars),
    'state': st.one_of(st.sampled_from(['active', 'unactivated', 'disabled', 'failed', 'creating', 'gone']), scalars),
    'error': st.one_of(st.just({'message': 'x'}), any_json),
    'published_at': st.one_of(st.sampled_from(['2025-01-02T03:04:05Z', '2025-01-02T03:04:05.678Z', '2025-01-02T03:04Z',
                                               '2025-01-02T03:04:05.6Z', '2025-01-02 03:04:05Z',
                                               '2025-01-02T03:04:05Z\n']), scalars),
    'type': st.one_of(st.sampled_from(['zone-dataset', 'lx-dataset', 'lxd', 'zvol', 'docker', 'other', 'null', 'vm']),
                      scalars),
    'os': st.one_of(st.sampled_from(['smartos', 'linux', 'windows', 'bsd', 'illumos', 'other', 'null', 'plan9']), scalars),
    'files': st.one_of(st.lists(files_entry, max_size=3), any_json),
    'acl': st.one_of(st.lists(st.sampled_from([U, U2, 'x']), max_size=2), any_json),
    'requirements': requirements,
    'users': st.one_of(st.just([{'name': 'root'}]), st.lists(st.dictionaries(st.sampled_from(['name', 'uid']), scalars,
                                                                             max_size=2), max_size=2), any_json),
    'billing_tags': st.one_of(st.lists(st.one_of(st.sampled_from(['t', 'x' * 129]), scalars), max_size=2), any_json),
    'traits': st.one_of(st.dictionaries(st.text(max_size=3), any_json, max_size=2), any_json),
    'tags': st.one_of(st.dictionaries(st.text(max_size=3), any_json, max_size=2), any_json),
    'inherited_directories': st.one_of(st.lists(st.one_of(st.just('/opt'), scalars), max_size=2), any_json),
    'nic_driver': st.one_of(st.sampled_from(['virtio', 'e1000', '']), scalars),
    'disk_driver': st.one_of(st.sampled_from(['virtio', '']), scalars),
    'cpu_type': st.one_of(st.sampled_from(['host', 'qemu64', '']), scalars),
    'image_size': st.one_of(st.sampled_from([10240, 0, '16384', '16384.0', '1.5', 'big', '', '0']), numbers_as_text, scalars),
    'channels': st.one_of(st.lists(st.one_of(st.just('dev'), scalars), max_size=2), any_json),
}
ZVOL = {'type': 'zvol', 'nic_driver': 'virtio', 'disk_driver': 'virtio', 'cpu_type': 'host', 'image_size': 10240}


@st.composite
def generated_manifests(draw):
    """BASE (or a good zvol) with some fields set to good, odd or wrong values, or removed; sometimes an extra key."""
    m = dict(BASE, **ZVOL) if draw(st.booleans()) else dict(BASE)
    for key in draw(st.lists(st.sampled_from(sorted(VALUES)), max_size=5, unique=True)):
        if draw(st.integers(min_value=0, max_value=5)) == 0:
            m.pop(key, None)
        else:
            m[key] = draw(VALUES[key])
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        m[draw(st.sampled_from(['objectclass', 'password', 'creator_uuid']))] = draw(scalars)
    return json.loads(json.dumps(m))   # exactly what JSON gives back (tuples become lists, and so on)


def test_the_generator_covers_every_field():
    assert set(VALUES) == set(FIELDS)


@given(generated_manifests())
def test_schema_and_manifest_problems_agree(manifest):
    schema_errors = sorted(e.message for e in VALIDATOR.iter_errors(manifest))
    problems = manifest_problems(manifest)
    note('schema: %r' % schema_errors)
    note('manifest_problems: %r' % problems)
    assert (schema_errors == []) == (problems == [])


@given(generated_manifests())
def test_what_the_schema_accepts_passes_imgadm_installs_minimal_checks(manifest):
    if VALIDATOR.is_valid(manifest):
        assert minimal_problems(manifest) == []
