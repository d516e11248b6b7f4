# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/filter/fleet_report.py: the hosts x images report model, from hand-made hostvars."""

from __future__ import annotations

import copy

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.smartos.images.plugins.filter.fleet_report import FilterModule, fleet_report

BASE = '2f1dc911-6401-4fa4-8e9d-67ea2e39c271'
BASE_OLD = '1a2b3c4d-0000-4000-8000-000000000001'
PG = '3c3b7c4e-1111-4111-8111-111111111111'
EXTRA = '9e9e9e9e-2222-4222-8222-222222222222'
GONE = '7d7d7d7d-3333-4333-8333-333333333333'
SOURCE = 'https://images.example.org'


def manifest(uuid, name, version, published_at='2024-01-01T00:00:00Z'):
    return {'v': 2, 'uuid': uuid, 'name': name, 'version': version, 'published_at': published_at,
            'os': 'smartos', 'type': 'zone-dataset'}


MANIFESTS = {
    BASE: manifest(BASE, 'base-64-lts', '24.4.1', '2024-12-05T09:54:41Z'),
    BASE_OLD: manifest(BASE_OLD, 'base-64-lts', '23.4.0', '2023-12-01T00:00:00Z'),
    PG: manifest(PG, 'postgresql-16', '1.0.0'),
    EXTRA: manifest(EXTRA, 'nodejs', '20.1.0'),
}


def facts(*uuids, clones=None, sources=None, layout='modern'):
    """A registered smartos_image_facts result with these images installed."""
    clones = clones or {}
    return {'changed': False, 'ansible_facts': {
        'smartos_images': {u: {'manifest': copy.deepcopy(MANIFESTS.get(u, {'uuid': u})), 'zpool': 'zones',
                               'clones': clones.get(u, []), 'manifest_cached': u in MANIFESTS} for u in uuids},
        'smartos_image_sources': [{'url': SOURCE, 'type': 'imgapi', 'insecure': False, 'implicit': False}]
        if sources is None else sources,
        'smartos_images_layout': layout}}


def host(result, images=None, keep=None):
    data = {'fleet_report_facts': result, 'inventory_hostname': 'x'}
    if images is not None:
        data['image_host_images'] = images
    if keep is not None:
        data['image_host_keep'] = keep
    return data


def cells(report):
    return {row['key']: {h: c['state'] for h, c in row['cells'].items()} for row in report['images']}


def by_name(report):
    return {h['name']: h for h in report['hosts']}


@pytest.fixture
def fleet():
    return {
        'web2': host(facts(BASE, EXTRA, clones={BASE: ['zones/vm1', 'zones/vm2']}), images=[{'uuid': BASE}, {'uuid': PG}]),
        'web1': host(facts(BASE, PG, clones={PG: ['zones/vm3']}), images=[{'uuid': BASE}, {'uuid': PG}]),
        'db1': host(facts(BASE_OLD, PG, EXTRA), images=[{'name': 'postgresql-16'}, {'uuid': BASE_OLD}], keep=['nodejs']),
        'down': host({'unreachable': True, 'msg': 'Failed to connect to the host via ssh: timed out', 'changed': False},
                     images=[{'uuid': BASE}]),
        'broken': host({'failed': True, 'msg': 'zfs list failed: no pools\nsecond line', 'changed': False}, images=[{'uuid': BASE}]),
    }


def test_cells_installed_missing_extra_absent_unknown(fleet):
    report = fleet_report(fleet)
    assert cells(report) == {
        BASE_OLD: {'db1': 'installed', 'web1': 'absent', 'web2': 'absent', 'down': 'unknown', 'broken': 'unknown'},
        BASE: {'db1': 'absent', 'web1': 'installed', 'web2': 'installed', 'down': 'unknown', 'broken': 'unknown'},
        EXTRA: {'db1': 'installed', 'web1': 'absent', 'web2': 'extra', 'down': 'unknown', 'broken': 'unknown'},
        PG: {'db1': 'installed', 'web1': 'installed', 'web2': 'missing', 'down': 'unknown', 'broken': 'unknown'},
    }


def test_counts_and_in_use(fleet):
    hosts = by_name(fleet_report(fleet))
    assert hosts['web2']['counts'] == {'installed': 2, 'missing': 1, 'extra': 1, 'in_use': 1}
    assert hosts['web1']['counts'] == {'installed': 2, 'missing': 0, 'extra': 0, 'in_use': 1}
    assert hosts['db1']['counts'] == {'installed': 3, 'missing': 0, 'extra': 0, 'in_use': 0}
    assert hosts['down']['counts'] == {'installed': 0, 'missing': 0, 'extra': 0, 'in_use': 0}
    rows = {row['key']: row for row in fleet_report(fleet)['images']}
    assert rows[BASE]['cells']['web2'] == {'state': 'installed', 'clones': 2}
    assert rows[PG]['cells']['web2'] == {'state': 'missing', 'clones': 0}


def test_unreachable_and_failed_hosts_shown_as_such(fleet):
    hosts = by_name(fleet_report(fleet))
    assert hosts['down']['status'] == 'unreachable' and 'timed out' in hosts['down']['error']
    assert hosts['broken']['status'] == 'failed' and hosts['broken']['error'].startswith('zfs list failed')
    assert hosts['down']['sources'] == [] and hosts['broken']['layout'] == ''
    text = fleet_report(fleet)['summary']['text']
    assert 'broken: FAILED (zfs list failed: no pools)' in text  # first line of the error only
    assert any(line.startswith('down: UNREACHABLE (Failed to connect') for line in text)


@pytest.mark.parametrize('result, status', [
    (None, 'unreachable'),            # never registered: the host was not reached
    ({}, 'unreachable'),
    ('not a dict', 'unreachable'),
    ({'skipped': True, 'skip_reason': 'Conditional result was False'}, 'failed'),
    ({'failed': True}, 'failed'),
    ({'unreachable': True}, 'unreachable'),
])
def test_host_status_of_odd_results(result, status):
    report = fleet_report({'h': host(result, images=[{'uuid': BASE}])})
    assert report['hosts'][0]['status'] == status and report['hosts'][0]['error']
    assert report['images'] == [] and report['summary']['ok'] == 0


def test_sources_and_layout_per_host():
    sources = [{'url': SOURCE, 'type': 'imgapi', 'insecure': False, 'implicit': True},
               {'url': 'http://dsapi.example', 'type': 'dsapi', 'insecure': True},
               {'url': 'http://minimal.example'}]
    report = fleet_report({'h': host(facts(BASE, sources=sources, layout='original'))})
    h = report['hosts'][0]
    assert h['layout'] == 'original'
    assert h['sources'] == [
        {'url': SOURCE, 'type': 'imgapi', 'insecure': False, 'implicit': True},
        {'url': 'http://dsapi.example', 'type': 'dsapi', 'insecure': True, 'implicit': False},
        {'url': 'http://minimal.example', 'type': 'imgapi', 'insecure': False, 'implicit': False},
    ]


def test_summary_counts_and_text(fleet):
    summary = fleet_report(fleet)['summary']
    assert {k: v for k, v in summary.items() if k != 'text'} == {
        'hosts': 5, 'ok': 3, 'failed': 1, 'unreachable': 1, 'drifted': ['web2'], 'images': 4}
    assert summary['text'][0] == '5 hosts: 3 ok, 1 failed, 1 unreachable; 4 images'
    assert 'web2: DRIFT 1 missing, 1 extra' in summary['text'] and 'no drift' not in summary['text']


def test_no_drift_line_only_when_every_host_is_ok_and_in_line():
    ok = {'a': host(facts(BASE), images=[{'uuid': BASE}]), 'b': host(facts(BASE), images=[{'uuid': BASE}])}
    assert fleet_report(ok)['summary']['text'] == ['2 hosts: 2 ok, 0 failed, 0 unreachable; 1 images', 'no drift']
    ok['c'] = host({'unreachable': True, 'msg': 'down'})
    assert 'no drift' not in fleet_report(ok)['summary']['text']


def test_undeclared_host_has_no_missing_or_extra():
    report = fleet_report({'free': host(facts(BASE, EXTRA)), 'strict': host(facts(BASE), images=[{'uuid': PG}])})
    assert cells(report) == {BASE: {'free': 'installed', 'strict': 'extra'}, EXTRA: {'free': 'installed', 'strict': 'absent'},
                             PG: {'free': 'absent', 'strict': 'missing'}}
    assert by_name(report)['free']['declared'] is False and by_name(report)['strict']['declared'] is True
    assert report['summary']['drifted'] == ['strict']


def test_declared_absent_but_installed_is_extra_and_absent_entries_are_never_missing():
    report = fleet_report({'h': host(facts(BASE), images=[{'uuid': BASE, 'state': 'absent'}, {'uuid': PG, 'state': 'absent'}])})
    assert cells(report) == {BASE: {'h': 'extra'}}
    assert report['hosts'][0]['counts'] == {'installed': 1, 'missing': 0, 'extra': 1, 'in_use': 0}


@pytest.mark.parametrize('keep', [[EXTRA], ['nodejs'], ['nodejs@20.1.0']], ids=['uuid', 'name', 'name@version'])
def test_kept_image_is_not_extra(keep):
    report = fleet_report({'h': host(facts(BASE, EXTRA), images=[{'uuid': BASE}], keep=keep)})
    assert cells(report)[EXTRA] == {'h': 'installed'}


def test_kept_with_other_version_is_extra():
    report = fleet_report({'h': host(facts(BASE, EXTRA), images=[{'uuid': BASE}], keep=['nodejs@18.0.0'])})
    assert cells(report)[EXTRA] == {'h': 'extra'}


def test_missing_by_name_and_version_rows():
    report = fleet_report({'h': host(facts(), images=[{'name': 'pkgbuild', 'version': '2.0'}, {'name': 'minimal'},
                                                      {'name': 'base-64-lts', 'version': None}])})
    rows = {row['key']: row for row in report['images']}
    assert set(rows) == {'name:pkgbuild@2.0', 'name:minimal', 'name:base-64-lts'}
    assert rows['name:minimal']['version'] == 'newest' and rows['name:minimal']['uuid'] == ''
    assert rows['name:pkgbuild@2.0']['name'] == 'pkgbuild' and rows['name:pkgbuild@2.0']['version'] == '2.0'
    assert all(r['cells'] == {'h': {'state': 'missing', 'clones': 0}} for r in rows.values())
    assert report['hosts'][0]['counts']['missing'] == 3


def test_declared_by_name_matches_installed_version():
    report = fleet_report({'h': host(facts(BASE_OLD), images=[{'name': 'base-64-lts', 'version': '23.4.0'}]),
                           'g': host(facts(BASE_OLD), images=[{'name': 'base-64-lts', 'version': '24.4.1'}])})
    assert cells(report) == {BASE_OLD: {'h': 'installed', 'g': 'extra'}, 'name:base-64-lts@24.4.1': {'h': 'absent', 'g': 'missing'}}


def test_image_without_cached_manifest_gets_a_row():
    report = fleet_report({'h': host(facts(GONE))})
    row = report['images'][0]
    assert (row['key'], row['uuid'], row['name'], row['version'], row['published_at']) == (GONE, GONE, '', '', '')


def test_stable_ordering(fleet):
    report = fleet_report(fleet)
    assert [h['name'] for h in report['hosts']] == ['broken', 'db1', 'down', 'web1', 'web2']
    # by name, then version (as text), then published_at; rows without a name last
    assert [row['key'] for row in report['images']] == [BASE_OLD, BASE, EXTRA, PG]
    fleet['anon'] = host(facts(GONE))
    assert fleet_report(fleet)['images'][-1]['key'] == GONE
    shuffled = dict(reversed(list(fleet.items())))
    assert fleet_report(shuffled) == fleet_report(fleet)


def test_row_fields_come_from_any_host_that_has_them():
    bare = facts(BASE)
    del bare['ansible_facts']['smartos_images'][BASE]['manifest']['published_at']
    report = fleet_report({'a': host(bare), 'b': host(facts(BASE))})
    assert report['images'][0]['published_at'] == '2024-12-05T09:54:41Z' and report['images'][0]['name'] == 'base-64-lts'


def test_custom_variable_names():
    data = {'h': {'facts_here': facts(BASE), 'want': [{'uuid': PG}], 'spare': [BASE]}}
    report = fleet_report(data, result_var='facts_here', images_var='want', keep_var='spare')
    assert cells(report) == {BASE: {'h': 'installed'}, PG: {'h': 'missing'}}


def test_non_dict_declarations_are_ignored():
    report = fleet_report({'h': host(facts(BASE), images=['not-a-dict', {'uuid': BASE}])})
    assert cells(report) == {BASE: {'h': 'installed'}}
    report = fleet_report({'h': host(facts(BASE), images='a,b')})
    assert report['hosts'][0]['declared'] is False


def test_rejects_a_non_dict():
    with pytest.raises(AnsibleFilterError, match='expects a dict by host name, got list'):
        fleet_report(['web1'])


def test_empty_fleet():
    assert fleet_report({}) == {'hosts': [], 'images': [], 'summary': {
        'hosts': 0, 'ok': 0, 'failed': 0, 'unreachable': 0, 'drifted': [], 'images': 0,
        'text': ['0 hosts: 0 ok, 0 failed, 0 unreachable; 0 images', 'no drift']}}


def test_registered_as_a_filter():
    assert FilterModule().filters()['fleet_report'] is fleet_report


def test_name_row_for_a_host_that_has_the_image():
    report = fleet_report({'has': host(facts(BASE), images=[{'name': 'base-64-lts'}]),
                           'lacks': host(facts(), images=[{'name': 'base-64-lts'}])})
    assert cells(report)['name:base-64-lts']['has'] != 'absent'
