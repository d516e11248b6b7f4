# Private to the smartos.images collection: not a public API.
# Image manifests: identity, the fields an import relies on, and short labels.
from __future__ import annotations

import re

from ansible_collections.smartos.images.plugins.module_utils._errors import SourceError

# node-imgmanifest UUID_RE: lower-case only.
UUID_RE = re.compile(r'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')
SHA1_RE = re.compile(r'^[0-9a-fA-F]{40}$')
COMPRESSIONS = ('gzip', 'bzip2', 'xz', 'none')


def is_uuid(value):
    """True for a lower-case UUID, as imgadm accepts them."""
    return isinstance(value, str) and bool(UUID_RE.match(value))


def label(manifest):
    """'name@version' of a manifest, or '-' when it has no name."""
    if not isinstance(manifest, dict) or not manifest.get('name'):
        return '-'
    return '%s@%s' % (manifest['name'], manifest.get('version', '-'))


def import_problems(manifest, uuid):
    """What is missing or malformed among the fields an import relies on (empty when fine)."""
    problems = []
    if manifest.get('uuid') != uuid:
        problems.append('uuid is %r, not %r' % (manifest.get('uuid'), uuid))
    if not isinstance(manifest.get('type'), str) or not manifest.get('type'):
        problems.append('type is missing')
    files = manifest.get('files')
    if not isinstance(files, list) or not files or not isinstance(files[0], dict):
        problems.append('files[0] is missing')
        return problems
    entry = files[0]
    if not isinstance(entry.get('sha1'), str) or not SHA1_RE.match(entry['sha1']):
        problems.append('files[0].sha1 is missing or not 40 hex digits')
    size = entry.get('size')
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        problems.append('files[0].size is missing or not a positive integer')
    if entry.get('compression') not in COMPRESSIONS:
        problems.append('files[0].compression is %r, not one of %s'
                        % (entry.get('compression'), ', '.join(COMPRESSIONS)))
    origin = manifest.get('origin')
    if origin is not None and not is_uuid(origin):
        problems.append('origin %r is not a UUID' % (origin,))
    return problems


def check_importable(manifest, uuid, source_url):
    """Raise SourceError naming every unusable field of a manifest that an import needs."""
    problems = import_problems(manifest, uuid)
    if problems:
        raise SourceError('the manifest of image %s from %s cannot be imported: %s'
                          % (uuid, source_url, '; '.join(problems)), url=source_url)
