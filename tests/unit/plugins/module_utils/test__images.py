# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_images.py: the checks on task parameters (the whole worker runs end to end
in tests/unit/plugins/modules/test_smartos_image.py)."""

from __future__ import annotations

import pytest

from ansible_collections.smartos.images.plugins.module_utils._errors import InvalidParameter
from ansible_collections.smartos.images.plugins.module_utils._images import ImageManager
from ansible_collections.smartos.images.tests.unit.fakehost import ScriptedRunner

U = '2f1dc911-6401-4fa4-8e9d-67ea2e39c271'
OTHER = '7b5981c4-1889-11e7-b4c5-3f3bdfc9b88b'


# ---- an ImageManager over a runner that runs nothing (ScriptedRunner) and the image_params fixture ----

@pytest.mark.parametrize('kw', [dict(), dict(prune_unused=False), dict(images=[]), dict(update_manifests=False)])
def test_a_task_that_asks_for_nothing_is_refused(image_params, kw):
    with pytest.raises(InvalidParameter, match='^nothing to do: '):
        ImageManager(image_params(**kw), ScriptedRunner(paths={}))


@pytest.mark.parametrize('kw', [dict(prune_unused=True), dict(update_manifests=True), dict(uuid=U),
                                dict(images=[{'uuid': U}])])
def test_a_task_that_asks_for_something_is_accepted(image_params, kw):
    ImageManager(image_params(**kw), ScriptedRunner(paths={}))


@pytest.mark.parametrize('entry, words', [
    (U.upper(), 'is not a lower-case UUID: write it as "%s"' % U),
    ("{'uuid': '%s'}" % U, 'is not a UUID, name or name@version'),
    ("['base-64']", 'is not a UUID, name or name@version'),
    ('  ', 'is not a UUID, name or name@version'),
])
def test_keep_entries_that_cannot_be_names_are_refused(image_params, entry, words):
    with pytest.raises(InvalidParameter, match='^keep entry ') as e:
        ImageManager(image_params(keep=['base-64', entry], prune_unused=True), ScriptedRunner(paths={}))
    assert words in e.value.msg


@pytest.mark.parametrize('entry', [U, 'base-64', 'base-64@24.4.1', 'my image/x'])
def test_keep_entries_that_can_be_names_are_accepted(image_params, entry):
    ImageManager(image_params(keep=[entry], prune_unused=True), ScriptedRunner(paths={}))


@pytest.mark.parametrize('version, words', [
    (1.1, 'version 1.1 is a number'),
    (True, 'version must be a string, not True'),
    (['1'], "version must be a string, not ['1']"),
])
def test_a_version_that_is_no_string_is_refused(image_params, version, words):
    for kw in (dict(name='base', version=version), dict(images=[{'name': 'base', 'version': version}])):
        with pytest.raises(InvalidParameter) as e:
            ImageManager(image_params(**kw), ScriptedRunner(paths={}))
        assert words in e.value.msg


def test_a_whole_number_version_is_its_digits(image_params):
    manager = ImageManager(image_params(name='base', version=2), ScriptedRunner(paths={}))
    assert manager.wanted[0].version == '2'


@pytest.mark.parametrize('value', [-1, True, '10', 1.5])
def test_lock_timeout_is_checked(image_params, value):
    with pytest.raises(InvalidParameter, match='^lock_timeout must be 0 or more seconds'):
        ImageManager(image_params(uuid=U, lock_timeout=value), ScriptedRunner(paths={}))
