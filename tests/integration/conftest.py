"""Real parts for the integration tests: zfs-fuse with a file-backed pool, the image server on
127.0.0.1 (HTTP and HTTPS), real images made with `zfs send`, and real ansible-playbook runs."""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from tests.lib.imagebuilder import build_image, fill
from tests.lib.imgserver_ctl import ImageServer, publish
from tests.lib.tlsca import make_ca_and_cert
from tests.lib.zfspool import FilePool, ZfsFuse, retry_busy, run

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get('ANSIBLE_COLLECTIONS_PATH', os.path.join(REPO, 'build')).split(':')[0]
# Override to run two test sessions side by side (each needs its own pool).
POOL = os.environ.get('SMARTOS_IMAGES_TEST_POOL', 'sitest')
WORK = '/var/tmp/smartos-images-tests'


# The hostile matrices (a faulty or hostile image server, careless input, unsafe data on the host, the mirror host's
# nginx): they test the modules' own code, the same whichever ansible-core runs them, and take half the suite's time.
ONE_CORE_RE = re.compile(r'^test_(attack|safety)_\w+\.py$|^test_mirror_nginx\.py$')


def pytest_configure(config):
    config.addinivalue_line('markers', 'one_core: runs on the Makefile\'s MATRIX_CORE only (make integration-<other core> '
                            'deselects it): the hostile matrices, see ONE_CORE_RE')


@pytest.hookimpl(tryfirst=True)   # before -m deselects by marker
def pytest_collection_modifyitems(items):
    for item in items:
        if ONE_CORE_RE.match(os.path.basename(str(item.fspath))):
            item.add_marker(pytest.mark.one_core)


def file_pool(name, size):
    """A fresh file-backed pool under WORK for a fixture to yield from; destroyed when the fixture ends."""
    p = FilePool(name, os.path.join(WORK, name + '.img'), size=size).create()
    yield p
    p.destroy()


def filled_dataset(name, motd, random_mb):
    """A new dataset holding etc/motd and random_mb MiB of random data for a fixture to yield from; destroyed
    with its snapshots when the fixture ends."""
    run('zfs', 'create', name)
    fill('/' + name, {'etc/motd': motd}, random_mb=random_mb)
    yield name
    retry_busy('zfs', 'destroy', '-r', name)


def create_task(output_dir, **args):
    """A smartos_image_create task writing into output_dir."""
    return {'name': 'create', 'smartos.images.smartos_image_create': dict(output_dir=output_dir, **args)}


@pytest.fixture(scope='session')
def zfs_daemon():
    """zfs-fuse, started here unless it already runs (then left alone)."""
    daemon = ZfsFuse(pidfile='/run/smartos-images-tests-zfs-fuse.pid').start()
    yield daemon
    daemon.stop()


@pytest.fixture(scope='session')
def pool(zfs_daemon):
    """A fresh file-backed pool for this test session."""
    yield from file_pool(POOL, '3G')


@pytest.fixture(scope='session')
def tls(tmp_path_factory):
    return make_ca_and_cert(str(tmp_path_factory.mktemp('tls')))


@pytest.fixture(scope='session')
def images_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp('served'))


@pytest.fixture(scope='session')
def server(images_dir):
    with ImageServer(images_dir) as s:
        yield s


@pytest.fixture(scope='session')
def tls_server(images_dir, tls):
    with ImageServer(images_dir, tls=tls) as s:
        yield s


@pytest.fixture(autouse=True)
def _no_faults_left(request):
    """Every test starts and ends with a fault-free server."""
    servers = [request.getfixturevalue(n) for n in ('server', 'tls_server') if n in request.fixturenames]
    for s in servers:
        s.clear_faults()
        s.clear_requests()
    yield
    for s in servers:
        s.clear_faults()


class ImageFactory:
    """Builds real images on the test pool and publishes them on the test servers."""

    def __init__(self, pool, images_dir, outdir):
        self.pool = pool
        self.images_dir = images_dir
        self.outdir = outdir
        self.cache = {}

    def __call__(self, key='default', compression='gzip', publish_it=True, **kw):
        """A published image (manifest dict), built once per key."""
        if key not in self.cache:
            manifest, path = build_image(self.pool.name, self.outdir, name='img-' + key.replace('_', '-'),
                                         version='1.0.%d' % len(self.cache), compression=compression,
                                         text_mb=kw.pop('text_mb', 1), random_mb=kw.pop('random_mb', 1), **kw)
            self.cache[key] = (manifest, path)
            if publish_it:
                publish(self.images_dir, manifest, path)
        return self.cache[key][0]

    def path(self, key):
        return self.cache[key][1]

    def republish(self, manifest, key):
        """Serve a changed manifest for an existing image file."""
        publish(self.images_dir, manifest, self.path(key))


@pytest.fixture(scope='session')
def images(pool, images_dir, tmp_path_factory):
    return ImageFactory(pool, images_dir, str(tmp_path_factory.mktemp('built')))


@pytest.fixture
def host_root(tmp_path):
    root = tmp_path / 'root'
    root.mkdir()
    return str(root)


def tree_state(root):
    """Every file under root with its SHA-1, for 'exactly as before' checks."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            state[os.path.relpath(os.path.join(dirpath, name), root) + '/'] = 'dir'
        for name in filenames:
            path = os.path.join(dirpath, name)
            with open(path, 'rb') as f:
                state[os.path.relpath(path, root)] = hashlib.sha1(f.read()).hexdigest()
    return state


class Play:
    """Runs a one-task playbook with real ansible-playbook and returns what the task returned."""

    def __init__(self, tmpdir):
        self.tmpdir = tmpdir
        self.count = 0

    def command(self, task, check=False, diff=True, vars=None):
        """argv, env and record path for running one task on localhost."""
        self.count += 1
        playbook = os.path.join(self.tmpdir, 'play%d.yml' % self.count)
        record = os.path.join(self.tmpdir, 'record%d.jsonl' % self.count)
        with open(playbook, 'w', encoding='utf-8') as f:
            yaml.safe_dump([{'hosts': 'all', 'gather_facts': False, 'vars': vars or {},
                             'tasks': task if isinstance(task, list) else [task]}], f)
        argv = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')] + self.target_args() + [playbook]
        if check:
            argv.append('--check')
        if diff:
            argv.append('--diff')
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=BUILD, SMARTOS_IMAGES_RECORD=record,
                   ANSIBLE_CALLBACK_PLUGINS=os.path.join(REPO, 'tests', 'lib', 'callback'),
                   ANSIBLE_CALLBACKS_ENABLED='record', ANSIBLE_NOCOLOR='1', ANSIBLE_RETRY_FILES_ENABLED='0',
                   ANSIBLE_LOCALHOST_WARNING='0', ANSIBLE_DEPRECATION_WARNINGS='0')
        return argv, env, record

    def target_args(self):
        """Where the task runs: this machine, with the test Python."""
        return ['-i', 'localhost,', '-c', 'local', '-e', 'ansible_python_interpreter=%s' % sys.executable]

    @staticmethod
    def results(record):
        with open(record, encoding='utf-8') as f:
            return [json.loads(line) for line in f]

    def __call__(self, task, check=False, diff=True, vars=None, expect_rc=None):
        """Run the task(s); return the last task's result dict (with 'failed' when it failed)."""
        argv, env, record = self.command(task, check, diff, vars)
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
        if not os.path.exists(record):
            raise AssertionError('ansible-playbook recorded nothing (rc %d):\n%s\n%s'
                                 % (proc.returncode, proc.stdout, proc.stderr))
        last = self.results(record)[-1]
        result = dict(last['result'], failed=last['status'] == 'failed')
        result['_rc'] = proc.returncode
        result['_stdout'] = proc.stdout
        result['_stderr'] = proc.stderr
        return result


@pytest.fixture
def play(tmp_path):
    return Play(str(tmp_path))


def four_runs(play, task):
    """community.docker's pattern: check, real, idempotent check, idempotent real."""
    return [play(task, check=c) for c in (True, False, True, False)]


@pytest.fixture(scope='session')
def collection_built():
    """The collection copy ansible-playbook loads (make collection lays it out)."""
    path = os.path.join(BUILD, 'ansible_collections', 'smartos', 'images', 'plugins', 'modules')
    if not os.path.isdir(path):
        pytest.fail('%s is missing: run `make collection` first (make test does)' % path)
    return path
