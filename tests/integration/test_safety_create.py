"""Issue 10 for smartos_image_create, through real ansible-playbook runs on the real zfs-fuse pool: another image's
files are never touched, a full disk leaves nothing behind and says why, a wrong cached origin manifest is refused;
and the image lookup against hostile servers on 127.0.0.1 (credentials, error bodies, endless and trickling listings)."""
from __future__ import annotations

import base64
import http.server
import json
import os
import re
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse

import pytest

from tests.integration.conftest import POOL, create_task as create, filled_dataset
from tests.lib.zfspool import retry_busy, run

pytestmark = pytest.mark.usefixtures('collection_built')

SRC = POOL + '/safety-create-src'


def snapshots(dataset):
    return run('zfs', 'list', '-H', '-o', 'name', '-t', 'snapshot', '-r', dataset).split()


def every_file(directory):
    """Every name in a directory, hidden temporary files included, with its bytes."""
    result = {}
    for name in os.listdir(directory):
        with open(os.path.join(directory, name), 'rb') as f:
            result[name] = f.read()
    return result


@pytest.fixture(scope='module')
def source(pool):
    """A dataset with 4 MiB of random (incompressible) data: its image does not fit in 2 MiB."""
    yield from filled_dataset(SRC, 'made for the safety tests\n', 4)


@pytest.mark.parametrize('first, second', [(('a', 'b-1'), ('a-b', '1')), (('a/b', '1'), ('a_b', '1'))])
def test_another_images_files_are_never_touched(source, play, tmp_path, first, second):
    out = str(tmp_path / 'out')
    made = play(create(out, dataset=source, name=first[0], version=first[1], remove_snapshot=True))
    assert not made['failed'], made.get('msg')
    before, snaps = every_file(out), snapshots(source)
    for check in (True, False):
        refused = play(create(out, dataset=source, name=second[0], version=second[1]), check=check)
        assert refused['failed'] and not refused['changed']
        claimed = (made['manifest_path'], first[0], first[1], made['uuid'])
        assert '%s belongs to another image, %r version %r (uuid %r)' % claimed in refused['msg']
        assert every_file(out) == before and snapshots(source) == snaps   # nothing written, nothing snapshotted
    # the first image is still what its manifest says
    assert json.loads(before[os.path.basename(made['manifest_path'])])['uuid'] == made['uuid']


@pytest.fixture(params=['tmpfs', 'zfs-quota'])
def tiny_dir(request, pool):
    """A 2 MiB output directory: a tmpfs (ENOSPC), or a ZFS dataset with a quota (EDQUOT, the issue's [Errno 122])."""
    if request.param == 'zfs-quota':
        name = POOL + '/safety-create-tiny'
        run('zfs', 'create', '-o', 'quota=2M', name)
        yield '/' + name
        retry_busy('zfs', 'destroy', '-r', name)
        return
    directory = tempfile.mkdtemp(prefix='safety-create-tiny-')
    mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=2m,mode=0755', 'tmpfs', directory],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        os.rmdir(directory)
        pytest.skip('cannot mount a 2 MiB tmpfs for the full-disk test (needs root): %s' % mounted.stderr.strip())
    try:
        yield directory
    finally:
        subprocess.run(['umount', directory], check=True, timeout=60)
        os.rmdir(directory)


@pytest.mark.parametrize('compression', ['gzip', 'none'])
def test_a_full_disk_leaves_nothing_behind_and_says_why(source, play, tiny_dir, compression):
    before = snapshots(source)
    result = play(create(tiny_dir, dataset=source, name='too-big', version='1', compression=compression))
    path = os.path.join(tiny_dir, 'too-big-1.zfs' + ('.gz' if compression == 'gzip' else ''))
    assert result['failed'] and 'Traceback' not in json.dumps(result), result
    assert os.listdir(tiny_dir) == [] and snapshots(source) == before   # no temp file, not its own snapshot
    assert re.match(r'cannot write %s: (No space left on device|Disk quota exceeded) \(the file system or a quota is '
                    r'full: free some space in %s, or give another output_dir\)' % (re.escape(path), re.escape(tiny_dir)),
                    result['msg']), result['msg']
    assert result['path'] == path
    # the same task fits once there is room, and makes it whole
    with tempfile.TemporaryDirectory() as roomy:
        made = play(create(roomy, dataset=source, name='too-big', version='1', compression=compression,
                           remove_snapshot=True))
        assert not made['failed'], made.get('msg')
        assert os.path.getsize(made['file_path']) == made['size'] > 2 << 20


def test_a_wrong_cached_origin_manifest_is_refused(images, server, play, host_root, pool, tmp_path):
    base = images('safety-create-base', os='illumos')
    other = images('safety-create-other', os='linux')
    child = POOL + '/safety-create-child'
    final = '%s/%s@final' % (POOL, base['uuid'])
    install = dict(pool=POOL, host_root=host_root, uuid=base['uuid'], source=[server.url])
    imported = play({'name': 'install', 'smartos.images.smartos_image': install})
    try:
        assert not imported['failed'], imported.get('msg')
        run('zfs', 'clone', final, child)
        cache = os.path.join(host_root, 'var', 'imgadm', 'images', '%s-%s.json' % (POOL, base['uuid']))
        with open(cache, encoding='utf-8') as f:
            info = json.load(f)
        info['manifest'] = other    # image S's manifest in image M's cache file
        with open(cache, 'w', encoding='utf-8') as f:
            json.dump(info, f)
        before = pool.datasets()
        result = play(create(str(tmp_path / 'out'), dataset=child, origin=base['uuid'], name='child', version='1',
                             host_root=host_root))
        assert result['failed'] and 'Traceback' not in json.dumps(result), result
        assert ('the cached manifest of origin image %s cannot be used: cache file %s holds the manifest of another '
                'image (uuid %r)' % (base['uuid'], cache, other['uuid'])) in result['msg']
        assert pool.datasets() == before and not (tmp_path / 'out').exists()
    finally:
        if run('zfs', 'list', '-H', '-o', 'name', child, check=False).strip() == child:
            retry_busy('zfs', 'destroy', '-r', child)
        retry_busy('zfs', 'destroy', '-r', '%s/%s' % (POOL, base['uuid']))


# --- the image lookup against hostile servers on 127.0.0.1 -----------------------------------------------------------

PASSWORD = 'p#a/s?s@w:rd'


def listed(number, name='safety-lookup'):
    """A valid v2 manifest for a listing."""
    return {'v': 2, 'uuid': '00000000-0000-4000-8000-%012d' % number, 'owner': '00000000-0000-0000-0000-000000000000',
            'name': name, 'version': '1.0.%d' % number, 'state': 'active', 'disabled': False, 'public': True,
            'published_at': '2024-01-01T00:00:00Z', 'type': 'zone-dataset', 'os': 'smartos',
            'files': [{'sha1': '%040x' % number, 'size': 1000 + number, 'compression': 'gzip'}]}


class Hostile(http.server.BaseHTTPRequestHandler):
    """GET /images as the server's `mode` says; every Authorization header received is recorded."""

    def log_message(self, *args):
        pass

    def send_json(self, status, body, **headers):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802  pylint: disable=invalid-name
        server = self.server
        server.requests.append((self.path, self.headers.get('Authorization')))
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        mode = server.mode
        if mode == 'redirect':
            self.send_response(302)
            self.send_header('Location', server.location + self.path)
            self.send_header('Content-Length', '0')
            self.end_headers()
        elif mode == 'one':
            self.send_json(200, [listed(1)])
        elif mode in ('error-list', 'error-string'):
            self.send_json(500, ['database', 'down', PASSWORD] if mode == 'error-list' else 'down ' + PASSWORD)
        elif mode in ('endless', 'same-page'):
            start = 0 if mode == 'same-page' or 'marker' not in query else int(query['marker'][-12:]) + 1
            count = int(query.get('limit', 1000)) if mode == 'same-page' else 1000   # obeys limit, ignores marker
            self.send_json(200, [{'uuid': '00000000-0000-4000-8000-%012d' % (start + n), 'name': 'safety-lookup'}
                                 for n in range(count)])
        elif mode == 'trickle':
            self.send_response(200)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(10 ** 6))
            self.end_headers()
            ends = time.monotonic() + 60      # bounded even if the client never goes away
            try:
                while time.monotonic() < ends and not server.stopping.is_set():
                    self.wfile.write(b' ')
                    self.wfile.flush()
                    time.sleep(0.5)
            except OSError:
                pass    # the lookup gave up: what it should do


@pytest.fixture
def hostile():
    """hostile(mode, tls=None) -> a server on 127.0.0.1 in a thread; all stopped afterwards."""
    started = []

    def start(mode, tls=None):
        server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Hostile)
        server.daemon_threads = True
        server.mode, server.requests, server.location, server.stopping = mode, [], None, threading.Event()
        scheme = 'http'
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls['cert'], tls['key'])
            server.socket = context.wrap_socket(server.socket, server_side=True)
            scheme = 'https'
        thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.1}, daemon=True)
        thread.start()
        server.url = '%s://127.0.0.1:%d' % (scheme, server.server_address[1])
        started.append((server, thread))
        return server

    yield start
    for server, thread in started:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def lookup_task(extra=''):
    return {'name': 'resolve', 'ansible.builtin.debug': {
        'msg': "{{ lookup('smartos.images.image', 'safety-lookup', server=srv%s) }}" % extra}}


def credentialed(url):
    return url.replace('://', '://user:%s@' % PASSWORD)


def no_password(result):
    text = json.dumps(result)
    for secret in (PASSWORD, 'p#a/s', 's@w:rd'):
        assert secret not in text


def test_lookup_credentials_reach_only_their_server(hostile, play):
    home, other = hostile('redirect'), hostile('one')
    home.location = other.url
    result = play(lookup_task(), vars={'srv': credentialed(home.url)})
    assert not result['failed'], result['msg']
    assert result['msg'] == listed(1)['uuid']
    expected = 'Basic ' + base64.b64encode(('user:' + PASSWORD).encode()).decode()
    assert [auth for dummy, auth in home.requests] == [expected]
    assert [auth for dummy, auth in other.requests] == [None]     # another origin: no credentials
    no_password(result)


def test_lookup_https_to_http_downgrade_is_refused_and_sends_nothing(hostile, play, tls):
    # as smartos_image does: the answer would no longer be protected by TLS, so it is not asked for at all
    secure, plain = hostile('redirect', tls=tls), hostile('one')
    secure.location = plain.url
    result = play(lookup_task(", ca_path='%s'" % tls['ca']), vars={'srv': credentialed(secure.url)})
    assert result['failed'] and 'from https to plain http' in result['msg'], result['msg']
    assert PASSWORD not in result['msg'] and secure.requests[0][1] is not None and plain.requests == []


@pytest.mark.parametrize('mode, words', [
    ('error-list', 'answered HTTP 500 to GET'),
    ('error-string', 'answered HTTP 500 to GET'),
    ('same-page', 'ignores the ListImages marker'),
])
def test_lookup_hostile_answers_are_clear_errors_without_the_password(hostile, play, mode, words):
    server = hostile(mode)
    argv, env, record = play.command(lookup_task(), vars={'srv': credentialed(server.url)})
    proc = subprocess.run(argv + ['-vvv'], env=env, capture_output=True, text=True, timeout=300, check=False)
    result = play.results(record)[-1]
    assert result['status'] == 'failed' and words in result['result']['msg'], result
    assert 'user:***@127.0.0.1' in result['result']['msg'] and 'Traceback' not in proc.stdout + proc.stderr
    for secret in (PASSWORD, 'p#a/s', 's@w:rd'):
        assert secret not in proc.stdout + proc.stderr + json.dumps(result)


def test_lookup_endless_pages_are_capped(hostile, play):
    server = hostile('endless')
    result = play(lookup_task(), vars={'srv': server.url})
    assert result['failed'] and 'ListImages did not end within 50 pages' in result['msg'], result['msg']
    assert server.url in result['msg'] and len(server.requests) == 50


def test_lookup_a_trickling_server_is_cut_off(hostile, play):
    server = hostile('trickle')
    started = time.monotonic()
    result = play(lookup_task(', timeout=2, listing_timeout=3'), vars={'srv': server.url})
    assert result['failed'] and 'did not finish listing within listing_timeout (3 s)' in result['msg'], result['msg']
    assert time.monotonic() - started < 30   # ansible-playbook's own start-up included
