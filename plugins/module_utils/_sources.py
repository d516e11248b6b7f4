# Private to the smartos.images collection: not a public API.
# The host's list of image sources: imgadm.conf (modern) and sources.list (original).
from __future__ import annotations

import json
import os

from ansible_collections.smartos.images.plugins.module_utils import _host
from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, InvalidParameter
from ansible_collections.smartos.images.plugins.module_utils._source_entry import SourceEntry, _kind, normalize_url
from ansible_collections.smartos.images.plugins.module_utils._urls import has_credentials, url_secrets

# imgadm common.DEFAULT_SOURCE: used while imgadm.conf has no "sources" key.
DEFAULT_SOURCE = {'type': 'imgapi', 'url': 'https://images.smartos.org'}
# imgadm configuration.js DEFAULT_CONFIG (written out on every save) and the version its upgraders reach.
DEFAULT_CONFIG = {'dockerImportSkipUuids': True}
UPGRADED_TO = '3.0.0'
# imgadm v1's default sources.list line; imgadm's upgrade compares with the renamed server only (reference 1.3,
# "as written"), which no v1 host has: both names are taken as the old default here.
OLD_DEFAULT_SOURCES = ('https://datasets.joyent.com/datasets', 'https://datasets.tritondatacenter.com/datasets')
# imgadm.conf and sources.list hold a few lines; a bigger file is not one imgadm wrote, and is not read whole.
MAX_SOURCE_FILE = 1024 * 1024
# imgadm writes imgadm.conf with fs.writeFile: 0666 less the umask (022) for a new file; an existing file's
# mode is kept. A new file that holds a password gets 0600 instead: imgadm only needs root to read it.
NEW_FILE_MODE = 0o644
NEW_SECRET_FILE_MODE = 0o600
# The source list lock is held for milliseconds; a holder after this long is stuck, not busy.
SOURCES_LOCK_WAIT = 120


def read_source_file(path, cap=MAX_SOURCE_FILE):
    """A source file's bytes (None when absent): a regular file only (a FIFO would block), at most cap bytes."""
    try:
        return _host.read_regular_file(path, cap)
    except _host.NotRegularFile:
        raise ImageError('%s is not a regular file; move it away so that a file can take its place' % path,
                         path=path) from None
    except ValueError:
        raise ImageError('%s is larger than %d bytes, far more than a list of sources needs; check it, it was '
                         'left unchanged' % (path, cap), path=path) from None


def _text(raw):
    """A source file's content as text (bytes as read, or text already); UnicodeDecodeError when not UTF-8."""
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, (bytes, bytearray)):
        raise InvalidParameter('a source file is read as bytes, not %s' % raw.__class__.__name__)
    return bytes(raw).decode('utf-8')


class _SourceFile:
    """A file that holds the host's sources: read whole, written atomically under a lock."""

    layout = None
    implicit = False

    def __init__(self, path):
        self.path = path
        self.raw = None
        self.warnings = []

    def load(self):
        self.raw = read_source_file(self.path)
        self.warnings = []
        self.parse(self.raw)
        return self

    def parse(self, raw):
        raise NotImplementedError

    def render(self, entries):
        raise NotImplementedError

    def secrets(self):
        """Every password the file may hold, found without trusting its shape (for Ansible's no_log)."""
        return set()

    def new_file_mode(self, entries):
        """The mode of a file made now; an existing file keeps its own (write_atomic)."""
        if os.path.lexists(self.path):
            return None
        return NEW_SECRET_FILE_MODE if any(has_credentials(e.url) for e in entries) else NEW_FILE_MODE

    def save(self, entries):
        # imgadm's writeFile goes through a symlink to its target; the atomic rename must too, or the link
        # (say, to a file on persistent storage) would be replaced by a plain file
        _host.write_atomic(os.path.realpath(self.path), self.render(entries), self.new_file_mode(entries))

    def lock(self):
        # imgadm takes no lock for its config; ours is held for a read and a write, never across a ping
        return _host.file_lock(self.path + '.lock', SOURCES_LOCK_WAIT, 'source list lock')


class ModernSources(_SourceFile):
    """/var/imgadm/imgadm.conf: JSON, unknown keys kept, 2-space indent, no trailing newline.

    Read as imgadm reads it after its own upgrade (reference 1.3): while the file has no "sources" and was never
    upgraded to 2.0.0, a leftover /var/db/imgadm/sources.list naming mirrors adds them, as DSAPI sources, after
    the default source. Nothing is written for that: the next write (ours or imgadm's) records it."""

    layout = 'modern'

    def __init__(self, paths):
        super().__init__(paths.config)
        self.paths = paths
        self.config = {}
        self.migrated = None    # the sources imgadm's upgrade would import from sources.list, or None

    def parse(self, raw):
        self.migrated = None
        if raw is None:
            self.config = {}
        else:
            try:
                config = json.loads(_text(raw))
            except (ValueError, RecursionError) as e:
                # the parser's message quotes no file content, only a position
                reason = e.__class__.__name__ if isinstance(e, RecursionError) else str(e)[:200]
                raise ImageError('config file "%s" is not valid JSON (%s); fix or remove it, it was left unchanged'
                                 % (self.path, reason), path=self.path)
            if not isinstance(config, dict):
                raise ImageError('config file "%s" must hold a JSON object, not %s; it was left unchanged'
                                 % (self.path, _kind(config)), path=self.path)
            if 'sources' in config and not isinstance(config['sources'], list):
                raise ImageError('config file "%s": "sources" must be a list, not %s; it was left unchanged'
                                 % (self.path, _kind(config['sources'])), path=self.path)
            self.config = config
        if 'sources' not in self.config and upgraded_to(self.config) < (2, 0, 0):
            self.migrated = self._sources_list()

    def _sources_list(self):
        """imgadm upgradeTo200: the default source, then each sources.list line as a DSAPI source; None when
        the file is absent or names only the old default (imgadm then keeps its implicit default)."""
        raw = read_source_file(self.paths.sources_list)
        if raw is None:
            return None
        try:
            lines = _text(raw).splitlines()
        except UnicodeDecodeError as e:
            self.warnings.append('%s is not UTF-8 text (byte %d); its sources were not imported'
                                 % (self.paths.sources_list, e.start))
            return None
        urls = []
        for number, line in enumerate(lines, 1):
            # imgadm keeps a line's text after a "#" and its inner spaces in the URL: we take the URL alone
            url = line.split('#')[0].strip()
            if url:
                urls.append((number, url))
        if len(urls) == 1 and _is_old_default(urls[0][1]):
            return None
        found = [SourceEntry(DEFAULT_SOURCE['url'], DEFAULT_SOURCE['type'])]
        seen = {found[0].identity}   # a set: a file of many lines must not take a time that grows with its square
        for number, url in urls:
            try:
                entry = (SourceEntry(DEFAULT_SOURCE['url'], DEFAULT_SOURCE['type']) if _is_old_default(url) else
                         SourceEntry(url, 'dsapi', strict=True, dsapi_url_checked=False))
            except InvalidParameter as e:
                self.warnings.append('%s line %d not imported: %s' % (self.paths.sources_list, number, e.msg))
                continue
            if entry.identity not in seen:
                seen.add(entry.identity)
                found.append(entry)
        return found

    @property
    def implicit(self):
        """True while the "sources" key is absent and imgadm uses its default source."""
        return 'sources' not in self.config and self.migrated is None

    def secrets(self):
        found = set()
        for item in self.config.get('sources') or []:
            if isinstance(item, dict):
                found.update(url_secrets(item.get('url')))
        for entry in self.migrated or []:
            found.update(entry.secrets)
        return found

    def entries(self):
        if self.migrated is not None:
            return list(self.migrated)
        if self.implicit:
            return [SourceEntry(DEFAULT_SOURCE['url'], DEFAULT_SOURCE['type'])]
        return [SourceEntry.from_config(item, self.path, n) for n, item in enumerate(self.config['sources'], 1)]

    def render(self, entries):
        """The file content with these sources, as imgadm would save it: its defaults first, the other keys as
        they were, and the upgrade marked done unless imgadm still has original image records to upgrade."""
        config = dict(DEFAULT_CONFIG)
        config.update(self.config)
        if upgraded_to(config) < (3, 0, 0) and (upgraded_to(config) >= (2, 0, 0)
                                                or not self.paths.original_records()):
            if self.migrated is not None:
                config['sources'] = []   # imgadm's upgrade writes the imported list before its version
            config['upgradedToVer'] = UPGRADED_TO
        config['sources'] = [e.to_config() for e in entries]
        return _host.json_bytes(config, indent=2)


def upgraded_to(config):
    """imgadm.conf's "upgradedToVer" as a tuple of numbers ('1.0.0' when absent or unreadable, as imgadm takes it)."""
    value = config.get('upgradedToVer')
    try:
        return tuple(int(part) for part in value.split('.'))
    except (AttributeError, ValueError):
        return (1, 0, 0)


def _is_old_default(url):
    """The DSAPI default source of imgadm v1 (in either of the names imgadm's upgrade has known it by)."""
    try:
        return normalize_url(url) in OLD_DEFAULT_SOURCES
    except InvalidParameter:
        return False


class OriginalSources(_SourceFile):
    """/var/db/imgadm/sources.list (the seed's layout): one URL a line, comments and blanks kept."""

    layout = 'original'

    def __init__(self, paths):
        super().__init__(paths.sources_list)
        self.lines = []

    def parse(self, raw):
        try:
            self.lines = _text(raw).splitlines() if raw is not None else []
        except UnicodeDecodeError as e:
            raise ImageError('%s is not UTF-8 text (byte %d); it was left unchanged' % (self.path, e.start),
                             path=self.path)

    @staticmethod
    def is_source_line(line):
        """imgadm v1 loadSources: skip blank lines and lines starting with '#' or '$'."""
        stripped = line.strip()
        return bool(stripped) and stripped[0] not in '#$'

    def secrets(self):
        found = set()
        for line in self.lines:
            if self.is_source_line(line):
                found.update(url_secrets(line.strip()))
        return found

    def _parsed(self):
        """(line, entry or None) for every line; a line that is no DSAPI URL is skipped with a warning, as
        imgadm v1 skipped a line without a scheme and host (it would have tried other http URLs: we do not)."""
        out = []
        for number, line in enumerate(self.lines, 1):
            entry = None
            if self.is_source_line(line):
                try:
                    entry = SourceEntry.from_argument(line.strip(), 'dsapi')
                except InvalidParameter as e:
                    self.warnings.append('%s line %d skipped: %s' % (self.path, number, e.msg))
            out.append((line, entry))
        return out

    def entries(self):
        self.warnings = []
        return [entry for dummy, entry in self._parsed() if entry is not None]

    def render(self, entries):
        """Lines for these sources: comments and skipped lines stay, kept URLs keep their lines (in the wanted
        order), removed ones go, new ones are appended."""
        wanted = [e.url for e in entries]
        parsed = self._parsed()
        # sets: a file of many lines must not take a time that grows with its square
        current = {line.strip() for line, entry in parsed if entry is not None}
        wanted_set = set(wanted)
        slots = iter([u for u in wanted if u in current])
        out, seen = [], set()
        for line, entry in parsed:
            if entry is None:
                out.append(line)
            elif line.strip() in wanted_set and line.strip() not in seen:
                seen.add(line.strip())
                out.append(next(slots))
        out.extend(u for u in wanted if u not in current)
        return ('\n'.join(out) + '\n').encode('utf-8') if out else b''


def source_store(paths, layout):
    """The source list of a host in the given layout ('modern' or 'original')."""
    return (OriginalSources if layout == 'original' else ModernSources)(paths)


def check_layout_type(layout, entry):
    """The original layout's sources.list can only name DSAPI sources, without options."""
    if layout == 'original' and (entry.type != 'dsapi' or entry.insecure):
        raise InvalidParameter('this host uses the original imgadm layout (%s), whose sources.list holds '
                               'plain DSAPI URLs only: use type dsapi, without insecure'
                               % os.path.join('/var/db/imgadm', 'sources.list'))
