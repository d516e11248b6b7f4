# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/doc_fragments/common.py: every fragment is YAML that documents options or attributes."""

from __future__ import annotations

import pytest
import yaml

from ansible_collections.smartos.images.plugins.doc_fragments.common import ModuleDocFragment

FRAGMENTS = sorted(name for name in vars(ModuleDocFragment) if name.isupper())


def test_there_are_fragments():
    # every module takes DOCUMENTATION, so it carries the authors and attributes (ATTRIBUTES was its own fragment)
    assert 'DOCUMENTATION' in FRAGMENTS and 'ATTRIBUTES' not in FRAGMENTS
    doc = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)
    assert doc['author'] and set(doc['attributes']) == {'check_mode', 'diff_mode', 'idempotent', 'platform'}


@pytest.mark.parametrize('name', FRAGMENTS)
def test_each_fragment_is_yaml_with_documented_options(name):
    doc = yaml.safe_load(getattr(ModuleDocFragment, name))
    assert isinstance(doc, dict) and set(doc) <= {'options', 'attributes', 'author', 'notes', 'seealso', 'requirements'}
    for option, spec in doc.get('options', {}).items():
        assert spec.get('description'), '%s.%s has no description' % (name, option)
        assert 'type' in spec, '%s.%s has no type' % (name, option)
