# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""meta/runtime.yml's action groups: each module's documentation says what the groups say, and every option the
README and meta/runtime.yml tell users to set for a group is an option of every module in it (ansible-core passes
a group's defaults to each member whole, and a member that lacks one fails with "Unsupported parameters")."""

from __future__ import annotations

import importlib
import os

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
MODULES = sorted(name[:-3] for name in os.listdir(os.path.join(ROOT, 'plugins', 'modules'))
                 if name.endswith('.py') and not name.startswith('_'))
# what the README's "Setting shared options once" and meta/runtime.yml's comment give each group
GROUP_OPTIONS = {'images': ['host_root', 'layout'], 'servers': ['validate_certs', 'ca_path', 'timeout', 'retries']}
# options users might think shared, which some member lacks: they must be set by module name
NOT_SHARED = {'images': ['pool', 'validate_certs', 'timeout', 'source'], 'servers': ['pool', 'source']}


def runtime_groups():
    with open(os.path.join(ROOT, 'meta', 'runtime.yml')) as handle:
        return yaml.safe_load(handle)['action_groups']


def module_doc(module):
    mod = importlib.import_module('ansible_collections.smartos.images.plugins.modules.' + module)
    return yaml.safe_load(mod.DOCUMENTATION)


def documented_membership(module):
    attribute = module_doc(module)['attributes']['action_group']
    assert attribute['support'] == 'full'
    return sorted(attribute['membership'])


def options_of(module):
    """The module's documented options with its doc fragments (the argument spec, as validate-modules holds)."""
    doc = module_doc(module)
    options = set(doc.get('options') or {})
    for name in doc.get('extends_documentation_fragment') or []:
        parts = name.split('.')
        assert parts[:2] == ['smartos', 'images'], name
        fragment = importlib.import_module('ansible_collections.smartos.images.plugins.doc_fragments.' + parts[2])
        text = getattr(fragment.ModuleDocFragment, parts[3].upper() if len(parts) > 3 else 'DOCUMENTATION')
        options |= set(yaml.safe_load(text).get('options') or {})
    return options


def test_every_module_of_a_host_is_in_the_images_group():
    """Every module that takes host_root and layout; the mirror module, which runs on any host, takes neither."""
    host_modules = [m for m in MODULES if {'host_root', 'layout'} <= options_of(m)]
    assert 'smartos_image_mirror' not in host_modules
    assert sorted(runtime_groups()['images']) == host_modules


def test_every_module_is_in_the_servers_group_or_the_images_group():
    groups = runtime_groups()
    assert sorted(set(groups['images']) | set(groups['servers'])) == MODULES


@pytest.mark.parametrize('module', MODULES)
def test_documented_membership_is_the_runtime_membership(module):
    groups = runtime_groups()
    actual = sorted('smartos.images.' + group for group, members in groups.items() if module in members)
    assert documented_membership(module) == actual


def test_the_groups_are_the_ones_documented():
    assert sorted(runtime_groups()) == sorted(GROUP_OPTIONS)


@pytest.mark.parametrize('group', sorted(GROUP_OPTIONS))
def test_every_member_takes_every_option_of_its_group(group):
    for module in runtime_groups()[group]:
        missing = sorted(set(GROUP_OPTIONS[group]) - options_of(module))
        assert not missing, '%s lacks %s, which group/smartos.images.%s is documented to take' % (
            module, missing, group)


@pytest.mark.parametrize('group', sorted(NOT_SHARED))
def test_options_left_out_of_a_group_are_lacked_by_some_member(group):
    """Why the README says to set them by module name: putting one in the group would fail a member."""
    members = runtime_groups()[group]
    for option in NOT_SHARED[group]:
        assert any(option not in options_of(m) for m in members), (group, option)
