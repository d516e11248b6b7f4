"""What every main()-level module test needs: a module's view of the world, whatever ran before it."""
from __future__ import annotations

import pytest

from ansible.module_utils import _internal


@pytest.fixture(autouse=True)
def _target_side(monkeypatch):
    """Run main() as on a target: once a controller-side test (a filter or lookup) has imported the
    controller, module.warn() would go to the controller's display instead of the module's result."""
    monkeypatch.setattr(_internal, 'is_controller', False, raising=False)
