# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_resolver.py: the checks on listings, origin chains, the source list read once
and each source asked once per image."""

from __future__ import annotations

import pytest

from ansible_collections.smartos.images.plugins.module_utils import _resolver
from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, ImageNotFound, SourceError
from ansible_collections.smartos.images.plugins.module_utils._host import HostPaths, detect_layout
from ansible_collections.smartos.images.plugins.module_utils._imgapi import ImageSource
from ansible_collections.smartos.images.plugins.module_utils._resolver import Found, ImageResolver, listing_problem
from ansible_collections.smartos.images.plugins.module_utils._wanted import Wanted
from ansible_collections.smartos.images.tests.unit.fakehost import BAD_LINES, leftover_sources_list
from ansible_collections.smartos.images.tests.unit.manifest_fixtures import lane_params

U = '2f1dc911-6401-4fa4-8e9d-67ea2e39c271'
OTHER = '7b5981c4-1889-11e7-b4c5-3f3bdfc9b88b'


def params(**kw):
    p = dict(source=['http://a.example.com', 'http://b.example.com'], validate_certs=True, ca_path=None, timeout=30,
             retries=0)
    p.update(kw)
    return p


@pytest.mark.parametrize('manifest, problem', [
    ({'uuid': U, 'name': 'a'}, None),
    ({'uuid': U, 'name': 'a', 'published_at': 20240101}, 'its published_at is 20240101, not a string'),
    ({'uuid': U.upper(), 'name': 'a'}, "its uuid is '%s', not a UUID" % U.upper()),
    ({'name': 'a'}, 'its uuid is None, not a UUID'),
    ({'uuid': U}, 'its name is None, not a string'),
    ({'uuid': U, 'name': {'a': 1}}, "its name is {'a': 1}, not a string"),
    ({'uuid': U, 'name': 'a', 'state': 1, 'os': True}, 'its state is 1, not a string; its os is True, not a string'),
])
def test_listing_problem(manifest, problem):
    assert listing_problem(manifest) == problem


def uuid_of(i):
    return '%08x-0000-4000-8000-000000000000' % i


def manager_with_origins(tmp_path, monkeypatch, origin_of):
    """An ImageResolver whose sources answer every image with a manifest whose origin is origin_of[uuid]."""
    manager = ImageResolver(params(), HostPaths(str(tmp_path)), 'modern')
    asked = []

    def get_manifest(uuid, active_only=True, prefer=None):
        asked.append(uuid)
        manifest = {'uuid': uuid}
        if origin_of.get(uuid):
            manifest['origin'] = origin_of[uuid]
        return Found(None, None, manifest, manifest)

    monkeypatch.setattr(manager, 'find', get_manifest)
    return manager, asked


def test_chain_of_exactly_the_limit_is_followed(tmp_path, monkeypatch):
    origin_of = {uuid_of(i): uuid_of(i + 1) for i in range(_resolver.MAX_CHAIN - 1)}
    manager, dummy = manager_with_origins(tmp_path, monkeypatch, origin_of)
    top = manager.find(uuid_of(0))
    chain = manager.ancestry(top, lambda u: False)
    assert [f.uuid for f in chain] == [uuid_of(i) for i in reversed(range(_resolver.MAX_CHAIN))]


def test_chain_longer_than_the_limit_is_refused_and_bounded(tmp_path, monkeypatch):
    origin_of = {uuid_of(i): uuid_of(i + 1) for i in range(1000)}
    manager, asked = manager_with_origins(tmp_path, monkeypatch, origin_of)
    with pytest.raises(ImageError, match='is longer than %d images' % _resolver.MAX_CHAIN):
        manager.ancestry(manager.find(uuid_of(0)), lambda u: False)
    assert len(asked) == _resolver.MAX_CHAIN


@pytest.mark.parametrize('origin_of, loop', [
    ({U: U}, [U, U]),
    ({U: OTHER, OTHER: U}, [U, OTHER, U]),
    ({U: uuid_of(1), uuid_of(1): uuid_of(2), uuid_of(2): uuid_of(1)}, [uuid_of(1), uuid_of(2), uuid_of(1)]),
])
def test_an_origin_cycle_is_named(tmp_path, monkeypatch, origin_of, loop):
    manager, asked = manager_with_origins(tmp_path, monkeypatch, origin_of)
    with pytest.raises(ImageError) as exc:
        manager.ancestry(manager.find(U), lambda u: False)
    assert exc.value.msg == 'the origin chain of image %s is a cycle: %s' % (U, ' -> '.join(loop))
    assert exc.value.evidence == {'cycle': loop}
    assert len(asked) <= 3


class CountingClient:
    """A source that has every image whose uuid is in manifests; counts each question."""

    def __init__(self, source, manifests, asked):
        self.source, self.manifests, self.asked = source, manifests, asked

    def get_image(self, uuid):
        self.asked.append((self.source.url, uuid))
        return self.manifests.get(uuid)

    def list_raw(self, query=None):
        self.asked.append((self.source.url, 'list'))
        return list(self.manifests.values())


def manifest(uuid, **kw):
    m = {'v': 2, 'uuid': uuid, 'name': 'base', 'version': '1', 'type': 'zone-dataset', 'os': 'smartos',
         'state': 'active', 'published_at': '2024-01-01T00:00:00Z',
         'files': [{'sha1': 'a' * 40, 'size': 1, 'compression': 'none'}]}
    m.update(kw)
    return m


def resolver_over(tmp_path, by_url):
    asked = []

    def factory(source, **kw):
        return CountingClient(source, by_url.get(source.url, {}), asked)

    return ImageResolver(params(), HostPaths(str(tmp_path)), 'modern', factory), asked


def test_each_source_is_asked_once_per_image(tmp_path):
    resolver, asked = resolver_over(tmp_path, {'http://b.example.com': {U: manifest(U)}})
    for dummy in range(3):
        assert resolver.find(U).source.url == 'http://b.example.com'
        assert resolver.find(U, active_only=False).uuid == U
    assert asked == [('http://a.example.com', U), ('http://b.example.com', U)]


def test_an_origin_is_asked_of_the_childs_source_first_and_once(tmp_path):
    child = manifest(U, origin=OTHER)
    resolver, asked = resolver_over(tmp_path, {'http://b.example.com': {U: child, OTHER: manifest(OTHER)}})
    chain = resolver.ancestry(resolver.find(U), lambda u: False)
    assert [f.uuid for f in chain] == [OTHER, U]
    assert asked == [('http://a.example.com', U), ('http://b.example.com', U), ('http://b.example.com', OTHER)]


@pytest.mark.parametrize('lane, names', lane_params(lambda lane: [tuple(n for n in lane.valid_v2 if 'level' in n or 'chain' in n)]))
def test_a_four_deep_chain_of_example_manifests_is_followed_base_first(tmp_path, lane, names):
    """The example incremental chain (private incrementals on a public base): each origin asked once, of the
    source that had the child, and imported base first; an origin already present ends the chain there."""
    manifests = [lane.load(n) for n in names]
    by_uuid = {m['uuid']: m for m in manifests}
    top = [m for m in manifests if m['uuid'] not in {o.get('origin') for o in manifests}]
    assert len(manifests) == 4 and len(top) == 1
    resolver, asked = resolver_over(tmp_path, {'http://b.example.com': by_uuid})
    chain = resolver.ancestry(resolver.find(top[0]['uuid']), lambda u: False)
    uuids = [f.uuid for f in chain]
    assert 'origin' not in by_uuid[uuids[0]] and [by_uuid[u]['origin'] for u in uuids[1:]] == uuids[:-1]
    assert asked == [('http://a.example.com', uuids[-1])] + [('http://b.example.com', u) for u in reversed(uuids)]
    partial = resolver.ancestry(resolver.find(top[0]['uuid']), lambda u: u == uuids[1])
    assert [f.uuid for f in partial] == uuids[2:]


def test_the_source_list_is_read_once_and_checked_at_once(tmp_path):
    resolver, dummy = resolver_over(tmp_path, {})
    assert resolver.sources('x') is resolver.sources('y')
    with pytest.raises(Exception, match='is not an http'):
        ImageResolver(params(source=['ftp://x']), HostPaths(str(tmp_path)), 'modern')


@pytest.mark.parametrize('published, winner', [
    (('2024-01-01T00:00:00Z', '2025-01-01T00:00:00Z'), OTHER),
    (('2025-01-01T00:00:00Z', '2024-01-01T00:00:00Z'), U),
    (('2024-01-01T00:00:00Z', '2024-01-01T00:00:00Z'), OTHER),   # a tie: the later UUID, as everywhere
])
def test_newest_by_name_across_sources_follows_the_one_rule(tmp_path, published, winner):
    resolver, dummy = resolver_over(tmp_path, {'http://a.example.com': {U: manifest(U, published_at=published[0])},
                                               'http://b.example.com': {OTHER: manifest(OTHER,
                                                                                        published_at=published[1])}})
    assert resolver.newest(Wanted({'name': 'base'}, 'present')) == winner


def test_newest_by_name_not_found_names_each_source(tmp_path):
    resolver, dummy = resolver_over(tmp_path, {})
    with pytest.raises(ImageNotFound, match='http://a.example.com: 0 match'):
        resolver.newest(Wanted({'name': 'base'}, 'present'))


class RefusingClient(CountingClient):
    def get_image(self, uuid):
        self.asked.append((self.source.url, uuid))
        raise SourceError('%s refused the connection' % self.source.url, refused=True)

    list_raw = get_image


def test_a_source_that_refused_a_connection_is_not_asked_again_this_run(tmp_path):
    asked = []

    def factory(source, **kw):
        kind = RefusingClient if source.url == 'http://a.example.com' else CountingClient
        return kind(source, {U: manifest(U), OTHER: manifest(OTHER)}, asked)

    resolver = ImageResolver(params(), HostPaths(str(tmp_path)), 'modern', factory)
    assert resolver.find(U).source.url == 'http://b.example.com'
    assert resolver.find(OTHER).source.url == 'http://b.example.com'
    assert resolver.newest(Wanted({'name': 'base'}, 'present')) == OTHER
    assert [a for a in asked if a[0] == 'http://a.example.com'] == [('http://a.example.com', U)]


# ---- a server that ignores the query string: the same whole list for every query ----

@pytest.mark.parametrize('query, fields, listed', [
    ({}, {}, True),
    ({}, {'state': 'disabled'}, False),                  # ListImages lists active images by default
    ({}, {'state': None}, False),
    ({'state': 'all'}, {'state': 'disabled'}, True),
    ({'state': 'disabled'}, {'state': 'disabled'}, True),
    ({'name': 'base'}, {}, True),
    ({'name': 'bas'}, {}, False),                        # exact unless "~"
    ({'name': '~as'}, {}, True),
    ({'name': '~AS'}, {}, False),                        # "~" is case-sensitive
    ({'version': '~1'}, {'version': '21.1'}, True),
    ({'version': '1'}, {'version': '21.1'}, False),
    ({'os': 'smartos'}, {'os': 'linux'}, False),
    ({'type': 'zvol'}, {}, False),
    ({'type': '!zvol'}, {}, True),
    ({'type': '!zone-dataset'}, {}, False),
    ({'name': 'base', 'os': 'smartos', 'type': 'zone-dataset', 'version': '1'}, {}, True),
])
def test_listed_as_asked_is_imgapi_listimages_rule(query, fields, listed):
    assert _resolver.listed_as_asked(manifest(U, **fields), query) is listed


@pytest.mark.parametrize('channel, channels, listed', [
    (None, ['dev'], True), ('dev', ['dev', 'staging'], True), ('dev', ['staging'], False),
    ('*', ['staging'], True), ('dev', None, True),       # no channels in the manifest: cannot be told apart
])
def test_listed_as_asked_checks_the_channel_of_a_manifest_that_names_its_channels(channel, channels, listed):
    m = manifest(U) if channels is None else manifest(U, channels=channels)
    assert _resolver.listed_as_asked(m, {}, channel) is listed


def test_newest_from_a_server_that_ignores_the_query_is_still_the_right_image(tmp_path):
    right = manifest(U, published_at='2024-01-01T00:00:00Z')
    later = '2030-01-01T00:00:00Z'
    others = [manifest(uuid_of(1), name='other', published_at=later),
              manifest(uuid_of(2), state='disabled', published_at=later),
              manifest(uuid_of(3), os='linux', published_at=later),
              manifest(uuid_of(4), type='zvol', published_at=later),
              manifest(uuid_of(5), version='2', published_at=later),
              manifest(uuid_of(6), version='1', name='base-1', published_at=later)]
    listing = {m['uuid']: m for m in [right] + others}
    resolver, dummy = resolver_over(tmp_path, {'http://a.example.com': listing})
    assert resolver.newest(Wanted({'name': 'base', 'version': '1', 'filters': {'os': 'smartos', 'type': 'zone-dataset'}},
                                  'present')) == U
    assert resolver.newest(Wanted({'name': 'base', 'version': '1', 'filters': {'type': '~zone', 'os': '~smart'}},
                                  'present')) == U
    assert resolver.newest(Wanted({'name': 'base'}, 'present')) == uuid_of(5)   # version 2, the newest active "base"


def test_newest_and_find_from_a_static_server_keep_to_the_sources_channel(tmp_path):
    dev = manifest(U, channels=['dev'])
    staging = manifest(OTHER, channels=['staging'], published_at='2030-01-01T00:00:00Z')
    asked = []
    resolver = ImageResolver(params(source=['http://a.example.com?channel=dev']), HostPaths(str(tmp_path)), 'modern',
                             lambda source, **kw: CountingClient(source, {U: dev, OTHER: staging}, asked))
    assert resolver.newest(Wanted({'name': 'base'}, 'present')) == U
    assert resolver.find(U).uuid == U
    with pytest.raises(ImageNotFound, match='not in channel "dev"'):
        resolver.find(OTHER)


# ---- elsewhere: the same image from another source, after an import from one failed ----

A, B, C = 'http://a.example.com', 'http://b.example.com', 'http://c.example.com'


def three_sources(tmp_path, by_url, kinds=None, **kw):
    """A resolver over sources a, b and c (their manifests by url; kinds: url -> client class)."""
    asked = []

    def factory(source, **dummy):
        return (kinds or {}).get(source.url, CountingClient)(source, by_url.get(source.url, {}), asked)

    return ImageResolver(params(source=kw.get('urls', [A, B, C])), HostPaths(str(tmp_path)), 'modern', factory), asked


def test_elsewhere_is_the_next_source_in_order_that_was_not_tried(tmp_path):
    resolver, asked = three_sources(tmp_path, {A: {U: manifest(U)}, B: {U: manifest(U)}, C: {U: manifest(U)}})
    first = resolver.find(U)
    a, b, c = resolver.sources(U)
    assert first.source is a
    second = resolver.elsewhere(first, [a])
    assert second.source is b and second.uuid == U and second.client is resolver.client(b)
    assert resolver.elsewhere(second, [a, b]).source is c
    assert resolver.elsewhere(second, [b, a]).source is c         # whatever order they failed in
    assert resolver.elsewhere(first, [a, c]).source is b
    assert resolver.elsewhere(first, [a, b, c]) is None
    assert sorted(asked) == [(A, U), (B, U), (C, U)]            # each source still asked once per image


def test_elsewhere_skips_the_sources_that_do_not_have_the_image_usable(tmp_path):
    usable = manifest(U, description='from c')
    by_url = {A: {U: manifest(U)}, B: {U: manifest(U, state='disabled')}, C: {U: usable}}
    resolver, dummy = three_sources(tmp_path, by_url)
    other = resolver.elsewhere(resolver.find(U), resolver.sources(U)[:1])
    assert other.source.url == C and other.manifest == usable
    assert resolver.elsewhere(resolver.find(U), resolver.sources(U)[::2]) is None   # b: disabled


@pytest.mark.parametrize('at_b', [
    None,                                                            # b does not have it
    manifest(U, files=[{'size': 1, 'compression': 'lzma'}]),         # a manifest we cannot trust
    manifest(OTHER),                                                 # another image under the UUID
    manifest(U, type='docker'),                                      # a docker image
    'refused',                                                       # nothing listens at b
])
def test_elsewhere_passes_over_a_source_that_cannot_give_the_image(tmp_path, at_b):
    by_url = {A: {U: manifest(U)}, B: {U: at_b} if isinstance(at_b, dict) else {}, C: {U: manifest(U)}}
    kinds = {B: RefusingClient} if at_b == 'refused' else None
    resolver, dummy = three_sources(tmp_path, by_url, kinds)
    assert resolver.elsewhere(resolver.find(U), resolver.sources(U)[:1]).source.url == C


def test_elsewhere_skips_a_docker_source(tmp_path):
    resolver, dummy = three_sources(tmp_path, {A: {U: manifest(U)}, B: {U: manifest(U)}})
    a, b, dummy2 = resolver.sources(U)
    b.type = 'docker'
    assert resolver.elsewhere(resolver.find(U), [a]) is None


def test_elsewhere_applies_the_check_and_skips_what_it_refuses(tmp_path):
    by_url = {A: {U: manifest(U)}, B: {U: manifest(U, requirements={'min_platform': {'7.0': 'x'}})},
              C: {U: manifest(U)}}
    resolver, dummy = three_sources(tmp_path, by_url)
    checked = []

    def check(m):
        checked.append(m)
        if m.get('requirements'):
            raise ImageError('not on this platform')

    assert resolver.elsewhere(resolver.find(U), resolver.sources(U)[:1], check).source.url == C
    assert [bool(m.get('requirements')) for m in checked] == [True, False]


def test_elsewhere_keeps_to_how_the_image_was_looked_for(tmp_path):
    """An origin (looked for active or not, as imgadm does) may come from a source where it is disabled; an image
    asked for by the user may not."""
    by_url = {A: {U: manifest(U)}, B: {U: manifest(U, state='disabled')}}
    resolver, dummy = three_sources(tmp_path, by_url)
    tried = resolver.sources(U)[:1]
    assert resolver.elsewhere(resolver.find(U), tried) is None
    origin = resolver.find(U, active_only=False)
    assert resolver.elsewhere(origin, tried).source.url == B


def test_elsewhere_is_not_the_same_image_under_another_origin(tmp_path):
    """The plan imports an image after its origin; a source whose manifest of the UUID names another origin offers
    another image (its stream would need that origin, its record would name it): passed over."""
    base, other_base = uuid_of(1), uuid_of(2)
    by_url = {A: {U: manifest(U, origin=base)}, B: {U: manifest(U, origin=other_base)},
              C: {U: manifest(U, origin=base)}}
    resolver, dummy = three_sources(tmp_path, by_url)
    assert resolver.elsewhere(resolver.find(U), resolver.sources(U)[:1]).source.url == C
    by_url = {A: {U: manifest(U)}, B: {U: manifest(U, origin=base)}}       # a full image, then an incremental
    resolver, dummy = three_sources(tmp_path, by_url)
    assert resolver.elsewhere(resolver.find(U), resolver.sources(U)[:1]) is None


def test_elsewhere_is_not_the_same_server_listed_again(tmp_path):
    """A source listed twice (another channel, or credentials) is the same server: its file would be the same."""
    urls = [A, A + '?channel=dev', 'http://user:secret@a.example.com/', B]
    resolver, dummy = three_sources(tmp_path, {ImageSource(url).url: {U: manifest(U)} for url in urls}, urls=urls)
    assert resolver.elsewhere(resolver.find(U), resolver.sources(U)[:1]).source.url == B
    assert resolver.elsewhere(resolver.find(U), [resolver.sources(U)[0], resolver.sources(U)[3]]) is None


# ---- warnings of the host's source file ----

@pytest.mark.parametrize('modern, data, words', BAD_LINES)
def test_imports_warn_of_the_lines_of_a_source_file_they_skip(tmp_path, modern, data, words):
    """Defect: the same warnings were lost by smartos_image (the resolver read the host's sources without them)."""
    leftover_sources_list(tmp_path, data, modern)
    warned = []
    paths = HostPaths(str(tmp_path))
    resolver = ImageResolver({'source': None}, paths, detect_layout(paths), warn=lambda text, key=None:
                             warned.append(text))
    assert resolver.sources('an image')
    assert [w for w in warned if words in w], warned
