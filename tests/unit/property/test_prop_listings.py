# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Properties of the listing readers: newest_per_name, filters, and the facts module's list intake."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.smartos.images.plugins.module_utils._errors import InvalidParameter
from ansible_collections.smartos.images.plugins.module_utils._facts import listing
from ansible_collections.smartos.images.plugins.module_utils._filters import check_filters, matches, newest_per_name
from ansible_collections.smartos.images.plugins.module_utils._manifest import is_uuid
from ansible_collections.smartos.images.tests.unit.property.strategies import (
    GOOD_V2, UUIDS, json_values, keys, mutated, scalars,
)

# listings with several images of one name, dates and uuids of any type
entries = st.one_of(scalars, mutated(GOOD_V2), st.fixed_dictionaries({
    'name': st.one_of(st.sampled_from(['base', 'minimal']), scalars, st.lists(scalars, max_size=2)),
    'uuid': st.one_of(st.sampled_from(UUIDS), scalars),
    'published_at': st.one_of(st.sampled_from(['2024-01-01T00:00:00Z', '2023-01-01T00:00:00Z', '']), scalars,
                              st.dictionaries(keys, scalars, max_size=2)),
}, optional={'v': st.sampled_from([2, 1, '2']), 'creator_uuid': st.sampled_from(UUIDS)}))
listings = st.lists(entries, max_size=6)


@given(listings)
def test_newest_per_name_keeps_one_of_each_name_in_order(listed):
    kept = newest_per_name(listed)
    rest = iter(listed)
    assert all(any(m is n for n in rest) for m in kept)   # a sublist, in the listing's order
    names = [m['name'] for m in kept if isinstance(m, dict) and isinstance(m.get('name'), str)]
    assert len(names) == len(set(names))
    assert set(names) == {m['name'] for m in listed if isinstance(m, dict) and isinstance(m.get('name'), str)}
    assert [id(m) for m in newest_per_name(list(listed))] == [id(m) for m in kept]   # the same every time


filter_maps = st.one_of(json_values, st.dictionaries(
    st.one_of(st.sampled_from(['name', 'os', 'requirements.brand', 'public', 'files.0', 'a..b', '.x', 'x.']), st.text(max_size=8)),
    st.one_of(scalars, st.sampled_from(['~', '~bas', 'true', 'false', 'null'])), max_size=3))


@given(filter_maps, st.lists(json_values, max_size=4))
def test_filters_are_refused_cleanly_or_match_any_record(filters, records):
    try:
        checked = check_filters(filters)
    except InvalidParameter:
        return
    for record in records:
        assert matches(record, checked) in (True, False)


@given(st.lists(entries, max_size=6))
def test_a_listing_keeps_only_usable_manifests_and_names_the_others(listed):
    kept, bad = listing(listed)
    assert len(kept) + len(bad) == len(listed)
    for m in kept:
        assert is_uuid(m['uuid'])
        assert all(m.get(k) is None or isinstance(m[k], str) for k in ('name', 'published_at'))
    assert all(isinstance(b, str) for b in bad)
    newest_per_name(kept)
    sorted(kept, key=lambda m: (m.get('published_at') or '', m.get('name') or ''))   # what available() does
