# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_filters.py: imgadm's list/avail filters (reference §4.5) and newest of each name."""

from __future__ import annotations

import pytest

from ansible_collections.smartos.images.plugins.module_utils import _filters
from ansible_collections.smartos.images.plugins.module_utils._errors import InvalidParameter
from ansible_collections.smartos.images.plugins.module_utils._filters import (
    check_filters, lookup, matches, newest_per_name,
)

MANIFEST = {
    'v': 2, 'uuid': '2f1dc911-6401-4fa4-8e9d-67ea2e39c271', 'name': 'base-64-lts', 'version': '24.4.1',
    'os': 'smartos', 'type': 'zone-dataset', 'public': True, 'disabled': False, 'image_size': 10240,
    'requirements': {'brand': 'joyent', 'min_platform': {'7.0': '20141030T081701Z'}},
    'tags': {'role': 'os'}, 'published_at': '2024-12-05T09:54:41Z',
}


@pytest.mark.parametrize('filters, expected', [
    # no filter keeps everything
    ({}, True),
    # exact text
    ({'name': 'base-64-lts'}, True),
    ({'name': 'base-64'}, False),          # a prefix is not equal
    ({'name': 'BASE-64-LTS'}, False),      # case-sensitive
    ({'os': 'smartos'}, True),
    ({'version': '24.4.1'}, True),
    ({'version': '24.4'}, False),
    # numbers and their text are the same: imgadm compares String(actual) with the filter text
    ({'v': 2}, True),
    ({'v': '2'}, True),
    ({'v': 2.0}, True),
    ({'v': '2.0'}, False),                 # String(2) is '2'
    ({'v': 3}, False),
    ({'image_size': '10240'}, True),
    ({'image_size': 10240}, True),
    # booleans: a boolean filter matches booleans only, strictly
    ({'public': True}, True),
    ({'public': False}, False),
    ({'disabled': False}, True),
    ({'disabled': True}, False),
    ({'public': 'true'}, True),            # the text "true" equals String(true)
    ({'v': True}, False),                  # 2 is not true
    # ~substring, case-sensitive, anywhere in the text
    ({'name': '~base'}, True),
    ({'name': '~64-l'}, True),
    ({'name': '~lts'}, True),
    ({'name': '~Base'}, False),
    ({'name': '~minimal'}, False),
    ({'version': '~24.'}, True),
    ({'name': '~base-64-lts'}, True),
    # dotted fields reach into objects
    ({'requirements.brand': 'joyent'}, True),
    ({'requirements.brand': 'lx'}, False),
    ({'requirements.brand': '~joy'}, True),
    ({'tags.role': 'os'}, True),
    ({'requirements.min_platform.7.0': '20141030T081701Z'}, False),   # a key with a dot cannot be reached
    # a missing field never matches, whatever the filter
    ({'owner': 'x'}, False),
    ({'owner': '~x'}, False),
    ({'urn': False}, False),
    ({'state': True}, False),
    ({'requirements.networks': '~net'}, False),
    ({'requirements.brand.x': 'joyent'}, False),    # below a string
    ({'name.first': 'b'}, False),
    ({'tags.missing': 'os'}, False),
    # several filters: every one must match
    ({'os': 'smartos', 'name': '~base'}, True),
    ({'os': 'smartos', 'name': '~base', 'public': True, 'v': 2, 'requirements.brand': 'joyent'}, True),
    ({'os': 'smartos', 'name': '~minimal'}, False),
    ({'os': 'linux', 'name': '~base'}, False),
    ({'os': 'smartos', 'public': False}, False),
    ({'os': 'smartos', 'owner': 'x'}, False),
])
def test_matches_the_manifest(filters, expected):
    assert matches(MANIFEST, filters) is expected


@pytest.mark.parametrize('record, filters, expected', [
    # booleans strictly: true matches only boolean true, not the string 'true', nor 1
    ({'public': 'true'}, {'public': True}, False),
    ({'public': 1}, {'public': True}, False),
    ({'public': 'false'}, {'public': False}, False),
    ({'public': 0}, {'public': False}, False),
    ({'public': None}, {'public': False}, False),
    ({'public': ''}, {'public': False}, False),
    ({}, {'public': False}, False),
    # numbers as text either way
    ({'image_size': '1024'}, {'image_size': 1024}, True),
    ({'image_size': 1024.0}, {'image_size': '1024'}, True),
    ({'image_size': 1024.5}, {'image_size': '1024.5'}, True),
    ({'image_size': 0}, {'image_size': '0'}, True),
    # an empty string is a present field
    ({'description': ''}, {'description': ''}, True),
    ({'description': ''}, {'description': '~x'}, False),
    # zpool, as installed images are filtered
    ({'uuid': 'u', 'zpool': 'zones2'}, {'zpool': 'zones2'}, True),
    ({'uuid': 'u', 'zpool': 'zones2'}, {'zpool': 'zones'}, False),
    ({'uuid': 'u', 'zpool': 'zones2'}, {'zpool': '~zones'}, True),
    # a nested field that is not an object
    ({'requirements': 'lx'}, {'requirements.brand': 'lx'}, False),
    ({'requirements': ['lx']}, {'requirements.brand': 'lx'}, False),
])
def test_matches_records(record, filters, expected):
    assert matches(record, filters) is expected


def test_the_text_true_is_a_boolean_as_in_imgadm():
    # `filters=public=true` (key=value form) arrives as text, as every imgadm CLI filter does
    assert matches({'public': 'true'}, {'public': 'true'}) is False


def test_a_null_field_is_the_text_null_as_in_imgadm():
    assert matches({'origin': None}, {'origin': 'null'}) is True


MISSING = _filters._MISSING


@pytest.mark.parametrize('record, field, value', [
    ({'a': 1}, 'a', 1),
    ({'a': {'b': {'c': False}}}, 'a.b.c', False),
    ({'a': {'b': None}}, 'a.b', None),
    ({'a': 1}, 'b', MISSING),
    ({'a': 1}, 'a.b', MISSING),
    ({'a': {'b': 1}}, 'a.c', MISSING),
    ({'a': [{'b': 1}]}, 'a.0.b', MISSING),     # no list indexes
])
def test_lookup(record, field, value):
    found = lookup(record, field)
    if value is MISSING:
        assert found is MISSING
    else:
        assert found == value


# ---- check_filters ----

@pytest.mark.parametrize('filters', [
    {},
    None,
    {'name': 'base-64'},
    {'name': '~base', 'os': 'smartos', 'public': True, 'v': 2, 'image_size': 1.5},
    {'requirements.brand': 'lx'},
    {'a.b.c': ''},
    {'name': '~~'},         # a substring filter for "~"
])
def test_check_filters_accepts(filters):
    assert check_filters(filters) == (filters or {})


@pytest.mark.parametrize('filters, message', [
    ({'': 'x'}, "filter field '' is not a field name such as \"name\" or \"requirements.brand\""),
    ({'a..b': 'x'}, "filter field 'a..b' is not a field name such as \"name\" or \"requirements.brand\""),
    ({'.a': 'x'}, "filter field '.a' is not a field name"),
    ({'a.': 'x'}, "filter field 'a.' is not a field name"),
    ({'.': 'x'}, "filter field '.' is not a field name"),
    ({1: 'x'}, 'filter field 1 is not a field name'),
    ({'requirements': {'brand': 'lx'}}, "filter requirements={'brand': 'lx'}: a filter value must be a string, a number or a boolean"),
    ({'name': ['a', 'b']}, "filter name=['a', 'b']: a filter value must be a string, a number or a boolean"),
    ({'name': None}, 'filter name=None: a filter value must be a string, a number or a boolean'),
    ({'name': '~'}, 'filter name="~": a substring filter needs text after "~"'),
    ({'os': 'smartos', 'name': '~'}, 'filter name="~"'),
])
def test_check_filters_refuses(filters, message):
    with pytest.raises(InvalidParameter) as exc:
        check_filters(filters)
    assert exc.value.msg.startswith(message)


# ---- newest_per_name ----

def m(uuid, name=None, published_at=None, **extra):
    record = dict(extra, uuid=uuid)
    if name is not None:
        record['name'] = name
    if published_at is not None:
        record['published_at'] = published_at
    return record


A1 = m('00000000-0000-4000-8000-0000000000a1', 'base', '2023-01-01T00:00:00Z')
A2 = m('00000000-0000-4000-8000-0000000000a2', 'base', '2024-01-01T00:00:00Z')
A3 = m('00000000-0000-4000-8000-0000000000a3', 'base', '2023-06-01T00:00:00Z')
B1 = m('00000000-0000-4000-8000-0000000000b1', 'minimal', '2022-01-01T00:00:00Z')
TIE_LOW = m('00000000-0000-4000-8000-0000000000c1', 'tie', '2024-05-05T00:00:00Z')
TIE_HIGH = m('00000000-0000-4000-8000-0000000000c2', 'tie', '2024-05-05T00:00:00Z')
UNDATED = m('00000000-0000-4000-8000-0000000000d1', 'undated')
DATED = m('00000000-0000-4000-8000-0000000000d2', 'undated', '1970-01-01T00:00:00Z')
NAMELESS1 = m('00000000-0000-4000-8000-0000000000e1', published_at='2020-01-01T00:00:00Z')
NAMELESS2 = m('00000000-0000-4000-8000-0000000000e2')


@pytest.mark.parametrize('manifests, kept', [
    ([], []),
    ([A1], [A1]),
    ([A1, A2, A3], [A2]),
    ([A2, A1, A3], [A2]),
    # one per name, in the order given
    ([B1, A1, A2], [B1, A2]),
    ([A2, B1, A1], [A2, B1]),
    # ties on published_at: the later UUID, whatever the order
    ([TIE_LOW, TIE_HIGH], [TIE_HIGH]),
    ([TIE_HIGH, TIE_LOW], [TIE_HIGH]),
    # no published_at is older than any date
    ([UNDATED, DATED], [DATED]),
    ([DATED, UNDATED], [DATED]),
    # nameless records are all kept, where they were
    ([NAMELESS1, A1, NAMELESS2, A2], [NAMELESS1, NAMELESS2, A2]),
    ([NAMELESS2, NAMELESS1], [NAMELESS2, NAMELESS1]),
])
def test_newest_per_name(manifests, kept):
    assert newest_per_name(manifests) == kept


def test_newest_per_name_keeps_the_objects_and_leaves_the_input_alone():
    given = [A1, A2, NAMELESS1]
    result = newest_per_name(given)
    assert result[1] is NAMELESS1 and result[0] is A2
    assert given == [A1, A2, NAMELESS1]


def test_newest_per_name_keeps_equal_nameless_records_apart():
    twin1, twin2 = {'uuid': 'x'}, {'uuid': 'x'}
    result = newest_per_name([twin1, twin2])
    assert len(result) == 2 and result[0] is twin1 and result[1] is twin2


# ---- listings are outside data: fields of the wrong type never raise, and the order is fixed ----

ODD_DATE = m('00000000-0000-4000-8000-0000000000f1', 'base', 1700000000)
ODD_DATE2 = m('00000000-0000-4000-8000-0000000000f2', 'base', ['2030-01-01T00:00:00Z'])


@pytest.mark.parametrize('manifests, kept', [
    # a published_at that is not a string counts as none: older than any date
    ([ODD_DATE, A1], [A1]),
    ([A1, ODD_DATE], [A1]),
    # two without a usable date: the later UUID, whatever the order
    ([ODD_DATE, ODD_DATE2], [ODD_DATE2]),
    ([ODD_DATE2, ODD_DATE], [ODD_DATE2]),
    # a uuid that is not a string counts as the empty one
    ([dict(TIE_LOW, uuid=['z']), TIE_LOW], [TIE_LOW]),
    # a name that is not a string, or an entry that is not an object: kept as nameless ones, where they were
    ([{'name': ['base'], 'uuid': 'x'}, A1, 'junk', None, A2], [{'name': ['base'], 'uuid': 'x'}, 'junk', None, A2]),
    ([{'name': {'a': 1}}, {'name': 7}], [{'name': {'a': 1}}, {'name': 7}]),
])
def test_newest_per_name_with_fields_of_the_wrong_type(manifests, kept):
    assert newest_per_name(manifests) == kept


@pytest.mark.parametrize('filters', [['name'], 'name=base', 7])
def test_check_filters_refuses_what_is_not_a_dict(filters):
    with pytest.raises(InvalidParameter) as exc:
        check_filters(filters)
    assert exc.value.msg.startswith('filters must be a dictionary of field: value')


# ---- the one "newest" rule ----

@pytest.mark.parametrize('manifests, winner', [
    ([], None),
    ([{'uuid': 'a', 'published_at': '2024'}, {'uuid': 'b', 'published_at': '2025'}], 'b'),
    ([{'uuid': 'b', 'published_at': '2025'}, {'uuid': 'a', 'published_at': '2025'}], 'b'),   # a tie: the later UUID
    ([{'uuid': 'a', 'published_at': 5}, {'uuid': 'b'}], 'b'),        # not a string: the empty string, oldest
    ([{'uuid': 'z', 'published_at': None}, {'uuid': 'a', 'published_at': '2020'}], 'a'),
])
def test_newest_is_one_rule(manifests, winner):
    best = _filters.newest(manifests)
    assert (best or {}).get('uuid') == winner


# ---- imgadm's computed row fields (reference 4.5) and the fields a filter may name ----

def test_row_adds_imgadms_computed_fields_and_leaves_the_manifest_alone():
    manifest = dict(MANIFEST, published_at='2024-12-05T09:54:41.123Z', files=[{'size': 1234}])
    record = _filters.row(manifest, zpool='zones', clones=0, source=None)
    assert record['pub'] == record['published_date'] == '2024-12-05'
    assert record['published'] == '2024-12-05T09:54:41Z'       # imgadm drops the fraction of a second
    assert record['size'] == 1234 and record['zpool'] == 'zones' and record['clones'] == 0
    assert 'source' not in record and 'pub' not in manifest


@pytest.mark.parametrize('manifest', [{'name': 'x'}, {'published_at': 7, 'files': 'x'}, {'files': [{}]}])
def test_row_without_the_manifest_fields_has_no_computed_fields(manifest):
    # a missing field never matches (imgadm): no pub without published_at, no size without files[0].size
    assert _filters.row(manifest) == manifest
    assert not matches(_filters.row(manifest), {'pub': '~2'}) and not matches(_filters.row(manifest), {'size': '~1'})


@pytest.mark.parametrize('filters, expected', [
    ({'clones': 0}, True), ({'clones': '0'}, True), ({'clones': 1}, False),
    ({'pub': '2024-12-05'}, True), ({'pub': '~2024-12'}, True), ({'published': '2024-12-05T09:54:41Z'}, True),
    ({'size': 1234}, True), ({'size': '1234'}, True), ({'size': 12}, False),
    ({'zpool': 'zones'}, True), ({'source': '~img1'}, True), ({'source': 'http://img2.example.com'}, False),
])
def test_computed_fields_filter_with_imgadms_meaning(filters, expected):
    record = _filters.row(dict(MANIFEST, files=[{'size': 1234}]), zpool='zones', clones=0,
                          source='http://img1.example.com')
    assert matches(record, check_filters(filters, _filters.INSTALLED)) is expected


@pytest.mark.parametrize('field, words', [
    ('colour', 'filter field "colour" is not an image field imgadm knows'),
    ('docker_repo', 'filter field "docker_repo" is a docker field (docker images are not supported)'),
    ('clones.x', 'filter field "clones.x" is not a field of the images here'),
])
def test_an_unknown_filter_field_is_an_error_naming_the_fields_there_are(field, words):
    with pytest.raises(InvalidParameter) as exc:
        check_filters({field: 'x'}, _filters.INSTALLED)
    assert exc.value.msg.startswith(words)
    assert 'requirements.brand' in exc.value.msg and 'published_at' in exc.value.msg
    assert exc.value.msg.endswith(' or one of pub, published, published_date, size, clones, zpool, source')


@pytest.mark.parametrize('field', ['clones', 'zpool', 'source'])
def test_a_name_lookup_refuses_fields_of_where_an_image_is(field):
    with pytest.raises(InvalidParameter) as exc:
        check_filters({field: 'x'}, _filters.FROM_MANIFEST, 'a name matches')
    assert exc.value.msg.startswith('filter field "%s" is not a field of the images a name matches' % field)
    assert check_filters({'pub': '2024-12-05', 'requirements.brand': 'lx'}, _filters.FROM_MANIFEST)
