# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/doc_fragments/common.py: every fragment is YAML that documents options or attributes."""

from __future__ import annotations

import importlib
import os

import pytest
import yaml

from ansible_collections.smartos.images.plugins.doc_fragments.common import ModuleDocFragment

FRAGMENTS = sorted(name for name in vars(ModuleDocFragment) if name.isupper())
MODULES_PACKAGE = 'ansible_collections.smartos.images.plugins.modules.'
MODULES = [name[:-3] for name in os.listdir(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..',
                                                         'plugins', 'modules')) if name.endswith('.py')]


def test_there_are_fragments():
    # BASE carries the authors and attributes (ATTRIBUTES was its own fragment); DOCUMENTATION only the host's files
    assert {'BASE', 'DOCUMENTATION'} <= set(FRAGMENTS) and 'ATTRIBUTES' not in FRAGMENTS
    doc = yaml.safe_load(ModuleDocFragment.BASE)
    assert doc['author'] and set(doc['attributes']) == {'check_mode', 'diff_mode', 'idempotent', 'platform'}
    assert set(yaml.safe_load(ModuleDocFragment.DOCUMENTATION)['options']) == {'host_root', 'layout'}


@pytest.mark.parametrize('module', sorted(MODULES))
def test_every_module_takes_the_authors_and_attributes(module):
    doc = yaml.safe_load(importlib.import_module(MODULES_PACKAGE + module).DOCUMENTATION)
    assert 'smartos.images.common.base' in doc['extends_documentation_fragment']


@pytest.mark.parametrize('name', FRAGMENTS)
def test_each_fragment_is_yaml_with_documented_options(name):
    doc = yaml.safe_load(getattr(ModuleDocFragment, name))
    assert isinstance(doc, dict) and set(doc) <= {'options', 'attributes', 'author', 'notes', 'seealso', 'requirements'}
    for option, spec in doc.get('options', {}).items():
        assert spec.get('description'), '%s.%s has no description' % (name, option)
        assert 'type' in spec, '%s.%s has no type' % (name, option)
