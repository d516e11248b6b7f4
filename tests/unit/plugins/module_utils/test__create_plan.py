# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_create_plan.py: the task checked, the fields, and the plan made without
running anything (no host: a source and an output directory)."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.smartos.images.plugins.module_utils._create_plan import (
    Planner, check_params, image_fields,
)
from ansible_collections.smartos.images.plugins.module_utils._create_source import SourceDataset
from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, InvalidParameter

VM = '79ae2d1c-5e48-4ae4-9c2f-f9e4d6b7cf0d'
NOW = '2024-01-02T03:04:05Z'


def params(tmp_path, **kw):
    p = dict(vm=None, dataset='zones/src', snapshot=None, stop_vm=False, output_dir=str(tmp_path / 'out'), name='img',
             version='1.0.0', description=None, homepage=None, uuid=None, os=None, type=None, compression='gzip',
             origin=None, owner=None, requirements=None, fields=None, dsmanifest=False, creator_name=None,
             remove_snapshot=False, pool='zones')
    p.update(kw)
    return p


def source(guid=None, kind='filesystem', own=True, **attrs):
    made = SourceDataset('zones/src', kind, 'zones/src@snap', own=own, guid=guid, volsize=str(1 << 30))
    for key, value in attrs.items():
        setattr(made, key, value)
    return made


def plan(tmp_path, src, **kw):
    p = params(tmp_path, **kw)
    return Planner(p, lambda: NOW).plan(src, image_fields(p, src, {}), None)


@pytest.mark.parametrize('kw, words', [
    ({'vm': 'NOT-A-UUID'}, 'vm "NOT-A-UUID" is not a lower-case UUID'),
    ({'pool': '-o'}, 'is not a valid ZFS pool name'),
    ({'fields': {'uuid': 'x'}}, 'is set by the module or by its own option'),
    ({'fields': {'colour': 'x'}}, 'is not a field of a v2 image manifest'),
    ({'output_dir': ''}, 'output_dir must name a directory'),
])
def test_check_params_refuses(tmp_path, kw, words):
    with pytest.raises(InvalidParameter, match=words):
        check_params(params(tmp_path, **kw))


def test_image_fields_of_a_volume_have_the_zvol_defaults(tmp_path):
    fields = image_fields(params(tmp_path), source(kind='volume'), {})
    assert fields['type'] == 'zvol' and fields['image_size'] == 1024 and fields['nic_driver'] == 'virtio'


def test_image_fields_refuse_a_type_that_does_not_fit(tmp_path):
    with pytest.raises(InvalidParameter, match='type "zvol" does not fit zones/src, a filesystem'):
        image_fields(params(tmp_path, type='zvol'), source(), {})


def test_a_new_image_snapshots_then_sends_and_writes(tmp_path):
    made = plan(tmp_path, source(), remove_snapshot=True)
    assert [a['action'] for a in made.actions] == ['snapshot', 'send', 'write_manifest', 'remove_snapshot']
    assert made.file_path == str(tmp_path / 'out' / 'img-1.0.0.zfs.gz') and made.manifest is None
    assert made.diff == {'before': {'files': [], 'image': None, 'snapshot': None},
                         'after': {'files': ['img-1.0.0.imgmanifest', 'img-1.0.0.zfs.gz'], 'image': 'img@1.0.0',
                                   'snapshot': None}}
    assert not (tmp_path / 'out').exists()      # planning makes nothing


def test_a_running_vm_is_refused_unless_it_may_be_stopped(tmp_path):
    with pytest.raises(ImageError, match='is running: stop it first'):
        plan(tmp_path, source(vm=VM, vm_state='running'))
    made = plan(tmp_path, source(vm=VM, vm_state='running'), stop_vm=True)
    assert made.actions[0] == {'action': 'stop_vm', 'vm': VM}


def write_output(tmp_path, guid, compression='gzip', size=7):
    out = tmp_path / 'out'
    out.mkdir()
    suffix = {'gzip': '.gz', 'xz': '.xz'}[compression]
    (out / ('img-1.0.0.zfs' + suffix)).write_bytes(b'x' * size)
    manifest = {'v': 2, 'uuid': VM, 'name': 'img', 'version': '1.0.0', 'type': 'zone-dataset', 'os': 'smartos',
                'published_at': NOW, 'files': [{'sha1': 'a' * 40, 'size': size, 'compression': compression,
                                                'dataset_guid': guid}]}
    (out / 'img-1.0.0.imgmanifest').write_text(json.dumps(manifest))


def test_an_output_of_the_same_snapshot_is_reused(tmp_path):
    write_output(tmp_path, '123')
    made = plan(tmp_path, source(guid='123'), uuid=VM)
    assert [a['action'] for a in made.actions if a['action'] != 'write_manifest'] == []
    assert made.sha1 == 'a' * 40 and made.size == 7 and made.guid == '123'


def test_an_output_of_another_snapshot_is_sent_again(tmp_path):
    write_output(tmp_path, '123')
    assert [a['action'] for a in plan(tmp_path, source(guid='456')).actions] == ['send', 'write_manifest']


def test_a_changed_compression_removes_the_stale_file(tmp_path):
    write_output(tmp_path, '123', compression='xz')
    made = plan(tmp_path, source(guid='123'))
    stale = str(tmp_path / 'out' / 'img-1.0.0.zfs.xz')
    assert made.stale_file == stale and {'action': 'remove_file', 'path': stale} in made.actions
    assert made.diff['before']['files'] == ['img-1.0.0.imgmanifest', 'img-1.0.0.zfs.xz']


def test_another_images_manifest_is_never_overwritten(tmp_path):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'img-1.0.0.imgmanifest').write_text(json.dumps({'name': 'img-1', 'version': '0.0'}))
    with pytest.raises(ImageError, match='belongs to another image'):
        plan(tmp_path, source())
    assert os.listdir(str(out)) == ['img-1.0.0.imgmanifest']
