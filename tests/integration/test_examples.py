"""Every module's EXAMPLES, run as written by real ansible-playbook against the real pool and servers; and
playbooks/mirror.yml, run as its header tells, with real nginx serving the mirror.

module_defaults point the examples at the test pool and a scratch host root, and turn pings off
(one example names the public image server, which this network cannot reach); nothing else changes.
"""
from __future__ import annotations

import ast
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest
import yaml

from tests.integration.conftest import POOL, REPO, WORK, file_pool
from tests.lib.imagebuilder import build_image
from tests.integration.test_fleet import local_host, run_playbook
from tests.lib.imgserver_ctl import ImageServer, publish
from tests.lib.nginx import Nginx, free_port

EXAMPLE_POOL = POOL + 'ex'  # the examples prune unused images: they get a pool of their own

pytestmark = pytest.mark.usefixtures('collection_built')

EXAMPLE_UUID = '2f1dc911-6401-4fa4-8e9d-67ea2e39c271'


def examples(module):
    """The EXAMPLES tasks of a module file."""
    with open(os.path.join(REPO, 'plugins', 'modules', module + '.py'), encoding='utf-8') as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == 'EXAMPLES':
            return yaml.safe_load(node.value.value)
    raise AssertionError('%s has no EXAMPLES' % module)


@pytest.fixture(scope='module')
def example_pool(zfs_daemon):
    yield from file_pool(EXAMPLE_POOL, '1G')


@pytest.fixture(scope='module')
def example_ports():
    """The examples name fixed ports (8080, 8081, 8443): test sessions side by side (make integration
    INTEGRATION_JOBS=2) take turns at this module instead of failing on a port in use. Bounded wait."""
    os.makedirs(WORK, exist_ok=True)
    with open(os.path.join(WORK, 'example-ports.lock'), 'w', encoding='utf-8') as lock:
        deadline = time.monotonic() + 1200
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail('another test session has held the example ports (8080, 8081, 8443) for 20 minutes')
                time.sleep(1)
        yield
        fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope='module')
def example_servers(example_ports, example_pool, tls, tmp_path_factory):
    """Servers on the ports the examples name, serving an image with the examples' UUID."""
    served = str(tmp_path_factory.mktemp('example-images'))
    manifest, path = build_image(example_pool.name, str(tmp_path_factory.mktemp('example-build')), name='base-64-lts',
                                 version='24.4.1', image_uuid=EXAMPLE_UUID, compression='gzip')
    v1 = {'uuid': EXAMPLE_UUID, 'name': 'base-64-lts', 'version': '24.4.1', 'description': 'example',
          'creator_uuid': '930896af-bf8c-48d4-885c-6573a94b1853', 'creator_name': 'tests', 'os': 'smartos',
          'type': 'zone-dataset', 'urn': 'smartos:tests:base-64-lts:24.4.1', 'published_at': '2024-01-01T00:00Z',
          'files': [{'path': 'base.zfs.gz', 'sha1': manifest['files'][0]['sha1'], 'size': manifest['files'][0]['size']}]}
    publish(served, manifest, path, dsmanifest=v1)
    servers = [ImageServer(served, port=8080).start(), ImageServer(served, port=8081).start(),
               ImageServer(served, tls=tls, port=8443).start()]
    yield manifest
    for s in servers:
        s.stop()


def run_examples(play, module, defaults, extra_vars=None):
    task_list = examples(module)
    playbook = [{'module_defaults': {'smartos.images.' + module: defaults}, **t} for t in task_list]
    argv, env, record = play.command(playbook, vars=extra_vars)
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return play.results(record)


def test_smartos_image_examples(play, example_servers, tls, tmp_path):
    root = str(tmp_path / 'root')
    os.makedirs(os.path.join(root, 'var', 'imgadm'))
    with open(os.path.join(root, 'var', 'imgadm', 'imgadm.conf'), 'w', encoding='utf-8') as f:
        json.dump({'sources': [{'type': 'imgapi', 'url': 'http://127.0.0.1:8080'}]}, f)
    results = run_examples(play, 'smartos_image', {'pool': EXAMPLE_POOL, 'host_root': root}, {'mirror_ca_file': tls['ca']})
    statuses = [(r['task'], r['status'], r['result'].get('changed')) for r in results]
    assert [s[1] for s in statuses] == ['ok'] * len(examples('smartos_image')), statuses
    changed = [task for task, dummy, was_changed in statuses if was_changed]
    # imported by the first task; deleted by the one that deletes it; nothing else changes
    assert changed == ["Import an image from the host's configured image sources", 'Delete the image (fails while a VM is cloned from it)']


def test_smartos_image_source_examples(play, example_servers, tmp_path):
    root = str(tmp_path / 'root')
    results = run_examples(play, 'smartos_image_source', {'host_root': root, 'ping': False})
    assert [r['status'] for r in results] == ['ok'] * len(examples('smartos_image_source'))
    assert all(r['result']['changed'] for r in results)
    assert results[0]['result']['sources'][0]['url'] == 'http://127.0.0.1:8080'
    with open(os.path.join(root, 'var', 'db', 'imgadm', 'imgcache.json'), encoding='utf-8') as f:
        assert EXAMPLE_UUID in [m['uuid'] for m in json.load(f)]


def test_smartos_image_facts_examples(play, example_servers, tmp_path):
    root = str(tmp_path / 'root')
    os.makedirs(os.path.join(root, 'var', 'imgadm'))
    with open(os.path.join(root, 'var', 'imgadm', 'imgadm.conf'), 'w', encoding='utf-8') as f:
        json.dump({'sources': [{'type': 'imgapi', 'url': 'http://127.0.0.1:8080'}]}, f)
    results = run_examples(play, 'smartos_image_facts', {'host_root': root, 'pools': [EXAMPLE_POOL]})
    assert [r['status'] for r in results] == ['ok'] * len(examples('smartos_image_facts'))
    available = results[2]['result']['ansible_facts']['smartos_images_available']
    assert [e['manifest']['uuid'] for e in available] == [EXAMPLE_UUID]


EXAMPLE_VM = '79ae2d1c-5e48-4ae4-9c2f-f9e4d6b7cf0d'
EXAMPLE_IMAGES = '/var/tmp/images'   # where the examples write, as they would on a real host


def clear_example_images():
    for name in os.listdir(EXAMPLE_IMAGES) if os.path.isdir(EXAMPLE_IMAGES) else []:
        if name.startswith('example-') or name.startswith('.example-'):
            os.unlink(os.path.join(EXAMPLE_IMAGES, name))
    try:
        os.rmdir(EXAMPLE_IMAGES)
    except OSError:
        pass   # not there, or not ours alone


def test_smartos_image_create_examples(play, example_pool, tmp_path):
    """The VM has no vmadm here: its dataset <pool>/<uuid> is found by name on the pool module_defaults names."""
    root = str(tmp_path / 'root')
    vm_dataset = '%s/%s' % (EXAMPLE_POOL, EXAMPLE_VM)
    subprocess.run(['zfs', 'create', vm_dataset], check=True)
    with open('/%s/motd' % vm_dataset, 'w', encoding='utf-8') as f:
        f.write('an example VM\n')
    clear_example_images()   # a leftover output of the same name and version would count as made
    defaults = {'pool': EXAMPLE_POOL, 'host_root': root}
    playbook = [{'module_defaults': {'smartos.images.smartos_image_create': defaults,
                                     'smartos.images.smartos_image': defaults}, **t}
                for t in examples('smartos_image_create')]
    argv, env, record = play.command(playbook)
    image = None
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        results = play.results(record)
        assert [(r['status'], r['result'].get('changed')) for r in results] == [('ok', True)] * 4
        created = results[0]['result']
        image = '%s/%s' % (EXAMPLE_POOL, created['uuid'])
        assert sorted(os.listdir(EXAMPLE_IMAGES)) == [
            'example-1.0.0.imgmanifest', 'example-1.0.0.zfs.gz', 'example-bz2-1.0.0.imgmanifest',
            'example-bz2-1.0.0.zfs.bz2', 'example-xz-1.0.0.dsmanifest', 'example-xz-1.0.0.imgmanifest',
            'example-xz-1.0.0.zfs.xz']
        assert results[1]['result']['imported'] == [created['uuid']]
    finally:
        clear_example_images()
        for dataset in ([image] if image else []) + [vm_dataset]:
            subprocess.run(['zfs', 'destroy', '-r', dataset], capture_output=True, check=False)


# ---- playbooks/mirror.yml ----


@pytest.fixture
def readable_dir():
    """A scratch directory that nginx's workers (another user when the tests run as root) can read."""
    os.makedirs(WORK, exist_ok=True)
    path = tempfile.mkdtemp(prefix='mirror-example-', dir=WORK)
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def upstream_files(server):
    """The UUIDs whose image file the server was asked for, in order."""
    return [q['path'].split('/')[2] for q in server.requests() if q['path'].endswith('/file')]


def test_mirror_playbook(example_pool, readable_dir, tmp_path):
    """The mirror host alone first (it writes the server block nginx then serves), then the whole playbook, four
    runs: the host's sources become the mirror and upstream, in that order, and the image comes from the mirror;
    upstream is asked for the file once, by the mirror."""
    manifest, path = build_image(example_pool.name, str(tmp_path / 'built'), name='mirror-example', compression='gzip')
    uuid = manifest['uuid']
    publish(str(tmp_path / 'served'), manifest, path)
    port, root, conf = free_port(), str(tmp_path / 'root'), os.path.join(readable_dir, 'mirror.conf')
    os.makedirs(root)
    with ImageServer(str(tmp_path / 'served')) as upstream:
        mirror = {'mirror0': {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                              'image_mirror_path': os.path.join(readable_dir, 'mirror'), 'image_mirror_images': [{'uuid': uuid}],
                              'image_mirror_sources': [upstream.url], 'image_mirror_install_nginx': False,
                              'image_mirror_manage_service': False, 'image_mirror_nginx_conf': conf,
                              'image_mirror_listen': '127.0.0.1:%d' % port}}
        urls = {'mirror_url': 'http://127.0.0.1:%d' % port, 'mirror_upstream_sources': [{'url': upstream.url}]}
        alone = run_playbook(tmp_path, 'mirror.yml', {'all': {'vars': urls, 'children': {'mirror': {'hosts': mirror}}}})
        assert alone.rc == 0 and alone.changed('mirror0'), alone.out
        assert upstream_files(upstream) == [uuid]
        upstream.clear_requests()
        fleet = {'cn1': local_host(EXAMPLE_POOL, root, image_host_images=[{'uuid': uuid}])}
        inventory = {'all': {'vars': urls, 'children': {'mirror': {'hosts': mirror}, 'smartos': {'hosts': fleet}}}}
        # a first --check, nginx not serving yet: the host neither pings the mirror nor fails on it
        first = run_playbook(tmp_path, 'mirror.yml', inventory, check=True)
        assert first.rc == 0 and first.changed('cn1') and not os.path.exists(os.path.join(root, 'var', 'imgadm')), first.out
        assert upstream_files(upstream) == []
        try:
            with Nginx(conf, port) as nginx:
                runs = [run_playbook(tmp_path, 'mirror.yml', inventory, check=c) for c in (True, False, True, False)]
                with open(os.path.join(nginx.dir, 'access.log'), encoding='utf-8') as f:
                    served = [line for line in f if ' /images/%s/file ' % uuid in line]
            assert [r.rc for r in runs] == [0] * 4, runs[0].out + runs[1].out
            assert [r.changed('cn1') for r in runs] == [True, True, False, False], [r.out for r in runs]
            assert not any(r.changed('mirror0') for r in runs), runs[0].out
            assert runs[1].of('smartos.images.image_host : Make the images', 'cn1')[0]['result']['imported'] == [uuid]
            assert upstream_files(upstream) == [] and len(served) == 1, served
            with open(os.path.join(root, 'var', 'imgadm', 'imgadm.conf'), encoding='utf-8') as f:
                assert [s['url'] for s in json.load(f)['sources']] == [urls['mirror_url'], upstream.url]
            listing = subprocess.run(['zfs', 'list', '-H', '-o', 'name', '-t', 'snapshot', '-r', '%s/%s' % (EXAMPLE_POOL, uuid)],
                                     capture_output=True, text=True, check=True).stdout.split()
            assert listing == ['%s/%s@final' % (EXAMPLE_POOL, uuid)]
        finally:
            subprocess.run(['zfs', 'destroy', '-r', '%s/%s' % (EXAMPLE_POOL, uuid)], capture_output=True, check=False)
