"""smartos_image_source on both host layouts, and imports that follow the configured sources."""
from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest

from tests.integration.conftest import POOL, four_runs, tree_state
from tests.lib.imgserver_ctl import publish
from tests.lib.zfspool import retry_busy, run

pytestmark = pytest.mark.usefixtures('collection_built')

DEFAULT = {'url': 'https://images.smartos.org', 'type': 'imgapi', 'insecure': False}


def src_task(host_root, **args):
    return {'name': 'sources', 'smartos.images.smartos_image_source': dict(host_root=host_root, **args)}


def img_task(uuid, host_root, **args):
    return {'name': 'image', 'smartos.images.smartos_image': dict(uuid=uuid, pool=POOL, host_root=host_root, **args)}


def conf_path(root):
    return os.path.join(root, 'var', 'imgadm', 'imgadm.conf')


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    os.chmod(path, mode)


def read(path):
    with open(path, encoding='utf-8') as f:
        return f.read()


def entry(url, type='imgapi', insecure=False):
    return {'url': url, 'type': type, 'insecure': insecure}


def test_add_to_implicit_default_four_runs(play, server, host_root):
    write(conf_path(host_root), '{"dockerImportSkipUuids": true, "upgradedToVer": "3.0.0", "userAgentExtra": "x"}',
          mode=0o600)
    check, real, check2, real2 = four_runs(play, src_task(host_root, url=server.url))
    assert check['changed'] and real['changed'] and not check2['changed'] and not real2['changed']
    assert check['diff'] == real['diff']
    assert real['diff']['before'] == {'sources': [DEFAULT]}
    assert real['sources'] == [DEFAULT, entry(server.url)]
    assert check2['implicit_default'] is False
    text = read(conf_path(host_root))
    # imgadm keeps the implicit default when adding next to it; unknown keys stay; 2-space JSON, no newline
    assert json.loads(text) == {'dockerImportSkipUuids': True, 'upgradedToVer': '3.0.0', 'userAgentExtra': 'x',
                                'sources': [{'type': 'imgapi', 'url': 'https://images.smartos.org'},
                                            {'type': 'imgapi', 'url': server.url}]}
    assert text == json.dumps(json.loads(text), indent=2) and not text.endswith('\n')
    assert stat.S_IMODE(os.stat(conf_path(host_root)).st_mode) == 0o600
    assert sorted(os.listdir(os.path.dirname(conf_path(host_root)))) == ['imgadm.conf', 'imgadm.conf.lock']


def test_removing_the_implicit_default_leaves_an_empty_list(play, host_root):
    result = play(src_task(host_root, url='https://images.smartos.org/', state='absent'))
    assert result['changed'] and result['sources'] == []
    # imgadm sources -d on a fresh host: its defaults and upgrade version are written too
    assert json.loads(read(conf_path(host_root))) == {'dockerImportSkipUuids': True, 'upgradedToVer': '3.0.0',
                                                      'sources': []}
    assert not play(src_task(host_root, url='https://images.smartos.org', state='absent'))['changed']


def test_exclusive_ordered_list_four_runs(play, server, tls_server, host_root):
    write(conf_path(host_root), json.dumps({'sources': [{'type': 'imgapi', 'url': tls_server.url},
                                                        {'type': 'imgapi', 'url': 'http://127.0.0.1:9'}],
                                            'futureKey': [1, 2]}, indent=2))
    wanted = [{'url': server.url}, {'url': tls_server.url + '/', 'insecure': True}]
    check, real, check2, real2 = four_runs(play, src_task(host_root, sources=wanted, validate_certs=False))
    assert check['changed'] and real['changed'] and not check2['changed'] and not real2['changed']
    assert check['diff'] == real['diff']
    assert real['sources'] == [entry(server.url), entry(tls_server.url + '/', insecure=True)]
    config = json.loads(read(conf_path(host_root)))
    assert config['futureKey'] == [1, 2]
    assert config['sources'] == [{'type': 'imgapi', 'url': server.url},
                                 {'type': 'imgapi', 'url': tls_server.url + '/', 'insecure': True}]
    # reordering is a change; the same list with equivalent URLs is not
    swapped = play(src_task(host_root, sources=list(reversed(wanted)), validate_certs=False))
    assert swapped['changed'] and swapped['sources'][0]['url'] == tls_server.url + '/'
    same = [{'url': tls_server.url + ':443/' if tls_server.url.startswith('https://127.0.0.1:443') else tls_server.url + '/',
             'insecure': True}, {'url': server.url + '/'}]
    assert not play(src_task(host_root, sources=same, validate_certs=False))['changed']


def test_ping_failure_adds_nothing(play, host_root):
    before = tree_state(host_root)
    result = play(src_task(host_root, url='http://127.0.0.1:9', retries=0))
    assert result['failed'] and 'unexpected ping error' in result['msg'] and 'ping: false' in result['msg']
    assert tree_state(host_root) == before
    result = play(src_task(host_root, url='http://127.0.0.1:9', ping=False))
    assert result['changed']


def test_ping_fault_from_the_server(play, server, host_root):
    server.add_fault('status', on='ping', arg=503)
    result = play(src_task(host_root, url=server.url, retries=0))
    assert result['failed'] and 'HTTP 503' in result['msg']
    assert not os.path.exists(conf_path(host_root))


@pytest.mark.parametrize('content,words', [
    ('{"sources": [', 'is not valid JSON'),
    ('{"sources": {"url": "x"}}', '"sources" must be a list'),
    ('[1, 2]', 'must hold a JSON object'),
    ('{"sources": [{"type": "imgapi"}]}', 'entry 1 of "sources" has null "url", not a string'),
    ('{"sources": [{"type": "ftp", "url": "http://x"}]}', 'is invalid: must be one of'),
])
def test_broken_config_is_left_byte_for_byte(play, host_root, content, words):
    write(conf_path(host_root), content)
    result = play(src_task(host_root, url='http://127.0.0.1:9', ping=False))
    assert result['failed'] and words in result['msg'] and conf_path(host_root) in result['msg']
    assert read(conf_path(host_root)) == content


@pytest.mark.parametrize('args,words', [
    ({'url': 'ftp://127.0.0.1/x'}, 'is not an http:// or https:// URL'),
    ({'url': 'http://127.0.0.1/x', 'type': 'dsapi'}, 'does not end with "/datasets"'),
    ({'url': 'http://127.0.0.1/x', 'type': 'bogus'}, 'value of type must be one of'),
])
def test_bad_source_input(play, host_root, args, words):
    result = play(src_task(host_root, ping=False, **args))
    assert result['failed'] and words in result['msg'], result['msg']
    assert tree_state(host_root) == {}


def test_credentials_never_shown(play, server, host_root):
    secret = server.url.replace('http://', 'http://admin:hunter2@')
    result = play(src_task(host_root, url=secret))
    assert result['changed']
    assert 'hunter2' not in json.dumps(result)
    assert 'hunter2' in read(conf_path(host_root))  # imgadm needs it; only output hides it
    bad = play(src_task(host_root, url=secret.replace(server.url.split('//')[1], '127.0.0.1:9'), retries=0))
    assert bad['failed'] and 'hunter2' not in json.dumps(bad)


def test_two_processes_adding_at_once_both_land(play, host_root):
    procs = []
    for port in (9001, 9002, 9003, 9004):
        argv, env, record = play.command(src_task(host_root, url='http://127.0.0.1:%d' % port, ping=False))
        procs.append((subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), record))
    for proc, dummy in procs:
        assert proc.wait(timeout=120) == 0
    urls = [s['url'] for s in json.loads(read(conf_path(host_root)))['sources']]
    assert urls[0] == DEFAULT['url'] and sorted(urls[1:]) == ['http://127.0.0.1:%d' % p for p in (9001, 9002, 9003, 9004)]


def test_import_follows_configured_sources_in_order(play, images, server, host_root):
    manifest = images('configured')
    uuid = manifest['uuid']
    write(conf_path(host_root), json.dumps({'sources': [
        {'type': 'imgapi', 'url': 'http://127.0.0.1:9'},
        {'type': 'docker', 'url': 'https://docker.io'},
        {'type': 'imgapi', 'url': server.url}]}))
    result = play(img_task(uuid, host_root, retries=0))
    assert result['changed'] and result['source'] == server.url
    cached = json.loads(read(os.path.join(host_root, 'var', 'imgadm', 'images', '%s-%s.json' % (POOL, uuid))))
    assert cached['source'] == server.url
    retry_busy('zfs', 'destroy', '-r', '%s/%s' % (POOL, uuid))
    missing = play(img_task('11111111-2222-4333-8444-555555555555', host_root, retries=0))
    assert missing['failed'] and '127.0.0.1:9' in missing['msg'] and 'docker' in missing['msg']
    assert server.url in missing['msg']


def test_no_sources_configured(play, host_root):
    write(conf_path(host_root), '{"sources": []}')
    result = play(img_task('11111111-2222-4333-8444-555555555555', host_root))
    assert result['failed'] and 'no image source' in result['msg'] and 'imgadm.conf' in result['msg']


def test_channel_is_passed_on(play, images, images_dir, server, host_root):
    manifest = dict(images('channel', publish_it=False), channels=['experimental'])
    publish(images_dir, manifest, images.path('channel'))
    uuid = manifest['uuid']
    assert play(img_task(uuid, host_root, source=[server.url], retries=0))['failed']
    server.clear_requests()
    result = play(img_task(uuid, host_root, source=[server.url + '?channel=experimental']))
    assert result['changed']
    assert all(r['query'].get('channel') == 'experimental' for r in server.requests() if uuid in r['path'])
    retry_busy('zfs', 'destroy', '-r', '%s/%s' % (POOL, uuid))


def v1_manifest(manifest, path):
    """The DSAPI (v1) description of an image file."""
    return {'uuid': manifest['uuid'], 'name': manifest['name'], 'version': manifest['version'],
            'description': 'dsapi ' + manifest['description'], 'os': 'smartos', 'type': 'zone-dataset',
            'urn': 'smartos:tests:%s:%s' % (manifest['name'], manifest['version']),
            'creator_uuid': '930896af-bf8c-48d4-885c-6573a94b1853', 'creator_name': 'tests',
            'vendor_uuid': '930896af-bf8c-48d4-885c-6573a94b1853', 'cloud_name': 'smartos',
            'platform_type': 'smartos', 'published_at': '2012-08-31T10:01Z', 'created_at': '2012-08-31T10:01Z',
            'files': [{'path': '%s-%s.zfs.bz2' % (manifest['name'], manifest['version']),
                       'sha1': manifest['files'][0]['sha1'], 'size': manifest['files'][0]['size']}]}


def original_root(host_root, sources_list):
    write(os.path.join(host_root, 'var', 'db', 'imgadm', 'sources.list'), sources_list)


def test_original_layout_sources_list(play, server, host_root):
    listing = '# image servers, one per line\n\nhttps://datasets.example/datasets\n$ not a source\n'
    original_root(host_root, listing)
    dsapi = server.url + '/datasets'
    check, real, check2, real2 = four_runs(play, src_task(host_root, url=dsapi, type='dsapi'))
    assert real['layout'] == 'original' and check['changed'] and real['changed'] and not real2['changed']
    assert check['diff'] == real['diff']
    path = os.path.join(host_root, 'var', 'db', 'imgadm', 'sources.list')
    assert read(path) == listing + dsapi + '\n'
    result = play(src_task(host_root, url='https://datasets.example/datasets', type='dsapi', state='absent'))
    assert result['changed'] and read(path) == '# image servers, one per line\n\n$ not a source\n' + dsapi + '\n'
    assert not os.path.exists(os.path.join(host_root, 'var', 'imgadm'))
    refused = play(src_task(host_root, url=server.url))
    assert refused['failed'] and 'dsapi' in refused['msg']


def test_original_layout_update_cache(play, images, images_dir, server, host_root):
    manifest = images('dscache', compression='bzip2', publish_it=False)
    publish(images_dir, manifest, images.path('dscache'), dsmanifest=v1_manifest(manifest, images.path('dscache')))
    dsapi = server.url + '/datasets'
    original_root(host_root, dsapi + '\n')
    cache = os.path.join(host_root, 'var', 'db', 'imgadm', 'imgcache.json')
    check = play(src_task(host_root, update_cache=True), check=True)
    assert check['changed'] and check['cache_updated'] and not os.path.exists(cache)
    real = play(src_task(host_root, update_cache=True))
    assert real['changed'] and real['cache_updated']
    data = json.loads(read(cache))
    assert manifest['uuid'] in [m['uuid'] for m in data] and all(m['_url'] == dsapi for m in data)
    assert not play(src_task(host_root, update_cache=True))['changed']
    refused = play(src_task(host_root, update_cache=True, layout='modern'))
    assert refused['failed'] and 'original imgadm layout' in refused['msg']


def test_dsapi_import_on_the_original_layout(play, images, images_dir, server, host_root, pool):
    manifest = images('dsapi', compression='bzip2', publish_it=False)
    v1 = v1_manifest(manifest, images.path('dsapi'))
    publish(images_dir, dict(manifest, state='disabled'), images.path('dsapi'), dsmanifest=v1)
    uuid = manifest['uuid']
    dsapi = server.url + '/datasets'
    original_root(host_root, '# dsapi\n' + dsapi + '\n')
    check, real, check2, real2 = four_runs(play, img_task(uuid, host_root))
    assert check['changed'] and real['changed'] and not check2['changed'] and not real2['changed']
    assert check['diff'] == real['diff']
    assert real['source'] == dsapi
    assert real['image']['v'] == 2 and real['image']['owner'] == v1['creator_uuid']
    assert real['image']['published_at'] == '2012-08-31T10:01:00Z' and real['image']['files'][0]['compression'] == 'bzip2'
    # what imgadm v1 recorded: the manifest under /var/db/imgadm and imgadm:uuid on the dataset
    recorded = json.loads(read(os.path.join(host_root, 'var', 'db', 'imgadm', uuid + '.json')))
    served_file = dict(v1['files'][0], url='%s/%s/%s' % (dsapi, uuid, v1['files'][0]['path']))
    assert recorded == dict(v1, files=[served_file], _url=dsapi)
    assert run('zfs', 'get', '-H', '-o', 'value', 'imgadm:uuid', '%s/%s' % (POOL, uuid)).strip() == uuid
    assert not os.path.exists(os.path.join(host_root, 'var', 'imgadm'))
    assert real2['image']['name'] == manifest['name']  # the v1 record is read back, upgraded
    file_urls = [r['path'] for r in server.requests() if r['path'].startswith('/datasets/%s/' % uuid)]
    assert file_urls == ['/datasets/%s/%s' % (uuid, v1['files'][0]['path'])]
    gone = play(img_task(uuid, host_root, state='absent'))
    assert gone['changed'] and gone['diff']['before']['images'][uuid] == '%s@%s' % (manifest['name'], manifest['version'])
    assert uuid not in gone['diff']['after']['images']
    assert not os.path.exists(os.path.join(host_root, 'var', 'db', 'imgadm', uuid + '.json'))
    assert not [line for line in pool.datasets() if uuid in line]


def test_dsapi_source_on_the_modern_layout(play, images, images_dir, server, host_root):
    manifest = images('dsapi-modern', compression='bzip2', publish_it=False)
    publish(images_dir, manifest, images.path('dsapi-modern'), dsmanifest=v1_manifest(manifest, images.path('dsapi-modern')))
    dsapi = server.url + '/datasets'
    assert play(src_task(host_root, sources=[{'url': dsapi, 'type': 'dsapi'}]))['changed']
    result = play(img_task(manifest['uuid'], host_root))
    assert result['changed'] and result['source'] == dsapi
    cached = json.loads(read(os.path.join(host_root, 'var', 'imgadm', 'images', '%s-%s.json' % (POOL, manifest['uuid']))))
    assert cached['manifest']['v'] == 2 and cached['source'] == dsapi
    retry_busy('zfs', 'destroy', '-r', '%s/%s' % (POOL, manifest['uuid']))
