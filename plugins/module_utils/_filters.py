# Private to the smartos.images collection: not a public API.
# imgadm list/avail filters (field=value, ~substring, booleans, dotted fields) and "newest of each name".
from __future__ import annotations

from ansible_collections.smartos.images.plugins.module_utils._errors import InvalidParameter

_MISSING = object()


def check_filters(filters):
    """Raise InvalidParameter for a filter imgadm could not express; return the filters."""
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


def newest_per_name(manifests):
    """Only the most recently published manifest of each name (ties: the later UUID); nameless ones stay."""
    best = {}
    for m in manifests:
        key = m.get('name')
        if key is None:
            best[id(m)] = m
            continue
        current = best.get(key)
        if current is None or (m.get('published_at') or '', m.get('uuid') or '') > \
                (current.get('published_at') or '', current.get('uuid') or ''):
            best[key] = m
    keep = {id(m) for m in best.values()}
    return [m for m in manifests if id(m) in keep]
