"""The image mirror attacked with real parts: smartos_image_mirror run as a real module process against the test image
server on 127.0.0.x with its faults (hostile manifests, redirects, wrong and short files, refused resumes, slow and
huge answers, credentials), a mirror directory left in odd states (by kill -9 too), and the image_mirror role run
with real ansible-playbook on values that would inject into the nginx configuration, checked by real nginx.

No pool is needed: the mirror copies files without reading them, so the images here are random bytes with their
SHA-1, published on the test server like real ones."""
from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.integration.conftest import BUILD, tree_state
from tests.integration.test_mirror_nginx import MirrorRole, public_dir
from tests.lib.imgserver_ctl import ImageServer
from tests.lib.nginx import Nginx, free_port

pytestmark = pytest.mark.usefixtures('collection_built')
MODULE = os.path.join(BUILD, 'ansible_collections', 'smartos', 'images', 'plugins', 'modules',
                      'smartos_image_mirror.py')
OWNER = '930896af-bf8c-48d4-885c-6573a94b1853'
SECRET = 'Sup3r-s3cret-pw'


def uuid_of(n):
    return 'a77ac000-0000-4000-8000-%012x' % n


def image(served, n, name='attack', version='1.0.0', size=64 * 1024, origin=None, published=None, **changes):
    """Publish image n (random bytes of size, its SHA-1) on the served directory; its manifest as served."""
    data = random.Random(n).randbytes(size)
    path = os.path.join(served, '.data-%d' % n)
    with open(path, 'wb') as f:
        f.write(data)
    manifest = {'v': 2, 'uuid': uuid_of(n), 'owner': OWNER, 'name': name, 'version': version, 'state': 'active',
                'disabled': False, 'public': True, 'published_at': published or '2024-01-01T00:00:%02dZ' % (n % 60),
                'type': 'zone-dataset', 'os': 'smartos',
                'files': [{'sha1': hashlib.sha1(data).hexdigest(), 'size': size, 'compression': 'gzip'}]}
    if origin is not None:
        manifest['origin'] = origin
    manifest.update(changes)
    # laid out by its number, whatever uuid the (hostile) manifest says: publish() would follow it
    folder = os.path.join(served, uuid_of(n))
    os.makedirs(folder, exist_ok=True)
    os.replace(path, os.path.join(folder, 'file'))
    with open(os.path.join(folder, '.manifest.tmp'), 'w', encoding='utf-8') as f:
        json.dump(manifest, f)
    os.replace(os.path.join(folder, '.manifest.tmp'), os.path.join(folder, 'manifest.json'))
    return manifest, data


def run_module(args, check=False, diff=False, wait=True, umask=None):
    """smartos_image_mirror as ansible runs it: a process reading its arguments from a file; its JSON answer, with
    '_stderr' (which must stay empty: no traceback) and '_rc'."""
    argsfile = os.path.join(args['path'] + '.args.json') if wait else args['path'] + '.bg.json'
    with open(argsfile, 'w', encoding='utf-8') as f:
        json.dump({'ANSIBLE_MODULE_ARGS': dict(args, _ansible_check_mode=check, _ansible_diff=diff)}, f)
    env = dict(os.environ, PYTHONPATH=BUILD)
    argv = [sys.executable, MODULE, argsfile]
    if not wait:
        return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False,
                          preexec_fn=None if umask is None else lambda: os.umask(umask))
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError('no JSON from the module (rc %d):\n%s\n%s' % (proc.returncode, proc.stdout, proc.stderr))
    result['_rc'], result['_stderr'], result['_raw'] = proc.returncode, proc.stderr, proc.stdout
    return result


def no_traceback(result):
    assert 'exception' not in result and 'Traceback' not in result['_raw'] + result['_stderr'], result


def warned(result):
    """Every warning of a result as one text (ansible-core gives them as strings or as event records)."""
    return json.dumps(result.get('warnings') or [])


def files_asked(server):
    return [q for q in server.requests() if q['path'].endswith('/file')]


@pytest.fixture(scope='module')
def served(tmp_path_factory):
    return str(tmp_path_factory.mktemp('attack-served'))


@pytest.fixture(scope='module')
def up(served):
    with ImageServer(served) as server:
        yield server


@pytest.fixture(autouse=True)
def _clean_server(up):
    up.clear_faults()
    up.clear_requests()
    yield
    up.clear_faults()


@pytest.fixture
def mirror(tmp_path, up):
    """Arguments for one mirror directory (not made yet) fed by the test server, no retries, short timeout."""
    return dict(path=str(tmp_path / 'mirror'), source=[up.url], retries=0, timeout=5)


def run(mirror, images, **changes):
    return run_module(dict(mirror, images=images, **changes.pop('args', {})), **changes)


# ---- hostile manifests: refused before any byte of a file is asked, nothing written anywhere ----

HOSTILE = [
    ('uuid', '../../../../tmp/attack-escape', 'uuid'),
    ('uuid', 'A77AC000-0000-4000-8000-000000000100', 'uuid'),
    ('uuid', 100, 'uuid'),
    ('files', [], 'files'),
    ('files', None, 'files'),
    ('files', [{'sha1': '0' * 40, 'size': '65536', 'compression': 'gzip'}], 'size'),
    ('files', [{'sha1': '0' * 40, 'size': -1, 'compression': 'gzip'}], 'size'),
    ('files', [{'sha1': '0' * 40, 'size': 0, 'compression': 'gzip'}], 'size'),
    ('files', [{'sha1': '0' * 40, 'size': True, 'compression': 'gzip'}], 'size'),
    ('files', [{'sha1': 'z' * 40, 'size': 65536, 'compression': 'gzip'}], 'sha1'),
    ('files', [{'sha1': 'abc', 'size': 65536, 'compression': 'gzip'}], 'sha1'),
    ('files', [{'sha1': ['0' * 40], 'size': 65536, 'compression': 'gzip'}], 'sha1'),
    ('origin', '../../../../tmp/attack-escape', 'origin'),
    ('origin', 7, 'origin'),
]


@pytest.mark.parametrize('field, value, named', HOSTILE, ids=['%s-%d' % (h[0], i) for i, h in enumerate(HOSTILE)])
def test_a_hostile_manifest_is_refused_before_its_file_is_asked(mirror, up, served, field, value, named):
    n = 100 + HOSTILE.index((field, value, named))
    manifest, dummy = image(served, n, **{field: value})
    result = run(mirror, [{'uuid': uuid_of(n)}])
    no_traceback(result)
    assert result['failed'] and named in result['msg'], result['msg']
    assert files_asked(up) == []
    assert not os.path.exists('/tmp/attack-escape')
    images = os.path.join(mirror['path'], 'images')
    assert not os.path.isdir(images) or all(os.listdir(os.path.join(images, d)) == [] for d in os.listdir(images))
    assert not os.path.exists(os.path.join(mirror['path'], 'images.json')) or listed(mirror['path']) == []


def test_a_listing_with_hostile_entries_mirrors_the_good_one_and_says_what_it_skipped(mirror, up, served):
    good, dummy = image(served, 200, name='listed', version='1.0.0', published='2024-02-01T00:00:00Z')
    # newer, same name, but its uuid would escape the mirror: skipped, not followed
    image(served, 201, name='listed', version='2.0.0', published='2024-03-01T00:00:00Z',
          uuid='../../../../tmp/attack-escape')
    image(served, 202, name='listed', version='3.0.0', published='2024-04-01T00:00:00Z',
          uuid=uuid_of(202).upper())
    result = run(mirror, [{'name': 'listed'}])
    no_traceback(result)
    assert not result.get('failed'), result
    assert result['images'] == [good['uuid']]
    assert 'skipped 2 bad image(s)' in warned(result), result.get('warnings')
    assert not os.path.exists('/tmp/attack-escape')
    assert sorted(os.listdir(os.path.join(mirror['path'], 'images'))) == [good['uuid']]


def test_an_origin_cycle_is_an_error_and_nothing_is_downloaded(mirror, up, served):
    image(served, 300, origin=uuid_of(301))
    image(served, 301, origin=uuid_of(300))
    result = run(mirror, [{'uuid': uuid_of(300)}])
    no_traceback(result)
    assert result['failed'] and 'cycle' in result['msg'], result['msg']
    assert files_asked(up) == []


def test_an_origin_chain_deeper_than_the_limit_is_an_error_and_nothing_is_downloaded(mirror, up, served):
    for i in range(70):
        image(served, 400 + i, size=16, origin=uuid_of(401 + i) if i < 69 else None)
    result = run(mirror, [{'uuid': uuid_of(400)}])
    no_traceback(result)
    assert result['failed'] and 'longer than 64' in result['msg'], result['msg']
    assert files_asked(up) == []


def test_a_v1_dsapi_manifest_is_stored_upgraded_and_served_as_v2(mirror, tmp_path):
    served = str(tmp_path / 'ds')
    os.makedirs(served)
    manifest, data = image(served, 500)
    v1 = {'uuid': manifest['uuid'], 'name': 'dsapi-one', 'version': '1.0.0', 'description': 'v1', 'os': 'smartos',
          'type': 'zone-dataset', 'creator_uuid': OWNER, 'published_at': '2013-01-02T03:04Z',
          'files': [{'path': 'image.zfs.gz', 'sha1': manifest['files'][0]['sha1'], 'size': len(data)}]}
    with open(os.path.join(served, manifest['uuid'], 'dsmanifest.json'), 'w', encoding='utf-8') as f:
        json.dump(v1, f)
    with ImageServer(served) as ds:
        result = run(dict(mirror, source=[ds.url + '/datasets']), [{'name': 'dsapi-one'}])
    no_traceback(result)
    assert not result.get('failed'), result
    with open(os.path.join(mirror['path'], 'images', manifest['uuid'], 'manifest.json'), encoding='utf-8') as f:
        stored = json.load(f)
    assert stored['v'] == 2 and stored['uuid'] == manifest['uuid'] and stored['name'] == 'dsapi-one'
    assert 'url' not in stored['files'][0]   # the DSAPI server's own file URL is not served to hosts
    with open(os.path.join(mirror['path'], 'images', manifest['uuid'], 'file'), 'rb') as f:
        assert f.read() == data


@pytest.mark.parametrize('depth', [100, 400, 900, 960, 975, 985, 995])
def test_a_deeply_nested_manifest_is_mirrored_or_refused_never_a_traceback(mirror, up, served, depth):
    """Extra fields are kept as upstream sent them; one nested hundreds deep must not crash the module."""
    manifest, data = image(served, 1200 + depth, nested='NESTED')
    path = os.path.join(served, manifest['uuid'], 'manifest.json')
    with open(path, encoding='utf-8') as f:
        text = f.read().replace('"NESTED"', '[' * depth + ']' * depth)
    with open(path + '.tmp', 'w', encoding='utf-8') as f:
        f.write(text)
    os.replace(path + '.tmp', path)
    try:
        result = run(mirror, [{'uuid': manifest['uuid']}])
    finally:   # the test server itself cannot list the deepest: it must not stay for the tests that list
        shutil.rmtree(os.path.join(served, manifest['uuid']))
    no_traceback(result)
    if not result.get('failed'):
        with open(os.path.join(mirror['path'], 'images', manifest['uuid'], 'file'), 'rb') as f:
            assert f.read() == data
        again = run(mirror, [{'uuid': manifest['uuid']}])   # what it wrote, it reads back as mirrored (asking nothing)
        no_traceback(again)
        assert not again['changed'] and not again.get('warnings') and len(files_asked(up)) == 1, again


# ---- redirects ----

def test_a_file_redirected_to_another_host_arrives_without_the_credentials(mirror, tmp_path):
    """The source demands Basic credentials and redirects the file to a second server (127.0.0.2): the file is
    mirrored, the second server never sees the credentials, and the password shows nowhere, in the result or on disk."""
    served = str(tmp_path / 'auth')
    os.makedirs(served)
    manifest, data = image(served, 600)
    with ImageServer(served, auth='mirror:' + SECRET) as guarded, ImageServer(served, bind='127.0.0.2') as other:
        guarded.add_fault('redirect', uuid=manifest['uuid'], on=['file'], to=other.url)
        source = guarded.url.replace('http://', 'http://mirror:%s@' % SECRET)
        result = run(dict(mirror, source=[source]), [{'uuid': manifest['uuid']}], diff=True)
        seen = other.requests()
    no_traceback(result)
    assert not result.get('failed'), result
    assert [q['path'] for q in seen] == ['/images/%s/file' % manifest['uuid']]
    assert all(q['authorization'] is None for q in seen)
    assert_secret_nowhere(result, mirror['path'])


def assert_secret_nowhere(result, path):
    forms = [SECRET, base64.b64encode(('mirror:' + SECRET).encode()).decode()]
    for form in forms:
        assert form not in result['_raw'] and form not in result['_stderr']
    for dirpath, dummy, filenames in os.walk(path):
        for name in filenames:
            with open(os.path.join(dirpath, name), 'rb') as f:
                body = f.read()
            assert not any(form.encode() in body for form in forms), os.path.join(dirpath, name)


def test_a_failing_source_with_credentials_does_not_show_them(mirror, tmp_path):
    served = str(tmp_path / 'auth')
    os.makedirs(served)
    manifest, dummy = image(served, 601)
    with ImageServer(served, auth='mirror:' + SECRET) as guarded:
        guarded.add_fault('status', uuid=manifest['uuid'], on=['file'], arg=503)
        source = guarded.url.replace('http://', 'http://mirror:%s@' % SECRET)
        failed = run(dict(mirror, source=[source]), [{'uuid': manifest['uuid']}])
        wrong = run(dict(mirror, source=[guarded.url.replace('http://', 'http://mirror:wrong-%s@' % SECRET)]),
                    [{'uuid': manifest['uuid']}])
    for result in (failed, wrong):
        no_traceback(result)
        assert result['failed'], result
        assert_secret_nowhere(result, mirror['path'])
    assert '503' in failed['msg'] and '401' in wrong['msg']


def test_a_redirect_loop_is_an_error_not_a_hang(mirror, up, served):
    manifest, dummy = image(served, 610)
    up.add_fault('redirect', uuid=manifest['uuid'], on=['manifest'], to=up.url)
    result = run(mirror, [{'uuid': manifest['uuid']}])
    no_traceback(result)
    assert result['failed'] and 'redirected more than' in result['msg'], result['msg']


class Redirector(http.server.BaseHTTPRequestHandler):
    """Answers every request with a redirect to the class's `location`."""

    location = None

    def do_GET(self):
        self.send_response(302)
        self.send_header('Location', self.location)
        self.send_header('Content-Length', '0')
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.parametrize('location', ['file:///etc/passwd', 'ftp://127.0.0.1/x', 'gopher://127.0.0.1:70/'])
def test_a_redirect_out_of_http_is_refused(mirror, location):
    handler = type('To', (Redirector,), {'location': location})
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = run(dict(mirror, source=['http://127.0.0.1:%d' % server.server_port]),
                     [{'uuid': uuid_of(620)}])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    no_traceback(result)
    assert result['failed'] and 'not an http:// or https:// URL' in result['msg'], result['msg']
    assert 'root:' not in result['_raw']


# ---- slow and huge answers ----

@pytest.mark.parametrize('kind, on', [('trickle', 'manifest'), ('trickle', 'list'), ('slow_headers', 'manifest'),
                                      ('slow_headers', 'list')])
def test_a_trickled_manifest_or_listing_ends_in_an_error_within_the_deadline(mirror, up, served, kind, on):
    manifest, dummy = image(served, 700, name='trickled')
    up.add_fault(kind, on=[on], arg=1 if kind == 'trickle' else None)
    result = run(dict(mirror, timeout=2), [{'uuid': manifest['uuid']} if on == 'manifest' else {'name': 'trickled'}])
    no_traceback(result)
    assert result['failed'], result
    assert files_asked(up) == []


@pytest.mark.parametrize('on', ['manifest', 'list'])
def test_a_huge_manifest_or_listing_is_refused(mirror, up, served, on):
    manifest, dummy = image(served, 710, name='huge')
    up.add_fault('huge', on=[on], arg=40 << 20)
    result = run(mirror, [{'uuid': manifest['uuid']}] if on == 'manifest' else [{'name': 'huge'}])
    no_traceback(result)
    assert result['failed'] and 'more than' in result['msg'], result['msg']
    assert files_asked(up) == []


def test_an_endless_listing_is_an_error_not_a_hang(mirror, up, served):
    image(served, 720, name='endless-victim')
    up.add_fault('endless', on=['list'])
    result = run(dict(mirror, timeout=5), [{'name': 'endless-victim'}])
    no_traceback(result)
    assert result['failed'], result


# ---- wrong files, short files, refused resumes, kill -9 ----

def mirrored(path, uuid):
    return os.path.exists(os.path.join(path, 'images', uuid, 'manifest.json'))


def listed(path):
    with open(os.path.join(path, 'images.json'), encoding='utf-8') as f:
        return [m['uuid'] for m in json.load(f)]


def test_wrong_bytes_are_never_served_and_the_next_run_mends_it(mirror, up, served):
    manifest, data = image(served, 800)
    up.add_fault('wrong_bytes', uuid=manifest['uuid'], times=1)
    first = run(mirror, [{'uuid': manifest['uuid']}])
    no_traceback(first)
    assert first['failed'] and 'checksum' in first['msg']
    assert not mirrored(mirror['path'], manifest['uuid']) and listed(mirror['path']) == []
    assert os.listdir(os.path.join(mirror['path'], 'images', manifest['uuid'])) == []
    second = run(mirror, [{'uuid': manifest['uuid']}])
    assert second['changed'] and second['bytes'] == len(data) and listed(mirror['path']) == [manifest['uuid']]


def test_a_short_body_is_resumed_and_a_refused_resume_starts_over(mirror, up, served):
    manifest, data = image(served, 810, size=256 * 1024)
    uuid = manifest['uuid']
    up.add_fault('short_body', uuid=uuid, arg=100000, times=1)
    first = run(mirror, [{'uuid': uuid}])
    assert first['failed'] and 'broke off after 100000' in first['msg'], first['msg']
    partial = os.path.join(mirror['path'], 'images', uuid, 'file.partial')
    assert os.path.getsize(partial) == 100000 and listed(mirror['path']) == []
    # the server refuses the resume (416): the run starts over rather than failing
    up.clear_requests()
    up.add_fault('status', uuid=uuid, on=['file'], arg=416, times=1)
    second = run(mirror, [{'uuid': uuid}])
    no_traceback(second)
    assert not second.get('failed'), second
    ranges = [q['headers'].get('range') for q in files_asked(up)]
    assert ranges == ['bytes=100000-', None] and second['bytes'] == len(data)
    with open(os.path.join(mirror['path'], 'images', uuid, 'file'), 'rb') as f:
        assert f.read() == data


def test_kill_9_mid_download_then_a_rerun_resumes(mirror, up, served):
    manifest, data = image(served, 820, size=2 << 20)
    uuid = manifest['uuid']
    up.add_fault('trickle', uuid=uuid, on=['file'], arg=32768)   # 32 KiB a second: about a minute for the file
    os.makedirs(mirror['path'])
    proc = run_module(dict(mirror, images=[{'uuid': uuid}], timeout=30), wait=False)
    partial = os.path.join(mirror['path'], 'images', uuid, 'file.partial')
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if os.path.exists(partial) and os.path.getsize(partial) > 0:
                break
            time.sleep(0.1)
        started = proc.poll() is None and os.path.exists(partial) and os.path.getsize(partial) > 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
    assert started, (out, err)
    kept = os.path.getsize(partial)
    assert 0 < kept < len(data) and os.path.exists(os.path.join(mirror['path'], '.lock'))
    up.clear_faults()
    up.clear_requests()
    rerun = run(mirror, [{'uuid': uuid}])
    no_traceback(rerun)
    assert rerun['changed'] and not rerun.get('failed'), rerun
    assert [q['headers'].get('range') for q in files_asked(up)] == ['bytes=%d-' % kept]
    assert rerun['bytes'] == len(data) - kept and listed(mirror['path']) == [uuid]
    with open(os.path.join(mirror['path'], 'images', uuid, 'file'), 'rb') as f:
        assert f.read() == data


# ---- the mirror directory in odd states ----

def test_a_mirror_path_that_is_a_file_is_refused(mirror, up, served):
    manifest, dummy = image(served, 900)
    with open(mirror['path'], 'w', encoding='utf-8') as f:
        f.write('not a mirror')
    result = run(mirror, [{'uuid': manifest['uuid']}])
    no_traceback(result)
    assert result['failed'] and 'not a directory' in result['msg']
    with open(mirror['path'], encoding='utf-8') as f:
        assert f.read() == 'not a mirror'


def test_images_that_is_a_file_is_refused(mirror, up, served):
    manifest, dummy = image(served, 901)
    os.makedirs(mirror['path'])
    with open(os.path.join(mirror['path'], 'images'), 'w', encoding='utf-8') as f:
        f.write('x')
    result = run(mirror, [{'uuid': manifest['uuid']}])
    no_traceback(result)
    assert result['failed'] and 'not a directory' in result['msg']


def test_a_mirror_path_that_is_a_symlink_to_a_directory_is_used(mirror, up, served, tmp_path):
    manifest, dummy = image(served, 902)
    real = tmp_path / 'real'
    real.mkdir()
    os.symlink(str(real), mirror['path'])
    result = run(mirror, [{'uuid': manifest['uuid']}])
    assert not result.get('failed'), result
    assert os.path.isfile(str(real / 'images' / manifest['uuid'] / 'manifest.json'))


def mirror_of(mirror, up, served, *numbers):
    """A mirror holding images numbers (published, then mirrored), with no request logged."""
    made = [image(served, n) for n in numbers]
    result = run(mirror, [{'uuid': m['uuid']} for m, dummy in made])
    assert not result.get('failed'), result
    up.clear_requests()
    return made


def test_a_file_that_is_a_symlink_outside_is_withdrawn_and_mirrored_again(mirror, up, served, tmp_path):
    [(manifest, data)] = mirror_of(mirror, up, served, 910)
    target = tmp_path / 'precious'
    target.write_bytes(data)            # the right size and bytes: only its kind is wrong
    path = os.path.join(mirror['path'], 'images', manifest['uuid'], 'file')
    os.unlink(path)
    os.symlink(str(target), path)
    result = run(mirror, [{'uuid': manifest['uuid']}])
    no_traceback(result)
    assert result['changed'] and 'not a regular file' in warned(result), result
    assert target.read_bytes() == data and not os.path.islink(path)
    with open(path, 'rb') as f:
        assert f.read() == data


def test_a_file_of_the_wrong_size_is_withdrawn_and_mirrored_again(mirror, up, served):
    [(manifest, data)] = mirror_of(mirror, up, served, 911)
    path = os.path.join(mirror['path'], 'images', manifest['uuid'], 'file')
    with open(path, 'wb') as f:
        f.write(b'\0' * 1000)
    result = run(mirror, [{'uuid': manifest['uuid']}])
    no_traceback(result)
    assert result['changed'] and not result.get('failed'), result
    with open(path, 'rb') as f:
        assert f.read() == data


@pytest.mark.parametrize('damage', ['truncated', 'edited', 'removed', 'directory'])
def test_a_hand_damaged_images_json_is_rewritten(mirror, up, served, damage):
    made = mirror_of(mirror, up, served, 920, 921)
    index = os.path.join(mirror['path'], 'images.json')
    with open(index, 'rb') as f:
        good = f.read()
    if damage == 'truncated':
        with open(index, 'wb') as f:
            f.write(good[:len(good) // 2])
    elif damage == 'edited':
        with open(index, 'wb') as f:
            f.write(json.dumps([{'uuid': uuid_of(999), 'name': 'injected'}]).encode())
    elif damage == 'removed':
        os.unlink(index)
    else:
        os.unlink(index)
        os.mkdir(index)
    wanted = [{'uuid': m['uuid']} for m, dummy in made]
    before = tree_state(mirror['path'])
    check = run(mirror, wanted, check=True)
    assert check['changed'] and tree_state(mirror['path']) == before, check
    real = run(mirror, wanted)
    no_traceback(real)
    if damage == 'directory':
        assert real['failed'], real
        return
    assert real['changed'] and files_asked(up) == [], real
    with open(index, 'rb') as f:
        assert f.read() == good
    assert not run(mirror, wanted)['changed']


def test_a_stale_lock_file_does_not_block(mirror, up, served):
    made = mirror_of(mirror, up, served, 930)
    with open(os.path.join(mirror['path'], '.lock'), 'w', encoding='utf-8') as f:
        f.write('12345 left by a killed run\n')
    result = run(mirror, [{'uuid': made[0][0]['uuid']}])
    assert not result.get('failed') and not result['changed'], result


def test_check_mode_writes_nothing_whatever_the_mirror_holds(mirror, up, served):
    made = mirror_of(mirror, up, served, 940, 941)
    other, dummy = image(served, 942)
    images = os.path.join(mirror['path'], 'images')
    with open(os.path.join(images, made[0][0]['uuid'], 'file'), 'ab') as f:
        f.write(b'x')                                                          # broken: wrong size
    os.makedirs(os.path.join(images, other['uuid']))
    with open(os.path.join(images, other['uuid'], 'file.partial'), 'wb') as f:   # a partial to resume
        f.write(b'y' * 10)
    with open(os.path.join(images, made[1][0]['uuid'], '.manifest.json.tmp1'), 'w', encoding='utf-8') as f:
        f.write('{')                                                           # a leftover
    os.mkdir(os.path.join(images, 'not-an-image'))                              # a stray
    before = tree_state(mirror['path'])
    wanted = [{'uuid': other['uuid']}, {'uuid': made[0][0]['uuid']}]
    for args in (dict(), dict(prune=True), dict(state='absent')):
        result = run(mirror, wanted, check=True, diff=True, args=args)
        no_traceback(result)
        assert result['changed'] and tree_state(mirror['path']) == before, (args, result)
    assert files_asked(up) == []
    missing = dict(mirror, path=mirror['path'] + '-new')
    assert run(missing, wanted, check=True)['changed'] and not os.path.lexists(missing['path'])


# ---- a strict umask: the web server's user must still read the mirror ----

def test_a_strict_umask_still_leaves_every_file_readable_by_all(mirror, up, served):
    """The guide: "the module makes its files and directories readable by all". A run under umask 077 (a hardened
    host, a cron job) made the image file 0600, which nginx's worker user cannot read."""
    manifest, dummy = image(served, 1000)
    result = run_module(dict(mirror, images=[{'uuid': manifest['uuid']}]), umask=0o077)
    assert not result.get('failed'), result
    folder = os.path.join(mirror['path'], 'images', manifest['uuid'])
    for path in (os.path.join(folder, 'file'), os.path.join(folder, 'manifest.json'),
                 os.path.join(mirror['path'], 'images.json'), os.path.join(mirror['path'], 'ping.json')):
        assert os.stat(path).st_mode & 0o777 == 0o644, path


def test_a_strict_umask_still_leaves_every_directory_traversable_by_all(mirror, up, served):
    manifest, dummy = image(served, 1001)
    result = run_module(dict(mirror, images=[{'uuid': manifest['uuid']}]), umask=0o077)
    assert not result.get('failed'), result
    for path in (mirror['path'], os.path.join(mirror['path'], 'images'),
                 os.path.join(mirror['path'], 'images', manifest['uuid'])):
        assert os.stat(path).st_mode & 0o755 == 0o755, (path, oct(os.stat(path).st_mode))


def test_the_role_run_under_a_strict_umask_serves_the_image_through_nginx(tmp_path, up, served):
    manifest, data = image(served, 1002)
    path = public_dir('attack-umask-')
    try:
        role = MirrorRole(str(tmp_path), path, [up.url], free_port())
        argv, env, record = role.play.command({'name': 'image mirror',
                                               'ansible.builtin.include_role': {'name': 'smartos.images.image_mirror'}},
                                              vars=dict(role.vars, image_mirror_images=[{'uuid': manifest['uuid']}]))
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False,
                              preexec_fn=lambda: os.umask(0o077))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        with Nginx(role.conf, int(role.vars['image_mirror_listen'].rsplit(':', 1)[1])) as server:
            status, body = http_get(server.url + '/images/%s/file' % manifest['uuid'])
        assert status == 200 and body == data, status
    finally:
        shutil.rmtree(path, ignore_errors=True)


def http_get(url):
    import urllib.error
    import urllib.request
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read()


# ---- careless options ----

@pytest.mark.parametrize('args, named', [
    (dict(images=[{'uuid': uuid_of(950), 'state': 'absent'}]), 'state'),
    (dict(images=[{'uuids': uuid_of(950)}]), 'uuids'),
    (dict(image=[{'uuid': uuid_of(950)}]), 'image'),
    (dict(sources=['http://127.0.0.1:1']), 'sources'),
    (dict(images=[{'uuid': uuid_of(950).upper()}]), 'lower-case'),
    (dict(images=[{'name': 'x', 'version': 1.1}]), 'quote'),
    (dict(images=[{}]), 'uuid'),
    (dict(state='gone'), 'state'),
])
def test_a_careless_option_is_refused_before_anything_is_asked(mirror, up, args, named):
    result = run_module(dict(mirror, **args))
    no_traceback(result)
    assert result['failed'] and named in result['msg'], result['msg']
    assert up.requests() == [] and not os.path.lexists(mirror['path'])


def test_prune_with_an_empty_list_empties_the_mirror(mirror, up, served):
    mirror_of(mirror, up, served, 960, 961)
    result = run(mirror, [], args=dict(prune=True))
    no_traceback(result)
    assert result['changed'] and result['images'] == [] and len(result['removed']) == 2
    assert listed(mirror['path']) == [] and os.listdir(os.path.join(mirror['path'], 'images')) == []
    assert up.requests() == []


def test_absent_of_an_origin_that_a_kept_image_needs_is_refused_and_changes_nothing(mirror, up, served):
    base, dummy = image(served, 970)
    child, dummy = image(served, 971, origin=base['uuid'])
    assert not run(mirror, [{'uuid': child['uuid']}]).get('failed')
    before = tree_state(mirror['path'])
    result = run(mirror, [{'uuid': base['uuid']}], args=dict(state='absent'))
    no_traceback(result)
    assert result['failed'] and child['uuid'] in result['msg'], result['msg']
    assert tree_state(mirror['path']) == before
    both = run(mirror, [{'uuid': base['uuid']}, {'uuid': child['uuid']}], args=dict(state='absent'))
    assert both['changed'] and both['images'] == []


# ---- the role: values that would inject into the nginx configuration ----

@pytest.fixture(scope='module')
def role_path():
    path = public_dir('attack-role-')
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize('overrides', [
    dict(image_mirror_server_name='mirror.example; include /etc/shadow'),
    dict(image_mirror_server_name='mirror.example\n    root /'),
    dict(image_mirror_listen='127.0.0.1:8080; root /'),
    dict(image_mirror_listen='127.0.0.1:0'),
    dict(image_mirror_listen='127.0.0.1:70000'),
    dict(image_mirror_listen='unix:/tmp/x.sock'),
    dict(image_mirror_path='/var/tmp/my mirror'),
    dict(image_mirror_path='/var/tmp/mirror";root "/'),
    dict(image_mirror_path='/var/tmp/mirror$uri'),
    dict(image_mirror_path='/'),
    dict(image_mirror_path='relative/mirror'),
    dict(image_mirror_tls_cert='/etc/ssl/cert.pem'),
    dict(image_mirror_tls_cert='/etc/ssl/a b.pem', image_mirror_tls_key='/etc/ssl/k.pem'),
    dict(image_mirror_nginx_conf='/etc/nginx/conf.d/'),
], ids=lambda o: '-'.join('%s=%s' % kv for kv in o.items())[:60])
def test_role_refuses_values_that_would_inject_into_nginx(tmp_path, role_path, up, overrides):
    role = MirrorRole(str(tmp_path), role_path, [up.url], free_port())
    done = role([], **overrides)
    assert done.rc != 0 and 'cannot be written with these values' in done.out, done.out
    assert not os.path.exists(role.conf) and done.of('Mirror the images') == []
    assert up.requests() == []


def test_role_with_a_missing_tls_certificate_fails_and_keeps_the_block_that_works(tmp_path, role_path, up):
    role = MirrorRole(str(tmp_path), role_path, [up.url], free_port())
    good = role([])
    assert good.rc == 0, good.out
    with open(role.conf, 'rb') as f:
        block = f.read()
    missing = str(tmp_path / 'missing')
    bad = role([], image_mirror_tls_cert=missing + '/cert.pem', image_mirror_tls_key=missing + '/key.pem')
    assert bad.rc != 0 and 'cert.pem' in bad.out, bad.out
    with open(role.conf, 'rb') as f:
        assert f.read() == block
    scratch = [r['result'].get('path') for r in bad.of('Make a scratch directory for the check')]
    assert scratch and scratch[0] and not os.path.exists(scratch[0]), scratch   # removed, even on failure


def test_role_misspelt_variable_is_refused(tmp_path, role_path, up):
    role = MirrorRole(str(tmp_path), role_path, [up.url], free_port())
    done = role([], image_mirror_sever_name='mirror.example')
    assert done.rc != 0 and 'image_mirror_sever_name' in done.out, done.out
    assert not os.path.exists(role.conf)


def test_role_refuses_an_image_entry_with_a_state(tmp_path, role_path, up):
    role = MirrorRole(str(tmp_path), role_path, [up.url], free_port())
    done = role([{'uuid': uuid_of(980), 'state': 'absent'}])
    assert done.rc != 0 and 'state' in done.out, done.out
    assert up.requests() == []


def test_nginx_follows_no_symlink_planted_in_the_mirror_but_serves_a_mirror_path_that_is_one(tmp_path, up):
    """A symlink planted under the mirror (images/<uuid>/file -> a file outside) is not followed by nginx: nothing
    outside the mirror is served through it. The mirror's own path may be a symlink (to a larger disk)."""
    top = public_dir('attack-symlinks-')
    try:
        real = os.path.join(top, 'real')
        os.mkdir(real)
        os.chmod(real, 0o755)
        path = os.path.join(top, 'mirror')
        os.symlink(real, path)
        role = MirrorRole(str(tmp_path), path, [up.url], free_port())
        done = role([])
        assert done.rc == 0, done.out
        outside = os.path.join(top, 'outside')
        with open(outside, 'w', encoding='utf-8') as f:
            f.write('not for the fleet')
        os.chmod(outside, 0o644)
        planted = os.path.join(real, 'images', uuid_of(1100))
        os.makedirs(planted)
        os.chmod(planted, 0o755)
        with open(os.path.join(planted, 'manifest.json'), 'w', encoding='utf-8') as f:
            f.write('{}')
        os.chmod(os.path.join(planted, 'manifest.json'), 0o644)
        os.symlink(outside, os.path.join(planted, 'file'))
        with Nginx(role.conf, int(role.vars['image_mirror_listen'].rsplit(':', 1)[1])) as server:
            listing = http_get(server.url + '/images')
            ping = http_get(server.url + '/ping')
            status, body = http_get(server.url + '/images/%s/file' % uuid_of(1100))
        assert listing == (200, b'[]') and ping[0] == 200
        assert status != 200 and b'not for the fleet' not in body, (status, body)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_role_takes_a_listen_port_given_as_a_yaml_number(tmp_path, role_path, up):
    """`image_mirror_listen: 8080` is what a careless user writes: YAML makes it a number, which must still work."""
    port = free_port()
    role = MirrorRole(str(tmp_path), role_path, [up.url], port)
    done = role([], image_mirror_listen=port)
    assert done.rc == 0, done.out
    with open(role.conf, encoding='utf-8') as f:
        assert '    listen %d default_server;\n' % port in f.read()


@pytest.mark.parametrize('images', [[uuid_of(1)], [None], uuid_of(1), [{'uuid': uuid_of(1), 'version': '1'}]])
def test_role_refuses_image_entries_that_name_no_image_with_a_clear_message(tmp_path, role_path, up, images):
    role = MirrorRole(str(tmp_path), role_path, [up.url], free_port())
    done = role(images)
    assert done.rc != 0 and 'Traceback' not in done.out, done.out
    assert 'image_mirror_images' in done.out, done.out
    assert up.requests() == [] and not os.path.exists(role.conf)


# ---- more careless and hostile cases ----

def test_a_file_larger_than_the_free_space_is_refused_before_its_first_byte(mirror, up, served):
    manifest, dummy = image(served, 1300)
    path = os.path.join(served, manifest['uuid'], 'manifest.json')
    huge = dict(manifest, files=[dict(manifest['files'][0], size=1 << 60)])
    with open(path + '.tmp', 'w', encoding='utf-8') as f:
        json.dump(huge, f)
    os.replace(path + '.tmp', path)
    result = run(mirror, [{'uuid': manifest['uuid']}])
    no_traceback(result)
    assert result['failed'] and 'bytes free' in result['msg'], result['msg']
    assert files_asked(up) == []


def test_an_upper_case_sha1_is_mirrored_once_and_stays_mirrored(mirror, up, served):
    manifest, data = image(served, 1310)
    path = os.path.join(served, manifest['uuid'], 'manifest.json')
    upper = dict(manifest, files=[dict(manifest['files'][0], sha1=manifest['files'][0]['sha1'].upper())])
    with open(path + '.tmp', 'w', encoding='utf-8') as f:
        json.dump(upper, f)
    os.replace(path + '.tmp', path)
    first = run(mirror, [{'uuid': manifest['uuid']}])
    no_traceback(first)
    if first.get('failed'):
        assert 'sha1' in first['msg'] and files_asked(up) == []
        return
    again = run(mirror, [{'uuid': manifest['uuid']}])
    assert not again['changed'] and not again.get('warnings') and len(files_asked(up)) == 1, again


def test_images_mirrored_before_a_failure_are_listed(mirror, up, served):
    good, dummy = image(served, 1320)
    bad, dummy = image(served, 1321)
    up.add_fault('wrong_bytes', uuid=bad['uuid'])
    result = run(mirror, [{'uuid': good['uuid']}, {'uuid': bad['uuid']}])
    no_traceback(result)
    assert result['failed'] and 'checksum' in result['msg']
    assert listed(mirror['path']) == [good['uuid']] and not mirrored(mirror['path'], bad['uuid'])


def test_two_runs_at_once_take_turns_and_fetch_the_file_once(mirror, up, served):
    manifest, data = image(served, 1330, size=256 * 1024)
    up.add_fault('trickle', uuid=manifest['uuid'], on=['file'], arg=65536)   # about 4 s
    os.makedirs(mirror['path'])
    args = dict(mirror, images=[{'uuid': manifest['uuid']}], timeout=30)
    first = run_module(args, wait=False)
    try:
        deadline = time.monotonic() + 30
        partial = os.path.join(mirror['path'], 'images', manifest['uuid'], 'file.partial')
        while time.monotonic() < deadline and first.poll() is None and not os.path.exists(partial):
            time.sleep(0.05)
        second = run_module(dict(args, path=mirror['path']))
    finally:
        out, err = first.communicate(timeout=120)
    first_result = json.loads(out)
    assert not first_result.get('failed') and first_result['bytes'] == len(data), first_result
    no_traceback(second)
    assert not second.get('failed') and not second['changed'] and second['bytes'] == 0, second
    assert len(files_asked(up)) == 1


@pytest.mark.parametrize('fault, on, message', [
    ('no_content_length', ['file'], 'Content-Length'),
    ('wrong_size', ['manifest'], 'Content-Length'),
])
def test_a_content_length_that_is_missing_or_not_the_manifest_size_is_refused_unread(mirror, up, served, fault, on,
                                                                                     message):
    manifest, dummy = image(served, 1340 + len(fault))
    up.add_fault(fault, uuid=manifest['uuid'], on=on)
    result = run(mirror, [{'uuid': manifest['uuid']}])
    no_traceback(result)
    assert result['failed'] and message in result['msg'], result['msg']
    assert os.listdir(os.path.join(mirror['path'], 'images', manifest['uuid'])) == []


def test_a_connection_reset_mid_file_is_resumed_within_the_run(mirror, up, served):
    manifest, data = image(served, 1350, size=256 * 1024)
    up.add_fault('drop', uuid=manifest['uuid'], arg=70000, times=1)
    result = run(dict(mirror, retries=1), [{'uuid': manifest['uuid']}])
    no_traceback(result)
    assert not result.get('failed') and result['bytes'] == len(data), result
    # a reset may lose bytes in flight: the resume starts at what arrived, at most where the server cut
    ranges = [q['headers'].get('range') for q in files_asked(up)]
    assert len(ranges) == 2 and ranges[0] is None, ranges
    assert ranges[1] is None or 0 < int(ranges[1][len('bytes='):-1]) <= 70000, ranges
    with open(os.path.join(mirror['path'], 'images', manifest['uuid'], 'file'), 'rb') as f:
        assert f.read() == data


# ---- a mirror whose listing outgrows what hosts read ----

BIG_IMAGES = 10
PADDING = 900 * 1024     # each manifest under the 1 MiB a manifest may be; together over the 8 MiB of a listing


@pytest.fixture(scope='module')
def big(tmp_path_factory):
    """A server of its own (the others list small) with images whose manifests together make an images.json larger
    than one ListImages answer a host reads."""
    served = str(tmp_path_factory.mktemp('attack-big-served'))
    made = [image(served, 1400 + i, name='big-listing', version='1.0.%d' % i, size=16, padding='p' * PADDING)[0]
            for i in range(BIG_IMAGES)]
    with ImageServer(served) as server:
        yield server, made


def test_hosts_cannot_read_a_listing_larger_than_a_page_from_the_mirror(tmp_path, big):
    """Hosts read one ListImages answer of at most 8 MiB (PAGE_MAX_BYTES); the mirror answers GET /images with its
    whole images.json, so past that size every listing (any name lookup) through the mirror fails on the hosts
    (they then fall back to upstream). This pins the host's side: a clear refusal, no traceback."""
    from ansible_collections.smartos.images.plugins.module_utils._errors import SourceError
    from ansible_collections.smartos.images.plugins.module_utils._imgapi import ImageServerClient
    from ansible_collections.smartos.images.plugins.module_utils._urls import ImageSource
    up, big_listing = big
    path = public_dir('attack-big-')
    try:
        role = MirrorRole(str(tmp_path), path, [up.url], free_port())
        done = role([{'uuid': m['uuid']} for m in big_listing])
        assert done.rc == 0, done.out
        assert os.path.getsize(os.path.join(path, 'images.json')) > 8 << 20
        with Nginx(role.conf, int(role.vars['image_mirror_listen'].rsplit(':', 1)[1])) as server:
            client = ImageServerClient(ImageSource(server.url), retries=0, timeout=10)
            with pytest.raises(SourceError, match='more than'):
                client.list_raw({'name': 'big-listing'})
            assert client.get_image(big_listing[0]['uuid'])['uuid'] == big_listing[0]['uuid']
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_the_module_warns_when_its_listing_outgrows_what_hosts_read(mirror, big):
    up, big_listing = big
    result = run(dict(mirror, source=[up.url]), [{'uuid': m['uuid']} for m in big_listing])
    assert not result.get('failed'), result
    assert 'images.json' in warned(result), result.get('warnings')


@pytest.mark.parametrize('careless', [dict(imagez=[]), dict(images=[{'uuid': uuid_of(1500), 'state': 'absent'}]),
                                      dict(state='gone'), dict(timeout='soon')])
def test_credentials_do_not_show_when_the_options_are_refused(mirror, up, careless):
    """Options refused before the module's own code runs must not print the source's password back either."""
    source = up.url.replace('http://', 'http://mirror:%s@' % SECRET)
    result = run_module(dict(mirror, source=[source], **careless))
    no_traceback(result)
    assert result['failed'], result
    assert_secret_nowhere(result, mirror['path'])


@pytest.mark.parametrize('kind', ['directory', 'fifo', 'dangling-symlink'])
def test_an_odd_lock_file_is_a_clear_error_or_harmless(mirror, up, served, tmp_path, kind):
    made = mirror_of(mirror, up, served, 1600)
    lock = os.path.join(mirror['path'], '.lock')
    os.unlink(lock)
    target = str(tmp_path / 'elsewhere')
    if kind == 'directory':
        os.mkdir(lock)
    elif kind == 'fifo':
        os.mkfifo(lock)
    else:
        os.symlink(target, lock)
    result = run(mirror, [{'uuid': made[0][0]['uuid']}])
    no_traceback(result)
    assert result.get('failed') or not result['changed'], result
    if kind == 'dangling-symlink':
        assert not os.path.lexists(target), 'the lock was created through a symlink, outside the mirror'


def test_prune_leaves_an_image_directory_symlinked_outside_alone(mirror, up, served, tmp_path):
    mirror_of(mirror, up, served, 1610)
    outside = tmp_path / 'outside'
    outside.mkdir()
    (outside / 'manifest.json').write_text('{}')
    (outside / 'file').write_bytes(b'keep me')
    link = os.path.join(mirror['path'], 'images', uuid_of(1611))
    os.symlink(str(outside), link)
    result = run(mirror, [], args=dict(prune=True))
    no_traceback(result)
    assert result['changed'] and result['images'] == [] and uuid_of(1611) in warned(result), result
    assert sorted(os.listdir(str(outside))) == ['file', 'manifest.json'] and os.path.islink(link)
    gone = run(mirror, [{'uuid': uuid_of(1611)}], args=dict(state='absent'))
    assert not gone['changed'] and sorted(os.listdir(str(outside))) == ['file', 'manifest.json']


@pytest.mark.parametrize('name', ['images.json', 'ping.json'])
def test_a_top_document_symlinked_outside_is_replaced_not_written_through(mirror, up, served, tmp_path, name):
    made = mirror_of(mirror, up, served, 1620)
    outside = tmp_path / 'outside.json'
    outside.write_text('precious')
    path = os.path.join(mirror['path'], name)
    os.unlink(path)
    os.symlink(str(outside), path)
    result = run(mirror, [{'uuid': made[0][0]['uuid']}])
    no_traceback(result)
    assert result['changed'] and not os.path.islink(path) and outside.read_text() == 'precious', result


def test_a_manifest_symlinked_outside_is_withdrawn_not_trusted(mirror, up, served, tmp_path):
    """A manifest.json that is a symlink is not the mirror's own (the module writes none) and nginx follows no
    symlink: the image is not served, so it must not count as mirrored; the link goes, its target stays."""
    [(manifest, data)] = mirror_of(mirror, up, served, 1630)
    path = os.path.join(mirror['path'], 'images', manifest['uuid'], 'manifest.json')
    outside = tmp_path / 'manifest.json'
    with open(path, 'rb') as f:
        outside.write_bytes(f.read())
    os.unlink(path)
    os.symlink(str(outside), path)
    result = run(mirror, [{'uuid': manifest['uuid']}])
    no_traceback(result)
    assert result['changed'] and not os.path.islink(path), result
    assert outside.read_bytes() and len(files_asked(up)) <= 1
