# Private to the smartos.images collection: not a public API.
# The smartos_image worker: read the host once, resolve what the task declares, plan, then act.
from __future__ import annotations

import os
import re
import time

from ansible_collections.smartos.images.plugins.module_utils import _host, _plan
from ansible_collections.smartos.images.plugins.module_utils._common import check_pool, check_server_params
from ansible_collections.smartos.images.plugins.module_utils._errors import (
    ImageError, ImageNotFound, InvalidParameter, SourceError, UnsupportedImage,
)
from ansible_collections.smartos.images.plugins.module_utils._executor import ImageExecutor
from ansible_collections.smartos.images.plugins.module_utils._filters import newest_key
from ansible_collections.smartos.images.plugins.module_utils._inventory import CachedManifests, load_inventory
from ansible_collections.smartos.images.plugins.module_utils._local import (
    LocalClient, load_local_manifest, verify_local_file,
)
from ansible_collections.smartos.images.plugins.module_utils._manifest import label
from ansible_collections.smartos.images.plugins.module_utils._platform import check_platform, read_sysinfo
from ansible_collections.smartos.images.plugins.module_utils._resolver import Found, ImageResolver
from ansible_collections.smartos.images.plugins.module_utils._wanted import declared_images, keep_entries
from ansible_collections.smartos.images.plugins.module_utils._zfs import Zfs

STALE_TEMP_SECONDS = 60   # a temporary cache file this old, whose image nobody is importing, was left by a kill
_UUID_RE = r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'


class ImageManager:
    """Brings the images a task declares to present or absent on one pool, and prunes or refreshes.

    resolve (ImageResolver: which images, from which source) -> plan (_plan: actions, result, diff; the same in
    check mode) -> act (ImageExecutor), reading what is installed once (_inventory).
    """

    def __init__(self, params, runner, check_mode=False, client_factory=None):
        self.params = params
        self.check_mode = check_mode
        self.runner = runner
        self.zfs = Zfs(runner)
        self.paths = _host.HostPaths(params['host_root'])
        self.layout = _host.detect_layout(self.paths, params.get('layout', 'auto'))
        self.pool = params['pool']
        check_pool(self.pool)
        check_server_params(params)
        self.wanted = declared_images(params)
        self.keep = keep_entries(params.get('keep'))
        if not self.wanted and not params.get('prune_unused') and not params.get('update_manifests'):
            raise InvalidParameter('nothing to do: name an image (uuid, name, manifest and file, or a non-empty '
                                   'images list), or set prune_unused or update_manifests')
        lock_timeout = params.get('lock_timeout', _host.LOCK_WAIT_MAX)
        if isinstance(lock_timeout, bool) or not isinstance(lock_timeout, int) or lock_timeout < 0:
            raise InvalidParameter('lock_timeout must be 0 or more seconds, not %r' % (lock_timeout,))
        self.warnings = []
        self._warned = set()
        self.resolver = ImageResolver(params, self.paths, self.layout, client_factory, self.warn)
        self.executor = ImageExecutor(self.zfs, self.paths, self.layout, self.pool, lock_timeout, params['retries'],
                                      lambda found, tried: self.resolver.elsewhere(found, tried, self.check_runs_here),
                                      self.warn)
        self.cache = CachedManifests(self.paths, self.layout)
        self.refreshed = {}
        self.updates = []
        self.recorded = {}
        self._sysinfo = None
        self._sysinfo_read = False

    def warn(self, text, key=None):
        """A warning for the task result, once."""
        key = key or text
        if key not in self._warned:
            self._warned.add(key)
            self.warnings.append(text)

    # ---- what is installed ----

    def cached(self, uuid):
        """imgadm's cached manifest of an image on the pool (or v1's, upgraded); None when absent or unusable.

        A cache file that cannot be read, or that holds another image's manifest or fields of the wrong type,
        is never used (not to match a name, not as the image's manifest): it is reported as a warning.
        """
        cached = self.cache.get(self.pool, uuid)
        if cached.state == 'bad':
            # imgadm crashes on a corrupt cache file; we leave it alone and say so
            self.warn('image %s on pool %s: its %s; it is not used, neither to match names nor as the image\'s '
                      'manifest (update_manifests rewrites it from the sources)' % (uuid, self.pool, cached.problem),
                      key=('cache', uuid))
        return cached.manifest

    def cache_missing(self, uuid):
        """True when the image has no cache file at all (not even a bad one)."""
        return self.cache.get(self.pool, uuid).state == 'missing'

    def known(self, uuid):
        """The manifest an installed image is known by: its cached one, or the one this run records."""
        manifest = self.cached(uuid)
        if manifest is None and uuid in self.recorded:
            manifest = self.recorded[uuid].manifest
        return manifest

    def installed_by_name(self, inventory, wanted):
        """Installed images on the pool that a name (and version) reference matches, newest first."""
        found = [(self.known(u), u) for u in inventory.images_on(self.pool)]
        hits = [(newest_key(dict(m, uuid=u)), u) for m, u in found if m and wanted.matches(m)]
        return [u for dummy, u in sorted(hits, reverse=True)]

    def check_runs_here(self, manifest):
        """Refuse an image this host's platform cannot run (sysinfo read once, when first needed)."""
        if not self._sysinfo_read:
            self._sysinfo, self._sysinfo_read = read_sysinfo(self.runner), True
        check_platform(manifest, self._sysinfo)

    # ---- resolving each declared image into the plan ----

    def resolve(self, wanted, inventory, plan):
        """Add what one declared image needs to the plan; return its entry for the results."""
        if wanted.state == 'absent':
            return self._resolve_absent(wanted, inventory, plan)
        if wanted.manifest_path:
            return self._resolve_local(wanted, inventory, plan)
        return self._resolve_present(wanted, inventory, plan)

    def _resolve_absent(self, wanted, inventory, plan):
        entry = {'state': wanted.state, 'changed': False}
        if wanted.uuid:
            uuids = [wanted.uuid] if inventory.is_image(self.pool, wanted.uuid) else []
            _plan.check_is_image(self.pool, wanted.uuid, inventory, 'absent')
        else:
            uuids = self.installed_by_name(inventory, wanted)
        entry.update(uuids=uuids, changed=bool(uuids))
        if wanted.uuid:
            entry['uuid'] = wanted.uuid
            plan.absent.add(wanted.uuid)
        plan.deletes.extend(u for u in uuids if u not in plan.deletes)
        return entry

    def _resolve_local(self, wanted, inventory, plan):
        entry = {'state': wanted.state, 'changed': False}
        manifest = load_local_manifest(wanted.manifest_path)
        uuid = manifest['uuid']
        entry.update(uuid=uuid, image=manifest)
        if self.hidden(inventory, uuid, entry):
            return entry
        local = LocalClient(wanted.file_path)
        if inventory.is_image(self.pool, uuid) and self.cache_missing(uuid):
            # installed by a run killed before its commit: the local manifest is the one to record
            self.recorded[uuid] = Found(local.source, local, manifest, manifest)
            plan.records.append(_plan.record_action(self.pool, uuid, local.source.url))
            entry.update(changed=True, recorded=True)
        if not inventory.is_image(self.pool, uuid):
            _plan.check_is_image(self.pool, uuid, inventory, 'present')
            origin = manifest.get('origin')
            if origin and not inventory.is_image(self.pool, origin) and origin not in plan.import_uuids():
                raise ImageError('image %s needs its origin image %s on pool %s, and it is not installed: import '
                                 'it first (smartos_image uuid: %s)' % (uuid, origin, self.pool, origin),
                                 origin=origin)
            verify_local_file(wanted.file_path, manifest)
            self.check_runs_here(manifest)
            plan.add_imports([Found(local.source, local, manifest, manifest)])
            entry.update(changed=True, imported=[uuid])
        plan.present.add(uuid)
        return entry

    def _resolve_present(self, wanted, inventory, plan):
        entry = {'state': wanted.state, 'changed': False}
        if wanted.name and wanted.version:
            installed = self.installed_by_name(inventory, wanted)
            uuid = installed[0] if installed else self.resolver.newest(wanted)
        elif wanted.name:
            uuid = self.resolver.newest(wanted)  # "newest" is asked again on every run
        else:
            uuid = wanted.uuid
        entry['uuid'] = uuid
        plan.present.add(uuid)
        if self.hidden(inventory, uuid, entry):
            return entry
        if inventory.is_image(self.pool, uuid) and uuid not in self.recorded and self.cache_missing(uuid):
            self.plan_record(uuid, plan)
        if inventory.is_image(self.pool, uuid) or uuid in plan.import_uuids():
            entry['image'] = self.known(uuid) or plan.manifest_of(uuid) or {'uuid': uuid}
            if uuid in self.recorded:
                entry.update(changed=True, recorded=True)
            return entry
        _plan.check_partial(inventory, self.pool, uuid)
        found = self.resolver.find(uuid)
        planned = plan.import_uuids()
        chain = self.resolver.ancestry(found, lambda u: inventory.is_image(self.pool, u) or u in planned)
        for link in chain:
            self.check_runs_here(link.manifest)
        plan.add_imports(chain)
        for link in chain:
            _plan.check_partial(inventory, self.pool, link.uuid)
        entry.update(changed=True, image=found.manifest, source=found.source.url,
                     imported=[link.uuid for link in chain])
        return entry

    def hidden(self, inventory, uuid, entry):
        """imgadm import/install (reference 2.2, 3.1 step 3, 4.4 step 3): a dataset <pool>/<uuid> that its list
        hides (imgadm:ignore, a zone root, a clone without @final) counts as "already installed": nothing to do."""
        dataset = '%s/%s' % (self.pool, uuid)
        if dataset not in inventory.not_images:
            return False
        self.warn('image %s: dataset %s exists but imgadm\'s list hides it (%s); as imgadm does, it counts as '
                  'already installed and nothing is imported' % (uuid, dataset, inventory.not_images[dataset]))
        entry.update(hidden=inventory.not_images[dataset])
        entry.setdefault('image', {'uuid': uuid})
        return True

    def plan_record(self, uuid, plan):
        """An installed image without a cache file (an import killed between its rename and its commit):
        record its manifest from the sources, or warn when none has it."""
        try:
            found = self.resolver.find(uuid, active_only=False)
        except ImageError as e:
            self.warn('image %s on pool %s is installed but has no cached manifest, and it cannot be recorded: %s'
                      % (uuid, self.pool, e.msg), key=('record', uuid))
            return
        self.recorded[uuid] = found
        plan.records.append(_plan.record_action(self.pool, uuid, found.source.url))

    # ---- prune, refresh (imgadm vacuum, imgadm update) and leftovers ----

    def plan_prune(self, inventory, plan, deletes):
        """imgadm vacuum: the unused images to delete, sparing the declared ones and the keep entries."""
        kept = {str(k): [k.uuid] if k.uuid else self.installed_by_name(inventory, k) for k in self.keep}
        # a misspelt keep entry protects nothing: say so rather than prune in silence
        self.warnings.extend('keep entry "%s" matches no image on pool %s' % (k, self.pool)
                             for k, u in kept.items() if not u)
        keep = set(plan.present) | {u for uuids in kept.values() for u in uuids}
        if any(not k.uuid for k in self.keep):
            # a keep entry by name cannot be checked against an image whose manifest is unknown: spare it
            unknown = [u for u in inventory.images_on(self.pool) if u not in keep and self.known(u) is None]
            self.warnings.extend('image %s on pool %s is not pruned: it has no usable cached manifest, so the keep '
                                 'entries by name cannot be checked against it' % (u, self.pool) for u in unknown)
            keep.update(unknown)
        return _plan.unused_images(inventory, self.pool, keep, going=deletes)

    def plan_refresh(self, inventory, skip=()):
        """imgadm update (reference 4.3): manifests to back-fill or refresh, @final snapshots to repair.

        One image's problem (no source has it, a refused manifest, no way to find its original snapshot) is a
        warning and its entry in self.updates, never the end of the run: the other images are still updated.
        """
        actions = []
        for uuid in inventory.images_on(self.pool):
            if uuid not in skip:
                outcome, steps = self._refresh_one(inventory, uuid)
                self.updates.append(outcome)
                actions.extend(steps)
        return actions

    def _refresh_one(self, inventory, uuid):
        """(this image's entry in updates, its actions)."""
        try:
            found = self.resolver.find(uuid, active_only=False)
        except ImageNotFound:
            self.warn('Could not find image %s in image sources (skipping)' % uuid)  # imgadm's words
            return {'uuid': uuid, 'result': 'not found'}, []
        except UnsupportedImage as e:
            return {'uuid': uuid, 'result': 'not found', 'msg': e.msg}, []
        except SourceError as e:
            # a source sent a manifest for it that we refuse: keep what the host has, and say why
            self.warn('image %s on pool %s is not refreshed: %s' % (uuid, self.pool, e.msg))
            return {'uuid': uuid, 'result': 'failed', 'msg': e.msg}, []
        entry, actions = {'uuid': uuid, 'result': 'unchanged', 'source': found.source.url}, []
        cached = self.cached(uuid) or {}
        fields = sorted(k for k in set(found.manifest) | set(cached) if cached.get(k) != found.manifest.get(k))
        if fields:
            self.refreshed[uuid] = found
            actions.append({'action': 'refresh', 'uuid': uuid, 'fields': fields})
            entry.update(result='refreshed', fields=fields)
        dataset = '%s/%s' % (self.pool, uuid)
        if '%s@final' % dataset not in inventory.datasets:
            try:
                snap = self.snapshot_by_guid(inventory, dataset, found.manifest)
            except ImageError as e:
                self.warn('image %s on pool %s: its @final snapshot is not repaired: %s' % (uuid, self.pool, e.msg))
                entry.update(result='failed', msg=e.msg)
                return entry, actions
            actions.append({'action': 'repair', 'uuid': uuid, 'snapshot': snap, 'dataset': dataset})
            entry.update(result='repaired' if not fields else 'refreshed', repaired=snap)
        return entry, actions

    def snapshot_by_guid(self, inventory, dataset, manifest):
        """imgadm update: the snapshot whose guid is files[0].dataset_guid becomes @final."""
        snaps = sorted(n for n in inventory.datasets if n.startswith(dataset + '@'))
        if not snaps:
            raise ImageError('image "%s" is missing its original snapshot' % dataset.split('/')[-1])
        guid = (manifest.get('files') or [{}])[0].get('dataset_guid')
        if not guid:
            raise ImageError('cannot determine the original snapshot of image "%s": its manifest has no '
                             'files[0].dataset_guid' % dataset.split('/')[-1])
        for snap in snaps:
            if self.zfs.guid(snap) == str(guid):
                return snap
        raise ImageError('image "%s" is missing its original snapshot (expected a snapshot with guid %s)'
                         % (dataset.split('/')[-1], guid))

    def plan_cleanup(self):
        """Temporary cache files a killed run left: old, and of an image that no process is importing."""
        patterns = [(os.path.dirname(self.paths.image_cache(self.pool, 'x')),
                     r'\.%s-(%s)\.json' % (re.escape(self.pool), _UUID_RE) + _host.TEMP_SUFFIX_RE)]
        if self.layout == 'original':
            patterns.append((self.paths.original_db_dir, r'\.(%s)\.json' % _UUID_RE + _host.TEMP_SUFFIX_RE))
        actions = []
        for directory, pattern in patterns:
            for path, uuid in _host.stale_temp_files(directory, pattern, STALE_TEMP_SECONDS):
                if _host.lock_is_free(self.paths.import_lock_path(uuid)):
                    actions.append({'action': 'cleanup', 'uuid': uuid, 'path': path,
                                    'reason': 'temporary cache file left by an interrupted run'})
        return actions

    # ---- the run ----

    def plan(self, inventory):
        """Resolve every declared image and plan the whole run; (plan, deletes, actions by kind, entries)."""
        plan = _plan.ImagePlan()
        entries = [self.resolve(w, inventory, plan) for w in self.wanted]
        conflict = plan.present & (set(plan.deletes) | plan.absent)
        # a name declared absent that an image this run imports also bears: the next run would delete it again
        conflict |= {f.uuid for w in self.wanted if w.state == 'absent' and w.name
                     for f in plan.imports if w.matches(f.manifest)}
        if conflict:
            raise InvalidParameter('image(s) %s are declared both present and absent' % ', '.join(sorted(conflict)))
        deletes = _plan.deletion_order(inventory, self.pool, plan.deletes)
        unused = self.plan_prune(inventory, plan, deletes) if self.params.get('prune_unused') else []
        deletes = deletes + unused
        steps = dict(
            refresh=self.plan_refresh(inventory, skip=set(self.recorded) | set(deletes))
            if self.params.get('update_manifests') else [],
            records=[a for a in plan.records if a['uuid'] not in deletes],
            cleanups=self.plan_cleanup())
        return plan, deletes, unused, steps, entries

    def run(self, diff=False):
        """Plan everything, then act unless in check mode; return the module result."""
        inventory = load_inventory(self.zfs, self.runner, self.pool)
        plan, deletes, unused, steps, entries = self.plan(inventory)
        actions = _plan.ordered_actions(self.pool, plan.imports, deletes,
                                        steps['refresh'] + steps['records'] + steps['cleanups'])
        # the same warnings list: warnings found while planning the diff land in it too
        result = dict(changed=bool(actions), actions=actions, imported=[f.uuid for f in plan.imports],
                      removed=deletes, downloaded_bytes=0, seconds=0.0, warnings=self.warnings)
        if plan.imports:
            result['imported_from'] = _plan.import_sources(plan.imports)
        if unused or self.params.get('prune_unused'):
            result['unused'] = unused
        if self.params.get('update_manifests'):
            result['updates'] = self.updates
        self._shape(result, entries)
        if diff:
            result['diff'] = self.diff(inventory, plan, actions)
        if self.check_mode or not actions:
            return result
        return self.act(result, entries, plan, deletes, steps)

    def diff(self, inventory, plan, actions):
        before = {u: label(self.cached(u)) for u in inventory.images_on(self.pool)}
        labels = {f.uuid: label(f.manifest) for f in plan.imports}
        labels.update((u, label(f.manifest)) for u, f in self.refreshed.items())
        labels.update((u, label(f.manifest)) for u, f in self.recorded.items())
        return _plan.images_diff(before, actions, labels)

    def act(self, result, entries, plan, deletes, steps):
        """Run the plan; a failure part-way says what was done already."""
        started = time.monotonic()
        try:
            imported, received = self.executor.run_imports(plan.imports)
            self.executor.delete_all(deletes)
            self.executor.refresh_all(steps['refresh'] + steps['records'], dict(self.refreshed, **self.recorded))
            self.executor.clean_up(steps['cleanups'], result['warnings'])
        except ImageError as e:
            self.executor.partial_failure(e)
            raise
        _plan.note_sources(result, entries, _plan.import_sources([f for f in plan.imports if f.uuid in imported],
                                                                 self.executor.came_from))
        skipped = [f.uuid for f in plan.imports if f.uuid not in imported]
        if skipped:
            _plan.drop_skipped(result, entries, skipped)
        self._shape(result, entries)
        result.update(downloaded_bytes=received, seconds=round(time.monotonic() - started, 3))
        return result

    def _shape(self, result, entries):
        _plan.shape_result(result, entries, self.pool, self.params.get('images') is not None,
                           lambda uuid: self.known(uuid) or {'uuid': uuid})
