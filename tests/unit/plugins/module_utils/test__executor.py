# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_executor.py: imports run after their origin, at most PARALLEL_IMPORTS at once,
the first error stops new ones; deletes and the report of a run that fails part-way."""

from __future__ import annotations

import threading

import pytest

from ansible_collections.smartos.images.plugins.module_utils import _executor
from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError
from ansible_collections.smartos.images.plugins.module_utils._executor import ImageExecutor
from ansible_collections.smartos.images.plugins.module_utils._host import HostPaths
from ansible_collections.smartos.images.plugins.module_utils._resolver import Found


def uuid_of(i):
    return '%08x-0000-4000-8000-000000000000' % i


def found(i, origin=None):
    manifest = {'uuid': uuid_of(i)}
    if origin is not None:
        manifest['origin'] = uuid_of(origin)
    return Found(None, None, manifest, manifest)


class FakeZfs:
    def __init__(self):
        self.destroyed = []

    def destroy_recursive(self, dataset):
        self.destroyed.append(dataset)


def executor(tmp_path, monkeypatch, outcome):
    """An executor whose import_one records the order, and returns or raises outcome(uuid)."""
    ex = ImageExecutor(FakeZfs(), HostPaths(str(tmp_path)), 'modern', 'zones', 0, 0)
    started, lock, active = [], threading.Lock(), [0, 0]

    def import_one(f):
        with lock:
            started.append(f.uuid)
            active[0] += 1
            active[1] = max(active[1], active[0])
        try:
            return outcome(f.uuid)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(ex, 'import_one', import_one)
    return ex, started, active


def test_each_import_starts_after_its_origin(tmp_path, monkeypatch):
    ex, started, dummy = executor(tmp_path, monkeypatch, lambda u: (True, 10))
    imports = [found(0), found(1, 0), found(2, 1), found(3)]
    assert ex.run_imports(imports) == ([uuid_of(i) for i in range(4)], 40)
    assert started.index(uuid_of(0)) < started.index(uuid_of(1)) < started.index(uuid_of(2))
    assert sorted(ex.progress['imported']) == [uuid_of(i) for i in range(4)]


def test_at_most_parallel_imports_at_once(tmp_path, monkeypatch):
    gate = threading.Event()

    def outcome(uuid):
        gate.wait(5)
        return True, 0

    ex, started, active = executor(tmp_path, monkeypatch, outcome)
    imports = [found(i) for i in range(_executor.PARALLEL_IMPORTS + 3)]
    runner = threading.Thread(target=ex.run_imports, args=(imports,), daemon=True)
    runner.start()
    gate.set()
    runner.join(10)
    assert not runner.is_alive()
    assert 1 <= active[1] <= _executor.PARALLEL_IMPORTS
    assert sorted(started) == sorted(f.uuid for f in imports)


def test_an_image_imported_meanwhile_is_not_counted(tmp_path, monkeypatch):
    ex, dummy, dummy2 = executor(tmp_path, monkeypatch, lambda u: (u != uuid_of(0), 5))
    assert ex.run_imports([found(0), found(1, 0)]) == ([uuid_of(1)], 10)


def test_the_first_error_is_raised_and_the_children_of_a_failed_origin_never_start(tmp_path, monkeypatch):
    def outcome(uuid):
        if uuid == uuid_of(0):
            raise ImageError('receive failed')
        return True, 1

    ex, started, dummy = executor(tmp_path, monkeypatch, outcome)
    with pytest.raises(ImageError, match='receive failed'):
        ex.run_imports([found(0), found(1, 0), found(2, 1)])
    assert started == [uuid_of(0)]


def test_an_interrupt_in_an_import_is_raised_too(tmp_path, monkeypatch):
    def outcome(uuid):
        raise KeyboardInterrupt()

    ex, dummy, dummy2 = executor(tmp_path, monkeypatch, outcome)
    with pytest.raises(KeyboardInterrupt):
        ex.run_imports([found(0)])


def test_deletes_and_the_partial_failure_report(tmp_path):
    ex = ImageExecutor(FakeZfs(), HostPaths(str(tmp_path)), 'modern', 'zones', 0, 0)
    ex.delete_all([uuid_of(1), uuid_of(2)])
    assert ex.zfs.destroyed == ['zones/' + uuid_of(1), 'zones/' + uuid_of(2)]
    ex.progress['imported'].append(uuid_of(3))
    error = ImageError('boom')
    ex.partial_failure(error)
    assert error.msg == 'boom (after importing %s, deleting %s, %s)' % (uuid_of(3), uuid_of(1), uuid_of(2))
    assert error.evidence == {'changed': True, 'imported': [uuid_of(3)], 'removed': [uuid_of(1), uuid_of(2)]}


def test_a_failure_before_anything_changed_is_left_as_it_is(tmp_path):
    ex = ImageExecutor(FakeZfs(), HostPaths(str(tmp_path)), 'modern', 'zones', 0, 0)
    error = ImageError('boom')
    ex.partial_failure(error)
    assert error.msg == 'boom' and error.evidence == {}
