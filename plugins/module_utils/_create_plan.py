# Private to the smartos.images collection: not a public API.
# What smartos_image_create would do: the task checked, the manifest fields, and the output directory compared with
# what the task wants; the same plan in check and real runs, made without changing anything.
from __future__ import annotations

import os

from ansible_collections.smartos.images.plugins.module_utils._common import check_pool
from ansible_collections.smartos.images.plugins.module_utils._compress import SUFFIXES
from ansible_collections.smartos.images.plugins.module_utils._create_files import (
    check_name_length, check_output_dir, existing_entry, file_bytes, file_prefix, file_size, orphaned_temps,
    read_manifest, shown,
)
from ansible_collections.smartos.images.plugins.module_utils._create_source import KIND_TYPES
from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, InvalidParameter
from ansible_collections.smartos.images.plugins.module_utils._manifest import is_uuid, label
from ansible_collections.smartos.images.plugins.module_utils._manifest_build import (
    FIELDS, MANAGED, build_v1, build_v2, derive_uuid, desired_fields, dumps, manifest_problems, ordered, v1_problems,
)

KIND_EXTENSIONS = {'filesystem': '.zfs', 'volume': '.zvol'}
KIND_ALLOWS = {'filesystem': ('zone-dataset', 'lx-dataset', 'lxd', 'docker', 'other'), 'volume': ('zvol', 'other')}
# what a volume's image needs when neither the task, the origin nor the VM says (IMGAPI/DSAPI defaults)
ZVOL_DEFAULTS = {'nic_driver': 'virtio', 'disk_driver': 'virtio', 'cpu_type': 'qemu64'}
MIB = 1 << 20


def check_params(p):
    """Everything that can be refused before any command runs."""
    for key in ('vm', 'uuid', 'owner', 'origin'):
        if p.get(key) is not None and not is_uuid(p[key]):
            raise InvalidParameter('%s "%s" is not a lower-case UUID such as "01234567-89ab-cdef-0123-456789abcdef"'
                                   % (key, p[key]))
    check_pool(p['pool'])
    early = {k: p[k] for k in ('name', 'version', 'description', 'homepage') if p.get(k) is not None}
    if p.get('requirements') is not None:
        early['requirements'] = p['requirements']
    problems = manifest_problems(early, required=('name', 'version'))
    if problems:
        raise InvalidParameter('the manifest would be invalid: %s' % '; '.join(problems), problems=problems)
    for key in sorted(p.get('fields') or {}):
        if key in MANAGED:
            raise InvalidParameter('fields: "%s" is set by the module or by its own option, not through fields' % key)
        if key not in FIELDS:
            raise InvalidParameter('fields: "%s" is not a field of a v2 image manifest' % key)
    if p['output_dir'] in (None, ''):
        raise InvalidParameter('output_dir must name a directory')


def image_fields(p, source, origin_manifest):
    """The manifest fields of the image (without uuid, published_at, files); InvalidParameter if any is bad."""
    image_type = p.get('type') or origin_manifest.get('type') or KIND_TYPES[source.kind]
    if image_type not in KIND_ALLOWS[source.kind]:
        raise InvalidParameter('type "%s" does not fit %s, a %s (use one of %s)'
                               % (image_type, source.dataset, source.kind, ', '.join(KIND_ALLOWS[source.kind])))
    defaults = {'type': image_type, 'os': 'smartos'}
    if image_type == 'zvol':
        defaults.update(ZVOL_DEFAULTS)
        if source.volsize:
            defaults['image_size'] = int(source.volsize) // MIB
        defaults.update(source.vm_fields)
    fields = desired_fields(p, origin_manifest, defaults)
    problems = manifest_problems(fields, required=('name', 'version', 'type', 'os'))
    if problems:
        raise InvalidParameter('the manifest would be invalid: %s' % '; '.join(problems), problems=problems)
    if p.get('dsmanifest'):
        problems = v1_problems(fields, p.get('creator_name'))
        if problems:
            raise InvalidParameter('the v1 manifest (dsmanifest) would be invalid: %s' % '; '.join(problems),
                                   problems=problems)
    return fields


class CreatePlan:
    """What is on disk, what the task wants, and the actions between them (the same in check and real runs)."""

    def __init__(self, source, fields, prefix, compression, incremental_from):
        self.source = source
        self.fields = fields
        self.prefix = prefix
        self.file_path = prefix + KIND_EXTENSIONS[source.kind] + SUFFIXES[compression]
        self.manifest_path = prefix + '.imgmanifest'
        self.dsmanifest_path = prefix + '.dsmanifest'
        self.compression = compression
        self.incremental_from = incremental_from
        self.actions = []
        self.manifest = None        # the final manifest, when known without sending
        self.predicted = None       # what is known of it before sending
        self.uuid = None
        self.guid = source.guid
        self.sha1 = self.size = None
        self.stale_file = None
        self.orphans = []           # temporary files of killed runs on this host, removed first
        self.diff = None

    def has(self, action):
        return any(a['action'] == action for a in self.actions)

    def image_file(self, compression):
        """The image file's path with another compression."""
        return self.prefix + KIND_EXTENSIONS[self.source.kind] + SUFFIXES[compression]


class Planner:
    """Compares the output directory with what the task wants and lists the actions; changes nothing."""

    def __init__(self, params, timestamp):
        self.params = params
        self.timestamp = timestamp

    def plan(self, source, fields, incremental_from):
        """The plan of the task: reuse or send the image file, then write what describes it."""
        p = self.params
        prefix = os.path.join(p['output_dir'], file_prefix(p['name'], p['version']))
        plan = CreatePlan(source, fields, prefix, p['compression'], incremental_from)
        check_output_dir(p['output_dir'])
        check_name_length((plan.file_path, plan.manifest_path, plan.dsmanifest_path)
                          + tuple(plan.image_file(c) for c in SUFFIXES))
        self.check_ownership(plan)
        existing = read_manifest(plan.manifest_path)
        entry = existing_entry(existing)
        reuse = self.reusable(plan, existing, entry)
        if reuse:
            plan.guid = str(entry['dataset_guid'])
        plan.uuid = p.get('uuid') or (derive_uuid(plan.guid, p['name'], p['version'], fields['type'], p.get('origin'))
                                      if plan.guid else None)
        if reuse:
            self.reuse(plan, existing, entry)
        else:
            self.plan_send(plan)
        self.plan_descriptions(plan, existing, entry)
        plan.orphans = orphaned_temps(prefix)
        plan.actions[:0] = [{'action': 'remove_file', 'path': path} for path in plan.orphans]
        plan.diff = self.diff(plan, existing)
        return plan

    def reusable(self, plan, existing, entry):
        """The file on disk is the one this task would write: same snapshot (by guid), origin and compression."""
        # With the module's snapshot gone (remove_snapshot, or by hand) there is nothing to compare: an output of
        # the same options stands.
        source = plan.source
        reuse = bool(entry) and entry.get('compression') == plan.compression
        reuse = reuse and existing.get('origin') == self.params.get('origin')
        if source.guid is not None:
            reuse = reuse and str(entry.get('dataset_guid')) == source.guid
        else:
            reuse = reuse and source.own and bool(entry.get('dataset_guid'))
        return reuse and file_size(plan.file_path) == entry.get('size')

    def reuse(self, plan, existing, entry):
        """The image file stays: its manifest is rebuilt from what is known of it."""
        new_entry = {'sha1': entry['sha1'], 'size': entry['size'], 'compression': plan.compression,
                     'dataset_guid': plan.guid}
        plan.manifest = build_v2(plan.fields, plan.uuid, existing.get('published_at') or self.timestamp(), new_entry)
        plan.sha1, plan.size = entry['sha1'], entry['size']

    def plan_send(self, plan):
        """Stop the VM (when asked) and snapshot, unless the snapshot exists; then send."""
        source = plan.source
        if source.guid is None:
            if source.vm and source.vm_state not in (None, 'stopped'):
                if not self.params.get('stop_vm'):
                    raise ImageError('VM "%s" is %s: stop it first (vmadm stop %s), or set stop_vm to let the module '
                                     'stop it; an image of a running VM would not be consistent'
                                     % (source.vm, source.vm_state, source.vm), vm=source.vm)
                plan.actions.append({'action': 'stop_vm', 'vm': source.vm})
            plan.actions.append({'action': 'snapshot', 'snapshot': source.snapshot})
        plan.actions.append({'action': 'send', 'snapshot': source.snapshot, 'incremental_from': plan.incremental_from,
                             'file': plan.file_path, 'compression': plan.compression})

    def plan_descriptions(self, plan, existing, entry):
        """The manifests to write, a stale image file of another compression, the snapshot to remove."""
        predicted_entry = {'compression': plan.compression, 'dataset_guid': plan.guid}
        plan.predicted = plan.manifest or ordered(dict(plan.fields, uuid=plan.uuid, files=[
            {k: v for k, v in predicted_entry.items() if v is not None}]))
        if plan.manifest is None or plan.manifest != existing:
            plan.actions.append({'action': 'write_manifest', 'path': plan.manifest_path})
        if self.params.get('dsmanifest'):
            v1 = None if plan.has('write_manifest') else v1_bytes(plan.manifest, plan, self.params['creator_name'])
            if v1 is None or file_bytes(plan.dsmanifest_path) != v1:
                plan.actions.append({'action': 'write_dsmanifest', 'path': plan.dsmanifest_path})
        if entry and entry.get('compression') != plan.compression and entry.get('compression') in SUFFIXES:
            stale = plan.image_file(entry['compression'])
            if os.path.isfile(stale) and stale != plan.file_path:
                plan.stale_file = stale
                plan.actions.append({'action': 'remove_file', 'path': stale})
        source = plan.source
        if self.params.get('remove_snapshot') and source.own and (source.guid is not None or plan.has('snapshot')):
            plan.actions.append({'action': 'remove_snapshot', 'snapshot': source.snapshot})

    def check_ownership(self, plan):
        """Refuse output files that another image's manifest claims: <name>-<version> is not one-to-one."""
        p = self.params
        for path in (plan.manifest_path, plan.dsmanifest_path):
            other = read_manifest(path)
            if other is None or (other.get('name'), other.get('version')) == (p['name'], p['version']):
                continue
            if not (isinstance(other.get('name'), str) and isinstance(other.get('version'), str)):
                raise ImageError('%s is not a manifest of this image (it names no image version): nothing was changed; '
                                 'remove it, or write this image to another output_dir' % path, path=path)
            raise ImageError('%s belongs to another image, %s version %s (uuid %s), whose files have the same names as '
                             'this image\'s (%s version %s): nothing was changed; write this image to another output_dir, '
                             'or remove that image\'s files if it is no longer needed'
                             % (path, shown(other.get('name')), shown(other.get('version')), shown(other.get('uuid')),
                                shown(p['name']), shown(p['version'])), path=path)

    def diff(self, plan, existing):
        """Before and after: the output files, the image they describe, and the module's snapshot."""
        paths = [plan.file_path, plan.manifest_path] + ([plan.dsmanifest_path] if self.params.get('dsmanifest') else [])
        own_snapshot = plan.source.snapshot if plan.source.own else None
        before = {'files': sorted(os.path.basename(x) for x in paths + [plan.stale_file or ''] if x and os.path.isfile(x)),
                  'image': label(existing) if existing else None,
                  'snapshot': own_snapshot if plan.source.guid is not None else None}
        after = {'files': sorted(os.path.basename(x) for x in paths),
                 'image': label(plan.fields),
                 'snapshot': None if plan.has('remove_snapshot') or not (plan.source.guid or plan.has('snapshot'))
                 else own_snapshot}
        return {'before': before, 'after': after}


def v1_bytes(manifest, plan, creator_name):
    """The .dsmanifest (v1) of manifest's image file, as written."""
    return dumps(build_v1(manifest, os.path.basename(plan.file_path), creator_name))
