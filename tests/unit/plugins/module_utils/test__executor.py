# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_executor.py: imports run after their origin, at most PARALLEL_IMPORTS at once,
the first error stops new ones; an import that fails because of what its source sent tries the next source that
has the image; deletes and the report of a run that fails part-way."""

from __future__ import annotations

import contextlib
import json
import threading

import pytest

from ansible_collections.smartos.images.plugins.module_utils import _executor, _plan
from ansible_collections.smartos.images.plugins.module_utils._errors import (
    CommandError, DownloadError, ImageError, InvalidParameter, SourceError, UnsupportedImage,
)
from ansible_collections.smartos.images.plugins.module_utils._executor import ImageExecutor
from ansible_collections.smartos.images.plugins.module_utils._host import HostPaths
from ansible_collections.smartos.images.plugins.module_utils._imgapi import ImageSource
from ansible_collections.smartos.images.plugins.module_utils._local import LocalSource
from ansible_collections.smartos.images.plugins.module_utils._resolver import Found


def uuid_of(i):
    return '%08x-0000-4000-8000-000000000000' % i


def found(i, origin=None):
    manifest = {'uuid': uuid_of(i)}
    if origin is not None:
        manifest['origin'] = uuid_of(origin)
    return Found(None, None, manifest, manifest)


class FakeZfs:
    def __init__(self):
        self.destroyed = []

    def destroy_recursive(self, dataset):
        self.destroyed.append(dataset)


def executor(tmp_path, monkeypatch, outcome):
    """An executor whose import_one records the order, and returns or raises outcome(uuid)."""
    ex = ImageExecutor(FakeZfs(), HostPaths(str(tmp_path)), 'modern', 'zones', 0, 0)
    started, lock, active = [], threading.Lock(), [0, 0]

    def import_one(f):
        with lock:
            started.append(f.uuid)
            active[0] += 1
            active[1] = max(active[1], active[0])
        try:
            return outcome(f.uuid)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(ex, 'import_one', import_one)
    return ex, started, active


def test_each_import_starts_after_its_origin(tmp_path, monkeypatch):
    ex, started, dummy = executor(tmp_path, monkeypatch, lambda u: (True, 10))
    imports = [found(0), found(1, 0), found(2, 1), found(3)]
    assert ex.run_imports(imports) == ([uuid_of(i) for i in range(4)], 40)
    assert started.index(uuid_of(0)) < started.index(uuid_of(1)) < started.index(uuid_of(2))
    assert sorted(ex.progress['imported']) == [uuid_of(i) for i in range(4)]


def test_at_most_parallel_imports_at_once(tmp_path, monkeypatch):
    gate = threading.Event()

    def outcome(uuid):
        gate.wait(5)
        return True, 0

    ex, started, active = executor(tmp_path, monkeypatch, outcome)
    imports = [found(i) for i in range(_executor.PARALLEL_IMPORTS + 3)]
    runner = threading.Thread(target=ex.run_imports, args=(imports,), daemon=True)
    runner.start()
    gate.set()
    runner.join(10)
    assert not runner.is_alive()
    assert 1 <= active[1] <= _executor.PARALLEL_IMPORTS
    assert sorted(started) == sorted(f.uuid for f in imports)


def test_an_image_imported_meanwhile_is_not_counted(tmp_path, monkeypatch):
    ex, dummy, dummy2 = executor(tmp_path, monkeypatch, lambda u: (u != uuid_of(0), 5))
    assert ex.run_imports([found(0), found(1, 0)]) == ([uuid_of(1)], 10)


def test_the_first_error_is_raised_and_the_children_of_a_failed_origin_never_start(tmp_path, monkeypatch):
    def outcome(uuid):
        if uuid == uuid_of(0):
            raise ImageError('receive failed')
        return True, 1

    ex, started, dummy = executor(tmp_path, monkeypatch, outcome)
    with pytest.raises(ImageError, match='receive failed'):
        ex.run_imports([found(0), found(1, 0), found(2, 1)])
    assert started == [uuid_of(0)]


def test_an_interrupt_in_an_import_is_raised_too(tmp_path, monkeypatch):
    def outcome(uuid):
        raise KeyboardInterrupt()

    ex, dummy, dummy2 = executor(tmp_path, monkeypatch, outcome)
    with pytest.raises(KeyboardInterrupt):
        ex.run_imports([found(0)])


def test_deletes_and_the_partial_failure_report(tmp_path):
    ex = ImageExecutor(FakeZfs(), HostPaths(str(tmp_path)), 'modern', 'zones', 0, 0)
    ex.delete_all([uuid_of(1), uuid_of(2)])
    assert ex.zfs.destroyed == ['zones/' + uuid_of(1), 'zones/' + uuid_of(2)]
    ex.progress['imported'].append(uuid_of(3))
    error = ImageError('boom')
    ex.partial_failure(error)
    assert error.msg == 'boom (after importing %s, deleting %s, %s)' % (uuid_of(3), uuid_of(1), uuid_of(2))
    assert error.evidence == {'changed': True, 'imported': [uuid_of(3)], 'removed': [uuid_of(1), uuid_of(2)]}


def test_a_failure_before_anything_changed_is_left_as_it_is(tmp_path):
    ex = ImageExecutor(FakeZfs(), HostPaths(str(tmp_path)), 'modern', 'zones', 0, 0)
    error = ImageError('boom')
    ex.partial_failure(error)
    assert error.msg == 'boom' and error.evidence == {}


# ---- the fallback: an import that fails because of what its source sent tries the next source ----

A, B, C = 'http://a.example.com', 'http://b.example.com', 'http://c.example.com'
U = uuid_of(7)


class SourceClient:
    def __init__(self, source):
        self.source = source


def at(source, uuid=U):
    """The image uuid as found at source."""
    manifest = {'uuid': uuid, 'name': 'img', 'version': '1', 'files': [{'size': 1, 'compression': 'none'}]}
    return Found(source, SourceClient(source), manifest, manifest)


class Installs:
    """Stands for _importer.install: each source's outcome (bytes received, or an error raised) by url."""

    def __init__(self, outcomes):
        self.outcomes, self.tried, self.records = outcomes, [], []

    def __call__(self, zfs, pipeline, client, manifest, pool, record):
        self.tried.append(client.source.url)
        self.records.append(record)
        outcome = self.outcomes[client.source.url]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


class Elsewhere:
    """Stands for ImageResolver.elsewhere over a list of Founds: the first whose source was not tried."""

    def __init__(self, others):
        self.others, self.asked = others, []

    def __call__(self, found, tried):
        self.asked.append((found.source.url, [s.url for s in tried]))
        return next((f for f in self.others if not any(f.source is t for t in tried)), None)


def fallback(tmp_path, monkeypatch, outcomes, urls=(A, B, C), first=None):
    """An executor over sources urls (the first planned) whose installs end as outcomes says; (executor, planned
    Found, installs, elsewhere, warnings)."""
    sources = [ImageSource(u) for u in urls]
    planned = first or at(sources[0])
    installs, elsewhere, warnings = Installs(outcomes), Elsewhere([at(s) for s in sources[1:]]), []
    monkeypatch.setattr(_executor, 'install', installs)
    ex = ImageExecutor(FakeZfs(), HostPaths(str(tmp_path)), 'modern', 'zones', 0, 0, elsewhere, warnings.append)
    return ex, planned, installs, elsewhere, warnings


def download_errors(url):
    """One error of each kind that says what a source sent was wrong, as the importer and the client raise them."""
    return [
        DownloadError('image %s file checksum (sha1) error: expected "%s", downloaded checksum was "%s"'
                      % (U, 'a' * 40, 'b' * 40), url=url),
        DownloadError('image %s file Content-MD5 error: expected "x", downloaded checksum was "y"' % U, url=url),
        DownloadError('image %s file size error: expected 10 bytes, downloaded 5 bytes' % U, url=url),
        DownloadError('image %s file: the manifest says 10 bytes but the server sends Content-Length 5' % U, url=url),
        DownloadError('image %s file: unexpected missing or invalid Content-Length header: None' % U, url=url),
        DownloadError('image %s file: the download broke off after 5 of 10 bytes and 3 resume attempt(s) failed: '
                      'the connection closed early' % U, url=url),
        SourceError('%s/images/%s/file answered HTTP 500: InternalError' % (url, U), url=url, status=500),
        SourceError('%s refused the connection: [Errno 111] Connection refused' % url, url=url, refused=True),
        ImageError('image %s file could not be decompressed as gzip (invalid stored block lengths), although its '
                   'SHA-1 of the manifest matches: the image on %s is damaged' % (U, url), url=url),
    ]


KINDS = ['checksum', 'content-md5', 'size', 'content-length', 'no-content-length', 'broke-off', 'http-500',
         'refused', 'inflate']


@pytest.mark.parametrize('index', range(len(KINDS)), ids=KINDS)
def test_an_error_of_what_the_source_sent_falls_back_to_the_next_source(tmp_path, monkeypatch, index):
    error = download_errors(A)[index]
    ex, planned, installs, elsewhere, warnings = fallback(tmp_path, monkeypatch, {A: error, B: 42})
    assert ex.install_from_a_source(planned) == 42
    assert installs.tried == [A, B]
    assert elsewhere.asked == [(A, [A])]
    assert warnings == ['image %s: the import from %s failed (%s); trying the next source that has it, %s'
                        % (U, A, error.msg, B)]
    assert ex.came_from[U].source.url == B
    # the record names the source the image came from, as imgadm's cache file does
    assert [json.loads(r.data)['source'] for r in installs.records] == [A, B]


def test_run_imports_reports_where_each_image_came_from(tmp_path, monkeypatch):
    ex, planned, installs, dummy, warnings = fallback(tmp_path, monkeypatch, {A: download_errors(A)[0], B: 3})
    monkeypatch.setattr(ex, '_locked', lambda uuid, wait_max=None: contextlib.nullcontext())
    ex.zfs.exists = lambda name: False
    assert ex.run_imports([planned]) == ([U], 3)
    assert ex.progress['imported'] == [U] and len(warnings) == 1
    assert _plan.import_sources([planned], ex.came_from) == {U: B}
    assert _plan.import_sources([planned]) == {U: A}               # as planned (check mode)


def test_each_source_is_tried_once_then_one_error_lists_each(tmp_path, monkeypatch):
    errors = {A: download_errors(A)[0], B: download_errors(B)[5], C: download_errors(C)[6]}
    ex, planned, installs, elsewhere, warnings = fallback(tmp_path, monkeypatch, errors)
    with pytest.raises(DownloadError) as exc:
        ex.install_from_a_source(planned)
    assert installs.tried == [A, B, C]
    assert elsewhere.asked == [(A, [A]), (B, [A, B]), (C, [A, B, C])]
    assert exc.value.msg == ('image %s could not be imported from any of its 3 sources: %s: %s; %s: %s; %s: %s'
                             % (U, A, errors[A].msg, B, errors[B].msg, C, errors[C].msg))
    assert exc.value.evidence == {'sources': [A, B, C]}
    assert [w.split(' failed (')[0] for w in warnings] == ['image %s: the import from %s' % (U, A),
                                                           'image %s: the import from %s' % (U, B)]
    assert U not in ex.came_from


def test_with_no_other_source_the_error_is_the_sources_own(tmp_path, monkeypatch):
    error = download_errors(A)[0]
    ex, planned, installs, elsewhere, warnings = fallback(tmp_path, monkeypatch, {A: error}, urls=(A,))
    with pytest.raises(DownloadError) as exc:
        ex.install_from_a_source(planned)
    assert exc.value is error and installs.tried == [A] and elsewhere.asked == [(A, [A])]
    assert warnings == [] and ex.came_from == {}


@pytest.mark.parametrize('error', [
    CommandError('zfs receive of image %s into zones/%s-partial failed: out of space' % (U, U),
                 cmd='zfs receive', rc=1),
    ImageError('timed out after 0s waiting for the import lock /var/run/img.%s.import.lock held by another process'
               % U),
    ImageError('cannot write /var/imgadm/images/zones-%s.json: No space left on device' % U, path='/var/imgadm'),
    ImageError('image "%s" has an unexpected number of snapshots (2): a, b' % U),
    InvalidParameter('bad'),
    UnsupportedImage('image %s from %s is a docker image' % (U, A)),
], ids=['zfs-receive', 'lock', 'cache-write', 'snapshots', 'parameter', 'unsupported'])
def test_a_host_error_does_not_fall_back(tmp_path, monkeypatch, error):
    """What would fail the same way from any source is raised at once: no other source is asked, no warning."""
    ex, planned, installs, elsewhere, warnings = fallback(tmp_path, monkeypatch, {A: error, B: 1})
    with pytest.raises(ImageError) as exc:
        ex.install_from_a_source(planned)
    assert exc.value is error and installs.tried == [A] and elsewhere.asked == [] and warnings == []


def test_an_interrupt_does_not_fall_back(tmp_path, monkeypatch):
    ex, planned, installs, elsewhere, warnings = fallback(tmp_path, monkeypatch, {A: KeyboardInterrupt(), B: 1})
    with pytest.raises(KeyboardInterrupt):
        ex.install_from_a_source(planned)
    assert installs.tried == [A] and elsewhere.asked == []


def test_a_host_error_at_the_next_source_ends_the_fallback(tmp_path, monkeypatch):
    host = CommandError('zfs receive failed', rc=1)
    ex, planned, installs, elsewhere, warnings = fallback(tmp_path, monkeypatch, {A: download_errors(A)[0], B: host,
                                                                                  C: 1})
    with pytest.raises(CommandError) as exc:
        ex.install_from_a_source(planned)
    assert exc.value is host and installs.tried == [A, B] and len(warnings) == 1


def test_a_local_file_does_not_fall_back(tmp_path, monkeypatch):
    """An image installed from a manifest and a file on the host (imgadm install) has no other source."""
    local = LocalSource(str(tmp_path / 'img.zfs.gz'))
    planned = at(local)
    error = DownloadError('image %s file checksum (sha1) error' % U, url=local.url)
    ex, dummy, installs, elsewhere, warnings = fallback(tmp_path, monkeypatch, {local.url: error, B: 1},
                                                        first=planned)
    with pytest.raises(DownloadError) as exc:
        ex.install_from_a_source(planned)
    assert exc.value is error and installs.tried == [local.url] and elsewhere.asked == [] and warnings == []


def test_a_local_file_is_recorded_without_a_source(tmp_path, monkeypatch):
    local = LocalSource(str(tmp_path / 'img.zfs.gz'))
    ex, planned, installs, dummy, dummy2 = fallback(tmp_path, monkeypatch, {local.url: 5}, first=at(local))
    assert ex.install_from_a_source(planned) == 5
    assert 'source' not in json.loads(installs.records[0].data) and ex.came_from[U] is planned


def test_without_a_fallback_the_first_error_is_raised(tmp_path, monkeypatch):
    """An executor made without elsewhere (as the other modules make it) never tries another source."""
    error = download_errors(A)[0]
    monkeypatch.setattr(_executor, 'install', Installs({A: error}))
    ex = ImageExecutor(FakeZfs(), HostPaths(str(tmp_path)), 'modern', 'zones', 0, 0)
    with pytest.raises(DownloadError) as exc:
        ex.install_from_a_source(at(ImageSource(A)))
    assert exc.value is error
