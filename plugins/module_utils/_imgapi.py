# Private to the smartos.images collection: not a public API.
# The image server HTTP seam: IMGAPI requests, file streams, retries, TLS, redaction.
from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from urllib.error import HTTPError, URLError
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from ansible.module_utils.urls import Request

from ansible_collections.smartos.images.plugins.module_utils._errors import (
    InvalidParameter, SourceError, UnsupportedImage,
)

USER_AGENT = 'smartos.images (ansible collection)'
TRANSIENT_STATUS = (408, 429, 500, 502, 503, 504)
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 5.0
PAGE_SIZE = 1000   # IMGAPI ListImages: default and maximum limit
MAX_PAGES = 10000
# Errors a retry may cure: the connection failed, dropped or timed out.
TRANSIENT_ERRORS = (URLError, ConnectionError, socket.timeout, http.client.HTTPException, ssl.SSLError)


def _sleep(seconds):
    time.sleep(seconds)  # looked up at call time, so tests can replace it


class Source:
    """An image server URL, split into what is sent, what is shown and its channel."""

    def __init__(self, url, type='imgapi', insecure=False):
        if not isinstance(url, str) or not url.strip():
            raise InvalidParameter('image source URL must be a non-empty string')
        parts = urlsplit(url.strip())
        if parts.scheme not in ('http', 'https') or not parts.hostname:
            raise InvalidParameter('image source "%s" is not an http:// or https:// URL'
                                   % redact(url))
        try:
            port = parts.port
        except ValueError:
            raise InvalidParameter('image source "%s" has an invalid port' % redact(url))
        query = parse_qsl(parts.query)
        self.type = type
        self.insecure = insecure
        self.channel = dict(query).get('channel')
        # user:password in a URL are percent-encoded; the server wants them decoded
        self.username = unquote(parts.username) if parts.username is not None else None
        self.password = unquote(parts.password) if parts.password is not None else None
        host = parts.hostname if ':' not in parts.hostname else '[%s]' % parts.hostname
        netloc = host + (':%d' % port if port else '')
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
                 sleep=None):
        self.source = source
        self.retries = retries
        self.sleep = sleep or _sleep
        # a source added as insecure (imgadm -k) skips certificate checks; imgadm inverts this by mistake
        self._request = Request(
            headers={'Accept-Version': '~2', 'Accept': 'application/json'},
            timeout=timeout, validate_certs=validate_certs and not source.insecure, ca_path=ca_path,
            url_username=source.username, url_password=source.password,
            force_basic_auth=bool(source.username), http_agent=USER_AGENT,
            follow_redirects='safe', use_netrc=False)

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

    def _open(self, path, headers=None, decompress=True):
        """Open a URL, retrying transient failures; HTTPError for other statuses."""
        url = self._url(path)
        shown = self._shown(path)
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
        shown = self._shown(path)
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
            document = json.loads(body.decode('utf-8'))
        except ValueError as e:
            raise SourceError('%s answered with invalid JSON (%s)' % (shown, e), url=shown)
        if document is None:
            raise SourceError('%s answered with JSON null' % shown, url=shown)  # None means 404 to callers
        return document

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
            return FileStream(self._open(path, headers=headers, decompress=False), offset)
        except HTTPError as e:
            shown = self._shown(path)
            raise SourceError('%s answered HTTP %d: %s' % (shown, e.code, error_message(e.read()) or e.reason),
                              url=shown, status=e.code)

    def list_raw(self, filters=None):
        """Every image the source lists (filtered by the server): ListImages page by page, as imgadm reads it."""
        images, marker = [], None
        for dummy in range(MAX_PAGES):
            params = dict(filters or {})
            if marker is not None:
                params.update(limit=PAGE_SIZE, marker=marker)
            query = '?' + urlencode(sorted(params.items())) if params else ''
            page = self.get_json('/images' + query)
            if not isinstance(page, list):
                raise SourceError('%s answered ListImages with %s, not a list of images'
                                  % (self.source.url, 'HTTP 404' if page is None else 'a ' + type(page).__name__),
                                  url=self.source.url)
            full = len(page) >= PAGE_SIZE
            if marker and page and isinstance(page[0], dict) and page[0].get('uuid') == marker:
                page = page[1:]  # a marker page starts with the marker image again
            images.extend(page)
            if not full or not page or not isinstance(page[-1], dict) or page[-1].get('uuid') == marker:
                return images
            marker = page[-1].get('uuid')
        raise SourceError('%s: ListImages did not end after %d pages' % (self.source.url, MAX_PAGES))


class DsapiClient(ImageServerClient):
    """An old Dataset API source (URL ending in /datasets): v1 manifests, files at their own URLs."""

    def __init__(self, source, **kw):
        super().__init__(source, **kw)
        if not self.source.base.endswith('/datasets'):
            raise InvalidParameter('"dsapi" source URL does not end with "/datasets": "%s"' % source.url)
        self.root = self.source.base[:-len('/datasets')]
        self._manifests = {}

    def _url(self, path):
        return path if path.startswith(('http://', 'https://')) else self.root + path

    def _shown(self, path):
        if path.startswith(('http://', 'https://')):
            return redact(path)
        return redact(self.source.url).split('?')[0][:-len('/datasets')] + path

    def get_image(self, uuid):
        """GET /datasets/<uuid>: the v1 manifest, as the source sent it."""
        manifest = self.get_json('/datasets/%s' % quote(uuid))
        if manifest is not None and not isinstance(manifest, dict):
            raise SourceError('%s answered for %s with a %s, not a manifest object'
                              % (self.source.url, uuid, type(manifest).__name__))
        if manifest is not None:
            self._manifests[uuid] = manifest
        return manifest

    def file_path(self, uuid):
        """files[0].url of the manifest, else <base>/datasets/<uuid>/<files[0].path>."""
        manifest = self._manifests.get(uuid) or self.get_image(uuid) or {}
        entry = (manifest.get('files') or [{}])[0]
        if isinstance(entry.get('url'), str) and entry['url'].startswith(('http://', 'https://')):
            return entry['url']
        if not entry.get('path'):
            raise SourceError('the DSAPI manifest of %s from %s has neither files[0].url nor files[0].path'
                              % (uuid, self.source.url))
        return '/datasets/%s/%s' % (quote(uuid), quote(entry['path']))

    def ping(self):
        """DSAPI: GET <base>/ping must answer 200."""
        return self.get_json('/ping') is not None

    def list_raw(self, filters=None):
        """GET <base>/datasets: every v1 manifest (DSAPI filters name, version, type, os)."""
        page = self.get_json('/datasets' + ('?' + urlencode(sorted(filters.items())) if filters else ''))
        if not isinstance(page, list):
            raise SourceError('%s did not answer with a list of datasets' % self.source.url)
        return page


class DockerClient(ImageServerClient):
    """A docker registry source: kept in the list for imgadm, pinged, never imported from."""

    def ping(self):
        """Registry v2: GET /v2/ answers 200, or 401 when it wants a login."""
        try:
            self._open('/v2/')
        except HTTPError as e:
            return e.code == 401
        return True

    def get_image(self, uuid):
        raise UnsupportedImage('importing from docker source %s is not supported' % self.source.url)

    def list_raw(self, filters=None):
        return []


def client_for(source, **kw):
    """The client class for the source's type."""
    return {'imgapi': ImageServerClient, 'dsapi': DsapiClient, 'docker': DockerClient}[source.type](source, **kw)
