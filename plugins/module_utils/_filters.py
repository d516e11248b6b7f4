# Private to the smartos.images collection: not a public API.
# imgadm list/avail filters (field=value, ~substring, booleans, dotted fields) and "newest of each name".
from __future__ import annotations

import re

from ansible_collections.smartos.images.plugins.module_utils._errors import InvalidParameter
from ansible_collections.smartos.images.plugins.module_utils._manifest_build import FIELDS

_MISSING = object()
# imgadm list/avail's computed row fields (reference 4.5): from the manifest, and from where the image is
FROM_MANIFEST = ('pub', 'published', 'published_date', 'size')
INSTALLED = FROM_MANIFEST + ('clones', 'zpool', 'source')
_FRACTION_RE = re.compile(r'\.[0-9]+Z\Z')


def check_fields(filters, computed, where='here'):
    """Raise InvalidParameter for a field that is neither a manifest field nor one of these computed fields."""
    for field in filters:
        top = field.split('.')[0]
        if top in FIELDS or field in computed:
            continue
        why = ('is not a field of the images %s' % where if top in INSTALLED
               else 'is a docker field (docker images are not supported)' if top.startswith('docker_')
               else 'is not an image field imgadm knows')
        raise InvalidParameter('filter field "%s" %s: use a manifest field (%s; dotted for a sub-field, such as '
                               'requirements.brand)%s' % (field, why, ', '.join(sorted(FIELDS)),
                                                          ' or one of %s' % ', '.join(computed) if computed else ''))


def row(manifest, **where):
    """A manifest with imgadm's computed row fields (pub, published, published_date, size, and the given
    zpool, source or clones count) for filtering; the manifest itself is left as it is."""
    record = dict(manifest)
    published = manifest.get('published_at')
    if isinstance(published, str) and published:
        record.update(pub=published[:10], published_date=published[:10],
                      published=_FRACTION_RE.sub('Z', published))
    files = manifest.get('files')
    if isinstance(files, list) and files and isinstance(files[0], dict) and 'size' in files[0]:
        record['size'] = files[0]['size']
    record.update((k, v) for k, v in where.items() if v is not None)
    return record


def check_filters(filters, computed=None, where='here'):
    """Raise InvalidParameter for a filter imgadm could not express; return the filters.

    computed: the computed fields allowed besides the manifest's (where: whose fields, for the message); None
    checks the form only.
    """
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
    if computed is not None:
        check_fields(filters or {}, computed, where)
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


def newest_key(manifest):
    """The one "newest" rule, as a sort key: the later published_at, then (a tie) the later UUID.

    A listing or a cache file is outside data: a published_at or uuid that is not a string sorts as the empty
    string (oldest), so the order never depends on comparing a string with something else.
    """
    return _text(manifest.get('published_at')), _text(manifest.get('uuid'))


def newest(manifests):
    """The newest of some manifests by newest_key; None when there is none."""
    return max(manifests, key=newest_key, default=None)


def newest_per_name(manifests):
    """Only the newest manifest of each name (newest_key); nameless ones (or not objects) stay, in their order."""
    best = {}
    for m in manifests:
        key = m.get('name') if isinstance(m, dict) else None
        if not isinstance(key, str):
            best[id(m)] = m
        elif key not in best or newest_key(m) > newest_key(best[key]):
            best[key] = m
    keep = {id(m) for m in best.values()}
    return [m for m in manifests if id(m) in keep]
