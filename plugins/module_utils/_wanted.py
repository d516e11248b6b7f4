# Private to the smartos.images collection: not a public API.
# What a smartos_image task declares: images by UUID, by name (and version), or from local files; keep entries.
from __future__ import annotations

import json

from ansible_collections.smartos.images.plugins.module_utils._errors import InvalidParameter
from ansible_collections.smartos.images.plugins.module_utils._filters import FROM_MANIFEST, check_filters, matches, row
from ansible_collections.smartos.images.plugins.module_utils._manifest import is_uuid
from ansible_collections.smartos.images.plugins.module_utils._resolver import short


class Wanted:
    """One image the task declares: by UUID, by name (and version), or from local files."""

    def __init__(self, item, default_state):
        self.uuid = item.get('uuid')
        self.name = item.get('name')
        self.version = _version_text(item.get('version'))
        self.filters = check_filters(item.get('filters') or {}, FROM_MANIFEST, 'a name matches')
        self.state = item.get('state') or default_state
        self.manifest_path = item.get('manifest')
        self.file_path = item.get('file')
        if sum(bool(x) for x in (self.uuid, self.name, self.manifest_path)) != 1:
            raise InvalidParameter('each image needs exactly one of uuid, name, or manifest and file: %s'
                                   % json.dumps(item, sort_keys=True, default=str))
        if self.uuid and not is_uuid(self.uuid):
            raise InvalidParameter('uuid "%s" is not a lower-case UUID such as '
                                   '"01234567-89ab-cdef-0123-456789abcdef"' % self.uuid)
        if self.version and not self.name:
            raise InvalidParameter('version "%s" needs a name' % self.version)
        if self.filters and not self.name:
            raise InvalidParameter('filters need a name: %s' % json.dumps(self.filters, sort_keys=True, default=str))
        if bool(self.manifest_path) != bool(self.file_path):
            raise InvalidParameter('a local install needs both manifest and file')
        if self.manifest_path and self.state != 'present':
            raise InvalidParameter('manifest and file install an image; to remove it, give its uuid')

    def __str__(self):
        if self.uuid:
            return self.uuid
        if self.name:
            return self.name + ('@' + self.version if self.version else '')
        return self.manifest_path

    def matches(self, manifest):
        """True when an installed image's manifest is this name (and version), within the filters."""
        return (manifest.get('name') == self.name and (not self.version or manifest.get('version') == self.version)
                and matches(row(manifest), self.filters))


def _version_text(value):
    """A version as text. YAML makes `1.10` the float 1.1: taking its digits would name another version (to import,
    or to delete), so a non-integral number is refused; a whole number is its digits."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        raise InvalidParameter('version %r is a number, and YAML may have dropped digits of it (1.10 reads as 1.1): '
                               'quote it, as in version: "%s"' % (value, value))
    raise InvalidParameter('version must be a string, not %s' % short(value))


def _name_ref(text):
    """'name' or 'name@version' as a reference."""
    name, dummy, version = text.partition('@')
    return {'name': name, 'version': version or None}


def declared_images(params):
    """The declared images, validated before any command runs."""
    if params.get('images') is not None:
        wanted = [Wanted(item, params['state']) for item in params['images']]
        both = ({w.uuid for w in wanted if w.uuid and w.state == 'present'}
                & {w.uuid for w in wanted if w.uuid and w.state == 'absent'})
        if both:
            raise InvalidParameter('image(s) %s are declared both present and absent' % ', '.join(sorted(both)))
        return wanted
    if params.get('uuid') or params.get('name') or params.get('manifest'):
        return [Wanted({k: params.get(k) for k in ('uuid', 'name', 'version', 'filters', 'manifest', 'file')},
                       params['state'])]
    return []


def keep_entries(entries):
    """The keep option as references (a UUID, a name or name@version), each checked."""
    for k in entries or []:
        # taken for a name, these would match nothing, and prune_unused would delete what they were meant to keep
        if not is_uuid(k) and is_uuid(k.lower()):
            raise InvalidParameter('keep entry "%s" is not a lower-case UUID: write it as "%s"' % (k, k.lower()))
        if k.strip()[:1] in ('{', '[') or not k.strip():
            raise InvalidParameter('keep entry %s is not a UUID, name or name@version (a dict or list given as '
                                   'an entry is made text by Ansible): give each entry as a plain string' % short(k))
    return [Wanted({'uuid': k} if is_uuid(k) else _name_ref(k), 'present') for k in entries or []]
