# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every unit test shares: a clean module-side world whatever ran before it, the fake image servers, and a
runner of a module's main() (the fake host itself is tests/unit/fakehost.py)."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from ansible.module_utils import _internal
from ansible.module_utils.common import warnings as ansible_warnings
from ansible.module_utils.testing import patch_module_args

from ansible_collections.smartos.images.plugins.module_utils import _http_body, _imgapi
from ansible_collections.smartos.images.tests.unit.fakehost import Clock, FakeServers

# Tests of plugins that run on the controller (a filter, a lookup): they keep the controller's view.
CONTROLLER_SIDE = (os.path.join('plugins', 'filter'), os.path.join('plugins', 'lookup'))


@pytest.fixture(autouse=True)
def _module_side(request, monkeypatch):
    """Each test starts with no warnings or deprecations recorded, and target-side code runs as on a target.

    Once a controller-side test has imported the controller, module.warn() would go to the controller's display
    instead of the module's result; and warnings are process-wide, so one test would see another's.
    """
    monkeypatch.setattr(ansible_warnings, '_global_warnings', {})
    monkeypatch.setattr(ansible_warnings, '_global_deprecations', {})
    if not any(part in str(request.node.path) for part in CONTROLLER_SIDE):
        monkeypatch.setattr(_internal, 'is_controller', False, raising=False)


@pytest.fixture
def servers(monkeypatch):
    """Fake image servers behind the Request that every image server client opens."""
    fake = FakeServers()
    monkeypatch.setattr(_imgapi, 'Request', fake)
    return fake


@pytest.fixture
def image_params(tmp_path):
    """image_params(**changes) -> smartos_image's parameters as main() hands them on (defaults, host_root tmp_path)."""

    def params(**changes):
        values = dict(host_root=str(tmp_path), pool='zones', layout='auto', source=['http://img.example.com'],
                      validate_certs=True, ca_path=None, timeout=30, retries=0, state='present', images=None,
                      uuid=None, name=None, version=None, filters=None, manifest=None, file=None, keep=[],
                      prune_unused=None, update_manifests=None, lock_timeout=3600)
        values.update(changes)
        return values

    return params


@pytest.fixture
def run_module(monkeypatch, capsys, tmp_path):
    """run_module(module, host=None, check=False, diff=True, **args) -> the result of module.main().

    host_root defaults to the test's tmp_path for a module that has it (not smartos_image_mirror).
    host (a fakehost.FakeHost or ScriptedRunner) is the Runner main() gets; the result is the module's JSON, and its
    exit code must agree with it (1 when failed). Each run records its own warnings only.
    """

    def runner(module, host=None, check=False, diff=True, **args):
        if host is not None:
            monkeypatch.setattr(module, 'Runner', lambda ansible_module: host)
        monkeypatch.setattr(ansible_warnings, '_global_warnings', {})
        monkeypatch.setattr(ansible_warnings, '_global_deprecations', {})
        if takes_host_root(module):
            args.setdefault('host_root', str(tmp_path))
        args.update(_ansible_check_mode=check, _ansible_diff=diff)
        with patch_module_args(args):
            with pytest.raises(SystemExit) as exc:
                module.main()
        result = json.loads(capsys.readouterr().out)
        assert exc.value.code == (1 if result.get('failed') else 0)
        return result

    return runner


def takes_host_root(module):
    """Whether a module has host_root: the modules of a SmartOS host have it from the common doc fragment, a module
    that extends only common.base (smartos_image_mirror, which runs on any host) does not."""
    fragments = yaml.safe_load(module.DOCUMENTATION).get('extends_documentation_fragment') or []
    return 'smartos.images.common' in fragments


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(_http_body, 'now', fake)
    return fake
