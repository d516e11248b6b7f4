# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/lookup/image.py, the smartos.images.image lookup, against a fake requests session."""

from __future__ import annotations

import json

import pytest

import requests

from ansible.errors import AnsibleLookupError
from ansible.plugins.loader import lookup_loader

from ansible_collections.smartos.images.plugins.lookup import image as image_lookup

SERVER = 'https://images.example.org'


def manifest(number, name='base-64-lts', version=None, published_at=None, **extra):
    m = {'v': 2, 'uuid': '00000000-0000-4000-8000-%012d' % number, 'owner': '00000000-0000-0000-0000-000000000000',
         'name': name, 'version': version or '1.0.%d' % number, 'state': 'active', 'disabled': False, 'public': True,
         'published_at': published_at or '2024-01-%02dT00:00:00Z' % (1 + number % 28), 'type': 'zone-dataset', 'os': 'smartos',
         'files': [{'sha1': '%040x' % number, 'size': 1000 + number, 'compression': 'gzip'}]}
    m.update(extra)
    return m


class FakeResponse:
    """What the lookup reads of a requests.Response: status_code, url, text and json()."""

    def __init__(self, url, status_code=200, body=None, text=None):
        self.url = url
        self.status_code = status_code
        self.text = text if text is not None else json.dumps(body)

    def json(self):
        return json.loads(self.text)  # json.JSONDecodeError is a ValueError, as requests' is


class FakeSession:
    """A requests.Session stand-in: answers GET /images from a list of manifests, with IMGAPI's filters and paging."""

    def __init__(self, images=None, answer=None):
        self.images = images or []
        self.answer = answer          # a callable(url, params) -> FakeResponse or an exception to raise, overriding the list
        self.headers = {}
        self.calls = []

    def get(self, url, params=None, verify=None, timeout=None):
        params = dict(params or {})
        self.calls.append({'url': url, 'params': params, 'verify': verify, 'timeout': timeout})
        full = url + ('?' + '&'.join('%s=%s' % kv for kv in sorted(params.items())) if params else '')
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
        limit = int(params.get('limit', image_lookup.PAGE))
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
    page = image_lookup.PAGE
    session.images, listed = paged_images(page + 5)
    assert lookup('base-64-lts') == [manifest(7)['uuid']]
    assert len(session.calls) == 2
    assert 'limit' not in session.calls[0]['params'] and 'marker' not in session.calls[0]['params']
    assert session.calls[1]['params'] == {'name': 'base-64-lts', 'limit': page, 'marker': listed[page - 1]['uuid']}


def test_pagination_past_the_second_page(session, lookup):
    page = image_lookup.PAGE
    session.images, listed = paged_images(2 * page + 5)
    assert lookup('base-64-lts') == [manifest(7)['uuid']]
    assert len(session.calls) == 3
    assert session.calls[2]['params']['marker'] == listed[2 * page - 2]['uuid']


def test_pagination_gets_every_image_once(monkeypatch):
    page = image_lookup.PAGE
    fake = FakeSession([manifest(n, published_at='2024-01-01T%02d:%02d:00Z' % divmod(n, 60)) for n in range(page + 3)])
    monkeypatch.setattr(image_lookup.requests, 'Session', lambda: fake)
    images = image_lookup.ImageServerLookup(SERVER).list_images({'name': 'base-64-lts'})
    assert len(images) == page + 3 and len({m['uuid'] for m in images}) == page + 3


def test_pagination_stops_when_the_server_repeats_itself(session, lookup):
    same = [manifest(n) for n in range(image_lookup.PAGE)]
    session.answer = lambda url, params: FakeResponse(url, body=same)
    assert lookup('base-64-lts')
    assert len(session.calls) == 2  # the second page only repeated the marker: no endless loop


def test_result_manifest(session, lookup):
    session.images = [manifest(1)]
    result = lookup('base-64-lts', result='manifest')
    assert result == [manifest(1)]


def test_connection_refused(session, lookup):
    session.answer = lambda url, params: requests.exceptions.ConnectionError('[Errno 111] Connection refused')
    with pytest.raises(AnsibleLookupError, match=r'could not be reached \(.*Connection refused\)'):
        lookup('base-64-lts')


def test_timeout(session, lookup):
    session.answer = lambda url, params: requests.exceptions.ReadTimeout('read timed out')
    with pytest.raises(AnsibleLookupError, match='did not answer within 30 s'):
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


@pytest.mark.parametrize('body, kind', [({'images': []}, 'dict'), ([manifest(1), 'x'], 'list'), ('text', 'str')])
def test_not_a_list_of_manifests(session, lookup, body, kind):
    session.answer = lambda url, params: FakeResponse(url, body=body)
    with pytest.raises(AnsibleLookupError, match='answered GET .* with %s, not a list of image manifests' % kind):
        lookup('base-64-lts')


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
