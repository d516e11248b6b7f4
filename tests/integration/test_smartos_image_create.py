"""smartos_image_create on the real zfs-fuse pool: from a dataset and a snapshot, incremental on an imported image,
round trips through a local install and through the image server, the four runs, and the refusals.

Every manifest produced is checked against schemas/imgmanifest-v2.json and node-imgmanifest's rules (reference §6)."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys

import jsonschema
import pytest

from tests.integration.conftest import BUILD, POOL, REPO, Play, four_runs
from tests.lib.imagebuilder import fill
from tests.lib.imgserver_ctl import publish
from tests.lib.zfspool import retry_busy, run

sys.path.insert(0, BUILD)
from ansible_collections.smartos.images.plugins.module_utils._manifest import upgrade_manifest  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.smartos.images.plugins.module_utils._manifest_build import manifest_problems  # noqa: E402  pylint: disable=wrong-import-position

pytestmark = pytest.mark.usefixtures('collection_built')

SRC = POOL + '/create-src'
with open(os.path.join(REPO, 'schemas', 'imgmanifest-v2.json'), encoding='utf-8') as _f:
    VALIDATOR = jsonschema.Draft202012Validator(json.load(_f))


def create(output_dir, **args):
    return {'name': 'create', 'smartos.images.smartos_image_create': dict(output_dir=output_dir, **args)}


def install(host_root, **args):
    return {'name': 'install', 'smartos.images.smartos_image': dict(pool=POOL, host_root=host_root, **args)}


def valid(manifest):
    """The schema and node-imgmanifest's rules both accept the manifest."""
    assert [e.message for e in VALIDATOR.iter_errors(manifest)] == []
    assert manifest_problems(manifest) == []
    return manifest


def read_json(path):
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def sha1_of(path):
    with open(path, 'rb') as f:
        return hashlib.sha1(f.read()).hexdigest()


def guid(name):
    return run('zfs', 'get', '-Hp', '-o', 'value', 'guid', name).strip()


def origin_of(name):
    return run('zfs', 'get', '-H', '-o', 'value', 'origin', name).strip()


def send_digest(snapshot, incremental_from=None):
    """SHA-1 of what `zfs send` gives now: the uncompressed image must be exactly that."""
    argv = ['zfs', 'send'] + (['-i', incremental_from] if incremental_from else []) + [snapshot]
    return hashlib.sha1(subprocess.run(argv, capture_output=True, check=True).stdout).hexdigest()


@pytest.fixture(scope='module')
def source(pool):
    """A dataset with files (text and random) to make images of."""
    run('zfs', 'create', SRC)
    fill('/' + SRC, {'etc/motd': 'made by smartos_image_create\n'}, random_mb=1, text_mb=2)
    yield SRC
    retry_busy('zfs', 'destroy', '-r', SRC)


@pytest.fixture(scope='module')
def made(source, tmp_path_factory):
    """The four runs of a create from the dataset, with a v1 manifest too: (results, output dir)."""
    out = str(tmp_path_factory.mktemp('out'))
    play = Play(str(tmp_path_factory.mktemp('play')))
    task = create(out, dataset=source, name='create-test', version='1.0.0', description='made by the tests',
                  dsmanifest=True, creator_name='tests',
                  requirements={'networks': [{'name': 'net0', 'description': 'public'}]})
    return four_runs(play, task), out


def test_from_a_dataset_four_runs(made):
    (check, real, check2, real2), out = made
    assert [r['failed'] for r in (check, real, check2, real2)] == [False] * 4, real.get('msg')
    assert check['changed'] and real['changed'] and not check2['changed'] and not real2['changed']
    assert check['actions'] == real['actions'] and check['diff'] == real['diff']
    assert [a['action'] for a in real['actions']] == ['snapshot', 'send', 'write_manifest', 'write_dsmanifest']
    assert check['sha1'] is None and check['dataset_guid'] is None
    assert sorted(os.listdir(out)) == ['create-test-1.0.0.dsmanifest', 'create-test-1.0.0.imgmanifest',
                                       'create-test-1.0.0.zfs.gz']
    manifest = valid(read_json(real['manifest_path']))
    assert manifest == real['manifest'] == real2['manifest'] and real2['uuid'] == real['uuid']
    entry = manifest['files'][0]
    assert entry == {'sha1': sha1_of(real['file_path']), 'size': os.path.getsize(real['file_path']),
                     'compression': 'gzip', 'dataset_guid': guid(real['snapshot'])}
    assert real['snapshot'].startswith(SRC + '@smartos-images-create-')
    # the file is one valid gzip stream of exactly what zfs send gives, for gzip -d and Python alike
    unzipped = subprocess.run(['gzip', '-cdfq', real['file_path']], capture_output=True, check=True).stdout
    with gzip.open(real['file_path']) as f:
        assert hashlib.sha1(unzipped).hexdigest() == hashlib.sha1(f.read()).hexdigest() == send_digest(real['snapshot'])
    v1 = read_json(os.path.join(out, 'create-test-1.0.0.dsmanifest'))
    assert v1['urn'] == 'smartos:tests:create-test:1.0.0' and v1['files'][0]['path'] == 'create-test-1.0.0.zfs.gz'
    assert valid(upgrade_manifest(v1))['uuid'] == manifest['uuid']


def test_round_trip_local_install(made, play, host_root):
    (dummy, real, dummy2, dummy3), out = made
    result = play(install(host_root, manifest=real['manifest_path'], file=real['file_path']))
    assert not result['failed'], result.get('msg')
    image = '%s/%s' % (POOL, real['uuid'])
    try:
        assert result['changed'] and result['imported'] == [real['uuid']]
        assert guid(image + '@final') == real['dataset_guid']   # the same snapshot, received
    finally:
        retry_busy('zfs', 'destroy', '-r', image)


def test_round_trip_through_the_image_server(made, play, host_root, server, images_dir):
    (dummy, real, dummy2, dummy3), out = made
    publish(images_dir, real['manifest'], real['file_path'])
    result = play(install(host_root, uuid=real['uuid'], source=[server.url]))
    assert not result['failed'], result.get('msg')
    image = '%s/%s' % (POOL, real['uuid'])
    try:
        assert result['downloaded_bytes'] == real['size'] and result['image'] == real['manifest']
        assert guid(image + '@final') == real['dataset_guid']
    finally:
        retry_busy('zfs', 'destroy', '-r', image)


def test_from_a_snapshot_which_stays(source, play, tmp_path):
    snapshot = source + '@mine'
    run('zfs', 'snapshot', snapshot)
    try:
        task = create(str(tmp_path / 'out'), snapshot=snapshot, name='from-snap', version='2', compression='bzip2',
                      remove_snapshot=True)
        first, second = play(task), play(task)
        assert not first['failed'], first.get('msg')
        assert [a['action'] for a in first['actions']] == ['send', 'write_manifest'] and not second['changed']
        assert first['file_path'].endswith('/from-snap-2.zfs.bz2') and first['dataset_guid'] == guid(snapshot)
        valid(read_json(first['manifest_path']))
        unzipped = subprocess.run(['bzip2', '-dc', first['file_path']], capture_output=True, check=True).stdout
        assert hashlib.sha1(unzipped).hexdigest() == send_digest(snapshot)
        assert snapshot in run('zfs', 'list', '-H', '-o', 'name', '-t', 'snapshot', '-r', source)
    finally:
        retry_busy('zfs', 'destroy', snapshot)


def test_remove_snapshot_four_runs(source, play, tmp_path):
    task = create(str(tmp_path / 'out'), dataset=source, name='no-snap', version='1', remove_snapshot=True)
    check, real, check2, real2 = four_runs(play, task)
    assert check['changed'] and real['changed'] and not check2['changed'] and not real2['changed']
    assert check['actions'] == real['actions'] and check['diff'] == real['diff']
    assert real['actions'][-1] == {'action': 'remove_snapshot', 'snapshot': real['snapshot']}
    assert real['snapshot'] not in run('zfs', 'list', '-H', '-o', 'name', '-t', 'snapshot', '-r', source)
    assert real2['uuid'] == real['uuid'] and real2['sha1'] == real['sha1']
    valid(read_json(real['manifest_path']))


def destroy_if_there(name):
    if run('zfs', 'list', '-H', '-o', 'name', name, check=False).strip() == name:
        retry_busy('zfs', 'destroy', '-r', name)


def test_incremental_on_an_imported_image(images, server, play, host_root, tmp_path):
    base = images('create-base', requirements={'networks': [{'name': 'net0', 'description': 'public'}]},
                  users=[{'name': 'root'}], os='illumos')
    child = POOL + '/create-child'
    final = '%s/%s@final' % (POOL, base['uuid'])
    made_uuid = None
    try:
        imported = play(install(host_root, uuid=base['uuid'], source=[server.url]))
        assert not imported['failed'], imported.get('msg')
        run('zfs', 'clone', final, child)   # what vmadm does for a VM made from the image
        fill('/' + child, {'etc/child': 'the child layer\n'}, random_mb=1)
        task = create(str(tmp_path / 'out'), dataset=child, origin=base['uuid'], name='create-child', version='1.0.0',
                      host_root=host_root)
        check, real, check2, real2 = four_runs(play, task)
        assert not real['failed'], real.get('msg')
        assert check['actions'] == real['actions'] and real['changed'] and not check2['changed'] and not real2['changed']
        assert real['actions'][1]['incremental_from'] == final
        m = valid(read_json(real['manifest_path']))
        assert m['origin'] == base['uuid'] and m['os'] == 'illumos'   # inherited, as imgadm create does
        assert m['requirements'] == base['requirements'] and m['users'] == [{'name': 'root'}]
        unzipped = subprocess.run(['gzip', '-dc', real['file_path']], capture_output=True, check=True).stdout
        assert hashlib.sha1(unzipped).hexdigest() == send_digest(real['snapshot'], final)
        # installed beside its origin, the incremental stream is received as a clone of the origin's @final
        made_uuid = real['uuid']
        result = play(install(host_root, manifest=real['manifest_path'], file=real['file_path']))
        assert not result['failed'], result.get('msg')
        assert origin_of('%s/%s' % (POOL, made_uuid)) == final
        assert guid('%s/%s@final' % (POOL, made_uuid)) == real['dataset_guid']
    finally:
        if made_uuid:
            destroy_if_there('%s/%s' % (POOL, made_uuid))
        destroy_if_there(child)
        destroy_if_there('%s/%s' % (POOL, base['uuid']))


@pytest.fixture
def readonly_dir(pool):
    name = POOL + '/create-ro'
    run('zfs', 'create', '-o', 'readonly=on', name)
    yield '/' + name
    retry_busy('zfs', 'destroy', '-r', name)


@pytest.mark.parametrize('args, words', [
    ({'dataset': POOL + '/no-such-dataset'}, 'dataset "%s/no-such-dataset" does not exist' % POOL),
    ({'version': 'bad version!'}, 'the manifest would be invalid: version'),
    ({'output_dir': 'FILE/sub'}, 'is not a directory'),
    ({'output_dir': 'READONLY'}, 'Read-only file system'),
    ({'origin': '0bad0000-0000-4000-8000-0000000000aa'}, 'origin image "0bad0000-0000-4000-8000-0000000000aa" is not '
                                                         'installed on pool %s' % POOL),
])
def test_refusals_leave_nothing_behind(source, play, tmp_path, pool, readonly_dir, args, words):
    (tmp_path / 'file').write_text('not a directory')
    out = tmp_path / 'out'
    out.mkdir()
    args = dict(dict(dataset=source, name='refused', version='1.0.0', output_dir=str(out)), **args)
    args['output_dir'] = args['output_dir'].replace('FILE', str(tmp_path / 'file')).replace('READONLY', readonly_dir)
    before = pool.datasets()
    result = play({'name': 'create', 'smartos.images.smartos_image_create': args})
    assert result['failed'] and words in result['msg'], result.get('msg')
    assert os.listdir(str(out)) == [] and os.listdir(readonly_dir) == [] and pool.datasets() == before


def test_origin_that_is_not_an_ancestor(source, images, server, play, host_root, pool, tmp_path):
    other = images('create-unrelated')
    imported = play(install(host_root, uuid=other['uuid'], source=[server.url]))
    try:
        assert not imported['failed'], imported.get('msg')
        before = pool.datasets()
        result = play(create(str(tmp_path / 'out'), dataset=source, origin=other['uuid'], name='x', version='1',
                             host_root=host_root))
        assert result['failed'] and 'is not an ancestor of %s@smartos-images-create-' % source in result['msg']
        assert pool.datasets() == before and not (tmp_path / 'out').exists()
    finally:
        retry_busy('zfs', 'destroy', '-r', '%s/%s' % (POOL, other['uuid']))
