# Private to the smartos.images collection: not a public API.
# The smartos_image_create worker: find the source, plan what to make, then snapshot, send, compress and write.
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import signal
import socket
import stat
import tempfile
import time

from ansible_collections.smartos.images.plugins.module_utils import _host
from ansible_collections.smartos.images.plugins.module_utils._common import check_pool
from ansible_collections.smartos.images.plugins.module_utils._compress import (
    SUFFIXES, compress_stream, default_workers,
)
from ansible_collections.smartos.images.plugins.module_utils._errors import (
    CommandError, ImageError, InvalidParameter,
)
from ansible_collections.smartos.images.plugins.module_utils._inventory import load_inventory
from ansible_collections.smartos.images.plugins.module_utils._manifest import (
    ManifestError, is_uuid, label, upgrade_manifest,
)
from ansible_collections.smartos.images.plugins.module_utils._manifest_build import (
    FIELDS, INHERITED, MANAGED, build_v1, build_v2, derive_uuid, desired_fields, dumps, manifest_problems, ordered,
    published_at, v1_problems,
)
from ansible_collections.smartos.images.plugins.module_utils._vmadm import Vmadm, vm_dataset, vm_zvol_fields
from ansible_collections.smartos.images.plugins.module_utils._zfs import Zfs

SNAPSHOT_PREFIX = 'smartos-images-create-'
# imgadm create: a filesystem makes a zone image, a volume a KVM/bhyve one (.zfs vs .zvol files)
KIND_TYPES = {'filesystem': 'zone-dataset', 'volume': 'zvol'}
KIND_EXTENSIONS = {'filesystem': '.zfs', 'volume': '.zvol'}
KIND_ALLOWS = {'filesystem': ('zone-dataset', 'lx-dataset', 'lxd', 'docker', 'other'), 'volume': ('zvol', 'other')}
# what a volume's image needs when neither the task, the origin nor the VM says (IMGAPI/DSAPI defaults)
ZVOL_DEFAULTS = {'nic_driver': 'virtio', 'disk_driver': 'virtio', 'cpu_type': 'qemu64'}
MIB = 1 << 20
# VMADM_FS_NAME_RE's VM datasets, disk first (bhyve has both <uuid> and <uuid>/disk0) (reference §2.1, §2.3)
VM_DATASETS = ('%s/%s-disk0', '%s/%s/disk0', '%s/%s')
# most file systems (ZFS, UFS, ext4, tmpfs) allow 255 bytes per name; a temp name adds '.', '.<host>-<pid>.XXXXXXXX'
NAME_MAX = 255
TEMP_EXTRA = 27
# what an inherited field must be in the origin's cached manifest before it is looked at any closer
# a manifest is a few kB; more (or a FIFO, a device, a directory) in its place is not one to read
MANIFEST_MAX = 8 * MIB
INHERITED_TYPES = {'type': str, 'os': str, 'requirements': dict, 'users': list, 'billing_tags': list, 'traits': dict,
                   'generate_passwords': bool, 'inherited_directories': list, 'nic_driver': str, 'disk_driver': str,
                   'cpu_type': str, 'image_size': int}


def snapshot_name(dataset, name, version):
    """The snapshot the module makes for an image: recognisable by its prefix, one per name and version."""
    tag = hashlib.sha1(('%s\n%s' % (name, version)).encode('utf-8')).hexdigest()[:12]
    return '%s@%s%s' % (dataset, SNAPSHOT_PREFIX, tag)


def file_prefix(name, version):
    """imgadm create's default output prefix, <name>-<version>, made safe as a file name."""
    # not one-to-one (a/b-1 and a-b/1 both give a-b-1): check_ownership refuses files another image's manifest claims
    return re.sub(r'[^A-Za-z0-9._+-]', '_', '%s-%s' % (name, version))


# a BaseException, so that no handler of ordinary failures (the compressor's) takes it for one
class Interrupted(BaseException):
    """SIGTERM or SIGHUP arrived while the module was making files: clean up, then report it."""


def _interrupted(signum, frame):
    raise Interrupted(signum)


class Source:
    """What the image is made from: a dataset, the snapshot to send, and whose snapshot that is."""

    def __init__(self, dataset, kind, snapshot, own, guid, volsize=None):
        self.dataset = dataset
        self.kind = kind            # 'filesystem' or 'volume'
        self.snapshot = snapshot
        self.own = own              # the module makes (and may remove) this snapshot
        self.guid = guid            # None while the module's snapshot does not exist yet
        self.volsize = volsize
        self.vm = None
        self.vm_state = None
        self.vm_fields = {}


class Plan:
    """What is on disk, what the task wants, and the actions between them (the same in check and real runs)."""

    def __init__(self, source, fields, paths, compression, incremental_from):
        self.source = source
        self.fields = fields
        self.file_path, self.manifest_path, self.dsmanifest_path = paths
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


class ImageCreator:
    """Makes an image file and its manifest(s) from a VM, a dataset or a snapshot."""

    def __init__(self, params, runner, check_mode=False, workers=None, now=None):
        self.params = params
        self.runner = runner
        self.check_mode = check_mode
        self.zfs = Zfs(runner)
        self.vmadm = Vmadm(runner)
        self.paths = _host.HostPaths(params.get('host_root') or '/')
        self.layout = _host.detect_layout(self.paths, params.get('layout') or 'auto')
        self.workers = workers or default_workers()
        self.now = now
        self.warnings = []

    # ---- checking the task ----

    def check_params(self):
        """Everything that can be refused before any command runs."""
        p = self.params
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
                raise InvalidParameter('fields: "%s" is set by the module or by its own option, not through fields'
                                       % key)
            if key not in FIELDS:
                raise InvalidParameter('fields: "%s" is not a field of a v2 image manifest' % key)
        if p['output_dir'] in (None, ''):
            raise InvalidParameter('output_dir must name a directory')

    # ---- reading the host ----

    def find_source(self):
        """The dataset and the snapshot to send, from vm, dataset or snapshot."""
        p = self.params
        if p.get('vm'):
            return self.vm_source(p['vm'])
        if p.get('snapshot'):
            snapshot = p['snapshot']
            dataset, at, dummy = snapshot.partition('@')
            if not at or not dataset:
                raise InvalidParameter('snapshot "%s" is not a snapshot name (dataset@name); to make an image of a '
                                       'dataset as it is now, use dataset' % snapshot)
            props = self.zfs.properties(snapshot, ['type', 'guid', 'volsize'])
            if props is None:
                raise ImageError('snapshot "%s" does not exist; list them with `zfs list -t snapshot %s`'
                                 % (snapshot, dataset), snapshot=snapshot)
            source = self.dataset_source(dataset)
            source.snapshot, source.own, source.guid = snapshot, False, props['guid']
            # kernel ZFS: a volume's snapshot keeps the volsize it had; the volume may have been resized since
            source.volsize = props.get('volsize') or source.volsize
            return source
        dataset = p['dataset']
        if '@' in dataset:
            raise InvalidParameter('dataset "%s" is a snapshot: give it as snapshot' % dataset)
        return self.dataset_source(dataset)

    def dataset_source(self, dataset):
        """A filesystem or volume and the module's snapshot of it for this image (if it exists)."""
        props = self.zfs.properties(dataset, ['type', 'volsize'])
        if props is None:
            raise ImageError('dataset "%s" does not exist; check the name with `zfs list -t filesystem,volume`'
                             % dataset, dataset=dataset)
        if props.get('type') not in KIND_TYPES:
            raise ImageError('dataset "%s" is a %s, not a filesystem or volume' % (dataset, props.get('type')),
                             dataset=dataset)
        snapshot = snapshot_name(dataset, self.params['name'], self.params['version'])
        snap_props = self.zfs.properties(snapshot, ['guid'])
        return Source(dataset, props['type'], snapshot, own=True, guid=snap_props['guid'] if snap_props else None,
                      volsize=props.get('volsize'))

    def vm_source(self, uuid):
        """A VM's dataset: from vmadm where it exists, else by the names vmadm gives them."""
        if self.vmadm.available():
            vm = self.vmadm.get(uuid)
            if vm is None:
                raise ImageError('VM "%s" does not exist (vmadm get found no such VM)' % uuid, vm=uuid)
            dataset = vm_dataset(vm)
            if not dataset:
                raise ImageError('VM "%s" (brand %s) has no disk or zone dataset to make an image of'
                                 % (uuid, vm.get('brand')), vm=uuid)
            source = self.dataset_source(dataset)
            source.vm_state = vm.get('state')
            source.vm_fields = vm_zvol_fields(vm)
        else:
            tried = [pattern % (self.params['pool'], uuid) for pattern in VM_DATASETS]
            for name in tried:
                props = self.zfs.properties(name, ['type'])
                if props is not None and (name.endswith('/' + uuid) or props.get('type') == 'volume'):
                    source = self.dataset_source(name)
                    break
            else:
                raise ImageError('VM "%s" has no dataset on pool %s (looked for %s)'
                                 % (uuid, self.params['pool'], ', '.join(tried)), vm=uuid)
        source.vm = uuid
        return source

    def find_origin(self, source):
        """The installed origin image: its @final snapshot (checked as an ancestor of the source) and manifest."""
        origin = self.params['origin']
        pool = source.dataset.split('/')[0]
        origin_ds = '%s/%s' % (pool, origin)
        inventory = load_inventory(self.zfs, self.runner, pool)
        if not inventory.is_image(pool, origin):
            why = inventory.not_images.get(origin_ds)
            raise ImageError('origin image "%s" is not installed on pool %s%s; import it first (smartos_image), or '
                             'leave origin out to make a full image' % (origin, pool, ' (%s)' % why if why else ''),
                             origin=origin)
        final = origin_ds + '@final'
        if final not in inventory.datasets:
            raise ImageError('origin image "%s" has no @final snapshot; smartos_image with update_manifests can '
                             'give it back' % origin, origin=origin)
        if not descends_from(inventory, source.dataset, origin_ds):
            raise ImageError('origin image "%s" is not an ancestor of %s: the dataset is not a clone of %s (directly or '
                             'through its origins); give the image the dataset was made from, or leave origin out'
                             % (origin, source.snapshot, final), origin=origin, dataset=source.dataset)
        manifest = self.cached_manifest(pool, origin)
        if manifest is None:
            self.warnings.append('origin image %s has no cached manifest: nothing is inherited from it' % origin)
        return final, manifest or {}

    def cached_manifest(self, pool, uuid):
        """imgadm's cached manifest of an installed image (or v1's, upgraded); None when there is none."""
        # outside data: one that is not this image's (another uuid) or not well-formed is refused, naming the file
        path = self.paths.image_cache(pool, uuid)
        manifest = self._read_cached(path, v1=False)
        if manifest is None and self.layout == 'original':
            path = self.paths.original_manifest(uuid)
            manifest = self._read_cached(path, v1=True)
        if manifest is None:
            return None
        problems = cached_manifest_problems(manifest, uuid)
        if problems:
            raise ImageError('the cached manifest %s of origin image %s cannot be used: %s; smartos_image with '
                             'update_manifests (or imgadm) can write it again from a source'
                             % (path, uuid, '; '.join(problems)), path=path, origin=uuid, problems=problems)
        return manifest

    @staticmethod
    def _read_cached(path, v1):
        """The manifest in a cache file (v1: upgraded), None when the file does not exist; ImageError when unusable."""
        why = None
        try:
            info = read_json_file(path)
        except NotAManifestFile as e:
            info, why = None, str(e)
        except (ValueError, RecursionError) as e:
            info, why = None, 'it is not JSON (%s)' % e
        else:
            if info is None:
                return None
            if v1:
                if not isinstance(info, dict):
                    why = 'it holds a %s, not a manifest object' % type(info).__name__
                else:
                    try:
                        return upgrade_manifest(info)
                    except (ManifestError, TypeError, ValueError, AttributeError) as e:
                        why = 'its v1 manifest cannot be upgraded (%s)' % e
            elif not isinstance(info, dict) or not isinstance(info.get('manifest'), dict):
                why = 'it has no "manifest" object'
            else:
                return info['manifest']
        raise ImageError('the cached manifest %s cannot be read: %s; smartos_image with update_manifests (or imgadm) '
                         'can write it again from a source' % (path, why), path=path)

    def fields(self, source, origin_manifest):
        """The manifest fields of the image (without uuid, published_at, files); InvalidParameter if any is bad."""
        p = self.params
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

    # ---- planning ----

    def plan(self, source, fields, incremental_from):
        """Compare the output directory with what the task wants; list the actions."""
        p = self.params
        outdir = p['output_dir']
        prefix = os.path.join(outdir, file_prefix(p['name'], p['version']))
        compression = p['compression']
        paths = (prefix + KIND_EXTENSIONS[source.kind] + SUFFIXES[compression], prefix + '.imgmanifest',
                 prefix + '.dsmanifest')
        plan = Plan(source, fields, paths, compression, incremental_from)
        check_output_dir(outdir)
        check_name_length(paths + tuple(prefix + KIND_EXTENSIONS[source.kind] + s for s in SUFFIXES.values()))
        self.check_ownership(plan)
        existing = read_manifest(plan.manifest_path)
        entry = existing_entry(existing)
        # The file on disk is the one this task would write when it came from the same snapshot (by guid),
        # the same origin and compression. With the module's snapshot gone (remove_snapshot, or by hand) there
        # is nothing to compare: an output of the same options stands.
        reuse = bool(entry) and entry.get('compression') == compression and existing.get('origin') == p.get('origin')
        if source.guid is not None:
            reuse = reuse and str(entry.get('dataset_guid')) == source.guid
        else:
            reuse = reuse and source.own and bool(entry.get('dataset_guid'))
        reuse = reuse and file_size(plan.file_path) == entry.get('size')
        if reuse:
            plan.guid = str(entry['dataset_guid'])
        plan.uuid = p.get('uuid') or (derive_uuid(plan.guid, p['name'], p['version'], fields['type'], p.get('origin'))
                                      if plan.guid else None)
        if reuse:
            new_entry = {'sha1': entry['sha1'], 'size': entry['size'], 'compression': compression,
                         'dataset_guid': plan.guid}
            plan.manifest = build_v2(fields, plan.uuid, existing.get('published_at') or self.timestamp(), new_entry)
            plan.sha1, plan.size = entry['sha1'], entry['size']
        else:
            if source.guid is None:
                if source.vm and source.vm_state not in (None, 'stopped'):
                    if not p.get('stop_vm'):
                        raise ImageError('VM "%s" is %s: stop it first (vmadm stop %s), or set stop_vm to let the module '
                                         'stop it; an image of a running VM would not be consistent'
                                         % (source.vm, source.vm_state, source.vm), vm=source.vm)
                    plan.actions.append({'action': 'stop_vm', 'vm': source.vm})
                plan.actions.append({'action': 'snapshot', 'snapshot': source.snapshot})
            plan.actions.append({'action': 'send', 'snapshot': source.snapshot, 'incremental_from': incremental_from,
                                 'file': plan.file_path, 'compression': compression})
        predicted_entry = {'compression': compression, 'dataset_guid': plan.guid}
        plan.predicted = plan.manifest or ordered(dict(fields, uuid=plan.uuid, files=[
            {k: v for k, v in predicted_entry.items() if v is not None}]))
        if plan.manifest is None or plan.manifest != existing:
            plan.actions.append({'action': 'write_manifest', 'path': plan.manifest_path})
        if p.get('dsmanifest'):
            if plan.has('write_manifest') or read_bytes(plan.dsmanifest_path) != self.v1_bytes(plan.manifest, plan):
                plan.actions.append({'action': 'write_dsmanifest', 'path': plan.dsmanifest_path})
        if entry and entry.get('compression') != compression and entry.get('compression') in SUFFIXES:
            stale = prefix + KIND_EXTENSIONS[source.kind] + SUFFIXES[entry['compression']]
            if os.path.isfile(stale) and stale != plan.file_path:
                plan.stale_file = stale
                plan.actions.append({'action': 'remove_file', 'path': stale})
        if p.get('remove_snapshot') and source.own and (source.guid is not None or plan.has('snapshot')):
            plan.actions.append({'action': 'remove_snapshot', 'snapshot': source.snapshot})
        plan.orphans = orphaned_temps(prefix)
        plan.actions[:0] = [{'action': 'remove_file', 'path': path} for path in plan.orphans]
        plan.diff = self.diff(plan, existing)
        return plan

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

    def v1_bytes(self, manifest, plan):
        return dumps(build_v1(manifest, os.path.basename(plan.file_path), self.params['creator_name']))

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

    def timestamp(self):
        return published_at(self.now() if self.now else None)

    # ---- acting ----

    def execute(self, plan):
        """Run the planned actions; on failure remove what this run made (temp files, its snapshot) and say why."""
        handlers = {}
        try:
            for signum in (signal.SIGTERM, signal.SIGHUP):
                handlers[signum] = signal.signal(signum, _interrupted)
        except ValueError:
            pass    # not the main thread (a test): signals stay as they are
        try:
            self._execute(plan)
        except Interrupted as e:
            left = getattr(e, 'left', None)
            outcome = 'cleaning up failed: %s' % '; '.join(left) if left else 'what this run had made was removed'
            raise ImageError('interrupted by signal %d; %s' % (e.args[0], outcome))
        finally:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)

    def _execute(self, plan):
        p = self.params
        made = {'snapshot': False, 'fd': None, 'temps': [], 'file': None}
        for path in plan.orphans:
            _host.discard(path)     # a killed run's partial image file: room for this one
        try:
            if plan.has('send'):
                # fail on an unwritable output directory before the VM is stopped or anything is snapshotted
                made['fd'], tmp = open_temp(plan.file_path)
                made['temps'].append(tmp)
            for action in plan.actions:
                if action['action'] == 'stop_vm':
                    self.stop_vm(action['vm'])
                elif action['action'] == 'snapshot':
                    self.zfs.snapshot(action['snapshot'])
                    made['snapshot'] = True
                    plan.guid = self.zfs.guid(action['snapshot'])
            if plan.has('send'):
                plan.uuid = p.get('uuid') or derive_uuid(plan.guid, p['name'], p['version'], plan.fields['type'],
                                                         p.get('origin'))
                written = self.send(plan, made['fd'])
                fd, made['fd'] = made['fd'], None
                close_fd(fd, plan.file_path)
                plan.sha1, plan.size = written.sha1, written.size
                plan.manifest = build_v2(plan.fields, plan.uuid, self.timestamp(),
                                         {'sha1': plan.sha1, 'size': plan.size, 'compression': plan.compression,
                                          'dataset_guid': plan.guid})
            problems = manifest_problems(plan.manifest, required=('v', 'uuid', 'name', 'version', 'type', 'os', 'files'))
            if problems:
                raise ImageError('the manifest made for %s is invalid: %s' % (plan.source.snapshot, '; '.join(problems)),
                                 problems=problems)
            writes = []
            if plan.has('write_manifest'):
                writes.append((plan.manifest_path, dumps(plan.manifest)))
            if plan.has('write_dsmanifest'):
                writes.append((plan.dsmanifest_path, self.v1_bytes(plan.manifest, plan)))
            prepared = []
            for path, data in writes:
                prepared.append((_host.prepare_atomic(path, data, 0o644), path))
                made['temps'].append(prepared[-1][0])
            if plan.has('send'):
                _host.commit_atomic(made['temps'][0], plan.file_path)   # the image file first, then what describes it
                made['file'] = plan.file_path
            for tmp, path in prepared:
                _host.commit_atomic(tmp, path)
                if path == plan.manifest_path:
                    made['file'] = None     # the file is described: it stays even if a .dsmanifest fails
            made['temps'] = []
        except BaseException as e:
            left = self.clean_up(plan, made)
            if left and isinstance(e, ImageError):
                e.msg = '%s; and cleaning up failed: %s' % (e.msg, '; '.join(left))
                e.args = (e.msg,)
            elif isinstance(e, Interrupted):
                e.left = left
            raise
        if plan.stale_file:
            _host.discard(plan.stale_file)
        if plan.has('remove_snapshot'):
            try:
                self.zfs.destroy_snapshot(plan.source.snapshot)
            except ImageError as e:
                raise ImageError('the image files are written, but the snapshot %s could not be removed: %s; remove it '
                                 'with `zfs destroy %s`' % (plan.source.snapshot, e.msg, plan.source.snapshot),
                                 snapshot=plan.source.snapshot, file_path=plan.file_path,
                                 manifest_path=plan.manifest_path, changed=True)

    def clean_up(self, plan, made):
        """Remove what a failed run made, each step on its own; what could not be removed, as messages naming it."""
        left = []
        if made['fd'] is not None:
            try:
                os.close(made['fd'])
            except OSError:
                pass    # the failure being reported already says what is wrong with the file
        for path in made['temps'] + ([made['file']] if made['file'] else []):
            try:
                _host.discard(path)
            except ImageError as e:
                left.append(e.msg)
        if made['snapshot']:
            try:
                self.zfs.destroy_snapshot(plan.source.snapshot)
            except ImageError as e:
                left.append('the snapshot %s this run made could not be removed (%s): remove it with `zfs destroy %s`'
                            % (plan.source.snapshot, e.msg, plan.source.snapshot))
        return left

    def stop_vm(self, uuid):
        """vmadm stop, then make sure the VM is stopped before it is snapshotted."""
        self.vmadm.stop(uuid)
        vm = self.vmadm.get(uuid) or {}
        if vm.get('state') != 'stopped':
            raise ImageError('VM "%s" is still %s after vmadm stop; nothing was snapshotted' % (uuid, vm.get('state')),
                             vm=uuid)

    def send(self, plan, fd):
        """zfs send [-i origin@final] snapshot, compressed on every core and hashed on the way into fd."""
        argv = ['zfs', 'send'] + (['-i', plan.incremental_from] if plan.incremental_from else []) + [plan.source.snapshot]
        with tempfile.TemporaryFile() as errfile:
            try:
                proc = self.zfs.send(plan.source.snapshot, errfile, plan.incremental_from)
            except OSError as e:
                raise CommandError('zfs send of %s could not start: %s' % (plan.source.snapshot, e.strerror or e),
                                   cmd=' '.join(argv))

            def read(size):
                try:
                    return proc.stdout.read(size)
                except OSError as e:
                    raise CommandError('reading the send stream of %s failed: %s' % (plan.source.snapshot,
                                                                                     e.strerror or e),
                                       cmd=' '.join(argv))

            def write(data):
                write_all(fd, data, plan.file_path)

            try:
                written = compress_stream(read, write, plan.compression, self.workers)
                try:
                    os.fsync(fd)
                except OSError as e:
                    raise write_error(plan.file_path, e)
            except BaseException as e:
                proc.kill()
                proc.wait()
                if isinstance(e, Exception) and not isinstance(e, ImageError):
                    # a compressor's own failure (zlib, bz2, lzma, memory): the module's error, not a traceback
                    raise ImageError('compressing the send stream of %s with %s failed: %s'
                                     % (plan.source.snapshot, plan.compression,
                                        '%s: %s' % (type(e).__name__, e) if str(e) else type(e).__name__),
                                     path=plan.file_path)
                raise
            finally:
                proc.stdout.close()
            rc = proc.wait()
            errfile.seek(0)
            stderr = errfile.read().decode('utf-8', 'replace').strip()
        if rc != 0:
            raise CommandError('zfs send of %s failed: %s' % (plan.source.snapshot, stderr or 'exit code %d' % rc),
                               cmd=' '.join(argv), rc=rc, stderr=stderr)
        return written

    # ---- the whole task ----

    def run(self, diff=False):
        """Plan, then act unless in check mode; return the module result."""
        self.check_params()
        source = self.find_source()
        incremental_from, origin_manifest = None, {}
        if self.params.get('origin'):
            incremental_from, origin_manifest = self.find_origin(source)
        fields = self.fields(source, origin_manifest)
        plan = self.plan(source, fields, incremental_from)
        seconds = 0.0
        if plan.actions and not self.check_mode:
            started = time.monotonic()
            self.execute(plan)
            seconds = round(time.monotonic() - started, 3)
        result = self.result(plan, seconds)
        if diff:
            result['diff'] = plan.diff
        if self.warnings:
            result['warnings'] = self.warnings
        return result

    def result(self, plan, seconds):
        p = self.params
        return dict(
            changed=bool(plan.actions), actions=plan.actions,
            manifest=plan.manifest if plan.manifest is not None else plan.predicted,
            uuid=plan.uuid, manifest_path=plan.manifest_path, file_path=plan.file_path,
            dsmanifest_path=plan.dsmanifest_path if p.get('dsmanifest') else None,
            dataset=plan.source.dataset, snapshot=plan.source.snapshot, dataset_guid=plan.guid,
            sha1=plan.sha1, size=plan.size, seconds=seconds,
        )


def cached_manifest_problems(manifest, uuid):
    """Why a cached manifest cannot stand for image uuid: another uuid, or fields of the wrong type (empty when fine)."""
    problems = []
    if manifest.get('uuid') != uuid:
        problems.append('its uuid is %s, not the image\'s own' % shown(manifest.get('uuid')))
    for key in ('name', 'version'):
        if not isinstance(manifest.get(key), str):
            problems.append('%s: %s is not a string' % (key, shown(manifest.get(key))))
    for key in INHERITED:
        value = manifest.get(key)
        want = INHERITED_TYPES.get(key)
        wrong = not isinstance(value, want) or (want is int and isinstance(value, bool)) if want else False
        if value is not None and wrong:
            problems.append('%s: %s is not %s' % (key, shown(value), {str: 'a string', dict: 'an object', list: 'a list',
                                                                      bool: 'true or false', int: 'an integer'}[want]))
    if not problems:
        inherited = {k: manifest[k] for k in INHERITED if manifest.get(k) is not None}
        problems.extend(manifest_problems(inherited, required=()))
    return problems


def shown(value, limit=60):
    """A value from outside, short and printable, for a message."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + '...'


def descends_from(inventory, dataset, origin_ds):
    """True when dataset is origin_ds or a clone of it, directly or through the origins of its origins."""
    seen = set()
    name = dataset
    while name and name not in seen:
        if name == origin_ds:
            return True
        seen.add(name)
        entry = inventory.datasets.get(name)
        name = entry.origin.split('@')[0] if entry is not None and entry.origin else None
    return False


def check_output_dir(path):
    """Refuse, before anything runs, an output directory that is not one or cannot be written."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise ImageError('output_dir %s cannot be made: %s is not a directory' % (path, probe), path=path)
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ImageError('output_dir %s cannot be written (%s is not writable%s)'
                         % (path, probe, ', or on a read-only file system' if probe == os.path.abspath(path) else ''),
                         path=path)


def check_name_length(paths):
    """Refuse, before anything runs, file names too long for the file system (with the temporary name's extra)."""
    for path in paths:
        size = len(os.path.basename(path).encode('utf-8', 'surrogateescape'))
        if size + TEMP_EXTRA > NAME_MAX:
            raise InvalidParameter('the file name %s is %d bytes long; with the temporary name\'s %d more it exceeds '
                                   'the %d bytes a file system allows: shorten the name or version'
                                   % (os.path.basename(path), size, TEMP_EXTRA, NAME_MAX), path=path)


def write_error(path, error):
    """An ImageError for a failed write of an output file, saying what to do about a full disk."""
    full = error.errno in (errno.ENOSPC, getattr(errno, 'EDQUOT', errno.ENOSPC))
    advice = (' (the file system or a quota is full: free some space in %s, or give another output_dir)'
              % os.path.dirname(path)) if full else ''
    return ImageError('cannot write %s: %s%s' % (path, error.strerror or error, advice), path=path)


def write_all(fd, data, path):
    """os.write until every byte is written (a write may take fewer)."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except OSError as e:
        raise write_error(path, e)


def close_fd(fd, path):
    """Close an output file; some file systems report a failed write only here."""
    try:
        os.close(fd)
    except OSError as e:
        raise write_error(path, e)


def host_tag():
    """8 hex digits naming this host in a temporary file's name (an output_dir may be shared between hosts)."""
    return hashlib.sha1(socket.gethostname().encode('utf-8', 'replace')).hexdigest()[:8]


def orphaned_temps(prefix):
    """Temporary image files of prefix left by runs on this host whose process is gone (killed with SIGKILL)."""
    directory, base = os.path.split(prefix)
    pattern = re.compile(r'\.%s(\.zfs|\.zvol)(\.gz|\.bz2|\.xz)?\.%s-(\d+)\.[a-z0-9_]{8}\Z'
                         % (re.escape(base), host_tag()))
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    found = []
    for name in names:
        match = pattern.match(name)
        if match and not process_exists(int(match.group(3))) and os.path.isfile(os.path.join(directory, name)):
            found.append(os.path.join(directory, name))
    return found


def process_exists(pid):
    """True while the process runs. A zombie (killed, not yet reaped) is gone: it writes nothing any more, and
    check mode, run a moment after the kill, must see what the real run sees once the zombie is reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass            # another user's: it exists, unless it is a zombie
    try:
        with open('/proc/%d/stat' % pid, 'rb') as f:
            # Linux: "pid (comm) S ...", the state after the last ')' (comm may hold spaces and parentheses)
            return f.read().rsplit(b')', 1)[1].split()[0] != b'Z'
    except (OSError, IndexError):
        return True     # no Linux /proc (SmartOS has psinfo): kill(0) said it exists


def open_temp(path):
    """A temporary file beside path (made with the directory if needed), named for this host and process: (fd, name)."""
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix='.%s.%s-%d.' % (os.path.basename(path), host_tag(), os.getpid()),
                                   dir=directory)
        os.fchmod(fd, 0o644)
    except OSError as e:
        raise _host.host_error('cannot write', path, e)
    return fd, tmp


class NotAManifestFile(ValueError):
    """Something at a manifest's path that is not a regular file of a manifest's size."""


def read_json_file(path, limit=MANIFEST_MAX):
    """JSON from a regular file of at most limit bytes; None when there is none, NotAManifestFile when it is not one."""
    try:
        # O_NONBLOCK: a FIFO in a manifest's place opens at once (and is refused) instead of waiting for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, 'O_NOCTTY', 0))
    except FileNotFoundError:
        return None
    except OSError as e:
        raise _host.host_error('cannot read', path, e)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = 'a directory' if stat.S_ISDIR(mode) else 'a FIFO' if stat.S_ISFIFO(mode) else 'a device or socket'
        raise NotAManifestFile('it is not a regular file (%s)' % kind)
    with os.fdopen(fd, 'rb') as f:
        try:
            data = f.read(limit + 1)
        except OSError as e:
            raise _host.host_error('cannot read', path, e)
    if len(data) > limit:
        raise NotAManifestFile('it is larger than the %d MiB a manifest may be' % (limit // MIB))
    return json.loads(data.decode('utf-8'))


def read_manifest(path):
    """The manifest already at path, or None when there is none (or it is not JSON: it will be replaced)."""
    try:
        manifest = read_json_file(path)
    except NotAManifestFile as e:
        raise ImageError('%s is in the way of this image\'s manifest: %s; nothing was changed; remove it, or write '
                         'this image to another output_dir' % (path, e), path=path)
    except (ValueError, RecursionError, ImageError):
        return None
    return manifest if isinstance(manifest, dict) else None


def existing_entry(manifest):
    files = (manifest or {}).get('files')
    if isinstance(files, list) and files and isinstance(files[0], dict):
        return files[0]
    return None


def file_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def read_bytes(path):
    try:
        with open(path, 'rb') as f:
            return f.read()
    except OSError:
        return None
