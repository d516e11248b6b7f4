"""Hostile servers and careless users against the fidelity rules (issue 16): imports checked by Content-MD5,
manifests without type or state, the sources.list migration and a source's channel key. Real ansible-playbook
runs on the zfs-fuse pool, with the project's image server or a small hostile one on 127.0.0.1."""
from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import http.server
import json
import os
import subprocess
import threading

import pytest

from tests.integration.conftest import POOL, tree_state
from tests.lib.zfspool import retry_busy

pytestmark = pytest.mark.usefixtures('collection_built')

DEFAULT = {'type': 'imgapi', 'url': 'https://images.smartos.org'}
QUICK = {'timeout': 5, 'retries': 0}


def image_task(host_root, **args):
    return {'name': 'image', 'smartos.images.smartos_image': dict(pool=POOL, host_root=host_root, **args)}


def facts_task(host_root, subset=('sources',)):
    args = dict(host_root=host_root, pools=[POOL], gather_subset=list(subset))
    return {'name': 'facts', 'smartos.images.smartos_image_facts': args}


def installed(pool_obj, uuid):
    return '%s/%s' % (POOL, uuid) in [line.split('\t')[0] for line in pool_obj.datasets()]


def destroy(uuid):
    retry_busy('zfs', 'destroy', '-r', '%s/%s' % (POOL, uuid))


def files_of(host_root):
    """tree_state without the lock files an import leaves in /var/run, as imgadm's do."""
    return {k: v for k, v in tree_state(host_root).items() if not k.startswith('var/run') and k != 'var/'}


def b64md5(data):
    return base64.b64encode(hashlib.md5(data).digest()).decode('ascii')


def without_sha1(manifest):
    return dict(manifest, files=[{k: v for k, v in manifest['files'][0].items() if k != 'sha1'}])


class _Quiet(http.server.BaseHTTPRequestHandler):
    """A handler that logs nothing and answers JSON."""

    def send_json(self, status, obj, reason=None):
        body = json.dumps(obj).encode()
        self.send_response(status, reason)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serving(handler):
    """A server on 127.0.0.1 for the length of the block: its base URL."""
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield 'http://127.0.0.1:%d' % httpd.server_port
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


class _Hostile(_Quiet):
    """One image's manifest and file, the file sent with the headers and body a test chooses."""

    manifest = None
    body = b''
    headers_out = ()

    def do_GET(self):   # noqa: N802 (http.server's name)
        if not self.path.split('?')[0].endswith('/file'):
            return self.send_json(200, self.manifest)
        self.send_response(200)
        self.send_header('Content-Type', 'application/octet-stream')
        for name, value in self.headers_out:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(self.body)
        return None


def serve_hostile(play, task_of, manifest, body, headers):
    handler = type('Handler', (_Hostile,), {'manifest': manifest, 'body': body, 'headers_out': tuple(headers)})
    with serving(handler) as url:
        return play(task_of(url))


def _md5_lies(data):
    length = ('Content-Length', str(len(data)))
    inflated = gzip.decompress(data)
    return {
        # (headers, body, words of the refusal or None when the import must succeed)
        'garbage': ([length, ('Content-MD5', '!!not*base64!!')], data, 'malformed Content-MD5'),
        'hex-digest': ([length, ('Content-MD5', hashlib.md5(data).hexdigest())], data, 'malformed Content-MD5'),
        'of-the-inflated-bytes': ([length, ('Content-MD5', b64md5(inflated))], data, 'Content-MD5 error'),
        'empty': ([length, ('Content-MD5', '')], data, 'no Content-MD5 header'),
        'repeated-same': ([length, ('Content-MD5', b64md5(data)), ('Content-MD5', b64md5(data))], data, None),
        'repeated-differing-right-first': (
            [length, ('Content-MD5', b64md5(data)), ('Content-MD5', b64md5(b'x'))], data, 'Content-MD5'),
        'repeated-differing-wrong-first': (
            [length, ('Content-MD5', b64md5(b'x')), ('Content-MD5', b64md5(data))], data, 'Content-MD5'),
        'longer-file-with-its-md5': (
            [('Content-Length', str(len(data) + 7)), ('Content-MD5', b64md5(data + b'\0' * 7))],
            data + b'\0' * 7, 'Content-Length'),
        'shorter-file-with-its-md5': (
            [('Content-Length', str(len(data) - 7)), ('Content-MD5', b64md5(data[:-7]))], data[:-7],
            'Content-Length'),
        'right': ([length, ('Content-MD5', ' %s ' % b64md5(data))], data, None),
    }


@pytest.mark.parametrize('lie', sorted(_md5_lies(gzip.compress(b'x'))))
def test_content_md5_lies_are_refused_and_leave_nothing(play, images, host_root, pool, lie):
    """imgadm (3.4 step 5): without files[0].sha1 the answer's Content-MD5 checks the downloaded (compressed) bytes.
    A Content-MD5 that is garbage, hex, of the inflated bytes, repeated with two values (node joins them, so imgadm
    fails), or a file of another length with its own matching MD5: refused, nothing on the pool or the host."""
    manifest = images('att-md5', publish_it=False)
    bare = without_sha1(manifest)
    with open(images.path('att-md5'), 'rb') as f:
        data = f.read()
    headers, body, words = _md5_lies(data)[lie]
    before = files_of(host_root)
    result = serve_hostile(play, lambda url: image_task(host_root, uuid=manifest['uuid'], source=[url], **QUICK),
                           bare, body, headers)
    try:
        if words is None:
            assert result['changed'] and not result['failed'], result.get('msg')
            assert installed(pool, manifest['uuid'])
        else:
            assert result['failed'] and words in result['msg'], result.get('msg')
            assert 'Traceback' not in result['_stdout'] + result['_stderr']
            assert not installed(pool, manifest['uuid']) and files_of(host_root) == before
    finally:
        if installed(pool, manifest['uuid']):
            destroy(manifest['uuid'])


def test_a_resumed_download_without_content_md5_is_checked_by_the_first_answers(
        play, images, server, host_root, pool):
    """The Content-MD5 comes with the whole file (200) only; a 206 resume carries none. The first answer's MD5
    checks the bytes of every answer together: the import completes after a drop, and a drop followed by a
    flipped byte in the resumed part is refused."""
    manifest = images('att-resume')
    images.republish(without_sha1(manifest), 'att-resume')
    uuid = manifest['uuid']
    task = image_task(host_root, uuid=uuid, source=[server.url], timeout=10, retries=2)
    size = manifest['files'][0]['size']
    server.add_fault('short_body', uuid=uuid, times=1, arg=size // 3)
    server.add_fault('wrong_bytes', uuid=uuid, times=2, arg=size - 10)
    broken = play(task)
    assert broken['failed'] and 'Content-MD5 error' in broken['msg'], broken.get('msg')
    assert not installed(pool, uuid)
    server.clear_faults()
    server.clear_requests()
    server.add_fault('short_body', uuid=uuid, times=1, arg=size // 3)
    try:
        result = play(task)
        assert result['changed'] and not result['failed'], result.get('msg')
        ranges = [r for r in server.requests() if r['path'].endswith('/file') and (r.get('headers') or {}).get(
            'range')]
        assert ranges, server.requests()
    finally:
        if installed(pool, uuid):
            destroy(uuid)


def test_check_mode_of_a_manifest_without_sha1_or_type_fetches_no_file(play, images, server, host_root, pool):
    """Check mode and diff on an image checked by Content-MD5: changed, nothing fetched or written."""
    manifest = images('att-check')
    bare = without_sha1(manifest)
    del bare['type']
    images.republish(bare, 'att-check')
    before = tree_state(host_root)
    result = play(image_task(host_root, uuid=manifest['uuid'], source=[server.url]), check=True)
    assert result['changed'] and not result['failed'], result.get('msg')
    assert not [r for r in server.requests() if r['path'].endswith('/file')]
    assert tree_state(host_root) == before and not installed(pool, manifest['uuid'])


@pytest.mark.parametrize('state', [None, 'ACTIVE', 'active ', 1, True, ['active'], {'active': True}, 'unactivated'])
def test_a_manifest_with_an_odd_state_is_not_imported(play, images, server, host_root, pool, state):
    """imgadm (3.2): only state == "active" imports. Every odd state: imgadm's words, no file fetched."""
    manifest = images('att-state')
    odd = {k: v for k, v in manifest.items() if k != 'state'}
    if state is not None:
        odd['state'] = state
    images.republish(odd, 'att-state')
    try:
        result = play(image_task(host_root, uuid=manifest['uuid'], source=[server.url]))
    finally:
        images.republish(manifest, 'att-state')
    assert result['failed'] and 'an active image "%s" was not found' % manifest['uuid'] in result['msg']
    assert 'Traceback' not in result['_stdout'] + result['_stderr']
    assert not [r for r in server.requests() if r['path'].endswith('/file')] and not installed(pool, manifest['uuid'])


# ---- a leftover sources.list on a modern host (reference 1.3) ----

def _leftover(host_root, data):
    os.makedirs(os.path.join(host_root, 'var', 'imgadm'), exist_ok=True)
    path = os.path.join(host_root, 'var', 'db', 'imgadm', 'sources.list')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)
    return path


MIRROR = 'http://127.0.0.1:9/datasets'


@pytest.mark.parametrize('data', [
    b'# mirrors\r\n\r\n' + MIRROR.encode() + b'\r\n' + MIRROR.encode() + b'/\r\n   \r\n',
    b'\n\n  ' + MIRROR.encode() + b'  # the mirror\n# ' + b'x' * 10000 + b'\n' + MIRROR.encode(),
])
def test_a_leftover_sources_list_with_comments_blanks_crlf_and_duplicates(play, host_root, data):
    """Comments, blank lines, CRLF and the same mirror twice: the default, then the mirror once; nothing written."""
    _leftover(host_root, data)
    before = tree_state(host_root)
    for check in (True, False):
        facts = play(facts_task(host_root), check=check)
        assert not facts['failed'], facts.get('msg')
        assert [(s['url'], s['type']) for s in facts['ansible_facts']['smartos_image_sources']] == [
            (DEFAULT['url'], 'imgapi'), (MIRROR, 'dsapi')]
    assert tree_state(host_root) == before


@pytest.mark.parametrize('kind', ['directory', 'fifo', 'huge', 'latin-1'])
def test_an_odd_leftover_sources_list_is_a_clear_answer(play, host_root, kind):
    """A leftover sources.list that is a directory, a FIFO, over a MiB or not UTF-8: a clear error or a warning,
    never a hang or a traceback, and nothing written."""
    path = _leftover(host_root, b'')
    if kind in ('directory', 'fifo'):
        os.unlink(path)
        os.mkdir(path) if kind == 'directory' else os.mkfifo(path)
    elif kind == 'huge':
        with open(path, 'wb') as f:
            f.write((MIRROR + '\n').encode() * (2 * 1024 * 1024 // len(MIRROR)))
    else:
        with open(path, 'wb') as f:
            f.write(b'# caf\xe9\n' + MIRROR.encode() + b'\n')
    before = tree_state(host_root) if kind != 'fifo' else None
    facts = play(facts_task(host_root))
    assert 'Traceback' not in facts['_stdout'] + facts['_stderr']
    if kind == 'latin-1':
        warned = [w if isinstance(w, str) else w['event']['msg'] for w in facts.get('warnings', [])]
        assert not facts['failed'] and 'not UTF-8' in ' '.join(warned), facts
    else:
        assert facts['failed'] and 'sources.list' in facts['msg'], facts.get('msg')
    if before is not None:
        assert tree_state(host_root) == before


@pytest.mark.parametrize('channel, sent', [('dev', 'dev'), ('a b&c=d', 'a b&c=d'), ('', None)])
def test_a_channel_key_is_sent_encoded(play, images, server, host_root, pool, channel, sent):
    """imgadm (3.9): a source's "channel" key is sent as ?channel=; odd characters stay one value, an empty one
    is not sent. The server answers an unknown channel with an error: the import fails, nothing installed."""
    manifest = images('att-channel')
    conf = os.path.join(host_root, 'var', 'imgadm', 'imgadm.conf')
    os.makedirs(os.path.dirname(conf))
    with open(conf, 'w', encoding='utf-8') as f:
        json.dump({'sources': [{'type': 'imgapi', 'url': server.url, 'channel': channel}]}, f)
    try:
        play(image_task(host_root, uuid=manifest['uuid'], **QUICK))
        asked = [r for r in server.requests() if r['path'].startswith('/images/' + manifest['uuid'])]
        assert asked
        for request in asked:
            query = request.get('query') or {}
            got = query.get('channel')
            got = got[0] if isinstance(got, list) else got
            assert got == sent, request
    finally:
        if installed(pool, manifest['uuid']):
            destroy(manifest['uuid'])


# ---- one credential rule: a user-only token ----

TOKEN = 'T0kenOnly'


class _Echo(_Quiet):
    """A server that answers every GET with a 401 echoing the Authorization header and what it decodes to."""

    def do_GET(self):   # noqa: N802 (http.server's name)
        auth = self.headers.get('Authorization') or ''
        decoded = base64.b64decode(auth.split(' ')[-1]).decode() if auth else ''
        message = 'you sent %s (%s) as %s' % (auth, decoded, decoded.rstrip(':'))
        self.send_json(401, {'code': 'Denied', 'message': message}, 'Denied %s' % auth)


@pytest.mark.parametrize('userinfo', [TOKEN, TOKEN + ':'])
def test_an_echoed_user_only_token_is_shown_nowhere(play, host_root, pool, userinfo):
    """A source URL whose only credential is a token (http://TOKEN@host or http://TOKEN:@host), on a server that
    echoes the Authorization header and the token: neither the token nor its Basic value is in any output."""
    with serving(_Echo) as url:
        source = url.replace('://', '://%s@' % userinfo)
        result = play(image_task(host_root, uuid='0e3a9c7a-52a1-4d0c-9d1c-3a0a4c1a7b01', source=[source], **QUICK))
    assert result['failed'] and 'Denied' in result['msg'], result.get('msg')
    basic = base64.b64encode((TOKEN + ':').encode()).decode()
    everything = json.dumps(result)
    assert TOKEN not in everything and basic not in everything


def source_task(host_root, **args):
    return {'name': 'sources', 'smartos.images.smartos_image_source': dict(host_root=host_root, ping=False, **args)}


def test_check_diff_then_real_removal_of_a_migrated_mirror(play, host_root):
    """A mirror imgadm's upgrade would import from a leftover sources.list, removed: check mode and diff say so and
    write nothing; the real run writes imgadm.conf without it (and the upgrade marked done); a rerun changes nothing."""
    _leftover(host_root, (MIRROR + '\n').encode())
    before = tree_state(host_root)
    task = source_task(host_root, url=MIRROR, type='dsapi', state='absent')
    checked = play(task, check=True)
    assert checked['changed'] and not checked['failed'], checked.get('msg')
    assert MIRROR in json.dumps(checked.get('diff')), checked.get('diff')
    assert tree_state(host_root) == before
    real = play(task)
    assert real['changed'] and not real['failed'], real.get('msg')
    with open(os.path.join(host_root, 'var', 'imgadm', 'imgadm.conf'), encoding='utf-8') as f:
        assert json.load(f) == {'dockerImportSkipUuids': True, 'sources': [DEFAULT], 'upgradedToVer': '3.0.0'}
    again = play(task)
    assert not again['changed'] and not again['failed']
    facts = play(facts_task(host_root))
    assert [s['url'] for s in facts['ansible_facts']['smartos_image_sources']] == [DEFAULT['url']]


def test_two_source_writes_at_once_on_a_migrated_host_keep_both(play, host_root):
    """Two runs adding a source at once to a host whose sources come from a leftover sources.list: both end up
    in imgadm.conf after the migrated ones, neither lost (the lock, and the reread under it)."""
    _leftover(host_root, (MIRROR + '\n').encode())
    procs = []
    for n in (1, 2):
        argv, env, dummy = play.command(source_task(host_root, url='https://img%d.example' % n))
        procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for proc in procs:
        assert proc.wait(timeout=300) == 0
    with open(os.path.join(host_root, 'var', 'imgadm', 'imgadm.conf'), encoding='utf-8') as f:
        sources = json.load(f)['sources']
    assert sources[:2] == [DEFAULT, {'type': 'dsapi', 'url': MIRROR}]
    assert sorted(s['url'] for s in sources[2:]) == ['https://img1.example', 'https://img2.example']


# ---- the images worker: parallel imports and a partial failure ----

def test_parallel_imports_with_one_broken_file_report_what_was_done(play, images, server, host_root, pool):
    """Three images at once, the second's file damaged on every try: the others are imported (running imports
    finish), the task fails naming the damaged one, says it changed and which images it imported, and leaves no
    partial dataset; the rerun imports only the one missing."""
    found = [images('att-par%d' % n) for n in range(3)]
    uuids = [m['uuid'] for m in found]
    server.add_fault('wrong_bytes', uuid=uuids[1])
    task = image_task(host_root, images=[{'uuid': u} for u in uuids], source=[server.url], retries=0)
    try:
        result = play(task)
        assert result['failed'] and uuids[1] in result['msg'], result.get('msg')
        assert result['changed'] is True
        assert sorted(result.get('imported', [])) == sorted([uuids[0], uuids[2]]), result
        names = [line.split('\t')[0] for line in pool.datasets()]
        assert not [n for n in names if 'partial' in n]
        assert [installed(pool, u) for u in uuids] == [True, False, True]
        server.clear_faults()
        again = play(task)
        assert again['changed'] and not again['failed'], again.get('msg')
        assert [installed(pool, u) for u in uuids] == [True, True, True]
    finally:
        for uuid in uuids:
            if installed(pool, uuid):
                destroy(uuid)


# ---- the lookup: a careless user's keywords ----

def test_the_lookup_refuses_a_misspelt_keyword_before_asking_anything(play):
    """lookup('smartos.images.image', 'base', verison='1.0'): an error naming the keyword and the options (the
    server named is never reached: port 9 on 127.0.0.1), not the newest image of any version."""
    task = {'name': 'lookup', 'ansible.builtin.debug': {
        'msg': "{{ lookup('smartos.images.image', 'base', source='http://127.0.0.1:9', verison='1.0', newest=true) }}"}}
    result = play(task)
    assert result['failed'] and 'unknown option(s) verison' in result['msg'], result.get('msg')
    assert 'could not be reached' not in result['msg']


def test_kill_9_at_any_point_of_a_config_save_leaves_a_whole_file(play, host_root):
    """kill -9 of the whole run at growing delays while it adds a source to a migrated host: imgadm.conf is at every
    point absent (nothing written yet) or whole JSON with the migrated sources in front; the last run completes."""
    _leftover(host_root, (MIRROR + '\n').encode())
    conf = os.path.join(host_root, 'var', 'imgadm', 'imgadm.conf')
    for step in range(8):
        argv, env, dummy = play.command(source_task(host_root, url='https://img%d.example' % step))
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            proc.wait(timeout=0.4 * (step + 1))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=60)
        if os.path.exists(conf):
            with open(conf, encoding='utf-8') as f:
                sources = json.load(f)['sources']
            assert sources[:2] == [DEFAULT, {'type': 'dsapi', 'url': MIRROR}]
    final = play(source_task(host_root, url='https://last.example'))
    assert not final['failed'] and final['changed'], final.get('msg')
    with open(conf, encoding='utf-8') as f:
        config = json.load(f)
    assert config['sources'][:2] == [DEFAULT, {'type': 'dsapi', 'url': MIRROR}]
    assert config['sources'][-1] == {'type': 'imgapi', 'url': 'https://last.example'}
    assert config['upgradedToVer'] == '3.0.0'
