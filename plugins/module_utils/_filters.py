# Private to the smartos.images collection: not a public API.
# imgadm list/avail filters (field=value, ~substring, booleans, dotted fields) and "newest of each name".
from __future__ import annotations

from ansible_collections.smartos.images.plugins.module_utils._errors import InvalidParameter

_MISSING = object()


def check_filters(filters):
    """Raise InvalidParameter for a filter imgadm could not express; return the filters."""
    if filters is not None and not isinstance(filters, dict):
        raise InvalidParameter('filters must be a dictionary of field: value, not %r' % (filters,))
    for field, value in (filters or {}).items():
        if not isinstance(field, str) or not field or field.startswith('.') or field.endswith('.') or '..' in field:
            raise InvalidParameter('filter field %r is not a field name such as "name" or "requirements.brand"'
                                   % (field,))
        if isinstance(value, (dict, list)) or value is None:
            raise InvalidParameter('filter %s=%r: a filter value must be a string, a number or a boolean'
                                   % (field, value))
        if value == '~':
            raise InvalidParameter('filter %s="~": a substring filter needs text after "~"' % field)
    return filters or {}


def lookup(record, field):
    """A dotted field of a dict, or _MISSING."""
    value = record
    for part in field.split('.'):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _as_js_string(value):
    """String(value) as JavaScript writes it (imgadm compares String(actual) with the filter text)."""
    if value is True:
        return 'true'
    if value is False:
        return 'false'
    if value is None:
        return 'null'
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def matches(record, filters):
    """True when every filter matches (a missing field never does)."""
    for field, wanted in filters.items():
        if wanted in ('true', 'false'):
            wanted = wanted == 'true'  # imgadm turns the words into booleans and compares strictly
        actual = lookup(record, field)
        if actual is _MISSING:
            return False
        if isinstance(wanted, bool):
            if actual is not wanted:
                return False
        elif isinstance(wanted, str) and wanted.startswith('~'):
            if wanted[1:] not in _as_js_string(actual):
                return False
        elif _as_js_string(actual) != _as_js_string(wanted):
            return False
    return True


def _text(value):
    """A field compared as text: outside data that is not a string counts as absent."""
    return value if isinstance(value, str) else ''


def newest_per_name(manifests):
    """Only the most recently published manifest of each name (ties: the later UUID); nameless ones stay.

    A listing is outside data: an entry that is not an object, or whose name is not a string, is kept
    as a nameless one; a published_at or uuid that is not a string sorts as the empty string (oldest),
    so the order never depends on comparing a string with something else.
    """
    best = {}
    for m in manifests:
        key = m.get('name') if isinstance(m, dict) else None
        if not isinstance(key, str):
            best[id(m)] = m
            continue
        current = best.get(key)
        if current is None or (_text(m.get('published_at')), _text(m.get('uuid'))) > \
                (_text(current.get('published_at')), _text(current.get('uuid'))):
            best[key] = m
    keep = {id(m) for m in best.values()}
    return [m for m in manifests if id(m) in keep]
