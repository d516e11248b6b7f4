"""Issue 10, the HTTP side, through real ansible-playbook runs: credentials stay on their origin, passwords never
show, malformed URLs and CA files fail cleanly, slow and huge answers end, listings are bounded, DSAPI as it was."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from urllib.parse import quote

import pytest

from tests.integration.conftest import POOL, tree_state
from tests.lib.imgserver_ctl import ImageServer, publish
from tests.lib.zfspool import retry_busy

pytestmark = pytest.mark.usefixtures('collection_built')

PASSWORD = 'p#ss/w?rd@x:y'              # every character that defeats a URL parser
ENCODED = quote(PASSWORD, safe='')
BASIC = 'Basic ' + base64.b64encode(('alice:' + PASSWORD).encode()).decode()
SECRETS = (PASSWORD, ENCODED, base64.b64encode(('alice:' + PASSWORD).encode()).decode())


@pytest.fixture(scope='module')
def other(images_dir):
    """Another host: a second server on 127.0.0.2 that records what it is sent."""
    with ImageServer(images_dir, bind='127.0.0.2') as s:
        yield s


@pytest.fixture(scope='module')
def authed(images_dir):
    """A server that demands alice's credentials."""
    with ImageServer(images_dir, auth='alice:' + PASSWORD) as s:
        yield s


@pytest.fixture(autouse=True)
def _clean(other, authed):
    for s in (other, authed):
        s.clear_faults()
        s.clear_requests()
    yield
    for s in (other, authed):
        s.clear_faults()


def secret_url(server, path=''):
    return server.url.replace('://', '://alice:%s@' % ENCODED) + path


def image_task(host_root, source=None, **args):
    args = dict(pool=POOL, host_root=host_root, **args)
    if source is not None:
        args['source'] = source if isinstance(source, list) else [source]
    return {'name': 'image', 'smartos.images.smartos_image': args, 'register': 'result'}


def facts_task(host_root, **args):
    return {'name': 'facts', 'smartos.images.smartos_image_facts': dict(host_root=host_root, **args)}


def run_vvv(play, task):
    """Run with -vvv; return the task result and everything ansible-playbook printed."""
    argv, env, record = play.command(task)
    proc = subprocess.run(argv + ['-vvv'], env=env, capture_output=True, text=True, timeout=600, check=False)
    last = play.results(record)[-1]
    result = dict(last['result'], failed=last['status'] == 'failed')
    return result, proc.stdout + proc.stderr


def assert_no_secret(*texts):
    for text in texts:
        text = text if isinstance(text, str) else json.dumps(text)
        for secret in SECRETS:
            assert secret not in text
        assert 'Traceback' not in text


def files_text(root):
    chunks = []
    for dirpath, dummy, names in os.walk(root):
        for name in names:
            with open(os.path.join(dirpath, name), encoding='utf-8', errors='replace') as f:
                chunks.append(f.read())
    return '\n'.join(chunks)


def destroy(uuid):
    retry_busy('zfs', 'destroy', '-r', '%s/%s' % (POOL, uuid))


def write_conf(host_root, sources):
    path = os.path.join(host_root, 'var', 'imgadm', 'imgadm.conf')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        json.dump({'sources': sources}, f)


# ---- 1. credentials go only where they belong ----

def test_redirect_to_another_host_carries_no_credentials(play, images, authed, other, host_root):
    manifest = images('cred-redirect')
    authed.add_fault('redirect', to=other.url)   # manifest and file both move to 127.0.0.2
    started = time.monotonic()
    result, output = run_vvv(play, image_task(host_root, secret_url(authed), uuid=manifest['uuid']))
    try:
        assert not result['failed'], result.get('msg')
        assert result['changed'] and result['image']['uuid'] == manifest['uuid']
        mine, theirs = authed.requests(), other.requests()
        assert [r['path'] for r in theirs] == ['/images/' + manifest['uuid'], '/images/%s/file' % manifest['uuid']]
        assert [r['authorization'] for r in theirs] == [None, None]
        assert mine and all(r['authorization'] == BASIC for r in mine)
        assert_no_secret(result, output, files_text(host_root))
        assert time.monotonic() - started < 120
    finally:
        destroy(manifest['uuid'])


def test_https_redirect_down_to_http_is_refused(play, images, tls_server, tls, other, host_root):
    manifest = images('cred-downgrade')
    tls_server.add_fault('redirect', to=other.url)
    before = tree_state(host_root)
    result, output = run_vvv(play, image_task(host_root, secret_url(tls_server), uuid=manifest['uuid'],
                                              ca_path=tls['ca'], retries=0))
    assert result['failed']
    assert 'redirected from https to plain http' in result['msg'] and 'refused' in result['msg']
    assert other.requests() == []        # nothing, credentials or not, went to the plain-http host
    assert tree_state(host_root) == before
    assert_no_secret(result, output)


def test_dsapi_file_url_on_another_host_gets_no_credentials(play, images, images_dir, authed, other, host_root):
    manifest = images('cred-dsapi', compression='bzip2', publish_it=False)
    path = images.path('cred-dsapi')
    v1 = {'uuid': manifest['uuid'], 'name': manifest['name'], 'version': manifest['version'],
          'description': 'dsapi', 'os': 'smartos', 'type': 'zone-dataset',
          'creator_uuid': '930896af-bf8c-48d4-885c-6573a94b1853', 'published_at': '2012-08-31T10:01Z',
          'files': [{'path': 'cred.zfs.bz2', 'sha1': manifest['files'][0]['sha1'],
                     'size': manifest['files'][0]['size']}]}
    publish(images_dir, manifest, path, dsmanifest=v1)
    write_conf(host_root, [{'type': 'dsapi', 'url': secret_url(authed, '/datasets')}])
    authed.add_fault('file_url', to=other.url)
    result, output = run_vvv(play, image_task(host_root, uuid=manifest['uuid']))
    try:
        assert not result['failed'], result.get('msg')
        assert result['changed']
        theirs = other.requests()
        assert [(r['path'], r['authorization']) for r in theirs] == [('/datasets/%s/cred.zfs.bz2' % manifest['uuid'],
                                                                      None)]
        mine = authed.requests()
        assert mine and all(r['authorization'] == BASIC for r in mine)
        # the DSAPI bench answers 405 to Accept-Version, as restify's versioned DSAPI did
        assert all(r['accept_version'] is None for r in mine + theirs)
        conf = os.path.join(host_root, 'var', 'imgadm', 'imgadm.conf')
        others = files_text(host_root).replace(open(conf, encoding='utf-8').read(), '')
        assert_no_secret(result, output, others)   # only imgadm.conf holds the password, as imgadm stores it
    finally:
        destroy(manifest['uuid'])


# ---- 2. a password never shows, whatever its characters ----

@pytest.mark.parametrize('userinfo', ['alice:p#ss', 'alice:p/ss', 'alice:p?ss', 'alice:1234/x', 'alice:80#x',
                                      'alice:' + PASSWORD])
def test_a_raw_password_never_shows(play, server, host_root, userinfo):
    password = userinfo.split(':', 1)[1]
    url = server.url.replace('://', '://%s@' % userinfo) + '/'
    result, output = run_vvv(play, image_task(host_root, url, uuid='2f1dc911-6401-4fa4-8e9d-67ea2e39c271'))
    assert result['failed']
    assert 'percent-encode' in result['msg']
    for text in (json.dumps(result), output):
        assert password not in text and 'Traceback' not in text
    assert server.requests() == []       # refused before anything was sent anywhere
    assert tree_state(host_root) == {}


def test_a_source_edit_with_a_raw_password_never_shows(play, host_root):
    url = 'http://alice:%s@127.0.0.1:9/' % PASSWORD
    task = {'name': 'sources', 'smartos.images.smartos_image_source': dict(host_root=host_root, url=url)}
    result, output = run_vvv(play, task)
    assert result['failed']
    assert_no_secret(result, output)


# ---- 3. malformed URLs and CA files fail cleanly ----

def test_malformed_ipv6_source_is_a_clean_error(play, host_root):
    result, output = run_vvv(play, image_task(host_root, 'http://alice:pw@[::1', uuid='2f1dc911-6401-4fa4-8e9d-67ea2e39c271'))
    assert result['failed'] and 'is not a valid URL' in result['msg']
    assert 'Traceback' not in output and 'alice:pw' not in output


def test_missing_ca_path_is_a_clean_error(play, tls_server, host_root, tmp_path):
    missing = str(tmp_path / 'no-such-ca.pem')
    result, output = run_vvv(play, image_task(host_root, tls_server.url, uuid='2f1dc911-6401-4fa4-8e9d-67ea2e39c271',
                                              ca_path=missing))
    assert result['failed'] and 'ca_path "%s" does not exist' % missing in result['msg']
    assert 'Traceback' not in output
    assert tls_server.requests() == []


# ---- 4. slow servers end ----

def test_a_trickling_file_is_cut_and_resumed(play, images, server, host_root):
    manifest = images('trickle-once')
    server.add_fault('trickle', uuid=manifest['uuid'], times=1)   # 1 byte a second, once
    started = time.monotonic()
    result = play(image_task(host_root, server.url, uuid=manifest['uuid'], timeout=3))
    try:
        elapsed = time.monotonic() - started
        assert not result['failed'], result.get('msg')
        assert result['changed'] and result['downloaded_bytes'] == manifest['files'][0]['size']
        files = [r for r in server.requests() if r['path'].endswith('/file')]
        assert len(files) == 2 and files[1]['headers'].get('range', '').startswith('bytes=')
        assert elapsed < 40     # the low-speed rule cut it after about 3 s, not the trickle's 60 s
    finally:
        destroy(manifest['uuid'])


def test_a_file_that_always_trickles_fails_in_bounded_time(play, images, server, host_root, pool):
    manifest = images('trickle-always')
    server.add_fault('trickle', uuid=manifest['uuid'])
    started = time.monotonic()
    result = play(image_task(host_root, server.url, uuid=manifest['uuid'], timeout=2, retries=1))
    assert result['failed']
    assert 'low-speed limit' in result['msg'] and 'resume attempt' in result['msg']
    assert time.monotonic() - started < 45
    assert not [line for line in pool.datasets() if manifest['uuid'] in line]


@pytest.mark.parametrize('image, fault, words', [
    ('trickle-manifest', 'trickle', 'low-speed limit'),
    ('slow-headers', 'slow_headers', 'no complete answer headers within 8 s'),
], ids=['manifest-body', 'answer-headers'])
def test_a_trickling_manifest_answer_ends(play, images, server, host_root, image, fault, words):
    manifest = images(image)
    server.add_fault(fault, uuid=manifest['uuid'], on='manifest')
    started = time.monotonic()
    result = play(image_task(host_root, server.url, uuid=manifest['uuid'], timeout=2, retries=0))
    assert result['failed'] and words in result['msg']
    assert time.monotonic() - started < 30
    assert tree_state(host_root) == {}


# ---- 5. size caps and bounded listings ----

@pytest.mark.parametrize('chunked', [False, True])
def test_an_oversized_manifest_is_refused(play, images, server, host_root, chunked):
    manifest = images('huge')
    server.add_fault('huge', uuid=manifest['uuid'], arg=5 << 20)
    if chunked:
        server.add_fault('chunked_json', uuid=manifest['uuid'])
    result = play(image_task(host_root, server.url, uuid=manifest['uuid']))
    assert result['failed']
    words = 'more than 1048576 bytes for a manifest' if chunked else 'more than the 1048576 allowed; refused unread'
    assert words in result['msg']
    assert tree_state(host_root) == {}


@pytest.mark.parametrize('kind, words', [('endless', ('did not end within', 'the image list is too large')),
                                         ('ignore_marker', ('ignores the ListImages marker',))])
def test_listings_are_bounded(play, server, host_root, kind, words):
    write_conf(host_root, [{'type': 'imgapi', 'url': server.url}])
    server.add_fault(kind)
    started = time.monotonic()
    result = play(facts_task(host_root, gather_subset=['available'], retries=0))
    assert time.monotonic() - started < 200
    errors = result.get('msg', '') + json.dumps(result.get('warnings', []))
    assert any(w in errors for w in words), errors
    assert server.url in errors
    pages = [r for r in server.requests() if r['path'] == '/images']
    assert 2 <= len(pages) <= 50


def test_name_resolution_listing_is_bounded(play, server, host_root):
    server.add_fault('endless')
    result = play(image_task(host_root, server.url, name='endless', retries=0))
    assert result['failed']
    assert 'did not end within' in result['msg'] or 'the image list is too large' in result['msg']


def test_https_redirect_to_another_host_name_drops_credentials(play, images, tls_server, tls, host_root):
    # the bench certificate also names "localhost": the same server under another name is another origin
    manifest = images('cred-tls-host')
    tls_server.add_fault('redirect', to=tls_server.url.replace('127.0.0.1', 'localhost'), times=2)
    result, output = run_vvv(play, image_task(host_root, secret_url(tls_server), uuid=manifest['uuid'],
                                              ca_path=tls['ca']))
    try:
        assert not result['failed'], result.get('msg')
        seen = [(r['headers']['host'].split(':')[0], r['authorization']) for r in tls_server.requests()]
        assert seen[:2] == [('127.0.0.1', BASIC), ('localhost', None)]
        assert {auth for host, auth in seen if host == 'localhost'} == {None}
        assert {auth for host, auth in seen if host == '127.0.0.1'} == {BASIC}
        assert_no_secret(result, output, files_text(host_root))
    finally:
        destroy(manifest['uuid'])
