"""Issue 14, the client-side fallback, for real: when an import from one image source fails because of what that
source sent (bad bytes, a short or broken-off file, an error answer, a wrong size), smartos_image imports the same
image from the next source that has it, with a warning naming the source and why, and says in `imported_from` where each
image came from. imgadm stops at the first such error (its download checks size and checksum once the file has
arrived, and any download error aborts the whole import).

Two real test image servers, each serving a directory of its own, a real zfs-fuse pool, real ansible-playbook runs.
"""
from __future__ import annotations

import json
import os
import shutil
import socket

import pytest

from tests.integration.conftest import POOL, tree_state
from tests.lib.imagebuilder import build_chain
from tests.lib.imgserver_ctl import ImageServer, publish
from tests.lib.zfspool import retry_busy, run

pytestmark = pytest.mark.usefixtures('collection_built')


def task(host_root, sources, **args):
    """A smartos_image task on the test pool, asking the given sources in order (no resume: a cut fails at once)."""
    args = dict(dict(pool=POOL, host_root=host_root, retries=0, timeout=10), **args)
    args['source'] = sources
    return {'name': 'image', 'smartos.images.smartos_image': args, 'register': 'result'}


def no_traceback(result):
    """A clean result: the module's own words, not a Python exception."""
    assert 'module_stderr' not in result and 'Traceback (most recent call last)' not in json.dumps(result), result
    assert 'Traceback' not in result['_stdout'] + result['_stderr'] and 'MODULE FAILURE' not in result.get('msg', '')


def names(pool):
    return [line.split('\t')[0] for line in pool.datasets()]


def installed(pool, manifest):
    """The image is in place under its own name, with its @final snapshot: the very snapshot that was sent (zfs
    keeps a snapshot's guid through send and receive), so the bytes that went in are the image's."""
    uuid = manifest['uuid']
    if '%s/%s@final' % (POOL, uuid) not in names(pool):
        return False
    guid = run('zfs', 'get', '-H', '-p', '-o', 'value', 'guid', '%s/%s@final' % (POOL, uuid)).strip()
    return guid == str(manifest['files'][0]['dataset_guid'])


def leftovers(pool, *uuids):
    """Any dataset or snapshot named after one of the images (final or partial)."""
    return [n for n in names(pool) if any(u in n for u in uuids)]


def destroy(pool, *uuids):
    """Children first: the images of a chain are clones of one another."""
    for uuid in uuids:
        for name in ('%s/%s' % (POOL, uuid), '%s/%s-partial' % (POOL, uuid)):
            if name in names(pool):
                retry_busy('zfs', 'destroy', '-r', name)


def cache(host_root, uuid):
    path = os.path.join(host_root, 'var', 'imgadm', 'images', '%s-%s.json' % (POOL, uuid))
    if not os.path.exists(path):
        return None
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def file_gets(server, uuid):
    return [r for r in server.requests() if r['path'] == '/images/%s/file' % uuid]


def manifest_gets(server, uuid):
    return [r for r in server.requests() if r['path'] == '/images/%s' % uuid]


def fallback_warnings(result, uuid):
    return [w for w in result.get('warnings', []) if 'image %s: the import from' % uuid in w]


@pytest.fixture(scope='module')
def built(pool, images):
    """A full image and a two-image chain (base, top), built once; published nowhere yet."""
    plain = images('fallback-plain', publish_it=False, random_mb=1)
    (base, base_path), (top, top_path) = build_chain(pool.name, os.path.join(images.outdir, 'fallback-chain'),
                                                     ['fallback-base', 'fallback-top'])
    return {'plain': (plain, images.path('fallback-plain')), 'base': (base, base_path), 'top': (top, top_path)}


@pytest.fixture
def two_servers(tmp_path):
    """Source 1 and source 2, each serving a directory of its own (publish(n, manifest, path) lays an image in)."""
    dirs = [str(tmp_path / 'served1'), str(tmp_path / 'served2')]
    for d in dirs:
        os.makedirs(d)
    with ImageServer(dirs[0]) as one, ImageServer(dirs[1]) as two:
        one.publish = lambda item: publish(dirs[0], *item)
        two.publish = lambda item: publish(dirs[1], *item)
        yield one, two


def free_port():
    """A port on 127.0.0.1 where nothing listens (bound by us, then let go)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


# ---- a. what source 1 sends is bad: the image comes from source 2 ----

BAD_FILE = [
    # fault, its options, words of the reason the warning must give
    ('wrong_bytes', {}, 'checksum (sha1) error'),
    ('short_body', {'arg': 1000}, 'broke off after 1000 of'),
    ('drop', {'arg': 4096}, 'the download broke off after'),
    ('status', {'arg': 500, 'on': 'file'}, 'HTTP 500'),
    ('status', {'arg': 404, 'on': 'file'}, 'HTTP 404'),
    ('wrong_size', {}, 'Content-Length'),
    ('no_content_length', {}, 'Content-Length header'),
]


@pytest.mark.parametrize('kind, options, reason', BAD_FILE,
                         ids=['%s%s' % (k, o.get('arg', '')) for k, o, dummy in BAD_FILE])
def test_a_bad_file_at_source_1_is_imported_from_source_2(play, pool, built, two_servers, host_root, kind, options,
                                                          reason):
    one, two = two_servers
    manifest, path = built['plain']
    uuid = manifest['uuid']
    one.publish(built['plain'])
    two.publish(built['plain'])
    one.add_fault(kind, uuid=uuid, **options)
    sources = [one.url, two.url]
    try:
        check = play(task(host_root, sources, uuid=uuid), check=True)
        assert check['changed'] and check['imported_from'] == {uuid: one.url}   # as planned: source 1 has it
        assert file_gets(one, uuid) == file_gets(two, uuid) == []

        result = play(task(host_root, sources, uuid=uuid))
        no_traceback(result)
        assert result['changed'] and not result['failed'], result.get('msg')
        assert result['imported_from'] == {uuid: two.url} and result['source'] == two.url
        assert result['imported'] == [uuid] and result['downloaded_bytes'] == manifest['files'][0]['size']
        warned = fallback_warnings(result, uuid)
        assert len(warned) == 1, result.get('warnings')
        assert warned[0].startswith('image %s: the import from %s failed (' % (uuid, one.url)), warned
        assert reason in warned[0] and warned[0].endswith('trying the next source that has it, %s' % two.url), warned
        assert installed(pool, manifest)
        assert leftovers(pool, uuid) == ['%s/%s' % (POOL, uuid), '%s/%s@final' % (POOL, uuid)]
        assert cache(host_root, uuid)['source'] == two.url                  # imgadm's record of where it came from
        assert len(file_gets(one, uuid)) == 1 and len(file_gets(two, uuid)) == 1
        assert not [r for r in two.requests() if r['headers'].get('range')]   # source 2 sent it whole, from byte 0

        again = play(task(host_root, sources, uuid=uuid))
        assert not again['changed'] and 'imported_from' not in again and not fallback_warnings(again, uuid)
    finally:
        destroy(pool, uuid)


def test_source_1_down_is_passed_over(play, pool, built, two_servers, host_root):
    """Nothing listens at source 1's port: the image comes from source 2, and source 1 is not asked again."""
    dummy, two = two_servers
    manifest = built['plain'][0]
    uuid = manifest['uuid']
    two.publish(built['plain'])
    down = 'http://127.0.0.1:%d' % free_port()
    try:
        # retries as by default: a refused connection is not waited for
        result = play(task(host_root, [down, two.url], uuid=uuid, retries=3))
        no_traceback(result)
        assert result['changed'] and not result['failed'], result.get('msg')
        assert result['imported_from'] == {uuid: two.url} and result['source'] == two.url
        assert installed(pool, manifest) and cache(host_root, uuid)['source'] == two.url
        assert len(manifest_gets(two, uuid)) == 1 and len(file_gets(two, uuid)) == 1
    finally:
        destroy(pool, uuid)


def test_source_1_gone_between_the_manifest_and_the_file(play, pool, built, two_servers, host_root):
    """Source 1 answers the manifest, then refuses the file (a server stopping mid-run answers so): source 2."""
    one, two = two_servers
    manifest = built['plain'][0]
    uuid = manifest['uuid']
    one.publish(built['plain'])
    two.publish(built['plain'])
    one.add_fault('status', uuid=uuid, on='file', arg=503)
    try:
        result = play(task(host_root, [one.url, two.url], uuid=uuid))
        assert result['changed'] and result['imported_from'] == {uuid: two.url}, result.get('msg')
        assert 'HTTP 503' in fallback_warnings(result, uuid)[0]
        assert installed(pool, manifest)
    finally:
        destroy(pool, uuid)


# ---- c. every source bad: one error that names each, and nothing left ----

def test_both_sources_bad_is_one_error_naming_each_and_leaves_nothing(play, pool, built, two_servers, host_root):
    one, two = two_servers
    manifest = built['plain'][0]
    uuid = manifest['uuid']
    one.publish(built['plain'])
    two.publish(built['plain'])
    one.add_fault('wrong_bytes', uuid=uuid)
    two.add_fault('short_body', uuid=uuid, arg=2000)
    datasets = pool.datasets()
    result = play(task(host_root, [one.url, two.url], uuid=uuid))
    no_traceback(result)
    assert result['failed']
    msg = result['msg']
    assert msg.startswith('image %s could not be imported from any of its 2 sources: ' % uuid), msg
    reasons = msg.split(': ', 1)[1].split('; %s: ' % two.url)
    assert reasons[0].startswith(one.url + ': ') and 'checksum (sha1) error' in reasons[0], msg
    assert len(reasons) == 2 and 'broke off after 2000 of' in reasons[1], msg
    assert result.get('sources') == [one.url, two.url]
    assert len(fallback_warnings(result, uuid)) == 1
    assert pool.datasets() == datasets and leftovers(pool, uuid) == []     # neither <uuid> nor <uuid>-partial
    assert cache(host_root, uuid) is None
    assert len(file_gets(one, uuid)) == 1 and len(file_gets(two, uuid)) == 1


def test_one_source_bad_and_none_other_is_its_own_error(play, pool, built, two_servers, host_root):
    """Source 2 does not have the image: no warning, the source's own error, as before issue 14."""
    one, two = two_servers
    uuid = built['plain'][0]['uuid']
    one.publish(built['plain'])
    one.add_fault('wrong_bytes', uuid=uuid)
    result = play(task(host_root, [one.url, two.url], uuid=uuid))
    no_traceback(result)
    assert result['failed'] and 'checksum (sha1) error' in result['msg'] and 'any of its' not in result['msg']
    assert not fallback_warnings(result, uuid) and leftovers(pool, uuid) == []
    assert len(manifest_gets(two, uuid)) == 1 and file_gets(two, uuid) == []


# ---- d. an origin chain across sources ----

def test_base_only_at_source_2_top_only_at_source_1(play, pool, built, two_servers, host_root):
    one, two = two_servers
    base, top = built['base'][0], built['top'][0]
    one.publish(built['top'])
    two.publish(built['base'])
    try:
        result = play(task(host_root, [one.url, two.url], uuid=top['uuid']))
        no_traceback(result)
        assert result['changed'] and not result['failed'], result.get('msg')
        assert result['imported'] == [base['uuid'], top['uuid']]
        assert result['imported_from'] == {base['uuid']: two.url, top['uuid']: one.url}
        assert not fallback_warnings(result, base['uuid']) and not fallback_warnings(result, top['uuid'])
        assert installed(pool, base) and installed(pool, top)
        assert '%s/%s\t%s/%s@final' % (POOL, top['uuid'], POOL, base['uuid']) in pool.datasets()   # a clone
        assert cache(host_root, base['uuid'])['source'] == two.url
        assert cache(host_root, top['uuid'])['source'] == one.url
    finally:
        destroy(pool, top['uuid'], base['uuid'])


@pytest.mark.parametrize('bad', ['top', 'base'])
def test_a_corrupted_link_of_a_chain_comes_from_source_2(play, pool, built, two_servers, host_root, bad):
    """Both sources have the chain; source 1 sends one of its images wrong: that one comes from source 2, the other
    from source 1, and the top is received onto the base whichever source each came from."""
    one, two = two_servers
    base, top = built['base'][0], built['top'][0]
    for server in two_servers:
        server.publish(built['base'])
        server.publish(built['top'])
    one.add_fault('wrong_bytes', uuid=built[bad][0]['uuid'])
    good = 'base' if bad == 'top' else 'top'
    try:
        result = play(task(host_root, [one.url, two.url], uuid=top['uuid']))
        no_traceback(result)
        assert result['changed'] and not result['failed'], result.get('msg')
        assert result['imported'] == [base['uuid'], top['uuid']]
        assert result['imported_from'] == {built[bad][0]['uuid']: two.url, built[good][0]['uuid']: one.url}
        assert result['source'] == (two.url if bad == 'top' else one.url)
        assert len(fallback_warnings(result, built[bad][0]['uuid'])) == 1
        assert not fallback_warnings(result, built[good][0]['uuid'])
        assert installed(pool, base) and installed(pool, top)
        assert '%s/%s\t%s/%s@final' % (POOL, top['uuid'], POOL, base['uuid']) in pool.datasets()
        assert file_gets(two, built[good][0]['uuid']) == [] and len(file_gets(two, built[bad][0]['uuid'])) == 1
    finally:
        destroy(pool, top['uuid'], base['uuid'])


def test_a_chain_whose_base_no_source_sends_right_stops_before_the_top(play, pool, built, two_servers, host_root):
    one, two = two_servers
    base, top = built['base'][0], built['top'][0]
    for server in two_servers:
        server.publish(built['base'])
        server.publish(built['top'])
        server.add_fault('wrong_bytes', uuid=base['uuid'])
    result = play(task(host_root, [one.url, two.url], uuid=top['uuid']))
    no_traceback(result)
    assert result['failed']
    assert 'image %s could not be imported from any of its 2 sources' % base['uuid'] in result['msg'], result['msg']
    assert leftovers(pool, base['uuid'], top['uuid']) == []
    assert file_gets(one, top['uuid']) == file_gets(two, top['uuid']) == []   # the top was never started


def test_the_same_uuid_under_another_origin_is_not_the_same_image(play, pool, built, two_servers, host_root):
    """Source 2's manifest of the top image names another origin: it is not the image the plan received the base
    for, so it is not tried; the import fails with source 1's own error and nothing is recorded with a wrong origin."""
    one, two = two_servers
    base, top = built['base'][0], built['top'][0]
    for server in two_servers:
        server.publish(built['base'])
    one.publish(built['top'])
    two.publish((dict(top, origin=built['plain'][0]['uuid']), built['top'][1]))
    one.add_fault('wrong_bytes', uuid=top['uuid'])
    try:
        result = play(task(host_root, [one.url, two.url], uuid=top['uuid']))
        no_traceback(result)
        assert result['failed'] and 'checksum (sha1) error' in result['msg'] and 'any of its' not in result['msg']
        assert not fallback_warnings(result, top['uuid']) and file_gets(two, top['uuid']) == []
        assert leftovers(pool, top['uuid']) == [] and cache(host_root, top['uuid']) is None
        assert installed(pool, base)    # imported before the top failed, and reported so
        assert result['imported'] == [base['uuid']] and result['changed']
    finally:
        destroy(pool, top['uuid'], base['uuid'])


# ---- e. an image installed from files on the host has no other source ----

def test_a_bad_local_file_does_not_fall_back_to_a_source(play, pool, built, two_servers, host_root, tmp_path):
    dummy, two = two_servers
    manifest, path = built['plain']
    uuid = manifest['uuid']
    two.publish(built['plain'])
    local = str(tmp_path / 'image.zfs.gz')
    shutil.copyfile(path, local)
    with open(local, 'r+b') as f:
        f.seek(manifest['files'][0]['size'] // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    manifest_path = str(tmp_path / 'image.json')
    with open(manifest_path, 'w', encoding='utf-8') as f:
        json.dump(manifest, f)
    before = tree_state(host_root)
    result = play(task(host_root, [two.url], manifest=manifest_path, file=local))
    no_traceback(result)
    assert result['failed'] and 'checksum (sha1) error' in result['msg'] and local in result['msg'], result['msg']
    assert not fallback_warnings(result, uuid) and leftovers(pool, uuid) == []
    assert two.requests() == [] and tree_state(host_root) == before
