# Private to the smartos.images collection: not a public API.
# The image server HTTP seam: IMGAPI requests, file streams, retries, TLS, redaction.
from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from urllib.error import HTTPError, URLError
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from ansible.module_utils.urls import Request

from ansible_collections.smartos.images.plugins.module_utils._errors import (
    InvalidParameter, SourceError,
)

USER_AGENT = 'smartos.images (ansible collection)'
TRANSIENT_STATUS = (408, 429, 500, 502, 503, 504)
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 5.0
# Errors a retry may cure: the connection failed, dropped or timed out.
TRANSIENT_ERRORS = (URLError, ConnectionError, socket.timeout, http.client.HTTPException, ssl.SSLError)


class Source:
    """An image server URL, split into what is sent, what is shown and its channel."""

    def __init__(self, url, type='imgapi'):
        if not isinstance(url, str) or not url.strip():
            raise InvalidParameter('image source URL must be a non-empty string')
        parts = urlsplit(url.strip())
        if parts.scheme not in ('http', 'https') or not parts.hostname:
            raise InvalidParameter('image source "%s" is not an http:// or https:// URL'
                                   % redact(url))
        query = parse_qsl(parts.query)
        self.type = type
        self.channel = dict(query).get('channel')
        self.username = parts.username
        self.password = parts.password
        host = parts.hostname if ':' not in parts.hostname else '[%s]' % parts.hostname
        netloc = host + (':%d' % parts.port if parts.port else '')
        self.base = urlunsplit((parts.scheme, netloc, parts.path.rstrip('/'), '', ''))
        self.url = redact(url.strip())

    def __repr__(self):
        return self.url


def redact(url):
    """A URL with any user:password replaced, safe to show."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = '***@' + parts.netloc.rpartition('@')[2]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def error_message(body):
    """The message of an IMGAPI ({code, message}) or DSAPI ({error: {message}}) error body."""
    try:
        data = json.loads(body.decode('utf-8', 'replace'))
    except ValueError:
        return body.decode('utf-8', 'replace').strip()[:200] or None
    if isinstance(data, dict):
        if isinstance(data.get('error'), dict):
            data = data['error']
        if data.get('message'):
            return '%s%s' % ('%s: ' % data['code'] if isinstance(data.get('code'), str) else '',
                             data['message'])
    return None


class FileStream:
    """An open GetImageFile response."""

    def __init__(self, response, offset):
        self.response = response
        self.offset = offset
        self.status = response.status
        length = response.headers.get('Content-Length')
        self.content_length = int(length) if length and length.isdigit() else None
        self.raw_content_length = length

    def read(self, size):
        return self.response.read(size)

    def close(self):
        self.response.close()


class ImageServerClient:
    """GET requests to one IMGAPI source, with retries for transient failures."""

    def __init__(self, source, validate_certs=True, ca_path=None, timeout=30, retries=3,
                 sleep=time.sleep):
        self.source = source
        self.retries = retries
        self.sleep = sleep
        self._request = Request(
            headers={'Accept-Version': '~2', 'Accept': 'application/json'},
            timeout=timeout, validate_certs=validate_certs, ca_path=ca_path,
            url_username=source.username, url_password=source.password,
            force_basic_auth=bool(source.username), http_agent=USER_AGENT,
            follow_redirects='safe', use_netrc=False)

    def _url(self, path):
        query = urlencode({'channel': self.source.channel}) if self.source.channel else ''
        return self.source.base + path + ('?' + query if query else '')

    def _open(self, path, headers=None, decompress=True):
        """Open a URL, retrying transient failures; HTTPError for other statuses."""
        url = self._url(path)
        shown = self.source.url.split('?')[0] + path
        for attempt in range(self.retries + 1):
            try:
                return self._request.open('GET', url, headers=headers, decompress=decompress)
            except HTTPError as e:
                if e.code not in TRANSIENT_STATUS or attempt == self.retries:
                    raise
                reason = 'HTTP %d' % e.code
            except TRANSIENT_ERRORS as e:
                reason = str(getattr(e, 'reason', e))
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

    def get_json(self, path):
        """GET a JSON document; None on 404."""
        shown = self.source.url.split('?')[0] + path
        try:
            response = self._open(path)
            body = response.read()
        except HTTPError as e:
            if e.code == 404:
                return None
            raise SourceError('%s answered HTTP %d: %s' % (shown, e.code, error_message(e.read()) or e.reason),
                              url=shown, status=e.code)
        except TRANSIENT_ERRORS as e:
            raise SourceError('reading %s failed: %s' % (shown, e), url=shown)
        try:
            return json.loads(body.decode('utf-8'))
        except ValueError as e:
            raise SourceError('%s answered with invalid JSON (%s)' % (shown, e), url=shown)

    def get_image(self, uuid):
        """GetImage: the manifest of one image, or None when the source does not have it."""
        manifest = self.get_json('/images/%s' % quote(uuid))
        if manifest is not None and not isinstance(manifest, dict):
            raise SourceError('%s answered GetImage for %s with a %s, not a manifest object'
                              % (self.source.url, uuid, type(manifest).__name__))
        return manifest

    def ping(self):
        """True when the source answers /ping as an IMGAPI server does."""
        answer = self.get_json('/ping')
        return isinstance(answer, dict) and bool(answer.get('imgapi'))

    def open_file(self, uuid, offset=0):
        """GetImageFile from a byte offset (Range), as a FileStream."""
        path = '/images/%s/file' % quote(uuid)
        headers = {'Accept': '*/*'}
        if offset:
            headers['Range'] = 'bytes=%d-' % offset
        try:
            return FileStream(self._open(path, headers=headers, decompress=False), offset)
        except HTTPError as e:
            shown = self.source.url.split('?')[0] + path
            raise SourceError('%s answered HTTP %d: %s' % (shown, e.code, error_message(e.read()) or e.reason),
                              url=shown, status=e.code)
