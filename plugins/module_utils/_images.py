# Private to the smartos.images collection: not a public API.
# The smartos_image worker: read the host, find the image, plan, then import or delete.
from __future__ import annotations

import time

from ansible_collections.smartos.images.plugins.module_utils import _host, _plan
from ansible_collections.smartos.images.plugins.module_utils._common import check_pool, check_server_params
from ansible_collections.smartos.images.plugins.module_utils._errors import (
    ImageError, ImageNotFound, InvalidParameter, SourceError, UnsupportedImage,
)
from ansible_collections.smartos.images.plugins.module_utils._imgapi import Source, client_for
from ansible_collections.smartos.images.plugins.module_utils._importer import ImportPipeline, install
from ansible_collections.smartos.images.plugins.module_utils._inventory import load_inventory
from ansible_collections.smartos.images.plugins.module_utils._manifest import (
    ManifestError, check_importable, is_uuid, label, upgrade_manifest,
)
from ansible_collections.smartos.images.plugins.module_utils._sources import host_sources
from ansible_collections.smartos.images.plugins.module_utils._zfs import Zfs


class ImageManager:
    """Brings one image on one pool to present or absent."""

    def __init__(self, params, runner, check_mode=False, client_factory=client_for):
        self.params = params
        self.check_mode = check_mode
        self.runner = runner
        self.zfs = Zfs(runner)
        self.paths = _host.HostPaths(params['host_root'])
        self.layout = _host.detect_layout(self.paths, params.get('layout', 'auto'))
        self.client_factory = client_factory
        self.uuid = params['uuid']
        self.pool = params['pool']
        self.dataset = '%s/%s' % (self.pool, self.uuid)
        self.sources = self._check_params()

    def _check_params(self):
        """Validate every option before any command runs; return the parsed sources."""
        if not is_uuid(self.uuid):
            raise InvalidParameter('uuid "%s" is not a lower-case UUID such as '
                                   '"01234567-89ab-cdef-0123-456789abcdef"' % self.uuid)
        check_pool(self.pool)
        check_server_params(self.params)
        if self.params.get('source') is None:
            return None  # the host's configured sources, read when an import needs them
        return [Source(url) for url in self.params['source']]

    def import_sources(self):
        """The sources to try, in order: the source option (as imgadm -S), else the host's sources."""
        if self.sources is not None:
            return self.sources, 'the source option'
        where = self.paths.sources_list if self.layout == 'original' else self.paths.config
        return [e.for_import() for e in host_sources(self.paths, self.layout)], where

    def client(self, source):
        p = self.params
        return self.client_factory(source, validate_certs=p['validate_certs'], ca_path=p['ca_path'],
                                   timeout=p['timeout'], retries=p['retries'])

    def cached_manifest(self):
        """The manifest cached for the image, or {uuid} when there is none."""
        return self._cached(self.uuid) or {'uuid': self.uuid}

    def installed_labels(self, inventory):
        """uuid -> name@version of the images on the pool, from imgadm's cache files."""
        labels = {}
        for uuid in inventory.images_on(self.pool):
            labels[uuid] = label(self._cached(uuid))
        return labels

    def _cached(self, uuid):
        """imgadm's cached manifest of an image on the pool (or v1's, upgraded); None when absent or corrupt."""
        try:
            info = _host.read_json(self.paths.image_cache(self.pool, uuid))
            if isinstance(info, dict) and isinstance(info.get('manifest'), dict):
                return info['manifest']
            if self.layout == 'original':
                v1 = _host.read_json(self.paths.original_manifest(uuid))
                return upgrade_manifest(v1) if isinstance(v1, dict) else None
        except ValueError:
            return None  # imgadm crashes on a corrupt cache file; we treat it as absent
        return None

    def find_image(self):
        """Ask each source in order for an active, importable manifest; (source, client, manifest, raw)."""
        sources, where = self.import_sources()
        if not sources:
            raise InvalidParameter('no image source to import %s from (%s has none): set source to one or '
                                   'more IMGAPI URLs, or add sources with smartos_image_source' % (self.uuid, where))
        answers = []
        inactive = []
        for source in sources:
            if source.type == 'docker':
                answers.append('%s: a docker source (imports from docker sources are not supported)' % source.url)
                continue
            try:
                client = self.client(source)
                raw = client.get_image(self.uuid)
                # imgadm upgrades every manifest a source sends (v1 DSAPI manifests become v2)
                manifest = upgrade_manifest(raw) if raw is not None else None
            except SourceError as e:
                answers.append('%s: %s' % (source.url, e.msg))
                continue
            except ManifestError as e:
                answers.append('%s: manifest is invalid: %s' % (source.url, e))
                continue
            if manifest is None:
                answers.append('%s: not found (HTTP 404)' % source.url)
                continue
            if manifest.get('type') == 'docker':
                raise UnsupportedImage('image %s from %s is a docker image; importing docker images '
                                       'is not supported yet' % (self.uuid, source.url))
            if manifest.get('state', 'active') != 'active':
                inactive.append('%s: state "%s"' % (source.url, manifest.get('state')))
                continue
            try:
                check_importable(manifest, self.uuid, source.url)
            except SourceError as e:
                answers.append(e.msg)
                continue
            return source, client, manifest, raw
        if inactive:
            raise ImageError('image "%s" is not active on any source (%s); only active images can be '
                             'imported' % (self.uuid, '; '.join(inactive + answers)))
        raise ImageNotFound('an active image "%s" was not found in image sources: %s; add a source '
                            'that has it, or check the UUID' % (self.uuid, '; '.join(answers)),
                            sources=[s.url for s in sources])

    def run(self, diff=False):
        """Plan, then act (unless in check mode); return the module result."""
        state = self.params['state']
        inventory = load_inventory(self.zfs, self.runner, self.pool)
        actions = _plan.plan_image(state, self.pool, self.uuid, inventory)
        result = dict(changed=bool(actions), uuid=self.uuid, dataset=self.dataset, actions=actions,
                      downloaded_bytes=0, seconds=0.0)
        found = None
        if actions and actions[0]['action'] == 'import':
            found = self.find_image()
            manifest = found[2]
            result['source'] = found[0].url
        else:
            manifest = self.cached_manifest()
        result['image'] = manifest
        if diff:
            before = self.installed_labels(inventory)
            result['diff'] = dict(before=dict(images=before), after=dict(
                images=_plan.diff_after(before, actions, {self.uuid: label(manifest)})))
        if self.check_mode or not actions:
            return result
        started = time.monotonic()
        if actions[0]['action'] == 'import':
            changed, received = self._import(*found)
            result.update(changed=changed, downloaded_bytes=received)
            if not changed:
                result['actions'] = []
                result['msg'] = 'image %s was imported by another process while waiting for its lock' % self.uuid
        else:
            self._delete()
        result['seconds'] = round(time.monotonic() - started, 3)
        return result

    def record_for(self, source, manifest, raw):
        """How the host remembers the import: imgadm's cache file, or v1's manifest and property."""
        if self.layout == 'original':
            v1 = dict(raw, _url=source.url) if raw is not manifest else manifest
            return _host.OriginalRecord(self.paths, v1)
        return _host.modern_record(self.paths, self.pool, manifest, source.url)

    def _import(self, source, client, manifest, raw):
        """Take imgadm's per-image lock, re-check, then stream the image in; (changed, bytes)."""
        with _host.import_lock(self.paths.import_lock(self.uuid)):
            # imgadm checkIfImportedAfterLock: another import may have finished while we waited
            if load_inventory(self.zfs, self.runner, self.pool).is_image(self.pool, self.uuid):
                return False, 0
            pipeline = ImportPipeline(self.zfs, retries=self.params['retries'])
            received = install(self.zfs, pipeline, client, manifest, self.pool,
                               self.record_for(source, manifest, raw))
            return True, received

    def _delete(self):
        """imgadm delete: zfs destroy -r <pool>/<uuid>, then drop the cached manifest(s)."""
        self.zfs.destroy_recursive(self.dataset)
        _host.discard(self.paths.image_cache(self.pool, self.uuid))
        if self.layout == 'original':
            _host.discard(self.paths.original_manifest(self.uuid))
