"""Attacks as a hostile image server, through real ansible-playbook runs: lying headers, bad ranges, wrong files,
echoed credentials, odd redirect chains, capped manifests, odd listings. Each case: no traceback, a clear error,
nothing half-imported, no credential shown, bounded time."""
from __future__ import annotations

import base64
import gzip
import http.server
import json
import os
import socketserver
import subprocess
import threading
import time
from urllib.parse import quote

import pytest

from tests.integration.conftest import POOL, tree_state
from tests.integration.test_safety_http import files_text, image_task, run_vvv, write_conf
from tests.lib.imgserver_ctl import ImageServer
from tests.lib.zfspool import retry_busy

pytestmark = pytest.mark.usefixtures('collection_built')

PASSWORD = 'p#ss/w?rd@x:y'
ENCODED = quote(PASSWORD, safe='')
B64 = base64.b64encode(('alice:' + PASSWORD).encode()).decode()
SECRETS = (PASSWORD, ENCODED, B64)
SERVE_MAX = 60   # no hostile answer may keep a handler thread longer than this


class Hostile:
    """A small HTTP server in this process on 127.0.0.x: `answer(handler)` writes whatever raw bytes it likes.

    It records (path, Authorization) of every request; stopped by the test that made it."""

    def __init__(self, answer, bind='127.0.0.1'):
        self.answer, self.bind, self.seen = answer, bind, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.0'
            timeout = SERVE_MAX

            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.seen.append((self.path, self.headers.get('Authorization')))
                try:
                    outer.answer(self)
                except (ConnectionError, OSError):
                    pass
                self.close_connection = True

        self.httpd = socketserver.ThreadingTCPServer((bind, 0), Handler, bind_and_activate=False)
        self.httpd.daemon_threads = True
        self.httpd.allow_reuse_address = True
        self.httpd.server_bind()
        self.httpd.server_activate()
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={'poll_interval': 0.1}, daemon=True)

    @property
    def url(self):
        return 'http://%s:%d' % (self.bind, self.httpd.server_address[1])

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


def raw(handler, status, headers, body=b''):
    """Send a whole answer as raw bytes, headers exactly as given (duplicates, lies and all)."""
    lines = ['HTTP/1.0 %s' % status] + ['%s: %s' % kv for kv in headers]
    handler.wfile.write(('\r\n'.join(lines) + '\r\n\r\n').encode('latin-1') + body)
    handler.wfile.flush()


def json_answer(handler, obj, status='200 OK', extra=()):
    body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    raw(handler, status, [('Content-Type', 'application/json'), ('Content-Length', len(body))] + list(extra), body)


class Site:
    """What a hostile server serves for one real image: its manifest and file, each changeable per test."""

    def __init__(self, manifest, path):
        self.manifest = manifest
        with open(path, 'rb') as f:
            self.file = f.read()
        self.file_answer = None       # handler -> None, to lie about the file
        self.manifest_answer = None   # handler -> None, to lie about the manifest

    def __call__(self, handler):
        uuid = self.manifest['uuid']
        if handler.path.split('?')[0] == '/images/%s' % uuid:
            if self.manifest_answer:
                return self.manifest_answer(handler)
            return json_answer(handler, self.manifest)
        if handler.path == '/images/%s/file' % uuid:
            if self.file_answer:
                return self.file_answer(handler)
            return raw(handler, '200 OK', [('Content-Length', len(self.file))], self.file)
        return json_answer(handler, {'code': 'ResourceNotFound', 'message': 'no such thing'}, '404 Not Found')


def destroy(uuid):
    retry_busy('zfs', 'destroy', '-r', '%s/%s' % (POOL, uuid))


def nothing_imported(pool, uuid):
    return not [line for line in pool.datasets() if uuid in line]


def assert_clean_failure(result, output, pool, uuid, started, limit=60):
    assert result['failed'], result
    assert 'Traceback' not in output and 'MODULE FAILURE' not in output, output[-3000:]
    assert 'Exception' not in result['msg'] and 'Module failed' not in result['msg'], result['msg']  # uncaught
    assert nothing_imported(pool, uuid), pool.datasets()
    assert time.monotonic() - started < limit
    for secret in SECRETS:
        assert secret not in output and secret not in json.dumps(result)


# ---- Content-Length lies on the image file and on the manifest ----

@pytest.mark.parametrize('lengths', [['\xb2'], ['9' * 5000], ['-5'], ['abc'], ['0x10'], ['{size}', '{size}0'],
                                     ['{bigger}'], ['{smaller}']],
                         ids=['superscript', '5000-digits', 'negative', 'non-numeric', 'hex', 'duplicated-differing',
                              'bigger', 'smaller'])
def test_file_content_length_lies(play, images, pool, host_root, lengths):
    manifest = images('attack-cl')
    site = Site(manifest, images.path('attack-cl'))
    size = len(site.file)
    values = [v.format(size=size, bigger=size + 1000, smaller=size - 1000) for v in lengths]
    site.file_answer = lambda h: raw(h, '200 OK', [('Content-Length', v) for v in values], site.file)
    with Hostile(site) as bad:
        started = time.monotonic()
        result, output = run_vvv(play, image_task(host_root, bad.url, uuid=manifest['uuid'], retries=0, timeout=5))
    assert_clean_failure(result, output, pool, manifest['uuid'], started)
    assert 'Content-Length' in result['msg']


@pytest.mark.parametrize('length', ['\xb2', '9' * 5000])
def test_manifest_content_length_lies(play, images, pool, host_root, length):
    manifest = images('attack-cl')
    site = Site(manifest, images.path('attack-cl'))
    body = json.dumps(manifest).encode()
    answer_headers = [('Content-Type', 'application/json'), ('Content-Length', length)]
    site.manifest_answer = lambda h: raw(h, '200 OK', answer_headers, body)
    with Hostile(site) as bad:
        started = time.monotonic()
        result, output = run_vvv(play, image_task(host_root, bad.url, uuid=manifest['uuid'], retries=0, timeout=5))
    # http.client reads to the end when the length is unusable; the manifest itself is fine, so either outcome
    # is acceptable as long as it is clean
    assert 'Traceback' not in output and 'MODULE FAILURE' not in output, output[-3000:]
    if not result['failed']:
        destroy(manifest['uuid'])
    assert time.monotonic() - started < 60


# ---- Range answers that lie ----

def _half_then(site, resume):
    """The first file answer breaks off half-way; the Range answer is `resume(handler, offset)`."""
    size = len(site.file)

    def answer(handler):
        wanted = handler.headers.get('Range')
        if wanted is None:
            raw(handler, '200 OK', [('Content-Length', size)], site.file[:size // 2])
            return
        resume(handler, int(wanted.split('=')[1].rstrip('-')))
    site.file_answer = answer


def test_a_206_from_offset_0_that_says_so_is_skipped_to_the_offset(play, images, pool, host_root):
    manifest = images('attack-range')
    site = Site(manifest, images.path('attack-range'))
    size = len(site.file)
    _half_then(site, lambda h, offset: raw(h, '206 Partial Content', [
        ('Content-Length', size), ('Content-Range', 'bytes 0-%d/%d' % (size - 1, size))], site.file))
    with Hostile(site) as bad:
        result = play(image_task(host_root, bad.url, uuid=manifest['uuid'], retries=1, timeout=5))
    try:
        assert not result['failed'], result['msg']
        assert result['changed'] and result['downloaded_bytes'] == size
        assert [p for p, a in bad.seen].count('/images/%s/file' % manifest['uuid']) == 2
    finally:
        destroy(manifest['uuid'])


@pytest.mark.parametrize('content_range', ['bytes {offset}-{last}/{size}', 'bytes {ahead}-{last}/{size}'],
                         ids=['lying-range', 'range-past-offset'])
def test_a_206_with_the_wrong_bytes_fails_cleanly(play, images, pool, host_root, content_range):
    manifest = images('attack-range')
    site = Site(manifest, images.path('attack-range'))
    size = len(site.file)
    _half_then(site, lambda h, offset: raw(h, '206 Partial Content', [
        ('Content-Length', size - offset),
        ('Content-Range', content_range.format(offset=offset, ahead=offset + 10, last=size - 1, size=size))],
        site.file[:size - offset]))   # bytes from 0, whatever Content-Range says
    with Hostile(site) as bad:
        started = time.monotonic()
        result, output = run_vvv(play, image_task(host_root, bad.url, uuid=manifest['uuid'], retries=1, timeout=5))
    assert_clean_failure(result, output, pool, manifest['uuid'], started)
    assert 'checksum' in result['msg'] or 'Content-Range' in result['msg'], result['msg']


def test_another_valid_image_of_the_right_size_is_refused(play, images, pool, host_root):
    manifest = dict(images('attack-mine'))
    images('attack-other')
    site = Site(manifest, images.path('attack-other'))   # another real image's file ...
    manifest['files'] = [dict(manifest['files'][0], size=len(site.file))]   # ... of the size the manifest says
    site.manifest = manifest
    with Hostile(site) as bad:
        started = time.monotonic()
        result, output = run_vvv(play, image_task(host_root, bad.url, uuid=manifest['uuid'], retries=0))
    assert_clean_failure(result, output, pool, manifest['uuid'], started)
    assert 'checksum (sha1) error' in result['msg']
    assert not [path for path in tree_state(host_root) if manifest['uuid'] in path and not path.endswith('.lock')]


# ---- answers that break the HTTP framing ----

def _close_mid_headers(handler):
    handler.wfile.write(b'HTTP/1.0 200 OK\r\nContent-Type: application/js')


def _endless_headers(handler):
    handler.wfile.write(b'HTTP/1.0 200 OK\r\n')
    for n in range(5000):   # far past http.client's 100
        handler.wfile.write(b'X-Filler-%d: %s\r\n' % (n, b'y' * 100))


def _huge_header_line(handler):
    handler.wfile.write(b'HTTP/1.0 200 OK\r\nX-Long: ' + b'z' * 200000 + b'\r\n\r\n')


def _endless_continue(handler):
    ends = time.monotonic() + 20
    while time.monotonic() < ends:   # interim answers, which http.client skips one after another
        handler.wfile.write(b'HTTP/1.1 100 Continue\r\n\r\n')
        time.sleep(0.001)


def _status_echoes_credentials(handler):
    handler.wfile.write(('HTTP/1.0 2OO %s %s\r\n\r\n' % (handler.headers.get('Authorization'), PASSWORD)).encode())


@pytest.mark.parametrize('answer', [_close_mid_headers, _endless_headers, _huge_header_line, _status_echoes_credentials,
                                    _endless_continue],
                         ids=['closed-mid-headers', 'endless-headers', 'huge-header-line', 'bad-status-echo',
                              'endless-100-continue'])
def test_broken_framing_fails_cleanly(play, images, pool, host_root, answer):
    manifest = images('attack-cl')
    site = Site(manifest, images.path('attack-cl'))
    site.manifest_answer = answer
    with Hostile(site) as bad:
        started = time.monotonic()
        source = bad.url.replace('://', '://alice:%s@' % ENCODED)
        result, output = run_vvv(play, image_task(host_root, source, uuid=manifest['uuid'], retries=1, timeout=2))
    assert_clean_failure(result, output, pool, manifest['uuid'], started)
    if answer is _close_mid_headers:
        # http.client takes the cut header block as complete, with an empty body: not JSON, so not a manifest
        assert 'invalid JSON' in result['msg'], result['msg']
    else:
        assert len(bad.seen) == 2   # one retry, then a clear error
        assert 'could not be reached after 2 attempt(s)' in result['msg'], result['msg']
    if answer is _endless_continue:
        assert 'no complete answer headers within 8 s' in result['msg'], result['msg']


# ---- error answers that echo the credentials back ----

def _echo_error(status):
    def answer(handler):
        auth = handler.headers.get('Authorization') or ''
        decoded = base64.b64decode(auth.split(' ')[-1]).decode() if auth else ''
        json_answer(handler, {'code': 'Denied', 'message': 'you sent %r (%s) for %s' % (auth, decoded, handler.path)},
                    '%d Denied %s' % (status, auth))
    return answer


@pytest.mark.parametrize('status', [401, 403, 407])
@pytest.mark.parametrize('where', ['argument', 'imgadm.conf'])
def test_an_error_that_echoes_the_credentials_shows_none(play, images, pool, host_root, status, where):
    manifest = images('attack-cl')
    site = Site(manifest, images.path('attack-cl'))
    site.manifest_answer = _echo_error(status)
    with Hostile(site) as bad:
        source = bad.url.replace('://', '://alice:%s@' % ENCODED)
        started = time.monotonic()
        if where == 'argument':
            task = image_task(host_root, source, uuid=manifest['uuid'], retries=0)
        else:
            write_conf(host_root, [{'type': 'imgapi', 'url': source}])
            task = image_task(host_root, uuid=manifest['uuid'], retries=0)
        result, output = run_vvv(play, task)
        assert bad.seen and bad.seen[0][1] == 'Basic ' + B64   # the server did get them, and echoed them
    conf = os.path.join(host_root, 'var', 'imgadm', 'imgadm.conf')
    others = files_text(host_root).replace(open(conf, encoding='utf-8').read(), '') if os.path.exists(conf) else \
        files_text(host_root)
    assert_clean_failure(result, output + others, pool, manifest['uuid'], started)
    assert 'HTTP %d' % status in result['msg'] and 'Denied' in result['msg'], result['msg']


@pytest.mark.parametrize('body', [b'[' * 60000, b'{"message": ' + b'[' * 60000 + b']' * 60000 + b'}'],
                         ids=['nested', 'nested-message'])
def test_a_deeply_nested_error_body_is_a_clean_error(play, images, pool, host_root, body):
    manifest = images('attack-cl')
    site = Site(manifest, images.path('attack-cl'))
    site.manifest_answer = lambda h: json_answer(h, body, '403 Forbidden')
    with Hostile(site) as bad:
        started = time.monotonic()
        result, output = run_vvv(play, image_task(host_root, bad.url, uuid=manifest['uuid'], retries=0))
    assert_clean_failure(result, output, pool, manifest['uuid'], started)
    assert 'answered HTTP 403' in result['msg'], result['msg']


@pytest.mark.parametrize('body', [b'not gzip at all', gzip.compress(b'{"uuid": "x"}' * 1000)[:200],
                                  gzip.compress(b'{}')[:10] + b'\xff' * 50],
                         ids=['not-gzip', 'truncated-gzip', 'corrupt-deflate'])
def test_a_broken_gzip_manifest_is_a_clean_error(play, images, pool, host_root, body):
    manifest = images('attack-cl')
    site = Site(manifest, images.path('attack-cl'))
    answer_headers = [('Content-Type', 'application/json'), ('Content-Encoding', 'gzip'), ('Content-Length', len(body))]
    site.manifest_answer = lambda h: raw(h, '200 OK', answer_headers, body)
    with Hostile(site) as bad:
        started = time.monotonic()
        result, output = run_vvv(play, image_task(host_root, bad.url, uuid=manifest['uuid'], retries=0))
    assert_clean_failure(result, output, pool, manifest['uuid'], started)
    assert bad.url in result['msg'], result['msg']


def test_a_redirect_location_that_echoes_the_password_shows_none(play, images, pool, host_root):
    manifest = images('attack-cl')
    site = Site(manifest, images.path('attack-cl'))
    site.manifest_answer = lambda h: raw(h, '302 Found', [('Location', 'ftp://files.invalid/%s/%s' % (
        PASSWORD, (h.headers.get('Authorization') or '').split(' ')[-1])), ('Content-Length', 0)])
    with Hostile(site) as bad:
        source = bad.url.replace('://', '://alice:%s@' % ENCODED)
        write_conf(host_root, [{'type': 'imgapi', 'url': source}])
        started = time.monotonic()
        result, output = run_vvv(play, image_task(host_root, uuid=manifest['uuid'], retries=0))
    conf = os.path.join(host_root, 'var', 'imgadm', 'imgadm.conf')
    assert_clean_failure(result, output + files_text(host_root).replace(open(conf, encoding='utf-8').read(), ''),
                         pool, manifest['uuid'], started)
    assert 'not an http:// or https:// URL' in result['msg'], result['msg']


def test_a_redirect_loop_ends(play, images, pool, host_root):
    manifest = images('attack-cl')
    site = Site(manifest, images.path('attack-cl'))
    site.manifest_answer = lambda h: raw(h, '301 Moved', [('Location', h.path), ('Content-Length', 0)])
    with Hostile(site) as bad:
        started = time.monotonic()
        result, output = run_vvv(play, image_task(host_root, bad.url, uuid=manifest['uuid'], retries=0))
    assert_clean_failure(result, output, pool, manifest['uuid'], started)
    assert 'redirected more than 5 times' in result['msg'] and len(bad.seen) == 6, result['msg']


def test_the_manifest_of_another_image_is_refused(play, images, pool, host_root):
    manifest = images('attack-mine')
    theirs = images('attack-other')
    site = Site(manifest, images.path('attack-other'))
    site.manifest_answer = lambda h: json_answer(h, theirs)   # GetImage(mine) answers with another real image,
    site.file_answer = lambda h: raw(h, '200 OK', [('Content-Length', len(site.file))], site.file)   # and its file
    with Hostile(site) as bad:
        started = time.monotonic()
        result, output = run_vvv(play, image_task(host_root, bad.url, uuid=manifest['uuid'], retries=0))
    assert_clean_failure(result, output, pool, manifest['uuid'], started)
    assert nothing_imported(pool, theirs['uuid'])
    assert theirs['uuid'] in result['msg'], result['msg']


# ---- a redirect chain across hosts, ports and back ----

def test_a_redirect_chain_sends_credentials_only_to_their_origin(play, images, images_dir, pool, host_root):
    manifest = images('attack-chain')
    with ImageServer(images_dir, auth='alice:' + PASSWORD) as home:
        # home -> 127.0.0.1:<other port> -> 127.0.0.3 (offering credentials of its own) -> home again
        third = Hostile(lambda h: raw(h, '307 Temporary Redirect', [('Location', home.url + h.path),
                                                                    ('Content-Length', 0)]), bind='127.0.0.3')
        with third:
            second = Hostile(lambda h: raw(h, '302 Found', [
                ('Location', third.url.replace('://', '://alice:%s@' % ENCODED) + h.path), ('Content-Length', 0)]))
            with second:
                home.add_fault('redirect', to=second.url, times=1)
                started = time.monotonic()
                source = home.url.replace('://', '://alice:%s@' % ENCODED)
                result, output = run_vvv(play, image_task(host_root, source, uuid=manifest['uuid'], retries=0))
        try:
            assert not result['failed'], result['msg']
            assert [a for p, a in second.seen] == [None] and [a for p, a in third.seen] == [None]
            mine = home.requests()
            assert len(mine) >= 3 and all(r['authorization'] == 'Basic ' + B64 for r in mine)
            for secret in SECRETS:
                assert secret not in output and secret not in files_text(host_root)
            assert time.monotonic() - started < 60
        finally:
            destroy(manifest['uuid'])


# ---- manifests at the size cap ----

@pytest.mark.parametrize('extra', [0, 1], ids=['at-cap', 'one-over'])
def test_a_manifest_at_the_size_cap(play, images, pool, host_root, extra):
    manifest = images('attack-cap')
    site = Site(manifest, images.path('attack-cap'))
    text = json.dumps(manifest).encode()
    body = text[:-1] + b' ' * ((1 << 20) + extra - len(text)) + b'}'   # JSON whitespace up to the cap
    assert len(body) == (1 << 20) + extra
    site.manifest_answer = lambda h: json_answer(h, body)
    with Hostile(site) as bad:
        started = time.monotonic()
        result, output = run_vvv(play, image_task(host_root, bad.url, uuid=manifest['uuid'], retries=0))
    if extra:
        assert_clean_failure(result, output, pool, manifest['uuid'], started)
        assert 'more than the 1048576 allowed' in result['msg'], result['msg']
    else:
        try:
            assert not result['failed'], result['msg']
            assert result['changed']
        finally:
            destroy(manifest['uuid'])


# ---- listings: smartos_image_facts gather_subset available ----

def _image(n, **extra):
    uuid = '%08x-0000-4000-8000-%012x' % (n, n)
    return dict({'v': 2, 'uuid': uuid, 'owner': '930896af-bf8c-48d4-885c-6573a94b1853', 'name': 'attack-%d' % n,
                 'version': '1.0.%d' % n, 'state': 'active', 'disabled': False, 'public': True,
                 'published_at': '2024-01-01T00:00:%02dZ' % (n % 60), 'type': 'zone-dataset', 'os': 'smartos',
                 'files': [{'sha1': 'a' * 40, 'size': 10, 'compression': 'gzip'}]}, **extra)


def _listing(pages):
    """A ListImages answer: pages(marker) gives the page (bytes or a list) for a marker (None first)."""
    def answer(handler):
        query = dict(p.partition('=')[::2] for p in handler.path.partition('?')[2].split('&') if p)
        page = pages(query.get('marker'))
        json_answer(handler, page if isinstance(page, bytes) else json.dumps(page).encode())
    return answer


def facts_run(play, host_root, url):
    write_conf(host_root, [{'type': 'imgapi', 'url': url}])
    task = {'name': 'facts', 'smartos.images.smartos_image_facts': dict(host_root=host_root,
                                                                        gather_subset=['available'], retries=0)}
    started = time.monotonic()
    result, output = run_vvv(play, task)
    assert 'Traceback' not in output and 'unexpectedly' not in output, output[-3000:]
    assert time.monotonic() - started < 120
    return result


def facts_problems(result):
    """What a facts run says went wrong: its msg when every source failed, else the per-source errors and warnings."""
    facts = result.get('ansible_facts', {})
    return json.dumps([result.get('msg'), facts.get('smartos_images_available_errors'), result.get('warnings')])


def test_a_listing_of_odd_entries_is_read_with_warnings(play, host_root):
    good = [_image(1), _image(2)]
    odd = good + [good[0], 7, 'x', None, [], {'uuid': 5}, _image(3, published_at=12345),
                  _image(4, files=[{'size': float('nan')}]), _image(6, files=[{'size': 10 ** 40, 'sha1': 'a' * 40}])]
    text = json.dumps(odd).replace('NaN', 'NaN')   # json.dumps writes NaN and big ints as Python reads them
    with Hostile(_listing(lambda marker: text.encode())) as bad:
        result = facts_run(play, host_root, bad.url)
    assert not result['failed'], result.get('msg')
    available = result['ansible_facts']['smartos_images_available']
    uuids = [m['manifest']['uuid'] if 'manifest' in m else m.get('uuid') for m in available]
    assert len(uuids) == len(set(uuids))            # the repeated entry is listed once
    assert good[0]['uuid'] in uuids and good[1]['uuid'] in uuids
    assert 7 not in uuids and 'x' not in uuids
    assert any('skipped' in w for w in result.get('warnings', [])), result.get('warnings')


@pytest.mark.parametrize('body', [b'\xef\xbb\xbf[]', b'[{"uuid": "\xff\xfe"}]', b'[' * 100000 + b']' * 100000,
                                  b'[' + b'9' * 5000 + b']', b'{"not": "a list"}', b'[NaN, Infinity, -Infinity]'],
                         ids=['bom', 'invalid-utf8', 'deep-nesting', 'huge-int', 'object', 'nan-infinity'])
def test_a_bad_listing_is_a_per_source_error(play, host_root, body):
    with Hostile(_listing(lambda marker: body)) as bad:
        result = facts_run(play, host_root, bad.url)
    if body.startswith(b'[NaN'):
        # numbers are no manifests: each entry is skipped with a warning naming the source
        assert not result['failed'] and result['ansible_facts']['smartos_images_available'] == []
        assert 'skipped 3 image(s)' in facts_problems(result) and bad.url in facts_problems(result), result
        return
    # the only source failed, so the task fails ("no image source answered"), naming it and why
    assert result['failed'] and 'no image source answered' in result['msg'], result
    assert bad.url + '/images answered' in result['msg'] or 'not a list of images' in result['msg'], result['msg']


def test_a_listing_whose_pages_loop_ends(play, host_root):
    page_a = [_image(n) for n in range(1, 1001)]
    page_b = [_image(n) for n in range(1001, 2001)]

    def pages(marker):   # A, B, A, B, ...: the marker is ignored every other page
        return page_b if marker == page_a[-1]['uuid'] else page_a
    with Hostile(_listing(pages)) as bad:
        result = facts_run(play, host_root, bad.url)
    errors = facts_problems(result)
    assert 'ignores the ListImages marker' in errors, errors
    assert len(bad.seen) == 3


def test_a_gzip_bombed_listing_is_read_only_to_the_cap(play, host_root):
    body = gzip.compress(b'[' + b' ' * (200 << 20) + b']', 9)   # 200 MiB of JSON whitespace in ~200 KiB

    def answer(handler):
        raw(handler, '200 OK', [('Content-Type', 'application/json'), ('Content-Encoding', 'gzip'),
                                ('Content-Length', len(body))], body)
    with Hostile(answer) as bad:
        result = facts_run(play, host_root, bad.url)
    errors = facts_problems(result)
    assert 'more than %d bytes' % (8 << 20) in errors, errors


# ---- the image lookup on the controller ----

def lookup_run(play, url, name='attack-1'):
    """Run the lookup with -vvv, the server URL in a play variable (as from a vault), not in the task's text."""
    template = "{{ lookup('smartos.images.image', '%s', server=attack_server, timeout=5, listing_timeout=60) }}"
    task = {'name': 'lookup', 'debug': {'msg': template % name}}
    argv, env, record = play.command(task, vars={'attack_server': url})
    started = time.monotonic()
    proc = subprocess.run(argv + ['-vvv'], env=env, capture_output=True, text=True, timeout=300, check=False)
    last = play.results(record)[-1]
    result, output = dict(last['result'], failed=last['status'] == 'failed'), proc.stdout + proc.stderr
    assert 'Traceback' not in output and 'unexpectedly' not in output, output[-3000:]
    assert time.monotonic() - started < 90
    for secret in SECRETS:
        assert secret not in output and secret not in json.dumps(result)
    result['_output'] = output
    return result


@pytest.mark.parametrize('status', [401, 500])
def test_the_lookup_never_shows_echoed_credentials(play, status):
    with Hostile(_echo_error(status)) as bad:
        result = lookup_run(play, bad.url.replace('://', '://alice:%s@' % ENCODED))
    assert result['failed'] and 'HTTP %d' % status in result['msg'], result
    assert bad.seen[0][1] == 'Basic ' + B64


def test_the_lookup_survives_a_double_gzip_bomb(play):
    import zlib
    pack = zlib.compressobj(9, zlib.DEFLATED, 31)
    inner = b''.join([pack.compress(b'[')] + [pack.compress(b' ' * (1 << 20)) for dummy in range(1024)]
                     + [pack.compress(b']'), pack.flush()])
    body = gzip.compress(inner, 9)   # 1 GiB of whitespace, gzipped twice: a few KiB

    def answer(handler):
        raw(handler, '200 OK', [('Content-Type', 'application/json'), ('Content-Encoding', 'gzip, gzip'),
                                ('Content-Length', len(body))], body)
    with Hostile(answer) as bad:
        result = lookup_run(play, bad.url)
    assert result['failed'] and 'more than 8 MiB' in result['msg'], result   # the modules' page limit


def test_the_lookup_ends_a_listing_whose_pages_loop(play):
    page_a = [_image(n, name='attack-1') for n in range(1, 1001)]
    page_b = [_image(n, name='attack-1') for n in range(1001, 2001)]
    with Hostile(_listing(lambda marker: page_b if marker == page_a[-1]['uuid'] else page_a)) as bad:
        result = lookup_run(play, bad.url)
    assert result['failed'] and 'ignores the ListImages marker' in result['msg'], result
    assert len(bad.seen) == 3


def test_the_lookup_skips_odd_entries_with_a_warning(play):
    with Hostile(_listing(lambda marker: [_image(1), 7, None])) as bad:
        result = lookup_run(play, bad.url)
    assert not result['failed'], result
    assert '2 entries that are not an image manifest' in result['_output'], result


def test_the_lookup_reports_a_broken_gzip_answer(play):
    body = gzip.compress(json.dumps([_image(1)]).encode())[:60]

    def answer(handler):
        raw(handler, '200 OK', [('Content-Type', 'application/json'), ('Content-Encoding', 'gzip'),
                                ('Content-Length', len(body))], body)
    with Hostile(answer) as bad:
        result = lookup_run(play, bad.url)
    # urllib3 hands back what inflated before the cut: not JSON, so a clean error either way
    assert result['failed'] and ('broke off its answer' in result['msg'] or 'is not JSON' in result['msg']), result


def test_facts_scrub_credentials_a_listing_error_echoes(play, host_root):
    with Hostile(_echo_error(403)) as bad:
        write_conf(host_root, [{'type': 'imgapi', 'url': bad.url.replace('://', '://alice:%s@' % ENCODED)},
                               {'type': 'imgapi', 'url': bad.url.replace('127.0.0.1', '127.0.0.4')}])
        task = {'name': 'facts', 'smartos.images.smartos_image_facts': dict(host_root=host_root,
                                                                            gather_subset=['available'], retries=0)}
        result, output = run_vvv(play, task)
    assert bad.seen and bad.seen[0][1] == 'Basic ' + B64
    conf = open(os.path.join(host_root, 'var', 'imgadm', 'imgadm.conf'), encoding='utf-8').read()
    for secret in SECRETS:
        assert secret not in output.replace(conf, '') and secret not in json.dumps(result)
    assert 'HTTP 403' in json.dumps(result), result


def test_the_lookup_sends_credentials_only_to_their_origin_along_a_redirect_chain(play, images_dir):
    with ImageServer(images_dir, auth='alice:' + PASSWORD) as home:
        away = Hostile(lambda h: raw(h, '302 Found', [('Location', home.url + h.path), ('Content-Length', 0)]),
                       bind='127.0.0.3')
        with away:
            home.add_fault('redirect', to=away.url, times=1, on='list')
            result = lookup_run(play, home.url.replace('://', '://alice:%s@' % ENCODED), name='no-such-image')
        assert result['failed'] and 'has no active image' in result['msg'], result
        assert [a for p, a in away.seen] == [None]
        assert [r['authorization'] for r in home.requests()] == ['Basic ' + B64] * 2


def test_the_lookup_refuses_a_redirect_from_https_to_http(play, tls_server, tls):
    with Hostile(lambda h: json_answer(h, [_image(1)])) as plain:
        tls_server.add_fault('redirect', to=plain.url, on='list')
        template = "{{ lookup('smartos.images.image', 'attack-1', server=attack_server, ca_path='%s') }}"
        task = {'name': 'lookup', 'debug': {'msg': template % tls['ca']}}
        result = play(task, vars={'attack_server': tls_server.url.replace('://', '://alice:%s@' % ENCODED)})
    assert result['failed'] and 'from https to plain http' in result['msg'], result['msg']
    assert plain.seen == []
    for secret in SECRETS:
        assert secret not in result['_stdout'] + result['_stderr'] + result['msg']


# ---- manifests with odd numbers and names ----

@pytest.mark.parametrize('change', [{'size': float('nan')}, {'size': float('inf')}, {'size': -1}, {'size': 10 ** 40},
                                    {'sha1': 123}, {'compression': 'zstd'}],
                         ids=['nan-size', 'infinite-size', 'negative-size', 'huge-size', 'numeric-sha1', 'zstd'])
def test_a_manifest_with_odd_file_fields_is_refused(play, images, pool, host_root, change):
    manifest = dict(images('attack-cl'))
    manifest['files'] = [dict(manifest['files'][0], **change)]
    site = Site(manifest, images.path('attack-cl'))
    body = json.dumps(manifest).encode()   # NaN, Infinity and 40-digit ints as a JSON parser reads them
    site.manifest_answer = lambda h: json_answer(h, body)
    with Hostile(site) as bad:
        started = time.monotonic()
        result, output = run_vvv(play, image_task(host_root, bad.url, uuid=manifest['uuid'], retries=0))
    assert_clean_failure(result, output, pool, manifest['uuid'], started)
    if change.get('size') == 10 ** 40:
        # passes the manifest checks (a number of bytes); no server can send that many, and Content-Length must agree
        assert 'the manifest says %d bytes' % 10 ** 40 in result['msg'], result['msg']
        return
    assert 'files' in result['msg'] or 'compression' in result['msg'], result['msg']
    assert not [f for f in bad.seen if f[0].endswith('/file')]   # refused before the file was asked for


def test_a_manifest_for_the_uuid_in_capitals_is_refused_or_matches(play, images, pool, host_root):
    manifest = images('attack-cl')
    site = Site(manifest, images.path('attack-cl'))
    site.manifest_answer = lambda h: json_answer(h, dict(manifest, uuid=manifest['uuid'].upper()))
    with Hostile(site) as bad:
        started = time.monotonic()
        result, output = run_vvv(play, image_task(host_root, bad.url, uuid=manifest['uuid'], retries=0))
    assert 'Traceback' not in output and 'Module failed' not in result.get('msg', '')
    if result['failed']:
        assert_clean_failure(result, output, pool, manifest['uuid'], started)
    else:
        destroy(manifest['uuid'])
        assert [line for line in pool.datasets() if manifest['uuid'].upper() in line] == []


# ---- DSAPI file URLs chosen by a hostile server ----

def test_a_dsapi_file_url_with_its_own_credentials_on_another_host_gets_none(play, images, pool, host_root):
    manifest = images('attack-dsapi', compression='bzip2', publish_it=False)
    with open(images.path('attack-dsapi'), 'rb') as f:
        data = f.read()
    elsewhere = Hostile(lambda h: raw(h, '200 OK', [('Content-Length', len(data))], data), bind='127.0.0.5')
    with elsewhere:
        v1 = {'uuid': manifest['uuid'], 'name': manifest['name'], 'version': manifest['version'],
              'description': 'dsapi', 'os': 'smartos', 'type': 'zone-dataset',
              'creator_uuid': '930896af-bf8c-48d4-885c-6573a94b1853', 'published_at': '2012-08-31T10:01Z',
              'files': [{'path': 'f.zfs.bz2', 'sha1': manifest['files'][0]['sha1'], 'size': len(data),
                         'url': elsewhere.url.replace('://', '://mallory:%s@' % ENCODED) + '/f.zfs.bz2'}]}

        def home(handler):
            if handler.headers.get('Accept-Version') is not None:
                return json_answer(handler, {'code': 'MethodNotAllowedError'}, '405 Method Not Allowed')
            return json_answer(handler, v1)
        with Hostile(home) as dsapi:
            write_conf(host_root, [{'type': 'dsapi', 'url': dsapi.url.replace('://', '://alice:%s@' % ENCODED)
                                    + '/datasets'}])
            result, output = run_vvv(play, image_task(host_root, uuid=manifest['uuid'], retries=0))
    try:
        assert not result['failed'], result['msg']
        assert result['changed']
        assert dsapi.seen == [('/datasets/' + manifest['uuid'], 'Basic ' + B64)]
        assert elsewhere.seen == [('/f.zfs.bz2', None)]   # neither the source's credentials nor the URL's own
        conf = open(os.path.join(host_root, 'var', 'imgadm', 'imgadm.conf'), encoding='utf-8').read()
        for secret in SECRETS:
            assert secret not in output and secret not in files_text(host_root).replace(conf, '')
    finally:
        destroy(manifest['uuid'])


@pytest.mark.parametrize('length', ['\xb2', '9' * 5000, '{bigger}', '{size}, {bigger}'],
                         ids=['superscript', '5000-digits', 'bigger', 'two-values'])
def test_the_lookup_with_a_lying_content_length_is_clean(play, length):
    body = json.dumps([_image(1, name='attack-1')]).encode()
    value = length.format(size=len(body), bigger=len(body) + 100)
    with Hostile(lambda h: raw(h, '200 OK', [('Content-Type', 'application/json'), ('Content-Length', value)],
                               body)) as bad:
        result = lookup_run(play, bad.url)
    assert len(bad.seen) == 1
    if result['failed']:
        assert 'image server %s' % bad.url in result['msg'], result['msg']
    else:
        assert '00000001-0000-4000-8000-000000000001' in json.dumps(result)
