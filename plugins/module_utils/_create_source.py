# Private to the smartos.images collection: not a public API.
# What smartos_image_create makes an image from: a VM, a dataset, a volume or a snapshot, and its origin image.
from __future__ import annotations

import hashlib

from ansible_collections.smartos.images.plugins.module_utils._create_files import shown
from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, InvalidParameter
from ansible_collections.smartos.images.plugins.module_utils._inventory import load_inventory, read_cached_manifest
from ansible_collections.smartos.images.plugins.module_utils._manifest_build import INHERITED, manifest_problems
from ansible_collections.smartos.images.plugins.module_utils._vmadm import vm_dataset, vm_zvol_fields

SNAPSHOT_PREFIX = 'smartos-images-create-'
# imgadm create: a filesystem makes a zone image, a volume a KVM/bhyve one (.zfs vs .zvol files)
KIND_TYPES = {'filesystem': 'zone-dataset', 'volume': 'zvol'}
# VMADM_FS_NAME_RE's VM datasets, disk first (bhyve has both <uuid> and <uuid>/disk0) (reference §2.1, §2.3)
VM_DATASETS = ('%s/%s-disk0', '%s/%s/disk0', '%s/%s')
# what an inherited field must be in the origin's cached manifest before it is looked at any closer
INHERITED_TYPES = {'type': str, 'os': str, 'requirements': dict, 'users': list, 'billing_tags': list, 'traits': dict,
                   'generate_passwords': bool, 'inherited_directories': list, 'nic_driver': str, 'disk_driver': str,
                   'cpu_type': str, 'image_size': int}
TYPE_WORDS = {str: 'a string', dict: 'an object', list: 'a list', bool: 'true or false', int: 'an integer'}


def snapshot_name(dataset, name, version):
    """The snapshot the module makes for an image: recognisable by its prefix, one per name and version."""
    tag = hashlib.sha1(('%s\n%s' % (name, version)).encode('utf-8')).hexdigest()[:12]
    return '%s@%s%s' % (dataset, SNAPSHOT_PREFIX, tag)


class SourceDataset:
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


class SourceFinder:
    """Finds the dataset and snapshot an image is made from, and its origin image; reads the host only."""

    def __init__(self, params, zfs, vmadm, runner, paths, layout):
        self.params = params
        self.zfs = zfs
        self.vmadm = vmadm
        self.runner = runner
        self.paths = paths
        self.layout = layout
        self.warnings = []

    def find(self):
        """The dataset and the snapshot to send, from vm, dataset or snapshot."""
        p = self.params
        if p.get('vm'):
            return self.vm_source(p['vm'])
        if p.get('snapshot'):
            return self.snapshot_source(p['snapshot'])
        dataset = p['dataset']
        if '@' in dataset:
            raise InvalidParameter('dataset "%s" is a snapshot: give it as snapshot' % dataset)
        return self.dataset_source(dataset)

    def snapshot_source(self, snapshot):
        """A snapshot the user made: sent as it is, never removed."""
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
        return SourceDataset(dataset, props['type'], snapshot, own=True,
                             guid=snap_props['guid'] if snap_props else None, volsize=props.get('volsize'))

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
            source = self.dataset_source(self.vm_dataset_by_name(uuid))
        source.vm = uuid
        return source

    def vm_dataset_by_name(self, uuid):
        """Without vmadm: the first of the datasets vmadm would have made for the VM."""
        tried = [pattern % (self.params['pool'], uuid) for pattern in VM_DATASETS]
        for name in tried:
            props = self.zfs.properties(name, ['type'])
            if props is not None and (name.endswith('/' + uuid) or props.get('type') == 'volume'):
                return name
        raise ImageError('VM "%s" has no dataset on pool %s (looked for %s)'
                         % (uuid, self.params['pool'], ', '.join(tried)), vm=uuid)

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
        """The origin's cached manifest, by the collection's one reader; None when there is none."""
        # outside data: a file the reader finds bad, or one whose inherited fields are unusable, is refused, naming it
        cached = read_cached_manifest(self.paths, self.layout, pool, uuid)
        if cached.state == 'missing':
            return None
        if cached.state == 'bad':
            problems = [cached.problem]
        else:
            problems = ['cache file %s: %s' % (cached.path, p) for p in inherited_problems(cached.manifest)]
        if problems:
            raise ImageError('the cached manifest of origin image %s cannot be used: %s; smartos_image with '
                             'update_manifests (or imgadm) can write it again from a source'
                             % (uuid, '; '.join(problems)), path=cached.path, origin=uuid, problems=problems)
        return cached.manifest


def inherited_problems(manifest):
    """Why the fields an image inherits from its origin's manifest cannot be used (empty when they can)."""
    problems = []
    for key in INHERITED:
        value = manifest.get(key)
        want = INHERITED_TYPES.get(key)
        wrong = not isinstance(value, want) or (want is int and isinstance(value, bool)) if want else False
        if value is not None and wrong:
            problems.append('%s: %s is not %s' % (key, shown(value), TYPE_WORDS[want]))
    if not problems:
        inherited = {k: manifest[k] for k in INHERITED if manifest.get(k) is not None}
        problems.extend(manifest_problems(inherited, required=()))
    return problems


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
