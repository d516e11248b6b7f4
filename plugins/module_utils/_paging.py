# Private to the smartos.images collection: not a public API.
# The one ListImages paging rule (IMGAPI limit and marker), used by the modules' client and the controller lookup.
from __future__ import annotations

import time

from ansible_collections.smartos.images.plugins.module_utils._errors import SourceError

# The limits below are documented in docs/docsite/rst/guide_security.rst, the doc fragment and the lookup.
PAGE_SIZE = 1000              # IMGAPI ListImages: default and maximum limit
PAGE_MAX_BYTES = 8 << 20      # one ListImages page (up to 1000 manifests) or the whole DSAPI list
LIST_MAX_PAGES = 50           # so at most 50,000 images in pages of PAGE_SIZE
LIST_MAX_SECONDS = 300


def entry_uuid(entry):
    """The uuid of a listed entry when it is a non-empty string, else None."""
    uuid = entry.get('uuid') if isinstance(entry, dict) else None
    return uuid if isinstance(uuid, str) and uuid else None


def _kind(page):
    return 'HTTP 404' if page is None else 'a ' + type(page).__name__


def _page(fetch, params, shown):
    page = fetch(params)
    if not isinstance(page, list):
        raise SourceError('%s answered ListImages with %s, not a list of images' % (shown, _kind(page)), url=shown)
    return page


def _uuids(page):
    return [entry_uuid(entry) for entry in page]


def _ignores_paging(fetch, first, second, shown):
    """True when a server answered the second page with the first one again because it ignores both limit and
    marker (a static file served for any query string): asked for a single image after the marker, it answers the
    same whole list again. A server that obeys limit but ignores the marker answers one image, and stays an error."""
    if len(first) != PAGE_SIZE or _uuids(second) != _uuids(first):
        return False
    probe = _page(fetch, {'limit': 1, 'marker': entry_uuid(first[-1])}, shown)
    return _uuids(probe) == _uuids(first)


def read_listing(fetch, shown, seconds=LIST_MAX_SECONDS, now=None):
    """Every entry a ListImages listing holds, each image once, in the order listed (imgadm's listAllImages).

    fetch(params) answers one page: first with no params, then with limit=PAGE_SIZE and marker=<the last uuid>.
    IMGAPI answers a marker with every image published at or after the marker's, so the marker and images tied with
    it come again: an image listed before is dropped. A page shorter than PAGE_SIZE ends the listing, a longer one
    is the whole list (the server ignores limit). A full page that cannot lead further (its last entry has no uuid,
    or was listed before) is an error, never a short list: "newest" must not be chosen from part of a list.
    One exception, checked: a second page equal to the first, from a server that also ignores limit (a static
    server with exactly PAGE_SIZE images, see _ignores_paging), means the first page was the whole list."""
    now = now or time.monotonic
    entries, seen, params, first = [], set(), {}, None
    deadline = now() + seconds
    for number in range(1, LIST_MAX_PAGES + 1):
        if now() > deadline:
            break
        page = _page(fetch, params, shown)
        if number == 2 and _ignores_paging(fetch, first, page, shown):
            return entries
        first = page if number == 1 else first
        fresh = set()
        for entry in page:
            uuid = entry_uuid(entry)
            if uuid is None or uuid not in seen:
                entries.append(entry)  # an entry without a uuid is left for the caller to refuse
                seen.add(uuid)
                fresh.add(uuid)
        if len(page) != PAGE_SIZE:
            return entries
        last = entry_uuid(page[-1])
        if last is None:
            raise SourceError('%s listed a full page (page %d) whose last entry has no uuid: the next page cannot be '
                              'asked for, and the list would be cut short' % (shown, number), url=shown)
        if last not in fresh:
            raise SourceError('%s ignores the ListImages marker: page %d ends with image %s, which it listed before, '
                              'so the rest of its list cannot be read' % (shown, number, last), url=shown)
        params = {'limit': PAGE_SIZE, 'marker': last}
    raise SourceError('%s: ListImages did not end within %d pages and %d s; use filters or a channel to list fewer '
                      'images' % (shown, LIST_MAX_PAGES, seconds), url=shown)
