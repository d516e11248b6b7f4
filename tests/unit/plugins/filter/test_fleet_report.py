# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/filter/fleet_report.py: the hosts x images report model, from hand-made hostvars."""

from __future__ import annotations

import copy
import os
import re
from datetime import datetime, timezone
from html.parser import HTMLParser
from types import MappingProxyType

import jinja2

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.smartos.images.plugins.filter.fleet_report import STATES, FilterModule, fleet_report

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


def counts(**given):
    return dict({'installed': 0, 'missing': 0, 'extra': 0, 'outdated': 0, 'unverified': 0, 'in_use': 0}, **given)


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
        # db1 declares postgresql-16 by name only, and its available images were not gathered
        PG: {'db1': 'unverified', 'web1': 'installed', 'web2': 'missing', 'down': 'unknown', 'broken': 'unknown'},
    }


def test_counts_and_in_use(fleet):
    hosts = by_name(fleet_report(fleet))
    assert hosts['web2']['counts'] == counts(installed=2, missing=1, extra=1, in_use=1)
    assert hosts['web1']['counts'] == counts(installed=2, in_use=1)
    assert hosts['db1']['counts'] == counts(installed=3, unverified=1)
    assert hosts['down']['counts'] == counts()
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
        'hosts': 5, 'ok': 3, 'failed': 1, 'unreachable': 1, 'drifted': ['web2'], 'unverified': ['db1'], 'images': 4}
    assert summary['text'][0] == '5 hosts: 3 ok, 1 failed, 1 unreachable; 4 images'
    assert 'web2: DRIFT 1 missing, 1 extra' in summary['text'] and 'no drift' not in summary['text']
    assert 'db1: 1 image(s) declared by name only, unknown whether newest' in summary['text']


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
    assert report['hosts'][0]['counts'] == counts(installed=1, extra=1)
    assert report['images'][0]['cells']['h']['note'] == 'declared absent'


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
    assert fleet_report(shuffled, generated_at='t') == fleet_report(fleet, generated_at='t')


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
    assert fleet_report({}, generated_at='2026-01-31T12:00:00Z') == {
        'generated_at': '2026-01-31T12:00:00Z', 'hosts': [], 'images': [], 'summary': {
            'hosts': 0, 'ok': 0, 'failed': 0, 'unreachable': 0, 'drifted': [], 'unverified': [], 'images': 0,
            'text': ['0 hosts: 0 ok, 0 failed, 0 unreachable; 0 images', 'no drift']}}


def test_registered_as_a_filter():
    assert FilterModule().filters()['fleet_report'] is fleet_report


def test_name_row_for_a_host_that_has_the_image():
    report = fleet_report({'has': host(facts(BASE), images=[{'name': 'base-64-lts'}]),
                           'lacks': host(facts(), images=[{'name': 'base-64-lts'}])})
    assert cells(report)['name:base-64-lts']['has'] != 'absent'


# --- generated at ------------------------------------------------------------------------------------


def test_generated_at_is_utc_iso_8601_by_default():
    stamp = fleet_report({})['generated_at']
    parsed = datetime.strptime(stamp, '%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=timezone.utc)
    assert abs((datetime.now(timezone.utc) - parsed).total_seconds()) < 3600


def test_generated_at_given_is_kept_and_must_be_text():
    assert fleet_report({}, generated_at='2026-01-31T12:00:00Z')['generated_at'] == '2026-01-31T12:00:00Z'
    with pytest.raises(AnsibleFilterError, match='generated_at must be a text'):
        fleet_report({}, generated_at=1700000000)


# --- a name declared without a version: the newest, as smartos_image resolves it ---------------------------


def avail(*manifests, errors=None):
    """A registered smartos_image_facts result with gather_subset=available."""
    return {'changed': False, 'ansible_facts': {
        'smartos_images_available': [{'manifest': dict(m, state=m.get('state', 'active')), 'source': SOURCE}
                                     for m in manifests],
        'smartos_images_available_errors': errors or []}}


def looped(*pairs):
    """The loop result report.yml registers: one smartos_image_facts result per name-only entry."""
    return {'changed': False, 'results': [dict(result, item=item) for item, result in pairs]}


NEWEST_BASE = {'name': 'base-64-lts'}


def with_available(result, available):
    data = host(result, images=[NEWEST_BASE])
    data['fleet_report_available'] = available
    return data


def test_older_version_of_a_name_declared_newest_is_outdated_and_the_newest_missing():
    report = fleet_report({'h': with_available(facts(BASE_OLD), avail(MANIFESTS[BASE_OLD], MANIFESTS[BASE]))})
    assert cells(report) == {BASE_OLD: {'h': 'outdated'}, BASE: {'h': 'missing'}}
    rows = {row['key']: row for row in report['images']}
    assert rows[BASE]['name'] == 'base-64-lts' and rows[BASE]['version'] == '24.4.1'
    assert 'base-64-lts@24.4.1' in rows[BASE_OLD]['cells']['h']['note']
    h = report['hosts'][0]
    assert h['counts'] == counts(installed=1, missing=1, outdated=1) and h['drift'] is True
    assert 'h: DRIFT 1 missing, 0 extra, 1 outdated' in report['summary']['text']


def test_newest_installed_is_installed_and_an_older_one_beside_it_outdated_unless_kept():
    available = avail(MANIFESTS[BASE_OLD], MANIFESTS[BASE])
    report = fleet_report({'h': with_available(facts(BASE), available), 'g': with_available(facts(BASE, BASE_OLD), available)})
    assert cells(report) == {BASE: {'h': 'installed', 'g': 'installed'}, BASE_OLD: {'h': 'absent', 'g': 'outdated'}}
    assert report['summary']['drifted'] == ['g']
    kept = with_available(facts(BASE, BASE_OLD), available)
    kept['image_host_keep'] = ['base-64-lts@23.4.0']
    assert cells(fleet_report({'g': kept}))[BASE_OLD] == {'g': 'installed'}


def test_newest_follows_the_one_rule_active_only_and_the_entry_filters():
    newer_inactive = dict(MANIFESTS[BASE], uuid='5e5e5e5e-4444-4444-8444-444444444444', version='25.1.0',
                          published_at='2025-06-01T00:00:00Z', state='disabled')
    other_os = dict(MANIFESTS[BASE], uuid='6f6f6f6f-5555-4555-8555-555555555555', version='25.2.0',
                    published_at='2025-07-01T00:00:00Z', os='linux')
    available = avail(MANIFESTS[BASE_OLD], MANIFESTS[BASE], newer_inactive, other_os)
    data = host(facts(BASE), images=[{'name': 'base-64-lts', 'filters': {'os': 'smartos'}}])
    data['fleet_report_available'] = available
    assert cells(fleet_report({'h': data})) == {BASE: {'h': 'installed'}}
    data['image_host_images'] = [NEWEST_BASE]  # without the filter, the linux one is the newest
    assert cells(fleet_report({'h': data}))[BASE] == {'h': 'outdated'}


def test_without_available_images_a_name_only_match_is_unverified_not_satisfied():
    report = fleet_report({'h': host(facts(BASE_OLD), images=[NEWEST_BASE])})
    cell = report['images'][0]['cells']['h']
    assert cell['state'] == 'unverified' and 'unknown whether newest' in cell['note']
    assert 'not gathered' in cell['note']
    assert report['hosts'][0]['drift'] is False and report['summary']['unverified'] == ['h']
    # a version pins it: installed, nothing to verify
    report = fleet_report({'h': host(facts(BASE_OLD), images=[{'name': 'base-64-lts', 'version': '23.4.0'}])})
    assert cells(report) == {BASE_OLD: {'h': 'installed'}}


def test_available_from_a_loop_over_the_entries_as_report_yml_registers_it():
    pg_new = dict(MANIFESTS[PG], uuid='8a8a8a8a-6666-4666-8666-666666666666', version='1.1.0',
                  published_at='2025-01-01T00:00:00Z')
    data = host(facts(BASE, PG), images=[NEWEST_BASE, {'name': 'postgresql-16'}])
    data['fleet_report_available'] = looped(
        ({'name': 'base-64-lts'}, avail(MANIFESTS[BASE])),
        ({'name': 'postgresql-16'}, avail(MANIFESTS[PG], pg_new)))
    report = fleet_report({'h': data})
    assert cells(report) == {BASE: {'h': 'installed'}, PG: {'h': 'outdated'}, pg_new['uuid']: {'h': 'missing'}}
    # a loop result for another name tells nothing about this one
    data['fleet_report_available'] = looped(({'name': 'base-64-lts'}, avail(MANIFESTS[BASE])))
    assert cells(fleet_report({'h': data}))[PG] == {'h': 'unverified'}


def test_available_in_the_facts_result_itself():
    result = facts(BASE_OLD)
    result['ansible_facts'].update(avail(MANIFESTS[BASE_OLD], MANIFESTS[BASE])['ansible_facts'])
    assert cells(fleet_report({'h': host(result, images=[NEWEST_BASE])}))[BASE_OLD] == {'h': 'outdated'}


@pytest.mark.parametrize('available, why', [
    ({'failed': True, 'msg': 'no image source answered: x: timed out'}, 'could not be listed: no image source answered'),
    ({'changed': False, 'failed_when_result': False, 'msg': 'no image source answered'}, 'could not be listed'),
    (looped(({'name': 'base-64-lts'}, {'unreachable': True, 'msg': 'gone'})), 'could not be listed: gone'),
    ({'skipped': True}, 'not gathered'),
    (avail(), 'no source offers an active image'),
    ('garbage', 'not gathered'),
], ids=['failed', 'failed-when-false', 'unreachable-item', 'skipped', 'none-offered', 'not-a-dict'])
def test_available_that_could_not_be_gathered_is_unverified_with_why(available, why):
    cell = fleet_report({'h': with_available(facts(BASE_OLD), available)})['images'][0]['cells']['h']
    assert cell['state'] == 'unverified' and why in cell['note'], cell


def test_missing_name_only_without_available_keeps_a_newest_row():
    report = fleet_report({'h': host(facts(), images=[NEWEST_BASE])})
    assert [(r['key'], r['version']) for r in report['images']] == [('name:base-64-lts', 'newest')]


# --- sources ------------------------------------------------------------------------------------------


def src(url, **more):
    return dict({'url': url, 'type': 'imgapi', 'insecure': False, 'implicit': False}, **more)


@pytest.mark.parametrize('have, declared, exclusive, absent, drift', [
    ([src(SOURCE)], [{'url': SOURCE + '/'}], True, [], []),
    ([src('HTTPS://Images.Example.org:443')], [{'url': SOURCE}], False, [], []),
    ([src(SOURCE)], [{'url': 'http://other.example'}], False, [], ['source http://other.example missing']),
    ([src(SOURCE), src('http://b.example')], [{'url': SOURCE}], False, [], []),
    ([src(SOURCE), src('http://b.example')], [{'url': SOURCE}], True, [], ['source http://b.example not declared']),
    ([src('http://b.example'), src(SOURCE)], [{'url': SOURCE}, {'url': 'http://b.example'}], True, [],
     ['sources in another order than declared']),
    ([src(SOURCE, type='dsapi')], [{'url': SOURCE}], False, [], ['source %s is dsapi, declared imgapi' % SOURCE]),
    ([src(SOURCE, insecure=True)], [{'url': SOURCE}], False, [], ['source %s is insecure, declared secure' % SOURCE]),
    ([src(SOURCE)], [], False, [SOURCE], ['source %s declared absent' % SOURCE]),
    ([src('https://***@private.example')], [{'url': 'https://user:pw@private.example'}], False, [], []),
    ([src(SOURCE)], 'not a list', 'yes', [None, 3], []),
], ids=['same', 'normalized', 'missing', 'more-allowed', 'more-exclusive', 'order', 'type', 'insecure', 'absent',
        'credentials', 'junk'])
def test_sources_drift(have, declared, exclusive, absent, drift):
    data = host(facts(BASE, sources=have), images=[{'uuid': BASE}])
    data.update(image_host_sources=declared, image_host_sources_exclusive=exclusive, image_host_sources_absent=absent)
    report = fleet_report({'h': data})
    h = report['hosts'][0]
    assert h['sources_drift'] == drift and h['drift'] is bool(drift)
    assert report['summary']['drifted'] == (['h'] if drift else [])
    if drift:
        assert report['summary']['text'][1] == 'h: DRIFT sources: ' + '; '.join(drift)


# --- hostile and odd input ----------------------------------------------------------------------------


def test_failed_when_false_result_without_facts_is_failed_not_ok():
    report = fleet_report({'h': host({'changed': False, 'failed_when_result': False, 'msg': 'zfs: command not found'})})
    assert report['hosts'][0]['status'] == 'failed' and report['hosts'][0]['error'] == 'zfs: command not found'


@pytest.mark.parametrize('installed', [
    {BASE: 'not a dict'}, {BASE: {'manifest': 'not a dict'}}, {BASE: {'manifest': {'name': ['x'], 'version': 3}}},
    'not a dict'])
def test_odd_installed_entries_do_not_break_the_report(installed):
    result = facts()
    result['ansible_facts']['smartos_images'] = installed
    report = fleet_report({'h': host(result, images=[NEWEST_BASE, {'uuid': PG}], keep=[None, 3, 'x'])})
    assert report['hosts'][0]['status'] == 'ok'
    assert all(isinstance(r['name'], str) for r in report['images'])


def test_hostile_names_are_kept_as_text_for_the_template_to_escape():
    evil = '<script>alert("x")</script></td>\'"&'
    m = manifest(BASE, evil, evil)
    result = facts()
    result['ansible_facts']['smartos_images'] = {BASE: {'manifest': m, 'clones': []}}
    report = fleet_report({evil: host(result, images=[{'name': evil}])})
    assert report['hosts'][0]['name'] == evil and report['images'][0]['name'] == evil


# --- the page: playbooks/templates/fleet_report.html.j2 ------------------------------------------------

TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), *(['..'] * 4), 'playbooks', 'templates',
                        'fleet_report.html.j2')
VOID = {'meta', 'br', 'hr', 'img', 'input', 'link', 'col', 'wbr'}


def render(report):
    """The page as the template module writes it (trim_blocks on, no autoescape)."""
    with open(TEMPLATE, encoding='utf-8') as f:
        text = f.read()
    return jinja2.Environment(trim_blocks=True, undefined=jinja2.StrictUndefined).from_string(text).render(
        fleet_report=report)


class Page(HTMLParser):
    """Checks that tags nest and close, and collects the elements with their attributes and text."""

    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.stack, self.elements, self.errors, self.scripts = [], [], [], []
        self.feed(html)
        self.close()
        if self.stack:
            self.errors.append('unclosed: %s' % [e['tag'] for e in self.stack])

    def handle_starttag(self, tag, attrs):
        element = {'tag': tag, 'attrs': dict(attrs), 'parts': [], 'parents': [e['tag'] for e in self.stack]}
        self.elements.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1]['tag'] != tag:
            self.errors.append('</%s> closes %s' % (tag, self.stack[-1]['tag'] if self.stack else 'nothing'))
            return
        self.stack.pop()

    def handle_data(self, data):
        for e in self.stack:
            e['parts'].append(data)
        if self.stack and self.stack[-1]['tag'] == 'script':
            self.scripts.append(data)

    def all(self, tag, **attrs):
        found = [e for e in self.elements if e['tag'] == tag and all(e['attrs'].get(k) == v for k, v in attrs.items())]
        for e in found:
            e.setdefault('text', ''.join(e['parts']))
        return found


def page_of(report):
    html = render(report)
    page = Page(html)
    assert page.errors == [], page.errors
    return html, page


def test_summary_separator_is_a_middle_dot_not_an_escaped_entity(fleet):
    html, page = page_of(fleet_report(fleet, generated_at='2026-01-31T12:00:00Z'))
    assert '&amp;middot;' not in html
    summary = page.all('p', **{'class': 'sum'})[0]['text']
    assert summary.startswith('5 hosts: 3 ok, 1 failed, 1 unreachable; 4 images \u00b7 ')
    assert 'web2: DRIFT 1 missing, 1 extra' in summary.split(' \u00b7 ')


def test_generated_at_in_the_page():
    html, page = page_of(fleet_report({}, generated_at='2026-01-31T12:00:00Z'))
    time_ = page.all('time')[0]
    assert time_['attrs']['datetime'] == '2026-01-31T12:00:00Z' and time_['text'] == '2026-01-31T12:00:00Z'


def test_tables_have_captions_scoped_headers_and_sort_buttons(fleet):
    html, page = page_of(fleet_report(fleet))
    tables = page.all('table')
    assert [t['attrs']['id'] for t in tables] == ['images', 'hosts']
    assert len(page.all('caption')) == 2
    for th in page.all('th'):
        scope = th['attrs'].get('scope')
        assert scope == ('col' if 'thead' in th['parents'] else 'row'), th
    sortable = [th for th in page.all('th') if 'aria-sort' in th['attrs']]
    assert len(sortable) == 4 + 5 + 8 and all(th['attrs']['aria-sort'] == 'none' for th in sortable)
    buttons = page.all('button', type='button')
    assert len(buttons) == len(sortable) and all(b['parents'][-1] == 'th' for b in buttons)
    assert all(len(page.all('span', **{'class': 'ind', 'aria-hidden': 'true'})) == len(sortable) for dummy in [0])
    # one row header per image and per host
    assert len([th for th in page.all('th') if th['attrs'].get('scope') == 'row']) == 4 + 5


def test_cells_say_their_state_in_text_not_only_by_colour(fleet):
    report = fleet_report(fleet)
    html, page = page_of(report)
    cells_ = [td for td in page.all('td') if 'data-state' in td['attrs']]
    assert len(cells_) == 4 * 5
    for td in cells_:
        assert td['attrs']['data-state'] in td['text'], td
    legend = page.all('ul', **{'class': 'legend'})[0]['text']
    for state in STATES:
        assert '%s:' % state in legend
    assert 'installed but not declared' in legend and 'installed but declared absent' in legend


def test_drifted_host_is_marked_in_the_hosts_table_in_words(fleet):
    html, page = page_of(fleet_report(fleet))
    rows = {tr['attrs']['data-host']: tr for tr in page.all('tr') if 'data-host' in tr['attrs']}
    assert rows['web2']['attrs'].get('class') == 'drift' and 'drift: 1 missing, 1 extra' in rows['web2']['text']
    assert 'class' not in rows['web1']['attrs'] and 'in line' in rows['web1']['text']
    assert 'unknown' in rows['down']['text'] and 'unverified (unknown whether newest)' in rows['db1']['text']


def test_sources_drift_is_in_the_hosts_table():
    data = host(facts(BASE), images=[{'uuid': BASE}])
    data['image_host_sources'] = [{'url': 'http://<b>wanted</b>.example'}]
    html, page = page_of(fleet_report({'h': data}))
    row = [tr for tr in page.all('tr') if tr['attrs'].get('data-host') == 'h'][0]
    assert row['attrs']['class'] == 'drift' and 'sources: source http://<b>wanted</b>.example missing' in row['text']
    assert '<b>' not in html


EVIL = ['<script>alert(1)</script>', '"><img src=x onerror=alert(1)>', "'; alert(1); '", '</td></tr></table>',
        '{{ 7*7 }}', '&middot;', 'x' * 5000, '\u202eevil\u00e9\U0001f600']


@pytest.mark.parametrize('evil', EVIL, ids=['script', 'attribute', 'quote', 'close-tags', 'jinja', 'entity', 'long',
                                            'unicode'])
def test_hostile_names_are_escaped_and_the_page_stays_whole(evil):
    result = facts()
    result['ansible_facts']['smartos_images'] = {BASE: {'manifest': manifest(BASE, evil, evil, evil), 'clones': [evil]}}
    result['ansible_facts']['smartos_image_sources'] = [src('http://x.example/' + evil, type=evil)]
    fleet = {evil: host(result, images=[{'name': evil + 'x'}]),
             'bad' + evil: host({'failed': True, 'msg': evil}),
             'ok': host(facts(BASE))}
    html, page = page_of(fleet_report(fleet, generated_at=evil))
    assert len(page.all('script')) == 1 and not page.all('img') and len(page.all('table')) == 2
    assert all('onerror' not in e['attrs'] for e in page.elements)
    assert evil in [th['text'] for th in page.all('th', scope='row')] and evil in page.all('time')[0]['text']
    assert '49' not in page.all('p', **{'class': 'sum'})[0]['text']
    names = [tr['attrs']['data-host'] for tr in page.all('tr') if 'data-host' in tr['attrs']]
    assert names == sorted(fleet)


@pytest.mark.parametrize('size', [0, 1, 60])
def test_zero_one_and_many_hosts_and_images(size):
    fleet = {}
    for n in range(size):
        result = facts()
        result['ansible_facts']['smartos_images'] = {
            '%08d-0000-4000-8000-000000000000' % i: {'manifest': manifest('u', 'img%03d' % i, '1.0'), 'clones': []}
            for i in range(size)}
        fleet['host%03d' % n] = host(result)
    fleet['gone'] = host({'unreachable': True, 'msg': 'down'})
    html, page = page_of(fleet_report(fleet))
    assert len([tr for tr in page.all('tr') if 'data-host' in tr['attrs']]) == size + 1
    assert len(page.all('tr')) == 2 + size + size + 1  # the heading rows, an image row each, a host row each
    assert len([td for td in page.all('td') if 'data-state' in td['attrs']]) == size * (size + 1)
    if size == 0:
        assert 'No host reported any image.' in html


def test_empty_report_page_is_whole():
    html, page = page_of(fleet_report({}))
    assert 'The report has no hosts.' in html and 'No host reported any image.' in html


# --- colour contrast of every text/background pair the page's style sheet uses -------------------------------

CSS_RULE = re.compile(r'([^{}]+)\{([^{}]*)\}')
HEX = re.compile(r'#([0-9a-fA-F]{6}|[0-9a-fA-F]{3})\b')


def style_rules(html):
    """(selector, {'color': hex, 'background': hex}) for each rule of the page's <style> that sets a colour."""
    css = re.search(r'<style>(.*?)</style>', html, re.S).group(1)
    rules = []
    for selector, body in CSS_RULE.findall(css):
        found = {}
        for decl in body.split(';'):
            prop, dummy, value = decl.partition(':')
            prop = prop.strip()
            if prop in ('color', 'background', 'background-color') and HEX.search(value):
                found['color' if prop == 'color' else 'background'] = HEX.search(value).group(1)
        if found:
            rules.append((selector.strip(), found))
    return rules


def luminance(hex_):
    """WCAG 2 relative luminance of an sRGB colour."""
    if len(hex_) == 3:
        hex_ = ''.join(c * 2 for c in hex_)
    channels = []
    for i in (0, 2, 4):
        c = int(hex_[i:i + 2], 16) / 255
        channels.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]


def contrast(a, b):
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def text_pairs(rules):
    """Every text/background pair the style sheet can make: a rule's own colour on its own background, and a
    colour set without a background on every background the sheet has (the page's text can sit on any of them)."""
    backgrounds = {found['background'] for dummy, found in rules if 'background' in found} | {'fff'}
    body = [found['color'] for selector, found in rules if selector == 'body'][0]
    pairs = []
    for selector, found in rules:
        if 'color' in found and 'background' in found:
            pairs.append((selector, found['color'], found['background']))
        elif 'color' in found:
            pairs.extend((selector, found['color'], bg) for bg in sorted(backgrounds))
        else:
            pairs.append((selector + ' (inherited text)', body, found['background']))
    return pairs


@pytest.mark.parametrize('a, b, ratio', [('000', 'fff', 21.0), ('fff', 'fff', 1.0), ('777', 'fff', 4.48),
                                         ('bbb', 'ffffff', 1.92)])
def test_contrast_ratio_matches_wcag(a, b, ratio):
    assert round(contrast(a, b), 2) == ratio


def test_every_text_colour_of_the_page_has_contrast_of_at_least_4_5():
    rules = style_rules(render(fleet_report({})))
    pairs = text_pairs(rules)
    assert len(pairs) > 20 and any(sel == '.absent' for sel, dummy, dummy2 in pairs)
    low = ['%s: #%s on #%s is %.2f:1' % (sel, fg, bg, contrast(fg, bg)) for sel, fg, bg in pairs
           if contrast(fg, bg) < 4.5]
    assert low == []


def test_the_contrast_check_catches_a_failing_colour():
    html = render(fleet_report({})).replace('.absent{background:#fff;color:#595959}', '.absent{color:#bbb}')
    low = [sel for sel, fg, bg in text_pairs(style_rules(html)) if contrast(fg, bg) < 4.5]
    assert '.absent' in low


def test_focus_outline_is_visible_against_every_background():
    rules = style_rules(render(fleet_report({})))
    css = re.search(r'<style>(.*?)</style>', render(fleet_report({})), re.S).group(1)
    outline = re.search(r'focus-visible\{outline:\d+px solid #([0-9a-f]{6})', css).group(1)
    backgrounds = {found['background'] for dummy, found in rules if 'background' in found}
    # non-text contrast (WCAG 1.4.11): 3:1
    assert all(contrast(outline, bg) >= 3 for bg in backgrounds)


def test_hostvars_that_are_mappings_but_not_dicts():
    """hostvars[host] is a read-only mapping, not a dict: its variables count all the same."""
    data = host(facts(BASE_OLD), images=[NEWEST_BASE])
    data['fleet_report_available'] = MappingProxyType(avail(MANIFESTS[BASE_OLD], MANIFESTS[BASE]))
    data['fleet_report_facts'] = MappingProxyType(data['fleet_report_facts'])
    report = fleet_report(MappingProxyType({'h': MappingProxyType(data)}))
    assert report['hosts'][0]['status'] == 'ok' and report['hosts'][0]['declared'] is True
    assert cells(report) == {BASE_OLD: {'h': 'outdated'}, BASE: {'h': 'missing'}}


@pytest.mark.parametrize('entry', [{'name': ['a']}, {'name': 5}, {'uuid': None}, {'uuid': ['x']}, {'name': ''},
                                   {'version': '1.0'}, {'name': None, 'uuid': None}])
def test_declared_entries_that_name_no_image_declare_nothing(entry):
    report = fleet_report({'h': host(facts(BASE), images=[entry, {'uuid': BASE}])})
    assert cells(report) == {BASE: {'h': 'installed'}} and report['hosts'][0]['counts']['missing'] == 0
