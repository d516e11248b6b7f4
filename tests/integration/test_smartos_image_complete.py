"""smartos_image, complete: names, origin chains, local installs, many images per task, pruning, refresh."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.integration.conftest import POOL, four_runs, tree_state
from tests.lib.imagebuilder import build_chain
from tests.lib.imgserver_ctl import publish
from tests.lib.zfspool import retry_busy, run

pytestmark = pytest.mark.usefixtures('collection_built')


def img(host_root, server=None, **args):
    if server is not None:
        args['source'] = [server.url]
    return {'name': 'image', 'smartos.images.smartos_image': dict(pool=POOL, host_root=host_root, **args)}


def names(pool_obj):
    return [line.split('\t')[0] for line in pool_obj.datasets()]


def origin_of(dataset):
    return run('zfs', 'get', '-H', '-o', 'value', 'origin', dataset).strip()


def destroy(*uuids):
    for uuid in uuids:
        retry_busy('zfs', 'destroy', '-r', '%s/%s' % (POOL, uuid))


@pytest.fixture(scope='module')
def chain(pool, images_dir, tmp_path_factory):
    """A real 3-level incremental chain made with zfs send -i, served by the test server."""
    built = build_chain(pool.name, str(tmp_path_factory.mktemp('chain')), ['chain-base', 'chain-mid', 'chain-top'])
    for manifest, path in built:
        publish(images_dir, manifest, path)
    return built


def test_chain_four_runs(play, chain, server, host_root, pool):
    (base, dummy), (mid, dummy2), (top, dummy3) = chain
    check, real, check2, real2 = four_runs(play, img(host_root, server, uuid=top['uuid']))
    assert check['changed'] and real['changed'] and not check2['changed'] and not real2['changed']
    assert check['imported'] == real['imported'] == [base['uuid'], mid['uuid'], top['uuid']]
    assert check['actions'] == real['actions'] and check['diff'] == real['diff']
    assert real['downloaded_bytes'] == sum(m['files'][0]['size'] for m, dummy in chain)
    # each incremental image is a clone of its origin's @final
    assert origin_of('%s/%s' % (POOL, mid['uuid'])) == '%s/%s@final' % (POOL, base['uuid'])
    assert origin_of('%s/%s' % (POOL, top['uuid'])) == '%s/%s@final' % (POOL, mid['uuid'])
    # the base is in use by the chain: it cannot go alone, but the whole chain can, children first
    refused = play(img(host_root, uuid=base['uuid'], state='absent'))
    assert refused['failed'] and '%s/%s' % (POOL, mid['uuid']) in refused['msg']
    gone = play(img(host_root, images=[{'uuid': base['uuid'], 'state': 'absent'}, {'uuid': top['uuid'], 'state': 'absent'},
                                       {'uuid': mid['uuid'], 'state': 'absent'}]))
    assert gone['changed'] and gone['removed'] == [top['uuid'], mid['uuid'], base['uuid']]
    assert not [n for n in names(pool) if any(m['uuid'] in n for m, dummy in chain)]


def test_chain_with_installed_base(play, chain, server, host_root):
    (base, dummy), (mid, dummy2), (top, dummy3) = chain
    assert play(img(host_root, server, uuid=base['uuid']))['imported'] == [base['uuid']]
    result = play(img(host_root, server, uuid=top['uuid']))
    assert result['imported'] == [mid['uuid'], top['uuid']]
    destroy(top['uuid'], mid['uuid'], base['uuid'])


def test_chain_whose_origin_no_source_has(play, chain, images_dir, server, host_root, pool, images):
    orphan = dict(images('orphan', publish_it=False), origin='0bad0000-0000-4000-8000-0000000000aa')
    publish(images_dir, orphan, images.path('orphan'))
    before = pool.datasets()
    result = play(img(host_root, server, uuid=orphan['uuid']))
    assert result['failed'] and 'origin 0bad0000-0000-4000-8000-0000000000aa' in result['msg']
    assert 'no source has it' in result['msg'] and pool.datasets() == before


@pytest.fixture(scope='module')
def named(images, images_dir):
    """Two versions of one name, the second published later, and another os under the same name."""
    old = dict(images('named-old', publish_it=False), name='named', version='1.0.0', published_at='2024-01-01T00:00:00Z')
    new = dict(images('named-new', publish_it=False), name='named', version='2.0.0', published_at='2025-01-01T00:00:00Z')
    other = dict(images('named-linux', publish_it=False), name='named', version='3.0.0', os='linux',
                 published_at='2025-06-01T00:00:00Z')
    for manifest, key in ((old, 'named-old'), (new, 'named-new'), (other, 'named-linux')):
        publish(images_dir, manifest, images.path(key))
    return old, new, other


def test_by_name_newest_four_runs(play, named, server, host_root):
    old, new, other = named
    check, real, check2, real2 = four_runs(play, img(host_root, server, name='named', filters={'os': 'smartos'}))
    assert real['uuid'] == check['uuid'] == new['uuid'] and real['changed'] and not real2['changed']
    assert real['image']['version'] == '2.0.0'
    newest_any = play(img(host_root, server, name='named'), check=True)
    assert newest_any['uuid'] == other['uuid']
    destroy(new['uuid'])


def test_by_name_and_version(play, named, server, host_root):
    old, dummy, dummy2 = named
    check, real, check2, real2 = four_runs(play, img(host_root, server, name='named', version='1.0.0'))
    assert real['uuid'] == old['uuid'] and real['changed'] and not check2['changed'] and not real2['changed']
    # installed: no source is asked any more
    server.clear_requests()
    assert not play(img(host_root, server, name='named', version='1.0.0'))['changed']
    assert server.requests() == []
    removed = play(img(host_root, name='named', state='absent'))
    assert removed['changed'] and removed['removed'] == [old['uuid']]


@pytest.mark.parametrize('args,words', [
    ({'name': 'no-such-image'}, 'no active image named "no-such-image"'),
    ({'name': 'named', 'version': '9.9.9'}, 'version "9.9.9"'),
])
def test_name_that_matches_nothing(play, named, server, host_root, pool, args, words):
    before = pool.datasets()
    result = play(img(host_root, server, **args))
    assert result['failed'] and words in result['msg'] and server.url in result['msg']
    assert pool.datasets() == before


def local_files(images, tmp_path, key, **changes):
    manifest = dict(images(key, publish_it=False), **changes)
    path = str(tmp_path / 'image.zfs.gz')
    shutil.copyfile(images.path(key), path)
    manifest_path = str(tmp_path / 'image.imgmanifest')
    with open(manifest_path, 'w', encoding='utf-8') as f:
        json.dump(manifest, f)
    return manifest, manifest_path, path


def test_local_install_four_runs(play, images, host_root, tmp_path, pool):
    manifest, manifest_path, path = local_files(images, tmp_path, 'local')
    check, real, check2, real2 = four_runs(play, img(host_root, manifest=manifest_path, file=path))
    assert check['changed'] and real['changed'] and not check2['changed'] and not real2['changed']
    assert real['uuid'] == manifest['uuid'] and real['imported'] == [manifest['uuid']]
    cached = json.load(open(os.path.join(host_root, 'var', 'imgadm', 'images', '%s-%s.json' % (POOL, manifest['uuid'])),
                            encoding='utf-8'))
    assert cached == {'manifest': manifest, 'zpool': POOL}  # imgadm install records no source
    destroy(manifest['uuid'])


@pytest.mark.parametrize('changes,words', [
    ({'files': [{'sha1': '0' * 40, 'size': None, 'compression': 'gzip'}]}, 'files[0].size'),
    ({'name': None, 'os': 'plan9'}, 'name is missing'),
    ({'version': 'bad version!'}, 'version'),
])
def test_local_manifest_that_fails_validation(play, images, host_root, tmp_path, pool, changes, words):
    manifest, manifest_path, path = local_files(images, tmp_path, 'local-bad')
    bad = dict(manifest, **changes)
    bad = {k: v for k, v in bad.items() if v is not None}
    with open(manifest_path, 'w', encoding='utf-8') as f:
        json.dump(bad, f)
    before = pool.datasets()
    result = play(img(host_root, manifest=manifest_path, file=path))
    assert result['failed'] and words in result['msg'] and pool.datasets() == before


@pytest.mark.parametrize('field,words', [('size', 'file size error'), ('sha1', 'checksum (sha1) error')])
def test_local_file_that_does_not_match(play, images, host_root, tmp_path, pool, field, words):
    manifest, manifest_path, path = local_files(images, tmp_path, 'local-mismatch')
    entry = dict(manifest['files'][0])
    entry[field] = entry['size'] + 1 if field == 'size' else 'f' * 40
    with open(manifest_path, 'w', encoding='utf-8') as f:
        json.dump(dict(manifest, files=[entry]), f)
    before, files = pool.datasets(), tree_state(host_root)
    result = play(img(host_root, manifest=manifest_path, file=path))
    assert result['failed'] and words in result['msg']
    assert pool.datasets() == before and tree_state(host_root) == files


def test_local_install_needs_its_origin(play, chain, host_root, tmp_path, pool):
    (base, dummy), (mid, mid_path) = chain[0], chain[1]
    manifest_path = str(tmp_path / 'mid.imgmanifest')
    with open(manifest_path, 'w', encoding='utf-8') as f:
        json.dump(mid, f)
    result = play(img(host_root, manifest=manifest_path, file=mid_path))
    assert result['failed'] and 'origin image %s' % base['uuid'] in result['msg'] and 'import it first' in result['msg']


def test_many_images_in_one_task(play, images, named, server, host_root):
    a, b = images('many-a'), images('many-b')
    old, dummy, dummy2 = named
    declared = [{'uuid': a['uuid']}, {'uuid': b['uuid']}, {'name': 'named', 'version': '1.0.0'},
                {'name': 'absent-already', 'state': 'absent'}]
    check, real, check2, real2 = four_runs(play, img(host_root, server, images=declared))
    assert check['changed'] and real['changed'] and not check2['changed'] and not real2['changed']
    assert sorted(real['imported']) == sorted([a['uuid'], b['uuid'], old['uuid']])
    assert [r['uuid'] for r in real['results'][:3]] == [a['uuid'], b['uuid'], old['uuid']]
    assert [r['changed'] for r in real['results']] == [True, True, True, False]
    assert real2['results'][0] == {'uuid': a['uuid'], 'state': 'present', 'changed': False, 'image': a}
    server.clear_requests()
    assert not play(img(host_root, server, images=declared[:2]))['changed']
    assert server.requests() == []  # all installed: no manifest, no file asked for
    destroy(a['uuid'], b['uuid'], old['uuid'])


def test_prune_unused(play, chain, images, server, host_root, pool):
    (base, dummy), (mid, dummy2), (top, dummy3) = chain
    used, spare, kept = images('prune-used'), images('prune-spare'), images('prune-kept')
    for m in (top, used, spare, kept):
        assert play(img(host_root, server, uuid=m['uuid']))['changed']
    vm = '%s/%s-disk0' % (POOL, '0b5e55ed-0000-4000-8000-000000000001')
    run('zfs', 'clone', '%s/%s@final' % (POOL, used['uuid']), vm)
    task = img(host_root, prune_unused=True, keep=[kept['name']])
    check = play(task, check=True)
    on_pool = set(names(pool))
    assert set(check['unused']) >= {top['uuid'], mid['uuid'], base['uuid'], spare['uuid']}
    assert used['uuid'] not in check['unused'] and kept['uuid'] not in check['unused']
    # children before their origins
    assert check['unused'].index(top['uuid']) < check['unused'].index(mid['uuid']) < check['unused'].index(base['uuid'])
    assert set(names(pool)) == on_pool  # check mode removed nothing
    real = play(task)
    assert real['unused'] == check['unused'] and real['diff'] == check['diff']
    left = set(names(pool))
    assert '%s/%s' % (POOL, used['uuid']) in left and '%s/%s' % (POOL, kept['uuid']) in left
    assert not {'%s/%s' % (POOL, u) for u in real['unused']} & left
    assert not play(task)['changed']
    retry_busy('zfs', 'destroy', vm)
    destroy(used['uuid'], kept['uuid'])


def test_update_manifests_backfills_and_repairs(play, images, server, host_root, pool):
    a = images('refresh')
    assert play(img(host_root, server, uuid=a['uuid']))['changed']
    cache = os.path.join(host_root, 'var', 'imgadm', 'images', '%s-%s.json' % (POOL, a['uuid']))
    os.unlink(cache)
    run('zfs', 'rename', '%s/%s@final' % (POOL, a['uuid']), '%s/%s@lost' % (POOL, a['uuid']))
    check = play(img(host_root, server, update_manifests=True), check=True)
    kinds = {(x['action'], x['uuid']) for x in check['actions']}
    assert ('refresh', a['uuid']) in kinds and ('repair', a['uuid']) in kinds
    assert '%s/%s@lost' % (POOL, a['uuid']) in names(pool) and not os.path.exists(cache)  # check mode renames nothing
    real = play(img(host_root, server, update_manifests=True))
    assert real['changed'] and '%s/%s@final' % (POOL, a['uuid']) in names(pool)
    with open(cache, encoding='utf-8') as f:
        assert json.load(f)['manifest'] == a
    assert not play(img(host_root, server, update_manifests=True))['changed']
    destroy(a['uuid'])


def test_present_and_absent_at_once_is_refused(play, images, server, host_root):
    a = images('conflict')
    result = play(img(host_root, server, images=[{'uuid': a['uuid']}, {'uuid': a['uuid'], 'state': 'absent'}]))
    assert result['failed'] and 'both present and absent' in result['msg']
