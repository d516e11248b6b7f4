# Private to the smartos.images collection: not a public API.
# What is installed: imgadm's rules (zone roots, @final clones, imgadm:ignore) and who clones what.
from __future__ import annotations

import re

from ansible_collections.smartos.images.plugins.module_utils import _host
from ansible_collections.smartos.images.plugins.module_utils._errors import CommandError, ImageError
from ansible_collections.smartos.images.plugins.module_utils._manifest import json_type, upgrade_manifest

_UUID = r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'
# imgadm VMADM_FS_NAME_RE / VMADM_IMG_NAME_RE, with digits allowed after a pool's first letter
# (imgadm's pool part has none, so it never lists images on a pool such as "zones2").
VM_FS_NAME_RE = re.compile(r'^([a-zA-Z][a-zA-Z0-9._:-]*)/(%s)([-/]disk\d+)?\Z' % _UUID)
IMG_NAME_RE = re.compile(r'^([a-zA-Z][a-zA-Z0-9._:-]*)/(%s)\Z' % _UUID)


_FIELD_RE = re.compile(r'((?:[^:\\]|\\.)*)(?::|\Z)')


def _fields(line):
    """The fields of one `zoneadm list -p` line: ':' separates them, and a '\\' escapes ':' or '\\' in one."""
    fields = [m.group(1) for m in _FIELD_RE.finditer(line)]
    if fields and fields[-1] == '' and not line.endswith(':'):
        fields.pop()  # finditer ends with an empty match at the end of the line
    return [re.sub(r'\\(.)', r'\1', f) for f in fields]


def parse_zone_roots(text):
    """Zone paths from `zoneadm list -pc` (field 3 of each colon-separated line)."""
    roots = set()
    if not isinstance(text, str):
        raise CommandError('unexpected zoneadm list -pc output: %s, not text' % type(text).__name__)
    for line in text.splitlines():
        fields = _fields(line)
        if len(fields) > 3 and fields[3]:
            roots.add(fields[3])
    return roots


def ignore_flag(value):
    """imgadm:ignore as imgadm's boolFromString reads it: exactly 'true' or 'yes' ignores the image."""
    return value in ('true', 'yes')


class Inventory:
    """Installed images and the clones of every dataset, from one zfs listing."""

    def __init__(self, datasets, zone_roots=()):
        self.datasets = {d.name: d for d in datasets}
        zone_roots = set(zone_roots)
        final = {d.name.split('@')[0] for d in datasets if d.name.endswith('@final')}
        self.clones = {}
        self.images = {}
        self.not_images = {}
        for d in datasets:
            if d.origin:
                self.clones.setdefault(d.origin.split('@')[0], []).append(d.name)
            match = IMG_NAME_RE.match(d.name)
            if not match:
                continue
            reason = None
            if d.mountpoint and d.mountpoint in zone_roots:
                reason = 'it is the root of a zone (a VM), not an image'
            elif d.origin and d.origin.endswith('@final') and d.name not in final:
                reason = 'it is a clone of %s with no @final snapshot of its own (a VM disk or copy)' % d.origin
            elif ignore_flag(d.ignore):
                reason = 'its imgadm:ignore property is set'
            if reason:
                self.not_images[d.name] = reason
            else:
                self.images[d.name] = (match.group(1), match.group(2))

    def is_image(self, pool, uuid):
        return '%s/%s' % (pool, uuid) in self.images

    def clones_of(self, dataset):
        """Datasets cloned from any snapshot of dataset itself (not of its children), sorted."""
        return sorted(self.clones.get(dataset, []))

    def images_on(self, pool):
        """UUIDs of the images on one pool, sorted."""
        return sorted(uuid for p, uuid in self.images.values() if p == pool)


def load_inventory(zfs, runner, pool=None):
    """Read the host: zone roots where zoneadm exists, then one zfs listing."""
    zone_roots = set()
    if runner.which('zoneadm', required=False):
        rc, out, err = runner.run(['zoneadm', 'list', '-pc'])
        if rc != 0:
            raise CommandError('zoneadm list -pc failed: %s' % err.strip(), rc=rc, stderr=err)
        zone_roots = parse_zone_roots(out)
    return Inventory(zfs.list(pool), zone_roots)


# ---- cached manifests: the one reader ----

CACHE_FILE_MAX = 16 << 20   # bytes: a cache file larger than this was not written by imgadm or by us
CACHED_TEXT_FIELDS = ('name', 'version', 'published_at', 'state', 'type', 'os')


class CachedManifest:
    """What the host records of one installed image: state 'ok', 'missing' (no file) or 'bad' (problem says why)."""

    __slots__ = ('uuid', 'path', 'state', 'manifest', 'source', 'problem')

    def __init__(self, uuid, path, state, manifest=None, source=None, problem=None):
        self.uuid, self.path, self.state = uuid, path, state
        self.manifest, self.source, self.problem = manifest, source, problem


def cache_files(paths, layout, pool, uuid):
    """The files that may record an image, in the order imgadm reads them (v1's record on the original layout)."""
    files = [paths.image_cache(pool, uuid)]
    if layout == 'original':
        files.append(paths.original_manifest(uuid))
    return files


def read_cached_manifest(paths, layout, pool, uuid):
    """The cached manifest of image uuid on pool, as a CachedManifest; never raises for what a file holds.

    Reads <pool>-<uuid>.json (imgadm's cache file); on the original layout, when that file does not exist,
    v1's <uuid>.json (upgraded; its "_url" is the source). One rule for every reader: a file is 'bad', and
    nothing of it is used (not its manifest, not its source), when it is no regular file, is larger than
    CACHE_FILE_MAX, is not JSON, has no manifest object, holds another image's manifest (or another pool's),
    or has a CACHED_TEXT_FIELDS field or "source" that is present and not a string. problem names the file.
    """
    modern, v1_path = (cache_files(paths, layout, pool, uuid) + [None])[:2]
    for path in (modern, v1_path):
        if path is None:
            break
        try:
            info = _host.read_json(path, CACHE_FILE_MAX)
            if info is not None and path == v1_path:
                info = _v1_info(info)
        except ImageError as e:   # not a regular file, or no permission
            return _bad(uuid, path, 'cannot be read: %s' % _reason(e.msg, path))
        except (ValueError, TypeError, AttributeError, RecursionError) as e:   # ManifestError is a ValueError
            return _bad(uuid, path, 'cannot be read: %s' % e)
        if info is not None:
            problem = cached_problem(info, uuid, pool if path == modern else None)
            if problem:
                return _bad(uuid, path, problem)
            return CachedManifest(uuid, path, 'ok', info['manifest'], info.get('source'))
    return CachedManifest(uuid, modern, 'missing')


def cached_problem(info, uuid, pool=None):
    """Why the content of a cache file cannot stand for image uuid (on pool, when given); None when it can."""
    if not isinstance(info, dict):
        return 'is not a JSON object'
    manifest = info.get('manifest')
    if not isinstance(manifest, dict):
        return 'has no "manifest" object'
    if manifest.get('uuid') != uuid:
        return 'holds the manifest of another image (uuid %s)' % _short(manifest.get('uuid'))
    if pool is not None and info.get('zpool') is not None and info.get('zpool') != pool:
        return 'is for pool %s' % _short(info.get('zpool'))
    wrong = ['the manifest\'s "%s" is a JSON %s, not a string' % (k, json_type(manifest[k]))
             for k in CACHED_TEXT_FIELDS if manifest.get(k) is not None and not isinstance(manifest[k], str)]
    if info.get('source') is not None and not isinstance(info['source'], str):
        wrong.append('"source" is a JSON %s, not a URL string' % json_type(info['source']))
    return 'has fields of the wrong type: %s' % '; '.join(wrong) if wrong else None


class CachedManifests:
    """The cached manifests of one run, each file read once."""

    def __init__(self, paths, layout):
        self.paths, self.layout = paths, layout
        self._read = {}

    def get(self, pool, uuid):
        """The CachedManifest of image uuid on pool (read_cached_manifest, remembered)."""
        key = (pool, uuid)
        if key not in self._read:
            self._read[key] = read_cached_manifest(self.paths, self.layout, pool, uuid)
        return self._read[key]


def _v1_info(v1):
    """v1's record as a cache file's content: the upgraded manifest and its "_url"."""
    if not isinstance(v1, dict):
        raise ValueError('a JSON %s, not a manifest' % json_type(v1))
    return {'manifest': upgrade_manifest(v1), 'source': v1.get('_url')}


def _bad(uuid, path, problem):
    return CachedManifest(uuid, path, 'bad', problem='cache file %s %s' % (path, problem))


def _reason(msg, path):
    """An error message without its leading 'cannot read <path>: ' (the problem names the file already)."""
    prefix = 'cannot read %s: ' % path
    return msg[len(prefix):] if msg.startswith(prefix) else msg


def _short(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + '...'
