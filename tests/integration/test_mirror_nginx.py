"""The image_mirror role with real nginx: the server block it writes passes `nginx -t`, and nginx serving the mirror
answers GET /images, /images/<uuid> and /images/<uuid>/file exactly as the test bench's IMGAPI server does for the
same images (status, body, Content-Length), with Range, HEAD, IMGAPI's JSON errors, and no temporary file served."""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import urllib.parse

import pytest

from tests.integration.conftest import WORK, Play
from tests.lib.imgserver_ctl import ImageServer, publish
from tests.lib.nginx import Nginx, free_port

pytestmark = pytest.mark.usefixtures('collection_built')
UNKNOWN = '0badc0de-0000-4000-8000-00000000f00d'
API = {'Accept-Version': '~2', 'Accept': 'application/json'}   # what the collection's client sends


def public_dir(prefix):
    """A new directory that nginx's worker user can read (pytest's own temporary directories are root's only)."""
    os.makedirs(WORK, exist_ok=True)
    path = tempfile.mkdtemp(prefix=prefix, dir=WORK)
    os.chmod(path, 0o755)
    return path


def fetch(base, path, method='GET', headers=None, context=None):
    """(status, headers with lower-case names, body) of one request, exactly as the server sent them."""
    url = urllib.parse.urlsplit(base)
    if url.scheme == 'https':
        conn = http.client.HTTPSConnection(url.hostname, url.port, timeout=30, context=context)
    else:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


class RoleRun:
    """One ansible-playbook run of the role: rc, output, and every task result recorded."""

    def __init__(self, proc, records):
        self.rc, self.out, self.records = proc.returncode, proc.stdout + proc.stderr, records

    def of(self, task):
        return [r for r in self.records if r['task'].endswith(' : ' + task) or r['task'] == task]

    @property
    def changed(self):
        return any(r['result'].get('changed') for r in self.records)

    @property
    def mirrored(self):
        """What the mirror module returned."""
        return self.of('Mirror the images')[0]['result']


class MirrorRole:
    """Runs smartos.images.image_mirror on this machine with real ansible-playbook: no nginx installed, no service
    managed, the server block written to its own file, listening on 127.0.0.1:port."""

    def __init__(self, tmpdir, path, sources, port):
        self.play = Play(tmpdir)
        self.conf = os.path.join(tmpdir, 'conf.d', 'smartos-image-mirror.conf')
        os.makedirs(os.path.dirname(self.conf), exist_ok=True)
        self.vars = dict(image_mirror_path=path, image_mirror_sources=sources, image_mirror_install_nginx=False,
                         image_mirror_manage_service=False, image_mirror_nginx_conf=self.conf,
                         image_mirror_listen='127.0.0.1:%d' % port)

    def __call__(self, images, check=False, **overrides):
        task = {'name': 'image mirror', 'ansible.builtin.include_role': {'name': 'smartos.images.image_mirror'}}
        play_vars = dict(self.vars, image_mirror_images=images, **overrides)
        argv, env, record = self.play.command(task, check=check, vars=play_vars)
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
        return RoleRun(proc, Play.results(record) if os.path.exists(record) else [])


@contextlib.contextmanager
def role_and_nginx(upstream_server, tmpdir, prefix):
    """A mirror directory nginx's workers can read, the role set to fill it from upstream_server and to write its
    server block for a free port, and nginx on that block, not started yet: (role, nginx, path). Upstream's request
    log starts empty; nginx is stopped and the directory removed on the way out."""
    path = public_dir(prefix)
    port = free_port()
    role = MirrorRole(tmpdir, path, [upstream_server.url], port)
    server = Nginx(role.conf, port)
    upstream_server.clear_requests()
    try:
        yield role, server, path
    finally:
        server.stop()
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope='module')
def upstream(images, tmp_path_factory):
    """The test bench's IMGAPI server with exactly two real images (the list compared whole needs the same set);
    test_mirror_fleet.py's upstream too."""
    served = str(tmp_path_factory.mktemp('upstream'))
    built = [images(key, publish_it=False) for key in ('mirror_a', 'mirror_b')]
    for key, manifest in zip(('mirror_a', 'mirror_b'), built):
        publish(served, manifest, images.path(key))
    with ImageServer(served) as server:
        yield {'server': server, 'images': built, 'dir': served}


@pytest.fixture(scope='module')
def mirror(upstream, tmp_path_factory):
    """The role run four times (check, real, check, real) on the two images, then nginx serving what it wrote."""
    with role_and_nginx(upstream['server'], str(tmp_path_factory.mktemp('role')), 'mirror-') as (role, server, path):
        wanted = [{'uuid': m['uuid']} for m in upstream['images']]
        runs = [role(wanted, check=c) for c in (True, False, True, False)]
        if all(r.rc == 0 for r in runs):
            server.start()
        yield {'role': role, 'runs': runs, 'nginx': server, 'path': path, 'port': server.port}


def test_role_four_runs_write_a_block_nginx_accepts(mirror, upstream):
    runs = mirror['runs']
    for r in runs:
        assert r.rc == 0, r.out
    assert [r.changed for r in runs] == [True, True, False, False], [r.out for r in runs]
    check, real = runs[0].mirrored, runs[1].mirrored
    assert check['diff'] == real['diff']
    assert sorted(a['uuid'] for a in real['added']) == sorted(m['uuid'] for m in upstream['images'])
    # the block written is checked, and serves: nginx -t on a main configuration that includes it
    checked = Nginx(mirror['role'].conf, mirror['port']).test()
    assert checked.returncode == 0, checked.stderr
    with open(mirror['role'].conf, encoding='utf-8') as f:
        block = f.read()
    assert 'listen 127.0.0.1:%d default_server;' % mirror['port'] in block and 'autoindex off;' in block
    # the upstream was asked for each file once, by the real run
    files = [q['path'] for q in upstream['server'].requests() if q['path'].endswith('/file')]
    assert sorted(files) == sorted('/images/%s/file' % m['uuid'] for m in upstream['images'])


def same_answer(upstream, mirror, path, headers=None):
    """Status, body and Content-Length of the bench server and of nginx for one GET (API's headers unless told), which
    must be equal."""
    headers = API if headers is None else headers
    theirs = fetch(upstream['server'].url, path, headers=headers)
    ours = fetch(mirror['nginx'].url, path, headers=headers)
    assert (ours[0], ours[2], ours[1].get('content-length')) == (theirs[0], theirs[2], theirs[1].get('content-length')), \
        (path, ours[:2], theirs[:2])
    return ours


def test_answers_equal_the_image_servers(mirror, upstream):
    a, b = upstream['images']
    status, headers, body = same_answer(upstream, mirror, '/images')
    assert status == 200 and headers['content-type'] == 'application/json'
    assert [m['uuid'] for m in json.loads(body)] == [m['uuid'] for m in sorted(
        upstream['images'], key=lambda m: (m['published_at'], m['uuid']))]
    for m in (a, b):
        status, headers, body = same_answer(upstream, mirror, '/images/%s' % m['uuid'])
        assert status == 200 and headers['content-type'] == 'application/json' and json.loads(body) == m
        status, headers, body = same_answer(upstream, mirror, '/images/%s/file' % m['uuid'], headers={'Accept': '*/*'})
        assert status == 200 and headers['content-type'] == 'application/octet-stream'
        assert hashlib.sha1(body).hexdigest() == m['files'][0]['sha1'] and len(body) == m['files'][0]['size']
    # a client's filters and paging change nothing on the mirror: the whole list, every time
    listed = fetch(mirror['nginx'].url, '/images', headers=API)[2]
    for query in ('?name=%s' % a['name'], '?limit=1000&marker=%s' % b['uuid'], '?state=all&channel=*', '/'):
        assert fetch(mirror['nginx'].url, '/images' + query, headers=API)[2] == listed, query
    # IMGAPI's 404 and 405 answers, byte for byte
    for path in ('/images/%s' % UNKNOWN, '/images/%s/file' % UNKNOWN):
        status, headers, body = same_answer(upstream, mirror, path)
        assert status == 404 and headers['content-type'] == 'application/json'
        assert json.loads(body) == {'code': 'ResourceNotFound', 'message': 'image %s not found' % UNKNOWN}
    theirs = fetch(upstream['server'].url, '/images', method='POST', headers=API)
    ours = fetch(mirror['nginx'].url, '/images', method='POST', headers=API)
    assert (ours[0], ours[2]) == (theirs[0], theirs[2]) == (405, b'{"code":"MethodNotAllowedError","message":"POST is not allowed"}')
    assert ours[1]['allow'] == 'GET, HEAD'


def test_ping_range_and_head(mirror, upstream):
    a = upstream['images'][0]
    status, headers, body = fetch(mirror['nginx'].url, '/ping', headers=API)
    assert status == 200 and headers['content-type'] == 'application/json'
    assert json.loads(body) == {'ping': 'pong', 'imgapi': True, 'version': '0.1.0'}
    with open(os.path.join(upstream['dir'], a['uuid'], 'file'), 'rb') as f:
        data = f.read()
    path = '/images/%s/file' % a['uuid']
    # a resumed download: the rest from an offset, and one range inside the file, as the bench server answers them
    for wanted, start, end in (('bytes=1000-', 1000, len(data)), ('bytes=17-4112', 17, 4113)):
        status, headers, body = fetch(mirror['nginx'].url, path, headers={'Range': wanted})
        assert status == 206 and body == data[start:end], wanted
        assert headers['content-range'] == 'bytes %d-%d/%d' % (start, end - 1, len(data))
        assert headers['content-length'] == str(end - start)
        theirs = fetch(upstream['server'].url, path, headers={'Range': wanted})
        assert (theirs[0], theirs[2], theirs[1]['content-range']) == (status, body, headers['content-range'])
    status, headers, body = fetch(mirror['nginx'].url, path, headers={'Range': 'bytes=%d-' % len(data)})
    assert status == 416
    status, headers, body = fetch(mirror['nginx'].url, path, method='HEAD')
    assert status == 200 and body == b'' and headers['content-length'] == str(len(data))
    assert headers['accept-ranges'] == 'bytes'
    status, headers, body = fetch(mirror['nginx'].url, '/images/%s' % UNKNOWN, method='HEAD')
    assert status == 404 and body == b''


NOT_ROUTES = ['/', '/images.json', '/ping.json', '/.lock', '/images/{a}/manifest.json', '/images/{a}/file.partial',
              '/images/{a}/', '/images/{a}/file/', '/images/{A}', '/images/{a}/icon', '/images/not-a-uuid',
              '/images/../ping.json', '/images/{a}/../../images.json', '/datasets/{a}', '/images/{a}%2Ffile.partial',
              '/images/{a}/.file.tmp', '/%22%5C%0A']


@pytest.mark.parametrize('path', NOT_ROUTES)
def test_nothing_but_the_routes_is_served(mirror, upstream, path):
    a = upstream['images'][0]['uuid']
    # temporary names beside a real image: a download under way, and a dot-file
    with open(os.path.join(mirror['path'], 'images', a, 'file.partial'), 'wb') as f:
        f.write(b'partial bytes')
    with open(os.path.join(mirror['path'], 'images', a, '.file.tmp'), 'wb') as f:
        f.write(b'temporary bytes')
    try:
        status, headers, body = fetch(mirror['nginx'].url, path.format(a=a, A=a.upper()), headers=API)
    finally:
        os.remove(os.path.join(mirror['path'], 'images', a, 'file.partial'))
        os.remove(os.path.join(mirror['path'], 'images', a, '.file.tmp'))
    assert status == 404 and headers['content-type'] == 'application/json', (status, body)
    assert json.loads(body)['code'] == 'ResourceNotFound'


@pytest.mark.parametrize('method', ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE'])
def test_methods_other_than_get_and_head_answer_405(mirror, upstream, method):
    a = upstream['images'][0]['uuid']
    for path in ('/ping', '/images', '/images/%s' % a, '/images/%s/file' % a, '/nothing'):
        status, headers, body = fetch(mirror['nginx'].url, path, method=method)
        assert status == 405 and headers['content-type'] == 'application/json', (path, status, body)
        assert json.loads(body) == {'code': 'MethodNotAllowedError', 'message': '%s is not allowed' % method}


def test_an_image_being_downloaded_is_not_served(mirror):
    """A file complete on disk but without its manifest.json (the rename before the manifest) is no image yet."""
    uuid = '0badc0de-0000-4000-8000-00000000beef'
    image = os.path.join(mirror['path'], 'images', uuid)
    os.makedirs(image)
    try:
        for name in ('file', 'file.partial'):
            with open(os.path.join(image, name), 'wb') as f:
                f.write(b'x' * 100)
        for path in ('/images/%s' % uuid, '/images/%s/file' % uuid):
            status, headers, body = fetch(mirror['nginx'].url, path)
            assert status == 404 and json.loads(body) == {'code': 'ResourceNotFound',
                                                          'message': 'image %s not found' % uuid}, path
    finally:
        shutil.rmtree(image)


def test_tls(upstream, tls, tmp_path):
    """With image_mirror_tls_cert and _key the block serves HTTPS, which a client checks with the CA."""
    path = public_dir('mirror-tls-')
    port = free_port()
    try:
        role = MirrorRole(str(tmp_path), path, [upstream['server'].url], port)
        r = role([{'uuid': upstream['images'][0]['uuid']}], image_mirror_tls_cert=tls['cert'],
                 image_mirror_tls_key=tls['key'])
        assert r.rc == 0, r.out
        with Nginx(role.conf, port) as server:
            context = ssl.create_default_context(cafile=tls['ca'])
            status, headers, body = fetch('https://127.0.0.1:%d' % port, '/ping', context=context)
            assert status == 200 and json.loads(body)['imgapi'] is True
            with pytest.raises(ssl.SSLError):
                fetch('https://127.0.0.1:%d' % port, '/ping', context=ssl.create_default_context())
            assert server.proc.poll() is None
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_a_block_nginx_refuses_never_replaces_the_old_one(upstream, tmp_path, tls):
    path = public_dir('mirror-bad-')
    try:
        role = MirrorRole(str(tmp_path), path, [upstream['server'].url], free_port())
        assert role([]).rc == 0
        with open(role.conf, 'rb') as f:
            before = f.read()
        # a key that is not the certificate's: nginx -t fails, the file stays as it was
        other_key = str(tmp_path / 'other.key')
        subprocess.run(['openssl', 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
                        '-out', other_key], check=True, capture_output=True)
        r = role([], image_mirror_tls_cert=tls['cert'], image_mirror_tls_key=other_key)
        failed = [x for x in r.records if x['status'] == 'failed']
        assert r.rc != 0 and failed and failed[0]['task'].endswith('Write the server block'), r.out
        assert 'nginx' in json.dumps(failed[0]['result']), failed[0]
        with open(role.conf, 'rb') as f:
            assert f.read() == before
        assert not [n for n in os.listdir(tempfile.gettempdir()) if n.endswith('.image-mirror')]
    finally:
        shutil.rmtree(path, ignore_errors=True)


BAD_VARS = [
    ({'image_mirror_path': '/var/img mirror'}, 'image_mirror_path'),
    ({'image_mirror_path': '/var/$imgmirror'}, 'image_mirror_path'),
    ({'image_mirror_path': '/'}, 'image_mirror_path'),
    ({'image_mirror_path': '/var/img\\mirror'}, 'image_mirror_path'),
    ({'image_mirror_path': '/var/img"mirror'}, 'image_mirror_path'),
    ({'image_mirror_path': '/var/imgmirror\n'}, 'image_mirror_path'),
    ({'image_mirror_nginx_conf': '/etc/nginx/conf.d/{x}.conf'}, 'image_mirror_nginx_conf'),
    ({'image_mirror_nginx_conf': '/etc/nginx/conf.d/'}, 'image_mirror_nginx_conf'),
    ({'image_mirror_server_name': '_\n'}, 'image_mirror_server_name'),
    ({'image_mirror_listen': '80\n'}, 'image_mirror_listen'),
    ({'image_mirror_listen': '127.0.0.1:0'}, 'image_mirror_listen'),
    ({'image_mirror_tls_key': '/etc/key.pem', 'image_mirror_tls_cert': '/etc/cert #.pem'}, 'image_mirror_tls_cert'),
    ({'image_mirror_listen': '127.0.0.1:80; include /etc/passwd'}, 'image_mirror_listen'),
    ({'image_mirror_listen': '127.0.0.1:70000'}, 'image_mirror_listen'),
    ({'image_mirror_server_name': 'a;b'}, 'image_mirror_server_name'),
    ({'image_mirror_tls_cert': '/etc/cert.pem'}, 'image_mirror_tls_key'),
    ({'image_mirror_colour': 'red'}, 'image_mirror_colour'),
    ({'image_mirror_images': [{'uuid': 'NOT-A-UUID'}]}, 'names no image'),
    ({'image_mirror_images': [{'name': 'base', 'version': 1.1}]}, 'names no image'),
    ({'image_mirror_prune': 'perhaps'}, 'image_mirror_prune'),
]


@pytest.mark.parametrize('bad, word', BAD_VARS, ids=['space', 'dollar', 'root', 'backslash', 'quote', 'newline',
                                                     'brace', 'conf-dir', 'name-newline', 'listen-newline', 'port-0',
                                                     'cert-hash', 'listen-injection', 'port', 'server-name',
                                                     'cert-without-key', 'unknown', 'bad-uuid', 'float-version',
                                                     'type'])
def test_bad_variables_are_refused_before_the_host_is_touched(upstream, tmp_path, bad, word):
    path = os.path.join(str(tmp_path), 'never')
    role = MirrorRole(str(tmp_path), path, [upstream['server'].url], free_port())
    bad = dict(bad)
    r = role(bad.pop('image_mirror_images', []), **bad)
    assert r.rc != 0
    failed = [x for x in r.records if x['status'] == 'failed']
    assert failed and word in json.dumps(failed[0]['result']), r.out
    assert not r.of('Mirror the images') and not os.path.exists(path) and not os.path.exists(role.conf)
