"""smartos_image_facts on the real pool and image server, through ansible-playbook, on both layouts."""
from __future__ import annotations

import json
import os

import pytest

from tests.integration.conftest import POOL
from tests.integration.test_smartos_image_source import original_root, v1_manifest
from tests.lib.imgserver_ctl import publish
from tests.lib.zfspool import retry_busy, run

pytestmark = pytest.mark.usefixtures('collection_built')


def facts_task(host_root, **args):
    return {'name': 'facts', 'smartos.images.smartos_image_facts': dict(host_root=host_root, **args)}


def img_task(uuid, host_root, **args):
    return {'name': 'image', 'smartos.images.smartos_image': dict(uuid=uuid, pool=POOL, host_root=host_root, **args)}


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)


@pytest.fixture
def installed(play, images, server, host_root):
    """Three imported images (one with a VM clone and a VM disk clone), a bare dataset and an ignored one."""
    a, b, c = images('facts-a'), images('facts-b'), images('facts-c')
    for m in (a, b, c):
        assert play(img_task(m['uuid'], host_root, source=[server.url]))['changed']
    vm = '%s/%s' % (POOL, '5ca1ab1e-0000-4000-8000-000000000001')
    disk = '%s/%s-disk0' % (POOL, '5ca1ab1e-0000-4000-8000-000000000002')
    run('zfs', 'clone', '%s/%s@final' % (POOL, a['uuid']), vm)
    run('zfs', 'clone', '%s/%s@final' % (POOL, a['uuid']), disk)
    bare = '0ddba11a-0000-4000-8000-00000000000b'
    ignored = '0ddba11a-0000-4000-8000-00000000000c'
    for name in (bare, ignored):
        run('zfs', 'create', '%s/%s' % (POOL, name))
        run('zfs', 'snapshot', '%s/%s@final' % (POOL, name))
    run('zfs', 'set', 'imgadm:ignore=true', '%s/%s' % (POOL, ignored))
    write(os.path.join(host_root, 'var', 'imgadm', 'images', '%s-%s.json' % (POOL, c['uuid'])), '{"manifest": {')
    yield {'a': a, 'b': b, 'c': c, 'vm': vm, 'disk': disk, 'bare': bare, 'ignored': ignored}
    for name in (vm, disk):
        retry_busy('zfs', 'destroy', name)
    for uuid in (a['uuid'], b['uuid'], c['uuid'], bare, ignored):
        retry_busy('zfs', 'destroy', '-r', '%s/%s' % (POOL, uuid))


def test_installed_images(play, installed, host_root, server):
    a, b, c = installed['a'], installed['b'], installed['c']
    check = play(facts_task(host_root, pools=[POOL]), check=True)
    real = play(facts_task(host_root, pools=[POOL]))
    assert not real['changed'] and check['ansible_facts'] == real['ansible_facts']
    found = real['ansible_facts']['smartos_images']
    assert found[a['uuid']] == {'manifest': a, 'zpool': POOL, 'source': server.url,
                                'clones': sorted([installed['vm'], installed['disk']]), 'manifest_cached': True}
    assert found[b['uuid']]['clones'] == [] and found[b['uuid']]['manifest'] == b
    # a corrupt cache file is reported on its image, and the rest still comes back (imgadm crashes here)
    assert found[c['uuid']]['manifest'] == {'uuid': c['uuid']} and 'cannot be read' in found[c['uuid']]['error']
    assert found[installed['bare']] == {'manifest': {'uuid': installed['bare']}, 'zpool': POOL, 'clones': [],
                                        'manifest_cached': False}
    assert installed['ignored'] not in found
    # VM datasets (a clone without its own @final, a -disk0) are not images
    assert not [u for u in found if u.startswith('5ca1ab1e')]
    assert real['ansible_facts']['smartos_image_sources'] == [
        {'url': 'https://images.smartos.org', 'type': 'imgapi', 'insecure': False, 'implicit': True}]
    assert 'smartos_images_available' not in real['ansible_facts']


def test_facts_reach_hostvars_and_filters(play, installed, host_root):
    a = installed['a']
    tasks = [facts_task(host_root, pools=[POOL], gather_subset=['installed'], filters={'name': a['name']}),
             {'name': 'echo', 'ansible.builtin.debug': {'msg': "{{ hostvars[inventory_hostname].smartos_images | list }}"}}]
    result = play(tasks)
    assert result['msg'] == [a['uuid']]
    by_substring = play(facts_task(host_root, pools=[POOL], gather_subset=['installed'],
                                   filters={'name': '~facts-', 'zpool': POOL, 'disabled': False}))
    assert sorted(by_substring['ansible_facts']['smartos_images']) == sorted(installed[k]['uuid'] for k in 'abc' if k != 'c')
    newest = play(facts_task(host_root, pools=[POOL], gather_subset=['installed'], newest=True,
                             filters={'name': '~facts-'}))
    assert set(newest['ansible_facts']['smartos_images']) <= {installed['a']['uuid'], installed['b']['uuid']}


def test_available_images(play, images, server, tls_server, host_root):
    a = images('avail-a')
    write(os.path.join(host_root, 'var', 'imgadm', 'imgadm.conf'), json.dumps({'sources': [
        {'type': 'imgapi', 'url': 'http://127.0.0.1:9'},
        {'type': 'imgapi', 'url': server.url},
        {'type': 'imgapi', 'url': tls_server.url, 'insecure': True},
        {'type': 'docker', 'url': 'https://docker.io'}]}))
    result = play(facts_task(host_root, gather_subset=['available'], retries=0))
    facts = result['ansible_facts']
    listed = [e for e in facts['smartos_images_available'] if e['manifest']['uuid'] == a['uuid']]
    assert listed == [{'manifest': a, 'source': server.url}]  # once, from the first source that has it
    assert len({e['manifest']['uuid'] for e in facts['smartos_images_available']}) == len(facts['smartos_images_available'])
    assert [e['source'] for e in facts['smartos_images_available_errors']] == ['http://127.0.0.1:9']
    assert '127.0.0.1:9' in result['_stdout'] + result['_stderr']  # the failing source is a warning on the console
    filtered = play(facts_task(host_root, gather_subset=['available'], retries=0, filters={'uuid': a['uuid']}))
    assert [e['manifest']['uuid'] for e in filtered['ansible_facts']['smartos_images_available']] == [a['uuid']]


def test_available_fails_only_when_no_source_answers(play, server, host_root):
    write(os.path.join(host_root, 'var', 'imgadm', 'imgadm.conf'), json.dumps({'sources': [
        {'type': 'imgapi', 'url': 'http://127.0.0.1:9'}, {'type': 'imgapi', 'url': server.url}]}))
    server.add_fault('bad_json', on='list')
    result = play(facts_task(host_root, gather_subset=['available'], retries=0))
    assert result['failed'] and 'no image source answered' in result['msg']
    assert '127.0.0.1:9' in result['msg'] and 'invalid JSON' in result['msg']


def test_original_layout_facts(play, images, images_dir, server, host_root):
    manifest = images('facts-dsapi', compression='bzip2', publish_it=False)
    publish(images_dir, manifest, images.path('facts-dsapi'), dsmanifest=v1_manifest(manifest, images.path('facts-dsapi')))
    dsapi = server.url + '/datasets'
    original_root(host_root, '# old\n' + dsapi + '\n')
    assert play(img_task(manifest['uuid'], host_root))['changed']
    facts = play(facts_task(host_root, pools=[POOL], gather_subset=['all']))['ansible_facts']
    entry = facts['smartos_images'][manifest['uuid']]
    assert entry['manifest']['v'] == 2 and entry['manifest']['name'] == manifest['name'] and entry['source'] == dsapi
    assert facts['smartos_images_layout'] == 'original'
    assert facts['smartos_image_sources'] == [{'url': dsapi, 'type': 'dsapi', 'insecure': False, 'implicit': False}]
    assert manifest['uuid'] in [e['manifest']['uuid'] for e in facts['smartos_images_available']]
    retry_busy('zfs', 'destroy', '-r', '%s/%s' % (POOL, manifest['uuid']))


@pytest.mark.parametrize('args,words', [
    ({'gather_subset': ['everything']}, 'unknown gather_subset "everything"'),
    ({'filters': {'name': ['a']}}, 'a filter value must be a string'),
    ({'filters': {'': 'x'}}, 'is not a field name'),
    ({'pools': ['9bad']}, 'not a valid ZFS pool name'),
    ({'pools': ['nosuchpool']}, 'does not exist'),
])
def test_bad_input(play, host_root, args, words):
    result = play(facts_task(host_root, **args))
    assert result['failed'] and words in result['msg'], result['msg']
