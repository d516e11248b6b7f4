# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_imgapi.py: the client over a fake Request (retries, redirects, listings, DSAPI, caps)."""

from __future__ import annotations

import base64
import email.message
import http.client
import io
import json
import socket
import ssl
import urllib.parse
import urllib.request
from urllib.error import HTTPError, URLError

import pytest

from ansible_collections.smartos.images.plugins.module_utils import _imgapi
from ansible_collections.smartos.images.plugins.module_utils._errors import InvalidParameter, SourceError
from ansible_collections.smartos.images.plugins.module_utils._http_body import FileStream
from ansible_collections.smartos.images.plugins.module_utils._imgapi import ImageServerClient
from ansible_collections.smartos.images.plugins.module_utils._urls import ImageSource
from ansible_collections.smartos.images.tests.unit.fakehost import (
    FakeRequest, FakeResponse, Trickling, http_error, imgapi_client, manifests, message_of, ok, paged,
)

U = '2f1dc911-6401-4fa4-8e9d-67ea2e39c271'
MANIFEST = {'v': 2, 'uuid': U, 'name': 'base-64-lts', 'version': '24.4.1', 'state': 'active'}
SECRET_URL = 'https://alice:s3cret@img.example.com/?channel=dev'
# without the slash before '?': errors would show '//images' (see the xfail test below)
SECRET = 'https://alice:s3cret@img.example.com?channel=dev'
CERT_FAILED = ssl.SSLCertVerificationError(
    1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate in certificate chain (_ssl.c:1006)')


# ---- the client over a fake Request ----

def fail(exc):
    def answer(url):
        raise exc
    return answer


API = {'Accept-Version': '~2', 'Accept': 'application/json'}
ALICE = b'Basic ' + base64.b64encode(b'alice:s3cret')


def test_request_defaults():
    c = ImageServerClient(ImageSource(SECRET_URL), validate_certs=False, timeout=7)
    r = c._request
    # urllib never gets the credentials: the client adds Authorization itself, per request URL
    assert (r.url_username, r.url_password, r.force_basic_auth) == (None, None, False)
    assert r.follow_redirects == 'none'
    assert r.timeout == 7 and c.timeout == 7
    assert r.use_netrc is False
    assert r.http_agent == _imgapi.USER_AGENT
    assert r.context.verify_mode == ssl.CERT_NONE


@pytest.mark.parametrize('validate_certs, insecure, checked', [
    (True, False, True),
    (False, False, False),
    (True, True, False),     # a source added as insecure (imgadm -k) is never checked
])
def test_request_certificate_checks(validate_certs, insecure, checked):
    c = ImageServerClient(ImageSource('https://img.example.com', insecure=insecure), validate_certs=validate_certs)
    assert c.validate_certs is checked
    assert (c._request.context.verify_mode == ssl.CERT_REQUIRED) is checked


def test_request_without_credentials_sends_no_basic_auth():
    c = ImageServerClient(ImageSource('http://img.example.com'))
    assert c.headers_for('http://img.example.com/images') == API


def test_get_image():
    c, req, sleeps = imgapi_client(ok(MANIFEST))
    assert c.get_image(U) == MANIFEST
    assert req.calls == [{'method': 'GET', 'url': 'http://img.example.com/images/' + U, 'headers': API, 'decompress': True}]
    assert sleeps == []


def test_channel_is_sent_as_a_query_parameter():
    c, req, dummy = imgapi_client(ok(MANIFEST), url='http://img.example.com/?channel=dev')
    c.get_image(U)
    assert req.calls[0]['url'] == 'http://img.example.com/images/%s?channel=dev' % U


def test_404_is_none_without_retry():
    c, req, sleeps = imgapi_client(http_error(404, b'{"code": "ResourceNotFound", "message": "not found"}'))
    assert c.get_image(U) is None
    assert len(req.calls) == 1
    assert sleeps == []


@pytest.mark.parametrize('status', [408, 429, 500, 502, 503, 504])
def test_transient_status_is_retried(status):
    c, req, sleeps = imgapi_client(http_error(status), ok(MANIFEST))
    assert c.get_image(U) == MANIFEST
    assert len(req.calls) == 2
    assert sleeps == [_imgapi.BACKOFF_FIRST]


@pytest.mark.parametrize('exc', [
    URLError(ConnectionResetError(104, 'Connection reset by peer')),
    ConnectionResetError(104, 'Connection reset by peer'),
    socket.timeout('timed out'),
    http.client.RemoteDisconnected('Remote end closed connection without response'),
])
def test_transient_errors_are_retried(exc):
    c, req, sleeps = imgapi_client(fail(exc), fail(exc), ok(MANIFEST))
    assert c.get_image(U) == MANIFEST
    assert len(req.calls) == 3
    assert sleeps == [0.5, 1.0]


def test_backoff_grows_and_is_capped():
    c, req, sleeps = imgapi_client(http_error(503), retries=6)
    with pytest.raises(SourceError):
        c.get_image(U)
    assert len(req.calls) == 7
    assert sleeps == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_status_retries_exhausted():
    c, req, sleeps = imgapi_client(http_error(503, b'{"code": "ServiceUnavailableError", "message": "try later"}'),
                                   url=SECRET, retries=2)
    with pytest.raises(SourceError) as exc:
        c.get_image(U)
    assert len(req.calls) == 3
    assert len(sleeps) == 2
    assert exc.value.msg == ('https://img.example.com/images/%s answered HTTP 503: ServiceUnavailableError: try later' % U)
    assert exc.value.evidence == {'url': 'https://img.example.com/images/' + U, 'status': 503}


def test_connection_retries_exhausted_names_url_without_credentials():
    c, req, sleeps = imgapi_client(fail(URLError(ConnectionResetError(104, 'Connection reset by peer'))), url=SECRET)
    with pytest.raises(SourceError) as exc:
        c.get_image(U)
    assert len(req.calls) == 4
    assert len(sleeps) == 3
    assert exc.value.msg == ('https://img.example.com/images/%s could not be reached after 4 attempt(s): '
                             '[Errno 104] Connection reset by peer' % U)
    assert exc.value.evidence == {'url': 'https://img.example.com/images/' + U}


@pytest.mark.parametrize('exc', [URLError(ConnectionRefusedError(111, 'Connection refused')),
                                 ConnectionRefusedError(111, 'Connection refused')])
def test_a_refused_connection_is_not_waited_for(exc):
    # nothing listens there: no backoff, so that the next source is asked at once
    c, req, sleeps = imgapi_client(fail(exc), url=SECRET)
    with pytest.raises(SourceError) as exc_info:
        c.get_image(U)
    assert len(req.calls) == 1 and sleeps == []
    assert exc_info.value.msg == ('https://img.example.com/images/%s refused the connection: '
                                  '[Errno 111] Connection refused' % U)
    assert exc_info.value.evidence == {'url': 'https://img.example.com/images/' + U, 'refused': True}
    # the request itself still carries the channel and no credentials in the URL
    assert req.calls[0]['url'] == 'https://img.example.com/images/%s?channel=dev' % U


def test_no_retries():
    c, req, sleeps = imgapi_client(http_error(500), ok(MANIFEST), retries=0)
    with pytest.raises(SourceError) as exc:
        c.get_image(U)
    assert len(req.calls) == 1
    assert sleeps == []
    assert exc.value.evidence['status'] == 500


@pytest.mark.parametrize('status', [400, 401, 403, 422])
def test_other_status_is_not_retried(status):
    c, req, sleeps = imgapi_client(http_error(status, b'{"code": "ValidationFailed", "message": "boom", "errors": []}'))
    with pytest.raises(SourceError) as exc:
        c.get_image(U)
    assert len(req.calls) == 1
    assert sleeps == []
    assert exc.value.msg.endswith('answered HTTP %d: ValidationFailed: boom' % status)


def test_error_without_body_uses_reason():
    c, dummy, dummy2 = imgapi_client(http_error(403, b''))
    with pytest.raises(SourceError) as exc:
        c.get_image(U)
    assert exc.value.msg.endswith('answered HTTP 403: Forbidden')


@pytest.mark.parametrize('exc', [URLError(CERT_FAILED), CERT_FAILED])
def test_certificate_failure_is_not_retried_and_explains(exc):
    c, req, sleeps = imgapi_client(fail(exc), ok(MANIFEST), url='https://alice:s3cret@img.example.com/')
    with pytest.raises(SourceError) as err:
        c.get_image(U)
    assert len(req.calls) == 1
    assert sleeps == []
    msg = err.value.msg
    assert msg.startswith('the TLS certificate of https://***@img.example.com/ could not be verified (')
    assert 'CERTIFICATE_VERIFY_FAILED' in msg
    assert 'set ca_path' in msg and 'validate_certs: false' in msg
    assert 's3cret' not in msg and 's3cret' not in str(err.value.evidence)


@pytest.mark.parametrize('body, why', [
    (b'{"uuid": ', 'invalid JSON'),
    (b'<html>hello</html>', 'invalid JSON'),
    (b'\xff\xfe', 'invalid JSON'),
])
def test_invalid_json(body, why):
    c, dummy, dummy2 = imgapi_client(ok(body))
    with pytest.raises(SourceError) as exc:
        c.get_image(U)
    assert exc.value.msg.startswith('http://img.example.com/images/%s answered with %s' % (U, why))


@pytest.mark.parametrize('body', [[MANIFEST], 'manifest', 42])
def test_get_image_that_is_not_an_object(body):
    c, dummy, dummy2 = imgapi_client(ok(body))
    with pytest.raises(SourceError) as exc:
        c.get_image(U)
    assert 'not a manifest object' in exc.value.msg


def test_body_read_failure_is_a_source_error():
    class Dropping(FakeResponse):
        def read(self, size=-1):
            raise socket.timeout('timed out')
    c, dummy, dummy2 = imgapi_client(lambda url: Dropping())
    with pytest.raises(SourceError) as exc:
        c.get_image(U)
    assert exc.value.msg == 'reading http://img.example.com/images/%s failed: timed out' % U


@pytest.mark.parametrize('answer, expected', [
    (ok({'ping': 'pong', 'version': '4.13.1', 'imgapi': True}), True),
    (ok({'ping': 'pong'}), False),    # DSAPI
    (ok([]), False),
    (http_error(404), False),
])
def test_ping(answer, expected):
    c, req, dummy = imgapi_client(answer)
    assert c.ping() is expected
    assert req.calls[0]['url'] == 'http://img.example.com/ping'


def test_error_names_the_requested_url_for_a_source_with_trailing_slash():
    c, dummy, dummy2 = imgapi_client(http_error(500), url='http://img.example.com/', retries=0)
    with pytest.raises(SourceError) as exc:
        c.get_image(U)
    assert exc.value.evidence['url'] == 'http://img.example.com/images/' + U


# ---- open_file ----

def test_open_file_from_the_start():
    c, req, dummy = imgapi_client(ok(b'0123456789', headers={'Content-Length': '10'}), url='http://img.example.com?channel=dev')
    stream = c.open_file(U)
    assert isinstance(stream, FileStream)
    assert req.calls == [{'method': 'GET', 'url': 'http://img.example.com/images/%s/file?channel=dev' % U,
                          'headers': {'Accept-Version': '~2', 'Accept': '*/*'}, 'decompress': False}]
    assert (stream.status, stream.offset, stream.content_length, stream.raw_content_length) == (200, 0, 10, '10')
    assert stream.read(4) == b'0123'
    assert stream.read(100) == b'456789'
    stream.close()
    assert stream.response.closed


def test_open_file_sends_range_for_an_offset():
    c, req, dummy = imgapi_client(ok(b'56789', status=206, headers={'Content-Length': '5', 'Content-Range': 'bytes 5-9/10'}))
    stream = c.open_file(U, offset=5)
    assert req.calls[0]['headers'] == {'Accept-Version': '~2', 'Accept': '*/*', 'Range': 'bytes=5-'}
    assert (stream.status, stream.offset, stream.content_length) == (206, 5, 5)


@pytest.mark.parametrize('headers, length, raw', [
    ({}, None, None),
    ({'Content-Length': 'abc'}, None, 'abc'),
    ({'Content-Length': '-1'}, None, '-1'),
    ({'Content-Length': '0'}, 0, '0'),
])
def test_open_file_content_length(headers, length, raw):
    c, dummy, dummy2 = imgapi_client(ok(b'', headers=headers))
    stream = c.open_file(U)
    assert (stream.content_length, stream.raw_content_length) == (length, raw)


def test_open_file_error_is_a_source_error_with_status():
    c, dummy, dummy2 = imgapi_client(http_error(404, b'{"code": "ResourceNotFound", "message": "image has no file"}'), url=SECRET)
    with pytest.raises(SourceError) as exc:
        c.open_file(U)
    assert exc.value.msg == 'https://img.example.com/images/%s/file answered HTTP 404: ResourceNotFound: image has no file' % U
    assert exc.value.evidence['status'] == 404


def test_open_file_retries_transient_failures():
    c, req, sleeps = imgapi_client(http_error(502), fail(socket.timeout('timed out')), ok(b'x', headers={'Content-Length': '1'}))
    assert c.open_file(U, offset=3).read(1) == b'x'
    assert len(req.calls) == 3
    assert all(call['headers']['Range'] == 'bytes=3-' for call in req.calls)
    assert len(sleeps) == 2


# ---- the real ansible Request, with urlopen faked: what goes on the wire ----

class Opened:
    def __init__(self):
        self.requests = []

    def __call__(self, request, data=None, timeout=None):
        self.requests.append((request, timeout))
        return FakeResponse(json.dumps(MANIFEST).encode(), headers={'Content-Length': '2'})


@pytest.fixture
def opened(monkeypatch):
    fake = Opened()
    monkeypatch.setattr(urllib.request, 'urlopen', fake)
    return fake


def test_wire_headers_of_get_image(opened):
    c = ImageServerClient(ImageSource(SECRET), timeout=9, sleep=None)
    assert c.get_image(U) == MANIFEST
    request, timeout = opened.requests[0]
    assert request.full_url == 'https://img.example.com/images/%s?channel=dev' % U
    assert request.get_method() == 'GET'
    assert request.get_header('Accept-version') == '~2'
    assert request.get_header('Accept') == 'application/json'
    assert request.get_header('User-agent') == _imgapi.USER_AGENT
    assert request.get_header('Authorization') == ALICE
    assert timeout == 9


def test_wire_headers_of_open_file(opened):
    c = ImageServerClient(ImageSource('http://img.example.com'), sleep=None)
    c.open_file(U, offset=1024)
    request, dummy = opened.requests[0]
    assert request.full_url == 'http://img.example.com/images/%s/file' % U
    assert request.get_header('Accept') == '*/*'
    assert request.get_header('Accept-version') == '~2'
    assert request.get_header('Range') == 'bytes=1024-'
    assert request.get_header('Authorization') is None


# ---- list_raw: the query of each page, the client's own caps and retries (the paging rule: test__paging) ----

def test_list_raw_first_request_has_no_limit_or_marker():
    c, req, dummy = imgapi_client(ok([MANIFEST]))
    assert c.list_raw() == [MANIFEST]
    assert [call['url'] for call in req.calls] == ['http://img.example.com/images']


@pytest.mark.parametrize('url, expected', [
    ('http://img.example.com/?channel=dev', ['http://img.example.com/images?channel=dev',
                                             'http://img.example.com/images?limit=1000&marker=%s&channel=dev']),
    ('http://img.example.com', ['http://img.example.com/images', 'http://img.example.com/images?limit=1000&marker=%s']),
])
def test_list_raw_channel_is_appended_to_the_page_query(url, expected):
    images = manifests(1200)
    c, req, dummy = imgapi_client(paged(images), url=url)
    assert c.list_raw() == images
    marker = images[999]['uuid']
    assert [call['url'] for call in req.calls] == [expected[0], expected[1] % marker]


def test_json_null_is_not_taken_for_a_404():
    c, dummy, dummy2 = imgapi_client(ok(None), url=SECRET)
    with pytest.raises(SourceError, match='answered with JSON null') as exc:
        c.list_raw()
    assert 's3cret' not in str(exc.value.evidence)


def test_list_raw_page_errors_are_retried_and_reported():
    c, req, sleeps = imgapi_client(http_error(503), ok([MANIFEST]))
    assert c.list_raw() == [MANIFEST]
    assert len(req.calls) == 2 and len(sleeps) == 1
    c, req, dummy = imgapi_client(http_error(500, b'{"code": "InternalError", "message": "oops"}'), retries=0)
    with pytest.raises(SourceError) as exc:
        c.list_raw()
    assert exc.value.msg == 'http://img.example.com/images answered HTTP 500: InternalError: oops'


# ---- DsapiClient ----

DS = 'https://datasets.example.com/datasets'
V1 = {'uuid': U, 'name': 'base64', 'version': '1.8.1', 'creator_uuid': '352971aa-31ba-496c-9ade-a379feaecd52',
      'files': [{'path': 'base64-1.8.1.zfs.bz2', 'sha1': 'a' * 40, 'size': 3}]}


def dsapi(*answers, url=DS):
    c = _imgapi.DsapiClient(ImageSource(url, type='dsapi'), retries=0, sleep=[].append)
    c._request = FakeRequest(*answers)
    return c, c._request


@pytest.mark.parametrize('url, root', [
    (DS, 'https://datasets.example.com'),
    (DS + '/', 'https://datasets.example.com'),
    ('http://127.0.0.1:8080/api/datasets', 'http://127.0.0.1:8080/api'),
    ('https://bob:pw@datasets.example.com/datasets', 'https://datasets.example.com'),
])
def test_dsapi_root(url, root):
    c, dummy = dsapi(ok([]), url=url)
    assert c.root == root


@pytest.mark.parametrize('url', ['https://datasets.example.com', 'https://datasets.example.com/images',
                                 'https://datasets.example.com/datasets/x', 'https://bob:pw@example.com/dataset'])
def test_dsapi_refuses_a_url_not_ending_in_datasets(url):
    # a source error (that source cannot be asked), so that an import goes on to the next source
    with pytest.raises(SourceError) as exc:
        _imgapi.DsapiClient(ImageSource(url, type='dsapi'))
    assert exc.value.msg.startswith('"dsapi" source URL does not end with "/datasets": "')
    assert 'pw' not in exc.value.msg


def test_dsapi_list_raw():
    c, req = dsapi(ok([V1, dict(V1, uuid=U.replace('2f', '3f'))]))
    assert [m['uuid'] for m in c.list_raw()] == [U, U.replace('2f', '3f')]
    assert [call['url'] for call in req.calls] == [DS]     # one GET, no pages


@pytest.mark.parametrize('answer', [ok({'datasets': []}), ok('x'), http_error(404)])
def test_dsapi_list_raw_that_is_not_a_list(answer):
    c, dummy = dsapi(answer)
    with pytest.raises(SourceError) as exc:
        c.list_raw()
    assert exc.value.msg == '%s did not answer with a list of datasets' % DS


@pytest.mark.parametrize('files, path, url', [
    # files[0].url, absolute: used as it is
    ([{'url': 'https://cdn.example.com/x/base64.zfs.bz2', 'path': 'base64.zfs.bz2'}],
     'https://cdn.example.com/x/base64.zfs.bz2', 'https://cdn.example.com/x/base64.zfs.bz2'),
    # else <base>/datasets/<uuid>/<files[0].path>
    ([{'path': 'base64-1.8.1.zfs.bz2'}], '/datasets/%s/base64-1.8.1.zfs.bz2' % U,
     'https://datasets.example.com/datasets/%s/base64-1.8.1.zfs.bz2' % U),
    ([{'url': 'base64.zfs.bz2', 'path': 'a b.zfs'}], '/datasets/%s/a%%20b.zfs' % U,
     'https://datasets.example.com/datasets/%s/a%%20b.zfs' % U),
])
def test_dsapi_file_path(files, path, url):
    c, req = dsapi(ok(dict(V1, files=files)))
    assert c.get_image(U)['files'] == files
    assert c.file_path(U) == path
    assert c._url(c.file_path(U)) == url
    assert len(req.calls) == 1      # the manifest is fetched once


def test_dsapi_file_path_fetches_the_manifest_when_needed():
    c, req = dsapi(ok(V1))
    assert c.file_path(U) == '/datasets/%s/base64-1.8.1.zfs.bz2' % U
    assert [call['url'] for call in req.calls] == ['%s/%s' % (DS, U)]


@pytest.mark.parametrize('manifest', [dict(V1, files=[{'sha1': 'a' * 40}]), dict(V1, files=[]), {'uuid': U}])
def test_dsapi_file_path_without_url_or_path(manifest):
    c, dummy = dsapi(ok(manifest))
    with pytest.raises(SourceError) as exc:
        c.file_path(U)
    assert exc.value.msg == 'the DSAPI manifest of %s from %s has neither files[0].url nor files[0].path' % (U, DS)


# ---- issue 10: credentials only to the source's own origin ----

def redirect(location, code=302):
    def answer(url):
        headers = email.message.Message()
        headers['Location'] = location
        raise HTTPError(url, code, 'Found', headers, io.BytesIO(b''))
    return answer


def auths(req):
    return [(call['url'], call['headers'].get('Authorization')) for call in req.calls]


@pytest.mark.parametrize('location, target, sent', [
    ('/elsewhere/x', 'https://img.example.com/elsewhere/x', True),                    # same origin
    ('https://IMG.example.com:443/x', 'https://IMG.example.com:443/x', True),        # same origin, spelled otherwise
    ('https://cdn.example.com/x', 'https://cdn.example.com/x', False),               # another host
    ('https://img.example.com:8443/x', 'https://img.example.com:8443/x', False),    # another port
    ('https://mallory:pw@cdn.example.com/x', 'https://cdn.example.com/x', False),   # userinfo is dropped
])
@pytest.mark.parametrize('code', [301, 302, 303, 307, 308])
def test_redirects_keep_credentials_on_the_origin_only(location, target, sent, code):
    c, req, dummy = imgapi_client(redirect(location, code), ok(MANIFEST), url='https://alice:s3cret@img.example.com')
    assert c.get_image(U) == MANIFEST
    assert auths(req) == [('https://img.example.com/images/' + U, ALICE), (target, ALICE if sent else None)]


def test_redirect_keeps_range_and_accept_headers():
    c, req, dummy = imgapi_client(redirect('https://cdn.example.com/f'), ok(b'x', headers={'Content-Length': '1'}),
                                  url='https://alice:s3cret@img.example.com')
    c.open_file(U, offset=7)
    assert req.calls[1]['headers'] == {'Accept-Version': '~2', 'Accept': '*/*', 'Range': 'bytes=7-'}


def test_redirect_from_https_to_http_is_refused():
    c, req, dummy = imgapi_client(redirect('http://img.example.com/images/' + U), ok(MANIFEST),
                                  url='https://alice:s3cret@img.example.com')
    with pytest.raises(SourceError) as exc:
        c.get_image(U)
    assert len(req.calls) == 1
    assert exc.value.msg == ('https://img.example.com/images/%s redirected from https to plain http '
                             '(http://img.example.com/images/%s); refused: the answer would not be protected by TLS'
                             % (U, U))


def test_redirect_from_http_to_https_is_followed_without_credentials():
    c, req, dummy = imgapi_client(redirect('https://img.example.com/images/' + U), ok(MANIFEST),
                                  url='http://alice:s3cret@img.example.com')
    assert c.get_image(U) == MANIFEST
    assert [a for dummy, a in auths(req)] == [ALICE, None]  # another scheme is another origin


@pytest.mark.parametrize('location', ['ftp://img.example.com/x', 'file:///etc/passwd', 'http://[::1/x',
                                      'https://alice:s3cret@img.example.com:99999/'])
def test_redirect_to_something_not_http_is_refused(location):
    c, req, dummy = imgapi_client(redirect(location), ok(MANIFEST), url='https://alice:s3cret@img.example.com')
    with pytest.raises(SourceError, match='not an http:// or https:// URL') as exc:
        c.get_image(U)
    assert 's3cret' not in exc.value.msg and len(req.calls) == 1


def test_redirects_are_bounded():
    c, req, dummy = imgapi_client(redirect('/again'), url='https://alice:s3cret@img.example.com')
    with pytest.raises(SourceError) as exc:
        c.get_image(U)
    assert exc.value.msg == 'https://img.example.com/images/%s redirected more than 5 times' % U
    assert len(req.calls) == 6


def test_a_redirect_without_location_is_an_http_error():
    def answer(url):
        raise HTTPError(url, 302, 'Found', email.message.Message(), io.BytesIO(b''))
    c, dummy, dummy2 = imgapi_client(answer)
    with pytest.raises(SourceError, match='answered HTTP 302'):
        c.get_image(U)


@pytest.mark.parametrize('file_url, sent', [
    ('https://datasets.example.com/datasets/%s/f.zfs.bz2' % U, True),
    ('https://cdn.example.com/f.zfs.bz2', False),
    ('http://datasets.example.com/f.zfs.bz2', False),
    ('https://datasets.example.com:444/f.zfs.bz2', False),
])
def test_dsapi_file_url_gets_credentials_only_on_the_source_origin(file_url, sent):
    c = _imgapi.DsapiClient(ImageSource('https://bob:pw@datasets.example.com/datasets', type='dsapi'), retries=0)
    c._request = FakeRequest(ok(dict(V1, files=[{'url': file_url, 'sha1': 'a' * 40, 'size': 3}])),
                             ok(b'abc', headers={'Content-Length': '3'}))
    c.get_image(U)
    c.open_file(U)
    bob = b'Basic ' + base64.b64encode(b'bob:pw')
    assert auths(c._request) == [(DS + '/' + U, bob), (file_url, bob if sent else None)]


@pytest.mark.parametrize('files', [{'url': 'x'}, 'abc', [['x']], [{'path': 42}], [{'url': 'https://a b/x'}]])
def test_dsapi_file_path_with_a_malformed_files_entry(files):
    c, dummy = dsapi(ok(dict(V1, files=files)))
    with pytest.raises(SourceError, match='DSAPI manifest of %s' % U):
        c.file_path(U)


def test_dsapi_sends_no_accept_version():
    c, req = dsapi(ok([V1]))
    c.list_raw()
    c.ping()
    assert all('Accept-Version' not in call['headers'] for call in req.calls)
    assert req.calls[0]['headers'] == {'Accept': 'application/json'}


# ---- issue 10: a ca_path that is not a CA file ----

def test_a_missing_ca_path_is_an_invalid_parameter(tmp_path):
    with pytest.raises(InvalidParameter) as exc:
        ImageServerClient(ImageSource('https://img.example.com'), ca_path=str(tmp_path / 'nope.pem'))
    assert exc.value.msg.startswith('ca_path "%s" does not exist or is not a file' % (tmp_path / 'nope.pem'))
    with pytest.raises(InvalidParameter, match='does not exist or is not a file'):
        ImageServerClient(ImageSource('https://img.example.com'), ca_path=str(tmp_path))
    junk = tmp_path / 'junk.pem'
    junk.write_text('not a certificate')
    with pytest.raises(InvalidParameter, match='ca_path ".*junk.pem" could not be loaded as PEM CA certificates'):
        ImageServerClient(ImageSource('https://img.example.com'), ca_path=str(junk))


# ---- a hostile server: lying Content-Length, deep nesting, credentials echoed back ----

PASSWORD = 'p#ss/w?rd@x:y'
ECHO_URL = 'http://alice:%s@img.example.com' % urllib.parse.quote(PASSWORD, safe='')
ECHO_SECRETS = (PASSWORD, urllib.parse.quote(PASSWORD, safe=''), base64.b64encode(('alice:' + PASSWORD).encode()).decode())


def echo_text(request_headers):
    """The credentials of a request, as a server that echoes them back would put them."""
    auth = request_headers['Authorization']
    auth = auth.decode() if isinstance(auth, bytes) else auth
    return '%s %s %s %s' % (auth, base64.b64decode(auth.split()[-1]).decode(), PASSWORD,
                            urllib.parse.quote(PASSWORD, safe=''))


# what the server raises with the echoed text in it, the retries, what the error says
ECHOES = {
    'error body': (lambda url, text: HTTPError(url, 401, text, email.message.Message(), io.BytesIO(
        ('{"code": "Denied", "message": "%s"}' % text).encode())), 0, 'HTTP 401: Denied: ***'),
    'error reason': (lambda url, text: HTTPError(url, 403, text, email.message.Message(), io.BytesIO(b'')), 0,
                     'HTTP 403'),
    'status line': (lambda url, text: http.client.BadStatusLine('HTTP/1.0 2OO ' + text), 1,
                    'could not be reached after 2 attempt(s)'),
    'location': (lambda url, text: HTTPError(url, 302, 'Found', message_of(
        ('Location', 'ftp://x.invalid/' + text.replace(' ', '/'))), io.BytesIO(b'')), 0, 'not an http:// or https:// URL'),
}


@pytest.mark.parametrize('error_of, retries, shown', list(ECHOES.values()), ids=list(ECHOES))
def test_credentials_echoed_back_are_scrubbed(error_of, retries, shown):
    def answer(url):
        raise error_of(url, echo_text(request.calls[-1]['headers']))
    c, request, dummy = imgapi_client(answer, url=ECHO_URL, retries=retries)
    with pytest.raises(SourceError) as e:
        c.get_image(U)
    assert shown in e.value.msg
    for secret in ECHO_SECRETS:
        assert secret not in e.value.msg


def test_a_source_without_a_password_scrubs_nothing():
    c = ImageServerClient(ImageSource('http://img.example.com'))
    assert c.scrub('Basic abc p#ss') == 'Basic abc p#ss'


# ---- issue 10: slow servers end ----

def test_get_json_that_trickles_fails_within_the_low_speed_rule(clock):
    body = json.dumps(MANIFEST).encode()
    c, req, dummy = imgapi_client(lambda url: Trickling(body, clock, 1.0), url=SECRET)
    with pytest.raises(SourceError) as exc:
        c.get_image(U)
    assert exc.value.msg.startswith('reading https://img.example.com/images/%s failed: reading a manifest from' % U)
    assert clock.now <= 30 + 1


def test_get_json_deadline_bounds_a_body_that_keeps_the_speed(clock):
    body = b'[' + b'1,' * 3000000 + b'1]'
    c, req, dummy = imgapi_client(lambda url: Trickling(body, clock, 1.0, step=2048), retries=0)
    with pytest.raises(SourceError, match=r'did not arrive whole within 120 s \(4 x timeout\)'):
        c.get_json('/images', limit=_imgapi.PAGE_MAX_BYTES)
    assert clock.now <= 121


# ---- issue 10: size caps ----

def test_an_oversized_manifest_is_refused_unread():
    class Unread(FakeResponse):
        def read1(self, size=-1):
            raise AssertionError('read')
    headers = {'Content-Length': str(_imgapi.MANIFEST_MAX_BYTES + 1)}
    c, dummy, dummy2 = imgapi_client(lambda url: Unread(b'', headers=headers))
    with pytest.raises(SourceError) as exc:
        c.get_image(U)
    assert exc.value.msg == ('http://img.example.com/images/%s answered with %d bytes for a manifest, more than the '
                             '1048576 allowed; refused unread' % (U, (1 << 20) + 1))


def test_an_oversized_manifest_without_length_is_read_only_to_the_cap():
    class Endless(FakeResponse):
        served = 0

        def read1(self, size=-1):
            Endless.served += size
            return b' ' * size
    c, dummy, dummy2 = imgapi_client(lambda url: Endless())
    with pytest.raises(SourceError, match='more than 1048576 bytes for a manifest; refused before parsing'):
        c.get_image(U)
    assert Endless.served <= _imgapi.MANIFEST_MAX_BYTES + 1


def test_a_manifest_at_the_cap_is_accepted():
    body = json.dumps(dict(MANIFEST, description='')).encode()
    body = body[:-2] + b' ' * (_imgapi.MANIFEST_MAX_BYTES - len(body)) + body[-2:]
    c, dummy, dummy2 = imgapi_client(ok(body))
    assert c.get_image(U)['uuid'] == U


def test_a_deeply_nested_manifest_is_a_source_error():
    c, dummy, dummy2 = imgapi_client(ok(b'[' * 200000 + b']' * 200000))
    with pytest.raises(SourceError, match='invalid JSON'):
        c.get_image(U)


def test_listing_memory_budget(monkeypatch):
    monkeypatch.setattr(_imgapi, 'LIST_MAX_COST', 1 << 20)
    c, req, dummy = imgapi_client(ok(b'[' + b'[],' * 20000 + b'[]]'))   # 60 kB that would take megabytes parsed
    with pytest.raises(SourceError) as exc:
        c.list_raw()
    assert exc.value.msg == ('http://img.example.com/images: the image list is too large (it would take more than '
                             '1 MiB of memory); use filters or a channel to list fewer images')


def test_an_error_body_that_never_ends_is_read_only_in_part():
    class Endless(io.RawIOBase):
        served = 0

        def read1(self, size=-1):
            Endless.served += size
            return b'x' * size

        def read(self, size=-1):
            raise AssertionError('read')

    def answer(url):
        raise HTTPError(url, 403, 'Forbidden', email.message.Message(), Endless())
    c, dummy, dummy2 = imgapi_client(answer)
    with pytest.raises(SourceError, match='answered HTTP 403: x{200}$'):
        c.get_image(U)
    assert Endless.served <= _imgapi.ERROR_BODY_MAX + 1


def test_answer_headers_that_never_end_are_a_timeout(monkeypatch):
    import threading
    releases = []

    def stalled(url):
        releases.append(threading.Event())
        releases[-1].wait(10)   # a server trickling its headers: Request.open does not return
        return FakeResponse(b'{}')
    monkeypatch.setattr(_imgapi, 'JSON_TIME_FACTOR', 0.05)
    c, req, sleeps = imgapi_client(stalled, ok(MANIFEST), retries=1)
    try:
        assert c.get_image(U) == MANIFEST   # the stalled attempt counts as a transient timeout, and is retried
        assert len(req.calls) == 2 and len(sleeps) == 1
    finally:
        for event in releases:
            event.set()
    c, req, sleeps = imgapi_client(stalled, retries=0)
    try:
        with pytest.raises(SourceError, match=r'could not be reached after 1 attempt\(s\): no complete answer headers'):
            c.get_image(U)
    finally:
        for event in releases:
            event.set()


def test_a_huge_timeout_does_not_overflow():
    c, req, dummy = imgapi_client(ok(MANIFEST))
    c.timeout = 10 ** 12
    assert c.get_image(U) == MANIFEST


def test_a_gzip_bomb_manifest_is_read_only_to_the_cap(monkeypatch):
    import gzip
    bomb = gzip.compress(b' ' * (16 << 20))

    class Gzipped(FakeResponse):
        def __init__(self):
            super().__init__(b'', headers={'Content-Encoding': 'gzip', 'Content-Length': str(len(bomb))})
            self.fp = io.BytesIO(bomb)   # ansible's Request wraps this in its gzip reader

        def read1(self, size=-1):
            return self.fp.read1(size)

    monkeypatch.setattr(urllib.request, 'urlopen', lambda request, data=None, timeout=None: Gzipped())
    c = ImageServerClient(ImageSource('http://img.example.com'), sleep=None)
    with pytest.raises(SourceError, match='more than 1048576 bytes for a manifest; refused before parsing'):
        c.get_image(U)
