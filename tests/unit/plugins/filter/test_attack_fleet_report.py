# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report filter fed facts of the wrong shape: community.general's clone count, sources that are
no list, entries of the wrong types, and a great many images."""

from __future__ import annotations

import pytest

from ansible_collections.smartos.images.plugins.filter.fleet_report import fleet_report

BASE = '2f1dc911-6401-4fa4-8e9d-67ea2e39c271'


def result(images, sources=None, layout='modern'):
    return {'changed': False, 'ansible_facts': {'smartos_images': images, 'smartos_image_sources': sources or [],
                                                'smartos_images_layout': layout}}


def one(host_result, **data):
    return fleet_report({'h': dict({'fleet_report_facts': host_result}, **data)}, generated_at='x')


@pytest.mark.parametrize('clones', [3, 0, 'zones/vm1', None, {'zones/vm1': 1}, True])
def test_clones_of_another_shape_do_not_break_the_report(clones):
    """community.general's smartos_image_info gave clones as a count; a facts cache may still hold one."""
    report = one(result({BASE: {'manifest': {'uuid': BASE, 'name': 'base', 'version': '1'}, 'clones': clones}}))
    assert report['hosts'][0]['status'] == 'ok'
    cell = report['images'][0]['cells']['h']
    assert cell['state'] == 'installed' and isinstance(cell['clones'], int) and cell['clones'] >= 0


def test_a_clone_count_counts_as_in_use():
    report = one(result({BASE: {'manifest': {'uuid': BASE, 'name': 'base'}, 'clones': 2}}))
    assert report['images'][0]['cells']['h']['clones'] == 2 and report['hosts'][0]['counts']['in_use'] == 1


@pytest.mark.parametrize('sources', [5, 'https://x.example', {'url': 'https://x.example'}, [None, 3, 'x'],
                                     [{'url': None, 'type': None, 'insecure': 'no'}]])
def test_sources_of_another_shape_do_not_break_the_report(sources):
    report = one(result({}, sources=sources), image_host_sources=[{'url': 'https://x.example'}],
                 image_host_sources_exclusive=True)
    host = report['hosts'][0]
    assert host['status'] == 'ok'
    assert all(isinstance(s['url'], str) for s in host['sources'])


@pytest.mark.parametrize('entry', [{'uuid': BASE, 'version': 3}, {'name': 'base', 'version': 1.1},
                                   {'name': 'base', 'filters': 'os=smartos'}, {'name': 'base', 'state': ['absent']},
                                   {'name': 'base', 'version': ['1']}])
def test_declared_entries_of_the_wrong_types_do_not_break_the_report(entry):
    report = one(result({BASE: {'manifest': {'uuid': BASE, 'name': 'base', 'version': '1.1'}, 'clones': []}}),
                 image_host_images=[entry])
    assert report['hosts'][0]['status'] == 'ok'


def test_a_host_with_thousands_of_images_and_a_declaration_for_each():
    images = {'%08x-0000-4000-8000-000000000000' % i: {'manifest': {'name': 'img%d' % i, 'version': '1'}, 'clones': []}
              for i in range(3000)}
    declared = [{'name': 'img%d' % i} for i in range(0, 3000, 3)] + [{'uuid': u} for u in list(images)[1::3]]
    report = one(result(images), image_host_images=declared, fleet_report_available={'results': []})
    counts = report['hosts'][0]['counts']
    assert counts['installed'] == 3000
    assert counts['unverified'] == 1000 and counts['extra'] == 1000 and counts['missing'] == 0
