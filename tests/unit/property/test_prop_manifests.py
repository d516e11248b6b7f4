# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Properties of the manifest readers: v1 upgrade, import checks, node-imgmanifest's rules, platform checks.
Any JSON in: a result or the project's own error out, never a Python error."""

from __future__ import annotations

import copy
import json

from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, SourceError
from ansible_collections.smartos.images.plugins.module_utils._manifest import (
    ManifestError, check_importable, import_problems, label, minimal_problems, upgrade_manifest,
)
from ansible_collections.smartos.images.plugins.module_utils._manifest_build import manifest_problems
from ansible_collections.smartos.images.plugins.module_utils._platform import check_platform, platform_problem
from ansible_collections.smartos.images.tests.unit.property.strategies import (
    U, json_values, manifests, mutated, GOOD_V2,
)


@given(manifests)
def test_upgrade_manifest_gives_v2_or_a_manifest_error(manifest):
    before = copy.deepcopy(manifest)
    try:
        upgraded = upgrade_manifest(manifest)
    except ManifestError as e:
        assert str(e)
        return
    finally:
        assert json.dumps(manifest, sort_keys=True, default=repr) == json.dumps(before, sort_keys=True, default=repr)
    assert isinstance(upgraded, dict)
    if upgraded is not manifest:   # a v1 manifest: upgraded to v2 with files that are objects, or no files
        assert upgraded['v'] == 2
        assert all(isinstance(f, dict) and 'path' not in f and 'url' not in f for f in upgraded.get('files') or [])


@given(manifests, st.sampled_from([U, None, 'x']))
def test_import_problems_is_a_list_of_text(manifest, uuid):
    problems = import_problems(manifest, uuid)
    assert isinstance(problems, list) and all(isinstance(p, str) for p in problems)


@given(manifests)
def test_check_importable_raises_only_a_source_error(manifest):
    try:
        check_importable(manifest, U, 'https://***@img.example.com')
    except SourceError as e:
        assert e.msg.startswith('the manifest of image %s from https://***@img.example.com cannot be imported: ' % U)


@given(manifests)
def test_minimal_problems_and_label_never_raise(manifest):
    problems = minimal_problems(manifest)
    assert isinstance(problems, list) and all(isinstance(p, str) for p in problems)
    assert isinstance(label(manifest), str)


@given(manifests, st.sampled_from([('v', 'uuid', 'name', 'version', 'type', 'os'), (), ('name', 'version')]))
def test_manifest_problems_is_a_list_of_field_reasons(manifest, required):
    problems = manifest_problems(manifest, required=required)
    assert isinstance(problems, list) and all(isinstance(p, str) and ': ' in p for p in problems)


@given(mutated(GOOD_V2))
def test_a_valid_manifest_stays_valid_only_while_its_fields_are(manifest):
    """The import checks never pass a manifest whose files[0] is unusable for a download."""
    if not import_problems(manifest, manifest.get('uuid')):
        entry = manifest['files'][0]
        assert isinstance(entry['sha1'], str) and len(entry['sha1']) == 40
        assert isinstance(entry['size'], int) and not isinstance(entry['size'], bool) and entry['size'] > 0


sysinfos = st.one_of(
    st.dictionaries(st.sampled_from(['SDC Version', 'Live Image', 'UUID']), json_values, max_size=3),
    st.fixed_dictionaries({'SDC Version': st.sampled_from(['7.0', '6.5', '10.0', '']),
                           'Live Image': st.sampled_from(['20141030T081701Z', '', '2'])}))


@given(manifests, sysinfos)
def test_platform_checks_give_a_problem_or_an_image_error(manifest, sysinfo):
    problem = platform_problem(manifest, sysinfo)
    assert problem is None or isinstance(problem, str)
    try:
        check_platform(manifest, sysinfo)
    except ImageError as e:
        assert problem and problem in e.msg
    else:
        assert problem is None
