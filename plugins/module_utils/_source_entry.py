# Private to the smartos.images collection: not a public API.
# One image source as imgadm stores it: its URL (checked, normalized, compared), type and extra keys.
from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, InvalidParameter
from ansible_collections.smartos.images.plugins.module_utils._urls import ImageSource, has_credentials, safe_url, url_secrets

SOURCE_TYPES = ('imgapi', 'dsapi', 'docker')
_SCHEME_RE = re.compile(r'^[A-Za-z][A-Za-z0-9+.-]*://')
_BLANK_RE = re.compile(r'[\s\x00-\x1f\x7f]')

_ENCODE_HINT = ('; a raw "#", "/", "?" or "@" in a user name or password cuts the URL short: percent-encode them '
                '(%23, %2F, %3F, %40)')


def url_problem(url, scheme_required=True):
    """Why url is not a usable http(s) source URL (a phrase), or None. Without scheme_required, a URL
    without a scheme is read as http://, as imgadm reads what it stored."""
    if _BLANK_RE.search(url):
        return 'holds a space or a control character'
    if not _SCHEME_RE.match(url):
        if scheme_required:
            return ('has no scheme: write https://%s (or http://%s for a server without TLS); unlike imgadm, '
                    'no http:// is assumed' % (safe_url(url), safe_url(url)))
        url = 'http://' + url
    hint = '' if not has_credentials(url) else _ENCODE_HINT
    try:
        parts = urlsplit(url)
        host, dummy = parts.hostname, parts.port
    except ValueError as e:
        what = 'a port that is not a number' if 'port' in str(e).lower() else 'a bad host'
        return 'is not a valid URL (%s)%s' % (what, hint)
    if parts.scheme not in ('http', 'https'):
        return 'is not an http:// or https:// URL'
    if not host:
        return 'has no host' + hint
    if '@' in parts.path + parts.query + parts.fragment:
        return 'holds "@" after its host' + _ENCODE_HINT
    return None


def normalize_url(url):
    """imgadm normUrlFromUrl: add http://, lower-case the scheme and host (as node's url.parse does), drop one
    trailing '/' and default ports; keep the query."""
    if not isinstance(url, str):
        raise InvalidParameter('a source URL must be a string, not %s' % url.__class__.__name__)
    if not _SCHEME_RE.match(url):
        url = 'http://' + url
    try:
        parts = urlsplit(url)
    except ValueError:
        raise InvalidParameter('source URL "%s" is not a valid URL' % safe_url(url))
    userinfo, at, hostport = parts.netloc.rpartition('@')
    hostport = hostport.lower()
    default_port = {'https': ':443', 'http': ':80'}.get(parts.scheme)
    if default_port and hostport.endswith(default_port):
        hostport = hostport[:-len(default_port)]
    path = parts.path[:-1] if parts.path.endswith('/') else parts.path
    return urlunsplit((parts.scheme, userinfo + at + hostport, path, parts.query, parts.fragment))


def _kind(value):
    """A JSON value's kind, for messages that must not print the value (it may hold a password)."""
    return {dict: 'an object', list: 'a list', str: 'a string', bool: 'a boolean', type(None): 'null',
            int: 'a number', float: 'a number'}.get(value.__class__, value.__class__.__name__)


class SourceEntry:
    """One configured source: {type, url, insecure}, as imgadm stores it."""

    def __init__(self, url, type='imgapi', insecure=False, extra=None, strict=False, scheme_required=False,
                 dsapi_url_checked=True):
        if not isinstance(url, str) or not url.strip():
            raise InvalidParameter('a source url must be a non-empty string')
        if type not in SOURCE_TYPES:
            raise InvalidParameter('type "%s" for source url "%s" is invalid: must be one of "imgapi", "dsapi", '
                                   '"docker"' % (type if isinstance(type, str) else _kind(type), safe_url(url)))
        if extra is not None and not isinstance(extra, dict):
            raise InvalidParameter('the extra keys of source url "%s" must be an object' % safe_url(url))
        self.url = url.strip()
        self.type = type
        self.insecure = bool(insecure)
        self.extra = dict(extra or {})  # keys imgadm or a later version may add: kept as found
        # what a task or a file gives is checked whole (strict); an entry made in code only needs http(s)
        problem = url_problem(self.url, scheme_required) if strict else None
        if not strict and _SCHEME_RE.match(self.url) and not re.match(r'https?://', self.url, re.I):
            problem = 'is not an http:// or https:// URL'
        if problem:
            raise InvalidParameter('source url "%s" %s' % (safe_url(self.url), problem))
        # imgadm checks a dsapi URL only when the source is used: an entry read from the host's files is kept,
        # and its client fails with this message (see for_import); a task's new entry is refused at once
        if dsapi_url_checked and self.dsapi_url_problem():
            raise InvalidParameter('"dsapi" source URL does not end with "/datasets": "%s"' % safe_url(self.url))

    @classmethod
    def from_argument(cls, url, type='imgapi', insecure=False):
        """A source a task names: the URL must say http:// or https://, as smartos_image's source must."""
        return cls(url, type, insecure, strict=True, scheme_required=True)

    @classmethod
    def from_config(cls, item, where, number=None):
        """An entry from imgadm.conf's "sources" array (imgadm fails on a bad one; so do we, naming it)."""
        what = '%s: entry %d of "sources"' % (where, number) if number else '%s: an entry of "sources"' % where
        fix = '; fix the file, it was left unchanged'
        if not isinstance(item, dict):
            raise ImageError('%s is %s, not an object with "url" and "type"%s' % (what, _kind(item), fix), path=where)
        if not isinstance(item.get('url'), str):
            raise ImageError('%s has %s "url", not a string%s' % (what, _kind(item.get('url')), fix), path=where)
        for key, types, words in (('type', (str,), 'a string'), ('insecure', (bool,), 'true or false'),
                                  ('channel', (str,), 'a string')):
            if item.get(key) is not None and not isinstance(item[key], types):
                # imgadm takes any truthy "insecure"; "false" (a string) would turn TLS checks off, so we refuse
                raise ImageError('%s has %s "%s", not %s%s' % (what, _kind(item[key]), key, words, fix), path=where)
        extra = {k: v for k, v in item.items() if k not in ('url', 'type', 'insecure')}
        kind = item.get('type')
        if kind is None:
            # imgadm's upgradeTo300 gives a typeless source "dsapi" when its URL ends in /datasets
            kind = 'dsapi' if re.search(r'/datasets/?$', item['url'].strip()) else 'imgapi'
        try:
            return cls(item['url'], kind, item.get('insecure', False), extra, strict=True, dsapi_url_checked=False)
        except InvalidParameter as e:
            raise ImageError('%s: %s%s' % (what, e.msg, fix), path=where)

    def dsapi_url_problem(self):
        """True when this is a dsapi source whose URL does not end in /datasets (imgadm DsapiSource)."""
        return self.type == 'dsapi' and not normalize_url(self.url).split('?')[0].endswith('/datasets')

    @property
    def channel(self):
        if self.extra.get('channel'):
            return self.extra['channel']
        try:
            return dict(parse_qsl(urlsplit(self.url).query)).get('channel')
        except ValueError:
            return None

    @property
    def identity(self):
        """What makes two sources the same for imgadm: normalized URL, type, insecure, channel."""
        return (normalize_url(self.url), self.type, self.insecure, self.channel)

    @property
    def secrets(self):
        return url_secrets(self.url)

    def to_config(self):
        """imgadm Source.toJSON order: type, url, insecure (only when true), then any other keys."""
        item = {'type': self.type, 'url': self.url}
        if self.insecure:
            item['insecure'] = True
        item.update(self.extra)
        return item

    def shown(self):
        """The entry as modules return it: credentials hidden."""
        return {'url': safe_url(self.url), 'type': self.type, 'insecure': self.insecure}

    def for_import(self):
        """The ImageSource an import or a ping talks to."""
        url = self.url if _SCHEME_RE.match(self.url) else 'http://' + self.url
        source = ImageSource(url, type=self.type, insecure=self.insecure)
        if isinstance(self.extra.get('channel'), str) and self.extra['channel']:
            # imgadm: a source's "channel" key is sent, and wins over a ?channel= in its URL (reference 3.9)
            source.channel = self.extra['channel']
        return source
