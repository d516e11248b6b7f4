# Private to the smartos.images collection: not a public API.
# The image server HTTP seam: IMGAPI requests, file streams, retries, TLS, redirects, redaction, limits.
from __future__ import annotations

import base64
import http.client
import json
import os
import re
import socket
import ssl
import string
import threading
import time
import zlib
from urllib.error import HTTPError, URLError
from urllib.parse import parse_qsl, quote, unquote, urlencode, urljoin, urlsplit, urlunsplit

from ansible.module_utils.urls import Request, basic_auth_header, make_context

from ansible_collections.smartos.images.plugins.module_utils._errors import (
    InvalidParameter, SourceError, UnsupportedImage,
)

USER_AGENT = 'smartos.images (ansible collection)'
TRANSIENT_STATUS = (408, 429, 500, 502, 503, 504)
REDIRECT_STATUS = (301, 302, 303, 307, 308)
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 5.0
PAGE_SIZE = 1000   # IMGAPI ListImages: default and maximum limit
MAX_REDIRECTS = 5
# The limits below are documented in docs/docsite/rst/guide_security.rst and the doc fragment.
LOW_SPEED_LIMIT = 1024             # bytes a second, averaged over `timeout` seconds of waiting (curl -Y/-y)
JSON_TIME_FACTOR = 4               # one JSON answer, or any answer's headers, within this many times `timeout`
MANIFEST_MAX_BYTES = 1 << 20       # a manifest (or ping, or error) body; a real manifest is a few KiB
PAGE_MAX_BYTES = 8 << 20           # one ListImages page (up to 1000 manifests) or the whole DSAPI list
LIST_MAX_COST = 32 << 20           # a listing's parsed size, estimated before parsing (_json_cost): module < 100 MB
LIST_MAX_PAGES = 50
LIST_MAX_SECONDS = 300
MAX_PAGES = LIST_MAX_PAGES         # the old name
ERROR_BODY_MAX = 64 << 10          # of an error answer, only the message is shown
READ_PIECE = 64 << 10              # bytes asked for per read of a JSON body
TOKEN_COST = 64                    # bytes a parsed JSON value takes, at least, beyond its text

# Errors a retry may cure: the connection failed, dropped or timed out.
TRANSIENT_ERRORS = (URLError, ConnectionError, socket.timeout, http.client.HTTPException, ssl.SSLError)


def _sleep(seconds):
    time.sleep(seconds)  # looked up at call time, so tests can replace it


def _now():
    return time.monotonic()  # looked up at call time, so tests can replace it


class LowSpeedError(socket.timeout):
    """The server sends too slowly: a timeout, so the importer resumes and retries as for any other."""


class ImageSource:
    """An image server URL, split into what is sent, what is shown and its channel."""

    def __init__(self, url, type='imgapi', insecure=False):
        if not isinstance(url, str) or not url.strip():
            raise InvalidParameter('image source URL must be a non-empty string')
        text = url.strip()
        shown = redact(text)
        if any(c <= ' ' or c >= '\x7f' for c in text):
            raise InvalidParameter('image source "%s" contains spaces, control or non-ASCII characters: '
                                   'percent-encode them' % shown)
        try:
            parts = urlsplit(text)
            hostname = parts.hostname
        except ValueError:
            raise InvalidParameter('image source "%s" is not a valid URL (check the brackets of an IPv6 address)'
                                   % shown)
        if parts.scheme not in ('http', 'https') or not hostname:
            raise InvalidParameter('image source "%s" is not an http:// or https:// URL' % shown)
        try:
            port = parts.port
        except ValueError:
            raise InvalidParameter('image source "%s" has an invalid port (a "/", "?", "#" or "@" in a user name '
                                   'or password must be percent-encoded)' % shown)
        if '@' in text.split('://', 1)[1][len(parts.netloc):]:
            # a raw '/', '?' or '#' in a password ends the host part early: the rest would go to the wrong host
            raise InvalidParameter('image source "%s" has an "@" after its host: percent-encode "/", "?", "#" '
                                   'and "@" in its user name and password (%%2F, %%3F, %%23, %%40)' % shown)
        query = parse_qsl(parts.query)
        self.type = type
        self.insecure = insecure
        self.channel = dict(query).get('channel')
        # user:password in a URL are percent-encoded; the server wants them decoded
        self.username = unquote(parts.username) if parts.username is not None else None
        self.password = unquote(parts.password) if parts.password is not None else None
        host = hostname if ':' not in hostname else '[%s]' % hostname
        netloc = host + (':%d' % port if port else '')
        self.base = urlunsplit((parts.scheme, netloc, parts.path.rstrip('/'), '', ''))
        self.url = shown

    def __repr__(self):
        return self.url


_SCHEME_RE = re.compile(r'[A-Za-z][A-Za-z0-9+.-]*\Z')


def _userinfo_span(url):
    """(start, end) of what may be user:password in a URL: from after the first '://' (or the start) to the last '@'."""
    at = url.rfind('@')
    if at < 0:
        return None
    scheme_end = url.find('://')
    # a password may hold raw '/', '?', '#', '@' or ':', so no URL parser is trusted here: hiding more is fine
    scheme = _SCHEME_RE.match(url[:scheme_end]) if 0 <= scheme_end and scheme_end + 3 <= at else None
    return (scheme_end + 3 if scheme else 0), at


def redact(url):
    """A URL with anything that may be user:password replaced by ***, safe to show whether it parses or not."""
    if not isinstance(url, str):
        return '(a %s, not a URL)' % type(url).__name__
    span = _userinfo_span(url)
    return url if span is None else url[:span[0]] + '***' + url[span[1]:]


def url_secrets(url):
    """Every part of url that may be a secret, as written and decoded, found even where a raw '#', '/', '?' or '@'
    defeats URL parsing: the password (or, without one, the user: often a token) by position and by urlsplit."""
    found = set()
    if not isinstance(url, str):
        return found
    span = _userinfo_span(url)
    rest = url.partition('://')[2] or url
    for userinfo in ([url[span[0]:span[1]]] if span else []) + ([rest.rpartition('@')[0]] if '@' in rest else []):
        user, dummy, password = userinfo.partition(':')
        found.add(password or user)   # a token written as "token:" (an empty password) is a secret too
    try:
        parts = urlsplit(url)
        found.update((parts.password, None if parts.password else parts.username))
    except ValueError:
        pass
    found.update([unquote(s) for s in found if s])
    return {s for s in found if s}


def secret_forms(url):
    """url_secrets and the forms a server may echo back: the whole user:password and its Basic header value;
    longest first, so that a longer form is hidden whole."""
    forms = set(url_secrets(url))
    span = _userinfo_span(url) if isinstance(url, str) else None
    if span:
        userinfo = url[span[0]:span[1]]
        user, dummy, password = userinfo.partition(':')
        basic = base64.b64encode(('%s:%s' % (unquote(user), unquote(password))).encode('utf-8')).decode('ascii')
        forms.update((userinfo, unquote(userinfo), basic))
    return sorted((f for f in forms if len(f) > 2 or f in url_secrets(url)), key=len, reverse=True)


def scrub_secrets(text, forms):
    """text with every one of forms (longest first) replaced by ***."""
    text = str(text)
    for form in forms:
        text = text.replace(form, '***')
    return text


def has_credentials(url):
    """Whether url carries a user or password (or may: an '@' anywhere after the scheme)."""
    return isinstance(url, str) and '@' in (url.partition('://')[2] or url)


def safe_url(url):
    """redact(), checked: when parsing fails or leaves a secret in place, everything up to the last '@' goes."""
    if not isinstance(url, str):
        return '<not a string>'
    shown = redact(url)
    if has_credentials(url) and any(s in shown for s in url_secrets(url)):
        scheme, sep, rest = url.partition('://')
        shown = scheme + sep + '***@' + rest.rpartition('@')[2] if sep else '***@' + url.rpartition('@')[2]
    return shown


def without_credentials(url):
    """url with any user:password left out (everything up to the last '@' after the scheme)."""
    if not has_credentials(url):
        return url
    scheme, sep, rest = url.partition('://')
    return scheme + sep + rest.rpartition('@')[2] if sep else url.rpartition('@')[2]


def content_length(headers):
    """The Content-Length of an answer as an int; None when missing, repeated with other values, or not plain digits."""
    if headers is None:
        return None
    values = set(headers.get_all('Content-Length') or ()) if hasattr(headers, 'get_all') else \
        {headers.get('Content-Length')} - {None}
    if len(values) != 1:
        return None
    value = values.pop().strip()
    # str.isdigit() accepts '\xb2' (superscript two) and int() refuses 5,000 digits: only short ASCII digits count
    if not (0 < len(value) <= 20 and value.isascii() and value.isdigit()):
        return None
    return int(value)


def error_message(body):
    """The message of an IMGAPI ({code, message}) or DSAPI ({error: {message}}) error body."""
    try:
        data = json.loads(body.decode('utf-8', 'replace'))
    except (ValueError, RecursionError):  # deep nesting is a RecursionError, not a ValueError
        return body.decode('utf-8', 'replace').strip()[:200] or None
    if isinstance(data, dict):
        if isinstance(data.get('error'), dict):
            data = data['error']
        if data.get('message'):
            return '%s%s' % ('%s: ' % data['code'] if isinstance(data.get('code'), str) else '',
                             str(data['message'])[:500])
    return None


def url_origin(url):
    """(scheme, host, port) of a URL, the unit credentials belong to; None when it does not parse."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or '').lower(), port or {'http': 80, 'https': 443}.get(scheme)


def _without_userinfo(url):
    """An http(s) URL a server gave us (redirect, DSAPI file URL), without user:password; None if unusable."""
    if not isinstance(url, str) or any(c <= ' ' or c >= '\x7f' for c in url):
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # pylint: disable=pointless-statement  # raises ValueError for a bad port
    except ValueError:
        return None
    if parts.scheme not in ('http', 'https') or not host:
        return None
    return urlunsplit((parts.scheme, parts.netloc.rpartition('@')[2], parts.path, parts.query, parts.fragment))


def _read1(response, size):
    """At most size bytes, after at most one receive, so that slow senders are noticed between reads."""
    read1 = getattr(response, 'read1', None)
    return read1(size) if read1 is not None else response.read(size)


class _SpeedMeter:
    """The low-speed rule: fewer than LOW_SPEED_LIMIT bytes a second over `timeout` seconds of waiting fails."""

    def __init__(self, timeout, what):
        self.timeout = timeout
        self.what = what
        self.waited = 0.0
        self.count = 0

    def read(self, response, size):
        started = _now()
        data = _read1(response, size)
        self.waited += _now() - started  # only time spent waiting for the server counts, not our own work
        self.count += len(data)
        if self.waited >= self.timeout:
            if self.count < LOW_SPEED_LIMIT * self.timeout:
                raise LowSpeedError('%s: only %d bytes arrived in %.0f s, under the low-speed limit of %d bytes/s '
                                    'over timeout (%d s)' % (self.what, self.count, self.waited, LOW_SPEED_LIMIT,
                                                             self.timeout))
            self.waited, self.count = 0.0, 0
        return data


def _json_cost(body):
    """An upper estimate of the memory a JSON text takes once parsed: its size plus TOKEN_COST per value."""
    return len(body) + TOKEN_COST * (body.count(b',') + body.count(b'[') + body.count(b'{') + 1)


class FileStream:
    """An open GetImageFile response, read under the low-speed rule."""

    def __init__(self, response, offset, timeout=30):
        self.response = response
        self.offset = offset
        self.status = response.status
        self.content_length = content_length(response.headers)
        length = response.headers.get('Content-Length')
        self.raw_content_length = None if length is None else length[:40]
        self.content_range = response.headers.get('Content-Range')
        # repeated with other values: joined (as node joins them for imgadm), so no single digest is picked
        md5s = response.headers.get_all('Content-MD5') if hasattr(response.headers, 'get_all') else \
            [response.headers.get('Content-MD5')]
        md5s = sorted(set(m for m in md5s or () if m is not None))
        self.content_md5 = ', '.join(md5s) if md5s else None
        self._meter = _SpeedMeter(timeout, 'the image file')

    def read(self, size):
        return self._meter.read(self.response, size)

    def close(self):
        self.response.close()


def _close(response):
    try:
        response.close()
    except Exception:  # pylint: disable=broad-except  # closing a broken response must not hide the real error
        pass


def _credential_forms(source, auth):
    """Every form in which a server may echo a source's credentials back: the password (or a user-only token) raw,
    decoded, percent-encoded, and the Basic header with its base64 value. Longest first, so that a longer form is hidden whole."""
    secret = source.password or source.username   # without a password the user is the secret (url_secrets' rule)
    if not secret:
        return []
    forms = {secret, quote(secret, safe=''), quote(secret)}
    if auth:
        auth = auth.decode('ascii') if isinstance(auth, bytes) else auth
        forms.update((auth, auth.split(' ', 1)[-1]))
    return sorted((f for f in forms if f), key=len, reverse=True)


class ImageServerClient:
    """GET requests to one IMGAPI source, with retries for transient failures."""

    # imgadm's IMGAPI client asks for API version 2 (sources/imgapi.js); other kinds of server must not get it
    API_HEADERS = {'Accept-Version': '~2', 'Accept': 'application/json'}

    def __init__(self, source, validate_certs=True, ca_path=None, timeout=30, retries=3,
                 sleep=None):
        self.source = source
        self.retries = retries
        self.timeout = timeout
        self.sleep = sleep or _sleep
        # a source added as insecure (imgadm -k) skips certificate checks; imgadm inverts this by mistake
        self.validate_certs = validate_certs and not source.insecure
        self.ca_path = ca_path
        if ca_path is not None and not os.path.isfile(ca_path):
            raise InvalidParameter('ca_path "%s" does not exist or is not a file: give a PEM file of CA certificates'
                                   % ca_path, path=ca_path)
        try:
            context = make_context(cafile=ca_path, validate_certs=self.validate_certs)
        except (OSError, ssl.SSLError, ValueError) as e:
            raise InvalidParameter('ca_path "%s" could not be loaded as PEM CA certificates: %s'
                                   % (ca_path, getattr(e, 'strerror', None) or e), path=ca_path)
        # credentials go only to the source's own scheme, host and port: computed per request, never by urllib
        self._origin = url_origin(source.base)
        self._auth = basic_auth_header(source.username, source.password) if source.username is not None else None
        self._secrets = _credential_forms(source, self._auth)
        self._request = Request(timeout=timeout, context=context, http_agent=USER_AGENT, follow_redirects='none',
                                use_netrc=False, force_basic_auth=False)

    def scrub(self, text):
        """Server-given text (an error body, a status line, a Location) without this source's credentials in any form:
        a hostile server may echo the Authorization header or the password it decoded from it."""
        return scrub_secrets(text, self._secrets)

    def _url(self, path):
        """Absolute URL for a path on this source (with its channel), or path itself when absolute."""
        if path.startswith(('http://', 'https://')):
            return path
        if not self.source.channel:
            return self.source.base + path
        return self.source.base + path + ('&' if '?' in path else '?') + urlencode({'channel': self.source.channel})

    def _shown(self, path):
        """What a path on this source looks like in messages (no credentials, no query)."""
        return redact(path) if path.startswith(('http://', 'https://')) else self.source.base + path

    def headers_for(self, url, extra=None):
        """The headers of one request: Authorization only when url is on the source's own origin."""
        headers = dict(self.API_HEADERS)
        headers.update(extra or {})
        if self._auth is not None and url_origin(url) == self._origin:
            headers['Authorization'] = self._auth
        return headers

    def _redirect(self, error, url, shown):
        """Where a redirect answer points, checked: http(s) only, never from https down to http."""
        location = error.headers.get('Location') if error.headers is not None else None
        if not location:
            return None
        try:
            target = _without_userinfo(quote(urljoin(url, location.strip()), encoding='iso-8859-1',
                                             safe=string.punctuation))
        except ValueError:  # urljoin cannot read it (a broken IPv6 address)
            target = None
        if target is None:
            raise SourceError('%s redirected to "%s", which is not an http:// or https:// URL'
                              % (shown, self.scrub(redact(location))[:200]), url=shown)
        if url.startswith('https://') and target.startswith('http://'):
            raise SourceError('%s redirected from https to plain http (%s); refused: the answer would not be '
                              'protected by TLS' % (shown, self.scrub(redact(target.split('?')[0]))), url=shown)
        return target

    def _open_bounded(self, url, headers, decompress):
        """Request.open, given at most JSON_TIME_FACTOR x timeout: headers trickled a byte at a time would not end."""
        box = {}

        def work():
            try:
                box['response'] = self._request.open('GET', url, headers=headers, decompress=decompress)
            except BaseException as e:  # pylint: disable=broad-except  # handed to the caller's thread
                box['error'] = e

        worker = threading.Thread(target=work, name='request')
        worker.daemon = True  # a server that never finishes its headers must not keep the module alive
        worker.start()
        worker.join(min(JSON_TIME_FACTOR * self.timeout, threading.TIMEOUT_MAX))
        if worker.is_alive():
            raise LowSpeedError('no complete answer headers within %d s (%d x timeout)'
                                % (JSON_TIME_FACTOR * self.timeout, JSON_TIME_FACTOR))
        if 'error' in box:
            raise box['error']
        return box['response']

    def _fetch(self, url, headers, decompress, shown):
        """One GET, following up to MAX_REDIRECTS redirects; HTTPError for an error status."""
        for dummy in range(MAX_REDIRECTS + 1):
            try:
                return self._open_bounded(url, self.headers_for(url, headers), decompress)
            except HTTPError as e:
                if e.code not in REDIRECT_STATUS:
                    raise
                target = self._redirect(e, url, shown)
                if target is None:
                    raise
                _close(e)
                url = target
            except TRANSIENT_ERRORS:
                raise  # ssl.SSLCertVerificationError is a ValueError too
            except ValueError as e:  # http.client.InvalidURL, UnicodeError: a URL no retry can fix
                raise SourceError('%s could not be requested: %s' % (shown, type(e).__name__), url=shown)
        raise SourceError('%s redirected more than %d times' % (shown, MAX_REDIRECTS), url=shown)

    def _open(self, path, headers=None, decompress=True):
        """Open a URL, retrying transient failures; HTTPError for other statuses."""
        url = self._url(path)
        shown = self._shown(path)
        for attempt in range(self.retries + 1):
            try:
                return self._fetch(url, headers, decompress, shown)
            except HTTPError as e:
                if e.code not in TRANSIENT_STATUS or attempt == self.retries:
                    raise
                _close(e)
                reason = 'HTTP %d' % e.code
            except TRANSIENT_ERRORS as e:
                reason = self.scrub(getattr(e, 'reason', e))[:300]   # a bad status line is server text
                if 'CERTIFICATE_VERIFY_FAILED' in reason or 'certificate verify failed' in reason:
                    raise SourceError(
                        'the TLS certificate of %s could not be verified (%s); set ca_path to the '
                        'CA that signed it, or validate_certs: false for a test server'
                        % (self.source.url, reason), url=shown)
                if attempt == self.retries:
                    raise SourceError('%s could not be reached after %d attempt(s): %s'
                                      % (shown, attempt + 1, reason), url=shown)
            self.sleep(min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** attempt))
        raise AssertionError('unreachable')  # pragma: no cover

    def _error_body(self, error):
        """The start of an error answer's body, read under the same limits as any other."""
        try:
            return self._read_body(error, ERROR_BODY_MAX, 'error answer', truncate=True)
        except (SourceError,) + TRANSIENT_ERRORS:
            return b''

    def _http_error(self, error, shown):
        body = self._error_body(error)
        _close(error)
        return SourceError('%s answered HTTP %d: %s' % (shown, error.code,
                                                        self.scrub(error_message(body) or error.reason)[:600]),
                           url=shown, status=error.code)

    def _read_body(self, response, limit, what, truncate=False, shown=None):
        """A whole body of at most limit bytes, read in pieces under the low-speed rule and the JSON deadline."""
        declared = content_length(getattr(response, 'headers', None))
        if not truncate and declared is not None and declared > limit:
            raise SourceError('%s answered with %s bytes for %s, more than the %d allowed; refused unread'
                              % (shown, declared, what, limit), url=shown)
        meter = _SpeedMeter(self.timeout, 'reading %s from %s' % (what, shown))
        deadline = _now() + JSON_TIME_FACTOR * self.timeout
        pieces, size = [], 0
        while size <= limit:
            try:
                piece = meter.read(response, min(READ_PIECE, limit + 1 - size))
            except TRANSIENT_ERRORS:
                raise
            except (OSError, EOFError, zlib.error) as e:  # gzip's errors, for an answer sent with Content-Encoding
                raise SourceError('%s answered with %s that could not be read or decompressed (%s: %s)'
                                  % (shown, what, type(e).__name__, self.scrub(e)[:200]), url=shown)
            if not piece:
                break
            pieces.append(piece)
            size += len(piece)
            if _now() > deadline:
                raise LowSpeedError('%s: %s did not arrive whole within %d s (%d x timeout)'
                                    % (shown, what, JSON_TIME_FACTOR * self.timeout, JSON_TIME_FACTOR))
        body = b''.join(pieces)
        if size > limit:
            if truncate:
                return body[:limit]
            raise SourceError('%s answered with more than %d bytes for %s; refused before parsing'
                              % (shown, limit, what), url=shown)
        return body

    def get_json(self, path, limit=MANIFEST_MAX_BYTES, what='a JSON document', budget=None):
        """GET a JSON document of at most limit bytes; None on 404. budget: [bytes of memory a listing may still use]."""
        shown = self._shown(path)
        try:
            response = self._open(path)
        except HTTPError as e:
            if e.code == 404:
                _close(e)
                return None
            raise self._http_error(e, shown)
        try:
            body = self._read_body(response, limit, what, shown=shown)
        except TRANSIENT_ERRORS as e:
            raise SourceError('reading %s failed: %s' % (shown, self.scrub(e)[:300]), url=shown)
        finally:
            _close(response)
        if budget is not None:
            cost = _json_cost(body)
            if cost > budget[0]:
                raise SourceError('%s: the image list is too large (it would take more than %d MiB of memory); '
                                  'use filters or a channel to list fewer images' % (shown, LIST_MAX_COST >> 20),
                                  url=shown)
            budget[0] -= cost
        try:
            document = json.loads(body.decode('utf-8'))
        except (ValueError, RecursionError) as e:
            raise SourceError('%s answered with invalid JSON (%s)' % (shown, str(e)[:200]), url=shown)
        if document is None:
            raise SourceError('%s answered with JSON null' % shown, url=shown)  # None means 404 to callers
        return document

    def get_image(self, uuid):
        """GetImage: the manifest of one image, or None when the source does not have it."""
        manifest = self.get_json('/images/%s' % quote(uuid), what='a manifest')
        if manifest is not None and not isinstance(manifest, dict):
            raise SourceError('%s answered GetImage for %s with a %s, not a manifest object'
                              % (self.source.url, uuid, type(manifest).__name__))
        return manifest

    def ping(self):
        """True when the source answers /ping as an IMGAPI server does."""
        answer = self.get_json('/ping')
        return isinstance(answer, dict) and bool(answer.get('imgapi'))

    def file_path(self, uuid):
        """Where the image file is: GetImageFile."""
        return '/images/%s/file' % quote(uuid)

    def open_file(self, uuid, offset=0):
        """The image file from a byte offset (Range), as a FileStream."""
        path = self.file_path(uuid)
        headers = {'Accept': '*/*'}
        if offset:
            headers['Range'] = 'bytes=%d-' % offset
        try:
            return FileStream(self._open(path, headers=headers, decompress=False), offset, timeout=self.timeout)
        except HTTPError as e:
            raise self._http_error(e, self._shown(path))

    def list_raw(self, filters=None):
        """Every image the source lists (filtered by the server): ListImages page by page, as imgadm reads it.

        Bounded: LIST_MAX_PAGES pages, LIST_MAX_SECONDS in all, LIST_MAX_COST of memory; a server that ignores
        the marker (a full page with nothing new) is an error, not a short list."""
        images, marker, seen = [], None, set()
        budget = [LIST_MAX_COST]
        deadline = _now() + LIST_MAX_SECONDS
        for number in range(1, LIST_MAX_PAGES + 1):
            if _now() > deadline:
                break
            params = dict(filters or {})
            if marker is not None:
                params.update(limit=PAGE_SIZE, marker=marker)
            query = '?' + urlencode(sorted(params.items())) if params else ''
            page = self.get_json('/images' + query, limit=PAGE_MAX_BYTES, what='a ListImages page', budget=budget)
            if not isinstance(page, list):
                raise SourceError('%s answered ListImages with %s, not a list of images'
                                  % (self.source.url, 'HTTP 404' if page is None else 'a ' + type(page).__name__),
                                  url=self.source.url)
            full = len(page) == PAGE_SIZE  # more than a page: the server ignores limit and sent everything
            if marker and page and isinstance(page[0], dict) and page[0].get('uuid') == marker:
                page = page[1:]  # a marker page starts with the marker image again
            new = [m for m in page if not (isinstance(m, dict) and isinstance(m.get('uuid'), str)
                                           and m['uuid'] in seen)]
            seen.update(m['uuid'] for m in new if isinstance(m, dict) and isinstance(m.get('uuid'), str))
            if marker and page and not new:
                raise SourceError('%s ignores the ListImages marker: page %d after image %s lists only images it '
                                  'listed before, so its list cannot be read past the first page'
                                  % (self.source.url, number, marker), url=self.source.url)
            images.extend(new)  # images repeated at a page edge (same published_at) are listed once
            last = page[-1] if page else None
            if not full or not isinstance(last, dict) or not isinstance(last.get('uuid'), str) \
                    or last['uuid'] == marker:
                return images
            marker = last['uuid']
        raise SourceError('%s: ListImages did not end within %d pages and %d s; use filters or a channel to list '
                          'fewer images' % (self.source.url, LIST_MAX_PAGES, LIST_MAX_SECONDS), url=self.source.url)


class DsapiClient(ImageServerClient):
    """An old Dataset API source (URL ending in /datasets): v1 manifests, files at their own URLs."""

    # imgadm's DSAPI client sends no Accept-Version: restify's versioned DSAPI routes answer 405 to ~2
    API_HEADERS = {'Accept': 'application/json'}

    def __init__(self, source, **kw):
        super().__init__(source, **kw)
        if not self.source.base.endswith('/datasets'):
            # a configured source that cannot be asked, as imgadm's ConfigError when the source is used
            raise SourceError('"dsapi" source URL does not end with "/datasets": "%s"' % source.url, url=source.url)
        self.root = self.source.base[:-len('/datasets')]
        self._manifests = {}

    def _url(self, path):
        return path if path.startswith(('http://', 'https://')) else self.root + path

    def _shown(self, path):
        if path.startswith(('http://', 'https://')):
            return redact(path)
        return redact(self.source.url).split('?')[0].rstrip('/')[:-len('/datasets')] + path

    def get_image(self, uuid):
        """GET /datasets/<uuid>: the v1 manifest, as the source sent it."""
        manifest = self.get_json('/datasets/%s' % quote(uuid), what='a manifest')
        if manifest is not None and not isinstance(manifest, dict):
            raise SourceError('%s answered for %s with a %s, not a manifest object'
                              % (self.source.url, uuid, type(manifest).__name__))
        if manifest is not None:
            self._manifests[uuid] = manifest
        return manifest

    def file_path(self, uuid):
        """files[0].url of the manifest, else <base>/datasets/<uuid>/<files[0].path>."""
        manifest = self._manifests.get(uuid) or self.get_image(uuid) or {}
        files = manifest.get('files')
        entry = files[0] if isinstance(files, list) and files and isinstance(files[0], dict) else {}
        url = entry.get('url')
        if isinstance(url, str) and url.startswith(('http://', 'https://')):
            checked = _without_userinfo(url)
            if checked is None:
                raise SourceError('the DSAPI manifest of %s from %s has an unusable files[0].url "%s"'
                                  % (uuid, self.source.url, redact(url)[:200]))
            return checked
        if not isinstance(entry.get('path'), str) or not entry['path']:
            raise SourceError('the DSAPI manifest of %s from %s has neither files[0].url nor files[0].path'
                              % (uuid, self.source.url))
        return '/datasets/%s/%s' % (quote(uuid), quote(entry['path']))

    def ping(self):
        """DSAPI: GET <base>/ping must answer 200."""
        return self.get_json('/ping') is not None

    def list_raw(self, filters=None):
        """GET <base>/datasets: every v1 manifest (DSAPI filters name, version, type, os)."""
        page = self.get_json('/datasets' + ('?' + urlencode(sorted(filters.items())) if filters else ''),
                             limit=PAGE_MAX_BYTES, what='the dataset list', budget=[LIST_MAX_COST])
        if not isinstance(page, list):
            raise SourceError('%s did not answer with a list of datasets' % self.source.url)
        return page


class DockerClient(ImageServerClient):
    """A docker registry source: kept in the list for imgadm, pinged, never imported from."""

    API_HEADERS = {'Accept': 'application/json'}

    def ping(self):
        """Registry v2: GET /v2/ answers 200, or 401 when it wants a login."""
        try:
            _close(self._open('/v2/'))
        except HTTPError as e:
            _close(e)
            return e.code == 401
        return True

    def get_image(self, uuid):
        raise UnsupportedImage('importing from docker source %s is not supported' % self.source.url)

    def list_raw(self, filters=None):
        return []


def client_for(source, **kw):
    """The client class for the source's type."""
    return {'imgapi': ImageServerClient, 'dsapi': DsapiClient, 'docker': DockerClient}[source.type](source, **kw)


def client_from_params(source, params, client_factory=None):
    """The client of a source, built from a module's validate_certs, ca_path, timeout and retries (the one place)."""
    return (client_factory or client_for)(source, validate_certs=params['validate_certs'], ca_path=params['ca_path'],
                                          timeout=params['timeout'], retries=params['retries'])
