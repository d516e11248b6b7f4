# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The example manifests themselves (tests/unit/manifest_fixtures.py): every file of ours plays a part and is in
the README, the oddities they exist for are really in them, and (when the shared real manifests are beside the
project) ours show every shape the shared ones show."""

from __future__ import annotations

import json
import os
import re

import pytest

from ansible_collections.smartos.images.tests.unit.manifest_fixtures import OWN, OWN_CHANNELS, SHARED

DATE_FORMATS = (
    ('date-minutes', re.compile(r'^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}Z\Z')),
    ('date-seconds', re.compile(r'^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z\Z')),
    ('date-millis', re.compile(r'^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z\Z')),
    ('platform-stamp', re.compile(r'^[0-9]{8}T[0-9]{6}Z\Z')),
)
UUID_RE = re.compile(r'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z')


def roles(lane):
    return ([lane.no_v, lane.dc_records, lane.icon_records, lane.zvol_v1[0], lane.short_published_at[0]]
            + lane.valid_v1 + lane.valid_v2)


def string_kind(key, value):
    """A class of a string value that matters to a reader of manifests (not the value itself)."""
    for kind, pattern in DATE_FORMATS:
        if pattern.match(value):
            return kind
    if UUID_RE.match(value):
        return 'nil-uuid' if value.strip('0-') == '' else 'uuid'
    if re.match(r'^https?://', value):
        return 'absolute-url'
    if value.startswith('/'):
        return 'absolute-path'
    if key == 'name' and (' ' in value or value != value.lower()):
        return 'spaced-or-capitals'
    if re.match(r'^[0-9]+\Z', value):
        return 'digits'
    return 'string'


def shapes(text):
    """The set of (path, kind) a JSON text shows: every key path with its JSON type and, for strings and numbers,
    their kind; an array's elements are path[]; a repeated key in one object is ('<path> repeated', 'key')."""
    found = set()

    def pairs(items):
        seen = set()
        for key, dummy in items:
            if key in seen:
                found.add(('%s repeated' % key, 'key'))
            seen.add(key)
        return dict(items)

    def walk(path, value, key):
        if isinstance(value, dict):
            found.add((path, 'object'))
            for k, v in value.items():
                walk('%s.%s' % (path, k) if path else k, v, k)
        elif isinstance(value, list):
            found.add((path, 'array'))
            for v in value:
                walk(path + '[]', v, key)
        elif isinstance(value, bool):
            found.add((path, 'boolean'))
        elif isinstance(value, int):
            found.add((path, 'integer' if abs(value) < 2 ** 32 else 'integer beyond 32 bits'))
        elif isinstance(value, float):
            found.add((path, 'fraction'))
        elif isinstance(value, str):
            found.add((path, 'string:' + string_kind(key, value)))
        else:
            found.add((path, 'null'))

    data = json.loads(text, object_pairs_hook=pairs)
    walk('', data, None)
    return found


def lane_shapes(lane, names):
    found = set()
    for name in names:
        with open(lane.path(name), encoding='utf-8') as f:
            found |= shapes(f.read())
    return found


def test_every_own_example_plays_a_part_and_is_in_the_readme():
    with open(os.path.join(OWN.folder, 'README.md'), encoding='utf-8') as f:
        readme = f.read()
    parts = set(roles(OWN)) | {OWN_CHANNELS}
    assert set(OWN.files()) == parts
    assert [n for n in OWN.files() if '`%s`' % n not in readme] == []


def test_the_oddities_are_in_our_examples():
    zvol = OWN.load('v2-zvol-windows-string-v.json')
    with open(OWN.path('v2-zvol-windows-string-v.json'), encoding='utf-8') as f:
        assert ('cpu_type repeated', 'key') in shapes(f.read())
    assert zvol['cpu_type'] == 'host'                         # the last of a repeated key counts, as in JSON.parse
    assert zvol['v'] == '2' and zvol['image_size'] == '61440' and zvol['files'][0]['size'] >= 2 ** 32
    chain = [OWN.load('v2-chain-%d%s.json' % (n, '-base' if n == 1 else '')) for n in (1, 2, 3, 4)]
    assert 'origin' not in chain[0] and [m['origin'] for m in chain[1:]] == [m['uuid'] for m in chain[:-1]]
    docker = [OWN.load(n) for n in ('v2-docker-base-layer.json', 'v2-docker-tagged-layer.json')]
    assert all(m['type'] == 'docker' and m['os'] == 'linux' and 'docker:repo' in m['tags'] and 'docker:id' in m['tags']
               for m in docker)
    assert docker[1]['origin'] == docker[0]['uuid'] and docker[1]['tags']['docker:tag:latest'] is True
    assert OWN.load(OWN_CHANNELS)['channels'] and any('channels' in r for r in OWN.load(OWN.icon_records))


def test_own_uuids_are_our_own():
    """Each of our examples is identified by its own UUID (an incremental's origin names another of ours)."""
    uuids = []
    for name in OWN.files():
        data = OWN.load(name)
        uuids.extend(m['uuid'] for m in (data if isinstance(data, list) else [data]))
    assert len(uuids) == len(set(uuids))


if SHARED is not None:
    # The extra lane: defined only when the shared real manifests are there, so that without them nothing is
    # skipped. Each group of ours must show every shape the same group of the shared ones shows.
    @pytest.mark.parametrize('group', ['valid_v1', 'valid_v2', 'no_v', 'dc_records', 'icon_records'])
    def test_own_examples_show_every_shape_of_the_shared_ones(group):
        def names(lane):
            value = getattr(lane, group)
            return value if isinstance(value, list) else [value]

        missing = lane_shapes(SHARED, names(SHARED)) - lane_shapes(OWN, names(OWN))
        assert sorted(missing) == []

    def test_the_shared_folder_holds_what_the_lane_names():
        assert set(roles(SHARED)) <= set(SHARED.files())
