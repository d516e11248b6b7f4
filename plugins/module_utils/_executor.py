# Private to the smartos.images collection: not a public API.
# The smartos_image executor: runs a plan's imports, deletes, refreshes, records and cleanups on one pool.
from __future__ import annotations

import os
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from ansible_collections.smartos.images.plugins.module_utils import _host
from ansible_collections.smartos.images.plugins.module_utils._errors import DownloadError, ImageError, from_the_source
from ansible_collections.smartos.images.plugins.module_utils._importer import ImportPipeline, install
from ansible_collections.smartos.images.plugins.module_utils._inventory import cache_files

PARALLEL_IMPORTS = 3   # downloads at once; receives still wait for their origin


class ImageExecutor:
    """Acts on one pool: each step under imgadm's per-image lock where imgadm takes it; progress kept for errors."""

    def __init__(self, zfs, paths, layout, pool, lock_timeout, retries, elsewhere=None, warn=None):
        """elsewhere(found, tried sources): the same image from another source, or None (the resolver's)."""
        self.zfs, self.paths, self.layout, self.pool = zfs, paths, layout, pool
        self.lock_timeout, self.retries = lock_timeout, retries
        self.elsewhere = elsewhere or (lambda found, tried: None)
        self.warn = warn or (lambda text: None)
        self.progress = {'imported': [], 'removed': [], 'other': 0}
        self.came_from = {}   # uuid -> the Found an image was imported from (another source than planned after a failure)

    def _locked(self, uuid, wait_max=None):
        """imgadm's import lock of an image (/var/run/img.<uuid>.import.lock)."""
        return _host.hold_import_lock(self.paths.import_lock_path(uuid), self.lock_timeout if wait_max is None else wait_max)

    # ---- imports ----

    def run_imports(self, imports):
        """Run the imports, up to PARALLEL_IMPORTS at once, each after its origin; (imported uuids, bytes).

        The first error stops new imports (those running finish) and is raised once all have ended; an image
        whose origin failed is not started.
        """
        planned = {f.uuid for f in imports}
        waiting = [f for f in imports if f.manifest.get('origin') in planned]
        imported, received, errors = [], 0, []
        with ThreadPoolExecutor(max_workers=PARALLEL_IMPORTS, thread_name_prefix='import') as pool:
            running = {pool.submit(self.import_one, f): f for f in imports if f not in waiting}
            while running:
                done, dummy = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    found = running.pop(future)
                    try:
                        changed, size = future.result()
                    except BaseException as e:  # pylint: disable=broad-exception-caught  # raised below, once all ended
                        errors.append(e)
                        continue
                    received += size
                    if changed:
                        imported.append(found.uuid)
                        self.progress['imported'].append(found.uuid)
                    if not errors:
                        ready = [f for f in waiting if f.manifest.get('origin') == found.uuid]
                        waiting = [f for f in waiting if f not in ready]
                        running.update((pool.submit(self.import_one, f), f) for f in ready)
        if errors:
            raise errors[0]
        return [f.uuid for f in imports if f.uuid in imported], received

    def import_one(self, found):
        """Take imgadm's per-image lock, re-check, then stream the image in; (changed, bytes)."""
        with self._locked(found.uuid):
            # imgadm checkIfImportedAfterLock: another import may have finished while we waited
            if self.zfs.exists('%s/%s' % (self.pool, found.uuid)):
                return False, 0
            return True, self.install_from_a_source(found)

    def install_from_a_source(self, found):
        """Install the image from found's source; when what that source sends fails (from_the_source), from the next
        source that has the same image, with a warning naming the source and why. Each attempt starts from a clean
        <pool>/<uuid>-partial (install destroys what a failed one left) and nothing is renamed into place unless
        verified. All sources failing is one error listing each."""
        failures = []
        while True:
            try:
                size = install(self.zfs, ImportPipeline(self.zfs, retries=self.retries), found.client,
                               found.manifest, self.pool, self.record_for(found))
            except ImageError as e:
                if not from_the_source(e) or found.source.type == 'file':
                    raise
                failures.append((found, e))
                found = self.next_source(failures)
                continue
            self.came_from[found.uuid] = found
            return size

    def next_source(self, failures):
        """The next source to try after the failures so far ((Found, error) pairs); raise when none is left."""
        failed, error = failures[-1]
        other = self.elsewhere(failed, [f.source for f, dummy in failures])
        if other is None:
            if len(failures) == 1:
                raise error
            raise DownloadError('image %s could not be imported from any of its %d sources: %s'
                                % (failed.uuid, len(failures),
                                   '; '.join('%s: %s' % (f.source.url, e.msg) for f, e in failures)),
                                sources=[f.source.url for f, dummy in failures])
        self.warn('image %s: the import from %s failed (%s); trying the next source that has it, %s'
                  % (failed.uuid, failed.source.url, error.msg, other.source.url))
        return other

    def record_for(self, found):
        """How the host remembers an image: imgadm's cache file, or v1's manifest and property."""
        source_url = None if found.source.type == 'file' else found.source.url
        if self.layout == 'original':
            v1 = dict(found.raw, _url=source_url) if found.raw is not found.manifest and source_url else found.raw
            return _host.OriginalRecord(self.paths, v1)
        return _host.modern_record(self.paths, self.pool, found.manifest, source_url)

    # ---- deletes ----

    def delete_all(self, uuids):
        """Delete the images in the order given (children first)."""
        for uuid in uuids:
            self.delete(uuid)
            self.progress['removed'].append(uuid)

    def delete(self, uuid):
        """imgadm delete: zfs destroy -r <pool>/<uuid>, then drop the cached manifest(s)."""
        self.zfs.destroy_recursive('%s/%s' % (self.pool, uuid))
        for path in cache_files(self.paths, self.layout, self.pool, uuid):
            _host.discard(path)

    # ---- refreshes, records, repairs, cleanups ----

    def refresh_all(self, actions, found_of):
        """Write the refreshed and the missing manifests; give images their @final back. found_of: uuid -> Found."""
        for action in actions:
            uuid = action['uuid']
            if action['action'] == 'refresh':
                with self._locked(uuid):
                    self.record_for(found_of[uuid]).write()
            elif action['action'] == 'record':
                # under the image's lock, so that no other run takes our temporary file for a leftover
                with self._locked(uuid):
                    if self.cache_missing_now(uuid):
                        self.record_for(found_of[uuid]).record(self.zfs, action['dataset'])
            elif action['action'] == 'repair':
                self.zfs.rename(action['snapshot'], action['dataset'] + '@final')
            self.progress['other'] += 1

    def cache_missing_now(self, uuid):
        """Read again, under the lock: another run may have recorded the image meanwhile."""
        return not any(os.path.lexists(p) for p in cache_files(self.paths, self.layout, self.pool, uuid))

    def clean_up(self, actions, warnings):
        """Remove the leftovers, each under its image's lock (skipped, with a warning, if it is taken now)."""
        for action in actions:
            try:
                with self._locked(action['uuid'], 0):
                    _host.discard(action['path'])
            except ImageError as e:
                warnings.append('left %s in place: %s' % (action['path'], e.msg))
                continue
            self.progress['other'] += 1

    def partial_failure(self, error):
        """A run that fails part-way says what it had done already: changed, and which images."""
        done = self.progress
        if done['imported'] or done['removed'] or done['other']:
            error.evidence.update(changed=True, imported=list(done['imported']), removed=list(done['removed']))
            error.msg += ' (after %s)' % ', '.join(
                part for part in (
                    'importing %s' % ', '.join(done['imported']) if done['imported'] else '',
                    'deleting %s' % ', '.join(done['removed']) if done['removed'] else '',
                    '%d manifest write(s)' % done['other'] if done['other'] else '') if part)
