"""Issue 10, attacked as a careless user would, with kills at every step, through real ansible-playbook runs:
misspelt and mistyped options, odd names, contradicting entries, odd files in a cache file's or a config file's
place, a read-only host, kill -9 during the download. After each: no traceback, a clear error, nothing lost,
nothing half-imported, the host as before on failure, bounded time."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

from tests.integration.conftest import POOL, create_task as create, filled_dataset, tree_state
from tests.lib.procs import kill_tree
from tests.lib.zfspool import retry_busy, run

pytestmark = pytest.mark.usefixtures('collection_built')

BOUND = 90   # seconds any single run may take here: a hang is a failure, not a stuck suite


def img(host_root, server=None, **args):
    if server is not None:
        args['source'] = [server.url]
    return {'name': 'image', 'smartos.images.smartos_image': dict(pool=POOL, host_root=host_root, **args)}


def facts(host_root, **args):
    return {'name': 'facts', 'smartos.images.smartos_image_facts': dict(pools=[POOL], host_root=host_root, **args)}


def bounded(play, task, check=False, timeout=BOUND):
    """play(), but a run that outlives timeout is killed (process tree) and fails the test."""
    argv, env, record = play.command(task, check=check)
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        proc.communicate()
        pytest.fail('the run did not end within %ds (a hang)' % timeout)
    last = play.results(record)[-1]
    return dict(last['result'], failed=last['status'] == 'failed', _stdout=out, _stderr=err, _rc=proc.returncode)


def clean(result):
    """The run ended by the module's own word: no Python traceback anywhere."""
    text = json.dumps(result)
    assert 'Traceback (most recent call last)' not in text and 'MODULE FAILURE' not in result.get('msg', ''), result
    assert 'module_stderr' not in result, result


def warnings_of(result):
    return [w if isinstance(w, str) else w['event']['msg'] for w in result.get('warnings') or []]


def cache_file(host_root, uuid):
    return os.path.join(host_root, 'var', 'imgadm', 'images', '%s-%s.json' % (POOL, uuid))


def datasets(pool):
    return {line.split('\t')[0] for line in pool.datasets()}


def destroy(*uuids):
    names = run('zfs', 'list', '-H', '-o', 'name', '-r', POOL).split()
    for uuid in uuids:
        for name in ('%s/%s' % (POOL, uuid), '%s/%s-partial' % (POOL, uuid)):
            if name in names:
                retry_busy('zfs', 'destroy', '-r', name)


def file_requests(server):
    return [r for r in server.requests() if r['path'].endswith('/file')]


# ---- careless options: refused before the host is touched ----

U = '2f1dc911-6401-4fa4-8e9d-67ea2e39c271'
CARELESS = [
    ('entry key misspelt', dict(images=[{'uuid': U, 'verison': '1'}]), 'verison'),
    ('top key misspelt', dict(uuid=U, filtres={'os': 'smartos'}), 'filtres'),
    ('uuid as a list', dict(uuid=[U]), 'not a lower-case UUID'),
    ('upper-case uuid in an entry', dict(images=[{'uuid': U.upper(), 'state': 'absent'}]), 'not a lower-case UUID'),
    ('upper-case keep', dict(prune_unused=True, keep=[U.upper()]), 'keep entry "%s" is not a lower-case UUID' % U.upper()),
    ('keep a dict', dict(prune_unused=True, keep=[{'uuid': U}]), 'is not a UUID, name or name@version'),
    ('keep empty', dict(prune_unused=True, keep=['']), 'is not a UUID, name or name@version'),
    ('lock_timeout negative', dict(uuid=U, lock_timeout=-1), 'lock_timeout must be 0 or more'),
    ('lock_timeout a word', dict(uuid=U, lock_timeout='soon'), 'lock_timeout'),
    ('timeout 0', dict(uuid=U, timeout=0), 'timeout must be a positive'),
    ('timeout huge', dict(uuid=U, timeout=10 ** 12), 'timeout must be at most'),
    ('retries negative', dict(uuid=U, retries=-1), 'retries must be 0 or more'),
    ('state misspelt', dict(uuid=U, state='abset'), 'abset'),
    ('entry state misspelt', dict(images=[{'name': 'x', 'state': 'Absent'}]), 'Absent'),
    ('version without name', dict(images=[{'uuid': U, 'version': '1.0'}]), 'needs a name'),
    ('filters a list', dict(name='x', filters=['os', 'smartos']), 'filters'),
    ('prune_unused a word', dict(prune_unused='sometimes'), 'prune_unused'),
]


@pytest.mark.parametrize('args, words', [c[1:] for c in CARELESS], ids=[c[0] for c in CARELESS])
def test_careless_options_are_refused_before_the_host_is_touched(play, server, host_root, pool, args, words):
    before = datasets(pool), tree_state(host_root)
    result = bounded(play, img(host_root, server, **args))
    clean(result)
    assert result['failed'] and words in result['msg'], result['msg']
    assert (datasets(pool), tree_state(host_root)) == before
    assert server.requests() == []


def test_keep_given_as_one_string_keeps_that_image(play, images, server, host_root, pool):
    """`keep: name` (a string, not a list) still keeps: Ansible makes it a one-item list."""
    manifest = images('attack-keep')
    try:
        assert not bounded(play, img(host_root, server, uuid=manifest['uuid']))['failed']
        task = img(host_root, prune_unused=True, keep=manifest['name'])
        for check in (True, False):
            result = bounded(play, task, check=check)
            clean(result)
            assert not result['failed'] and manifest['uuid'] not in result['removed'], result
        assert '%s/%s' % (POOL, manifest['uuid']) in datasets(pool)
    finally:
        destroy(manifest['uuid'])


@pytest.mark.parametrize('name', ['base 64/../lts', 'x?y=z&name=evil%2e%2e'])
def test_odd_names_are_only_looked_up(play, server, host_root, pool, name):
    before = datasets(pool), tree_state(host_root)
    present = bounded(play, img(host_root, server, name=name))
    clean(present)
    assert present['failed'] and 'no active image named "%s"' % name in present['msg'], present['msg']
    absent = bounded(play, img(host_root, name=name, state='absent'))
    clean(absent)
    assert not absent['failed'] and not absent['changed'] and absent['actions'] == []
    assert (datasets(pool), tree_state(host_root)) == before
    assert file_requests(server) == []


def test_one_image_both_present_by_uuid_and_absent_by_name_is_refused(play, images, server, host_root, pool):
    """Without the refusal the first run imports it and the second one fails (or deletes it): never idempotent."""
    manifest = images('attack-both')
    task = img(host_root, server, images=[{'uuid': manifest['uuid']}, {'name': manifest['name'], 'state': 'absent'}])
    before = datasets(pool)
    for check in (True, False):
        result = bounded(play, task, check=check)
        clean(result)
        assert result['failed'] and 'declared both present and absent' in result['msg'] \
            and manifest['uuid'] in result['msg'], result
    assert datasets(pool) == before and file_requests(server) == []


# ---- odd files where a cache file belongs ----

def _make_odd(path, kind):
    if os.path.lexists(path):
        os.unlink(path)
    if kind == 'directory':
        os.mkdir(path)
    elif kind == 'fifo':
        os.mkfifo(path)
    elif kind == 'empty':
        open(path, 'w', encoding='utf-8').close()
    elif kind == 'symlink to /dev/zero':
        os.symlink('/dev/zero', path)
    elif kind == 'dangling symlink':
        os.symlink('/nonexistent/nothing', path)


def _remove_odd(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


@pytest.fixture(scope='module')
def installed(images, server, pool, tmp_path_factory):
    """One image imported on the test pool, with a host root of its own; removed after the module."""
    from tests.integration.conftest import Play
    root = str(tmp_path_factory.mktemp('attack-root'))
    manifest = images('attack-installed')
    result = bounded(Play(str(tmp_path_factory.mktemp('attack-play'))), img(root, server, uuid=manifest['uuid']))
    assert result['changed'] and not result['failed'], result
    yield manifest, root
    destroy(manifest['uuid'])


@pytest.mark.parametrize('kind', ['directory', 'fifo', 'empty', 'symlink to /dev/zero'])
def test_an_odd_file_in_the_cache_files_place_is_reported_never_hangs(play, installed, server, pool, kind):
    manifest, root = installed
    uuid = manifest['uuid']
    path = cache_file(root, uuid)
    with open(path, 'rb') as f:
        saved = f.read()
    _make_odd(path, kind)
    try:
        before = datasets(pool)
        present = bounded(play, img(root, server, uuid=uuid), timeout=60)
        clean(present)
        assert not present['failed'] and not present['changed'] and present['actions'] == [], present
        assert [w for w in warnings_of(present) if uuid in w and 'cannot be read' in w], present
        gone = bounded(play, img(root, name=manifest['name'], state='absent'), timeout=60)
        clean(gone)
        assert not gone['failed'] and gone['actions'] == [], gone     # its manifest cannot be trusted: not matched
        seen = bounded(play, facts(root), timeout=60)
        clean(seen)
        assert not seen['failed'], seen
        assert path in json.dumps(seen['ansible_facts']['smartos_images'][uuid])   # its problem, named
        assert datasets(pool) == before
    finally:
        _remove_odd(path)
        with open(path, 'wb') as f:
            f.write(saved)


def test_a_directory_in_the_cache_files_place_fails_the_import_and_leaves_nothing(
        play, images, server, host_root, pool):
    manifest = images('attack-dir-blocks')
    uuid = manifest['uuid']
    path = cache_file(host_root, uuid)
    os.makedirs(path)
    try:
        result = bounded(play, img(host_root, server, uuid=uuid))
        clean(result)
        assert result['failed'] and path in result['msg'], result
        assert not [n for n in datasets(pool) if uuid in n]
        assert os.path.isdir(path) and not [n for n in os.listdir(os.path.dirname(path)) if n.startswith('.')]
        os.rmdir(path)
        fixed = bounded(play, img(host_root, server, uuid=uuid))
        assert fixed['changed'] and not fixed['failed'] and fixed['actions'][0]['action'] == 'import', fixed
        assert not bounded(play, img(host_root, server, uuid=uuid))['changed']
    finally:
        destroy(uuid)


# ---- hostile config files, read by smartos_image itself ----

HOSTILE_CONF = [
    ('fifo', None),
    ('directory', None),
    ('a list', b'[1, 2, 3]'),
    ('sources a string', b'{"sources": "https://example.invalid"}'),
    ('source entries of every type', b'{"sources": [1, null, "x", [], {"url": 5}, {"url": "http://[::1"}]}'),
    ('huge', b'{"sources": [' + b'{"url": "http://127.0.0.1:9", "type": "imgapi"},' * 200000 + b'{}]}'),
    ('not utf-8', b'{"sources": [{"url": "http://\xff\xfe"}]}'),
    ('deeply nested', b'[' * 100000),
]


@pytest.mark.parametrize('kind, data, layout', [c + ('modern',) for c in HOSTILE_CONF] + [
    c + ('original',) for c in HOSTILE_CONF if c[0] in ('fifo', 'directory', 'source entries of every type', 'huge')],
    ids=[c[0] for c in HOSTILE_CONF] + ['original-' + k for k in ('fifo', 'directory', 'entries', 'huge')])
def test_hostile_source_config_with_smartos_image(play, host_root, pool, layout, kind, data):
    if layout == 'modern':
        path = os.path.join(host_root, 'var', 'imgadm', 'imgadm.conf')
    else:
        path = os.path.join(host_root, 'var', 'db', 'imgadm', 'sources.list')
        if data is not None and kind not in ('not utf-8', 'huge'):
            data = b'\n'.join([b'http://127.0.0.1:9', data, b'ftp://x', b'http://[::1', b'\x00\x01'])
    os.makedirs(os.path.dirname(path))
    if kind == 'fifo':
        os.mkfifo(path)
    elif kind == 'directory':
        os.mkdir(path)
    else:
        with open(path, 'wb') as f:
            f.write(data)
    before = datasets(pool), tree_state(host_root) if kind != 'fifo' else None
    result = bounded(play, img(host_root, uuid=U, layout=layout, retries=0, timeout=2), timeout=60)
    clean(result)
    assert result['failed'] and result['msg'], result
    assert (datasets(pool), tree_state(host_root) if kind != 'fifo' else None) == before


# ---- a read-only host root ----

@pytest.fixture
def read_only_root(tmp_path):
    """host_root on a read-only bind mount of a directory that already holds imgadm's files."""
    lower, upper = tmp_path / 'lower', tmp_path / 'ro'
    lower.mkdir()
    upper.mkdir()
    mounted = subprocess.run(['mount', '--bind', str(lower), str(upper)], capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip('cannot bind-mount here: %s' % mounted.stderr)
    try:
        if subprocess.run(['mount', '-o', 'remount,bind,ro', str(upper)], capture_output=True,
                          check=False).returncode != 0:
            pytest.skip('cannot make a read-only bind mount here')
        yield str(lower), str(upper)
    finally:
        subprocess.run(['umount', str(upper)], check=False)


@pytest.mark.parametrize('layout', ['modern', 'original'])
def test_a_read_only_host_root_fails_clearly_and_imports_nothing(play, images, server, pool, read_only_root, layout):
    lower, root = read_only_root
    manifest = images('attack-ro')
    uuid = manifest['uuid']
    os.makedirs(os.path.join(lower, 'var', 'imgadm' if layout == 'modern' else 'db/imgadm'))
    before = datasets(pool), tree_state(lower)
    try:
        for check in (True, False):
            result = bounded(play, img(root, server, uuid=uuid, layout=layout), check=check)
            clean(result)
            if check:
                assert result['changed'] and not result['failed'], result
            else:
                assert result['failed'] and 'Read-only file system' in result['msg'], result
        assert (datasets(pool), tree_state(lower)) == before
        source = bounded(play, {'name': 'source', 'smartos.images.smartos_image_source': dict(
            host_root=root, url=server.url + ('' if layout == 'modern' else '/datasets'), ping=False, layout=layout,
            type='imgapi' if layout == 'modern' else 'dsapi')})
        clean(source)
        assert source['failed'] and 'Read-only file system' in source['msg'], source
        assert tree_state(lower) == before[1]
    finally:
        destroy(uuid)


# ---- kill -9 during the download at 10, 50 and 95 %, then the next runs repair ----

SLOW = 6   # seconds the server spreads the image file over


@pytest.mark.parametrize('fraction, layout', [(0.1, 'modern'), (0.5, 'original'), (0.95, 'modern')])
def test_kill_during_the_download_then_the_next_run_repairs(play, images, server, host_root, pool, fraction, layout):
    manifest = images('attack-kill', random_mb=2)
    uuid = manifest['uuid']
    destroy(uuid)
    if layout == 'original':
        os.makedirs(os.path.join(host_root, 'var', 'db', 'imgadm'))
    task = img(host_root, server, uuid=uuid, layout=layout)
    server.add_fault('slow', uuid=uuid, on='file', arg=SLOW, times=1)
    argv, env, dummy = play.command(task)
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not file_requests(server) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert file_requests(server), 'the import never asked for the file'
        time.sleep(SLOW * fraction)
    finally:
        kill_tree(proc.pid)      # the module, and the `zfs receive` it feeds
        proc.wait(timeout=60)
    try:
        assert '%s/%s' % (POOL, uuid) not in datasets(pool)    # killed before the rename: not installed
        assert not os.path.exists(cache_file(host_root, uuid))
        check = bounded(play, task, check=True)
        real = bounded(play, task)
        clean(real)
        assert not real['failed'] and real['changed'], real
        assert check['actions'] == real['actions'] and check['changed'] == real['changed']
        assert check['diff'] == real['diff']
        assert [a['action'] for a in real['actions']] == ['import']
        names = datasets(pool)
        assert '%s/%s@final' % (POOL, uuid) in names and not [n for n in names if '%s-partial' % uuid in n]
        if layout == 'modern':
            with open(cache_file(host_root, uuid), encoding='utf-8') as f:
                assert json.load(f)['manifest'] == manifest
        else:
            assert os.path.exists(os.path.join(host_root, 'var', 'db', 'imgadm', '%s.json' % uuid))
        again = bounded(play, task)
        assert not again['changed'] and again['actions'] == []
    finally:
        destroy(uuid)


# ---- check mode and the real run agree, and --diff shows no secret ----

def test_check_and_real_agree_and_no_secret_in_any_output(play, images, server, host_root, pool):
    manifest = images('attack-agree')
    uuid = manifest['uuid']
    secret = 'S3cr3t-pw'
    url = server.url.replace('://', '://admin:%s@' % secret)
    task = img(host_root, images=[{'uuid': uuid}, {'name': 'attack-nothing-by-this-name', 'state': 'absent'}],
               source=[url])
    try:
        check = bounded(play, task, check=True)
        real = bounded(play, task)
        for key in ('changed', 'actions', 'imported', 'removed', 'diff'):
            assert check[key] == real[key], key
        assert real['changed'] and real['imported'] == [uuid]
        for result in (check, real):
            assert secret not in json.dumps(result)
        for dirpath, dummy, filenames in os.walk(host_root):
            for name in filenames:
                with open(os.path.join(dirpath, name), 'rb') as f:
                    assert secret.encode() not in f.read(), name
        argv, env, dummy = play.command(task)
        proc = subprocess.run(argv + ['-vvv'], env=env, capture_output=True, text=True, timeout=BOUND, check=False)
        assert proc.returncode == 0 and secret not in proc.stdout + proc.stderr
        os.unlink(cache_file(host_root, uuid))      # the record path shows its source too
        argv, env, dummy = play.command(task)
        proc = subprocess.run(argv + ['-vvv'], env=env, capture_output=True, text=True, timeout=BOUND, check=False)
        assert proc.returncode == 0 and ("'record'" in proc.stdout or '"record"' in proc.stdout)
        assert secret not in proc.stdout + proc.stderr
        with open(cache_file(host_root, uuid), 'rb') as f:
            assert secret.encode() not in f.read()
    finally:
        destroy(uuid)


# ---- the image_host role, used carelessly ----

def role(**role_vars):
    return {'name': 'role', 'ansible.builtin.include_role': {'name': 'smartos.images.image_host'}, 'vars': role_vars}


ROLE_CARELESS = [
    ('variable misspelt', dict(image_host_imagse=[{'uuid': U}]), 'unknown role variable(s) image_host_imagse'),
    ('entry key misspelt', dict(image_host_images=[{'uuid': U, 'stat': 'absent'}]), 'image_host_images.stat'),
    ('upper-case uuid', dict(image_host_images=[{'uuid': U.upper()}]), 'names no image'),
    ('upper-case keep', dict(image_host_prune_unused=True, image_host_keep=[U.upper()]), 'image_host_keep entry'),
    ('keep a dict', dict(image_host_prune_unused=True, image_host_keep=[{'uuid': U}]), 'image_host_keep entry'),
]


@pytest.mark.parametrize('role_vars, words', [c[1:] for c in ROLE_CARELESS], ids=[c[0] for c in ROLE_CARELESS])
def test_careless_role_variables_are_refused(play, server, host_root, pool, role_vars, words):
    before = datasets(pool), tree_state(host_root)
    result = bounded(play, role(image_host_pool=POOL, image_host_host_root=host_root,
                                image_host_sources=[{'url': server.url}], image_host_source_ping=False, **role_vars))
    clean(result)
    assert result['failed'] and words in json.dumps(result), result.get('msg')
    assert (datasets(pool), tree_state(host_root)) == before
    assert file_requests(server) == []


# ---- races and a kill of `zfs receive` alone ----

def _start_slow_import(play, server, host_root, uuid, seconds):
    server.add_fault('slow', uuid=uuid, on='file', arg=seconds, times=1)
    argv, env, dummy = play.command(img(host_root, server, uuid=uuid))
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not file_requests(server) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc, argv, env


def _receive_pids(pid):
    from tests.lib.procs import descendants
    found = []
    for child in descendants(pid):
        try:
            with open('/proc/%d/cmdline' % child, 'rb') as f:
                argv = f.read().split(b'\0')
        except OSError:
            continue
        if len(argv) > 1 and os.path.basename(argv[0]) == b'zfs' and argv[1] == b'receive':
            found.append(child)
    return found


def test_delete_and_prune_during_an_import_leave_it_alone(play, images, server, host_root, pool):
    manifest = images('attack-race', random_mb=2)
    uuid = manifest['uuid']
    destroy(uuid)
    proc, dummy, dummy2 = _start_slow_import(play, server, host_root, uuid, 6)
    try:
        others = [n.split('/')[1] for n in datasets(pool) if n.count('/') == 1 and '@' not in n and uuid not in n]
        for task in (img(host_root, uuid=uuid, state='absent'), img(host_root, prune_unused=True, keep=others)):
            result = bounded(play, task)
            clean(result)
            assert not result['failed'] and uuid not in json.dumps(result.get('removed')), result
        assert proc.wait(timeout=BOUND) == 0
        names = datasets(pool)
        assert '%s/%s@final' % (POOL, uuid) in names and not [n for n in names if '%s-partial' % uuid in n]
        with open(cache_file(host_root, uuid), encoding='utf-8') as f:
            assert json.load(f)['manifest'] == manifest
    finally:
        kill_tree(proc.pid)
        proc.wait(timeout=60)
        destroy(uuid)


def test_kill_of_zfs_receive_alone_fails_cleanly_then_imports(play, images, server, host_root, pool):
    manifest = images('attack-recv', random_mb=2)
    uuid = manifest['uuid']
    destroy(uuid)
    argv, env, record = play.command(img(host_root, server, uuid=uuid))
    server.add_fault('slow', uuid=uuid, on='file', arg=6, times=1)
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        killed, deadline = [], time.monotonic() + 60
        while not killed and proc.poll() is None and time.monotonic() < deadline:
            killed = _receive_pids(proc.pid)
            time.sleep(0.05)
        assert killed, 'no zfs receive seen'
        time.sleep(1)
        for pid in killed:
            os.kill(pid, 9)
        out, err = proc.communicate(timeout=BOUND)
        result = dict(play.results(record)[-1]['result'])
        clean(result)
        assert result.get('msg') and proc.returncode != 0, result
        assert not [n for n in datasets(pool) if uuid in n]
        assert not os.path.exists(cache_file(host_root, uuid))
        directory = os.path.dirname(cache_file(host_root, uuid))
        assert not [n for n in os.listdir(directory) if n.startswith('.')] if os.path.isdir(directory) else True
        assert 'zfs receive' in result['msg'] or 'receive' in result['msg'], result['msg']
        again = bounded(play, img(host_root, server, uuid=uuid))
        assert again['changed'] and not again['failed'], again
        assert not bounded(play, img(host_root, server, uuid=uuid))['changed']
    finally:
        kill_tree(proc.pid)
        proc.wait(timeout=60)
        destroy(uuid)


# ---- smartos_image_create, careless and killed ----

CREATE_SRC = POOL + '/attack-create-src'


@pytest.fixture(scope='module')
def create_source(pool):
    yield from filled_dataset(CREATE_SRC, 'made for the careless-user attack\n', 6)


def snapshots(dataset):
    return run('zfs', 'list', '-H', '-o', 'name', '-t', 'snapshot', '-r', dataset).split()


CREATE_CARELESS = [
    ('upper-case uuid', dict(uuid=U.upper()), 'uuid'),
    ('compression misspelt', dict(compression='gz'), 'gz'),
    ('key misspelt', dict(descripton='x'), 'descripton'),
    ('origin upper-case', dict(origin=U.upper()), U.upper()),
    ('name empty', dict(name=''), 'name'),
    ('requirements a list', dict(requirements=['min_platform']), 'requirements'),
]


@pytest.mark.parametrize('args, words', [c[1:] for c in CREATE_CARELESS], ids=[c[0] for c in CREATE_CARELESS])
def test_careless_create_options_leave_nothing_behind(play, create_source, tmp_path, pool, args, words):
    out = tmp_path / 'out'
    out.mkdir()
    before = datasets(pool), snapshots(create_source)
    task = create(str(out), **dict(dict(dataset=create_source, name='careless', version='1.0.0'), **args))
    result = bounded(play, task)
    clean(result)
    assert result['failed'] and words in result['msg'], result.get('msg')
    assert os.listdir(str(out)) == [] and (datasets(pool), snapshots(create_source)) == before


def test_a_name_with_dots_and_slashes_stays_in_output_dir(play, create_source, tmp_path):
    base = tmp_path / 'x'
    out = base / 'deep' / 'out'
    out.mkdir(parents=True)
    made = bounded(play, create(str(out), dataset=create_source, name='../../escape me', version='../1',
                                remove_snapshot=True, compression='none'))
    clean(made)
    if not made['failed']:
        assert {os.path.dirname(made['manifest_path']), os.path.dirname(made['file_path'])} == {str(out)}
    assert os.listdir(str(base)) == ['deep'] and os.listdir(str(base / 'deep')) == ['out']


@pytest.mark.parametrize('fraction', [0.1, 0.5, 0.95])
def test_kill_during_create_then_the_next_run_finishes_clean(play, create_source, tmp_path, pool, fraction):
    out = tmp_path / 'out'
    out.mkdir()
    task = create(str(out), dataset=create_source, name='attack-killed', version='1.0.0', remove_snapshot=True,
                  compression='xz')
    before = snapshots(create_source)
    argv, env, dummy = play.command(task)
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not os.listdir(str(out)) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        first_file = time.monotonic() - started
        # xz of 6 MiB of random data takes seconds on this machine: the fraction is of that span
        time.sleep(max(0.0, 3 * fraction - 0.2))
        finished = proc.poll() is not None
    finally:
        kill_tree(proc.pid)
        proc.wait(timeout=60)
    if finished:
        pytest.skip('the create ended before the kill (%.1fs to the first file)' % first_file)
    # A late kill can land after the module has written its manifest and removed its snapshot, while
    # ansible-playbook is still wrapping up: then the next run has nothing left to do.
    done = (out / 'attack-killed-1.0.0.imgmanifest').exists() and snapshots(create_source) == before
    check = bounded(play, task, check=True)
    real = bounded(play, task)
    clean(real)
    assert not real['failed'] and real['changed'] == (not done), (done, real)
    assert check['actions'] == real['actions']
    names = sorted(os.listdir(str(out)))
    assert names == sorted(os.path.basename(real[k]) for k in ('manifest_path', 'file_path')), names
    assert snapshots(create_source) == before
    again = bounded(play, task)
    assert not again['changed'] and not again['failed'], again


# ---- smartos_image_source and smartos_image_facts: odd files and careless options ----

def test_original_layout_imgcache_and_manifest_fifos(play, installed, images_dir, server, pool):
    """update_cache with a FIFO in imgcache.json's place, and facts and smartos_image with a FIFO in
    /var/db/imgadm/<uuid>.json's place: bounded, clear, the FIFO replaced only by the write it stands in for."""
    manifest, dummy = installed
    root = os.path.join(os.path.dirname(installed[1]), 'attack-original-root')
    db = os.path.join(root, 'var', 'db', 'imgadm')
    os.makedirs(db)
    try:
        with open(os.path.join(db, 'sources.list'), 'w', encoding='utf-8') as f:
            f.write(server.url + '/datasets\n')
        os.mkfifo(os.path.join(db, 'imgcache.json'))
        os.mkfifo(os.path.join(db, '%s.json' % manifest['uuid']))
        result = bounded(play, {'name': 'source', 'smartos.images.smartos_image_source': dict(
            host_root=root, update_cache=True, layout='original')}, timeout=60)
        clean(result)
        assert os.path.isfile(os.path.join(db, 'imgcache.json')) or result['failed'], result
        for task in (facts(root, layout='original'), img(root, uuid=manifest['uuid'], layout='original'),
                     img(root, name=manifest['name'], state='absent', layout='original')):
            seen = bounded(play, task, timeout=60)
            clean(seen)
            assert not seen['failed'] and not seen.get('changed'), seen
        assert '%s/%s' % (POOL, manifest['uuid']) in datasets(pool)
    finally:
        shutil.rmtree(root)


FACTS_CARELESS = [
    ('subset misspelt', dict(gather_subset=['availble']), 'availble'),
    ('pools a string with a space', dict(pools='zones two'), 'pool'),
    ('filters a list', dict(filters=['os']), 'filters'),
]


@pytest.mark.parametrize('args, words', [c[1:] for c in FACTS_CARELESS], ids=[c[0] for c in FACTS_CARELESS])
def test_careless_facts_options(play, host_root, args, words):
    task = {'name': 'facts', 'smartos.images.smartos_image_facts': dict(host_root=host_root, **args)}
    result = bounded(play, task)
    clean(result)
    assert result['failed'] and words in result['msg'], result.get('msg')
    assert tree_state(host_root) == {}


@pytest.mark.parametrize('state', ['present', 'absent'])
def test_a_version_yaml_made_a_number_is_refused(play, server, host_root, pool, state):
    """`version: 1.10` in YAML is the float 1.1: taken as "1.1" it would import or delete another version."""
    before = datasets(pool), tree_state(host_root)
    for task in (img(host_root, server, name='attack-no-such', version=1.10, state=state),
                 img(host_root, server, images=[{'name': 'attack-no-such', 'version': 1.10, 'state': state}])):
        result = bounded(play, task)
        clean(result)
        assert result['failed'] and 'version 1.1 is a number' in result['msg'], result['msg']
    assert (datasets(pool), tree_state(host_root)) == before and server.requests() == []
    role_result = bounded(play, role(image_host_pool=POOL, image_host_host_root=host_root,
                                     image_host_images=[{'name': 'attack-no-such', 'version': 1.10}]))
    assert role_result['failed'] and 'quoted string' in json.dumps(role_result)
