# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_facts.py: subsets, installed images from recorded listings, available images
from fake source clients."""

from __future__ import annotations

import json
import os
import threading

import pytest

from ansible_collections.smartos.images.plugins.module_utils import _facts
from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, InvalidParameter, SourceError
from ansible_collections.smartos.images.plugins.module_utils._facts import FactsGatherer, subsets
from ansible_collections.smartos.images.plugins.module_utils._sources import SourceEntry
from ansible_collections.smartos.images.plugins.module_utils._zfs import LIST_COLUMNS
from ansible_collections.smartos.images.tests.unit.fakehost import (
    BASE, BHYVE_VM, COPY, IGN_FALSE, IGN_GARBAGE, INCR, KVM_IMG, KVM_VM, NO_FINAL, SNAP_CLONE, VM, FakeClients, FakeHost,
    fixture, smartos_host,
)

SRC1 = 'http://img1.example.com'
SRC2 = 'http://img2.example.com'
U1 = '11111111-1111-4111-8111-111111111111'
U2 = '22222222-2222-4222-8222-222222222222'
U3 = '33333333-3333-4333-8333-333333333333'
U4 = '44444444-4444-4444-8444-444444444444'
OWNER = '930896af-bf8c-48d4-885c-6573a94b1853'
ZFS_LIST = ['zfs', 'list', '-H', '-o', LIST_COLUMNS, '-t', 'filesystem,volume,snapshot']


def params(root, **kw):
    """The module's params, as AnsibleModule would hand them over with the defaults."""
    base = dict(gather_subset=['installed'], pools=None, filters={}, newest=False, host_root=str(root), layout='auto',
                validate_certs=True, ca_path=None, timeout=30, retries=3)
    base.update(kw)
    return base


def write(root, relpath, content):
    path = os.path.join(str(root), relpath)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if isinstance(content, bytes):
        data = content
    else:
        data = (content if isinstance(content, str) else json.dumps(content, indent=2) + '\n').encode('utf-8')
    with open(path, 'wb') as f:
        f.write(data)
    return path


def write_cache(root, pool, uuid, manifest, source=None):
    """imgadm's cache file: JSON.stringify({manifest, zpool, source}, null, 2) + newline."""
    info = {'manifest': manifest, 'zpool': pool}
    if source:
        info['source'] = source
    return write(root, 'var/imgadm/images/%s-%s.json' % (pool, uuid), info)


def cache_path(root, pool, uuid):
    return os.path.join(str(root), 'var', 'imgadm', 'images', '%s-%s.json' % (pool, uuid))


# ---- subsets ----

@pytest.mark.parametrize('requested, chosen', [
    (None, {'installed', 'sources'}),
    ([], {'installed', 'sources'}),
    (['installed', 'sources'], {'installed', 'sources'}),
    (['all'], {'installed', 'sources', 'available'}),
    (['available'], {'available'}),
    (['installed'], {'installed'}),
    (['installed', 'available'], {'installed', 'available'}),
    (['installed', 'installed'], {'installed'}),
    # only "!name": the defaults without them
    (['!available'], {'installed', 'sources'}),
    (['!installed'], {'sources'}),
    (['!installed', '!sources'], set()),
    (['!all'], set()),
    # "!name" after names or all: taken out of what was chosen so far
    (['all', '!available'], {'installed', 'sources'}),
    (['all', '!installed', '!sources'], {'available'}),
    (['available', '!available'], set()),
    (['!available', 'available'], {'available'}),
])
def test_subsets(requested, chosen):
    assert subsets(requested) == chosen


@pytest.mark.parametrize('requested, named', [
    (['bogus'], 'bogus'),
    (['!bogus'], '!bogus'),
    (['installed', 'Installed'], 'Installed'),
    (['all', 'facts'], 'facts'),
    ([''], ''),
    (['min'], 'min'),
])
def test_subsets_unknown(requested, named):
    with pytest.raises(InvalidParameter) as exc:
        subsets(requested)
    assert exc.value.msg == 'unknown gather_subset "%s": use installed, sources, available, all, or !name' % named


# ---- installed ----

def test_installed_on_the_recorded_smartos_host(tmp_path):
    write_cache(tmp_path, 'zones', BASE, {'v': 2, 'uuid': BASE, 'name': 'base-64', 'version': '1.0'},
                source='https://alice:s3cret@img.example.com/?channel=dev')
    write_cache(tmp_path, 'zones', KVM_IMG, {'v': 2, 'uuid': KVM_IMG, 'name': 'ubuntu-24.04', 'type': 'zvol'},
                source='https://images.smartos.org')
    write(tmp_path, 'var/imgadm/images/zones-%s.json' % INCR, '{"manifest": {"uuid": ')      # cut short
    write_cache(tmp_path, 'zones', IGN_FALSE, {'v': 2, 'uuid': U1, 'name': 'other'})           # another image's
    write(tmp_path, 'var/imgadm/images/zones-%s.json' % SNAP_CLONE, '[]\n')                    # JSON, not imgadm's
    write(tmp_path, 'var/imgadm/images/zones-%s.json' % IGN_GARBAGE, b'{"manifest": "\xff\xfe"}\n')  # not UTF-8
    runner = smartos_host()
    images = FactsGatherer(params(tmp_path), runner).installed()

    # the zone roots (OS, KVM and bhyve VMs), imgadm:ignore true/yes and the copy without @final are not images
    assert sorted(images) == sorted([BASE, INCR, KVM_IMG, IGN_FALSE, IGN_GARBAGE, SNAP_CLONE, NO_FINAL])
    assert images[BASE] == {
        'manifest': {'v': 2, 'uuid': BASE, 'name': 'base-64', 'version': '1.0'}, 'zpool': 'zones',
        'source': 'https://***@img.example.com/?channel=dev', 'manifest_cached': True,
        'clones': sorted('zones/' + u for u in (COPY, SNAP_CLONE, INCR, VM)), 'also_on': ['zones2'],
    }
    # VM disks of both layouts are clones of the zvol image
    assert images[KVM_IMG] == {
        'manifest': {'v': 2, 'uuid': KVM_IMG, 'name': 'ubuntu-24.04', 'type': 'zvol'}, 'zpool': 'zones',
        'source': 'https://images.smartos.org', 'manifest_cached': True,
        'clones': ['zones/%s-disk0' % KVM_VM, 'zones/%s/disk0' % BHYVE_VM],
    }
    # no cache file: the UUID only, flagged
    assert images[NO_FINAL] == {'manifest': {'uuid': NO_FINAL}, 'zpool': 'zones', 'clones': [], 'manifest_cached': False}
    # broken cache files: reported on the image, the others are fine
    assert images[INCR]['manifest'] == {'uuid': INCR}
    assert images[INCR]['manifest_cached'] is False
    assert images[INCR]['also_on'] == ['zones2']
    assert images[INCR]['error'].startswith('cache file %s cannot be read: ' % cache_path(tmp_path, 'zones', INCR))
    assert images[IGN_FALSE]['error'] == ('cache file %s holds the manifest of another image (uuid %r)'
                                          % (cache_path(tmp_path, 'zones', IGN_FALSE), U1))
    assert images[IGN_FALSE]['manifest'] == {'uuid': IGN_FALSE}
    assert images[SNAP_CLONE]['error'] == 'cache file %s is not a JSON object' % cache_path(tmp_path, 'zones', SNAP_CLONE)
    assert images[IGN_GARBAGE]['error'].startswith('cache file %s cannot be read: ' % cache_path(tmp_path, 'zones', IGN_GARBAGE))
    for uuid, entry in images.items():
        assert 'source' not in entry or uuid in (BASE, KVM_IMG)
        assert ('error' in entry) is (uuid in (INCR, IGN_FALSE, SNAP_CLONE, IGN_GARBAGE))
    # zoneadm once, zfs once, nothing else
    assert runner.calls == [['zoneadm', 'list', '-pc'], ZFS_LIST]


@pytest.mark.parametrize('manifest, source, why', [
    ({'v': 2, 'uuid': BASE, 'name': 7}, None, 'the manifest\'s "name" is a JSON number, not a string'),
    ({'v': 2, 'uuid': BASE, 'name': ['base']}, None, 'the manifest\'s "name" is a JSON array, not a string'),
    ({'v': 2, 'uuid': BASE, 'name': 'b', 'version': 1.5}, None, 'the manifest\'s "version" is a JSON number, not a string'),
    ({'v': 2, 'uuid': BASE, 'name': 'b', 'published_at': {}}, None,
     'the manifest\'s "published_at" is a JSON object, not a string'),
    ({'v': 2, 'uuid': BASE, 'name': 'b'}, 42, '"source" is a JSON number, not a URL string'),
    ({'v': 2, 'uuid': BASE, 'name': 'b'}, {'url': 'https://x'}, '"source" is a JSON object, not a URL string'),
    ({'v': 2, 'uuid': BASE, 'name': 'b'}, True, '"source" is a JSON boolean, not a URL string'),
])
def test_installed_cache_file_with_fields_of_the_wrong_type_is_reported_on_that_image(tmp_path, manifest, source, why):
    write(tmp_path, 'var/imgadm/images/zones-%s.json' % BASE,
          {'manifest': manifest, 'zpool': 'zones', **({} if source is None else {'source': source})})
    write_cache(tmp_path, 'zones', KVM_IMG, {'v': 2, 'uuid': KVM_IMG, 'name': 'ubuntu'})
    images = FactsGatherer(params(tmp_path, newest=True), smartos_host()).installed()
    assert images[BASE]['error'] == 'cache file %s has fields of the wrong type: %s' % (cache_path(tmp_path, 'zones', BASE), why)
    assert images[BASE]['manifest'] == {'uuid': BASE} and images[BASE]['manifest_cached'] is False
    assert 'source' not in images[BASE]
    assert images[KVM_IMG]['manifest']['name'] == 'ubuntu'


def test_installed_cache_file_that_is_a_directory_is_reported_on_that_image(tmp_path):
    os.makedirs(cache_path(tmp_path, 'zones', BASE))
    images = FactsGatherer(params(tmp_path), smartos_host()).installed()
    assert images[BASE]['error'] == 'cache file %s cannot be read: Is a directory' % cache_path(tmp_path, 'zones', BASE)
    assert images[BASE]['manifest_cached'] is False


def test_installed_another_images_manifest_is_never_used_for_filters_or_newest(tmp_path):
    """The cache file of BASE holds KVM_IMG's manifest: it is flagged and never matches BASE by name."""
    write_cache(tmp_path, 'zones', BASE, {'v': 2, 'uuid': KVM_IMG, 'name': 'ubuntu'})
    write_cache(tmp_path, 'zones', KVM_IMG, {'v': 2, 'uuid': KVM_IMG, 'name': 'ubuntu'})
    images = FactsGatherer(params(tmp_path, filters={'name': 'ubuntu'}), smartos_host()).installed()
    assert sorted(images) == [KVM_IMG]


def test_installed_without_zoneadm_counts_kvm_and_bhyve_vms_as_images(tmp_path):
    # on a host without zoneadm (the zfs-fuse bench) only the @final rule tells VMs apart, as imgadm would
    runner = smartos_host(with_zoneadm=False)
    images = FactsGatherer(params(tmp_path), runner).installed()
    assert KVM_VM in images and BHYVE_VM in images
    assert VM not in images
    assert runner.calls == [ZFS_LIST]


def test_installed_on_the_zfs_fuse_listing(tmp_path):
    runner = FakeHost.recorded(fixture('zfs_list_zfs_fuse.txt'))
    images = FactsGatherer(params(tmp_path, pools=['tank1']), runner).installed()
    assert sorted(images) == sorted([BASE, INCR, COPY])
    assert images[BASE]['clones'] == ['tank1/' + INCR]       # the clone of its child's snapshot is the child's
    assert images[COPY]['zpool'] == 'tank1'
    assert runner.calls == [ZFS_LIST + ['-r', 'tank1']]


@pytest.mark.parametrize('pools, tail', [
    (None, []),
    ([], []),
    (['zones'], ['-r', 'zones']),
    (['zones', 'zones2'], ['-r', 'zones', 'zones2']),
    (['data.1', 'zones2'], ['-r', 'data.1', 'zones2']),
])
def test_pools_are_listed_in_one_zfs_call(tmp_path, pools, tail):
    runner = smartos_host()
    runner.add('data.1')
    FactsGatherer(params(tmp_path, pools=pools), runner).installed()
    assert runner.calls == [['zoneadm', 'list', '-pc'], ZFS_LIST + tail]


@pytest.mark.parametrize('pool', ['', '2zones', 'zones/child', 'my pool', '-r'])
def test_invalid_pool_is_refused_before_anything_runs(tmp_path, pool):
    runner = smartos_host()
    with pytest.raises(InvalidParameter) as exc:
        FactsGatherer(params(tmp_path, pools=['zones', pool]), runner)
    assert 'is not a valid ZFS pool name' in exc.value.msg
    assert runner.calls == []


def many_images(count, pool='zones'):
    """A zfs listing of count images, each with @final, and their UUIDs."""
    uuids = ['%08x-0000-4000-8000-%012x' % (i, i) for i in range(count)]
    lines = ['%s\t-\t/%s\t-' % (pool, pool)]
    for u in uuids:
        lines.append('%s/%s\t-\t/%s/%s\t-' % (pool, u, pool, u))
        lines.append('%s/%s@final\t-\t-\t-' % (pool, u))
    return '\n'.join(lines) + '\n', uuids


def test_one_zfs_call_for_a_thousand_images(tmp_path):
    listing, uuids = many_images(1000)
    for i, u in enumerate(uuids[:500]):
        write_cache(tmp_path, 'zones', u, {'v': 2, 'uuid': u, 'name': 'img-%d' % (i % 7), 'version': str(i)})
    runner = FakeHost.recorded(listing, zoneadm=fixture('zoneadm_list_pc_smartos.txt'))
    images = FactsGatherer(params(tmp_path, pools=['zones']), runner).installed()
    assert sorted(images) == uuids
    assert sum(e['manifest_cached'] for e in images.values()) == 500
    assert images[uuids[3]]['manifest']['name'] == 'img-3'
    assert images[uuids[999]] == {'manifest': {'uuid': uuids[999]}, 'zpool': 'zones', 'clones': [], 'manifest_cached': False}
    assert runner.calls == [['zoneadm', 'list', '-pc'], ZFS_LIST + ['-r', 'zones']]


def test_zfs_failure_is_a_command_error(tmp_path):
    runner = FakeHost()
    with pytest.raises(ImageError) as exc:
        FactsGatherer(params(tmp_path, pools=['nopool']), runner).installed()
    assert exc.value.msg.startswith('zfs pool or dataset "nopool" does not exist')
    assert exc.value.evidence['rc'] == 1


def caches_for_filters(root):
    write_cache(root, 'zones', BASE, {'v': 2, 'uuid': BASE, 'name': 'base-64', 'os': 'smartos', 'public': True,
                                      'published_at': '2023-01-01T00:00:00Z', 'requirements': {'brand': 'joyent'}})
    write_cache(root, 'zones', INCR, {'v': 2, 'uuid': INCR, 'name': 'base-64', 'os': 'smartos', 'public': False,
                                      'published_at': '2024-01-01T00:00:00Z'})
    write_cache(root, 'zones', KVM_IMG, {'v': 2, 'uuid': KVM_IMG, 'name': 'ubuntu', 'os': 'linux', 'public': True,
                                         'published_at': '2022-01-01T00:00:00Z', 'requirements': {'brand': 'kvm'}})
    write_cache(root, 'zones', NO_FINAL, {'v': 2, 'uuid': NO_FINAL, 'name': 'ubuntu', 'os': 'linux',
                                          'published_at': '2025-01-01T00:00:00Z'})
    write_cache(root, 'zones2', BASE, {'v': 2, 'uuid': BASE, 'name': 'base-64', 'os': 'smartos',
                                       'published_at': '2023-01-01T00:00:00Z'})


@pytest.mark.parametrize('filters, newest, expected', [
    ({}, False, {BASE: 'zones', INCR: 'zones', KVM_IMG: 'zones', NO_FINAL: 'zones', IGN_FALSE: 'zones',
                 IGN_GARBAGE: 'zones', SNAP_CLONE: 'zones'}),
    ({'os': 'smartos'}, False, {BASE: 'zones', INCR: 'zones'}),
    ({'name': '~base'}, False, {BASE: 'zones', INCR: 'zones'}),
    ({'public': True}, False, {BASE: 'zones', KVM_IMG: 'zones'}),
    ({'public': False}, False, {INCR: 'zones'}),
    ({'requirements.brand': 'kvm'}, False, {KVM_IMG: 'zones'}),
    ({'os': 'smartos', 'public': True}, False, {BASE: 'zones'}),
    # zpool is a field of installed images: the other pool's copy stands alone
    ({'zpool': 'zones2'}, False, {BASE: 'zones2', INCR: 'zones2'}),
    ({'zpool': 'zones2', 'name': 'base-64'}, False, {BASE: 'zones2'}),
    ({'zpool': '~zones'}, False, {BASE: 'zones', INCR: 'zones', KVM_IMG: 'zones', NO_FINAL: 'zones', IGN_FALSE: 'zones',
                                  IGN_GARBAGE: 'zones', SNAP_CLONE: 'zones'}),
    ({'zpool': 'tank'}, False, {}),
    # newest of each name; images without a cached manifest have no name and stay
    ({}, True, {INCR: 'zones', NO_FINAL: 'zones', IGN_FALSE: 'zones', IGN_GARBAGE: 'zones', SNAP_CLONE: 'zones'}),
    ({'os': 'smartos'}, True, {INCR: 'zones'}),
    ({'public': True}, True, {BASE: 'zones', KVM_IMG: 'zones'}),     # filters first, then the newest of what is left
    ({'zpool': 'zones2'}, True, {BASE: 'zones2', INCR: 'zones2'}),
])
def test_installed_filters_and_newest(tmp_path, filters, newest, expected):
    caches_for_filters(tmp_path)
    images = FactsGatherer(params(tmp_path, filters=filters, newest=newest), smartos_host()).installed()
    assert {u: e['zpool'] for u, e in images.items()} == expected


def test_installed_malformed_filter_is_refused_before_anything_runs(tmp_path):
    runner = smartos_host()
    with pytest.raises(InvalidParameter) as exc:
        FactsGatherer(params(tmp_path, filters={'a..b': 'x'}), runner)
    assert 'a..b' in exc.value.msg
    assert runner.calls == []


# ---- the original (v1) layout ----

def original_host(root):
    """A host root with only /var/db/imgadm: the original layout."""
    with open(os.path.join(os.path.dirname(__file__), 'fixtures', 'imgadm_v1_db_manifest.json'), encoding='utf-8') as f:
        write(root, 'var/db/imgadm/%s.json' % BASE, f.read())
    write(root, 'var/db/imgadm/sources.list', '# imgadm v1\nhttps://datasets.example.com/datasets\n')


def test_original_layout_reads_the_v1_record_upgraded(tmp_path):
    original_host(tmp_path)
    result = FactsGatherer(params(tmp_path, gather_subset=['installed', 'sources']), smartos_host()).run()
    facts = result['ansible_facts']
    assert facts['smartos_images_layout'] == 'original'
    base = facts['smartos_images'][BASE]
    assert base['manifest_cached'] is True
    assert base['source'] == 'https://datasets.joyent.com/datasets'       # its _url
    manifest = base['manifest']
    assert manifest['v'] == 2 and manifest['uuid'] == BASE and manifest['name'] == 'base64'
    assert manifest['owner'] == '352971aa-31ba-496c-9ade-a379feaecd52'
    assert manifest['files'] == [{'sha1': '1c7a8a1ba2cc8b5fb2f21b6b4ee4b3c63a1d6b47', 'size': 91138360, 'compression': 'bzip2'}]
    assert manifest['state'] == 'active' and manifest['public'] is True
    for gone in ('_url', 'creator_uuid', 'created_at', 'platform_type'):
        assert gone not in manifest
    assert 'error' not in base
    # the others have no record
    assert facts['smartos_images'][INCR] == {'manifest': {'uuid': INCR}, 'zpool': 'zones', 'clones': [],
                                             'manifest_cached': False, 'also_on': ['zones2']}
    assert facts['smartos_image_sources'] == [
        {'url': 'https://datasets.example.com/datasets', 'type': 'dsapi', 'insecure': False, 'implicit': False}]


def test_original_layout_prefers_a_modern_cache_file(tmp_path):
    original_host(tmp_path)
    write_cache(tmp_path, 'zones', BASE, {'v': 2, 'uuid': BASE, 'name': 'from-the-cache'})
    images = FactsGatherer(params(tmp_path, layout='original'), smartos_host()).installed()
    assert images[BASE]['manifest'] == {'v': 2, 'uuid': BASE, 'name': 'from-the-cache'}


def test_original_layout_corrupt_json_record_is_reported(tmp_path):
    write(tmp_path, 'var/db/imgadm/%s.json' % BASE, '{"uuid": ')
    images = FactsGatherer(params(tmp_path), smartos_host()).installed()
    path = os.path.join(str(tmp_path), 'var', 'db', 'imgadm', '%s.json' % BASE)
    assert images[BASE]['error'].startswith('cache file %s cannot be read: ' % path)
    assert images[BASE]['manifest'] == {'uuid': BASE}


def test_original_layout_record_that_cannot_be_upgraded_is_reported(tmp_path):
    write(tmp_path, 'var/db/imgadm/%s.json' % BASE, {'uuid': BASE, 'name': 'no v, no creator_uuid'})
    images = FactsGatherer(params(tmp_path), smartos_host()).installed()
    assert images[BASE]['error'].endswith('cannot be read: manifest does not have a "v" field')
    assert images[INCR]['manifest'] == {'uuid': INCR}


@pytest.mark.parametrize('record', ['[]\n', '"a3e0"\n', '42\n'])
def test_original_layout_record_that_is_not_an_object_is_reported(tmp_path, record):
    write(tmp_path, 'var/db/imgadm/%s.json' % BASE, record)
    images = FactsGatherer(params(tmp_path), smartos_host()).installed()
    assert images[BASE]['manifest_cached'] is False and 'error' in images[BASE]


def test_original_layout_v1_record_without_creator_is_reported(tmp_path):
    write(tmp_path, 'var/db/imgadm/%s.json' % BASE, {'v': 1, 'uuid': BASE, 'name': 'x'})
    images = FactsGatherer(params(tmp_path), smartos_host()).installed()
    assert images[BASE]['manifest_cached'] is False and 'error' in images[BASE]


# ---- available ----

class EventClient:
    """A client of the test's own for FakeClients: list_raw() waits for the event before, then sets the event after."""

    def __init__(self, answer, before=None, after=None):
        self.answer, self.before, self.after = answer, before, after

    def list_raw(self):
        if self.before is not None:
            assert self.before.wait(5), 'the sources were not listed at the same time'
        try:
            if isinstance(self.answer, Exception):
                raise self.answer
            return self.answer
        finally:
            if self.after is not None:
                self.after.set()


def made(factory):
    """(base URL, type, keyword arguments) of every client FakeClients made."""
    return [(source.base, source.type, kw) for source, kw in factory.made]


def v2(uuid, name, published_at, **extra):
    return dict(dict(state='active'), **extra, v=2, uuid=uuid, name=name, version='1', published_at=published_at,
                owner=OWNER)


def gatherer(root, factory, **kw):
    return FactsGatherer(params(root, gather_subset=['available'], **kw), None, client_factory=factory)


def available(root, clients, entries, **kw):
    factory = FakeClients(clients)
    merged, errors = gatherer(root, factory, **kw).available(entries)
    return merged, errors, factory


def listed(merged):
    return [(e['manifest']['uuid'], e['manifest']['name'], e['source']) for e in merged]


def test_available_merges_by_uuid_in_source_order(tmp_path):
    # the first source answers last: its copy of U1 still wins
    second_done = threading.Event()
    clients = {
        SRC1: EventClient([v2(U1, 'one-from-1', '2024-01-01T00:00:00Z'), v2(U2, 'two', '2023-01-01T00:00:00Z')],
                          before=second_done),
        SRC2: EventClient([v2(U3, 'three', '2022-01-01T00:00:00Z'), v2(U1, 'one-from-2', '2024-01-01T00:00:00Z')],
                          after=second_done),
    }
    merged, errors, factory = available(tmp_path, clients, [SourceEntry(SRC1), SourceEntry(SRC2)])
    assert errors == []
    # oldest first
    assert listed(merged) == [(U3, 'three', SRC2), (U2, 'two', SRC1), (U1, 'one-from-1', SRC1)]
    assert made(factory) == [(SRC1, 'imgapi', {'validate_certs': True, 'ca_path': None, 'timeout': 30, 'retries': 3}),
                             (SRC2, 'imgapi', {'validate_certs': True, 'ca_path': None, 'timeout': 30, 'retries': 3})]


def test_available_sorted_by_published_at_then_name(tmp_path):
    manifests = [v2(U1, 'b', '2024-01-01T00:00:00Z'), v2(U2, 'a', '2024-01-01T00:00:00Z'),
                 v2(U3, 'c', '2020-01-01T00:00:00Z'), dict(v2(U4, 'z', None))]
    merged, dummy, dummy2 = available(tmp_path, {SRC1: manifests}, [SourceEntry(SRC1)])
    assert [e['manifest']['name'] for e in merged] == ['z', 'c', 'a', 'b']


def test_available_passes_the_server_options(tmp_path):
    dummy, dummy2, factory = available(tmp_path, {SRC1: []}, [SourceEntry(SRC1)], validate_certs=False,
                                       ca_path='/etc/ca.pem', timeout=7, retries=0)
    assert made(factory) == [(SRC1, 'imgapi', {'validate_certs': False, 'ca_path': '/etc/ca.pem', 'timeout': 7, 'retries': 0})]


def test_available_skips_docker_sources(tmp_path):
    entries = [SourceEntry('https://docker.io', 'docker'), SourceEntry(SRC1)]
    merged, errors, factory = available(tmp_path, {SRC1: [v2(U1, 'one', '2024-01-01T00:00:00Z')]}, entries)
    assert [base for base, dummy, dummy2 in made(factory)] == [SRC1]
    assert listed(merged) == [(U1, 'one', SRC1)]
    assert errors == []


def test_available_with_only_docker_sources_is_empty(tmp_path):
    merged, errors, factory = available(tmp_path, {}, [SourceEntry('https://docker.io', 'docker')])
    assert (merged, errors, factory.made) == ([], [], [])


def skipped_by(root, clients, entries):
    """(merged, errors, the warnings about skipped list entries)."""
    g = gatherer(root, FakeClients(clients))
    merged, errors = g.available(entries)
    return merged, errors, g.skipped


def test_available_per_source_errors_are_not_fatal(tmp_path):
    down = SourceError('http://img1.example.com/images could not be reached after 4 attempt(s): timed out')
    clients = {SRC1: down, SRC2: [v2(U1, 'one', '2024-01-01T00:00:00Z')],
               'http://img3.example.com': [v2(U2, 'two', '2024-01-01T00:00:00Z'), 'not a manifest']}
    entries = [SourceEntry(SRC1), SourceEntry(SRC2), SourceEntry('http://img3.example.com')]
    merged, errors, skipped = skipped_by(tmp_path, clients, entries)
    # the bad entry is skipped with a warning; the rest of its source's list is used
    assert listed(merged) == [(U1, 'one', SRC2), (U2, 'two', 'http://img3.example.com')]
    assert errors == [
        {'source': SRC1, 'error': 'http://img1.example.com/images could not be reached after 4 attempt(s): timed out'},
    ]
    assert skipped == ['http://img3.example.com: skipped 1 image(s) of its list: entry 1: a JSON string, not a manifest']


@pytest.mark.parametrize('bad, why', [
    (None, 'entry 1: a JSON null, not a manifest'),
    (42, 'entry 1: a JSON number, not a manifest'),
    ('text', 'entry 1: a JSON string, not a manifest'),
    (['list'], 'entry 1: a JSON array, not a manifest'),
    (True, 'entry 1: a JSON boolean, not a manifest'),
    ({'v': 2, 'uuid': ['x'], 'name': 'n'}, 'entry 1: "uuid" is not a lower-case UUID'),
    ({'v': 2, 'uuid': OWNER.upper(), 'name': 'n'}, 'entry 1: "uuid" is not a lower-case UUID'),
    (v2(U3, 7, '2024-01-01T00:00:00Z'), 'image %s: "name" is a JSON number, not a string' % U3),
    (v2(U3, 'x', 1700000000), 'image %s: "published_at" is a JSON number, not a string' % U3),
    (v2(U3, 'x', ['2024']), 'image %s: "published_at" is a JSON array, not a string' % U3),
    ({'uuid': U3, 'creator_uuid': OWNER, 'files': ['x']}, 'entry 1: v1 manifest "files[0]" is a JSON string, not an object'),
])
def test_available_a_bad_entry_in_a_list_is_skipped_with_a_warning(tmp_path, bad, why):
    clients = {SRC1: [v2(U1, 'one', '2024-01-01T00:00:00Z'), bad], SRC2: [v2(U2, 'two', '2024-01-01T00:00:00Z')]}
    merged, errors, skipped = skipped_by(tmp_path, clients, [SourceEntry(SRC1), SourceEntry(SRC2)])
    assert listed(merged) == [(U1, 'one', SRC1), (U2, 'two', SRC2)]
    assert errors == []
    assert skipped == ['%s: skipped 1 image(s) of its list: %s' % (SRC1, why)]


def test_available_names_at_most_three_skipped_entries(tmp_path):
    clients = {SRC1: [1, 2, 3, 4, v2(U1, 'one', '2024-01-01T00:00:00Z')]}
    merged, errors, skipped = skipped_by(tmp_path, clients, [SourceEntry(SRC1)])
    assert listed(merged) == [(U1, 'one', SRC1)]
    assert skipped == ['%s: skipped 4 image(s) of its list: entry 0: a JSON number, not a manifest; '
                       'entry 1: a JSON number, not a manifest; entry 2: a JSON number, not a manifest; ...' % SRC1]


@pytest.mark.parametrize('answer', [{'images': []}, 'text', None, 7])
def test_available_a_list_that_is_not_a_list_is_a_per_source_error(tmp_path, answer):
    clients = {SRC1: [v2(U1, 'one', '2024-01-01T00:00:00Z')], SRC2: answer}
    merged, errors, dummy = available(tmp_path, clients, [SourceEntry(SRC1), SourceEntry(SRC2)])
    assert listed(merged) == [(U1, 'one', SRC1)]
    assert errors == [{'source': SRC2, 'error': 'the image list is not a list'}]


def test_available_an_unexpected_error_is_a_per_source_error_without_its_text(tmp_path):
    clients = {SRC1: [v2(U1, 'one', '2024-01-01T00:00:00Z')],
               SRC2: KeyError('http://bob:s3cret@img2.example.com')}
    merged, errors, dummy = available(tmp_path, clients, [SourceEntry(SRC1), SourceEntry(SRC2)])
    assert listed(merged) == [(U1, 'one', SRC1)]
    assert errors == [{'source': SRC2, 'error': 'listing failed unexpectedly (KeyError)'}]


def test_available_all_sources_failing_raises(tmp_path):
    clients = {SRC1: SourceError('http://img1.example.com/images answered HTTP 500: InternalError: oops'),
               SRC2: {'not': 'a list'},
               'http://img3.example.com': []}
    with pytest.raises(SourceError) as exc:
        available(tmp_path, clients, [SourceEntry(SRC1), SourceEntry(SRC2)])
    assert exc.value.msg == ('no image source answered: http://img1.example.com: http://img1.example.com/images answered '
                             'HTTP 500: InternalError: oops; http://img2.example.com: the image list is not a list')
    # one source that answers, even with nothing, is enough
    merged, errors, dummy = available(tmp_path, clients, [SourceEntry(SRC1), SourceEntry('http://img3.example.com')])
    assert merged == [] and len(errors) == 1


def test_available_upgrades_dsapi_manifests(tmp_path):
    ds = 'https://datasets.example.com/datasets'
    v1 = {'uuid': U1, 'name': 'base64', 'version': '1.8.1', 'creator_uuid': OWNER, 'creator_name': 'sdc',
          'created_at': '2012-11-27T21:08Z', 'files': [{'path': 'base64.zfs.bz2', 'sha1': 'a' * 40, 'size': 3,
                                                        'url': ds + '/%s/base64.zfs.bz2' % U1}]}
    merged, errors, factory = available(tmp_path, {ds: [v1]}, [SourceEntry(ds, 'dsapi')])
    assert errors == []
    assert made(factory)[0][:2] == (ds, 'dsapi')
    manifest = merged[0]['manifest']
    assert merged[0]['source'] == ds
    assert manifest['v'] == 2 and manifest['owner'] == OWNER and manifest['published_at'] == '2012-11-27T21:08:00Z'
    assert manifest['files'] == [{'sha1': 'a' * 40, 'size': 3, 'compression': 'bzip2'}]
    assert 'creator_uuid' not in manifest


def test_available_v1_manifest_that_cannot_be_upgraded_is_skipped(tmp_path):
    ds = 'https://datasets.example.com/datasets'
    clients = {ds: [{'uuid': U1, 'name': 'no v, no creator_uuid'}], SRC1: [v2(U2, 'two', '2024-01-01T00:00:00Z')]}
    merged, errors, skipped = skipped_by(tmp_path, clients, [SourceEntry(ds, 'dsapi'), SourceEntry(SRC1)])
    assert listed(merged) == [(U2, 'two', SRC1)]
    assert errors == []
    assert skipped == [ds + ': skipped 1 image(s) of its list: entry 0: manifest does not have a "v" field']


@pytest.mark.parametrize('filters, newest, uuids', [
    ({}, False, [U1, U3, U2, U4]),
    ({'name': '~bas'}, False, [U1, U2, U4]),
    ({'os': 'smartos', 'public': True}, False, [U1, U2]),
    ({'requirements.brand': 'lx'}, False, [U3]),
    ({'zpool': 'zones'}, False, []),                 # available images are on no pool
    ({}, True, [U3, U4]),
    ({'os': 'smartos'}, True, [U3, U2]),
    ({'public': True}, True, [U2]),                  # filters first: U4's public is the text "true"
])
def test_available_filters_and_newest(tmp_path, filters, newest, uuids):
    clients = {
        SRC1: [v2(U1, 'base', '2020-01-01T00:00:00Z', os='smartos', public=True),
               v2(U2, 'base', '2024-01-01T00:00:00Z', os='smartos', public=True),
               v2(U3, 'minimal', '2021-01-01T00:00:00Z', os='smartos', public=False, requirements={'brand': 'lx'})],
        SRC2: [v2(U4, 'base', '2025-01-01T00:00:00Z', os='linux', public='true')],
    }
    merged, dummy, dummy2 = available(tmp_path, clients, [SourceEntry(SRC1), SourceEntry(SRC2)],
                                      filters=filters, newest=newest)
    assert [e['manifest']['uuid'] for e in merged] == uuids


def test_available_from_a_server_that_ignores_the_query_lists_what_imgapi_would(tmp_path):
    # a static server answers its whole list: inactive images, and images of other channels, are left out here
    listing = [v2(U1, 'base', '2024-01-01T00:00:00Z'), v2(U2, 'base', '2025-01-01T00:00:00Z', state='disabled'),
               v2(U3, 'base', '2025-01-01T00:00:00Z', channels=['staging']),
               v2(U4, 'base', '2023-01-01T00:00:00Z', channels=['dev', 'staging'])]
    merged, errors, dummy = available(tmp_path, {'https://img.example.com': listing},
                                      [SourceEntry('https://img.example.com?channel=dev')])
    assert errors == [] and [e['manifest']['uuid'] for e in merged] == [U4, U1]
    merged, errors, dummy = available(tmp_path, {'https://img.example.com': listing},
                                      [SourceEntry('https://img.example.com')], newest=True)
    assert [e['manifest']['uuid'] for e in merged] == [U3]


def test_available_credentials_are_redacted(tmp_path):
    url = 'https://bob:pw1@img.example.com/?channel=dev'
    clients = {'https://img.example.com': [v2(U1, 'one', '2024-01-01T00:00:00Z')],
               SRC2: SourceError('boom')}
    merged, errors, dummy = available(tmp_path, clients, [SourceEntry(url), SourceEntry('http://carol:pw2@img2.example.com')])
    assert merged[0]['source'] == 'https://***@img.example.com/?channel=dev'
    assert errors == [{'source': 'http://***@img2.example.com', 'error': 'boom'}]
    assert 'pw1' not in repr(merged) and 'pw2' not in repr(errors)


@pytest.mark.filterwarnings('ignore::pytest.PytestUnhandledThreadExceptionWarning')
def test_available_a_source_url_that_cannot_be_used_is_a_per_source_error(tmp_path):
    clients = {SRC2: [v2(U1, 'one', '2024-01-01T00:00:00Z')]}
    merged, errors, dummy = available(tmp_path, clients, [SourceEntry('http://img1.example.com:99999'), SourceEntry(SRC2)])
    assert listed(merged) == [(U1, 'one', SRC2)]
    assert errors[0]['source'] == 'http://img1.example.com:99999'


@pytest.mark.filterwarnings('ignore::pytest.PytestUnhandledThreadExceptionWarning')
def test_available_v1_manifest_without_creator_is_skipped(tmp_path):
    ds = 'https://datasets.example.com/datasets'
    clients = {ds: [{'v': 1, 'uuid': U1, 'name': 'x'}], SRC1: [v2(U2, 'two', '2024-01-01T00:00:00Z')]}
    merged, errors, skipped = skipped_by(tmp_path, clients, [SourceEntry(ds, 'dsapi'), SourceEntry(SRC1)])
    assert listed(merged) == [(U2, 'two', SRC1)]
    assert errors == [] and skipped == [ds + ': skipped 1 image(s) of its list: entry 0: v1 manifest has no "creator_uuid"']


def test_available_lists_more_sources_than_run_at_once(tmp_path):
    count = _facts.PARALLEL_SOURCES * 2 + 1
    clients = {}
    for i in range(count):
        clients['http://img%d.example.com' % i] = [v2('%08x-0000-4000-8000-000000000000' % i, 'img%d' % i,
                                                      '2024-01-%02dT00:00:00Z' % (i + 1))]
    entries = [SourceEntry('http://img%d.example.com' % i) for i in range(count)]
    merged, errors, factory = available(tmp_path, clients, entries)
    assert [e['manifest']['name'] for e in merged] == ['img%d' % i for i in range(count)]
    assert len(factory.made) == count and errors == []


# ---- run ----

def test_run_gathers_everything(tmp_path):
    write(tmp_path, 'var/imgadm/imgadm.conf', {'sources': [
        {'type': 'imgapi', 'url': 'https://alice:s3cret@img1.example.com'},
        {'type': 'imgapi', 'url': SRC2, 'insecure': True},
        {'type': 'docker', 'url': 'https://docker.io'}]})
    write_cache(tmp_path, 'zones', BASE, {'v': 2, 'uuid': BASE, 'name': 'base-64'})
    factory = FakeClients({'https://img1.example.com': [v2(U1, 'one', '2024-01-01T00:00:00Z')],
                           SRC2: SourceError('http://img2.example.com/images answered HTTP 503: try later')})
    runner = smartos_host()
    result = FactsGatherer(params(tmp_path, gather_subset=['all']), runner, client_factory=factory).run()
    assert result['changed'] is False
    assert result['warnings'] == ['http://img2.example.com: http://img2.example.com/images answered HTTP 503: try later']
    facts = result['ansible_facts']
    assert sorted(facts) == ['smartos_image_sources', 'smartos_images', 'smartos_images_available',
                             'smartos_images_available_errors', 'smartos_images_layout']
    assert facts['smartos_images_layout'] == 'modern'
    assert facts['smartos_images'][BASE]['manifest']['name'] == 'base-64'
    assert facts['smartos_image_sources'] == [
        {'url': 'https://***@img1.example.com', 'type': 'imgapi', 'insecure': False, 'implicit': False},
        {'url': SRC2, 'type': 'imgapi', 'insecure': True, 'implicit': False},
        {'url': 'https://docker.io', 'type': 'docker', 'insecure': False, 'implicit': False}]
    assert listed(facts['smartos_images_available']) == [(U1, 'one', 'https://***@img1.example.com')]
    assert facts['smartos_images_available_errors'] == [
        {'source': SRC2, 'error': 'http://img2.example.com/images answered HTTP 503: try later'}]
    assert 's3cret' not in json.dumps(result)


@pytest.mark.parametrize('gather_subset, keys', [
    (['installed'], ['smartos_images', 'smartos_images_layout']),
    (['sources'], ['smartos_image_sources', 'smartos_images_layout']),
    (['!installed', '!sources'], ['smartos_images_layout']),
])
def test_run_gathers_only_what_was_asked(tmp_path, gather_subset, keys):
    runner = smartos_host()
    result = FactsGatherer(params(tmp_path, gather_subset=gather_subset), runner, client_factory=FakeClients()).run()
    assert sorted(result['ansible_facts']) == keys
    assert result['warnings'] == []
    assert bool(runner.calls) is ('smartos_images' in keys)


def test_run_without_a_config_lists_the_implicit_default_source(tmp_path):
    result = FactsGatherer(params(tmp_path, gather_subset=['sources']), None).run()
    assert result['ansible_facts']['smartos_image_sources'] == [
        {'url': 'https://images.smartos.org', 'type': 'imgapi', 'insecure': False, 'implicit': True}]
