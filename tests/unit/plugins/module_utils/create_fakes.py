# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fake host of tests/unit/fakehost.py with its datasets given as (name, type, origin, volsize) rows."""

from __future__ import annotations

from ansible_collections.smartos.images.tests.unit import fakehost
from ansible_collections.smartos.images.tests.unit.fakehost import bhyve_vm, stream_of, zone_vm  # noqa: F401 pylint: disable=unused-import


class FakeHost(fakehost.FakeHost):
    """A fake host with zfs and, when vms is not None, vmadm; datasets are names or (name, type, origin, volsize)."""

    def __init__(self, datasets=(), vms=None, stop_works=True):
        super().__init__(vms=vms, stop_works=stop_works)
        for row in datasets:
            row = (row,) if isinstance(row, str) else tuple(row)
            self.add(*row)
