# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/lookup/image.py, the smartos.images.image lookup, against a fake requests session."""

from __future__ import annotations

import base64
import io
import json
import time
from urllib.parse import parse_qsl

import pytest

import requests

from ansible.errors import AnsibleLookupError
from ansible.plugins.loader import lookup_loader

from ansible_collections.smartos.images.plugins.lookup import image as image_lookup
from ansible_collections.smartos.images.plugins.module_utils import _paging
from ansible_collections.smartos.images.plugins.module_utils._paging import PAGE_SIZE

SERVER = 'https://images.example.org'


def manifest(number, name='base-64-lts', version=None, published_at=None, **extra):
    m = {'v': 2, 'uuid': '00000000-0000-4000-8000-%012d' % number, 'owner': '00000000-0000-0000-0000-000000000000',
         'name': name, 'version': version or '1.0.%d' % number, 'state': 'active', 'disabled': False, 'public': True,
         'published_at': published_at or '2024-01-%02dT00:00:00Z' % (1 + number % 28), 'type': 'zone-dataset', 'os': 'smartos',
         'files': [{'sha1': '%040x' % number, 'size': 1000 + number, 'compression': 'gzip'}]}
    m.update(extra)
    return m


class FakeRaw(io.BytesIO):
    """The urllib3 response body the lookup reads with read1, as it arrives."""

    decode_content = False


class FakeResponse:
    """What the lookup reads of a requests.Response: status_code, url, headers, raw and close()."""

    def __init__(self, url, status_code=200, body=None, text=None, headers=None):
        self.url = url
        self.status_code = status_code
        self.text = text if text is not None else json.dumps(body)
        self.raw = FakeRaw(self.text.encode('utf-8'))
        self.headers = headers or {}
        self.closed = False

    def close(self):
        self.closed = True


class FakeSession:
    """A requests.Session stand-in: answers GET /images from a list of manifests, with IMGAPI's filters and paging."""

    def __init__(self, images=None, answer=None):
        self.images = images or []
        self.answer = answer          # a callable(url, params) -> FakeResponse or an exception to raise, overriding the list
        self.headers = {}
        self.calls = []

    def get(self, url, verify=None, timeout=None, auth=None, allow_redirects=True, stream=False):
        assert allow_redirects is False and stream is True   # the lookup follows redirects and reads bodies itself
        path, dummy, query = url.partition('?')
        params = dict(parse_qsl(query))
        if 'limit' in params:
            params['limit'] = int(params['limit'])
        self.calls.append({'url': path, 'params': params, 'verify': verify, 'timeout': timeout, 'auth': auth})
        full = path + ('?' + '&'.join('%s=%s' % kv for kv in sorted(params.items())) if params else '')
        if self.answer:
            result = self.answer(full, params)
            if isinstance(result, Exception):
                raise result
            return result
        found = [m for m in self.images if all(str(m.get(k)) == v for k, v in params.items() if k in image_lookup.FILTERS)]
        found.sort(key=lambda m: (m['published_at'], m['uuid']))
        if 'marker' in params:
            at = [m['uuid'] for m in found].index(params['marker'])
            found = found[at:]  # IMGAPI includes the marker image again
        limit = int(params.get('limit', PAGE_SIZE))
        return FakeResponse(full, body=found[:limit])


@pytest.fixture
def session(monkeypatch):
    """The fake session every ImageServerLookup gets."""
    fake = FakeSession()
    monkeypatch.setattr(image_lookup.requests, 'Session', lambda: fake)
    return fake


@pytest.fixture
def lookup():
    plugin = lookup_loader.get('smartos.images.image')

    def run(*terms, **options):
        options.setdefault('server', SERVER)
        return plugin.run(list(terms), variables={}, **options)

    return run


def test_newest_by_published_at(session, lookup):
    session.images = [manifest(1, published_at='2024-03-01T00:00:00Z'), manifest(2, published_at='2024-05-01T00:00:00Z'),
                      manifest(3, published_at='2024-04-01T00:00:00Z'), manifest(4, name='other', published_at='2025-01-01T00:00:00Z')]
    assert lookup('base-64-lts') == [manifest(2)['uuid']]
    call = session.calls[0]
    assert call['url'] == SERVER + '/images' and call['params'] == {'name': 'base-64-lts'}
    assert call['verify'] is True and call['timeout'] == 30
    assert session.headers['Accept-Version'] == '~2'


def test_newest_not_by_listing_order(session, lookup):
    newest = manifest(1, published_at='2030-01-01T00:00:00Z')
    session.answer = lambda url, params: FakeResponse(url, body=[newest, manifest(2), manifest(3)])
    assert lookup('base-64-lts') == [newest['uuid']]


def test_several_terms_one_result_each(session, lookup):
    session.images = [manifest(1), manifest(2, name='minimal-64')]
    assert lookup('base-64-lts', 'minimal-64') == [manifest(1)['uuid'], manifest(2)['uuid']]


def test_exact_version_and_name_option(session, lookup):
    session.images = [manifest(1, version='24.4.0'), manifest(2, version='24.4.1', published_at='2020-01-01T00:00:00Z'),
                      manifest(3, version='24.4.2')]
    assert lookup(name='base-64-lts', version='24.4.1') == [manifest(2)['uuid']]
    assert session.calls[0]['params'] == {'name': 'base-64-lts', 'version': '24.4.1'}


def test_os_and_type_filters_in_the_query(session, lookup):
    session.images = [manifest(1, os='linux', type='lx-dataset'), manifest(2, os='smartos', type='zone-dataset')]
    assert lookup('base-64-lts', os='linux', type='lx-dataset') == [manifest(1)['uuid']]
    assert session.calls[0]['params'] == {'name': 'base-64-lts', 'os': 'linux', 'type': 'lx-dataset'}


def test_server_ignoring_filters_is_filtered_client_side(session, lookup):
    session.answer = lambda url, params: FakeResponse(url, body=[manifest(1, version='1.0.0', published_at='2024-01-01T00:00:00Z'),
                                                                 manifest(2, version='2.0.0', published_at='2024-02-01T00:00:00Z'),
                                                                 manifest(3, name='other', published_at='2025-01-01T00:00:00Z')])
    assert lookup('base-64-lts', version='1.0.0') == [manifest(1)['uuid']]


def test_channel_and_certificates(session, lookup, tmp_path):
    session.images = [manifest(1)]
    ca = tmp_path / 'ca.pem'
    ca.write_text('x')
    lookup('base-64-lts', server=SERVER + '/?channel=experimental', ca_path=str(ca), timeout=5)
    call = session.calls[0]
    assert call['url'] == SERVER + '/images' and call['params']['channel'] == 'experimental'
    assert call['verify'] == str(ca) and call['timeout'] == 5
    lookup('base-64-lts', validate_certs=False)
    assert session.calls[1]['verify'] is False


def paged_images(count):
    """count images of one name, a second apart, the newest (number 7) last in IMGAPI's published_at order."""
    images = [manifest(n, published_at='2024-01-01T%02d:%02d:%02dZ' % (n // 3600, n // 60 % 60, n % 60)) for n in range(count)]
    images[7]['published_at'] = '2029-01-01T00:00:00Z'
    return images, sorted(images, key=lambda m: (m['published_at'], m['uuid']))


def test_pagination_with_limit_and_marker(session, lookup):
    page = PAGE_SIZE
    session.images, listed = paged_images(page + 5)
    assert lookup('base-64-lts') == [manifest(7)['uuid']]
    assert len(session.calls) == 2
    assert 'limit' not in session.calls[0]['params'] and 'marker' not in session.calls[0]['params']
    assert session.calls[1]['params'] == {'name': 'base-64-lts', 'limit': page, 'marker': listed[page - 1]['uuid']}


def test_pagination_past_the_second_page(session, lookup):
    page = PAGE_SIZE
    session.images, listed = paged_images(2 * page + 5)
    assert lookup('base-64-lts') == [manifest(7)['uuid']]
    assert len(session.calls) == 3
    assert session.calls[2]['params']['marker'] == listed[2 * page - 2]['uuid']


def test_pagination_gets_every_image_once(monkeypatch):
    page = PAGE_SIZE
    fake = FakeSession([manifest(n, published_at='2024-01-01T%02d:%02d:00Z' % divmod(n, 60)) for n in range(page + 3)])
    monkeypatch.setattr(image_lookup.requests, 'Session', lambda: fake)
    images = image_lookup.ImageServerLookup(SERVER).list_images({'name': 'base-64-lts'})
    assert len(images) == page + 3 and len({m['uuid'] for m in images}) == page + 3


def test_a_server_that_ignores_marker_is_an_error_not_an_endless_listing(session, lookup):
    same = [manifest(n) for n in range(PAGE_SIZE + 5)]
    # obeys limit, ignores the marker: the rest of the list is out of reach
    session.answer = lambda url, params: FakeResponse(url, body=same[:params.get('limit', PAGE_SIZE)])
    # the one paging rule: a full page that ends with an image listed before cannot lead further (was: "ignores marker")
    with pytest.raises(AnsibleLookupError, match='image server https://images.example.org ignores the ListImages '
                                                 'marker: page 2 ends with image %s, which it listed before'
                                                 % same[PAGE_SIZE - 1]['uuid']):
        lookup('base-64-lts')
    assert [c['params'].get('limit') for c in session.calls] == [None, PAGE_SIZE, 1]


def _static(images):
    """A server that ignores the query string: the same whole list for any name, filter, limit or marker."""
    return lambda url, params: FakeResponse(url, body=images)


def test_a_server_that_ignores_the_query_string_still_yields_the_right_image(session, lookup):
    wanted = manifest(1, published_at='2024-02-01T00:00:00Z')
    images = [wanted,
              manifest(2, name='other', published_at='2030-01-01T00:00:00Z'),            # another name
              manifest(3, state='disabled', published_at='2030-01-01T00:00:00Z'),       # not active
              manifest(4, os='linux', published_at='2030-01-01T00:00:00Z'),              # another os
              manifest(5, type='zvol', published_at='2030-01-01T00:00:00Z'),             # another type
              manifest(6, version='2.0.0', published_at='2030-01-01T00:00:00Z')]        # another version
    session.answer = _static(images)
    assert lookup('base-64-lts', version='1.0.1', os='smartos', type='zone-dataset') == [wanted['uuid']]
    assert lookup('base-64-lts', version='~1.0', type='!zvol', os='smartos') == [wanted['uuid']]
    assert lookup('~64-l', version='~1.0.', os='smartos', type='zone-dataset') == [wanted['uuid']]
    assert lookup('base-64-lts', version='2.0.0') == [manifest(6)['uuid']]
    with pytest.raises(AnsibleLookupError, match='has no active image with name=nope'):
        lookup('nope')


def test_a_static_server_channel_is_checked_on_the_controller(session, lookup):
    dev = manifest(1, channels=['dev'], published_at='2024-01-01T00:00:00Z')
    session.answer = _static([dev, manifest(2, channels=['staging'], published_at='2030-01-01T00:00:00Z')])
    assert lookup('base-64-lts', source=SERVER + '?channel=dev') == [dev['uuid']]


def test_a_static_server_with_exactly_a_page_of_images_is_read_whole(session, lookup):
    images = [manifest(n, name='filler', published_at='2020-01-01T00:00:00Z') for n in range(PAGE_SIZE - 1)]
    images.append(manifest(PAGE_SIZE, published_at='2024-01-01T00:00:00Z'))
    session.answer = _static(images)
    assert lookup('base-64-lts') == [images[-1]['uuid']]
    assert [c['params'].get('limit') for c in session.calls] == [None, PAGE_SIZE, 1]


def test_result_manifest(session, lookup):
    session.images = [manifest(1)]
    result = lookup('base-64-lts', result='manifest')
    assert result == [manifest(1)]


def test_connection_refused(session, lookup):
    session.answer = lambda url, params: requests.exceptions.ConnectionError('[Errno 111] Connection refused')
    with pytest.raises(AnsibleLookupError, match=r'could not be reached for GET https://images.example.org/images'
                                                 r'\?name=base-64-lts \(.*Connection refused\)'):
        lookup('base-64-lts')


def test_timeout(session, lookup):
    session.answer = lambda url, params: requests.exceptions.ReadTimeout('read timed out')
    with pytest.raises(AnsibleLookupError, match='did not answer GET .* within 30 s'):
        lookup('base-64-lts')


def test_tls_failure(session, lookup):
    session.answer = lambda url, params: requests.exceptions.SSLError('certificate verify failed')
    with pytest.raises(AnsibleLookupError, match='TLS failed .*give ca_path'):
        lookup('base-64-lts')


def test_http_500_with_restify_body(session, lookup):
    session.answer = lambda url, params: FakeResponse(url, 500, body={'code': 'InternalError', 'message': 'database is down'})
    with pytest.raises(AnsibleLookupError, match=r'answered HTTP 500 to GET https://images.example.org/images\?name=base-64-lts: database is down'):
        lookup('base-64-lts')


def test_http_500_with_text_body(session, lookup):
    session.answer = lambda url, params: FakeResponse(url, 500, text='<html>Internal Server Error</html>\n')
    with pytest.raises(AnsibleLookupError, match='answered HTTP 500 .*Internal Server Error'):
        lookup('base-64-lts')


def test_invalid_json(session, lookup):
    session.answer = lambda url, params: FakeResponse(url, text='<html>not json')
    with pytest.raises(AnsibleLookupError, match="not JSON .*'<html>not json'.*is https://images.example.org an IMGAPI server"):
        lookup('base-64-lts')


@pytest.mark.parametrize('body, kind', [({'images': []}, 'a dict'), ('text', 'a str'), (None, 'JSON null')])
def test_not_a_list_of_manifests(session, lookup, body, kind):
    session.answer = lambda url, params: FakeResponse(url, body=body)
    # the one paging rule's message (was the lookup's own "answered GET ... not a list of image manifests")
    with pytest.raises(AnsibleLookupError, match='https://images.example.org.* with %s, not a list of image' % kind):
        lookup('base-64-lts')


def test_listed_entries_that_are_not_manifests_are_skipped_with_a_warning(session, lookup, monkeypatch):
    warned = []
    monkeypatch.setattr(image_lookup.display, 'warning', warned.append)
    session.answer = lambda url, params: FakeResponse(url, body=[manifest(1), 'x', 7, None])
    assert lookup('base-64-lts') == [manifest(1)['uuid']]
    assert len(warned) == 1 and '3 entries that are not an image manifest' in warned[0] and "'x'" in warned[0]


def test_schema_invalid_manifest(session, lookup):
    session.images = [manifest(1, os='plan9', colour='red')]
    with pytest.raises(AnsibleLookupError) as e:
        lookup('base-64-lts')
    assert 'not a valid v2 image manifest' in str(e.value) and 'os' in str(e.value) and 'colour' in str(e.value)
    assert manifest(1)['uuid'] in str(e.value)


def test_only_the_chosen_manifest_is_validated(session, lookup):
    session.images = [manifest(1, os='plan9', published_at='2020-01-01T00:00:00Z'), manifest(2, published_at='2024-01-01T00:00:00Z')]
    assert lookup('base-64-lts') == [manifest(2)['uuid']]


def test_nothing_matches(session, lookup):
    session.images = [manifest(1)]
    with pytest.raises(AnsibleLookupError, match='has no active image with name=nope, os=smartos'):
        lookup('nope', os='smartos')


def test_several_matches_with_newest_false(session, lookup):
    session.images = [manifest(1), manifest(2), manifest(3)]
    with pytest.raises(AnsibleLookupError, match='3 images on https://images.example.org match name=base-64-lts: .*give version'):
        lookup('base-64-lts', newest=False)
    session.images = [manifest(1)]
    assert lookup('base-64-lts', newest=False) == [manifest(1)['uuid']]


def test_no_name_at_all(session, lookup):
    with pytest.raises(AnsibleLookupError, match='give an image name'):
        lookup()
    assert not session.calls


def test_missing_requests_is_explained(monkeypatch, lookup):
    monkeypatch.setattr(image_lookup, 'requests', None)
    with pytest.raises(AnsibleLookupError, match='needs the Python packages requests and jsonschema'):
        lookup('base-64-lts')


# ---- issue 10: credentials, hostile answers, bounds ----

PASSWORD = 'p#a/s?s@w:rd'
CREDENTIALED = 'https://user:%s@images.example.org' % PASSWORD


def no_secret(text):
    for secret in (PASSWORD, 'p#a/s', 's@w:rd', 'p%23a'):
        assert secret not in text, text


def test_credentials_are_cut_out_whatever_their_characters(session, lookup):
    session.images = [manifest(1)]
    assert lookup('base-64-lts', server=CREDENTIALED) == [manifest(1)['uuid']]
    call = session.calls[0]
    assert call['url'] == SERVER + '/images'
    assert call['auth'].value == 'Basic ' + base64.b64encode(('user:' + PASSWORD).encode()).decode()


def test_percent_encoded_credentials_are_decoded(session, lookup):
    session.images = [manifest(1)]
    lookup('base-64-lts', server='https://us%40er:p%23%C3%A9@images.example.org')
    assert session.calls[0]['auth'].value == 'Basic ' + base64.b64encode('us@er:p#é'.encode()).decode()


@pytest.mark.parametrize('answer', [
    lambda url, params: FakeResponse(url, 500, body={'code': 'InternalError', 'message': 'no'}),
    lambda url, params: FakeResponse(url, 500, text='<html>%s</html>' % PASSWORD),
    lambda url, params: requests.exceptions.ConnectionError("Invalid URL '%s/images'" % CREDENTIALED),
    lambda url, params: requests.exceptions.SSLError('certificate verify failed for %s' % CREDENTIALED),
    lambda url, params: requests.exceptions.ReadTimeout('read timed out (%s)' % PASSWORD),
    lambda url, params: FakeResponse(url, text='not json ' + PASSWORD),
    lambda url, params: FakeResponse(url, body=[]),
])
def test_no_error_shows_the_password(session, lookup, answer):
    session.answer = answer
    with pytest.raises(AnsibleLookupError) as e:
        lookup('base-64-lts', server=CREDENTIALED)
    no_secret(str(e.value))
    assert 'user:***@images.example.org' in str(e.value) or '***' in str(e.value)


@pytest.mark.parametrize('server, words', [
    ('images.example.org', 'must start with http:// or https://'),
    ('ftp://user:%s@images.example.org' % PASSWORD, 'must start with http:// or https://'),
    ('https://user:%s@images.example.org:99999' % PASSWORD, 'has no valid host and port'),
    ('https://user:%s@images.example.org:port' % PASSWORD, 'has no valid host and port'),
    ('http://[::1', 'has no valid host and port'),
    ('https://user:%s@/' % PASSWORD, 'has no valid host and port'),
])
def test_bad_server_urls_are_refused_without_the_password(session, lookup, server, words):
    with pytest.raises(AnsibleLookupError, match=words) as e:
        lookup('base-64-lts', server=server)
    no_secret(str(e.value))
    assert not session.calls


@pytest.mark.parametrize('body', [['a', 'list'], 'a string', 42, None, {'message': ['x'], 'code': {'y': 1}}, {}])
def test_any_error_body_is_a_clear_error(session, lookup, body):
    session.answer = lambda url, params: FakeResponse(url, 503, body=body)
    with pytest.raises(AnsibleLookupError, match=r'answered HTTP 503 to GET https://images.example.org/images\?'
                                                 r'name=base-64-lts: '):
        lookup('base-64-lts')


def test_an_empty_error_body(session, lookup):
    session.answer = lambda url, params: FakeResponse(url, 502, text='')
    with pytest.raises(AnsibleLookupError, match=r'answered HTTP 502 .*: \(no body\)'):
        lookup('base-64-lts')


@pytest.mark.parametrize('term', [5, None, ['base'], {'name': 'base'}, 1.5, True, ''])
def test_terms_that_are_not_names_are_refused(session, lookup, term):
    with pytest.raises(AnsibleLookupError, match='give an image name, as a term or as name='):
        lookup(term)
    assert not session.calls


def endless(url, params):
    """A server that answers every page with PAGE new images."""
    start = int(params.get('marker', '0' * 36)[-12:]) + 1 if 'marker' in params else 0
    return FakeResponse(url, body=[manifest(start + n) for n in range(PAGE_SIZE)])


def test_pages_are_capped(session, lookup, monkeypatch):
    # the modules' page bound (the lookup's own 100 pages and 100,000 images are gone: one set of limits)
    monkeypatch.setattr(_paging, 'LIST_MAX_PAGES', 4)
    session.answer = endless
    with pytest.raises(AnsibleLookupError, match=r'image server https://images.example.org: ListImages did not end '
                                                 r'within 4 pages and 300 s; use filters'):
        lookup('base-64-lts')
    assert len(session.calls) == 4


def test_the_page_bound_is_the_modules(monkeypatch):
    assert _paging.LIST_MAX_PAGES == 50 and image_lookup.MAX_BODY == _paging.PAGE_MAX_BYTES == 8 << 20


def test_a_listing_is_bounded_in_time(session, lookup, monkeypatch):
    clock = iter(range(0, 10 ** 6, 7))
    monkeypatch.setattr(image_lookup.time, 'monotonic', lambda: next(clock))
    session.answer = endless
    with pytest.raises(AnsibleLookupError, match=r'did not finish listing within listing_timeout \(60 s\), at GET '
                                                 r'https://images.example.org/images\?'):
        lookup('base-64-lts', listing_timeout=60)
    assert len(session.calls) < 10


class Trickle(FakeRaw):
    """One byte per read1, each taking a while: a server that never quite stops sending."""

    def read1(self, size=-1):
        time.sleep(0.05)
        return b' '


def test_a_trickling_body_is_bounded(session, lookup):
    def answer(url, params):
        response = FakeResponse(url, body=[])
        response.raw = Trickle()
        return response

    session.answer = answer
    started = time.monotonic()
    with pytest.raises(AnsibleLookupError, match=r'did not finish listing within listing_timeout \(1 s\)'):
        lookup('base-64-lts', listing_timeout=1)
    assert time.monotonic() - started < 3
    assert session.calls[0]['timeout'] <= 1


def test_a_body_is_bounded_in_size(session, lookup, monkeypatch):
    monkeypatch.setattr(image_lookup, 'MAX_BODY', 1000)
    session.answer = lambda url, params: FakeResponse(url, body=[manifest(n) for n in range(10)])
    with pytest.raises(AnsibleLookupError, match='answered GET .* with more than 0 MiB'):
        lookup('base-64-lts')


def test_a_deeply_nested_body_is_not_json(session, lookup):
    session.answer = lambda url, params: FakeResponse(url, text='[' * 200000)
    with pytest.raises(AnsibleLookupError, match='something that is not JSON'):
        lookup('base-64-lts')


def test_a_body_that_breaks_off(session, lookup):
    class Broken(FakeRaw):
        def read1(self, size=-1):
            raise requests.exceptions.ChunkedEncodingError('connection broken: IncompleteRead')

    def answer(url, params):
        response = FakeResponse(url, body=[])
        response.raw = Broken()
        return response

    session.answer = answer
    with pytest.raises(AnsibleLookupError, match='broke off its answer to GET .*IncompleteRead'):
        lookup('base-64-lts')


def redirecting(to, then=None):
    """A server whose first answer redirects to `to`; then the images (or `then`)."""
    def answer(url, params):
        if len(session_calls(answer)) == 1:
            return FakeResponse(url, 302, text='', headers={'Location': to})
        return then(url, params) if then else FakeResponse(url, body=[manifest(1)])
    return answer


def session_calls(answer):
    return answer.session.calls


@pytest.mark.parametrize('to, keeps', [
    ('https://images.example.org/elsewhere/images', True),            # same origin: credentials go on
    ('/relative/images', True),
    ('https://images.example.org:443/images', True),
    ('https://other.example.org/images', False),                      # another host
    ('https://images.example.org:8443/images', False),                # another port
    ('https://images.example.org.evil.test/images', False),
])
def test_credentials_only_to_the_servers_own_origin(session, lookup, to, keeps):
    answer = redirecting(to)
    answer.session = session
    session.answer = answer
    assert lookup('base-64-lts', server=CREDENTIALED) == [manifest(1)['uuid']]
    assert session.calls[0]['auth'] is not None
    assert (session.calls[1]['auth'] is not None) == keeps, session.calls[1]


def test_a_downgrade_to_plain_http_is_refused(session, lookup):
    answer = redirecting('http://images.example.org/images')
    answer.session = session
    session.answer = answer
    with pytest.raises(AnsibleLookupError, match='from https to plain http') as e:
        lookup('base-64-lts', server=CREDENTIALED)
    assert len(session.calls) == 1 and PASSWORD not in str(e.value)


def test_an_upgrade_to_https_is_another_origin_too(session, lookup):
    answer = redirecting('https://images.example.org/images')
    answer.session = session
    session.answer = answer
    lookup('base-64-lts', server='http://user:%s@images.example.org' % PASSWORD)
    assert session.calls[0]['auth'] is not None and session.calls[1]['auth'] is None


@pytest.mark.parametrize('location, words', [
    (None, 'answered HTTP 302 to GET .* without a Location'),
    ('ftp://images.example.org/x', 'redirected GET to ftp://images.example.org/x, which is not an http'),
    ('file:///etc/passwd', 'which is not an http'),
    ('http://[::1/images', r'redirected GET https://user:\*\*\*@images.example.org/images.* to an invalid URL'),
])
def test_bad_redirects(session, lookup, location, words):
    session.answer = lambda url, params: FakeResponse(url, 302, text='', headers={'Location': location} if location else {})
    with pytest.raises(AnsibleLookupError, match=words):
        lookup('base-64-lts', server=CREDENTIALED)


def test_a_redirect_loop_ends(session, lookup):
    session.answer = lambda url, params: FakeResponse(url, 302, text='',
                                                      headers={'Location': 'https://u:leaked@images.example.org/images'})
    with pytest.raises(AnsibleLookupError, match='redirected GET more than 5 times') as e:
        lookup('base-64-lts')
    assert len(session.calls) == image_lookup.MAX_REDIRECTS + 1 and 'leaked' not in str(e.value)


def test_a_bad_uuid_at_the_end_of_a_full_page(session, lookup):
    page = [manifest(n) for n in range(PAGE_SIZE)]
    page[-1]['uuid'] = ['not', 'a', 'string']
    session.answer = lambda url, params: FakeResponse(url, body=page)
    with pytest.raises(AnsibleLookupError, match='listed a full page .page 1. whose last entry has no uuid'):
        lookup('base-64-lts')


@pytest.mark.parametrize('published_at', [5, None, ['x'], {'a': 1}])
def test_odd_published_at_in_a_listing_is_no_traceback(session, lookup, published_at):
    odd = manifest(2)
    odd['published_at'] = published_at
    session.answer = lambda url, params: FakeResponse(url, body=[manifest(1), odd])
    try:
        assert lookup('base-64-lts') == [manifest(1)['uuid']]
    except AnsibleLookupError as e:
        assert 'not a valid v2 image manifest' in str(e)


def test_an_unexpected_failure_is_scrubbed_too(session, lookup, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError('while asking %s' % CREDENTIALED)

    monkeypatch.setattr(image_lookup.ImageServerLookup, 'list_images', broken)
    with pytest.raises(AnsibleLookupError, match=r'failed unexpectedly \(KeyError: ') as e:
        lookup('base-64-lts', server=CREDENTIALED)
    no_secret(str(e.value))


# ---- issue 12: the modules' option name, default server, newest rule and listing checks ----

def test_source_is_the_option_and_server_its_old_name(session):
    plugin = lookup_loader.get('smartos.images.image')
    session.images = [manifest(1)]
    assert plugin.run(['base-64-lts'], variables={}, source=SERVER) == [manifest(1)['uuid']]
    assert plugin.run(['base-64-lts'], variables={}) == [manifest(1)['uuid']]
    assert session.calls[-1]['url'] == 'https://images.smartos.org/images'    # the documented default


def test_a_tie_in_published_at_goes_to_the_later_uuid_as_in_the_modules(session, lookup):
    session.images = [manifest(2, published_at='2024-05-01T00:00:00Z'), manifest(1, published_at='2024-05-01T00:00:00Z')]
    assert lookup('base-64-lts') == [manifest(2)['uuid']]


def test_listed_manifests_with_fields_of_the_wrong_type_are_skipped_with_a_warning(session, lookup, monkeypatch):
    warned = []
    monkeypatch.setattr(image_lookup.display, 'warning', warned.append)
    odd = manifest(2, published_at='2030-01-01T00:00:00Z', version=7)
    session.answer = lambda url, params: FakeResponse(url, body=[manifest(1), odd])
    assert lookup('base-64-lts') == [manifest(1)['uuid']]
    assert len(warned) == 1 and 'its version is 7, not a string' in warned[0]


@pytest.mark.parametrize('options', [{'verison': '1.0'}, {'sever': 'http://img.example.com'}, {'newst': True}])
def test_a_misspelt_keyword_is_an_error_not_a_filter_left_out(session, lookup, options):
    """Defect: an unknown keyword was ignored, so verison='1.0' asked for every version (and newest=true took one)."""
    session.images = [manifest(1), manifest(2)]
    with pytest.raises(AnsibleLookupError) as e:
        lookup('base-64-lts', newest=True, **options)
    assert 'unknown option(s) %s' % list(options)[0] in str(e.value) and 'version' in str(e.value)
    assert session.calls == []


def test_every_documented_keyword_and_the_alias_are_known(session, lookup):
    session.images = [manifest(1)]
    assert lookup('base-64-lts', server=SERVER) == [manifest(1)['uuid']]
    plugin = lookup_loader.get('smartos.images.image')
    options = dict(source=SERVER, version=manifest(1)['version'], os='smartos', newest=True, result='uuid',
                   validate_certs=True, timeout=5, listing_timeout=60)
    assert plugin.run(['base-64-lts'], variables={}, **options) == [manifest(1)['uuid']]
