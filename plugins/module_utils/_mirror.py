# Private to the smartos.images collection: not a public API.
# smartos_image_mirror's worker: which images the mirror keeps (resolved upstream), what to fetch and remove, the result.
from __future__ import annotations

import copy
import re
import time
from urllib.parse import urlsplit

from ansible_collections.smartos.images.plugins.module_utils._common import check_server_params
from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, InvalidParameter, SourceError
from ansible_collections.smartos.images.plugins.module_utils._imgapi import ImageSource
from ansible_collections.smartos.images.plugins.module_utils._mirror_fetch import fetch
from ansible_collections.smartos.images.plugins.module_utils._mirror_store import MirrorStore, line, serving_problem
from ansible_collections.smartos.images.plugins.module_utils._paging import PAGE_MAX_BYTES
from ansible_collections.smartos.images.plugins.module_utils._resolver import MAX_CHAIN, Found, ImageResolver
from ansible_collections.smartos.images.plugins.module_utils._wanted import Wanted

DSAPI_RE = re.compile(r'/datasets/?\Z')
DOCKER_HOSTS = ('docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com')


def mirror_source(url):
    """An upstream source from a URL: DSAPI when its path ends in /datasets (as imgadm types a typeless source),
    IMGAPI otherwise; a docker registry is refused."""
    source = ImageSource(url)
    if urlsplit(source.base).hostname in DOCKER_HOSTS or urlsplit(source.base).path.rstrip('/') == '/v2':
        raise InvalidParameter('source "%s" is a docker registry: docker images cannot be mirrored, give IMGAPI or '
                               'DSAPI servers' % source.url)
    return ImageSource(url, 'dsapi') if DSAPI_RE.search(source.base) else source


class MirrorResolver(ImageResolver):
    """The resolver over a fixed list of upstream sources (the mirror has no host source list)."""

    def __init__(self, params, sources, client_factory=None, warn=None):
        super().__init__(dict(params, source=None), None, None, client_factory, warn)
        self._sources = (sources, 'the source option')


class Plan:
    """What a run does: images to fetch (base first, as Found), to remove, to repair (verify), and the images kept
    after it."""

    def __init__(self):
        self.fetch = []        # Found, base first
        self.remove = []       # uuids
        self.keep = set()      # uuids the listed images need (themselves and their ancestors)
        self.repair = []       # Found of mirrored images whose file is damaged: the mirror's manifest, upstream's client
        self.damaged = {}      # uuid -> what is wrong with its file


class ImageMirror:
    """Keeps the mirror under params['path'] (layout: _mirror_store) as the task declares it."""

    def __init__(self, params, check_mode=False, client_factory=None, sleep=None):
        self.params = params
        self.check_mode = check_mode
        check_server_params(params)
        if not params.get('source'):
            raise InvalidParameter('source must name at least one upstream image server')
        self.sources = [mirror_source(url) for url in params['source']]
        if params['state'] == 'absent' and params.get('prune'):
            raise InvalidParameter('prune keeps only the listed images and their ancestors, state=absent removes '
                                   'the listed images: use one or the other')
        self.wanted = [Wanted(dict(item), 'present') for item in params.get('images') or []]
        self.warnings = []
        self.resolver = MirrorResolver(params, self.sources, client_factory, self.warnings.append)
        self.store = MirrorStore(params['path'])
        self.sleep = sleep or time.sleep

    def run(self, diff=False):
        exists = self.store.exists()
        if self.check_mode:
            return self._run(diff, exists)
        self.store.create()
        with self.store.lock():
            return self._run(diff, exists)

    def _run(self, diff, exists):
        store = self.store.scan()
        self._report_disk(store)
        before = dict(store.complete)
        plan = self.plan(store)
        changed = bool(plan.fetch or plan.remove or plan.repair or store.broken or store.orphans
                       or store.leftovers) or not exists
        if self.check_mode:
            added = []
            changed = changed or bool(store.stale_documents())
        else:
            try:
                added = self.act(plan)
            except ImageError:
                self._write_documents_quietly()   # the images completed before the failure are listed
                raise
            stale = store.stale_documents()
            store.write_documents(stale)
            changed = changed or bool(stale)
        self._check_listing_size(store)
        result = {'changed': changed, 'bytes': sum(downloaded for dummy, downloaded in added)}
        self._shape(result, before, plan)
        if diff:
            after = dict(before)
            for uuid in plan.remove:
                after.pop(uuid, None)
            after.update((f.uuid, f.manifest) for f in plan.fetch)
            result['diff'] = {'before': self._listed(before, plan.damaged), 'after': self._listed(after)}
        return result

    def _check_listing_size(self, store):
        """Hosts read at most PAGE_MAX_BYTES of one ListImages answer; the mirror answers with all of images.json."""
        size = len(store.index())
        if size > PAGE_MAX_BYTES:
            self.warnings.append(
                'the images.json of the mirror %s %d bytes, more than the %d bytes a host reads in one answer: hosts '
                'cannot list the mirror, and will then find images through their other sources only; mirror fewer '
                'images (or split them between mirrors)' % ('would be' if self.check_mode else 'is', size,
                                                            PAGE_MAX_BYTES))

    def _write_documents_quietly(self):
        try:
            if self.store.exists():
                self.store.write_documents(self.store.stale_documents())
        except ImageError:
            pass   # the first failure is what the user needs to see

    @staticmethod
    def _listed(images, damaged=()):
        """One side of the diff: {'images': ['uuid name@version', ...]} sorted by uuid (a mapping, which Ansible's
        diff callback shows as JSON; a bare list it cannot show). An image whose file verify found damaged is
        'uuid name@version (damaged)' on the side before: its line changes, as the file does."""
        return {'images': [line(getattr(m, 'manifest', m)) + (' (damaged)' if u in damaged else '')
                           for u, m in sorted(images.items())]}

    def _report_disk(self, store):
        for name in store.stray:
            self.warnings.append('%s: %s is not an image directory (a lower-case UUID); it is not served and was '
                                 'left alone' % (store.images_dir, name))
        for uuid, why in sorted(store.broken.items()):
            self.warnings.append('image %s in the mirror cannot be served as it is (%s): %s' % (
                uuid, why, 'its manifest.json is removed and its file kept as file.partial' if not self.check_mode
                else 'its manifest.json would be removed'))

    # ---- the plan ----

    def plan(self, store):
        plan = Plan()
        if self.params['state'] == 'absent':
            plan.remove = self._absent(store)
            return plan
        planned = set()
        for wanted in self.wanted:
            uuid = wanted.uuid or self.resolver.newest(wanted)
            for found in self._needed(store, uuid, plan.keep):
                if found.uuid not in planned:
                    planned.add(found.uuid)
                    plan.fetch.append(found)
        if self.params.get('prune'):
            plan.remove = sorted(u for u in set(store.complete) | set(store.broken) | store.partial
                                 if u not in plan.keep)
        if self.params.get('verify'):
            self._verify(store, plan)
        return plan

    def _verify(self, store, plan):
        """Hash every mirrored file that stays (read-only); each damaged one is reported and planned for repair."""
        for uuid, image in sorted(store.complete.items()):
            if uuid in plan.remove:
                continue
            why = store.file_damage(uuid, image.manifest)
            if why is None:
                continue
            self.warnings.append('image %s in the mirror is damaged (%s): its file %s downloaded again from '
                                 'upstream' % (uuid, why, 'would be' if self.check_mode else 'is'))
            plan.damaged[uuid] = why
            plan.repair.append(self._repair_source(image, why))

    def _repair_source(self, image, why):
        """A Found for downloading a damaged image's file again: the mirror's own manifest (what hosts check the file
        by), the client of the first upstream source that has the image, active or not, with the same file."""
        uuid, want = image.uuid, image.manifest['files'][0]
        damaged = 'image %s in the mirror is damaged (%s)' % (uuid, why)
        try:
            found = self.resolver.find(uuid, active_only=False)
        except ImageError as e:
            raise type(e)('%s and cannot be downloaded again: %s; its file is left as it is'
                          % (damaged, e.msg), **dict(e.evidence, image=uuid))
        theirs = found.manifest['files'][0]
        if theirs.get('size') != want['size'] or (isinstance(theirs.get('sha1'), str)
                                                  and theirs['sha1'].lower() != want['sha1'].lower()):
            raise SourceError('%s and %s now publishes another file for it (%s bytes, SHA-1 %s; the mirror\'s '
                              'manifest says %d bytes, SHA-1 %s): its file is left as it is; to mirror what '
                              'upstream publishes now, remove the image (state=absent) and list it again'
                              % (damaged, found.source.url, theirs.get('size'), theirs.get('sha1'), want['size'],
                                 want['sha1'].lower()), url=found.source.url, image=uuid)
        return Found(found.source, found.client, copy.deepcopy(image.manifest), found.raw, active_only=False)

    def _needed(self, store, uuid, keep):
        """The images to fetch for uuid, base first (itself and its ancestors the mirror lacks); adds to keep
        every image of its chain."""
        chain, current = [], uuid
        while current in store.complete:
            if current in chain or len(chain) >= MAX_CHAIN:
                raise ImageError('the origin chain of mirrored image %s loops or is longer than %d images: %s'
                                 % (uuid, MAX_CHAIN, ' -> '.join(chain + [current])))
            chain.append(current)
            current = store.complete[current].origin
            if current is None:
                keep.update(chain)
                return []
        keep.update(chain)
        found = self.resolver.find(current, active_only=current == uuid)
        fetched = self.resolver.ancestry(found, lambda u: u in store.complete)
        for image in fetched:
            problem = serving_problem(image.manifest)
            if problem:
                raise SourceError('image %s from %s cannot be mirrored: %s' % (image.uuid, image.source.url, problem),
                                  url=image.source.url)
        keep.update(f.uuid for f in fetched)
        base = fetched[0].manifest.get('origin')
        if base is not None:
            keep.update(self._local_chain(store, base))
        return fetched

    @staticmethod
    def _local_chain(store, uuid):
        chain = []
        while uuid is not None and uuid in store.complete and uuid not in chain and len(chain) < MAX_CHAIN:
            chain.append(uuid)
            uuid = store.complete[uuid].origin
        return chain

    def _absent(self, store):
        """The mirrored images the entries name; refused when an image that stays has one of them as origin."""
        remove = set()
        for wanted in self.wanted:
            if wanted.uuid:
                remove.update({wanted.uuid} & (set(store.complete) | set(store.broken) | store.partial))
            else:
                remove.update(u for u, m in store.complete.items() if wanted.matches(m.manifest))
        for uuid, image in sorted(store.complete.items()):
            if uuid not in remove and image.origin in remove:
                raise ImageError('image %s cannot be removed: mirrored image %s (%s), which stays, has it as its '
                                 'origin and would be left without it; list that image too, or keep this one'
                                 % (image.origin, uuid, line(image.manifest).split(' ', 1)[1]),
                                 image=image.origin, child=uuid)
        return sorted(remove)

    # ---- acting ----

    def act(self, plan):
        """Repair the directory, remove, download damaged files again (verify), fetch base first; returns
        (manifest, bytes downloaded) of each image added and then of each repaired."""
        store = self.store
        store.create(images=True)
        store.clean_leftovers()
        for uuid in sorted(store.broken):
            store.withdraw(uuid)
        for uuid in sorted(store.orphans):
            store.adopt_file(uuid)
        for uuid in plan.remove:   # first: what goes frees the space for what comes
            store.remove(uuid)
        repaired = []
        for found in plan.repair:
            # no adopt_file: the damaged file stays served until the new one is verified and renamed over it
            try:
                repaired.append(fetch(store, found, self.params['retries'], self.sleep))
            except ImageError as e:
                raise type(e)('image %s in the mirror is damaged (%s) and could not be downloaded again: %s; its '
                              'file is left as it is' % (found.uuid, plan.damaged[found.uuid], e.msg),
                              **dict(e.evidence, image=found.uuid))
        added = []
        for found in plan.fetch:
            store.adopt_file(found.uuid)
            added.append(fetch(store, found, self.params['retries'], self.sleep))
        return added + repaired

    def _shape(self, result, before, plan):
        sizes = {f.uuid: f.manifest['files'][0]['size'] for f in plan.fetch}
        result['added'] = [_entry(f.manifest, sizes[f.uuid]) for f in plan.fetch]
        result['repaired'] = [_entry(f.manifest, f.manifest['files'][0]['size']) for f in plan.repair]
        result['removed'] = [before[u].entry() for u in plan.remove if u in before]
        result['removed'] += [{'uuid': u, 'name': None, 'version': None, 'bytes': 0}
                              for u in plan.remove if u not in before]
        gone = set(plan.remove) | set(sizes) | set(plan.damaged)
        result['kept'] = [m.entry() for u, m in sorted(before.items()) if u not in gone]
        result['images'] = sorted((set(before) - set(plan.remove)) | set(sizes))


def _entry(manifest, size):
    return {'uuid': manifest['uuid'], 'name': manifest.get('name'), 'version': manifest.get('version'),
            'bytes': size}
