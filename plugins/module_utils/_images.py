# Private to the smartos.images collection: not a public API.
# The smartos_image worker: read the host once, resolve what the task declares, plan, then act.
from __future__ import annotations

import json
import os
import re
import threading
import time

from ansible_collections.smartos.images.plugins.module_utils import _host, _plan
from ansible_collections.smartos.images.plugins.module_utils._common import check_pool, check_server_params
from ansible_collections.smartos.images.plugins.module_utils._errors import (
    ImageError, ImageNotFound, InvalidParameter, SourceError, UnsupportedImage,
)
from ansible_collections.smartos.images.plugins.module_utils._filters import check_filters, matches
from ansible_collections.smartos.images.plugins.module_utils._imgapi import Source, client_for
from ansible_collections.smartos.images.plugins.module_utils._importer import ImportPipeline, install
from ansible_collections.smartos.images.plugins.module_utils._inventory import load_inventory
from ansible_collections.smartos.images.plugins.module_utils._local import (
    LocalClient, load_local_manifest, verify_local_file,
)
from ansible_collections.smartos.images.plugins.module_utils._manifest import (
    ManifestError, check_importable, is_active, is_uuid, label, upgrade_manifest,
)
from ansible_collections.smartos.images.plugins.module_utils._platform import check_platform, read_sysinfo
from ansible_collections.smartos.images.plugins.module_utils._sources import host_sources
from ansible_collections.smartos.images.plugins.module_utils._zfs import Zfs

PARALLEL_IMPORTS = 3   # downloads at once; receives still wait for their origin
MAX_CHAIN = 64         # origins followed from one image before giving up
CACHE_FILE_MAX = 16 << 20   # bytes: a cache file larger than this was not written by imgadm or by us
STALE_TEMP_SECONDS = 60   # a temporary cache file this old, whose image nobody is importing, was left by a kill
_UUID_RE = r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'


class Wanted:
    """One image the task declares: by UUID, by name (and version), or from local files."""

    def __init__(self, item, default_state):
        self.uuid = item.get('uuid')
        self.name = item.get('name')
        self.version = _version_text(item.get('version'))
        self.filters = check_filters(item.get('filters') or {})
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
                and matches(manifest, self.filters))


class Found:
    """An image located for import: where it comes from and what it is."""

    def __init__(self, source, client, manifest, raw):
        self.source, self.client, self.manifest, self.raw = source, client, manifest, raw
        self.uuid = manifest['uuid']


class ImageManager:
    """Brings the images a task declares to present or absent on one pool, and prunes or refreshes."""

    def __init__(self, params, runner, check_mode=False, client_factory=client_for):
        self.params = params
        self.check_mode = check_mode
        self.runner = runner
        self.zfs = Zfs(runner)
        self.paths = _host.HostPaths(params['host_root'])
        self.layout = _host.detect_layout(self.paths, params.get('layout', 'auto'))
        self.client_factory = client_factory
        self.pool = params['pool']
        check_pool(self.pool)
        check_server_params(params)
        self.sources = [Source(url) for url in params['source']] if params.get('source') is not None else None
        self.wanted = self._wanted()
        for k in params.get('keep') or []:
            # taken for a name, these would match nothing, and prune_unused would delete what they were meant to keep
            if not is_uuid(k) and is_uuid(k.lower()):
                raise InvalidParameter('keep entry "%s" is not a lower-case UUID: write it as "%s"' % (k, k.lower()))
            if k.strip()[:1] in ('{', '[') or not k.strip():
                raise InvalidParameter('keep entry %s is not a UUID, name or name@version (a dict or list given as '
                                       'an entry is made text by Ansible): give each entry as a plain string' % _short(k))
        self.keep = [Wanted({'uuid': k} if is_uuid(k) else _name_ref(k), 'present') for k in params.get('keep') or []]
        if not self.wanted and not params.get('prune_unused') and not params.get('update_manifests'):
            raise InvalidParameter('nothing to do: name an image (uuid, name, manifest and file, or a non-empty '
                                   'images list), or set prune_unused or update_manifests')
        self.lock_timeout = params.get('lock_timeout', _host.LOCK_WAIT_MAX)
        if isinstance(self.lock_timeout, bool) or not isinstance(self.lock_timeout, int) or self.lock_timeout < 0:
            raise InvalidParameter('lock_timeout must be 0 or more seconds, not %r' % (self.lock_timeout,))
        self.cache = {}
        self.refreshed = {}
        self.recorded = {}
        self.sysinfo = False
        self.warnings = []
        self._warned = set()
        self.progress = {'imported': [], 'removed': [], 'other': 0}

    def _wanted(self):
        """The declared images, validated before any command runs."""
        p = self.params
        if p.get('images') is not None:
            wanted = [Wanted(item, p['state']) for item in p['images']]
            both = ({w.uuid for w in wanted if w.uuid and w.state == 'present'}
                    & {w.uuid for w in wanted if w.uuid and w.state == 'absent'})
            if both:
                raise InvalidParameter('image(s) %s are declared both present and absent' % ', '.join(sorted(both)))
            return wanted
        if p.get('uuid') or p.get('name') or p.get('manifest'):
            return [Wanted({k: p.get(k) for k in ('uuid', 'name', 'version', 'filters', 'manifest', 'file')},
                           p['state'])]
        return []

    # ---- reading ----

    def client(self, source):
        p = self.params
        return self.client_factory(source, validate_certs=p['validate_certs'], ca_path=p['ca_path'],
                                   timeout=p['timeout'], retries=p['retries'])

    def import_sources(self):
        """The sources to try, in order: the source option (as imgadm -S), else the host's sources."""
        if self.sources is not None:
            return self.sources, 'the source option'
        where = self.paths.sources_list if self.layout == 'original' else self.paths.config
        return [e.for_import() for e in host_sources(self.paths, self.layout)], where

    def usable_sources(self, what):
        sources, where = self.import_sources()
        if not sources:
            raise InvalidParameter('no image source to import %s from (%s has none): set source to one or more '
                                   'IMGAPI URLs, or add sources with smartos_image_source' % (what, where))
        return sources

    def warn(self, text, key=None):
        """A warning for the task result, once."""
        key = key or text
        if key not in self._warned:
            self._warned.add(key)
            self.warnings.append(text)

    def cached(self, uuid):
        """imgadm's cached manifest of an image on the pool (or v1's, upgraded); None when absent or unusable.

        A cache file that cannot be read, or that holds another image's manifest or fields of the wrong type,
        is never used (not to match a name, not as the image's manifest): it is reported as a warning.
        """
        if uuid not in self.cache:
            self.cache[uuid] = self._read_cache(uuid)
        return self.cache[uuid][0]

    def cache_missing(self, uuid):
        """True when the image has no cache file at all (not even a bad one)."""
        self.cached(uuid)
        return self.cache[uuid][1] == 'missing'

    def known(self, uuid):
        """The manifest an installed image is known by: its cached one, or the one this run records."""
        manifest = self.cached(uuid)
        if manifest is None and uuid in self.recorded:
            manifest = self.recorded[uuid].manifest
        return manifest

    def _read_cache(self, uuid):
        """(manifest or None, 'ok' | 'missing' | 'bad')."""
        path = self.paths.image_cache(self.pool, uuid)
        try:
            info = _host.read_json(path, CACHE_FILE_MAX)
            if info is None and self.layout == 'original':
                path = self.paths.original_manifest(uuid)
                v1 = _host.read_json(path, CACHE_FILE_MAX)
                info = None if v1 is None else {'manifest': upgrade_manifest(v1)}
        except (ValueError, TypeError, ImageError) as e:  # ManifestError is a ValueError
            # imgadm crashes on a corrupt cache file; we leave it alone and say so
            self._bad_cache(uuid, path, 'cannot be read (%s)' % (getattr(e, 'msg', None) or e))
            return None, 'bad'
        if info is None:
            return None, 'missing'
        problem = cache_problem(info, uuid, self.pool if path.endswith('%s-%s.json' % (self.pool, uuid)) else None)
        if problem:
            self._bad_cache(uuid, path, problem)
            return None, 'bad'
        return info['manifest'], 'ok'

    def _bad_cache(self, uuid, path, problem):
        self.warn('image %s on pool %s: its cached manifest %s %s; it is not used, neither to match names nor as '
                  'the image\'s manifest (update_manifests rewrites it from the sources)'
                  % (uuid, self.pool, path, problem), key=('cache', uuid))

    def installed_by_name(self, inventory, wanted):
        """Installed images on the pool that a name (and version) reference matches, newest first."""
        found = [(self.known(u), u) for u in inventory.images_on(self.pool)]
        hits = [(m.get('published_at') or '', u) for m, u in found if m and wanted.matches(m)]
        return [u for dummy, u in sorted(hits, reverse=True)]

    def get_manifest(self, uuid, ensure_active=True, prefer=None):
        """Find an image by UUID in the sources (prefer one first); a Found."""
        sources = self.usable_sources(uuid)
        if prefer is not None:
            sources = [prefer] + [s for s in sources if s is not prefer]
        answers, inactive, invalid = [], [], []
        for source in sources:
            if source.type == 'docker':
                answers.append('%s: a docker source (imports from docker sources are not supported)' % source.url)
                continue
            try:
                client = self.client(source)
                raw = client.get_image(uuid)
                # imgadm upgrades every manifest a source sends (v1 DSAPI manifests become v2)
                manifest = upgrade_manifest(raw) if raw is not None else None
            except SourceError as e:
                answers.append('%s: %s' % (source.url, e.msg))
                continue
            except ManifestError as e:
                invalid.append('%s: manifest is invalid: %s' % (source.url, e))
                continue
            if manifest is None:
                answers.append('%s: not found (HTTP 404)' % source.url)
                continue
            if manifest.get('type') == 'docker':
                raise UnsupportedImage('image %s from %s is a docker image; importing docker images '
                                       'is not supported yet' % (uuid, source.url))
            if ensure_active and not is_active(manifest):
                # imgadm imports only state "active": a manifest without a state is not (reference 3.2)
                state = manifest.get('state')
                inactive.append('%s: %s' % (source.url, 'state "%s"' % state[:40] if isinstance(state, str)
                                            else 'no "state" in its manifest'))
                continue
            try:
                check_importable(manifest, uuid, source.url)
            except SourceError as e:
                invalid.append(e.msg)
                continue
            return Found(source, client, manifest, raw)
        if invalid:
            # a source has the image but sent a manifest we cannot trust: say which field, not "not found"
            raise SourceError('image "%s" is refused: %s%s' % (uuid, '; '.join(invalid),
                                                               ''.join('; ' + a for a in inactive + answers)),
                              sources=[s.url for s in sources])
        if inactive:
            raise ImageError('an active image "%s" was not found in image sources (%s); only active images can be '
                             'imported' % (uuid, '; '.join(inactive + answers)))
        raise ImageNotFound('an active image "%s" was not found in image sources: %s; add a source '
                            'that has it, or check the UUID' % (uuid, '; '.join(answers)),
                            sources=[s.url for s in sources])

    def newest_by_name(self, wanted):
        """The newest active image of a name (and version) across the sources: its UUID."""
        sources = self.usable_sources(str(wanted))
        query = {'name': wanted.name}
        if wanted.version:
            query['version'] = wanted.version
        for key in ('os', 'type'):
            if isinstance(wanted.filters.get(key), str) and not wanted.filters[key].startswith('~'):
                query[key] = wanted.filters[key]
        best, answers = None, []
        for source in sources:
            if source.type == 'docker':
                continue
            try:
                raw = self.client(source).list_raw(query)
            except SourceError as e:
                answers.append('%s: %s' % (source.url, e.msg))
                continue
            listed = self.listing(source, raw)
            hits = [m for m in listed if is_active(m) and wanted.matches(m)]
            answers.append('%s: %d match(es)' % (source.url, len(hits)))
            for m in hits:
                if best is None or (m.get('published_at') or '') > (best.get('published_at') or ''):
                    best = m
        if best is None:
            raise ImageNotFound('no active image named "%s"%s%s was found in image sources: %s'
                                % (wanted.name, ' version "%s"' % wanted.version if wanted.version else '',
                                   ' matching %s' % json.dumps(wanted.filters, sort_keys=True) if wanted.filters else '',
                                   '; '.join(answers)), sources=[s.url for s in sources])
        return best['uuid']

    def listing(self, source, raw):
        """The usable entries of a source's listing, upgraded; each bad one skipped with a warning."""
        listed, bad = [], []
        for index, entry in enumerate(raw if isinstance(raw, list) else []):
            try:
                manifest = upgrade_manifest(entry)
            except ManifestError as e:
                bad.append('entry %d: %s' % (index, e))
                continue
            problem = listing_problem(manifest)
            if problem:
                bad.append('entry %d%s: %s' % (index, _uuid_note(manifest), problem))
                continue
            listed.append(manifest)
        if bad:
            self.warn('%s: skipped %d bad image(s) in its listing: %s%s'
                      % (source.url, len(bad), '; '.join(bad[:5]), '; ...' if len(bad) > 5 else ''))
        return listed

    def chain(self, found, inventory, planned):
        """The images to import for found, base first: its missing ancestors, then itself."""
        chain = [found]
        while chain[-1].manifest.get('origin'):
            origin = chain[-1].manifest['origin']
            if inventory.is_image(self.pool, origin) or origin in planned:
                break
            seen = [link.uuid for link in chain]
            if origin in seen:
                loop = seen[seen.index(origin):] + [origin]
                raise ImageError('the origin chain of image %s is a cycle: %s' % (found.uuid, ' -> '.join(loop)),
                                 cycle=loop)
            if len(chain) >= MAX_CHAIN:
                raise ImageError('the origin chain of image %s is longer than %d images' % (found.uuid, MAX_CHAIN))
            try:
                # imgadm getImgAncestry: origins may be inactive, and the child's source is asked first
                chain.append(self.get_manifest(origin, ensure_active=False, prefer=chain[-1].source))
            except ImageNotFound as e:
                raise ImageNotFound('origin %s of image %s is not installed and no source has it (%s)'
                                    % (origin, chain[-1].uuid, e.msg))
        return list(reversed(chain))

    def check_platform(self, manifest):
        if self.sysinfo is False:
            self.sysinfo = read_sysinfo(self.runner)
        check_platform(manifest, self.sysinfo)

    # ---- planning ----

    def resolve(self, wanted, inventory, plan):
        """Add what one declared image needs to the plan; return its entry for the results."""
        entry = {'state': wanted.state, 'changed': False}
        if wanted.state == 'absent':
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
        if wanted.manifest_path:
            manifest = load_local_manifest(wanted.manifest_path)
            uuid = manifest['uuid']
            entry.update(uuid=uuid, image=manifest)
            if inventory.is_image(self.pool, uuid) and self.cache_missing(uuid):
                # installed by a run killed before its commit: the local manifest is the one to record
                local = LocalClient(wanted.file_path)
                self.recorded[uuid] = Found(local.source, local, manifest, manifest)
                plan.records.append(_record_action(self.pool, uuid, local.source.url))
                entry.update(changed=True, recorded=True)
            if not inventory.is_image(self.pool, uuid):
                _plan.check_is_image(self.pool, uuid, inventory, 'present')
                origin = manifest.get('origin')
                if origin and not inventory.is_image(self.pool, origin) and origin not in plan.import_uuids():
                    raise ImageError('image %s needs its origin image %s on pool %s, and it is not installed: import '
                                     'it first (smartos_image uuid: %s)' % (uuid, origin, self.pool, origin),
                                     origin=origin)
                verify_local_file(wanted.file_path, manifest)
                self.check_platform(manifest)
                plan.add_imports([Found(LocalClient(wanted.file_path).source, LocalClient(wanted.file_path),
                                        manifest, manifest)])
                entry.update(changed=True, imported=[uuid])
            plan.present.add(uuid)
            return entry
        if wanted.name and wanted.version:
            installed = self.installed_by_name(inventory, wanted)
            uuid = installed[0] if installed else self.newest_by_name(wanted)
        elif wanted.name:
            uuid = self.newest_by_name(wanted)  # "newest" is asked again on every run
        else:
            uuid = wanted.uuid
        entry['uuid'] = uuid
        plan.present.add(uuid)
        _plan.check_is_image(self.pool, uuid, inventory, 'present')
        if inventory.is_image(self.pool, uuid) and uuid not in self.recorded and self.cache_missing(uuid):
            self.plan_record(uuid, plan)
        if inventory.is_image(self.pool, uuid) or uuid in plan.import_uuids():
            entry['image'] = self.known(uuid) or plan.manifest_of(uuid) or {'uuid': uuid}
            if uuid in self.recorded:
                entry.update(changed=True, recorded=True)
            return entry
        _plan.check_partial(inventory, self.pool, uuid)
        found = self.get_manifest(uuid)
        chain = self.chain(found, inventory, plan.import_uuids())
        for link in chain:
            self.check_platform(link.manifest)
        plan.add_imports(chain)
        for link in chain:
            _plan.check_partial(inventory, self.pool, link.uuid)
        entry.update(changed=True, image=found.manifest, source=found.source.url,
                     imported=[link.uuid for link in chain])
        return entry

    def plan_record(self, uuid, plan):
        """An installed image without a cache file (an import killed between its rename and its commit):
        record its manifest from the sources, or warn when none has it."""
        try:
            found = self.get_manifest(uuid, ensure_active=False)
        except ImageError as e:
            self.warn('image %s on pool %s is installed but has no cached manifest, and it cannot be recorded: %s'
                      % (uuid, self.pool, e.msg), key=('record', uuid))
            return
        self.recorded[uuid] = found
        plan.records.append(_record_action(self.pool, uuid, found.source.url))

    def run(self, diff=False):
        """Plan everything, then act unless in check mode; return the module result."""
        inventory = load_inventory(self.zfs, self.runner, self.pool)
        plan = Plan()
        entries = [self.resolve(w, inventory, plan) for w in self.wanted]
        conflict = plan.present & (set(plan.deletes) | plan.absent)
        # a name declared absent that an image this run imports also bears: the next run would delete it again
        conflict |= {f.uuid for w in self.wanted if w.state == 'absent' and w.name
                     for f in plan.imports if w.matches(f.manifest)}
        if conflict:
            raise InvalidParameter('image(s) %s are declared both present and absent' % ', '.join(sorted(conflict)))
        deletes = _plan.deletion_order(inventory, self.pool, plan.deletes)
        removed_unused = []
        warnings = self.warnings   # the same list: warnings found while planning the diff land in it too
        if self.params.get('prune_unused'):
            kept = {str(k): self._keep_uuids(k, inventory) for k in self.keep}
            # a misspelt keep entry protects nothing: say so rather than prune in silence
            warnings.extend('keep entry "%s" matches no image on pool %s' % (k, self.pool) for k, u in kept.items() if not u)
            keep = set(plan.present) | {u for uuids in kept.values() for u in uuids}
            if any(not k.uuid for k in self.keep):
                # a keep entry by name cannot be checked against an image whose manifest is unknown: spare it
                unknown = [u for u in inventory.images_on(self.pool) if u not in keep and self.known(u) is None]
                warnings.extend('image %s on pool %s is not pruned: it has no usable cached manifest, so the keep '
                                'entries by name cannot be checked against it' % (u, self.pool) for u in unknown)
                keep.update(unknown)
            removed_unused = _plan.unused_images(inventory, self.pool, keep, going=deletes)
            deletes = deletes + removed_unused
        refresh = self.plan_refresh(inventory, skip=set(self.recorded) | set(deletes)) \
            if self.params.get('update_manifests') else []
        records = [a for a in plan.records if a['uuid'] not in deletes]
        cleanups = self.plan_cleanup()
        actions = ([{'action': 'import', 'uuid': f.uuid, 'dataset': '%s/%s' % (self.pool, f.uuid)} for f in plan.imports]
                   + [{'action': 'delete', 'uuid': u, 'dataset': '%s/%s' % (self.pool, u)} for u in deletes]
                   + refresh + records + cleanups)
        result = dict(changed=bool(actions), actions=actions, imported=[f.uuid for f in plan.imports],
                      removed=deletes, downloaded_bytes=0, seconds=0.0, warnings=warnings)
        if removed_unused or self.params.get('prune_unused'):
            result['unused'] = removed_unused
        self._shape(result, entries)
        if diff:
            before = {u: label(self.cached(u)) for u in inventory.images_on(self.pool)}
            labels = {f.uuid: label(f.manifest) for f in plan.imports}
            labels.update((u, label(f.manifest)) for u, f in self.refreshed.items())
            labels.update((u, label(f.manifest)) for u, f in self.recorded.items())
            result['diff'] = dict(before=dict(images=before),
                                  after=dict(images=_plan.diff_after(before, actions, labels)))
        if self.check_mode or not actions:
            return result
        started = time.monotonic()
        try:
            imported, received = self.execute_imports(plan.imports)
            for uuid in deletes:
                self.delete(uuid)
                self.progress['removed'].append(uuid)
            self.execute_refresh(refresh + records)
            self.execute_cleanup(cleanups, result['warnings'])
        except ImageError as e:
            self._partial_failure(e)
            raise
        skipped = [f.uuid for f in plan.imports if f.uuid not in imported]
        if skipped:
            # imgadm checkIfImportedAfterLock: another process imported them while we waited
            result['actions'] = [a for a in actions if not (a['action'] == 'import' and a['uuid'] in skipped)]
            result['imported'] = [u for u in result['imported'] if u not in skipped]
            result['changed'] = bool(result['actions'])
            result['msg'] = ('image(s) %s were imported by another process while waiting for the import lock'
                             % ', '.join(skipped))
            for entry in entries:
                if entry.get('imported'):
                    entry['imported'] = [u for u in entry['imported'] if u not in skipped]
                    entry['changed'] = bool(entry['imported'])
            self._shape(result, entries)
        result.update(downloaded_bytes=received, seconds=round(time.monotonic() - started, 3))
        return result

    def _partial_failure(self, error):
        """A run that fails part-way says what it had done already: changed, and which images."""
        done = self.progress
        if done['imported'] or done['removed'] or done['other']:
            error.evidence.update(changed=True, imported=list(done['imported']), removed=list(done['removed']))
            error.msg += ' (after %s)' % ', '.join(
                part for part in (
                    'importing %s' % ', '.join(done['imported']) if done['imported'] else '',
                    'deleting %s' % ', '.join(done['removed']) if done['removed'] else '',
                    '%d manifest write(s)' % done['other'] if done['other'] else '') if part)

    def _shape(self, result, entries):
        """One declared image: its fields at the top level (as before); several: a results list."""
        if self.params.get('images') is not None:
            result['results'] = entries
        elif len(entries) == 1:
            entry = entries[0]
            uuid = entry.get('uuid') or (entry.get('uuids') or [None])[0]
            if uuid:
                result.update(uuid=uuid, dataset='%s/%s' % (self.pool, uuid),
                              image=entry.get('image') or self.known(uuid) or {'uuid': uuid})
            if entry.get('source'):
                result['source'] = entry['source']

    def _keep_uuids(self, wanted, inventory):
        if wanted.uuid:
            return [wanted.uuid]
        return self.installed_by_name(inventory, wanted)

    # ---- refresh (imgadm update) ----

    def plan_refresh(self, inventory, skip=()):
        """Manifests to back-fill or refresh from the sources, and @final snapshots to repair."""
        actions = []
        for uuid in inventory.images_on(self.pool):
            if uuid in skip:
                continue
            try:
                found = self.get_manifest(uuid, ensure_active=False)
            except (ImageNotFound, UnsupportedImage):
                continue  # imgadm: "Could not find image in image sources (skipping)"
            except SourceError as e:
                # a source sent a manifest for it that we refuse: keep what the host has, and say why
                self.warn('image %s on pool %s is not refreshed: %s' % (uuid, self.pool, e.msg))
                continue
            cached = self.cached(uuid)
            fields = sorted(k for k in set(found.manifest) | set(cached or {})
                            if (cached or {}).get(k) != found.manifest.get(k))
            if fields:
                self.refreshed[uuid] = found
                actions.append({'action': 'refresh', 'uuid': uuid, 'fields': fields})
            dataset = '%s/%s' % (self.pool, uuid)
            if '%s@final' % dataset not in inventory.datasets:
                snap = self.snapshot_by_guid(inventory, dataset, found.manifest)
                actions.append({'action': 'repair', 'uuid': uuid, 'snapshot': snap, 'dataset': dataset})
        return actions

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

    def execute_refresh(self, actions):
        """Write the refreshed and the missing manifests; give images their @final back."""
        for action in actions:
            uuid = action['uuid']
            if action['action'] == 'refresh':
                with _host.import_lock(self.paths.import_lock(uuid), self.lock_timeout):
                    self.record_for(self.refreshed[uuid]).write()
            elif action['action'] == 'record':
                # under the image's lock, so that no other run takes our temporary file for a leftover
                with _host.import_lock(self.paths.import_lock(uuid), self.lock_timeout):
                    if self.cache_missing_now(uuid):
                        self.record_for(self.recorded[uuid]).record(self.zfs, action['dataset'])
            elif action['action'] == 'repair':
                self.zfs.rename(action['snapshot'], action['dataset'] + '@final')
            self.progress['other'] += 1

    def cache_missing_now(self, uuid):
        """Read again, under the lock: another run may have recorded the image meanwhile."""
        paths = [self.paths.image_cache(self.pool, uuid)]
        if self.layout == 'original':
            paths.append(self.paths.original_manifest(uuid))
        return not any(os.path.lexists(p) for p in paths)

    # ---- leftovers of killed runs ----

    def plan_cleanup(self):
        """Temporary cache files a killed run left: old, and of an image that no process is importing."""
        patterns = [(os.path.dirname(self.paths.image_cache(self.pool, 'x')),
                     r'\.%s-(%s)\.json' % (re.escape(self.pool), _UUID_RE) + _host.TEMP_SUFFIX_RE)]
        if self.layout == 'original':
            patterns.append((self.paths.original_db_dir, r'\.(%s)\.json' % _UUID_RE + _host.TEMP_SUFFIX_RE))
        actions = []
        for directory, pattern in patterns:
            for path, uuid in _host.stale_temp_files(directory, pattern, STALE_TEMP_SECONDS):
                if _host.lock_is_free(self.paths.import_lock(uuid)):
                    actions.append({'action': 'cleanup', 'uuid': uuid, 'path': path,
                                    'reason': 'temporary cache file left by an interrupted run'})
        return actions

    def execute_cleanup(self, actions, warnings):
        """Remove the leftovers, each under its image's lock (skipped, with a warning, if it is taken now)."""
        for action in actions:
            try:
                with _host.import_lock(self.paths.import_lock(action['uuid']), 0):
                    _host.discard(action['path'])
            except ImageError as e:
                warnings.append('left %s in place: %s' % (action['path'], e.msg))
                continue
            self.progress['other'] += 1

    # ---- acting ----

    def record_for(self, found):
        """How the host remembers an image: imgadm's cache file, or v1's manifest and property."""
        source_url = None if found.source.type == 'file' else found.source.url
        if self.layout == 'original':
            v1 = dict(found.raw, _url=source_url) if found.raw is not found.manifest and source_url else found.raw
            return _host.OriginalRecord(self.paths, v1)
        return _host.modern_record(self.paths, self.pool, found.manifest, source_url)

    def execute_imports(self, imports):
        """Run the imports, up to PARALLEL_IMPORTS at once, each after its origin; (imported uuids, bytes)."""
        done, errors, imported, totals = {}, [], [], [0]
        lock = threading.Lock()
        events = {f.uuid: threading.Event() for f in imports}
        slots = threading.Semaphore(PARALLEL_IMPORTS)

        def work(found):
            origin = found.manifest.get('origin')
            try:
                if origin in events:
                    events[origin].wait()
                    if not done.get(origin):
                        return  # the origin failed: its error is reported
                with slots:
                    if errors:
                        return
                    changed, received = self.import_one(found)
                with lock:
                    totals[0] += received
                    if changed:
                        imported.append(found.uuid)
                        self.progress['imported'].append(found.uuid)
                done[found.uuid] = True
            except BaseException as e:  # pylint: disable=broad-exception-caught  # re-raised in the main thread
                with lock:
                    errors.append(e)
            finally:
                events[found.uuid].set()

        threads = [threading.Thread(target=work, args=(f,), name='import-' + f.uuid[:8]) for f in imports]
        for t in threads:
            t.daemon = True
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return [f.uuid for f in imports if f.uuid in imported], totals[0]

    def import_one(self, found):
        """Take imgadm's per-image lock, re-check, then stream the image in; (changed, bytes)."""
        with _host.import_lock(self.paths.import_lock(found.uuid), self.lock_timeout):
            # imgadm checkIfImportedAfterLock: another import may have finished while we waited
            if self.zfs.exists('%s/%s' % (self.pool, found.uuid)):
                return False, 0
            pipeline = ImportPipeline(self.zfs, retries=self.params['retries'])
            return True, install(self.zfs, pipeline, found.client, found.manifest, self.pool, self.record_for(found))

    def delete(self, uuid):
        """imgadm delete: zfs destroy -r <pool>/<uuid>, then drop the cached manifest(s)."""
        self.zfs.destroy_recursive('%s/%s' % (self.pool, uuid))
        _host.discard(self.paths.image_cache(self.pool, uuid))
        if self.layout == 'original':
            _host.discard(self.paths.original_manifest(uuid))


class Plan:
    """What the task will do, built while resolving the declared images."""

    def __init__(self):
        self.imports = []
        self.records = []
        self.deletes = []
        self.present = set()
        self.absent = set()

    def import_uuids(self):
        return {f.uuid for f in self.imports}

    def add_imports(self, chain):
        for found in chain:
            if found.uuid not in self.import_uuids():
                self.imports.append(found)

    def manifest_of(self, uuid):
        return next((f.manifest for f in self.imports if f.uuid == uuid), None)


def _record_action(pool, uuid, source_url):
    return {'action': 'record', 'uuid': uuid, 'dataset': '%s/%s' % (pool, uuid), 'source': source_url,
            'reason': 'installed without a cached manifest (an import was interrupted before recording it)'}


def _short(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + '...'


def _uuid_note(manifest):
    uuid = manifest.get('uuid') if isinstance(manifest, dict) else None
    return ' (%s)' % uuid if is_uuid(uuid) else ''


def _field_problems(manifest, fields):
    """The fields of a manifest that are present with a value of the wrong type."""
    return ['its %s is %s, not a string' % (k, _short(manifest[k])) for k in fields
            if manifest.get(k) is not None and not isinstance(manifest[k], str)]


def cache_problem(info, uuid, pool=None):
    """Why a cache file's content cannot be trusted as the manifest of image uuid (None when it can)."""
    if not isinstance(info, dict):
        return 'is not a JSON object'
    manifest = info.get('manifest')
    if not isinstance(manifest, dict):
        return 'has no manifest object'
    if manifest.get('uuid') != uuid:
        return 'holds the manifest of another image (uuid %s)' % _short(manifest.get('uuid'))
    if pool is not None and info.get('zpool') is not None and info.get('zpool') != pool:
        return 'is for pool %s' % _short(info.get('zpool'))
    problems = _field_problems(manifest, ('name', 'version', 'published_at', 'state', 'type', 'os'))
    return '; '.join(problems) or None


def listing_problem(manifest):
    """Why an (upgraded) entry of a listing cannot be used (None when it can)."""
    if not is_uuid(manifest.get('uuid')):
        return 'its uuid is %s, not a UUID' % _short(manifest.get('uuid'))
    if not isinstance(manifest.get('name'), str):
        return 'its name is %s, not a string' % _short(manifest.get('name'))
    return '; '.join(_field_problems(manifest, ('version', 'published_at', 'state', 'type', 'os'))) or None


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
    raise InvalidParameter('version must be a string, not %s' % _short(value))


def _name_ref(text):
    """'name' or 'name@version' as a reference."""
    name, dummy, version = text.partition('@')
    return {'name': name, 'version': version or None}
