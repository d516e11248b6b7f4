# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""meta/runtime.yml's action groups agree with what each module's documentation says of them."""

from __future__ import annotations

import importlib
import os

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
MODULES = sorted(name[:-3] for name in os.listdir(os.path.join(ROOT, 'plugins', 'modules'))
                 if name.endswith('.py') and not name.startswith('_'))


def runtime():
    with open(os.path.join(ROOT, 'meta', 'runtime.yml')) as handle:
        return yaml.safe_load(handle)


def documented_membership(module):
    mod = importlib.import_module('ansible_collections.smartos.images.plugins.modules.' + module)
    attribute = yaml.safe_load(mod.DOCUMENTATION)['attributes']['action_group']
    assert attribute['support'] == 'full'
    return sorted(attribute['membership'])


def test_every_module_is_in_the_images_group():
    assert sorted(runtime()['action_groups']['images']) == MODULES


@pytest.mark.parametrize('module', MODULES)
def test_documented_membership_is_the_runtime_membership(module):
    groups = runtime()['action_groups']
    actual = sorted('smartos.images.' + group for group, members in groups.items() if module in members)
    assert documented_membership(module) == actual
