# Private to the smartos.images collection: not a public API.
# What is installed: imgadm's rules (zone roots, @final clones, imgadm:ignore) and who clones what.
from __future__ import annotations

import re

from ansible_collections.smartos.images.plugins.module_utils._errors import CommandError

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

    def dependents(self, dataset):
        """Datasets cloned from any snapshot of dataset, sorted."""
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
