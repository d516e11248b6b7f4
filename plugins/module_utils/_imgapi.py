# Private to the smartos.images collection: not a public API.
# The image server clients (IMGAPI, DSAPI, docker): GET requests, retries, TLS, redirects, credentials per origin.
from __future__ import annotations

import json
import os
import ssl
import string
import threading
import time
from urllib.error import HTTPError
from urllib.parse import quote, urlencode, urljoin

from ansible.module_utils.urls import Request, basic_auth_header, make_context

from ansible_collections.smartos.images.plugins.module_utils import _http_body
from ansible_collections.smartos.images.plugins.module_utils._errors import (
    InvalidParameter, SourceError, UnsupportedImage,
)
from ansible_collections.smartos.images.plugins.module_utils._http_body import (
    JSON_TIME_FACTOR, TRANSIENT_ERRORS, FileStream, LowSpeedError, _close, _json_cost, error_message, read_body,
)
from ansible_collections.smartos.images.plugins.module_utils._paging import PAGE_MAX_BYTES, read_listing
from ansible_collections.smartos.images.plugins.module_utils._urls import (
    credential_forms, redact, scrub_secrets, url_origin, without_userinfo,
)
from ansible_collections.smartos.images.plugins.module_utils._urls import (  # pylint: disable=unused-import
    ImageSource, url_secrets,  # where the modules' other helpers take them from
)

USER_AGENT = 'smartos.images (ansible collection)'
TRANSIENT_STATUS = (408, 429, 500, 502, 503, 504)
REDIRECT_STATUS = (301, 302, 303, 307, 308)
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 5.0
MAX_REDIRECTS = 5
# The limits below are documented in docs/docsite/rst/guide_security.rst and the doc fragment.
MANIFEST_MAX_BYTES = 1 << 20       # a manifest (or ping, or error) body; a real manifest is a few KiB
LIST_MAX_COST = 32 << 20           # a listing's parsed size, estimated before parsing (_json_cost): module < 100 MB
ERROR_BODY_MAX = 64 << 10          # of an error answer, only the message is shown


def _sleep(seconds):
    time.sleep(seconds)  # looked up at call time, so tests can replace it


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
        self._secrets = credential_forms(source, self._auth)
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
            target = without_userinfo(quote(urljoin(url, location.strip()), encoding='iso-8859-1',
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
                if isinstance(getattr(e, 'reason', e), ConnectionRefusedError):
                    # nothing listens there: waiting and asking again would only delay the next source
                    raise SourceError('%s refused the connection: %s' % (shown, reason), url=shown, refused=True)
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
            return read_body(error, ERROR_BODY_MAX, 'error answer', self.timeout, self.scrub, truncate=True)
        except (SourceError,) + TRANSIENT_ERRORS:
            return b''

    def _http_error(self, error, shown):
        body = self._error_body(error)
        _close(error)
        return SourceError('%s answered HTTP %d: %s' % (shown, error.code,
                                                        self.scrub(error_message(body) or error.reason)[:600]),
                           url=shown, status=error.code)

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
            body = read_body(response, limit, what, self.timeout, self.scrub, shown=shown)
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
        """Every image the source lists (filtered by the server): ListImages page by page, by the one paging rule.

        Bounded as read_listing is, and by LIST_MAX_COST of memory for the whole listing."""
        budget = [LIST_MAX_COST]

        def fetch(paging):
            query = urlencode(sorted(dict(filters or {}, **paging).items()))
            return self.get_json('/images' + ('?' + query if query else ''), limit=PAGE_MAX_BYTES,
                                 what='a ListImages page', budget=budget)
        return read_listing(fetch, self.source.url, now=_http_body.now)


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
            checked = without_userinfo(url)
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
