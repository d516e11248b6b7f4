"""A lone surrogate in an image server's manifest ("\\ud800" is valid JSON, and IMGAPI's JSON.stringify sends it):
smartos_image imports the image, smartos_image_source caches it, smartos_image_facts lists it, on a real zfs-fuse
pool with the real test image server through real ansible-playbook. The files written are valid UTF-8, read back
the same and a second run changes nothing (the *_files tests); the tasks' results reach the controller, which
refuses a lone surrogate, with U+FFFD in its place (the *_results tests)."""
from __future__ import annotations

import json
import os
import re
import urllib.request

import pytest

from tests.integration.conftest import POOL, four_runs
from tests.integration.test_smartos_image_source import v1_manifest
from tests.lib.imgserver_ctl import publish
from tests.lib.zfspool import retry_busy, run

pytestmark = pytest.mark.usefixtures('collection_built')

DESCRIPTION = 'caf\u00e9 \ud800 \\\udc80 end'
TAGS = {'k\udc80ey': 'v\ud800', 'plain': 'caf\u00e9'}


def shown(value):
    """value as a result shows it: each lone surrogate U+FFFD."""
    return json.loads(re.sub(r'\\ud[89a-f][0-9a-f]{2}', r'\\ufffd', json.dumps(value)))


def image_task(uuid, host_root, **args):
    return {'name': 'image', 'smartos.images.smartos_image': dict(uuid=uuid, pool=POOL, host_root=host_root, **args)}


def facts_task(host_root):
    return {'name': 'facts', 'smartos.images.smartos_image_facts': dict(
        host_root=host_root, pools=[POOL], gather_subset=['installed', 'available'])}


def read_file(path):
    """A file written from such JSON: valid UTF-8 (strict), the surrogates as their escapes, and its JSON."""
    with open(path, 'rb') as f:
        data = f.read()
    text = data.decode('utf-8')
    assert '\\ud800' in text and '\\udc80' in text and 'caf\u00e9' in text
    return data, json.loads(text)


def no_traceback(*results):
    for result in results:
        assert 'Traceback' not in result['_stdout'] + result['_stderr'], result
        assert 'UnicodeEncodeError' not in json.dumps(result), result


def served(server, path):
    """The bytes the test server sends for path (it escapes lone surrogates, as IMGAPI does)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(server.url + path, timeout=30) as answer:
        return answer.read()


def file_requests(server, uuid):
    return [r for r in server.requests() if r['path'] == '/images/%s/file' % uuid]


def dataset_state(uuid):
    """The dataset's guid and its snapshots: the same unless it was received again."""
    return run('zfs', 'list', '-H', '-o', 'name,guid', '-t', 'all', '-r', '%s/%s' % (POOL, uuid))


# ---- the modern layout ----

@pytest.fixture
def modern(play, images, images_dir, server, host_root, pool):
    """An image served with lone surrogates, imported with four runs; the manifest, the runs and what was kept of
    the host after the first real run."""
    manifest = dict(images('surr', publish_it=False), description=DESCRIPTION, tags=TAGS)
    publish(images_dir, manifest, images.path('surr'))
    uuid = manifest['uuid']
    assert b'\\ud800' in served(server, '/images/' + uuid)
    os.makedirs(os.path.join(host_root, 'var', 'imgadm'))
    with open(os.path.join(host_root, 'var', 'imgadm', 'imgadm.conf'), 'w', encoding='utf-8') as f:
        json.dump({'sources': [{'type': 'imgapi', 'url': server.url}]}, f)
    task = image_task(uuid, host_root)
    check, real = play(task, check=True), play(task)
    state = dataset_state(uuid)
    cache = os.path.join(host_root, 'var', 'imgadm', 'images', '%s-%s.json' % (POOL, uuid))
    with open(cache, 'rb') as f:
        first = f.read()
    check2, real2 = play(task, check=True), play(task)
    facts = play(facts_task(host_root))
    yield dict(manifest=manifest, runs=[check, real, check2, real2], facts=facts, state=state, cache=cache,
               first=first)
    retry_busy('zfs', 'destroy', '-r', '%s/%s' % (POOL, uuid))


def test_modern_layout_files(modern, server):
    manifest, uuid = modern['manifest'], modern['manifest']['uuid']
    no_traceback(*modern['runs'], modern['facts'])
    names = [line.split('\t')[0] for line in modern['state'].splitlines()]
    assert names == ['%s/%s' % (POOL, uuid), '%s/%s@final' % (POOL, uuid)]
    data, info = read_file(modern['cache'])
    assert info == {'manifest': manifest, 'zpool': POOL, 'source': server.url}
    assert data.startswith(b'{\n  "manifest": {\n    "v": 2,') and data.endswith(b'\n}\n')
    # the second runs: nothing received, downloaded or written again
    assert data == modern['first']
    assert dataset_state(uuid) == modern['state']
    assert len(file_requests(server, uuid)) == 1


def test_modern_layout_results(modern):
    manifest, uuid = modern['manifest'], modern['manifest']['uuid']
    check, real, check2, real2 = modern['runs']
    assert [r['failed'] for r in modern['runs'] + [modern['facts']]] == [False] * 5, real.get('msg')
    assert check['changed'] and real['changed'] and not check2['changed'] and not real2['changed']
    assert real['image'] == real2['image'] == shown(manifest)
    assert real['image']['description'] == 'caf\u00e9 \ufffd \\\ufffd end'
    facts = modern['facts']['ansible_facts']
    assert facts['smartos_images'][uuid]['manifest'] == shown(manifest)
    assert [e['manifest'] for e in facts['smartos_images_available'] if e['manifest']['uuid'] == uuid] == [
        shown(manifest)]


# ---- the original layout: imgadm v1's record, and imgcache.json ----

def v1_of(manifest):
    """The DSAPI (v1) description of the image, with the same lone surrogates."""
    return dict(v1_manifest(manifest, None), description=DESCRIPTION, tags=TAGS)


@pytest.fixture
def original(play, images, images_dir, server, host_root, pool):
    manifest = dict(images('surr-dsapi', compression='bzip2', publish_it=False), description=DESCRIPTION, tags=TAGS)
    publish(images_dir, manifest, images.path('surr-dsapi'), dsmanifest=v1_of(manifest))
    uuid = manifest['uuid']
    dsapi = server.url + '/datasets'
    db = os.path.join(host_root, 'var', 'db', 'imgadm')
    os.makedirs(db)
    with open(os.path.join(db, 'sources.list'), 'w', encoding='utf-8') as f:
        f.write(dsapi + '\n')
    runs = four_runs(play, image_task(uuid, host_root))
    with open(os.path.join(db, uuid + '.json'), 'rb') as f:
        record = f.read()
    cache_task = {'name': 'source', 'smartos.images.smartos_image_source': dict(host_root=host_root, update_cache=True)}
    cached = [play(cache_task, check=True), play(cache_task)]
    with open(os.path.join(db, 'imgcache.json'), 'rb') as f:
        first_cache = f.read()
    cached += [play(cache_task, check=True), play(cache_task)]
    facts = play(facts_task(host_root))
    yield dict(manifest=manifest, dsapi=dsapi, db=db, runs=runs, record=record, cached=cached,
               first_cache=first_cache, facts=facts)
    retry_busy('zfs', 'destroy', '-r', '%s/%s' % (POOL, uuid))


def test_original_layout_files(original):
    uuid, db, dsapi = original['manifest']['uuid'], original['db'], original['dsapi']
    no_traceback(*original['runs'], *original['cached'], original['facts'])
    data, recorded = read_file(os.path.join(db, uuid + '.json'))
    assert recorded['description'] == DESCRIPTION and recorded['tags'] == TAGS and recorded['_url'] == dsapi
    assert data == original['record'] and not data.endswith(b'\n')      # imgadm v1 wrote no final newline
    assert run('zfs', 'get', '-H', '-o', 'value', 'imgadm:uuid', '%s/%s' % (POOL, uuid)).strip() == uuid
    data, cache = read_file(os.path.join(db, 'imgcache.json'))
    mine = [m for m in cache if m['uuid'] == uuid]
    assert len(mine) == 1 and mine[0]['description'] == DESCRIPTION and mine[0]['tags'] == TAGS
    assert mine[0]['_url'] == dsapi
    assert data == original['first_cache']
    # the cache's own answer: its file is unchanged by the later runs (the results may not reach the controller)
    assert [r['changed'] for r in original['cached'][2:] if not r['failed']] in ([], [False], [False, False])


def test_original_layout_results(original):
    runs, cached = original['runs'], original['cached']
    assert [r['failed'] for r in runs + cached + [original['facts']]] == [False] * 9
    assert [r['changed'] for r in runs] == [True, True, False, False]
    assert [r['changed'] for r in cached] == [True, True, False, False]
    assert runs[1]['image']['description'] == shown(DESCRIPTION)
    uuid = original['manifest']['uuid']
    assert original['facts']['ansible_facts']['smartos_images'][uuid]['manifest']['tags'] == shown(TAGS)
