"""Fidelity to imgadm (issue 16), through real ansible-playbook runs on the zfs-fuse pool and the real image server.

Each test states what imgadm does (with the section of the imgadm reference it follows) next to what the
modules do: the same, or a deliberate difference listed in docs/docsite/rst/guide_imgadm_differences.rst."""
from __future__ import annotations

import http.server
import json
import os
import shutil
import threading

import pytest

from tests.integration.conftest import POOL, tree_state
from tests.lib.imagebuilder import build_chain, fill
from tests.lib.imgserver_ctl import ImageServer, publish
from tests.lib.zfspool import retry_busy

pytestmark = pytest.mark.usefixtures('collection_built')

DEFAULT = {'type': 'imgapi', 'url': 'https://images.smartos.org'}
CREATOR = '930896af-bf8c-48d4-885c-6573a94b1853'
# the default source comes first on a host without "sources": where it cannot be reached, fail fast
QUICK = {'timeout': 5, 'retries': 0}


def image_task(host_root, **args):
    return {'name': 'image', 'smartos.images.smartos_image': dict(pool=POOL, host_root=host_root, **args)}


def source_task(host_root, **args):
    return {'name': 'sources', 'smartos.images.smartos_image_source': dict(host_root=host_root, **args)}


def facts_task(host_root, subset):
    args = dict(host_root=host_root, pools=[POOL], gather_subset=subset)
    return {'name': 'facts', 'smartos.images.smartos_image_facts': args}


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)


def conf(host_root):
    return os.path.join(host_root, 'var', 'imgadm', 'imgadm.conf')


def sources_list(host_root):
    return os.path.join(host_root, 'var', 'db', 'imgadm', 'sources.list')


def cached(host_root, uuid):
    with open(os.path.join(host_root, 'var', 'imgadm', 'images', '%s-%s.json' % (POOL, uuid)), encoding='utf-8') as f:
        return json.load(f)


def destroy(*uuids):
    for uuid in uuids:
        retry_busy('zfs', 'destroy', '-r', '%s/%s' % (POOL, uuid))


def installed(pool_obj, uuid):
    return '%s/%s' % (POOL, uuid) in [line.split('\t')[0] for line in pool_obj.datasets()]


def dsapi_image(images, images_dir, key):
    """An image the server also offers through its DSAPI endpoints, with a v1 manifest."""
    manifest = images(key, publish_it=False)
    v1 = {'uuid': manifest['uuid'], 'name': manifest['name'], 'version': manifest['version'],
          'description': 'dsapi', 'os': 'smartos', 'type': 'zone-dataset', 'creator_uuid': CREATOR,
          'published_at': '2013-01-02T03:04Z',
          'files': [{'path': 'image.zfs.gz', 'sha1': manifest['files'][0]['sha1'],
                     'size': manifest['files'][0]['size']}]}
    publish(images_dir, manifest, images.path(key), dsmanifest=v1)
    return manifest


def dsapi_requests(server, uuid):
    return [r['path'] for r in server.requests() if r['path'].startswith('/datasets/' + uuid)]


# ---- item 3: source settings imgadm migrates (reference 1.3) ----

def test_leftover_sources_list_adds_its_mirror_after_the_default(play, images, images_dir, server, host_root, pool):
    """imgadm (1.3, upgradeTo200): /var/imgadm without "sources" in imgadm.conf and a sources.list naming a mirror:
    the default source, then the mirror as a DSAPI source, written to imgadm.conf with upgradedToVer on its next
    run. Ours: the same list is read (nothing written by reading); the mirror serves imports; the first write of
    imgadm.conf records it as imgadm's would."""
    manifest = dsapi_image(images, images_dir, 'fid-leftover')
    uuid = manifest['uuid']
    mirror = server.url + '/datasets'
    os.makedirs(os.path.join(host_root, 'var', 'imgadm'))
    write(sources_list(host_root), '# our mirror\n%s\n' % mirror)
    before = tree_state(host_root)
    facts = play(facts_task(host_root, ['sources']))
    assert facts['ansible_facts']['smartos_image_sources'] == [
        dict(DEFAULT, insecure=False, implicit=False), {'url': mirror, 'type': 'dsapi', 'insecure': False,
                                                        'implicit': False}]
    try:
        result = play(image_task(host_root, uuid=uuid, **QUICK))
        assert result['changed'] and not result['failed'], result.get('msg')
        assert dsapi_requests(server, uuid) and cached(host_root, uuid)['source'] == mirror
        assert not os.path.exists(conf(host_root))   # reading the sources wrote nothing
        assert {k: v for k, v in tree_state(host_root).items() if k in before} == before
        added = play(source_task(host_root, url='https://images.example', ping=False))
        assert added['changed']
        with open(conf(host_root), encoding='utf-8') as f:
            text = f.read()
        assert list(json.loads(text)) == ['dockerImportSkipUuids', 'sources', 'upgradedToVer']
        assert json.loads(text) == {'dockerImportSkipUuids': True, 'upgradedToVer': '3.0.0', 'sources': [
            DEFAULT, {'type': 'dsapi', 'url': mirror}, {'type': 'imgapi', 'url': 'https://images.example'}]}
    finally:
        destroy(uuid)


def test_typeless_source_ending_in_datasets_is_dsapi(play, images, images_dir, server, host_root, pool):
    """imgadm (1.3, upgradeTo300): a source without "type" whose URL ends in /datasets is "dsapi", else "imgapi".
    Ours: the same; the image comes through the DSAPI endpoints."""
    manifest = dsapi_image(images, images_dir, 'fid-typeless')
    write(conf(host_root), json.dumps({'sources': [{'url': server.url + '/datasets/'}]}))
    try:
        result = play(image_task(host_root, uuid=manifest['uuid'], **QUICK))
        assert result['changed'] and not result['failed'], result.get('msg')
        assert dsapi_requests(server, manifest['uuid'])
        assert not [r for r in server.requests() if r['path'].startswith('/images/')]
    finally:
        destroy(manifest['uuid'])


def test_sources_list_url_without_datasets_is_kept_and_fails_only_when_used(
        play, images, images_dir, server, host_root, pool):
    """imgadm (1.3, 3.10): upgradeTo200 stores every sources.list line as a "dsapi" source, and a dsapi URL not
    ending in /datasets fails ("dsapi" source URL does not end with "/datasets") only when that source is used.
    Ours: it is listed and fails only when used; unlike imgadm, the import then asks the next source."""
    manifest = dsapi_image(images, images_dir, 'fid-nodatasets')
    odd = server.url + '/mirror'
    os.makedirs(os.path.join(host_root, 'var', 'imgadm'))
    write(sources_list(host_root), '%s\n%s/datasets\n' % (odd, server.url))
    facts = play(facts_task(host_root, ['sources']))
    assert not facts['failed']
    assert [(s['url'], s['type']) for s in facts['ansible_facts']['smartos_image_sources']][1:] == [
        (odd, 'dsapi'), (server.url + '/datasets', 'dsapi')]
    try:
        result = play(image_task(host_root, uuid=manifest['uuid'], **QUICK))
        assert result['changed'] and not result['failed'], result.get('msg')
    finally:
        destroy(manifest['uuid'])
    write(sources_list(host_root), odd + '\n')
    refused = play(image_task(host_root, uuid=manifest['uuid'], **QUICK))
    assert refused['failed'] and '"dsapi" source URL does not end with "/datasets"' in refused['msg']
    assert not installed(pool, manifest['uuid'])


# ---- item 5: manifests without files[0].sha1 or type (reference 3.3-3.5) ----

def test_manifest_without_sha1_and_type_is_checked_with_content_md5(play, images, server, host_root, pool):
    """imgadm (3.3 step 6, 3.4 step 5, 3.5): without files[0].sha1 the answer's Content-MD5 checks the file;
    without "type" the image installs as any non-docker image. Ours: the same (size always checked too); a
    file whose bytes do not match the Content-MD5 is refused and the host left as it was."""
    manifest = images('fid-nosha1')
    bare = dict(manifest, files=[{k: v for k, v in manifest['files'][0].items() if k != 'sha1'}])
    del bare['type']
    images.republish(bare, 'fid-nosha1')
    task = image_task(host_root, uuid=manifest['uuid'], source=[server.url], retries=0)
    server.add_fault('wrong_bytes', uuid=manifest['uuid'], times=1)
    broken = play(task)
    assert broken['failed'] and 'Content-MD5 error' in broken['msg'] and not installed(pool, manifest['uuid'])
    try:
        result = play(task)
        assert result['changed'] and not result['failed'], result.get('msg')
        assert cached(host_root, manifest['uuid'])['manifest'] == bare
    finally:
        destroy(manifest['uuid'])


class _NoMd5Handler(http.server.BaseHTTPRequestHandler):
    """An IMGAPI server that sends no Content-MD5: the manifest and the file of one image."""

    manifest = None
    data = b''

    def do_GET(self):   # noqa: N802 (http.server's name)
        if self.path.split('?')[0].endswith('/file'):
            body, kind = self.data, 'application/octet-stream'
        else:
            body, kind = json.dumps(self.manifest).encode(), 'application/json'
        self.send_response(200)
        self.send_header('Content-Type', kind)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_manifest_without_sha1_from_a_server_without_content_md5_is_refused(play, images, host_root, pool):
    """imgadm (3.4 step 5): no files[0].sha1 and no Content-MD5 header: the file is installed checked by its size
    only. Ours (a deliberate difference): refused before anything is received, since nothing vouches for the bytes."""
    manifest = images('fid-nomd5', publish_it=False)
    bare = dict(manifest, files=[{k: v for k, v in manifest['files'][0].items() if k != 'sha1'}])
    with open(images.path('fid-nomd5'), 'rb') as f:
        handler = type('Handler', (_NoMd5Handler,), {'manifest': bare, 'data': f.read()})
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        result = play(image_task(host_root, uuid=manifest['uuid'], source=['http://127.0.0.1:%d' % httpd.server_port],
                                 retries=0))
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)
    assert result['failed'] and 'no Content-MD5 header' in result['msg'] and 'files[0].sha1' in result['msg']
    assert not installed(pool, manifest['uuid'])


# ---- item 6: local installs validate as imgadm install does (reference 4.4, 6.1, 6.2) ----

def test_local_install_lists_every_field_imgadm_refuses(play, images, host_root, tmp_path, pool):
    """imgadm install (4.4 step 5): validateMinimalManifest refuses an unknown key, requirements.password and an
    ftp: homepage, listing the three. Ours: the same three fields are named, nothing is received."""
    manifest = images('fid-local', publish_it=False)
    bad = dict(manifest, bogus=1, requirements={'password': 'x'}, homepage='ftp://example.com/')
    manifest_path = str(tmp_path / 'image.imgmanifest')
    file_path = str(tmp_path / 'image.zfs.gz')
    shutil.copyfile(images.path('fid-local'), file_path)
    write(manifest_path, json.dumps(bad))
    result = play(image_task(host_root, manifest=manifest_path, file=file_path))
    assert result['failed']
    for words in ('bogus: unknown field', 'requirements: unsupported requirement "password"', 'homepage'):
        assert words in result['msg'], result['msg']
    assert not installed(pool, manifest['uuid'])


# ---- item 7: a manifest without state (reference 3.1 step 5, 3.2) ----

def test_manifest_without_state_is_not_imported(play, images, server, host_root, pool):
    """imgadm (3.2): only a manifest whose state is "active" is imported; without "state": "an active image ...
    was not found in image sources". Ours: the same words, the source named with the reason, no file fetched."""
    manifest = images('fid-nostate')
    images.republish({k: v for k, v in manifest.items() if k != 'state'}, 'fid-nostate')
    result = play(image_task(host_root, uuid=manifest['uuid'], source=[server.url]))
    assert result['failed']
    assert result['msg'].startswith('an active image "%s" was not found in image sources' % manifest['uuid'])
    assert 'no "state"' in result['msg'] and not installed(pool, manifest['uuid'])
    assert not [r for r in server.requests() if r['path'].endswith('/file')]


# ---- the smaller ones ----

def test_fresh_host_imgadm_conf_has_imgadms_defaults(play, host_root):
    """imgadm (1.1.1, 1.1.2): on a fresh host `imgadm sources -a URL` writes dockerImportSkipUuids and upgradedToVer
    before the sources, the default source kept in front. Ours: the same file, key for key."""
    result = play(source_task(host_root, url='https://images.example', ping=False))
    assert result['changed']
    with open(conf(host_root), encoding='utf-8') as f:
        text = f.read()
    assert json.loads(text) == {'dockerImportSkipUuids': True, 'upgradedToVer': '3.0.0',
                                'sources': [DEFAULT, {'type': 'imgapi', 'url': 'https://images.example'}]}
    assert list(json.loads(text)) == ['dockerImportSkipUuids', 'upgradedToVer', 'sources']
    assert not text.endswith('\n')


def test_channel_key_of_a_configured_source_is_sent(play, images, server, host_root):
    """imgadm (1.1.1, 3.9): a source's "channel" key is sent as channel=<c>, and wins over ?channel= in its URL.
    Ours: the same."""
    manifest = images('fid-channel')
    write(conf(host_root), json.dumps({'sources': [{'type': 'imgapi', 'url': server.url + '?channel=dev',
                                                    'channel': 'staging'}]}))
    play(image_task(host_root, uuid=manifest['uuid'], retries=0), check=True)
    asked = [r['query'] for r in server.requests() if r['path'] == '/images/' + manifest['uuid']]
    assert asked and all(q.get('channel') == 'staging' for q in asked)


def test_imgadm_insecure_environment_does_not_turn_off_certificate_checks(play, images, tls_server, host_root,
                                                                          monkeypatch):
    """imgadm (5.1): IMGADM_INSECURE=1 turns off certificate checks of sources without "insecure". Ours (a
    deliberate difference): ignored; validate_certs: false or a source's insecure: true do it, in the task."""
    manifest = images('fid-envtls')
    monkeypatch.setenv('IMGADM_INSECURE', '1')
    result = play(image_task(host_root, uuid=manifest['uuid'], source=[tls_server.url], retries=0), check=True)
    assert result['failed'] and 'certificate' in result['msg']


def test_insecure_source_really_skips_the_certificate_check(play, images, tls_server, host_root, pool):
    """imgadm (5.1, as written): insecure: true is passed as rejectUnauthorized: true, so certificates are still
    checked. Ours (an improvement): a source added with insecure: true is used without the certificate check."""
    manifest = images('fid-insecure')
    write(conf(host_root), json.dumps({'sources': [{'type': 'imgapi', 'url': tls_server.url, 'insecure': True}]}))
    try:
        result = play(image_task(host_root, uuid=manifest['uuid'], retries=0))
        assert result['changed'] and not result['failed'], result.get('msg')
    finally:
        destroy(manifest['uuid'])


def test_v1_local_install_takes_published_at_from_created_at(play, images, host_root, tmp_path, pool):
    """imgadm install (4.4 step 2, then 5.4): published_at missing is set to the install time before the v1 manifest
    is upgraded, so created_at is lost. Ours (a deliberate difference): the upgrade's published_at = created_at, as
    the same image imported from a DSAPI source gets it."""
    manifest = images('fid-v1local', publish_it=False)
    v1 = {'uuid': manifest['uuid'], 'name': manifest['name'], 'version': manifest['version'], 'description': 'v1',
          'os': 'smartos', 'type': 'zone-dataset', 'creator_uuid': CREATOR, 'created_at': '2013-01-02T03:04Z',
          'files': [{'path': 'image.zfs.gz', 'sha1': manifest['files'][0]['sha1'], 'size': manifest['files'][0]['size']}]}
    manifest_path = str(tmp_path / 'v1.dsmanifest')
    file_path = str(tmp_path / 'image.zfs.gz')
    shutil.copyfile(images.path('fid-v1local'), file_path)
    write(manifest_path, json.dumps(v1))
    try:
        result = play(image_task(host_root, manifest=manifest_path, file=file_path))
        assert result['changed'] and not result['failed'], result.get('msg')
        assert cached(host_root, manifest['uuid'])['manifest']['published_at'] == '2013-01-02T03:04:00Z'
    finally:
        destroy(manifest['uuid'])


def test_missing_origin_is_fetched_from_any_source(play, pool, host_root, tmp_path_factory):
    """imgadm (3.3 step 2, getImgAncestry): an origin is asked of the child's source only, so a base image on
    another source fails the import. Ours (an improvement): the child's source first, then every other source."""
    top_dir = str(tmp_path_factory.mktemp('fid-top'))
    base_dir = str(tmp_path_factory.mktemp('fid-base'))
    (base, base_path), (top, top_path) = build_chain(pool.name, str(tmp_path_factory.mktemp('fid-chain')),
                                                     ['fid-base', 'fid-top'])
    publish(base_dir, base, base_path)
    publish(top_dir, top, top_path)
    with ImageServer(top_dir) as top_server, ImageServer(base_dir) as base_server:
        try:
            result = play(image_task(host_root, uuid=top['uuid'], source=[top_server.url, base_server.url],
                                     retries=0))
            assert result['changed'] and not result['failed'], result.get('msg')
            assert installed(pool, base['uuid']) and installed(pool, top['uuid'])
        finally:
            destroy(top['uuid'], base['uuid'])


# ---- the rest of issue 16 ----

def warnings_of(result):
    return [w if isinstance(w, str) else w['event']['msg'] for w in result.get('warnings') or []]


def import_all(play, host_root, server, *manifests):
    for m in manifests:
        result = play(image_task(host_root, uuid=m['uuid'], source=[server.url]))
        assert not result['failed'], result.get('msg')


def filtered(play, host_root, filters, subset='installed'):
    task = facts_task(host_root, [subset])
    task['smartos.images.smartos_image_facts'].update(filters=filters, retries=0)
    return play(task)


def test_filters_on_imgadms_computed_fields(play, images, server, host_root, pool):
    """imgadm (4.5): list and avail filter on the row fields they compute: clones (a count, so clones=0 lists the
    unused images), zpool, source, pub and published_date (published_at's date), published (without the fraction),
    size (files[0].size); a field no image has matches nothing. Ours: each with imgadm's meaning, clones counting
    although the facts list the clones' names; a field that is no manifest or computed field is refused, naming the
    fields (a deliberate difference: a misspelt field is not "no image")."""
    used, unused = images('fid-used'), images('fid-unused')
    vm = '%s/fid-vm' % POOL
    write(conf(host_root), json.dumps({'sources': [{'type': 'imgapi', 'url': server.url}]}))
    try:
        import_all(play, host_root, server, used, unused)
        retry_busy('zfs', 'clone', '%s/%s@final' % (POOL, used['uuid']), vm)
        found = filtered(play, host_root, {'clones': 0})['ansible_facts']['smartos_images']
        assert unused['uuid'] in found and used['uuid'] not in found
        found = filtered(play, host_root, {'clones': 1, 'zpool': POOL, 'source': server.url})
        assert list(found['ansible_facts']['smartos_images']) == [used['uuid']]
        found = filtered(play, host_root, {'size': unused['files'][0]['size'], 'pub': unused['published_at'][:10],
                                           'published': unused['published_at'][:-5] + 'Z'}, 'available')
        assert [e['manifest']['uuid'] for e in found['ansible_facts']['smartos_images_available']] == [unused['uuid']]
        refused = filtered(play, host_root, {'clone': 0})
        assert refused['failed'] and refused['msg'].startswith('filter field "clone" is not an image field imgadm')
    finally:
        retry_busy('zfs', 'destroy', vm)
        destroy(used['uuid'], unused['uuid'])


def serve_manifest(images_dir, manifest):
    """Change the manifest the server sends for an image it serves already (its file stays)."""
    path = os.path.join(images_dir, manifest['uuid'], 'manifest.json')
    write(path + '.new', json.dumps(manifest))
    os.replace(path + '.new', path)


def test_update_manifests_goes_on_past_an_image_it_cannot_repair(play, images, images_dir, server, host_root, pool):
    """imgadm (4.3): update warns "cannot determine original snapshot ... (source info has no dataset_guid)" for an
    image that lost @final and goes on; "Could not find image ... (skipping)" for one no source has; one with no
    snapshot at all stops the run. Ours: each is a warning and an entry of updates, and the run goes on (a
    deliberate difference for the last); the task fails only where a failed_when asks it to."""
    lost, other = images('fid-upd-lost'), images('fid-upd-other')
    try:
        import_all(play, host_root, server, lost, other)
        retry_busy('zfs', 'rename', '%s/%s@final' % (POOL, lost['uuid']), '%s/%s@moved' % (POOL, lost['uuid']))
        serve_manifest(images_dir, dict(lost, files=[{k: v for k, v in lost['files'][0].items()
                                                      if k != 'dataset_guid'}]))
        serve_manifest(images_dir, dict(other, description='refreshed'))
        result = play(image_task(host_root, update_manifests=True, source=[server.url]))
        assert not result['failed'] and result['changed'], result.get('msg')
        updates = {e['uuid']: e for e in result['updates']}
        assert updates[lost['uuid']]['result'] == 'failed' and 'dataset_guid' in updates[lost['uuid']]['msg']
        assert updates[other['uuid']]['result'] == 'refreshed' and updates[other['uuid']]['fields'] == ['description']
        assert cached(host_root, other['uuid'])['manifest']['description'] == 'refreshed'
        assert any('its @final snapshot is not repaired' in w for w in warnings_of(result))
        strict = dict(image_task(host_root, update_manifests=True, source=[server.url]), register='result',
                      failed_when="result.updates | selectattr('result', 'eq', 'failed') | list")
        assert play(strict)['failed']
    finally:
        serve_manifest(images_dir, lost)
        serve_manifest(images_dir, other)
        destroy(lost['uuid'], other['uuid'])


def test_present_on_a_dataset_imgadms_list_hides_is_already_installed(play, images, server, host_root, pool):
    """imgadm (2.2, 3.1 step 3): import asks `zfs list <pool>/<uuid>` only, so a dataset its list hides
    (imgadm:ignore=true, a zone root) is "already installed" and the import exits 0. Ours: the same (nothing
    imported, changed false) with a warning naming why the list hides it; deleting it is still refused."""
    manifest = images('fid-hidden')
    dataset = '%s/%s' % (POOL, manifest['uuid'])
    try:
        import_all(play, host_root, server, manifest)
        retry_busy('zfs', 'set', 'imgadm:ignore=true', dataset)
        server.clear_requests()
        for check in (True, False):
            result = play(image_task(host_root, uuid=manifest['uuid'], source=[server.url]), check=check)
            assert not result['failed'] and not result['changed'], result.get('msg')
            assert any('exists but imgadm\'s list hides it (its imgadm:ignore property is set)' in w
                       for w in warnings_of(result))
        assert not [r for r in server.requests() if r['path'].endswith('/file')]
        refused = play(image_task(host_root, uuid=manifest['uuid'], state='absent'))
        assert refused['failed'] and 'refusing to delete' in refused['msg']
    finally:
        destroy(manifest['uuid'])


def test_one_listing_entry_without_v_does_not_hide_the_source(play, images, images_dir, server, host_root, pool):
    """imgadm (4.5, avail): lists the manifests as the server sent them, one entry's fault hiding nothing else.
    Ours: that entry is skipped with a warning naming it; the source's other images are listed and found by
    name (facts' available listing and smartos_image's name lookup alike)."""
    good = images('fid-listed')
    bad = images('fid-listed-bad', publish_it=False)
    publish(images_dir, {k: v for k, v in dict(bad, name=good['name']).items() if k != 'v'},
            images.path('fid-listed-bad'))
    write(conf(host_root), json.dumps({'sources': [{'type': 'imgapi', 'url': server.url}]}))
    try:
        facts = filtered(play, host_root, {'name': good['name']}, 'available')
        assert [e['manifest']['uuid'] for e in facts['ansible_facts']['smartos_images_available']] == [good['uuid']]
        assert any('skipped 1' in w and 'does not have a "v"' in w for w in warnings_of(facts))
        result = play(image_task(host_root, name=good['name'], source=[server.url]), check=True)
        assert not result['failed'] and result['uuid'] == good['uuid'], result.get('msg')
        assert any('skipped 1 bad image(s)' in w and 'does not have a "v"' in w for w in warnings_of(result))
    finally:
        shutil.rmtree(os.path.join(images_dir, bad['uuid']))


def test_create_defaults_gzip_and_drops_an_origins_empty_arrays(play, images, server, host_root, pool, tmp_path):
    """imgadm (4.7): create inherits the origin's type, os, requirements, users, billing_tags, traits, ... but not
    its empty arrays (billing_tags: []), and writes an uncompressed stream unless told. Ours: the same inheritance;
    gzip by default (a deliberate difference: the file is made to be copied and served; compression: none writes
    what imgadm writes)."""
    base = images('fid-create-base', billing_tags=[], users=[], traits={'ssd': True})
    child = '%s/fid-create-child' % POOL
    try:
        import_all(play, host_root, server, base)
        retry_busy('zfs', 'clone', '%s/%s@final' % (POOL, base['uuid']), child)
        fill('/' + child, {'etc/child': 'the child layer\n'}, random_mb=1)
        task = {'name': 'create', 'smartos.images.smartos_image_create': dict(
            output_dir=str(tmp_path / 'out'), dataset=child, origin=base['uuid'], name='fid-child', version='1.0.0',
            host_root=host_root)}
        result = play(task)
        assert not result['failed'], result.get('msg')
        assert result["uuid"]
        with open(result['manifest_path'], encoding='utf-8') as f:
            manifest = json.load(f)
        assert 'billing_tags' not in manifest and 'users' not in manifest and manifest['traits'] == {'ssd': True}
        assert manifest['files'][0]['compression'] == 'gzip' and result['file_path'].endswith('.gz')
    finally:
        retry_busy('zfs', 'destroy', '-r', child)
        destroy(base['uuid'])
