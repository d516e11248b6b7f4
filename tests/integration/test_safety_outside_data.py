"""Issue 10 item 6 through real ansible-playbook runs: what an image server or a cache file sends is checked where it
enters. A bad entry in a listing is skipped with a warning; a bad manifest for the image asked for is refused with an
error naming the field; nothing is imported and no run ends in a traceback."""
from __future__ import annotations

import json
import os
import uuid as uuidlib

import pytest

from tests.integration.conftest import POOL, tree_state
from tests.lib.imgserver_ctl import publish

pytestmark = pytest.mark.usefixtures('collection_built')


def warnings_of(result):
    return [w if isinstance(w, str) else w['event']['msg'] for w in result.get('warnings') or []]


def image_task(host_root, **args):
    return {'name': 'image', 'smartos.images.smartos_image': dict(pool=POOL, host_root=host_root, **args)}


def no_traceback(result):
    text = json.dumps(result)
    assert 'Traceback' not in text and 'TypeError' not in text and 'AttributeError' not in text


def test_a_listing_entry_with_a_bad_published_at_is_skipped_with_a_warning(
        play, images, images_dir, server, host_root, pool):
    good = images('od-listing')
    # the same name, "newer" by position, with a published_at of the wrong type: imgadm's sort would compare it
    bad = dict(good, uuid=str(uuidlib.uuid4()), published_at=20990101)
    publish(images_dir, bad, images.path('od-listing'))
    result = play(image_task(host_root, name=good['name'], source=[server.url]), check=True)
    no_traceback(result)
    assert not result['failed'], result.get('msg')
    assert result['uuid'] == good['uuid']
    assert [w for w in warnings_of(result) if bad['uuid'] in w], warnings_of(result)


def test_the_manifest_asked_for_with_a_field_of_the_wrong_type_is_refused_naming_it(
        play, images, images_dir, server, host_root, pool):
    good = images('od-badfield', publish_it=False)
    bad = dict(good, files=[dict(good['files'][0], size=str(good['files'][0]['size']))])
    publish(images_dir, bad, images.path('od-badfield'))
    before = pool.datasets(), tree_state(host_root)
    result = play(image_task(host_root, uuid=good['uuid'], source=[server.url]))
    no_traceback(result)
    assert result['failed'] and 'files[0].size' in result['msg'], result.get('msg')
    assert (pool.datasets(), tree_state(host_root)) == before


def test_a_v1_manifest_whose_files_are_not_objects_is_refused_naming_the_field(
        play, images, images_dir, server, host_root, pool):
    manifest = images('od-v1files', compression='bzip2', publish_it=False)
    v1 = {'uuid': manifest['uuid'], 'name': manifest['name'], 'version': manifest['version'], 'os': 'smartos',
          'type': 'zone-dataset', 'description': 'files of the wrong shape',
          'creator_uuid': '930896af-bf8c-48d4-885c-6573a94b1853', 'published_at': '2012-08-31T10:01Z',
          'files': [{'path': 'od.zfs.bz2', 'sha1': manifest['files'][0]['sha1'], 'size': manifest['files'][0]['size']},
                    'od.zfs.bz2']}   # the second entry is not an object
    publish(images_dir, manifest, images.path('od-v1files'), dsmanifest=v1)
    conf = os.path.join(host_root, 'var', 'imgadm', 'imgadm.conf')
    os.makedirs(os.path.dirname(conf))
    with open(conf, 'w', encoding='utf-8') as f:
        json.dump({'sources': [{'type': 'dsapi', 'url': server.url + '/datasets'}]}, f)
    before = pool.datasets(), tree_state(host_root)
    result = play(image_task(host_root, uuid=manifest['uuid']))
    no_traceback(result)
    assert result['failed'] and 'files[1]' in result['msg'], result.get('msg')
    assert (pool.datasets(), tree_state(host_root)) == before


def test_facts_report_a_cache_file_with_fields_of_the_wrong_type_on_its_image(play, images, server, host_root, pool):
    manifest = images('od-facts')
    imported = play(image_task(host_root, uuid=manifest['uuid'], source=[server.url]))
    assert imported['changed'], imported.get('msg')
    try:
        cache = os.path.join(host_root, 'var', 'imgadm', 'images', '%s-%s.json' % (POOL, manifest['uuid']))
        with open(cache, encoding='utf-8') as f:
            info = json.load(f)
        info['manifest']['name'] = ['not', 'a', 'string']
        info['source'] = 42
        with open(cache, 'w', encoding='utf-8') as f:
            json.dump(info, f)
        result = play({'name': 'facts', 'smartos.images.smartos_image_facts': dict(host_root=host_root, pools=[POOL])})
        no_traceback(result)
        assert not result['failed'], result.get('msg')
        entry = result['ansible_facts']['smartos_images'][manifest['uuid']]
        assert entry.get('error') and 'name' in entry['error'], entry
        assert entry['manifest'].get('name') != ['not', 'a', 'string']
    finally:
        play(image_task(host_root, uuid=manifest['uuid'], state='absent'))
