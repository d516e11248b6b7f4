# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_runner.py: where host commands run (argv, C locale, found once)."""

from __future__ import annotations

import subprocess

import pytest

from ansible_collections.smartos.images.plugins.module_utils import _runner
from ansible_collections.smartos.images.plugins.module_utils._errors import CommandError


class FakeModule:
    """get_bin_path and run_command of an AnsibleModule, recording what was asked."""

    def __init__(self, paths):
        self.paths = paths
        self.looked_up = []
        self.ran = []

    def get_bin_path(self, name, opt_dirs=None):
        self.looked_up.append((name, tuple(opt_dirs or ())))
        return self.paths.get(name)

    def run_command(self, argv, environ_update=None):
        self.ran.append((argv, environ_update))
        return 0, 'out', ''


def test_run_uses_the_found_path_and_the_c_locale():
    module = FakeModule({'zfs': '/usr/sbin/zfs'})
    runner = _runner.Runner(module)
    assert runner.run(['zfs', 'list', '-H']) == (0, 'out', '')
    assert module.ran == [(['/usr/sbin/zfs', 'list', '-H'], {'LANG': 'C', 'LC_ALL': 'C', 'LC_MESSAGES': 'C'})]
    runner.run(['zfs', 'get'])
    assert module.looked_up == [('zfs', ('/usr/sbin', '/sbin', '/usr/bin'))]     # looked up once


def test_a_missing_required_command_is_a_command_error():
    runner = _runner.Runner(FakeModule({}))
    assert runner.which('vmadm', required=False) is None
    with pytest.raises(CommandError, match='the vmadm command was not found on the host'):
        runner.which('vmadm')


def test_popen_streams_into_a_command():
    runner = _runner.Runner(FakeModule({'cat': '/bin/cat'}))
    proc = runner.popen(['cat'], stderr=subprocess.DEVNULL)
    proc.stdin.write(b'data')
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0


def test_popen_out_streams_out_of_a_command():
    runner = _runner.Runner(FakeModule({'echo': '/bin/echo'}))
    proc = runner.popen_out(['echo', 'hello'], stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout.read() == b'hello\n'
    finally:
        proc.stdout.close()
        assert proc.wait(timeout=30) == 0


def test_widen_pipe_ignores_a_refusal(monkeypatch):
    calls = []

    def refuse(fd, op, size):
        calls.append(op)
        raise OSError('refused')

    class Pipe:
        def fileno(self):
            return 0

    monkeypatch.setattr(_runner, 'F_SETPIPE_SZ', 1031)
    monkeypatch.setattr(_runner.fcntl, 'fcntl', refuse)
    _runner.widen_pipe(Pipe())
    assert calls == [1031]
    monkeypatch.setattr(_runner, 'F_SETPIPE_SZ', None)
    _runner.widen_pipe(Pipe())
    assert calls == [1031]          # no such option on this platform: not asked
