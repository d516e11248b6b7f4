# Private to the smartos.images collection: not a public API.
# Image manifests: identity, the fields an import relies on, and short labels.
from __future__ import annotations

import copy
import math
import posixpath
import re

from ansible_collections.smartos.images.plugins.module_utils._errors import SourceError

# node-imgmanifest UUID_RE: lower-case only.
UUID_RE = re.compile(r'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z')
SHA1_RE = re.compile(r'^[0-9a-fA-F]{40}\Z')
COMPRESSIONS = ('gzip', 'bzip2', 'xz', 'none')


def is_uuid(value):
    """True for a lower-case UUID, as imgadm accepts them."""
    return isinstance(value, str) and bool(UUID_RE.match(value))


def label(manifest):
    """'name@version' of a manifest, or '-' when it has no name."""
    if not isinstance(manifest, dict) or not manifest.get('name'):
        return '-'
    return '%s@%s' % (manifest['name'], manifest.get('version', '-'))


def import_problems(manifest, uuid, from_server=False):
    """What is missing or malformed among the fields an import relies on (empty when fine).

    from_server: the rules of imgadm import (reference 3.3-3.5), which needs no type (only "docker" changes
    the install) and no files[0].sha1 (the answer's Content-MD5 then checks the file, see _importer); a local
    install keeps both required, as imgadm install's validation requires type."""
    if not isinstance(manifest, dict):
        return ['the manifest is a JSON %s, not an object' % json_type(manifest)]
    problems = []
    if manifest.get('uuid') != uuid:
        problems.append('uuid is %r, not %r' % (manifest.get('uuid'), uuid))
    if from_server and manifest.get('type') is None:
        pass
    elif not isinstance(manifest.get('type'), str) or not manifest.get('type'):
        problems.append('type is missing' if manifest.get('type') in (None, '') else 'type is not a string')
    files = manifest.get('files')
    if not isinstance(files, list) or not files or not isinstance(files[0], dict):
        problems.append('files[0] is missing')
        return problems
    entry = files[0]
    if from_server and entry.get('sha1') is None:
        pass
    elif not isinstance(entry.get('sha1'), str) or not SHA1_RE.match(entry['sha1']):
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
    """Raise SourceError naming every unusable field of a manifest that an import from a server needs."""
    problems = import_problems(manifest, uuid, from_server=True)
    if problems:
        raise SourceError('the manifest of image %s from %s cannot be imported: %s'
                          % (uuid, source_url, '; '.join(problems)), url=source_url)


def is_active(manifest):
    """imgadm imports only a manifest whose state is "active": one without a state is not (reference 3.2)."""
    return isinstance(manifest, dict) and manifest.get('state') == 'active'


class ManifestError(ValueError):
    """A manifest that cannot be read or upgraded."""


_SHORT_PUBLISHED_RE = re.compile(r'^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}Z\Z')
_V1_COMPRESSION = {'.gz': 'gzip', '.bz2': 'bzip2'}


def _truthy(value):
    """JavaScript's Boolean(value)."""
    return value not in (None, False, 0, '') and not (isinstance(value, float) and math.isnan(value))


def _number(value):
    """JavaScript's Number(value), as an int when whole."""
    if isinstance(value, (dict, list)):
        return float('nan')
    try:
        number = float(value)
    except OverflowError:   # an integer beyond a double: JavaScript reads it as Infinity
        return float('inf') if value > 0 else float('-inf')
    except (TypeError, ValueError):
        return float('nan')
    return int(number) if number.is_integer() else number


def json_type(value):
    """The JSON name of a parsed value's type, for messages."""
    if value is None:
        return 'null'
    for kind, name in ((bool, 'boolean'), (str, 'string'), ((int, float), 'number'), (list, 'array'),
                       (dict, 'object')):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def manifest_version(manifest):
    """The manifest format version, as node-imgmanifest decides it."""
    if not isinstance(manifest, dict):
        raise ManifestError('a manifest must be a JSON object, not %s' % type(manifest).__name__)
    if manifest.get('v') is None:
        if manifest.get('creator_uuid'):
            return 1
        raise ManifestError('manifest does not have a "v" field')
    version = _number(manifest['v'])
    if isinstance(version, float) and math.isnan(version):
        raise ManifestError('manifest "v" field is not a number: %r' % (manifest['v'],))
    return version


def upgrade_manifest(manifest):
    """A v1 (DSAPI) manifest upgraded to v2 by node-imgmanifest's upgradeManifest rules; v2 as is."""
    if manifest_version(manifest) >= 2:
        return manifest
    if not is_uuid(manifest.get('uuid')):
        raise ManifestError('v1 manifest "uuid" is not a UUID: %r' % (manifest.get('uuid'),))
    if not manifest.get('creator_uuid'):
        raise ManifestError('v1 manifest has no "creator_uuid"')
    m = copy.deepcopy(manifest)
    if m.get('owner') is not None:
        raise ManifestError('v1 manifest already has an "owner"')
    m['owner'] = m['creator_uuid']
    for key in ('creator_uuid', 'vendor_uuid', 'creator_name', 'cloud_name', 'creator_admin'):
        m.pop(key, None)
    if m.get('restricted_to_uuid'):
        if m.get('public') is not None:
            raise ManifestError('v1 manifest has both "restricted_to_uuid" and "public"')
        m['public'] = False
        m['acl'] = [m['restricted_to_uuid']]
    else:
        m['public'] = True
    m.pop('restricted_to_uuid', None)
    m.pop('owner_uuid', None)
    m['disabled'] = _truthy(m.get('disabled'))
    m['state'] = 'disabled' if m['disabled'] else 'active'
    if not _truthy(m.get('published_at')) and m.get('created_at') is not None:
        m['published_at'] = m['created_at']
    if isinstance(m.get('published_at'), str) and _SHORT_PUBLISHED_RE.match(m['published_at']):
        m['published_at'] = m['published_at'][:-1] + ':00Z'
    files = m.get('files')
    if _truthy(files) and not isinstance(files, list):
        raise ManifestError('v1 manifest "files" is a JSON %s, not an array' % json_type(files))
    for i, entry in enumerate(files or []):
        # imgadm would throw a TypeError on these: say which field is wrong instead
        if not isinstance(entry, dict):
            raise ManifestError('v1 manifest "files[%d]" is a JSON %s, not an object' % (i, json_type(entry)))
        if not _truthy(entry.get('compression')):
            name = entry.get('path') or entry.get('url') or ''
            if not isinstance(name, str):
                raise ManifestError('v1 manifest "files[%d].path" is a JSON %s, not a string'
                                    % (i, json_type(name)))
            entry['compression'] = _V1_COMPRESSION.get(posixpath.splitext(name)[1], 'none')
        entry.pop('path', None)
        entry.pop('url', None)
    if _truthy(m.get('image_size')):
        m['image_size'] = _number(m['image_size'])
    for key in ('platform_type', 'created_at', 'updated_at', '_url'):
        m.pop(key, None)
    m['v'] = 2
    return m


MINIMAL_FIELDS = ('v', 'uuid', 'name', 'version', 'type', 'os')
NAME_RE = re.compile(r'^[A-Za-z0-9._/ -]+\Z')
VERSION_RE = re.compile(r'^[A-Za-z0-9._/+-]+\Z')
TYPES = ('zone-dataset', 'lx-dataset', 'lxd', 'zvol', 'docker', 'other')
OSES = ('smartos', 'linux', 'windows', 'bsd', 'illumos', 'other')


def minimal_problems(manifest):
    """node-imgmanifest validateMinimalManifest, for the fields it requires (what imgadm install checks)."""
    if not isinstance(manifest, dict):
        return ['the manifest is a JSON %s, not an object' % json_type(manifest)]

    def present(field):
        # a falsy value of the wrong type ([], 0, false) is present and checked, not skipped
        return manifest.get(field) not in (None, '')

    problems = ['%s is missing' % f for f in MINIMAL_FIELDS if not present(f)]
    if present('uuid') and not is_uuid(manifest['uuid']):
        problems.append('uuid is not a lower-case UUID')
    name, version = manifest.get('name'), manifest.get('version')
    if present('name') and (not isinstance(name, str) or len(name) > 1024 or not NAME_RE.match(name)):
        problems.append('name %r is invalid (letters, digits, space and . _ / - only, at most 1024)' % (name,))
    if present('version') and (not isinstance(version, str) or len(version) > 512 or not VERSION_RE.match(version)):
        problems.append('version %r is invalid (letters, digits and . _ / + - only, at most 512)' % (version,))
    if present('type') and manifest['type'] not in TYPES:
        problems.append('type %r is not one of %s' % (manifest['type'], ', '.join(TYPES)))
    if present('os') and manifest['os'] not in OSES:
        problems.append('os %r is not one of %s' % (manifest['os'], ', '.join(OSES)))
    return problems
