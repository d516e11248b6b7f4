# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Properties of the host readers: cache files (facts and the image manager), local manifests, zfs list and
zoneadm list output. Files are written only under a temporary directory made by the test."""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ansible_collections.smartos.images.plugins.module_utils._errors import CommandError, ImageError, InvalidParameter
from ansible_collections.smartos.images.plugins.module_utils._facts import FactsGatherer
from ansible_collections.smartos.images.plugins.module_utils._images import ImageManager
from ansible_collections.smartos.images.plugins.module_utils._wanted import Wanted
from ansible_collections.smartos.images.plugins.module_utils._inventory import Inventory, parse_zone_roots
from ansible_collections.smartos.images.plugins.module_utils._local import load_local_manifest
from ansible_collections.smartos.images.plugins.module_utils._zfs import parse_list
from ansible_collections.smartos.images.tests.unit.fakehost import FakeHost
from ansible_collections.smartos.images.tests.unit.property.strategies import (
    GOOD_V1, GOOD_V2, U, UUIDS, credential_urls, assert_no_secret, error_texts, json_values, manifests, mutated,
)


@pytest.fixture(scope='module')
def root():
    """A host root of this module's own (hypothesis reuses it across examples; each test rewrites its files)."""
    path = tempfile.mkdtemp(prefix='smartos-images-property-')
    os.makedirs(os.path.join(path, 'var', 'imgadm', 'images'))
    os.makedirs(os.path.join(path, 'var', 'db', 'imgadm'))
    yield path
    shutil.rmtree(path)


def put(path, data):
    with open(path, 'wb') as f:
        f.write(data)


def cache_bytes():
    """What a cache file may hold: any bytes, any JSON, or imgadm's shape with parts of the wrong type."""
    # another image's manifest, or one without a uuid, in this image's cache file: never to be used for it
    strays = st.sampled_from([dict(GOOD_V2, uuid=UUIDS[1]), {k: v for k, v in GOOD_V2.items() if k != 'uuid'}])
    shaped = st.fixed_dictionaries({'manifest': st.one_of(manifests, mutated(dict(GOOD_V2, uuid=U)), strays)},
                                   optional={'source': st.one_of(json_values, credential_urls()), 'zpool': json_values})
    return st.one_of(st.binary(max_size=64), st.builds(lambda v: json.dumps(v).encode(), st.one_of(json_values, shaped)))


PARAMS = dict(gather_subset=['installed'], pools=None, filters={'name': '~b'}, newest=True, layout='modern',
              validate_certs=True, ca_path=None, timeout=30, retries=3)


def one_image_host():
    """zfs lists one image; no zoneadm."""
    return FakeHost([('zones', None, '/zones'), ('zones/' + U, None, '/zones/' + U), 'zones/%s@final' % U])


@given(cache_bytes(), st.booleans())
def test_facts_cache_reader_reports_a_bad_file_on_its_image(root, data, original):
    cache = os.path.join(root, 'var', 'imgadm', 'images', 'zones-%s.json' % U)
    v1 = os.path.join(root, 'var', 'db', 'imgadm', '%s.json' % U)
    for path in (cache, v1):
        if os.path.exists(path):
            os.remove(path)
    put(v1 if original else cache, data)
    images = FactsGatherer(dict(PARAMS, host_root=root, layout='original' if original else 'modern'), one_image_host()).installed()
    for entry in images.values():
        assert isinstance(entry['manifest'], dict) and entry['manifest'].get('uuid') == U
        assert 'error' in entry or entry['manifest_cached'] in (True, False)
        assert_no_secret(data, json.dumps(entry, default=repr))


class Inventory1:
    def images_on(self, pool):
        return [U]


@given(cache_bytes())
def test_image_manager_cache_reader_never_raises_a_python_error(root, data):
    put(os.path.join(root, 'var', 'imgadm', 'images', 'zones-%s.json' % U), data)
    manager = ImageManager(dict(host_root=root, layout='modern', pool='zones', timeout=30, retries=3, state='present',
                                validate_certs=True, ca_path=None, prune_unused=True), None)
    try:
        manifest = manager.cached(U)
        assert manifest is None or isinstance(manifest, dict)
        hits = manager.installed_by_name(Inventory1(), Wanted({'name': 'base-64-lts'}, 'present'))
    except ImageError as e:
        assert_no_secret(data, *error_texts(e))
        return
    assert hits in ([], [U])
    # never the wrong image: a manifest of another UUID is not matched by name
    if hits:
        assert manager.cached(U).get('uuid') == U


@given(st.one_of(st.binary(max_size=96), st.builds(lambda v: json.dumps(v).encode(), st.one_of(
    manifests, mutated(GOOD_V2), mutated(GOOD_V1)))))
def test_local_manifest_is_a_manifest_or_an_invalid_parameter(root, data):
    path = os.path.join(root, 'manifest.json')
    put(path, data)
    try:
        manifest = load_local_manifest(path)
    except InvalidParameter as e:
        assert e.msg.startswith(('manifest %s is invalid: ' % path, 'manifest %s is ' % path))
        return
    assert isinstance(manifest, dict) and manifest['v'] == 2 and isinstance(manifest['name'], str)
    assert isinstance(manifest['published_at'], str)
    entry = manifest['files'][0]
    assert isinstance(entry['sha1'], str) and isinstance(entry['size'], int)


zfs_lines = st.lists(st.one_of(
    st.text(max_size=30),
    st.builds('\t'.join, st.lists(st.one_of(st.sampled_from(['-', 'zones', 'zones/%s' % U, 'zones/%s@final' % U,
                                                             'zones/%s-disk0' % U, 'true', 'yes', '/zones/' + U]),
                                            st.text(max_size=10)), min_size=3, max_size=5))), max_size=6)


@given(zfs_lines, st.lists(st.text(max_size=40), max_size=4))
@example(['-\t-\t-\t-'], [])          # found by make fuzz: a dataset named "-" (the unset marker)
def test_zfs_and_zoneadm_output_is_parsed_or_a_command_error(lines, zone_lines):
    try:
        datasets = parse_list('\n'.join(lines))
    except CommandError as e:
        assert e.msg.startswith('unexpected line in zfs list output: ')
        return
    roots = parse_zone_roots('\n'.join(zone_lines))
    inventory = Inventory(datasets, roots)
    for dataset in inventory.images:
        inventory.clones_of(dataset)
    inventory.images_on('zones')
