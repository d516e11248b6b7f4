# Private to the smartos.images collection: not a public API.
# The host's list of image sources: imgadm.conf (modern) and sources.list (original), URL identity.
from __future__ import annotations

import json
import os
import re
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from ansible_collections.smartos.images.plugins.module_utils import _host
from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, InvalidParameter
from ansible_collections.smartos.images.plugins.module_utils._imgapi import Source, redact

SOURCE_TYPES = ('imgapi', 'dsapi', 'docker')
# imgadm common.DEFAULT_SOURCE: used while imgadm.conf has no "sources" key.
DEFAULT_SOURCE = {'type': 'imgapi', 'url': 'https://images.smartos.org'}
_SCHEME_RE = re.compile(r'^[A-Za-z][A-Za-z0-9+.-]*://')


def normalize_url(url):
    """imgadm normUrlFromUrl: add http://, drop one trailing '/', drop default ports; keep the query."""
    if not _SCHEME_RE.match(url):
        url = 'http://' + url
    parts = urlsplit(url)
    netloc = parts.netloc
    default_port = {'https': ':443', 'http': ':80'}.get(parts.scheme.lower())
    if default_port and netloc.endswith(default_port):
        netloc = netloc[:-len(default_port)]
    path = parts.path[:-1] if parts.path.endswith('/') else parts.path
    return urlunsplit((parts.scheme, netloc, path, parts.query, parts.fragment))


class SourceEntry:
    """One configured source: {type, url, insecure}, as imgadm stores it."""

    def __init__(self, url, type='imgapi', insecure=False, extra=None):
        if not isinstance(url, str) or not url.strip():
            raise InvalidParameter('a source url must be a non-empty string')
        if type not in SOURCE_TYPES:
            raise InvalidParameter('type "%s" for source url "%s" is invalid: must be one of "imgapi", "dsapi", '
                                   '"docker"' % (type, redact(url)))
        self.url = url.strip()
        self.type = type
        self.insecure = bool(insecure)
        self.extra = dict(extra or {})  # keys imgadm or a later version may add: kept as found
        scheme = urlsplit(self.url if _SCHEME_RE.match(self.url) else 'http://' + self.url).scheme
        if scheme not in ('http', 'https'):
            raise InvalidParameter('source url "%s" is not an http:// or https:// URL' % redact(self.url))
        if type == 'dsapi' and not normalize_url(self.url).split('?')[0].endswith('/datasets'):
            raise InvalidParameter('"dsapi" source URL does not end with "/datasets": "%s"' % redact(self.url))

    @classmethod
    def from_config(cls, item, where):
        """An entry from imgadm.conf's "sources" array."""
        if not isinstance(item, dict) or not isinstance(item.get('url'), str):
            raise ImageError('%s: every entry of "sources" must be an object with a "url" string, found %s'
                             % (where, json.dumps(item)[:100]))
        extra = {k: v for k, v in item.items() if k not in ('url', 'type', 'insecure')}
        try:
            return cls(item['url'], item.get('type') or 'imgapi', item.get('insecure', False), extra)
        except InvalidParameter as e:
            raise ImageError('%s: %s; fix the file, it was left unchanged' % (where, e.msg), path=where)

    @property
    def channel(self):
        return self.extra.get('channel') or dict(parse_qsl(urlsplit(self.url).query)).get('channel')

    @property
    def identity(self):
        """What makes two sources the same for imgadm: normalized URL, type, insecure, channel."""
        return (normalize_url(self.url), self.type, self.insecure, self.channel)

    def to_config(self):
        """imgadm Source.toJSON order: type, url, insecure (only when true), then any other keys."""
        item = {'type': self.type, 'url': self.url}
        if self.insecure:
            item['insecure'] = True
        item.update(self.extra)
        return item

    def shown(self):
        """The entry as modules return it: credentials hidden."""
        return {'url': redact(self.url), 'type': self.type, 'insecure': self.insecure}

    def for_import(self):
        """The Source an import or a ping talks to."""
        url = self.url if _SCHEME_RE.match(self.url) else 'http://' + self.url
        return Source(url, type=self.type, insecure=self.insecure)


class _SourceFile:
    """A file that holds the host's sources: read whole, written atomically under a lock."""

    layout = None
    implicit = False

    def __init__(self, path):
        self.path = path
        self.raw = None

    def load(self):
        self.raw = _host.read_bytes(self.path)
        self.parse(self.raw)
        return self

    def parse(self, raw):
        raise NotImplementedError

    def render(self, entries):
        raise NotImplementedError

    def save(self, entries):
        _host.write_atomic(self.path, self.render(entries))

    def lock(self):
        return _host.file_lock(self.path + '.lock')


class ModernSources(_SourceFile):
    """/var/imgadm/imgadm.conf: JSON, unknown keys kept, 2-space indent, no trailing newline."""

    layout = 'modern'

    def __init__(self, paths):
        super().__init__(paths.config)
        self.config = {}

    def parse(self, raw):
        if raw is None:
            self.config = {}
            return
        try:
            config = json.loads(raw.decode('utf-8'))
        except ValueError as e:
            raise ImageError('config file "%s" is not valid JSON (%s); fix or remove it, it was left unchanged'
                             % (self.path, e), path=self.path)
        if not isinstance(config, dict):
            raise ImageError('config file "%s" must hold a JSON object, not %s; it was left unchanged'
                             % (self.path, type(config).__name__), path=self.path)
        if 'sources' in config and not isinstance(config['sources'], list):
            raise ImageError('config file "%s": "sources" must be a list, not %s; it was left unchanged'
                             % (self.path, type(config['sources']).__name__), path=self.path)
        self.config = config

    @property
    def implicit(self):
        """True while the "sources" key is absent and imgadm uses its default source."""
        return 'sources' not in self.config

    def entries(self):
        if self.implicit:
            return [SourceEntry(DEFAULT_SOURCE['url'], DEFAULT_SOURCE['type'])]
        return [SourceEntry.from_config(item, self.path) for item in self.config['sources']]

    def render(self, entries):
        """The file content with these sources (other keys as they were)."""
        config = dict(self.config)
        config['sources'] = [e.to_config() for e in entries]
        return json.dumps(config, indent=2, ensure_ascii=False).encode('utf-8')


class OriginalSources(_SourceFile):
    """/var/db/imgadm/sources.list (the seed's layout): one URL a line, comments and blanks kept."""

    layout = 'original'

    def __init__(self, paths):
        super().__init__(paths.sources_list)
        self.lines = []

    def parse(self, raw):
        try:
            self.lines = raw.decode('utf-8').splitlines() if raw is not None else []
        except UnicodeDecodeError as e:
            raise ImageError('%s is not UTF-8 text (%s); it was left unchanged' % (self.path, e), path=self.path)

    @staticmethod
    def is_source_line(line):
        """imgadm v1 loadSources: skip blank lines and lines starting with '#' or '$'."""
        stripped = line.strip()
        return bool(stripped) and stripped[0] not in '#$'

    def entries(self):
        return [SourceEntry(line.strip(), 'dsapi') for line in self.lines if self.is_source_line(line)]

    def render(self, entries):
        """Lines for these sources: comments stay, kept URLs keep their lines (in the wanted order),
        removed ones go, new ones are appended."""
        wanted = [e.url for e in entries]
        current = [line.strip() for line in self.lines if self.is_source_line(line)]
        slots = iter([u for u in wanted if u in current])
        out, seen = [], set()
        for line in self.lines:
            if not self.is_source_line(line):
                out.append(line)
            elif line.strip() in wanted and line.strip() not in seen:
                seen.add(line.strip())
                out.append(next(slots))
        out.extend(u for u in wanted if u not in current)
        return ('\n'.join(out) + '\n').encode('utf-8') if out else b''


def source_store(paths, layout):
    """The source list of a host in the given layout ('modern' or 'original')."""
    return (OriginalSources if layout == 'original' else ModernSources)(paths)


def host_sources(paths, layout):
    """The host's configured sources, in order."""
    return source_store(paths, layout).load().entries()


def check_layout_type(layout, entry):
    """The original layout's sources.list can only name DSAPI sources, without options."""
    if layout == 'original' and (entry.type != 'dsapi' or entry.insecure):
        raise InvalidParameter('this host uses the original imgadm layout (%s), whose sources.list holds '
                               'plain DSAPI URLs only: use type dsapi, without insecure'
                               % os.path.join('/var/db/imgadm', 'sources.list'))
