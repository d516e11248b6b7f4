# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_runner.py: the seam every host command goes through (the other tests replace
it with tests/unit/fakehost.py); here it runs real processes (sh, cat) for a stand-in AnsibleModule."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from ansible_collections.smartos.images.plugins.module_utils import _runner
from ansible_collections.smartos.images.plugins.module_utils._errors import CommandError
from ansible_collections.smartos.images.plugins.module_utils._runner import C_LOCALE, Runner, widen_pipe


class Module:
    """What Runner uses of AnsibleModule: get_bin_path and run_command, recorded."""

    def __init__(self, paths=None):
        self.paths = paths
        self.asked, self.ran = [], []

    def get_bin_path(self, name, opt_dirs=None):
        self.asked.append((name, opt_dirs))
        return shutil.which(name) if self.paths is None else self.paths.get(name)

    def run_command(self, argv, environ_update=None):
        self.ran.append((argv, environ_update))
        return 0, 'out', ''


def test_which_searches_the_sbin_directories_once_per_command():
    module = Module({'zfs': '/usr/sbin/zfs'})
    runner = Runner(module)
    assert runner.which('zfs') == runner.which('zfs') == '/usr/sbin/zfs'
    assert runner.which('zoneadm', required=False) is None
    assert module.asked == [('zfs', ['/usr/sbin', '/sbin', '/usr/bin']), ('zoneadm', ['/usr/sbin', '/sbin', '/usr/bin'])]


def test_a_missing_required_command_is_an_error():
    with pytest.raises(CommandError, match='^the zfs command was not found on the host'):
        Runner(Module({})).which('zfs')


def test_run_uses_the_path_and_the_c_locale():
    module = Module({'zfs': '/usr/sbin/zfs'})
    assert Runner(module).run(['zfs', 'list', '-H']) == (0, 'out', '')
    assert module.ran == [(['/usr/sbin/zfs', 'list', '-H'], C_LOCALE)]


def test_popen_streams_into_a_process():
    proc = Runner(Module()).popen(['sh', '-c', 'test "$(cat)" = hello && test "$LC_ALL" = C'],
                                  stderr=subprocess.DEVNULL)
    proc.stdin.write(b'hello')
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0


def test_popen_out_streams_out_of_a_process():
    proc = Runner(Module()).popen_out(['sh', '-c', 'echo "$LANG"'], stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout.read() == b'C\n'
    finally:
        proc.stdout.close()
        assert proc.wait(timeout=30) == 0


def test_widen_pipe_ignores_a_refusal_and_a_platform_without_it(monkeypatch, tmp_path):
    with open(str(tmp_path / 'file'), 'wb') as f:
        widen_pipe(f)      # not a pipe: refused, and the refusal ignored
    monkeypatch.setattr(_runner, 'F_SETPIPE_SZ', None)
    widen_pipe(None)       # not even looked at
