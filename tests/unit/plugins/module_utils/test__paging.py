# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_paging.py: the one paging rule (ListImages page by page, bounded), through a client."""

from __future__ import annotations

import json
import urllib.parse

import pytest

from ansible_collections.smartos.images.plugins.module_utils import _paging
from ansible_collections.smartos.images.plugins.module_utils._errors import SourceError
from ansible_collections.smartos.images.tests.unit.fakehost import FakeResponse, http_error, imgapi_client, manifests, ok, paged, queries

SECRET = 'https://alice:s3cret@img.example.com?channel=dev'


# ---- ListImages page by page ----

def test_list_raw_2500_images_once_each_in_order():
    images = manifests(2500)
    c, req, sleeps = imgapi_client(paged(images))
    assert c.list_raw() == images
    # 1000, then 999 new after the repeated marker, then the 501 left
    assert queries(req) == ['', 'limit=1000&marker=' + images[999]['uuid'], 'limit=1000&marker=' + images[1998]['uuid']]
    assert sleeps == []


@pytest.mark.parametrize('count, requests', [
    (0, 1),
    (1, 1),
    (999, 1),       # a short first page ends it
    (1000, 2),      # a full page asks again, and gets only the marker back
    (1001, 2),
    (1999, 3),      # 1000, then 999 more (a full page), then the marker alone
    (2000, 3),
])
def test_list_raw_stops_on_a_short_page(count, requests):
    images = manifests(count)
    c, req, dummy = imgapi_client(paged(images))
    assert c.list_raw() == images
    assert len(req.calls) == requests


def test_list_raw_drops_only_a_repeated_marker():
    first = manifests(1000)
    other = manifests(3, prefix='f')
    # a server that does not repeat the marker: nothing is dropped
    c, req, dummy = imgapi_client(ok(first), ok(other))
    assert c.list_raw() == first + other
    assert queries(req)[1] == 'limit=1000&marker=' + first[-1]['uuid']


def test_list_raw_stops_on_an_empty_page():
    first = manifests(1000)
    c, req, dummy = imgapi_client(ok(first), ok([]))
    assert c.list_raw() == first
    assert len(req.calls) == 2


def _ignores_marker(images):
    """A server that obeys limit but answers every marker with the start of its list."""
    def answer(url):
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
        return FakeResponse(json.dumps(images[:int(query.get('limit', 1000))]).encode())
    return answer


def test_list_raw_refuses_a_server_that_ignores_the_marker():
    # a server that ignores the marker answers the first page again: nothing new, and the rest is out of reach;
    # asked for one image after the marker it answers one: it obeys limit, so its list may be longer than a page
    images = manifests(1500)
    first = images[:1000]
    c, req, dummy = imgapi_client(_ignores_marker(images), url=SECRET)
    with pytest.raises(SourceError) as exc:
        c.list_raw()
    assert queries(req)[1:] == ['limit=1000&marker=%s&channel=dev' % first[-1]['uuid'],
                                'limit=1&marker=%s&channel=dev' % first[-1]['uuid']]
    assert exc.value.msg == ('https://***@img.example.com?channel=dev ignores the ListImages marker: page 2 ends with '
                             'image %s, which it listed before, so the rest of its list cannot be read'
                             % first[-1]['uuid'])


def test_list_raw_takes_a_whole_list_from_a_server_that_ignores_limit_and_marker():
    # a static server answers exactly 1000 images to any query string: the second page is the first again, and
    # asked for a single image it still answers all 1000, so those 1000 are its whole list
    first = manifests(1000)
    c, req, sleeps = imgapi_client(ok(first))
    assert c.list_raw() == first
    assert queries(req) == ['', 'limit=1000&marker=' + first[-1]['uuid'], 'limit=1&marker=' + first[-1]['uuid']]
    assert sleeps == []


@pytest.mark.parametrize('probe', [
    lambda first: first[:1],                          # obeys limit: the guard stands
    lambda first: first[1:] + manifests(1, 'f'),      # another list: not the same whole list
    lambda first: first[:999],
    lambda first: 'not a list',
])
def test_list_raw_whole_list_needs_the_same_list_again(probe):
    first = manifests(1000)
    c, req, dummy = imgapi_client(ok(first), ok(first), ok(probe(first)))
    with pytest.raises(SourceError, match='ignores the ListImages marker|not a list of images'):
        c.list_raw()
    assert len(req.calls) == 3


def test_list_raw_second_page_equal_to_a_short_first_is_not_asked():
    # a first page shorter than 1000 ends the listing before any probe
    first = manifests(999)
    c, req, dummy = imgapi_client(ok(first))
    assert c.list_raw() == first
    assert len(req.calls) == 1


def test_list_raw_refuses_a_full_page_that_ends_with_the_marker_again():
    # the one paging rule: a full page that cannot lead further is an error, not the end of the list (was: a quiet
    # stop, as imgadm does when the marker does not advance, which could leave "newest" chosen from part of a list)
    first = manifests(1000)
    c, req, dummy = imgapi_client(ok(first), ok([first[-1]] + manifests(998, prefix='f') + [first[-1]]))
    with pytest.raises(SourceError, match='ignores the ListImages marker: page 2 ends with image %s' % first[-1]['uuid']):
        c.list_raw()
    assert len(req.calls) == 2


@pytest.mark.parametrize('junk', [{'uuid': ['x']}, {'uuid': {'a': 1}}, {'uuid': None}, {'uuid': ''}, 'x', None])
def test_list_raw_refuses_a_full_page_whose_last_entry_has_no_uuid(junk):
    # the one paging rule (was: a quiet stop): the next page cannot be asked for, and the list would be cut short
    c, req, dummy = imgapi_client(ok(manifests(999) + [junk]))
    with pytest.raises(SourceError) as exc:
        c.list_raw()
    assert exc.value.msg == ('http://img.example.com listed a full page (page 1) whose last entry has no uuid: the next '
                             'page cannot be asked for, and the list would be cut short')
    assert len(req.calls) == 1


def test_list_raw_keeps_an_entry_without_a_uuid_inside_a_page_for_the_caller():
    listed = manifests(3) + ['junk', {'uuid': 5}] + manifests(2, prefix='f')
    c, dummy, dummy2 = imgapi_client(ok(listed))
    assert c.list_raw() == listed


def test_list_raw_lists_an_image_repeated_within_a_page_once():
    listed = manifests(3)
    c, dummy, dummy2 = imgapi_client(ok(listed + [listed[0]]))
    assert c.list_raw() == listed


@pytest.mark.parametrize('answer, what', [
    (ok({'code': 'InternalError'}), 'a dict'),
    (ok('images'), 'a str'),
    (ok(42), 'a int'),
    (http_error(404), 'HTTP 404'),
])
def test_list_raw_answer_that_is_not_a_list(answer, what):
    c, dummy, dummy2 = imgapi_client(answer, url=SECRET)
    with pytest.raises(SourceError) as exc:
        c.list_raw()
    assert exc.value.msg == 'https://***@img.example.com?channel=dev answered ListImages with %s, not a list of images' % what
    assert 's3cret' not in str(exc.value.evidence)


def test_list_raw_a_later_page_that_is_not_a_list():
    c, req, dummy = imgapi_client(ok(manifests(1000)), ok({'code': 'InternalError', 'message': 'oops'}))
    with pytest.raises(SourceError) as exc:
        c.list_raw()
    assert 'answered ListImages with a dict' in exc.value.msg
    assert len(req.calls) == 2


def test_listing_keeps_images_repeated_at_a_page_edge_once():
    first = manifests(1000)
    second = [first[-1], first[-2]] + manifests(5, prefix='f')   # a tie at the edge repeats an image
    c, dummy, dummy2 = imgapi_client(ok(first), ok(second))
    assert c.list_raw() == first + manifests(5, prefix='f')


def test_a_page_larger_than_the_limit_is_the_whole_list():
    everything = manifests(1500)
    c, req, dummy = imgapi_client(ok(everything))
    assert c.list_raw() == everything and len(req.calls) == 1


# ---- bounded in pages and time ----

def test_list_raw_is_bounded(monkeypatch):
    monkeypatch.setattr(_paging, 'LIST_MAX_PAGES', 3)
    pages = iter(range(100))

    def endless(url):
        page = manifests(1000, prefix='%x' % next(pages))
        return FakeResponse(json.dumps(page).encode())
    c, req, dummy = imgapi_client(endless)
    with pytest.raises(SourceError) as exc:
        c.list_raw()
    assert exc.value.msg == ('http://img.example.com: ListImages did not end within 3 pages and 300 s; use filters '
                             'or a channel to list fewer images')
    assert len(req.calls) == 3


def test_listing_deadline(clock):
    def endless(url):
        clock.now += 100
        return FakeResponse(json.dumps(manifests(1000, prefix='%x' % int(clock.now // 100))).encode())
    c, req, dummy = imgapi_client(endless)
    with pytest.raises(SourceError, match='did not end within 50 pages and 300 s'):
        c.list_raw()
    assert len(req.calls) == 4   # the deadline is checked before each page
