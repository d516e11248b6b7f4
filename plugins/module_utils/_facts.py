# Private to the smartos.images collection: not a public API.
# The smartos_image_facts worker: installed images, the host's sources, what the sources offer.
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ansible_collections.smartos.images.plugins.module_utils import _host
from ansible_collections.smartos.images.plugins.module_utils._common import check_pool, check_server_params
from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, InvalidParameter, SourceError
from ansible_collections.smartos.images.plugins.module_utils._filters import (
    INSTALLED, check_filters, matches, newest_per_name, row,
)
from ansible_collections.smartos.images.plugins.module_utils._imgapi import client_from_params, redact
from ansible_collections.smartos.images.plugins.module_utils._inventory import CachedManifests, load_inventory
from ansible_collections.smartos.images.plugins.module_utils._manifest import (
    ManifestError, is_uuid, json_type, upgrade_manifest,
)
from ansible_collections.smartos.images.plugins.module_utils._resolver import listed_as_asked
from ansible_collections.smartos.images.plugins.module_utils._sources import source_store
from ansible_collections.smartos.images.plugins.module_utils._zfs import Zfs

SUBSETS = ('installed', 'sources', 'available')
DEFAULT_SUBSETS = ('installed', 'sources')
PARALLEL_SOURCES = 4


def subsets(requested):
    """The subsets to gather: names, 'all', and '!name' to leave one out (of the defaults when only '!')."""
    requested = requested or list(DEFAULT_SUBSETS)
    chosen = set(DEFAULT_SUBSETS) if all(item.startswith('!') for item in requested) else set()
    for item in requested:
        name = item[1:] if item.startswith('!') else item
        if name != 'all' and name not in SUBSETS:
            raise InvalidParameter('unknown gather_subset "%s": use %s, all, or !name'
                                   % (item, ', '.join(SUBSETS)))
        names = set(SUBSETS if name == 'all' else (name,))
        chosen = chosen - names if item.startswith('!') else chosen | names
    return chosen


def listing(listed):
    """(manifests, problems): the usable entries of a source's list, upgraded; why each other one was skipped.

    A list is outside data: an entry that is not a manifest, cannot be upgraded, or whose uuid, name or
    published_at has the wrong type is skipped (and named), never used and never a Python error.
    """
    manifests, bad = [], []
    for i, raw in enumerate(listed):
        try:
            if not isinstance(raw, dict):
                raise ManifestError('a JSON %s, not a manifest' % json_type(raw))
            m = upgrade_manifest(raw)
        except ManifestError as e:
            bad.append('entry %d: %s' % (i, e))
            continue
        if not is_uuid(m.get('uuid')):
            bad.append('entry %d: "uuid" is not a lower-case UUID' % i)
            continue
        wrong = [k for k in ('name', 'published_at') if m.get(k) is not None and not isinstance(m[k], str)]
        if wrong:
            bad.append('image %s: "%s" is a JSON %s, not a string' % (m['uuid'], wrong[0], json_type(m[wrong[0]])))
            continue
        manifests.append(m)
    return manifests, bad


class FactsGatherer:
    """Reads the host (and, when asked, its sources) without changing anything."""

    def __init__(self, params, runner, client_factory=None):
        self.params = params
        self.runner = runner
        self.client_factory = client_factory
        self.paths = _host.HostPaths(params['host_root'])
        self.layout = _host.detect_layout(self.paths, params['layout'])
        self.subsets = subsets(params['gather_subset'])
        # imgadm's computed fields (reference 4.5); as in imgadm avail, clones and zpool match no available image
        self.filters = check_filters(params['filters'], INSTALLED)
        for pool in params['pools'] or []:
            check_pool(pool)
        check_server_params(params)
        self.skipped = []
        self.cached = CachedManifests(self.paths, self.layout)

    def run(self):
        facts = {}
        warnings = []
        store = None
        if self.subsets & {'sources', 'available'}:
            store = source_store(self.paths, self.layout).load()
        if 'installed' in self.subsets:
            facts['smartos_images'] = self.installed()
        if 'sources' in self.subsets:
            facts['smartos_image_sources'] = [dict(e.shown(), implicit=store.implicit) for e in store.entries()]
        if 'available' in self.subsets:
            facts['smartos_images_available'], errors = self.available(store.entries())
            facts['smartos_images_available_errors'] = errors
            warnings.extend('%s: %s' % (e['source'], e['error']) for e in errors)
            warnings.extend(self.skipped)
        facts['smartos_images_layout'] = self.layout
        if store is not None:   # lines of the source file that were skipped
            warnings.extend(w for w in store.warnings if w not in warnings)
        return dict(changed=False, ansible_facts=facts, warnings=warnings)

    def installed(self):
        """Images by UUID: imgadm list's rules over one zfs listing of the pools."""
        pools = self.params['pools']
        inventory = load_inventory(Zfs(self.runner), self.runner, pools)
        images = {}
        for dataset in sorted(inventory.images):
            pool, uuid = inventory.images[dataset]
            cached = self.cached.get(pool, uuid)
            manifest, source, problem = cached.manifest, cached.source, cached.problem
            entry = {'manifest': manifest or {'uuid': uuid}, 'zpool': pool,
                     'clones': inventory.clones_of(dataset), 'manifest_cached': manifest is not None}
            if source:
                entry['source'] = redact(source)
            if problem:
                entry['error'] = problem
            where = dict(zpool=pool, clones=len(entry['clones']), source=entry.get('source'))
            if self.filters and not matches(row(entry['manifest'], **where), self.filters):
                continue
            if uuid in images:
                images[uuid].setdefault('also_on', []).append(pool)
                continue
            images[uuid] = entry
        if self.params['newest']:
            keep = {m['uuid'] for m in newest_per_name([e['manifest'] for e in images.values()])}
            images = {u: e for u, e in images.items() if u in keep}
        return images

    def _list_source(self, entry):
        """(manifests, problems, error) of one source's list; an error of the source is its text, never raised."""
        try:
            source = entry.for_import()
            listed = client_from_params(source, self.params, self.client_factory).list_raw()
            if not isinstance(listed, list):
                raise SourceError('the image list is not a list')
            manifests, bad = listing(listed)
            # what the server lists by default (active images of the source's channel), checked here too: a static
            # server answers its whole list
            return [m for m in manifests if listed_as_asked(m, {}, source.channel)], bad, None
        except ImageError as e:
            return None, [], e.msg
        except Exception as e:  # pylint: disable=broad-exception-caught
            # a worker must not die silently; the message could hold a URL with a password: name the type only
            return None, [], 'listing failed unexpectedly (%s)' % type(e).__name__

    def available(self, entries):
        """What the sources list, merged by UUID in source order; per-source errors, not fatal."""
        usable = [e for e in entries if e.type != 'docker']
        with ThreadPoolExecutor(max_workers=PARALLEL_SOURCES, thread_name_prefix='list') as pool:
            results = list(pool.map(self._list_source, usable))
        seen, merged, errors, skipped = set(), [], [], []
        for entry, (manifests, bad, error) in zip(usable, results):
            url = redact(entry.url)
            if error is not None:
                errors.append({'source': url, 'error': error})
                continue
            if bad:
                skipped.append('%s: skipped %d image(s) of its list: %s%s'
                               % (url, len(bad), '; '.join(bad[:3]), '; ...' if len(bad) > 3 else ''))
            for m in manifests:
                if m.get('uuid') not in seen and matches(row(m, source=url), self.filters):
                    seen.add(m.get('uuid'))
                    merged.append({'manifest': m, 'source': url})
        if usable and len(errors) == len(usable):
            raise SourceError('no image source answered: %s'
                              % '; '.join('%s: %s' % (e['source'], e['error']) for e in errors))
        if self.params['newest']:
            keep = {id(m) for m in newest_per_name([e['manifest'] for e in merged])}
            merged = [e for e in merged if id(e['manifest']) in keep]
        merged.sort(key=lambda e: (e['manifest'].get('published_at') or '', e['manifest'].get('name') or ''))
        self.skipped = skipped
        return merged, errors
