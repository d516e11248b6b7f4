# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A lone surrogate in an image server's JSON ("\\ud800" is valid JSON; json.loads makes a str that has no UTF-8
form): every file the collection writes from such JSON is still written, reads back the same, and a second run
changes nothing; a module's result has U+FFFD in their place, as the controller takes no lone surrogate. The fake
host and fake image servers of tests/unit/fakehost.py stand in for the host and the servers."""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import random

import pytest

from ansible_collections.smartos.images.plugins.module_utils import _host, _manifest_build
from ansible_collections.smartos.images.plugins.module_utils._host import HostPaths
from ansible_collections.smartos.images.plugins.module_utils._source_entry import SourceEntry
from ansible_collections.smartos.images.plugins.module_utils._source_manager import SourceManager
from ansible_collections.smartos.images.plugins.module_utils._sources import ModernSources
from ansible_collections.smartos.images.plugins.modules import smartos_image, smartos_image_facts
from ansible_collections.smartos.images.tests.unit.fakehost import FakeClients, FakeHost

U = '2f1dc911-6401-4fa4-8e9d-67ea2e39c271'
POOL = 'zones'
DS = '%s/%s' % (POOL, U)
SRC = 'http://img1.example.com'
STREAM = b'ZFS send stream of ' + U.encode() + random.Random(14).randbytes(20000)
IMAGE_FILE = gzip.compress(STREAM, mtime=0)
LONE_HIGH = '\ud800'
LONE_LOW = '\udc80'
MANIFEST = {
    'v': 2, 'uuid': U, 'owner': '930896af-bf8c-48d4-885c-6573a94b1853', 'name': 'base-64-lts', 'version': '24.4.1',
    'state': 'active', 'disabled': False, 'public': True, 'type': 'zone-dataset', 'os': 'smartos',
    'description': 'caf\u00e9 ' + LONE_HIGH + ' \\' + LONE_LOW + ' \U0001f600 end',
    'tags': {'k' + LONE_LOW + 'ey': 'v' + LONE_HIGH},
    'files': [{'sha1': hashlib.sha1(IMAGE_FILE).hexdigest(), 'size': len(IMAGE_FILE), 'compression': 'gzip'}],
}
# what IMGAPI's JSON.stringify sends: the lone surrogates escaped, everything else as UTF-8
SERVED = json.dumps(MANIFEST, ensure_ascii=False).encode('utf-8', 'backslashreplace')


def test_the_served_manifest_is_valid_json_holding_lone_surrogates():
    assert b'\\ud800' in SERVED and b'\\udc80' in SERVED and 'caf\u00e9'.encode() in SERVED
    assert json.loads(SERVED.decode('utf-8')) == MANIFEST


# ---- the shared rule ----

SAMPLES = [
    {}, [], '', 'plain', 'caf\u00e9 \u2603 \U0001f600', {'a': [1, 2.5, None, True, {'b': 'c'}]},
    {'k\u00e9y': 'v\u00e9', 'nested': {'deeper': ['x', '\u00ff']}}, ['\\', '"', '\n\t', '\x00\x1f', '\u2028'],
]
SURROGATE_SAMPLES = [
    LONE_HIGH, LONE_LOW, '\udfff', 'a' + LONE_HIGH + 'b', '\\' + LONE_HIGH, '\\\\' + LONE_LOW, '"' + LONE_HIGH + '"',
    {LONE_HIGH: LONE_LOW}, {'k': ['caf\u00e9', '\udbff', {'\udc00x': '\u00e9' + LONE_HIGH}]},
    LONE_LOW + LONE_HIGH,             # low then high: not a pair, two lone surrogates in either reading
    LONE_HIGH + 'x' + LONE_LOW, MANIFEST,
]
LAYOUTS = [dict(), dict(indent=2), dict(separators=(',', ':'))]


@pytest.mark.parametrize('layout', LAYOUTS)
@pytest.mark.parametrize('document', SAMPLES)
def test_without_lone_surrogates_the_bytes_are_what_they_were(document, layout):
    old = json.dumps(document, ensure_ascii=False, **layout).encode('utf-8')
    assert _host.json_bytes(document, **layout) == old
    assert _host.json_bytes(document, newline=True, **layout) == old + b'\n'


@pytest.mark.parametrize('layout', LAYOUTS)
@pytest.mark.parametrize('document', SURROGATE_SAMPLES)
def test_lone_surrogates_are_written_escaped_and_read_back_the_same(document, layout):
    data = _host.json_bytes(document, **layout)
    text = data.decode('utf-8')                   # strict UTF-8: the file is valid UTF-8
    assert json.loads(text) == document           # and valid JSON of the same document
    # only the lone surrogates are escaped (as \\uXXXX, lower case as JSON.stringify writes them): the rest is
    # what ensure_ascii=False writes
    assert text == ''.join('\\u%04x' % ord(c) if '\ud800' <= c <= '\udfff' else c
                           for c in json.dumps(document, ensure_ascii=False, **layout))
    assert not any(0xd800 <= ord(c) <= 0xdfff for c in text)


def test_lone_surrogates_are_written_as_json_stringify_writes_them():
    # node: JSON.stringify({"d": "a\ud800\u00e9", "\udc80": 1}) === '{"d":"a\\ud800é","\\udc80":1}'
    doc = {'d': 'a' + LONE_HIGH + '\u00e9', LONE_LOW: 1}
    assert _host.json_bytes(doc, separators=(',', ':')) == b'{"d":"a\\ud800\xc3\xa9","\\udc80":1}'


def test_random_strings_round_trip():
    rnd = random.Random(1414)
    alphabet = ['a', '\\', '"', '\n', '\u00e9', '\u2603', '\U0001f600', LONE_HIGH, LONE_LOW, '\udbff', '\udfff', '\x00']
    for dummy in range(2000):
        s = ''.join(rnd.choice(alphabet) for dummy in range(rnd.randint(0, 12)))
        if any('\ud800' <= a <= '\udbff' and '\udc00' <= b <= '\udfff' for a, b in zip(s, s[1:])):
            continue   # a high then a low surrogate: JSON reads their escapes as one character (see below)
        doc = {s: [s, {'x': s}]}
        for layout in LAYOUTS:
            data = _host.json_bytes(doc, **layout)
            assert json.loads(data.decode('utf-8')) == doc
            if not any('\ud800' <= c <= '\udfff' for c in s):
                assert data == json.dumps(doc, ensure_ascii=False, **layout).encode('utf-8')


def test_a_high_then_low_surrogate_pair_reads_back_as_its_one_character():
    # json.loads never makes such a str (it joins "\ud83d\ude00" into U+1F600), so the files never hold one;
    # any JSON writer (ensure_ascii=True too) gives the same escapes
    data = _host.json_bytes('\ud83d\ude00')
    assert data == json.dumps('\ud83d\ude00').encode() == b'"\\ud83d\\ude00"'
    assert json.loads(data) == '\U0001f600'


def test_each_writer_keeps_its_layout():
    manifest = {'uuid': U, 'description': 'caf\u00e9'}
    assert _host.image_info_json(manifest, POOL, SRC) == (json.dumps(
        {'manifest': manifest, 'zpool': POOL, 'source': SRC}, indent=2, ensure_ascii=False) + '\n').encode()
    assert _manifest_build.dumps(manifest) == (json.dumps(manifest, indent=2, ensure_ascii=False) + '\n').encode()
    assert _host.OriginalRecord(HostPaths('/x'), manifest).data == json.dumps(
        manifest, indent=2, ensure_ascii=False).encode()


def test_each_writer_takes_lone_surrogates():
    assert json.loads(_host.image_info_json(MANIFEST, POOL, SRC))['manifest'] == MANIFEST
    assert json.loads(_host.OriginalRecord(HostPaths('/x'), MANIFEST).data) == MANIFEST
    assert json.loads(_manifest_build.dumps(MANIFEST)) == MANIFEST
    assert _host.image_info_json(MANIFEST, POOL, SRC).endswith(b'\n')
    assert not _host.OriginalRecord(HostPaths('/x'), MANIFEST).data.endswith(b'\n')


# ---- module results: the controller refuses a lone surrogate ----

def test_results_get_u_fffd_for_each_lone_surrogate():
    value = {'image': MANIFEST, 'n': 1, 'none': None, 'flag': True, 'list': ('a' + LONE_HIGH, [LONE_LOW])}
    clean = _host.without_lone_surrogates(value)
    assert clean['image']['description'] == 'caf\u00e9 \ufffd \\\ufffd \U0001f600 end'
    assert clean['image']['tags'] == {'k\ufffdey': 'v\ufffd'}
    assert clean['list'] == ('a\ufffd', ['\ufffd']) and clean['n'] == 1 and clean['none'] is None
    assert json.dumps(clean, ensure_ascii=False).encode('utf-8')      # every string has a UTF-8 form
    assert value['image'] is MANIFEST and MANIFEST['description'].count(LONE_HIGH) == 1   # the input is unchanged


@pytest.mark.parametrize('document', SAMPLES)
def test_results_without_lone_surrogates_are_unchanged(document):
    assert _host.without_lone_surrogates(document) == document


def utf8_strings_only(result):
    """What ansible-core's controller checks of a module's result (MODULE_STRICT_UTF8_RESPONSE, on by default)."""
    json.dumps(result, ensure_ascii=False).encode('utf-8')


# ---- smartos_image: import, then the same run again ----

def shown(value):
    return _host.without_lone_surrogates(value)


def image_host(datasets=()):
    return FakeHost(list(datasets), streams={U: STREAM})


def serve(servers):
    servers.serve('%s/images/%s' % (SRC, U), SERVED)
    servers.serve('%s/images/%s/file' % (SRC, U), IMAGE_FILE)


def modern_cache(tmp_path):
    return str(tmp_path / 'var' / 'imgadm' / 'images' / ('%s-%s.json' % (POOL, U)))


def test_import_writes_imgadm_cache_file_and_a_second_run_changes_nothing(run_module, servers, tmp_path):
    run = functools.partial(run_module, smartos_image)
    serve(servers)
    host = image_host([POOL])
    first = run(host, uuid=U, source=[SRC])
    assert not first.get('failed'), first
    assert first['changed'] is True and shown(first['image']) == shown(MANIFEST)
    assert DS in host.datasets and DS + '-partial' not in host.datasets
    with open(modern_cache(tmp_path), 'rb') as f:
        data = f.read()
    assert data == _host.json_bytes({'manifest': MANIFEST, 'zpool': POOL, 'source': SRC}, indent=2, newline=True)
    assert b'\\ud800' in data and 'caf\u00e9'.encode() in data
    assert _host.read_json(modern_cache(tmp_path)) == {'manifest': MANIFEST, 'zpool': POOL, 'source': SRC}
    assert os.listdir(os.path.dirname(modern_cache(tmp_path))) == [os.path.basename(modern_cache(tmp_path))]

    del host.calls[:], servers.requests[:]
    for check in (True, False):
        again = run(host, check=check, uuid=U, source=[SRC])
        assert again['changed'] is False and again['actions'] == [] and shown(again['image']) == shown(MANIFEST)
    assert host.mutations() == [] and servers.requests == []
    with open(modern_cache(tmp_path), 'rb') as f:
        assert f.read() == data


def test_import_original_layout_writes_the_v1_record(run_module, servers, tmp_path):
    run = functools.partial(run_module, smartos_image)
    serve(servers)
    os.makedirs(str(tmp_path / 'var' / 'db' / 'imgadm'))
    host = image_host([POOL])
    first = run(host, uuid=U, source=[SRC])
    assert not first.get('failed'), first
    assert first['changed'] is True
    record = str(tmp_path / 'var' / 'db' / 'imgadm' / ('%s.json' % U))
    v1 = _host.read_json(record)
    assert v1['uuid'] == U and v1['description'] == MANIFEST['description']
    assert ['zfs', 'set', 'imgadm:uuid=%s' % U, DS] in host.calls
    del host.calls[:]
    again = run(host, uuid=U, source=[SRC])
    assert again['changed'] is False and host.mutations() == []


def test_facts_lists_such_images_installed_and_available(run_module, servers, tmp_path):
    servers.serve(SRC + '/images', b'[' + SERVED + b']')
    path = modern_cache(tmp_path)
    os.makedirs(os.path.dirname(path))
    with open(path, 'wb') as f:
        f.write(_host.image_info_json(MANIFEST, POOL, SRC))
    with open(str(tmp_path / 'var' / 'imgadm' / 'imgadm.conf'), 'w') as f:
        json.dump({'sources': [{'type': 'imgapi', 'url': SRC}]}, f)
    host = image_host([POOL, DS, DS + '@final'])
    result = run_module(smartos_image_facts, host, gather_subset=['installed', 'available'])
    assert not result.get('failed'), result
    facts = result['ansible_facts']
    assert shown(facts['smartos_images'][U]['manifest']) == shown(MANIFEST)
    assert [shown(e['manifest']) for e in facts['smartos_images_available']] == [shown(MANIFEST)]
    assert host.mutations() == []


# ---- the sources: imgadm.conf and imgcache.json ----

def test_imgadm_conf_with_a_lone_surrogate_in_another_key_takes_a_new_source(tmp_path):
    text = json.dumps({'dockerImportSkipUuids': True, 'upgradedToVer': '3.0.0',
                       'sources': [{'type': 'imgapi', 'url': 'https://a'}], 'note': 'x' + LONE_HIGH}, indent=2)
    (tmp_path / 'var' / 'imgadm').mkdir(parents=True)
    (tmp_path / 'var' / 'imgadm' / 'imgadm.conf').write_text(text)
    store = ModernSources(HostPaths(str(tmp_path))).load()
    assert store.render(store.entries()).decode('utf-8') == text
    out = json.loads(store.render(store.entries() + [SourceEntry('https://b', 'imgapi', False)]).decode('utf-8'))
    assert out['note'] == 'x' + LONE_HIGH and [s['url'] for s in out['sources']] == ['https://a', 'https://b']


def test_update_cache_with_lone_surrogates_then_unchanged(tmp_path):
    os.makedirs(os.path.join(str(tmp_path), 'var', 'db', 'imgadm'))
    with open(os.path.join(str(tmp_path), 'var', 'db', 'imgadm', 'sources.list'), 'w') as f:
        f.write('https://d.example/datasets\n')
    params = dict(url=None, type='imgapi', insecure=False, sources=None, state='present', ping=True,
                  update_cache=True, host_root=str(tmp_path), layout='auto', validate_certs=True, ca_path=None,
                  timeout=30, retries=0)
    listing = [json.loads(SERVED.decode('utf-8'))]
    first = SourceManager(dict(params), client_factory=FakeClients(default=listing)).run()
    assert first['cache_updated'] is True
    path = os.path.join(str(tmp_path), 'var', 'db', 'imgadm', 'imgcache.json')
    assert _host.read_json(path) == [dict(MANIFEST, _url='https://d.example/datasets')]
    again = SourceManager(dict(params), client_factory=FakeClients(default=listing)).run()
    assert again['cache_updated'] is False and again['changed'] is False


# ---- what reaches the controller ----

def test_the_import_result_has_utf8_strings_only(run_module, servers, tmp_path):
    serve(servers)
    host = image_host([POOL])
    for dummy in range(2):        # the import, then the run that reads imgadm's cache file
        result = run_module(smartos_image, host, uuid=U, source=[SRC])
        assert not result.get('failed'), result
        utf8_strings_only(result)
        assert result['image']['description'] == 'caf\u00e9 \ufffd \\\ufffd \U0001f600 end'


def test_the_facts_result_has_utf8_strings_only(run_module, servers, tmp_path):
    servers.serve(SRC + '/images', b'[' + SERVED + b']')
    os.makedirs(str(tmp_path / 'var' / 'imgadm'))
    with open(str(tmp_path / 'var' / 'imgadm' / 'imgadm.conf'), 'w') as f:
        json.dump({'sources': [{'type': 'imgapi', 'url': SRC}]}, f)
    result = run_module(smartos_image_facts, image_host([POOL]), gather_subset=['available'])
    assert not result.get('failed'), result
    utf8_strings_only(result)
