# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_wanted.py: the images a task declares and its keep entries."""

from __future__ import annotations

import pytest

from ansible_collections.smartos.images.plugins.module_utils._errors import InvalidParameter
from ansible_collections.smartos.images.plugins.module_utils._wanted import Wanted, declared_images, keep_entries

U = '2f1dc911-6401-4fa4-8e9d-67ea2e39c271'


def params(**kw):
    p = dict(images=None, state='present', uuid=None, name=None, version=None, filters=None, manifest=None, file=None)
    p.update(kw)
    return p


@pytest.mark.parametrize('item, words', [
    ({}, 'exactly one of uuid, name'),
    ({'uuid': U, 'name': 'a'}, 'exactly one of uuid, name'),
    ({'uuid': U.upper()}, 'is not a lower-case UUID'),
    ({'uuid': U, 'version': '1'}, 'needs a name'),
    ({'uuid': U, 'filters': {'os': 'linux'}}, 'filters need a name'),
    ({'manifest': '/m.json'}, 'needs both manifest and file'),
    ({'manifest': '/m.json', 'file': '/f', 'state': 'absent'}, 'to remove it, give its uuid'),
    ({'name': 'a', 'version': 1.10}, 'YAML may have dropped digits'),
    ({'name': 'a', 'version': [1]}, 'version must be a string'),
])
def test_a_declared_image_is_checked(item, words):
    with pytest.raises(InvalidParameter, match=words):
        Wanted(item, 'present')


def test_a_whole_number_version_is_its_digits_and_matches():
    wanted = Wanted({'name': 'base', 'version': 2, 'filters': {'os': 'smartos'}}, 'present')
    assert str(wanted) == 'base@2'
    assert wanted.matches({'name': 'base', 'version': '2', 'os': 'smartos'})
    assert not wanted.matches({'name': 'base', 'version': '2', 'os': 'linux'})


def test_declared_images_from_the_list_or_the_top_level():
    assert declared_images(params()) == []
    assert [w.uuid for w in declared_images(params(uuid=U))] == [U]
    with pytest.raises(InvalidParameter, match='declared both present and absent'):
        declared_images(params(images=[{'uuid': U}, {'uuid': U, 'state': 'absent'}]))


@pytest.mark.parametrize('entry, words', [(U.upper(), 'not a lower-case UUID'), ("{'a': 1}", 'plain string'),
                                          (' ', 'plain string')])
def test_keep_entries_are_checked(entry, words):
    with pytest.raises(InvalidParameter, match=words):
        keep_entries([entry])


def test_keep_entries_are_references():
    kept = keep_entries([U, 'base', 'base@1.0'])
    assert [(k.uuid, k.name, k.version) for k in kept] == [(U, None, None), (None, 'base', None), (None, 'base', '1.0')]
