"""Issue 10 (safety), smartos_image's part, through real ansible-playbook runs on the real zfs-fuse pool: never the
wrong image, repair what a kill leaves, the import lock's timeout, validation first, honest results."""
from __future__ import annotations

import copy
import fcntl
import json
import os
import re
import subprocess
import time

import pytest

from tests.integration.conftest import POOL, tree_state
from tests.lib.imagebuilder import build_chain
from tests.lib.imgserver_ctl import publish
from tests.lib.procs import kill_tree
from tests.lib.zfspool import retry_busy, run

pytestmark = pytest.mark.usefixtures('collection_built')


def img(host_root, server=None, **args):
    """A smartos_image task on the test pool."""
    if server is not None:
        args['source'] = [server.url]
    return {'name': 'image', 'smartos.images.smartos_image': dict(pool=POOL, host_root=host_root, **args)}


def cache_file(host_root, uuid):
    return os.path.join(host_root, 'var', 'imgadm', 'images', '%s-%s.json' % (POOL, uuid))


def lock_file(host_root, uuid):
    return os.path.join(host_root, 'var', 'run', 'img.%s.import.lock' % uuid)


def settled_rename(pool, dataset, seconds=10):
    """Whether the killed run's rename landed. zfs-fuse may finish a rename whose `zfs` client was killed a moment
    later, so the answer counts only once two looks a second apart agree (bounded)."""
    seen = dataset in datasets(pool)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(1)
        now = dataset in datasets(pool)
        if now == seen:
            return now
        seen = now
    return seen


def datasets(pool):
    return {line.split('\t')[0] for line in pool.datasets()}


def destroy(*uuids):
    """Remove these images from the test pool where they are."""
    names = run('zfs', 'list', '-H', '-o', 'name', '-r', POOL).split()
    for uuid in uuids:
        if '%s/%s' % (POOL, uuid) in names:
            retry_busy('zfs', 'destroy', '-r', '%s/%s' % (POOL, uuid))


def warnings_of(result):
    return [w if isinstance(w, str) else w['event']['msg'] for w in result.get('warnings') or []]


def held_lock(path):
    """Hold imgadm's import lock from this process (the module runs in another one)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.lockf(fd, fcntl.LOCK_EX)
    return fd


@pytest.fixture
def two(play, images, server, host_root, pool):
    """Images M and S, both imported on the test pool with their cache files; removed after the test."""
    m, s = images('safety-m'), images('safety-s')
    result = play(img(host_root, server, images=[{'uuid': m['uuid']}, {'uuid': s['uuid']}]))
    assert result['changed'] and not result['failed'], result
    yield m, s
    destroy(m['uuid'], s['uuid'])


# ---- 2. never the wrong image ----

def test_a_cache_file_holding_another_image_is_never_deleted_by_that_name(play, two, host_root, pool, server):
    m, s = two
    with open(cache_file(host_root, s['uuid']), encoding='utf-8') as f:
        s_info = f.read()
    with open(cache_file(host_root, m['uuid']), 'w', encoding='utf-8') as f:
        f.write(s_info)     # M's cache file now holds S's manifest
    task = img(host_root, name=s['name'], state='absent')
    check = play(task, check=True)
    real = play(task)
    for result in (check, real):
        assert not result['failed'], result
        assert result['actions'] == [{'action': 'delete', 'uuid': s['uuid'], 'dataset': '%s/%s' % (POOL, s['uuid'])}]
        assert [w for w in warnings_of(result) if m['uuid'] in w and 'another image' in w]
    assert check['diff'] == real['diff']
    assert real['diff']['before']['images'][m['uuid']] == '-'
    names = datasets(pool)
    assert '%s/%s' % (POOL, m['uuid']) in names and '%s/%s' % (POOL, s['uuid']) not in names
    # and M is not taken for S when S is wanted present again: S is imported
    again = play(img(host_root, server, name=s['name'], version=s['version']))
    assert again['changed'] and again['uuid'] == s['uuid']


def test_malformed_cache_fields_never_crash_and_never_match(play, two, host_root, pool):
    m, s = two
    with open(cache_file(host_root, m['uuid']), encoding='utf-8') as f:
        info = json.load(f)
    info['manifest'].update(name=['x'], version=7, published_at={'y': 1})
    with open(cache_file(host_root, m['uuid']), 'w', encoding='utf-8') as f:
        json.dump(info, f)
    with open(cache_file(host_root, s['uuid']), 'w', encoding='utf-8') as f:
        f.write('[' * 100000)
    for task in (img(host_root, name=m['name'], state='absent'), img(host_root, prune_unused=True, keep=[m['name']])):
        result = play(task, check=True)
        assert not result['failed'], result
        assert result['changed'] is False and result['actions'] == []
        assert 'Traceback' not in result['_stdout'] + result['_stderr']
        texts = warnings_of(result)
        assert [w for w in texts if m['uuid'] in w and 'the manifest\'s "name" is a JSON array, not a string' in w]
        assert [w for w in texts if s['uuid'] in w and 'cannot be read' in w]


# ---- 3. the crash window between the rename and the cache commit ----

def remove_cache_file(host_root, uuid):
    """Remove an image's cache file as a crash before its commit would leave it; its path and former text."""
    path = cache_file(host_root, uuid)
    with open(path, encoding='utf-8') as f:
        expected = f.read()
    os.unlink(path)
    return path, expected


def test_an_image_without_its_cache_file_is_recorded(play, two, host_root, server):
    """What a kill between `zfs rename` and the cache commit leaves: <pool>/<uuid>@final and no cache file."""
    m, dummy = two
    path, expected = remove_cache_file(host_root, m['uuid'])
    task = img(host_root, server, uuid=m['uuid'])
    check = play(task, check=True)
    assert not os.path.exists(path)
    real = play(task)
    again = play(task)
    record = {'action': 'record', 'uuid': m['uuid'], 'dataset': '%s/%s' % (POOL, m['uuid']), 'source': server.url,
              'reason': 'installed without a cached manifest (an import was interrupted before recording it)'}
    assert check['changed'] and real['changed'] and not again['changed']
    assert check['actions'] == real['actions'] == [record]
    assert check['diff'] == real['diff']
    assert real['diff']['after']['images'][m['uuid']] == '%s@%s' % (m['name'], m['version'])
    assert real['image'] == m and real['downloaded_bytes'] == 0
    with open(path, encoding='utf-8') as f:
        assert f.read() == expected


def test_concurrent_runs_record_a_missing_cache_file_once_and_whole(play, two, host_root, server):
    m, dummy = two
    path, expected = remove_cache_file(host_root, m['uuid'])
    procs = []
    for dummy2 in range(3):
        argv, env, record = play.command(img(host_root, server, uuid=m['uuid']))
        procs.append((subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), record))
    results = []
    for proc, record in procs:
        assert proc.wait(timeout=300) == 0
        results.append(play.results(record)[-1]['result'])
    assert all(not r.get('failed') for r in results)
    with open(path, encoding='utf-8') as f:
        assert f.read() == expected
    assert not [n for n in os.listdir(os.path.dirname(path)) if n.startswith('.')]


def test_an_image_without_its_cache_file_and_no_source_warns(play, two, host_root):
    m, dummy = two
    os.unlink(cache_file(host_root, m['uuid']))
    result = play(img(host_root, uuid=m['uuid'], source=['http://127.0.0.1:9'], retries=0))
    assert not result['failed'] and not result['changed']
    assert [w for w in warnings_of(result) if 'has no cached manifest, and it cannot be recorded' in w]


def stale_temp(host_root, uuid, suffix='k3j_9x2q', age=600):
    path = os.path.join(os.path.dirname(cache_file(host_root, uuid)), '.%s-%s.json.%s' % (POOL, uuid, suffix))
    with open(path, 'w', encoding='utf-8') as f:
        f.write('{"manifest": {"uuid": "%s", "na' % uuid)    # cut off by the kill
    os.utime(path, (time.time() - age,) * 2)
    return path


def test_temporary_cache_files_a_kill_left_are_cleaned_up_unless_an_import_holds_the_lock(play, two, host_root):
    m, s = two
    stale_m, stale_s = stale_temp(host_root, m['uuid']), stale_temp(host_root, s['uuid'])
    fresh = stale_temp(host_root, m['uuid'], suffix='abcdefgh', age=0)
    fd = held_lock(lock_file(host_root, s['uuid']))     # an import of S is running: its temp file is its own
    try:
        task = img(host_root, uuid=m['uuid'])
        check = play(task, check=True)
        assert os.path.exists(stale_m)
        real = play(task)
    finally:
        os.close(fd)
    cleanup = {'action': 'cleanup', 'uuid': m['uuid'], 'path': stale_m,
               'reason': 'temporary cache file left by an interrupted run'}
    assert check['changed'] and real['changed']
    assert check['actions'] == real['actions'] == [cleanup]
    assert not os.path.exists(stale_m) and os.path.exists(stale_s) and os.path.exists(fresh)
    later = play(img(host_root, uuid=m['uuid']))          # the lock is free now
    assert [a['path'] for a in later['actions']] == [stale_s]
    assert not os.path.exists(stale_s) and os.path.exists(fresh)
    os.unlink(fresh)


def test_kill_at_the_cache_commit_then_the_next_run_repairs(play, images, server, host_root, pool):
    """A real kill -9 while the cache file is prepared and the dataset is being renamed, before the commit."""
    manifest = images('safety-kill')
    uuid = manifest['uuid']
    directory = os.path.dirname(cache_file(host_root, uuid))
    temp = re.compile(r'\.%s-%s\.json\.[a-z0-9_]{8}\Z' % (POOL, uuid))
    argv, env, dummy = play.command(img(host_root, server, uuid=uuid))
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    caught, deadline = [], time.monotonic() + 120
    try:
        while not caught and proc.poll() is None and time.monotonic() < deadline:
            try:
                caught = [n for n in os.listdir(directory) if temp.match(n)]
            except FileNotFoundError:
                pass
            if caught:
                kill_tree(proc.pid)     # the module, and the `zfs rename` it may be running
            else:
                time.sleep(0.001)
    finally:
        kill_tree(proc.pid)
        proc.wait(timeout=60)
    try:
        if not caught:
            pytest.skip('the import committed before the kill could land (a 1 ms poll missed the window)')
        assert not os.path.exists(cache_file(host_root, uuid))
        left = [os.path.join(directory, n) for n in os.listdir(directory) if temp.match(n)]
        assert left
        for path in left:
            os.utime(path, (time.time() - 600,) * 2)      # as the next run an hour later finds it
        renamed = settled_rename(pool, '%s/%s' % (POOL, uuid))
        task = img(host_root, server, uuid=uuid)
        check = play(task, check=True)
        real = play(task)
        assert not real['failed'], real
        assert check['actions'] == real['actions'] and check['changed'] and real['changed']
        kinds = [a['action'] for a in real['actions']]
        assert kinds == (['record'] if renamed else ['import']) + ['cleanup'] * len(left)
        with open(cache_file(host_root, uuid), encoding='utf-8') as f:
            assert json.load(f)['manifest'] == manifest
        assert not [n for n in os.listdir(directory) if n.startswith('.')]
        assert not [n for n in datasets(pool) if '%s-partial' % uuid in n]
        assert not play(task)['changed']
    finally:
        destroy(uuid)
        for name in os.listdir(directory) if os.path.isdir(directory) else []:
            if uuid in name:
                os.unlink(os.path.join(directory, name))


# ---- 4. the wait for the import lock ----

def test_lock_timeout_bounds_the_wait_and_names_the_lock(play, images, server, host_root, pool):
    manifest = images('safety-lock')
    path = lock_file(host_root, manifest['uuid'])
    fd = held_lock(path)
    try:
        started = time.monotonic()
        result = play(img(host_root, server, uuid=manifest['uuid'], lock_timeout=2))
        took = time.monotonic() - started
    finally:
        os.close(fd)
    assert result['failed']
    assert result['msg'] == 'timed out after 2s waiting for the import lock %s held by another process' % path
    assert took < 60
    assert '%s/%s' % (POOL, manifest['uuid']) not in datasets(pool)
    assert not [n for n in datasets(pool) if manifest['uuid'] in n]


# ---- 5. validate everything before touching the host ----

@pytest.mark.parametrize('args, words', [
    (dict(images=[{'uuid': 'U', 'stat': 'absent'}]), 'stat'),
    (dict(images=[{'uuid': 'U', 'state': 'absnt'}]), 'absnt'),
    (dict(), 'one of the following is required'),
    (dict(prune_unused=False, update_manifests=False), 'nothing to do'),
])
def test_bad_tasks_fail_before_touching_the_host(play, images, server, host_root, pool, args, words):
    manifest = images('safety-validate')
    args = copy.deepcopy(args)
    for entry in args.get('images', []):
        entry['uuid'] = manifest['uuid']
    before = datasets(pool), tree_state(host_root)
    result = play(img(host_root, server, **args))
    assert result['failed'] and words in result['msg']
    assert (datasets(pool), tree_state(host_root)) == before
    assert not [r for r in server.requests() if r['path'].endswith('/file')]


# ---- 9. honest results ----

@pytest.fixture(scope='module')
def bad_chain(pool, images_dir, tmp_path_factory):
    """A base <- mid <- top chain whose top is served with a file that does not match its manifest."""
    built = build_chain(pool.name, str(tmp_path_factory.mktemp('safety-chain')), ['safe-base', 'safe-mid', 'safe-top'])
    (base, base_path), (mid, mid_path), (top, top_path) = built
    publish(images_dir, base, base_path)
    publish(images_dir, mid, mid_path)
    publish(images_dir, top, base_path)      # top's manifest, base's file: the checksum fails
    return base, mid, top


def test_a_chain_that_fails_part_way_says_what_it_imported(play, bad_chain, server, host_root, pool):
    base, mid, top = bad_chain
    try:
        result = play(img(host_root, server, uuid=top['uuid']))
        assert result['failed'] and result['changed'] is True
        assert result['imported'] == [base['uuid'], mid['uuid']]
        assert 'after importing %s, %s' % (base['uuid'], mid['uuid']) in result['msg']
        names = datasets(pool)
        assert {'%s/%s' % (POOL, base['uuid']), '%s/%s' % (POOL, mid['uuid'])} <= names
        assert not [n for n in names if top['uuid'] in n]
    finally:
        destroy(mid['uuid'], base['uuid'])


def test_an_origin_cycle_is_reported_as_a_cycle(play, images, images_dir, server, host_root):
    a = copy.deepcopy(images('safety-cycle-a'))
    b = copy.deepcopy(images('safety-cycle-b'))
    a['origin'], b['origin'] = b['uuid'], a['uuid']
    publish(images_dir, a, images.path('safety-cycle-a'))
    publish(images_dir, b, images.path('safety-cycle-b'))
    for check in (True, False):
        result = play(img(host_root, server, uuid=a['uuid']), check=check)
        assert result['failed']
        assert result['msg'] == 'the origin chain of image %s is a cycle: %s -> %s -> %s' % (
            a['uuid'], a['uuid'], b['uuid'], a['uuid'])


def test_a_partial_dataset_we_did_not_make_is_refused(play, images, server, host_root, pool):
    manifest = images('safety-partial')
    partial = '%s/%s-partial' % (POOL, manifest['uuid'])
    run('zfs', 'create', partial)
    run('zfs', 'create', partial + '/data')
    try:
        for check in (True, False):
            result = play(img(host_root, server, uuid=manifest['uuid']), check=check)
            assert result['failed']
            assert result['msg'].startswith('dataset %s is in the way of the import of image %s' % (partial, manifest['uuid']))
            assert 'child dataset(s) %s/data' % partial in result['msg']
            assert {partial, partial + '/data'} <= datasets(pool)
    finally:
        retry_busy('zfs', 'destroy', '-r', partial)
    # a -partial as a killed run leaves it (one snapshot) is replaced
    run('zfs', 'create', partial)
    run('zfs', 'snapshot', partial + '@final')
    try:
        result = play(img(host_root, server, uuid=manifest['uuid']))
        assert result['changed'] and not result['failed'], result
        assert partial not in datasets(pool)
    finally:
        destroy(manifest['uuid'])
