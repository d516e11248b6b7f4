# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_images.py: the checks on cache files and listings, origin chains, and the
checks on task parameters (the whole worker runs end to end in tests/unit/plugins/modules/test_smartos_image.py)."""

from __future__ import annotations

import pytest

from ansible_collections.smartos.images.plugins.module_utils import _images
from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, InvalidParameter
from ansible_collections.smartos.images.plugins.module_utils._images import (
    Found, ImageManager, listing_problem,
)
from ansible_collections.smartos.images.plugins.module_utils._inventory import Inventory

U = '2f1dc911-6401-4fa4-8e9d-67ea2e39c271'
OTHER = '7b5981c4-1889-11e7-b4c5-3f3bdfc9b88b'


@pytest.mark.parametrize('manifest, problem', [
    ({'uuid': U, 'name': 'a'}, None),
    ({'uuid': U, 'name': 'a', 'published_at': 20240101}, 'its published_at is 20240101, not a string'),
    ({'uuid': U.upper(), 'name': 'a'}, "its uuid is '%s', not a UUID" % U.upper()),
    ({'name': 'a'}, 'its uuid is None, not a UUID'),
    ({'uuid': U}, 'its name is None, not a string'),
    ({'uuid': U, 'name': {'a': 1}}, "its name is {'a': 1}, not a string"),
    ({'uuid': U, 'name': 'a', 'state': 1, 'os': True}, 'its state is 1, not a string; its os is True, not a string'),
])
def test_listing_problem(manifest, problem):
    assert listing_problem(manifest) == problem


# ---- an ImageManager over a stub runner ----

class StubRunner:
    def which(self, name, required=True):
        return None

    def run(self, argv):
        raise AssertionError('no command may run: %r' % (argv,))


def params(tmp_path, **kw):
    p = dict(host_root=str(tmp_path), pool='zones', layout='auto', source=['http://img.example.com'],
             validate_certs=True, ca_path=None, timeout=30, retries=0, state='present', images=None, uuid=None,
             name=None, version=None, filters=None, manifest=None, file=None, keep=[], prune_unused=None,
             update_manifests=None, lock_timeout=3600)
    p.update(kw)
    return p


@pytest.mark.parametrize('kw', [dict(), dict(prune_unused=False), dict(images=[]), dict(update_manifests=False)])
def test_a_task_that_asks_for_nothing_is_refused(tmp_path, kw):
    with pytest.raises(InvalidParameter, match='^nothing to do: '):
        ImageManager(params(tmp_path, **kw), StubRunner())


@pytest.mark.parametrize('kw', [dict(prune_unused=True), dict(update_manifests=True), dict(uuid=U),
                                dict(images=[{'uuid': U}])])
def test_a_task_that_asks_for_something_is_accepted(tmp_path, kw):
    ImageManager(params(tmp_path, **kw), StubRunner())


@pytest.mark.parametrize('value', [-1, True, '10', 1.5])
def test_lock_timeout_is_checked(tmp_path, value):
    with pytest.raises(InvalidParameter, match='^lock_timeout must be 0 or more seconds'):
        ImageManager(params(tmp_path, uuid=U, lock_timeout=value), StubRunner())


def uuid_of(i):
    return '%08x-0000-4000-8000-000000000000' % i


def manager_with_origins(tmp_path, monkeypatch, origin_of):
    """An ImageManager whose sources answer every image with a manifest whose origin is origin_of[uuid]."""
    manager = ImageManager(params(tmp_path, uuid=U), StubRunner())
    asked = []

    def get_manifest(uuid, ensure_active=True, prefer=None):
        asked.append(uuid)
        manifest = {'uuid': uuid}
        if origin_of.get(uuid):
            manifest['origin'] = origin_of[uuid]
        return Found(None, None, manifest, manifest)

    monkeypatch.setattr(manager, 'get_manifest', get_manifest)
    return manager, asked


def test_chain_of_exactly_the_limit_is_followed(tmp_path, monkeypatch):
    origin_of = {uuid_of(i): uuid_of(i + 1) for i in range(_images.MAX_CHAIN - 1)}
    manager, dummy = manager_with_origins(tmp_path, monkeypatch, origin_of)
    top = manager.get_manifest(uuid_of(0))
    chain = manager.chain(top, Inventory([]), set())
    assert [f.uuid for f in chain] == [uuid_of(i) for i in reversed(range(_images.MAX_CHAIN))]


def test_chain_longer_than_the_limit_is_refused_and_bounded(tmp_path, monkeypatch):
    origin_of = {uuid_of(i): uuid_of(i + 1) for i in range(1000)}
    manager, asked = manager_with_origins(tmp_path, monkeypatch, origin_of)
    with pytest.raises(ImageError, match='is longer than %d images' % _images.MAX_CHAIN):
        manager.chain(manager.get_manifest(uuid_of(0)), Inventory([]), set())
    assert len(asked) == _images.MAX_CHAIN


@pytest.mark.parametrize('origin_of, loop', [
    ({U: U}, [U, U]),
    ({U: OTHER, OTHER: U}, [U, OTHER, U]),
    ({U: uuid_of(1), uuid_of(1): uuid_of(2), uuid_of(2): uuid_of(1)}, [uuid_of(1), uuid_of(2), uuid_of(1)]),
])
def test_an_origin_cycle_is_named(tmp_path, monkeypatch, origin_of, loop):
    manager, asked = manager_with_origins(tmp_path, monkeypatch, origin_of)
    with pytest.raises(ImageError) as exc:
        manager.chain(manager.get_manifest(U), Inventory([]), set())
    assert exc.value.msg == 'the origin chain of image %s is a cycle: %s' % (U, ' -> '.join(loop))
    assert exc.value.evidence == {'cycle': loop}
    assert len(asked) <= 3
