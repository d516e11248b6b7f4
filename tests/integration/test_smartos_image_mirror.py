"""smartos_image_mirror against the real image server (IMGAPI and DSAPI), through ansible-playbook."""
from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import time

import pytest

from tests.integration.conftest import four_runs
from tests.integration.test_examples import (  # noqa: F401 pylint: disable=unused-import  # fixtures
    example_pool, example_ports, example_servers, examples,
)
from tests.lib.imagebuilder import build_chain
from tests.lib.imgserver_ctl import publish
from tests.lib.procs import kill_tree

pytestmark = pytest.mark.usefixtures('collection_built')


def mirror_task(path, source, images=None, **options):
    args = dict(path=path, source=source if isinstance(source, list) else [source], images=images or [])
    args.update(options)
    return {'name': 'mirror', 'smartos.images.smartos_image_mirror': args}


def file_requests(server, uuid=None):
    """The requests for image files (IMGAPI /images/<uuid>/file, DSAPI /datasets/<uuid>/<path>)."""
    return [r for r in server.requests()
            if (r['path'].endswith('/file') or r['path'].startswith('/datasets/') and r['path'].count('/') > 2)
            and (uuid is None or uuid in r['path'])]


def compact(manifest):
    return json.dumps(manifest, separators=(',', ':')).encode()


def read(*parts):
    with open(os.path.join(*parts), 'rb') as f:
        return f.read()


@pytest.fixture(scope='module')
def chain(pool, images_dir, tmp_path_factory):
    """A base image and an incremental child of it, published: [(manifest, file path)], base first.

    The base is published a day before the child, as with real images: both are built within a second or so,
    and the listing order (published_at, then uuid) would otherwise depend on their random UUIDs."""
    built = build_chain(pool.name, str(tmp_path_factory.mktemp('mirror-chain')), ['mirror-base', 'mirror-top'])
    built[0][0]['published_at'] = '2024-03-01T10:00:00.000Z'
    built[1][0]['published_at'] = '2024-03-02T10:00:00.000Z'
    for manifest, path in built:
        publish(images_dir, manifest, path)
    return built


@pytest.fixture
def mirror(tmp_path):
    return str(tmp_path / 'mirror')


def test_four_runs_mirror_an_image_and_its_origin_once(play, server, chain, mirror):
    (base, base_path), (top, top_path) = chain
    check, real, check2, real2 = four_runs(play, mirror_task(mirror, server.url, [{'uuid': top['uuid']}]))
    assert not any(r['failed'] for r in (check, real, check2, real2)), real['msg'] if real['failed'] else check2
    assert check['changed'] and real['changed'] and not check2['changed'] and not real2['changed']
    for key in ('added', 'removed', 'kept', 'images', 'diff'):
        assert check[key] == real[key], key
    assert [a['uuid'] for a in real['added']] == [base['uuid'], top['uuid']]
    assert real['bytes'] == base['files'][0]['size'] + top['files'][0]['size'] and check['bytes'] == 0
    assert [k['uuid'] for k in real2['kept']] == sorted([base['uuid'], top['uuid']]) and real2['added'] == []
    # each file asked once, by the real run: never in check mode, never when mirrored
    assert sorted(r['path'] for r in file_requests(server)) == sorted(
        '/images/%s/file' % m['uuid'] for m in (base, top))
    for manifest, path in chain:
        folder = os.path.join(mirror, 'images', manifest['uuid'])
        assert sorted(os.listdir(folder)) == ['file', 'manifest.json']
        assert read(folder, 'file') == read(path)
        assert read(folder, 'manifest.json') == compact(manifest)
    # images.json in ListImages' order, published_at then uuid: the base, published first, leads
    listed = json.loads(read(mirror, 'images.json'))
    assert listed == sorted([top, base], key=lambda m: (m['published_at'], m['uuid'])) == [base, top]
    assert json.loads(read(mirror, 'ping.json'))['imgapi'] is True


def diff_lines(stdout, sign):
    """The image lines ('uuid name@version') the default callback's --diff output marks with sign ('+' or '-')."""
    return re.findall(r'^\%s\s+"([0-9a-f-]{36} [^"]+)",?$' % sign, stdout, re.M)


def test_diff_and_check_show_the_images_before_and_after(play, server, images, mirror):
    """--diff --check, then --diff, then removing it, through ansible-playbook's default callback: rc 0 and the
    image line shown added (+) or removed (-)."""
    manifest = images('mirror-diff')
    shown = '%s %s@%s' % (manifest['uuid'], manifest['name'], manifest['version'])
    task = mirror_task(mirror, server.url, [{'uuid': manifest['uuid']}])
    for check in (True, False):
        result = play(task, check=check)
        assert result['_rc'] == 0 and not result['failed'], result['_stdout'] + result['_stderr']
        assert result['diff'] == {'before': {'images': []}, 'after': {'images': [shown]}}
        assert diff_lines(result['_stdout'], '+') == [shown] and diff_lines(result['_stdout'], '-') == []
        # the callback showed it: no "Callback dispatch 'v2_on_file_diff' failed" warning (older cores: "Failure using method")
        assert not re.search('Callback dispatch|Failure using method|splitlines', result['_stdout'] + result['_stderr'])
    assert os.path.isfile(os.path.join(mirror, 'images', manifest['uuid'], 'file'))
    gone = play(mirror_task(mirror, server.url, [{'uuid': manifest['uuid']}], state='absent'), check=True)
    assert gone['_rc'] == 0 and gone['changed'], gone['_stdout'] + gone['_stderr']
    assert diff_lines(gone['_stdout'], '-') == [shown] and diff_lines(gone['_stdout'], '+') == []
    unchanged = play(task)
    assert unchanged['_rc'] == 0 and not unchanged['changed']
    assert diff_lines(unchanged['_stdout'], '+') == diff_lines(unchanged['_stdout'], '-') == []


def test_a_name_entry_mirrors_the_newest_and_asks_only_the_listing_again(play, server, images, mirror):
    manifest = images('mirror-named')
    task = mirror_task(mirror, server.url, [{'name': manifest['name']}])
    first = play(task)
    assert not first['failed'] and [a['uuid'] for a in first['added']] == [manifest['uuid']]
    server.clear_requests()
    again = play(task)
    assert not again['failed'] and not again['changed']
    assert file_requests(server) == [] and {r['path'] for r in server.requests()} == {'/images'}


def test_a_dsapi_upstream_is_stored_as_a_v2_manifest(play, server, images, images_dir, mirror):
    from tests.integration.test_smartos_image_source import v1_manifest
    manifest = images('mirror-dsapi')
    v1 = v1_manifest(manifest, images.path('mirror-dsapi'))
    publish(images_dir, manifest, images.path('mirror-dsapi'), dsmanifest=v1)
    result = play(mirror_task(mirror, server.url + '/datasets', [{'uuid': manifest['uuid']}]))
    assert not result['failed'], result.get('msg')
    stored = json.loads(read(mirror, 'images', manifest['uuid'], 'manifest.json'))
    assert stored['v'] == 2 and stored['state'] == 'active' and stored['name'] == manifest['name']
    assert stored['files'] == [{'sha1': manifest['files'][0]['sha1'], 'size': manifest['files'][0]['size'],
                                'compression': 'bzip2'}]
    assert 'creator_uuid' not in stored and stored['published_at'] == '2012-08-31T10:01:00Z'
    assert read(mirror, 'images', manifest['uuid'], 'file') == read(images.path('mirror-dsapi'))
    wanted = '/datasets/%s/%s' % (manifest['uuid'], v1['files'][0]['path'])
    assert [r['path'] for r in file_requests(server)] == [wanted]


def test_a_corrupt_upstream_file_leaves_nothing_under_the_final_name(play, server, images, mirror):
    manifest = images('mirror-corrupt')
    server.add_fault('wrong_bytes', uuid=manifest['uuid'], on='file')
    result = play(mirror_task(mirror, server.url, [{'uuid': manifest['uuid']}]))
    assert result['failed'] and 'checksum (sha1) error' in result['msg']
    folder = os.path.join(mirror, 'images', manifest['uuid'])
    assert not os.path.exists(folder) or os.listdir(folder) == []
    assert json.loads(read(mirror, 'images.json')) == []
    server.clear_faults()
    assert not play(mirror_task(mirror, server.url, [{'uuid': manifest['uuid']}]))['failed']
    assert read(folder, 'file') == read(images.path('mirror-corrupt'))


def test_a_killed_run_is_resumed_from_its_partial_file(play, server, images, mirror):
    manifest = images('mirror-resume', random_mb=3)
    uuid = manifest['uuid']
    size = manifest['files'][0]['size']
    server.add_fault('slow', uuid=uuid, on='file', arg=10)   # headers after 10 s, then 20 pieces over 10 s
    argv, env, dummy = play.command(mirror_task(mirror, server.url, [{'uuid': uuid}]), check=False, diff=False)
    partial = os.path.join(mirror, 'images', uuid, 'file.partial')
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not (os.path.exists(partial) and os.path.getsize(partial) > 0):
            time.sleep(0.1)
    finally:
        kill_tree(proc.pid)
        proc.wait(30)
    have = os.path.getsize(partial)
    assert 0 < have < size
    assert not os.path.exists(os.path.join(mirror, 'images', uuid, 'manifest.json'))
    server.clear_faults()
    server.clear_requests()
    result = play(mirror_task(mirror, server.url, [{'uuid': uuid}]))
    assert not result['failed'], result.get('msg')
    requests = file_requests(server, uuid)
    assert len(requests) == 1 and requests[0]['headers'].get('range', '').startswith('bytes=')
    resumed_at = int(requests[0]['headers']['range'][len('bytes='):].rstrip('-'))
    assert resumed_at >= have and result['bytes'] == size - resumed_at
    assert read(mirror, 'images', uuid, 'file') == read(images.path('mirror-resume'))
    assert not os.path.exists(partial)


def test_absent_refuses_an_origin_that_stays_and_prune_keeps_ancestors(play, server, chain, images, mirror):
    (base, dummy), (top, dummy) = chain
    other = images('mirror-other')
    assert not play(mirror_task(mirror, server.url, [{'uuid': top['uuid']}, {'uuid': other['uuid']}]))['failed']
    refused = play(mirror_task(mirror, server.url, [{'uuid': base['uuid']}], state='absent'))
    assert refused['failed'] and 'has it as its origin' in refused['msg'] and top['uuid'] in refused['msg']
    server.clear_requests()
    pruned = play(mirror_task(mirror, server.url, [{'uuid': top['uuid']}], prune=True))
    assert [r['uuid'] for r in pruned['removed']] == [other['uuid']] and server.requests() == []
    assert sorted(os.listdir(os.path.join(mirror, 'images'))) == sorted([base['uuid'], top['uuid']])
    gone = four_runs(play, mirror_task(mirror, server.url, [{'name': 'mirror-base'}, {'uuid': top['uuid']}],
                                       state='absent'))
    assert [r['changed'] for r in gone] == [True, True, False, False]
    assert gone[0]['removed'] == gone[1]['removed'] and len(gone[1]['removed']) == 2
    assert os.listdir(os.path.join(mirror, 'images')) == [] and json.loads(read(mirror, 'images.json')) == []


def test_a_damaged_mirror_is_repaired_without_downloading_again(play, server, images, mirror):
    manifest = images('mirror-damaged')
    task = mirror_task(mirror, server.url, [{'uuid': manifest['uuid']}])
    assert not play(task)['failed']
    with open(os.path.join(mirror, 'images', manifest['uuid'], 'manifest.json'), 'wb') as f:
        f.write(b'{"v": 2, "uu')
    server.clear_requests()
    result = play(task)
    assert not result['failed'] and result['changed'] and file_requests(server) == []
    assert any('cannot be served as it is' in str(w) for w in result.get('warnings', []))
    assert read(mirror, 'images', manifest['uuid'], 'manifest.json') == compact(copy.deepcopy(manifest))


def test_verify_repairs_a_file_damaged_in_place_with_one_file_request(play, server, images, mirror):
    """One byte of a mirrored file flipped in place (same size): a plain run does not see it, a verify run
    reports it, asks upstream for that file once and puts the right bytes back; the next verify run changes
    nothing and asks nothing."""
    manifest = images('mirror-rot')
    uuid, size = manifest['uuid'], manifest['files'][0]['size']
    shown = '%s %s@%s' % (uuid, manifest['name'], manifest['version'])
    assert not play(mirror_task(mirror, server.url, [{'uuid': uuid}]))['failed']
    path = os.path.join(mirror, 'images', uuid, 'file')
    with open(path, 'r+b') as f:
        f.seek(size // 2)
        byte = f.read(1)
        f.seek(size // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert os.path.getsize(path) == size and read(path) != read(images.path('mirror-rot'))
    server.clear_requests()
    plain = play(mirror_task(mirror, server.url, [{'uuid': uuid}]))
    assert not plain['failed'] and not plain['changed'] and plain['repaired'] == [] and server.requests() == []
    task = mirror_task(mirror, server.url, [{'uuid': uuid}], verify=True)
    result = play(task)
    assert result['_rc'] == 0 and not result['failed'], result['_stdout'] + result['_stderr']
    assert result['changed'] and result['repaired'] == [
        {'uuid': uuid, 'name': manifest['name'], 'version': manifest['version'], 'bytes': size}]
    assert result['bytes'] == size and result['added'] == [] and result['kept'] == []
    assert [r['path'] for r in file_requests(server, uuid)] == ['/images/%s/file' % uuid]
    assert any('image %s in the mirror is damaged' % uuid in str(w) for w in result.get('warnings', []))
    assert diff_lines(result['_stdout'], '-') == [shown + ' (damaged)'] and diff_lines(result['_stdout'], '+') == [shown]
    assert read(path) == read(images.path('mirror-rot'))
    assert sorted(os.listdir(os.path.dirname(path))) == ['file', 'manifest.json']
    server.clear_requests()
    again = play(task)
    assert not again['failed'] and not again['changed'] and again['repaired'] == [] and server.requests() == []


def test_the_examples_run(play, example_servers, tmp_path):
    """The module's EXAMPLES as written, but for the mirror's path (a scratch directory instead of /var/imgmirror)
    and the default source (the example server instead of the public one, which this network cannot reach)."""
    mirror_path = str(tmp_path / 'imgmirror')
    tasks = examples('smartos_image_mirror')
    for task in tasks:
        args = task.get('smartos.images.smartos_image_mirror')
        if args is not None:
            assert args['path'] == '/var/imgmirror'
            args['path'] = mirror_path
    playbook = [{'module_defaults': {'smartos.images.smartos_image_mirror': {'source': ['http://127.0.0.1:8080']}},
                 **t} for t in tasks]
    argv, env, record = play.command(playbook)
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = play.results(record)
    assert [r['status'] for r in results] == ['ok'] * len(tasks)
    assert [bool(r['result'].get('changed')) for r in results] == [True, False, False, False, True]
    assert results[3]['result']['repaired'] == []   # the weekly verify run of a sound mirror
    assert results[0]['result']['added'][0]['uuid'] == example_servers['uuid']
    assert os.listdir(os.path.join(mirror_path, 'images')) == []
