# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for what the careless-user attack found (tests/integration/test_attack_user.py runs them for real):
odd files where a cache file belongs, keep entries that cannot be names, a zombie taken for a running create."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from ansible_collections.smartos.images.plugins.module_utils import _create_files, _host
from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, InvalidParameter
from ansible_collections.smartos.images.plugins.module_utils._images import ImageManager
from ansible_collections.smartos.images.tests.unit.fakehost import ScriptedRunner

U = '2f1dc911-6401-4fa4-8e9d-67ea2e39c271'


def test_a_fifo_is_refused_at_once_not_waited_on(tmp_path):
    path = str(tmp_path / 'fifo')
    os.mkfifo(path)
    box = []
    worker = threading.Thread(target=lambda: box.append(pytest.raises(ImageError, _host.read_json, path)), daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), 'read_json waits on a FIFO'
    assert 'not a regular file (a FIFO)' in box[0].value.msg


def test_a_directory_reads_as_imgadm_says_it(tmp_path):
    with pytest.raises(ImageError, match='^cannot read .*: Is a directory$'):
        _host.read_regular_file(str(tmp_path))


def test_a_regular_file_and_a_missing_one(tmp_path):
    path = tmp_path / 'f.json'
    assert _host.read_json(str(path)) is None
    path.write_text('{"a": 1}')
    assert _host.read_json(str(path), 100) == {'a': 1}
    with pytest.raises(ValueError, match='larger than 3 bytes'):
        _host.read_json(str(path), 3)


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


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='zombies are read from Linux /proc')
def test_a_zombie_is_no_running_process():
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    try:
        for dummy in range(200):       # exited, not reaped: a zombie
            with open('/proc/%d/stat' % proc.pid, 'rb') as f:
                if f.read().rsplit(b')', 1)[1].split()[0] == b'Z':
                    break
            threading.Event().wait(0.05)
        assert not _create_files.process_exists(proc.pid)
    finally:
        proc.wait(timeout=10)
    assert _create_files.process_exists(os.getpid())


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
