"""A fleet behind the mirror: simulated hosts (each its own pool and host root) converge with the image_host role,
the mirror (the image_mirror role's nginx) first in their sources and the upstream image server second. Each file
crosses from upstream once (to the mirror); with the mirror down, or serving a corrupted file, hosts fall back to
upstream and say so."""
from __future__ import annotations

import os

import pytest

from tests.integration.conftest import POOL, WORK
from tests.integration.test_fleet import installed, inventory, local_host, run_playbook
from tests.integration.test_mirror_nginx import (  # noqa: F401 pylint: disable=unused-import  # the upstream fixture
    role_and_nginx, upstream,
)
from tests.lib.zfspool import FilePool, retry_busy

pytestmark = pytest.mark.usefixtures('collection_built')
HOSTS = 3
IMPORT_TASK = 'smartos.images.image_host : Make the images'


@pytest.fixture(scope='module')
def mirror(upstream, tmp_path_factory):
    """The image_mirror role run once on the two images, and nginx serving the mirror."""
    with role_and_nginx(upstream['server'], str(tmp_path_factory.mktemp('fleet-role')), 'fleet-mirror-') as (
            role, server, path):
        run = role([{'uuid': m['uuid']} for m in upstream['images']])
        assert run.rc == 0, run.out
        server.start()
        yield {'nginx': server, 'path': path}


@pytest.fixture(scope='module')
def pools(pool):
    made = [FilePool('%sm%d' % (POOL, i), os.path.join(WORK, '%sm%d.img' % (POOL, i)), size='256M').create()
            for i in range(HOSTS)]
    yield made
    for p in made:
        p.destroy()


def file_requests(server):
    """The image file paths the upstream was asked for, in order."""
    return [q['path'] for q in server.requests() if q['path'].endswith('/file')]


def fleet(tmp_path, pools, mirror, upstream, names=None, **role_vars):
    """The inventory: each host its own pool and root, the mirror first and upstream second, both images."""
    hosts = {}
    for i, p in enumerate(pools):
        name = 'node%d' % i
        if names is not None and name not in names:
            continue
        root = tmp_path / ('root%d' % i)
        root.mkdir(exist_ok=True)
        hosts[name] = local_host(p.name, str(root), image_host_retries=1,
                                 image_host_sources=[{'url': mirror['nginx'].url}, {'url': upstream['server'].url}],
                                 image_host_sources_exclusive=True,
                                 image_host_images=[{'uuid': m['uuid']} for m in upstream['images']], **role_vars)
    return inventory(hosts)


def without(pool, uuids):
    """Destroy these images on a host's pool (so that the next converge imports them again)."""
    for u in uuids:
        if u in installed(pool.name):
            retry_busy('zfs', 'destroy', '-r', '%s/%s' % (pool.name, u))


def test_each_file_crosses_from_upstream_once(tmp_path, pools, mirror, upstream):
    """The mirror asked upstream for each file once (its fixture); the whole fleet then asks upstream for none."""
    uuids = [m['uuid'] for m in upstream['images']]
    for p in pools:
        without(p, uuids)
    r = run_playbook(tmp_path, 'converge.yml', fleet(tmp_path, pools, mirror, upstream), forks=HOSTS)
    assert r.rc == 0, r.out
    for p in pools:
        assert set(uuids) <= set(installed(p.name)), (p.name, r.out)
    assert sorted(file_requests(upstream['server'])) == sorted('/images/%s/file' % u for u in uuids)
    again = run_playbook(tmp_path, 'converge.yml', fleet(tmp_path, pools, mirror, upstream), forks=HOSTS)
    assert again.rc == 0 and not again.changed(), again.out


def test_mirror_down_hosts_import_from_upstream(tmp_path, pools, mirror, upstream):
    uuids = [m['uuid'] for m in upstream['images']]
    without(pools[0], uuids)
    upstream['server'].clear_requests()
    mirror['nginx'].stop()
    try:
        r = run_playbook(tmp_path, 'converge.yml', fleet(tmp_path, pools, mirror, upstream, ['node0'],
                                                         image_host_source_ping=False))
    finally:
        mirror['nginx'].start()
    assert r.rc == 0, r.out
    assert set(uuids) <= set(installed(pools[0].name))
    assert sorted(file_requests(upstream['server'])) == sorted('/images/%s/file' % u for u in uuids)


def test_corrupted_file_on_the_mirror_hosts_warn_and_import_from_upstream(tmp_path, pools, mirror, upstream):
    """The mirror serves the file with the right size and other bytes: the host's SHA-1 check fails, it says so
    and takes the file from upstream."""
    a = upstream['images'][0]
    path = os.path.join(mirror['path'], 'images', a['uuid'], 'file')
    with open(path, 'rb') as f:
        good = f.read()
    middle = len(good) // 2
    without(pools[1], [a['uuid']])
    upstream['server'].clear_requests()
    with open(path, 'r+b') as f:
        f.seek(middle)
        f.write(bytes([good[middle] ^ 0xFF]))
    try:
        r = run_playbook(tmp_path, 'converge.yml', fleet(tmp_path, pools, mirror, upstream, ['node1']))
    finally:
        with open(path, 'r+b') as f:
            f.seek(middle)
            f.write(good[middle:middle + 1])
    assert r.rc == 0, r.out
    assert a['uuid'] in installed(pools[1].name)
    assert file_requests(upstream['server']) == ['/images/%s/file' % a['uuid']]
    warnings = ' '.join(w for x in r.of(IMPORT_TASK) for w in x['result'].get('warnings', []))
    assert mirror['nginx'].url in warnings, r.out
