# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/doc_fragments/image.py: smartos_image's update_manifests option and notes, documented once."""

from __future__ import annotations

import yaml

from ansible_collections.smartos.images.plugins.doc_fragments.image import ModuleDocFragment
from ansible_collections.smartos.images.plugins.modules import smartos_image


def test_the_fragment_documents_update_manifests_and_the_notes():
    doc = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)
    assert set(doc) == {'options', 'notes'} and set(doc['options']) == {'update_manifests'}
    option = doc['options']['update_manifests']
    assert option['type'] == 'bool' and option['description']
    assert all(isinstance(line, str) and line for line in option['description'] + doc['notes'])


def test_smartos_image_takes_the_fragment_and_does_not_repeat_it():
    doc = yaml.safe_load(smartos_image.DOCUMENTATION)
    assert 'smartos.images.image' in doc['extends_documentation_fragment']
    assert 'update_manifests' not in doc['options']
