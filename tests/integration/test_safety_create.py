"""Issue 10 for smartos_image_create, through real ansible-playbook runs on the real zfs-fuse pool: another image's
files are never touched, a full disk leaves nothing behind and says why, a wrong cached origin manifest is refused."""
from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile

import pytest

from tests.integration.conftest import POOL
from tests.lib.imagebuilder import fill
from tests.lib.zfspool import retry_busy, run

pytestmark = pytest.mark.usefixtures('collection_built')

SRC = POOL + '/safety-create-src'


def create(output_dir, **args):
    return {'name': 'create', 'smartos.images.smartos_image_create': dict(output_dir=output_dir, **args)}


def snapshots(dataset):
    return run('zfs', 'list', '-H', '-o', 'name', '-t', 'snapshot', '-r', dataset).split()


def every_file(directory):
    """Every name in a directory, hidden temporary files included, with its bytes."""
    result = {}
    for name in os.listdir(directory):
        with open(os.path.join(directory, name), 'rb') as f:
            result[name] = f.read()
    return result


@pytest.fixture(scope='module')
def source(pool):
    """A dataset with 4 MiB of random (incompressible) data: its image does not fit in 2 MiB."""
    run('zfs', 'create', SRC)
    fill('/' + SRC, {'etc/motd': 'made for the safety tests\n'}, random_mb=4)
    yield SRC
    retry_busy('zfs', 'destroy', '-r', SRC)


@pytest.mark.parametrize('first, second', [(('a', 'b-1'), ('a-b', '1')), (('a/b', '1'), ('a_b', '1'))])
def test_another_images_files_are_never_touched(source, play, tmp_path, first, second):
    out = str(tmp_path / 'out')
    made = play(create(out, dataset=source, name=first[0], version=first[1], remove_snapshot=True))
    assert not made['failed'], made.get('msg')
    before, snaps = every_file(out), snapshots(source)
    for check in (True, False):
        refused = play(create(out, dataset=source, name=second[0], version=second[1]), check=check)
        assert refused['failed'] and not refused['changed']
        assert '%s belongs to another image, %r version %r (uuid %r)' % (made['manifest_path'], first[0], first[1],
                                                                          made['uuid']) in refused['msg']
        assert every_file(out) == before and snapshots(source) == snaps   # nothing written, nothing snapshotted
    # the first image is still what its manifest says
    assert json.loads(before[os.path.basename(made['manifest_path'])])['uuid'] == made['uuid']


@pytest.fixture(params=['tmpfs', 'zfs-quota'])
def tiny_dir(request, pool):
    """A 2 MiB output directory: a tmpfs (ENOSPC), or a ZFS dataset with a quota (EDQUOT, the issue's [Errno 122])."""
    if request.param == 'zfs-quota':
        name = POOL + '/safety-create-tiny'
        run('zfs', 'create', '-o', 'quota=2M', name)
        yield '/' + name
        retry_busy('zfs', 'destroy', '-r', name)
        return
    directory = tempfile.mkdtemp(prefix='safety-create-tiny-')
    mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=2m,mode=0755', 'tmpfs', directory],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        os.rmdir(directory)
        pytest.skip('cannot mount a 2 MiB tmpfs for the full-disk test (needs root): %s' % mounted.stderr.strip())
    try:
        yield directory
    finally:
        subprocess.run(['umount', directory], check=True, timeout=60)
        os.rmdir(directory)


@pytest.mark.parametrize('compression', ['gzip', 'none'])
def test_a_full_disk_leaves_nothing_behind_and_says_why(source, play, tiny_dir, compression):
    before = snapshots(source)
    result = play(create(tiny_dir, dataset=source, name='too-big', version='1', compression=compression))
    path = os.path.join(tiny_dir, 'too-big-1.zfs' + ('.gz' if compression == 'gzip' else ''))
    assert result['failed'] and 'Traceback' not in json.dumps(result), result
    assert os.listdir(tiny_dir) == [] and snapshots(source) == before   # no temp file, not its own snapshot
    assert re.match(r'cannot write %s: (No space left on device|Disk quota exceeded) \(the file system or a quota is '
                    r'full: free some space in %s, or give another output_dir\)' % (re.escape(path), re.escape(tiny_dir)),
                    result['msg']), result['msg']
    assert result['path'] == path
    # the same task fits once there is room, and makes it whole
    with tempfile.TemporaryDirectory() as roomy:
        made = play(create(roomy, dataset=source, name='too-big', version='1', compression=compression,
                           remove_snapshot=True))
        assert not made['failed'], made.get('msg')
        assert os.path.getsize(made['file_path']) == made['size'] > 2 << 20


def test_a_wrong_cached_origin_manifest_is_refused(images, server, play, host_root, pool, tmp_path):
    base = images('safety-create-base', os='illumos')
    other = images('safety-create-other', os='linux')
    child = POOL + '/safety-create-child'
    final = '%s/%s@final' % (POOL, base['uuid'])
    imported = play({'name': 'install', 'smartos.images.smartos_image': dict(pool=POOL, host_root=host_root,
                                                                              uuid=base['uuid'],
                                                                              source=[server.url])})
    try:
        assert not imported['failed'], imported.get('msg')
        run('zfs', 'clone', final, child)
        cache = os.path.join(host_root, 'var', 'imgadm', 'images', '%s-%s.json' % (POOL, base['uuid']))
        with open(cache, encoding='utf-8') as f:
            info = json.load(f)
        info['manifest'] = other    # image S's manifest in image M's cache file
        with open(cache, 'w', encoding='utf-8') as f:
            json.dump(info, f)
        before = pool.datasets()
        result = play(create(str(tmp_path / 'out'), dataset=child, origin=base['uuid'], name='child', version='1',
                             host_root=host_root))
        assert result['failed'] and 'Traceback' not in json.dumps(result), result
        assert ('the cached manifest %s of origin image %s cannot be used: its uuid is %r'
                % (cache, base['uuid'], other['uuid'])) in result['msg']
        assert pool.datasets() == before and not (tmp_path / 'out').exists()
    finally:
        if run('zfs', 'list', '-H', '-o', 'name', child, check=False).strip() == child:
            retry_busy('zfs', 'destroy', '-r', child)
        retry_busy('zfs', 'destroy', '-r', '%s/%s' % (POOL, base['uuid']))

