# Private to the smartos.images collection: not a public API.
# Which images, from which source: the source list built once per run, each source asked once per image.
from __future__ import annotations

import json
import threading

from ansible_collections.smartos.images.plugins.module_utils._errors import (
    ImageError, ImageNotFound, InvalidParameter, SourceError, UnsupportedImage,
)
from ansible_collections.smartos.images.plugins.module_utils._filters import newest
from ansible_collections.smartos.images.plugins.module_utils._imgapi import ImageSource, client_from_params
from ansible_collections.smartos.images.plugins.module_utils._manifest import (
    ManifestError, check_importable, is_active, is_uuid, upgrade_manifest,
)
from ansible_collections.smartos.images.plugins.module_utils._sources import source_store

MAX_CHAIN = 64         # origins followed from one image before giving up


class Found:
    """An image located for import: where it comes from and what it is."""

    def __init__(self, source, client, manifest, raw, active_only=True):
        self.source, self.client, self.manifest, self.raw = source, client, manifest, raw
        self.uuid = manifest['uuid']
        self.active_only = active_only   # as it was looked for: an origin may be inactive, as in imgadm


class ImageResolver:
    """Finds images in the sources: by UUID (active or not, preferring a source), newest by name, an origin chain.

    The source list is read once per run (the source option, else the host's sources); each source is asked
    for each image at most once, and its answer is remembered for the rest of the run.
    """

    def __init__(self, params, paths, layout, client_factory=None, warn=None):
        self.params = params
        self.paths, self.layout = paths, layout
        self.client_factory = client_factory
        self.warn = warn or (lambda text, key=None: None)
        self._sources = None
        if params.get('source') is not None:
            # checked before any command runs
            self._sources = ([ImageSource(url) for url in params['source']], 'the source option')
        self._clients = {}
        self._answers = {}
        self._refused = {}    # id(source) -> the SourceError of a source that refused a connection: not asked again
        self._lock = threading.Lock()   # imports run in threads and may look for another source at once

    # ---- the sources ----

    def sources(self, what):
        """The sources to try, in order, read once; InvalidParameter when there is none to import what from."""
        if self._sources is None:
            where = self.paths.sources_list if self.layout == 'original' else self.paths.config
            store = source_store(self.paths, self.layout).load()
            entries = store.entries()
            for text in store.warnings:   # lines of a source file that were skipped, said once per run
                self.warn(text)
            self._sources = ([e.for_import() for e in entries], where)
        sources, where = self._sources
        if not sources:
            raise InvalidParameter('no image source to import %s from (%s has none): set source to one or more '
                                   'IMGAPI URLs, or add sources with smartos_image_source' % (what, where))
        return sources

    def client(self, source):
        """The one client of a source for this run."""
        if id(source) not in self._clients:
            self._clients[id(source)] = client_from_params(source, self.params, self.client_factory)
        return self._clients[id(source)]

    def ask(self, source, question):
        """question(client): a source's answer; a source that refused a connection once this run (nothing listens
        there) is not asked again: its error comes back at once."""
        if id(source) in self._refused:
            raise self._refused[id(source)]
        try:
            return question(self.client(source))
        except SourceError as e:
            if e.evidence.get('refused'):
                self._refused[id(source)] = e
            raise

    def _get_image(self, source, uuid):
        """(raw manifest or None, SourceError or None): GetImage asked of a source once per run."""
        key = (id(source), uuid)
        if key not in self._answers:
            try:
                self._answers[key] = (self.ask(source, lambda client: client.get_image(uuid)), None)
            except SourceError as e:
                self._answers[key] = (None, e)
        return self._answers[key]

    # ---- by UUID ----

    def find(self, uuid, active_only=True, prefer=None):
        """An image by UUID from the first source that has it usable (prefer asked first); a Found."""
        sources = self.sources(uuid)
        if prefer is not None:
            sources = [prefer] + [s for s in sources if s is not prefer]
        answers, inactive, invalid = [], [], []
        for source in sources:
            found = self._answer(source, uuid, active_only, answers, inactive, invalid)
            if found is not None:
                return found
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

    def _answer(self, source, uuid, active_only, answers, inactive, invalid):
        """One source's answer for find: a Found, or None with why appended to one of the lists."""
        if source.type == 'docker':
            answers.append('%s: a docker source (imports from docker sources are not supported)' % source.url)
            return None
        raw, error = self._get_image(source, uuid)
        if error is not None:
            answers.append('%s: %s' % (source.url, error.msg))
            return None
        try:
            # imgadm upgrades every manifest a source sends (v1 DSAPI manifests become v2)
            manifest = upgrade_manifest(raw) if raw is not None else None
        except ManifestError as e:
            invalid.append('%s: manifest is invalid: %s' % (source.url, e))
            return None
        if manifest is None or not listed_as_asked(manifest, {'state': 'all'}, source.channel):
            # a static server answers GetImage for an image of another channel: IMGAPI would answer 404
            answers.append('%s: not found (HTTP 404)' % source.url if manifest is None else
                           '%s: not in channel "%s"' % (source.url, source.channel))
            return None
        if manifest.get('type') == 'docker':
            raise UnsupportedImage('image %s from %s is a docker image; importing docker images '
                                   'is not supported yet' % (uuid, source.url))
        if active_only and not is_active(manifest):
            # imgadm imports only state "active": a manifest without a state is not (reference 3.2)
            state = manifest.get('state')
            inactive.append('%s: %s' % (source.url, 'state "%s"' % state[:40] if isinstance(state, str)
                                        else 'no "state" in its manifest'))
            return None
        try:
            check_importable(manifest, uuid, source.url)
        except SourceError as e:
            invalid.append(e.msg)
            return None
        return Found(source, self.client(source), manifest, raw, active_only)

    def elsewhere(self, found, tried, check=None):
        """The same image (same UUID, same origin) from the next source in order that is not in tried (sources),
        nor the same server as one of them, and has it usable: its own manifest checked as find checks it, and by
        check(manifest) (raises ImageError); None when no other source has it. Used when an import from
        found.source failed; thread-safe."""
        with self._lock:
            for source in self.sources(found.uuid):
                # the same server listed again (another channel, other credentials) sends the same file
                if any(source is t or source.base == getattr(t, 'base', None) for t in tried) or source.type == 'file':
                    continue
                try:
                    other = self._answer(source, found.uuid, found.active_only, [], [], [])
                    if other is not None and check is not None:
                        check(other.manifest)
                except ImageError:
                    continue
                # another origin is another image: the plan imports found after its origin, and the stream of
                # this one would need another dataset to receive onto
                if other is not None and other.manifest.get('origin') == found.manifest.get('origin'):
                    return other
        return None

    # ---- by name ----

    def newest(self, wanted):
        """The newest active image of a name (and version) across the sources, by the one "newest" rule: its UUID."""
        sources = self.sources(str(wanted))
        query = {'name': wanted.name}
        if wanted.version:
            query['version'] = wanted.version
        for key in ('os', 'type'):
            if isinstance(wanted.filters.get(key), str) and not wanted.filters[key].startswith('~'):
                query[key] = wanted.filters[key]
        hits, answers = [], []
        for source in sources:
            if source.type == 'docker':
                continue
            try:
                raw = self.ask(source, lambda client: client.list_raw(query))
            except SourceError as e:
                answers.append('%s: %s' % (source.url, e.msg))
                continue
            # the server may have ignored the query: every entry is checked against it here too
            found = [m for m in self.listing(source, raw)
                     if listed_as_asked(m, query, source.channel) and wanted.matches(m)]
            answers.append('%s: %d match(es)' % (source.url, len(found)))
            hits.extend(found)
        best = newest(hits)
        if best is None:
            raise ImageNotFound('no active image named "%s"%s%s was found in image sources: %s'
                                % (wanted.name, ' version "%s"' % wanted.version if wanted.version else '',
                                   ' matching %s' % json.dumps(wanted.filters, sort_keys=True) if wanted.filters else '',
                                   '; '.join(answers)), sources=[s.url for s in sources])
        return best['uuid']

    def listing(self, source, raw):
        """The usable entries of a source's listing, upgraded; each bad one skipped with a warning."""
        listed, bad = usable_listing(raw)
        if bad:
            self.warn('%s: skipped %d bad image(s) in its listing: %s%s'
                      % (source.url, len(bad), '; '.join(bad[:5]), '; ...' if len(bad) > 5 else ''))
        return listed

    # ---- an origin chain ----

    def ancestry(self, found, present):
        """The images to import for found, base first: its ancestors for which present(uuid) is false, then itself."""
        chain = [found]
        while chain[-1].manifest.get('origin'):
            origin = chain[-1].manifest['origin']
            if present(origin):
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
                chain.append(self.find(origin, active_only=False, prefer=chain[-1].source))
            except ImageNotFound as e:
                raise ImageNotFound('origin %s of image %s is not installed and no source has it (%s)'
                                    % (origin, chain[-1].uuid, e.msg))
        return list(reversed(chain))


def _text_match(actual, wanted, negate_prefix=None):
    """IMGAPI's match of one ListImages filter: "~sub" a case-sensitive substring, negate_prefix+value an exclusion,
    else the exact value."""
    if wanted.startswith('~'):
        return isinstance(actual, str) and wanted[1:] in actual
    if negate_prefix and wanted.startswith(negate_prefix):
        return actual != wanted[len(negate_prefix):]
    return actual == wanted


def listed_as_asked(manifest, query, channel=None):
    """True when an IMGAPI server that honours query (name, version, os, type, state) and channel would list
    manifest. Checked on the client too: a static server (a mirror's images.json) answers every image to any query
    string, whatever its name, state or channel. state defaults to "active", as ListImages' does; a manifest without
    "channels" cannot be told apart and counts as in the channel."""
    state = query.get('state', 'active')
    if state != 'all' and manifest.get('state') != state:
        return False
    for field in ('name', 'version', 'os', 'type'):
        wanted = query.get(field)
        if wanted and not _text_match(manifest.get(field), wanted, '!' if field == 'type' else None):
            return False
    channels = manifest.get('channels')
    return not channel or channel == '*' or not isinstance(channels, list) or channel in channels


def short(value, limit=80):
    """A value from outside, short and printable, for a message."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + '...'


def _uuid_note(manifest):
    uuid = manifest.get('uuid') if isinstance(manifest, dict) else None
    return ' (%s)' % uuid if is_uuid(uuid) else ''


def usable_listing(raw):
    """(manifests, problems): the entries of a listing that are usable manifests, upgraded; why each other is not."""
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
    return listed, bad


def listing_problem(manifest):
    """Why an (upgraded) entry of a listing cannot be used (None when it can)."""
    if not is_uuid(manifest.get('uuid')):
        return 'its uuid is %s, not a UUID' % short(manifest.get('uuid'))
    if not isinstance(manifest.get('name'), str):
        return 'its name is %s, not a string' % short(manifest.get('name'))
    problems = ['its %s is %s, not a string' % (k, short(manifest[k]))
                for k in ('version', 'published_at', 'state', 'type', 'os')
                if manifest.get(k) is not None and not isinstance(manifest[k], str)]
    return '; '.join(problems) or None
