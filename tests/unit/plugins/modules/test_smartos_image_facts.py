# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""smartos_image_facts main() end to end: the recorded SmartOS host behind the Runner seam, fake image servers behind
the Request that ImageServerClient uses (tests/unit/fakehost.py); the module's JSON is parsed from stdout and checked against its RETURN."""

from __future__ import annotations

import functools
import json
import os

import pytest
import yaml

from ansible_collections.smartos.images.plugins.modules import smartos_image_facts
from ansible_collections.smartos.images.tests.unit.fakehost import (
    BAD_LINES, BASE, INCR, KVM_IMG, NO_FINAL, FakeHost, leftover_sources_list, smartos_host, warnings_of,
)

SRC1 = 'http://img1.example.com'
SRC2 = 'http://img2.example.com'
AVAILABLE = [
    {'v': 2, 'uuid': '7b5981c4-1889-11e7-b4c5-3f3bdfc9b88b', 'name': 'base-64-lts', 'version': '24.4.1', 'os': 'smartos',
     'published_at': '2024-12-05T09:54:41Z', 'public': True, 'state': 'active'},
    {'v': 2, 'uuid': BASE, 'name': 'base-64', 'version': '1.0', 'os': 'smartos', 'published_at': '2023-01-01T00:00:00Z',
     'state': 'active'},
]
READ_ONLY = (['zfs', 'list'], ['zoneadm', 'list'])


@pytest.fixture
def run(run_module):
    """run(host, check=..., **module args) -> the result of smartos_image_facts's main()."""
    return functools.partial(run_module, smartos_image_facts)


def write(root, relpath, data):
    path = os.path.join(str(root), relpath)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(data if isinstance(data, str) else json.dumps(data, indent=2) + '\n')


@pytest.fixture
def host_root(tmp_path):
    """A modern host root: two sources (one with credentials), a docker one, cached manifests, one corrupt."""
    write(tmp_path, 'var/imgadm/imgadm.conf', {'sources': [
        {'type': 'imgapi', 'url': 'http://bob:pw1@img1.example.com'},
        {'type': 'imgapi', 'url': SRC2},
        {'type': 'docker', 'url': 'https://docker.io'}]})
    write(tmp_path, 'var/imgadm/images/zones-%s.json' % BASE,
          {'manifest': AVAILABLE[1], 'zpool': 'zones', 'source': 'http://bob:pw1@img1.example.com'})
    write(tmp_path, 'var/imgadm/images/zones-%s.json' % KVM_IMG,
          {'manifest': {'v': 2, 'uuid': KVM_IMG, 'name': 'ubuntu-24.04', 'type': 'zvol'}, 'zpool': 'zones'})
    write(tmp_path, 'var/imgadm/images/zones-%s.json' % INCR, '{"manifest": ')
    return tmp_path


def serve_sources(servers):
    servers.serve(SRC1 + '/images', AVAILABLE)
    servers.serve(SRC2 + '/images', {'code': 'InternalError', 'message': 'oops'}, status=500)


# ---- main() ----

def test_default_gathers_installed_and_sources_read_only(run, servers, host_root):
    host = smartos_host()
    result = run(host)
    assert result['changed'] is False
    assert 'failed' not in result
    facts = result['ansible_facts']
    assert sorted(facts) == ['smartos_image_sources', 'smartos_images', 'smartos_images_layout']
    assert facts['smartos_images_layout'] == 'modern'
    assert facts['smartos_images'][BASE]['source'] == 'http://***@img1.example.com'
    assert facts['smartos_images'][NO_FINAL] == {'manifest': {'uuid': NO_FINAL}, 'zpool': 'zones', 'clones': [],
                                                 'manifest_cached': False}
    assert [s['url'] for s in facts['smartos_image_sources']] == ['http://***@img1.example.com', SRC2, 'https://docker.io']
    assert host.calls == [['zoneadm', 'list', '-pc'], ['zfs', 'list', '-H', '-o', 'name,origin,mountpoint,imgadm:ignore',
                                                       '-t', 'filesystem,volume,snapshot']]
    assert servers.requests == []      # no network unless asked
    assert 'pw1' not in json.dumps(result)


@pytest.mark.parametrize('args', [
    {},
    {'gather_subset': ['all'], 'retries': 0},
    {'gather_subset': ['installed'], 'pools': ['zones', 'zones2'], 'filters': {'os': 'smartos'}, 'newest': True},
])
def test_check_mode_runs_identically_and_only_reads(run, servers, host_root, args):
    serve_sources(servers)
    results, hosts = [], []
    for check in (True, False):
        host = smartos_host()
        results.append(run(host, check=check, **dict(args)))
        hosts.append(host)
    assert results[0] == results[1]
    assert results[0]['changed'] is False
    assert hosts[0].calls == hosts[1].calls
    for host in hosts:
        assert host.calls and all(call[:2] in READ_ONLY for call in host.calls)
        assert [c[0] for c in host.calls].count('zfs') == 1


def test_all_with_a_failing_source_warns(run, servers, host_root):
    serve_sources(servers)
    result = run(smartos_host(), gather_subset=['all'], retries=0)
    facts = result['ansible_facts']
    assert [e['manifest']['uuid'] for e in facts['smartos_images_available']] == [AVAILABLE[1]['uuid'], AVAILABLE[0]['uuid']]
    assert {e['source'] for e in facts['smartos_images_available']} == {'http://***@img1.example.com'}
    assert facts['smartos_images_available_errors'] == [
        {'source': SRC2, 'error': 'http://img2.example.com/images answered HTTP 500: InternalError: oops'}]
    assert warnings_of(result) == ['http://img2.example.com: http://img2.example.com/images answered HTTP 500: InternalError: oops']
    assert sorted(servers.requests) == [SRC1 + '/images', SRC2 + '/images']


def test_every_source_failing_fails_the_module(run, servers, host_root):
    result = run(smartos_host(), gather_subset=['available'], retries=0)
    assert result['failed'] is True
    assert result['msg'].startswith('no image source answered: http://***@img1.example.com: ')
    assert 'pw1' not in json.dumps(result)


@pytest.mark.parametrize('args, msg', [
    ({'gather_subset': ['installed', 'bogus']}, 'unknown gather_subset "bogus": use installed, sources, available, all, or !name'),
    ({'gather_subset': ['!facts']}, 'unknown gather_subset "!facts": use installed, sources, available, all, or !name'),
    ({'filters': {'a..b': 'x'}}, 'filter field \'a..b\' is not a field name such as "name" or "requirements.brand"'),
    ({'filters': {'name': '~'}}, 'filter name="~": a substring filter needs text after "~"'),
    ({'filters': {'name': ['a', 'b']}}, "filter name=['a', 'b']: a filter value must be a string, a number or a boolean"),
    ({'pools': ['zones', 'not a pool']}, 'pool "not a pool" is not a valid ZFS pool name'),
])
def test_bad_arguments_fail_clearly_before_anything_runs(run, servers, host_root, args, msg):
    host = smartos_host()
    result = run(host, **args)
    assert result['failed'] is True
    assert result['msg'].startswith(msg)
    assert host.calls == [] and servers.requests == []


def test_zfs_failure_reports_the_command(run, servers, tmp_path):
    host = FakeHost(['zones'])
    result = run(host, pools=['tank'])
    assert result['failed'] is True
    assert result['msg'].startswith('zfs pool or dataset "tank" does not exist')
    assert result['rc'] == 1
    assert result['cmd'].startswith('zfs list -H')
    assert result['stderr'] == "cannot open 'tank': dataset does not exist\n"


# ---- the result against RETURN ----

RETURN = yaml.safe_load(smartos_image_facts.RETURN)
FACTS_DOC = RETURN['ansible_facts']['contains']
PY_TYPES = {'dict': dict, 'list': list, 'str': str, 'bool': bool, 'int': int}


def always(doc):
    """Keys documented as returned whenever their parent is."""
    return sorted(k for k, d in doc.items() if d.get('returned', 'always') == 'always')


def check_against(doc, value, where):
    """Every key of value is documented with its type; every always-returned key is there. Returns the keys seen."""
    assert isinstance(value, dict), where
    undocumented = sorted(set(value) - set(doc))
    assert not undocumented, '%s returns undocumented keys %s' % (where, undocumented)
    missing = sorted(set(always(doc)) - set(value))
    assert not missing, '%s lacks keys documented as always returned: %s' % (where, missing)
    for key, item in value.items():
        assert isinstance(item, PY_TYPES[doc[key]['type']]), '%s.%s is not a %s' % (where, key, doc[key]['type'])
        if doc[key]['type'] == 'list' and 'elements' in doc[key] and 'contains' not in doc[key]:
            assert all(isinstance(e, PY_TYPES[doc[key]['elements']]) for e in item), '%s.%s elements' % (where, key)
    return set(value)


def test_return_documents_exactly_what_the_module_returns(run, servers, host_root):
    serve_sources(servers)
    result = run(smartos_host(), gather_subset=['all'], retries=0)
    facts = result['ansible_facts']
    assert sorted(RETURN) == ['ansible_facts']
    check_against(FACTS_DOC, facts, 'ansible_facts')
    # with everything gathered, every documented fact is there
    assert sorted(facts) == sorted(FACTS_DOC)

    seen = set()
    for uuid, entry in facts['smartos_images'].items():
        seen |= check_against(FACTS_DOC['smartos_images']['contains'], entry, 'smartos_images[%s]' % uuid)
    # the recorded host shows every conditional key: source, error (corrupt cache), also_on (zones2)
    assert seen == set(FACTS_DOC['smartos_images']['contains'])

    for name in ('smartos_image_sources', 'smartos_images_available', 'smartos_images_available_errors'):
        doc = FACTS_DOC[name]
        assert doc['type'] == 'list' and doc['elements'] == 'dict'
        assert facts[name], name
        seen = set()
        for i, entry in enumerate(facts[name]):
            seen |= check_against(doc['contains'], entry, '%s[%d]' % (name, i))
        assert seen == set(doc['contains']), name


@pytest.mark.parametrize('name', sorted(FACTS_DOC))
def test_return_samples_match_their_documentation(name):
    doc = FACTS_DOC[name]
    sample = doc['sample']
    assert isinstance(sample, PY_TYPES[doc['type']])
    entries = list(sample.values()) if name == 'smartos_images' else sample if isinstance(sample, list) else []
    for entry in entries:
        check_against(doc['contains'], entry, '%s sample' % name)


# ---- filters on imgadm's computed fields (reference 4.5) ----

def test_clones_filter_counts_the_clones_as_imgadm_list_does(run, servers, host_root):
    """imgadm list clones=0 lists the unused images; here clones is a list of names, and the filter still counts."""
    everything = run(smartos_host(), pools=['zones'])['ansible_facts']['smartos_images']
    unused = {u for u, e in everything.items() if not e['clones']}
    assert unused and unused != set(everything)
    result = run(smartos_host(), pools=['zones'], filters={'clones': 0})
    assert set(result['ansible_facts']['smartos_images']) == unused
    count = max(len(e['clones']) for e in everything.values())
    used = {u for u, e in everything.items() if len(e['clones']) == count}
    assert set(run(smartos_host(), pools=['zones'], filters={'clones': str(count)})['ansible_facts']
               ['smartos_images']) == used


def test_pub_size_and_source_filter_installed_and_available_images(run, servers, host_root):
    servers.serve(SRC1 + '/images', [dict(AVAILABLE[0], files=[{'size': 42}]), AVAILABLE[1]])
    servers.serve(SRC2 + '/images', [])
    args = dict(gather_subset=['installed', 'available'])
    result = run(smartos_host(), filters={'pub': '2023-01-01'}, **args)['ansible_facts']
    assert list(result['smartos_images']) == [BASE]                       # its cached manifest's published_at
    assert [e['manifest']['uuid'] for e in result['smartos_images_available']] == [BASE]
    result = run(smartos_host(), filters={'size': 42}, **args)['ansible_facts']
    assert result['smartos_images'] == {}
    assert [e['manifest']['uuid'] for e in result['smartos_images_available']] == [AVAILABLE[0]['uuid']]
    result = run(smartos_host(), filters={'source': SRC2}, **args)['ansible_facts']
    assert result['smartos_images'] == {} and result['smartos_images_available'] == []
    result = run(smartos_host(), filters={'source': '~img1.example.com'}, **args)['ansible_facts']
    assert list(result['smartos_images']) == [BASE]
    assert len(result['smartos_images_available']) == 2
    assert 'pub' not in result['smartos_images_available'][0]['manifest']   # the facts keep the manifest as sent


def test_an_unknown_filter_field_fails_before_anything_runs(run, servers, host_root):
    host = smartos_host()
    result = run(host, filters={'clone': 0})
    assert result['failed']
    assert result['msg'].startswith('filter field "clone" is not an image field imgadm knows: use a manifest field (')
    assert host.calls == []


# ---- warnings of the host's source file ----

@pytest.mark.parametrize('modern, data, words', BAD_LINES)
def test_facts_warn_of_the_lines_of_a_source_file_they_skip(run_module, tmp_path, modern, data, words):
    """Defect: the warnings of the host's source file (a leftover sources.list that is not UTF-8, lines skipped
    from it) reached smartos_image_source only; smartos_image_facts listed fewer sources in silence."""
    leftover_sources_list(tmp_path, data, modern)
    result = run_module(smartos_image_facts, FakeHost(), gather_subset=['sources'])
    assert not result.get('failed'), result.get('msg')
    assert [w for w in warnings_of(result) if words in w], warnings_of(result)
