# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_create_files.py: output file names, temporary files, what is written there."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading

import pytest

from ansible_collections.smartos.images.plugins.module_utils._create_files import (
    NAME_MAX, TEMP_EXTRA, NotAManifestFile, check_name_length, check_output_dir, existing_entry, file_bytes,
    file_prefix, file_size, host_tag, open_temp, orphaned_temps, process_exists, read_json_file, read_manifest,
    shown, write_error,
)
from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, InvalidParameter


@pytest.mark.parametrize('name, version, prefix', [
    ('base-64', '1.0.0', 'base-64-1.0.0'),
    ('Private vader image', '0.0.1', 'Private_vader_image-0.0.1'),
    ('a/b', '1+build/2', 'a_b-1+build_2'),
])
def test_file_prefix(name, version, prefix):
    assert file_prefix(name, version) == prefix


def test_shown_cuts_long_values():
    assert shown('x') == "'x'" and shown('y' * 100).endswith('...') and len(shown('y' * 100)) == 63


def test_check_output_dir_accepts_a_directory_to_be_made(tmp_path):
    check_output_dir(str(tmp_path / 'a' / 'b'))


def test_check_output_dir_refuses_a_file_in_the_way(tmp_path):
    (tmp_path / 'f').write_text('x')
    with pytest.raises(ImageError, match='is not a directory'):
        check_output_dir(str(tmp_path / 'f' / 'out'))


def test_check_name_length_counts_the_temporary_names_extra(tmp_path):
    fits = 'a' * (NAME_MAX - TEMP_EXTRA)
    check_name_length([str(tmp_path / fits)])
    with pytest.raises(InvalidParameter, match='shorten the name or version'):
        check_name_length([str(tmp_path / (fits + 'a'))])


@pytest.mark.parametrize('code, advice', [(errno.ENOSPC, True), (errno.EIO, False)])
def test_write_error_advises_on_a_full_disk(code, advice):
    error = write_error('/out/f', OSError(code, os.strerror(code)))
    assert ('free some space in /out' in error.msg) == advice and error.evidence == {'path': '/out/f'}


def test_open_temp_names_this_host_and_process(tmp_path):
    fd, tmp = open_temp(str(tmp_path / 'out' / 'img.zfs.gz'))
    os.close(fd)
    assert os.path.basename(tmp).startswith('.img.zfs.gz.%s-%d.' % (host_tag(), os.getpid()))
    assert oct(os.stat(tmp).st_mode & 0o777) == oct(0o644)


def test_orphaned_temps_are_those_of_gone_processes(tmp_path):
    dead = subprocess.Popen(['true'])
    dead.wait()
    orphan = tmp_path / ('.img-1.zfs.gz.%s-%d.abcd_123' % (host_tag(), dead.pid))
    alive = tmp_path / ('.img-1.zfs.gz.%s-%d.abcd_123' % (host_tag(), os.getpid()))
    for path in (orphan, alive):
        path.write_bytes(b'partial')
    assert orphaned_temps(str(tmp_path / 'img-1')) == [str(orphan)]
    assert orphaned_temps(str(tmp_path / 'missing' / 'img-1')) == []
    assert process_exists(os.getpid()) and not process_exists(dead.pid)


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='zombies are read from Linux /proc')
def test_a_zombie_is_no_running_process():
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    try:
        for dummy in range(200):       # exited, not reaped: a zombie
            with open('/proc/%d/stat' % proc.pid, 'rb') as f:
                if f.read().rsplit(b')', 1)[1].split()[0] == b'Z':
                    break
            threading.Event().wait(0.05)
        assert not process_exists(proc.pid)
    finally:
        proc.wait(timeout=10)
    assert process_exists(os.getpid())


def test_read_json_file(tmp_path):
    path = tmp_path / 'm.json'
    assert read_json_file(str(path)) is None
    path.write_text('{"a": 1}')
    assert read_json_file(str(path)) == {'a': 1}
    path.write_text('[' + ' ' * 20 + ']')
    with pytest.raises(NotAManifestFile, match='larger than'):
        read_json_file(str(path), limit=10)
    with pytest.raises(NotAManifestFile, match='a directory'):
        read_json_file(str(tmp_path))


def test_read_manifest_ignores_what_will_be_replaced_and_refuses_what_is_in_the_way(tmp_path):
    path = tmp_path / 'img.imgmanifest'
    path.write_text('not json')
    assert read_manifest(str(path)) is None
    path.write_text('[1]')
    assert read_manifest(str(path)) is None
    os.mkfifo(str(tmp_path / 'fifo'))
    with pytest.raises(ImageError, match='is in the way'):
        read_manifest(str(tmp_path / 'fifo'))


def test_existing_entry_file_size_and_bytes(tmp_path):
    assert existing_entry({'files': [{'sha1': 'x'}]}) == {'sha1': 'x'}
    assert existing_entry({'files': 'x'}) is None and existing_entry(None) is None
    path = tmp_path / 'f'
    assert file_size(str(path)) is None and file_bytes(str(path)) is None
    path.write_bytes(b'abc')
    assert file_size(str(path)) == 3 and file_bytes(str(path)) == b'abc'
