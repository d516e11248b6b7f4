"""smartos_image against a real zfs-fuse pool and the real image server, through ansible-playbook."""
from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from tests.integration.conftest import POOL, four_runs, tree_state
from tests.lib.procs import kill_tree
from tests.lib.zfspool import retry_busy, run

pytestmark = pytest.mark.usefixtures('collection_built')


def task(uuid, host_root, source, state='present', **options):
    """A smartos_image task on the test pool."""
    args = dict(uuid=uuid, state=state, pool=POOL, host_root=host_root)
    args.update(options)
    if source is not None:
        args['source'] = source if isinstance(source, list) else [source]
    return {'name': 'image', 'smartos.images.smartos_image': args, 'register': 'result'}


def cache_file(host_root, uuid):
    return os.path.join(host_root, 'var', 'imgadm', 'images', '%s-%s.json' % (POOL, uuid))


def destroy(uuid):
    retry_busy('zfs', 'destroy', '-r', '%s/%s' % (POOL, uuid))


def file_requests(server, uuid):
    return [r for r in server.requests() if r['path'] == '/images/%s/file' % uuid]


def test_import_four_runs(play, images, server, host_root, pool):
    manifest = images('four')
    uuid = manifest['uuid']
    check, real, check2, real2 = four_runs(play, task(uuid, host_root, server.url))

    assert check['changed'] and real['changed']
    assert check['diff'] == real['diff']
    assert real['diff']['before']['images'] == {}
    assert real['diff']['after']['images'] == {uuid: '%s@%s' % (manifest['name'], manifest['version'])}
    assert check['actions'] == real['actions'] == [{'action': 'import', 'uuid': uuid, 'dataset': '%s/%s' % (POOL, uuid)}]
    assert check['downloaded_bytes'] == 0
    assert real['downloaded_bytes'] == manifest['files'][0]['size']
    assert real['image'] == manifest and real['dataset'] == '%s/%s' % (POOL, uuid)
    assert not check2['changed'] and not real2['changed'] and real2['actions'] == []
    # the image file was downloaded exactly once: never in check mode, never when installed
    assert len(file_requests(server, uuid)) == 1
    assert all(r['accept_version'] == '~2' for r in server.requests())

    names = [line.split('\t')[0] for line in pool.datasets()]
    assert '%s/%s' % (POOL, uuid) in names and '%s/%s@final' % (POOL, uuid) in names
    assert not [n for n in names if 'partial' in n or n.startswith('%s/%s@' % (POOL, uuid)) and not n.endswith('@final')]
    with open(cache_file(host_root, uuid), encoding='utf-8') as f:
        text = f.read()
    assert text == json.dumps({'manifest': manifest, 'zpool': POOL, 'source': server.url}, indent=2) + '\n'
    destroy(uuid)


def test_received_data_is_the_image(play, images, server, host_root):
    """The dataset holds exactly the files the image was made from (read through a clone)."""
    manifest = images('content', compression='xz', files={'etc/motd': 'hello from xz\n', 'a/b/c.txt': 'deep\n'})
    uuid = manifest['uuid']
    assert play(task(uuid, host_root, server.url))['changed']
    clone = '%s/check-%s' % (POOL, uuid[:8])
    run('zfs', 'clone', '%s/%s@final' % (POOL, uuid), clone)
    try:
        mountpoint = run('zfs', 'get', '-H', '-o', 'value', 'mountpoint', clone).strip()
        with open(os.path.join(mountpoint, 'etc', 'motd'), encoding='utf-8') as f:
            assert f.read() == 'hello from xz\n'
        with open(os.path.join(mountpoint, 'a', 'b', 'c.txt'), encoding='utf-8') as f:
            assert f.read() == 'deep\n'
    finally:
        retry_busy('zfs', 'destroy', clone)
    destroy(uuid)


@pytest.mark.parametrize('compression', ['bzip2', 'none'])
def test_other_compressions(play, images, server, host_root, compression):
    manifest = images('comp-' + compression, compression=compression)
    result = play(task(manifest['uuid'], host_root, server.url))
    assert result['changed'] and result['downloaded_bytes'] == manifest['files'][0]['size']
    destroy(manifest['uuid'])


def test_delete_four_runs(play, images, server, host_root, pool):
    manifest = images('delete')
    uuid = manifest['uuid']
    assert play(task(uuid, host_root, server.url))['changed']
    label = '%s@%s' % (manifest['name'], manifest['version'])
    check, real, check2, real2 = four_runs(play, task(uuid, host_root, None, state='absent'))
    assert check['changed'] and real['changed']
    assert check['diff'] == real['diff'] == {'before': {'images': {uuid: label}}, 'after': {'images': {}}}
    assert not check2['changed'] and not real2['changed']
    assert not [line for line in pool.datasets() if uuid in line]
    assert not os.path.exists(cache_file(host_root, uuid))


def test_delete_refused_while_a_clone_exists(play, images, server, host_root, pool):
    manifest = images('inuse')
    uuid = manifest['uuid']
    play(task(uuid, host_root, server.url))
    vm = '%s/%s' % (POOL, '0badc0de-0000-4000-8000-00000000f00d')
    run('zfs', 'clone', '%s/%s@final' % (POOL, uuid), vm)
    before = pool.datasets()
    for check in (True, False):
        result = play(task(uuid, host_root, None, state='absent'), check=check)
        assert result['failed'] and vm in result['msg'] and 'dependent clones' in result['msg']
        assert result['clones'] == [vm]
    assert pool.datasets() == before and os.path.exists(cache_file(host_root, uuid))
    retry_busy('zfs', 'destroy', vm)
    assert play(task(uuid, host_root, None, state='absent'))['changed']


FAULTS = [
    # kind, fault options, words the error must contain
    ('wrong_bytes', {}, 'checksum'),
    ('short_body', {}, 'broke off'),
    ('drop', {}, 'broke off'),
    ('wrong_size', {}, 'Content-Length'),
    ('no_content_length', {}, 'Content-Length'),
    ('status', {'arg': 500, 'on': 'file'}, 'HTTP 500'),
    ('status', {'arg': 404, 'on': 'file'}, 'HTTP 404'),
    ('status', {'arg': 503, 'on': 'manifest'}, 'HTTP 503'),
    ('bad_json', {}, 'invalid JSON'),
    ('slow', {'arg': 4, 'on': 'file'}, 'timed out'),
]


@pytest.mark.parametrize('kind,options,words', FAULTS, ids=['%s-%s' % (f[0], f[1].get('arg', '')) for f in FAULTS])
def test_fault_leaves_host_as_before(play, images, server, host_root, pool, kind, options, words):
    manifest = images('faults')
    uuid = manifest['uuid']
    os.makedirs(os.path.join(host_root, 'var', 'imgadm', 'images'))
    with open(os.path.join(host_root, 'var', 'imgadm', 'imgadm.conf'), 'w', encoding='utf-8') as f:
        f.write('{"upgradedToVer": "3.0.0"}')
    datasets, files = pool.datasets(), tree_state(host_root)
    server.add_fault(kind, uuid=uuid, **options)
    result = play(task(uuid, host_root, server.url, retries=1, timeout=2))
    assert result.get('failed'), result
    assert words in result['msg'], result['msg']
    assert uuid in result['msg']
    assert pool.datasets() == datasets
    after = tree_state(host_root)
    after.pop('var/run/img.%s.import.lock' % uuid, None)  # imgadm never removes its lock files either
    after.pop('var/run/', None)
    assert after == files


@pytest.mark.parametrize('kind,options', [('drop', {'arg': 300000}), ('status', {'arg': 503, 'on': 'file'}),
                                          ('short_body', {'arg': 1000})])
def test_transient_fault_is_retried(play, images, server, host_root, kind, options):
    manifest = images('transient')
    uuid = manifest['uuid']
    server.add_fault(kind, uuid=uuid, times=1, **options)
    result = play(task(uuid, host_root, server.url, retries=2))
    assert result['changed'], result.get('msg')
    assert result['downloaded_bytes'] == manifest['files'][0]['size']
    ranges = [r['headers'].get('range') for r in file_requests(server, uuid)]
    assert len(ranges) == 2
    destroy(uuid)


def test_concurrent_imports_one_changes(play, images, server, host_root):
    manifest = images('concurrent', random_mb=2)
    uuid = manifest['uuid']
    server.add_fault('slow', uuid=uuid, on='file', arg=2, times=1)
    procs = []
    for dummy in range(2):
        argv, env, record = play.command(task(uuid, host_root, server.url))
        procs.append((subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), record))
    results = []
    for proc, record in procs:
        assert proc.wait(timeout=300) == 0
        results.append(play.results(record)[-1]['result'])
    assert sorted(r['changed'] for r in results) == [False, True]
    assert len(file_requests(server, uuid)) == 1
    destroy(uuid)


def test_partial_from_a_killed_run_is_cleaned_up(play, images, server, host_root, pool):
    manifest = images('killed', random_mb=3)
    uuid = manifest['uuid']
    partial = '%s/%s-partial' % (POOL, uuid)
    server.add_fault('slow', uuid=uuid, on='file', arg=20, times=1)
    argv, env, dummy = play.command(task(uuid, host_root, server.url))
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(partial in line for line in pool.datasets()):
        time.sleep(0.2)
    kill_tree(proc.pid)  # ansible's worker runs the module in a session of its own
    proc.wait()
    if not any(partial in line for line in pool.datasets()):
        run('zfs', 'create', partial)  # zfs-fuse had not created it yet: leave one as a crash would
    result = play(task(uuid, host_root, server.url))
    assert result['changed']
    names = [line.split('\t')[0] for line in pool.datasets()]
    assert partial not in names and '%s/%s' % (POOL, uuid) in names
    destroy(uuid)


BAD_INPUT = [
    ({'uuid': 'NOT-A-UUID'}, 'is not a lower-case UUID'),
    ({'uuid': '2F1DC911-6401-4FA4-8E9D-67EA2E39C271'}, 'is not a lower-case UUID'),
    ({'pool': '1bad'}, 'not a valid ZFS pool name'),
    ({'source': ['ftp://127.0.0.1/images']}, 'is not an http:// or https:// URL'),
    ({'source': []}, 'no image source'),
    ({'timeout': 0}, 'timeout must be a positive'),
]


@pytest.mark.parametrize('options,words', BAD_INPUT, ids=[w for dummy, w in BAD_INPUT])
def test_bad_input_fails_before_anything_runs(play, server, host_root, pool, options, words):
    options = dict(options)
    uuid = options.pop('uuid', '11111111-2222-4333-8444-555555555555')
    source = options.pop('source', [server.url])
    datasets = pool.datasets()
    result = play(task(uuid, host_root, source, **options))
    assert result['failed'] and words in result['msg'], result['msg']
    assert pool.datasets() == datasets and tree_state(host_root) == {}
    assert not [r for r in server.requests() if '/file' in r['path']]


def test_unknown_image_names_every_source(play, server, tls_server, host_root):
    uuid = '11111111-2222-4333-8444-555555555555'
    secret_source = server.url.replace('http://', 'http://operator:s3cret@')
    dead = 'http://127.0.0.1:9'
    result = play(task(uuid, host_root, [secret_source, dead], retries=0))
    assert result['failed']
    assert 'not found' in result['msg'] and '127.0.0.1:9' in result['msg']
    assert 's3cret' not in json.dumps(result)
    assert result['sources'] == [secret_source.replace('operator:s3cret', '***'), dead]


def test_inactive_and_docker_images_are_refused(play, images, server, host_root, pool):
    manifest = dict(images('inactive'), state='disabled', disabled=True)
    images.republish(manifest, 'inactive')
    result = play(task(manifest['uuid'], host_root, server.url))
    # imgadm's words for an image that is not active
    assert result['failed'] and 'an active image "%s" was not found' % manifest['uuid'] in result['msg']
    assert 'state "disabled"' in result['msg']
    docker = dict(images('docker'), type='docker')
    images.republish(docker, 'docker')
    result = play(task(docker['uuid'], host_root, server.url))
    assert result['failed'] and 'docker' in result['msg'] and 'not supported' in result['msg']
    assert not [line for line in pool.datasets() if manifest['uuid'] in line or docker['uuid'] in line]


def test_falls_back_to_the_next_source(play, images, server, tls_server, host_root):
    manifest = images('fallback')
    uuid = manifest['uuid']
    server.add_fault('status', uuid=uuid, on='manifest', arg=500)
    sources = ['http://127.0.0.1:9', server.url, tls_server.url]
    result = play(task(uuid, host_root, sources, retries=0, validate_certs=False))
    assert result['changed'] and result['source'] == tls_server.url
    destroy(uuid)


def test_tls_certificates(play, images, tls_server, tls, host_root):
    manifest = images('tls')
    uuid = manifest['uuid']
    refused = play(task(uuid, host_root, tls_server.url, retries=0))
    assert refused['failed'] and 'certificate' in refused['msg'] and 'ca_path' in refused['msg']
    checked = play(task(uuid, host_root, tls_server.url, ca_path=tls['ca']), check=True)
    assert checked['changed'] and not checked.get('failed')
    unchecked = play(task(uuid, host_root, tls_server.url, validate_certs=False))
    assert unchecked['changed'] and unchecked['downloaded_bytes'] == manifest['files'][0]['size']
    destroy(uuid)


def test_real_host_paths(play, images, server):
    """With the default host_root the cache and lock live where imgadm keeps them."""
    manifest = images('realpaths')
    uuid = manifest['uuid']
    cache = '/var/imgadm/images/%s-%s.json' % (POOL, uuid)
    try:
        result = play(task(uuid, '/', server.url))
        assert result['changed'] and os.path.exists(cache)
        assert os.path.exists('/var/run/img.%s.import.lock' % uuid)
        assert play(task(uuid, '/', None, state='absent'))['changed']
        assert not os.path.exists(cache)
    finally:
        if os.path.exists(cache):
            os.unlink(cache)
