# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tests/docs/changelog.sh (make changelog) refuses a missing or non-semantic version with its own message, before
antsibull-changelog stops on it with an unbound variable or a bare "Uncaught exception"."""

from __future__ import annotations

import os
import subprocess

import pytest

SCRIPT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', 'docs', 'changelog.sh'))


def run(*args):
    return subprocess.run(['bash', SCRIPT] + list(args), capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize('args', [('bin', 'coll', 'scratch'), ('bin', 'coll', 'scratch', '')])
def test_no_version_is_named_as_such(args, tmp_path):
    proc = run(*args)
    assert proc.returncode == 2
    assert "no version to release" in proc.stderr and 'unbound variable' not in proc.stderr, proc.stderr


@pytest.mark.parametrize('version', ['0.1', 'v0.1.0', '0.1.0.1', '1.0.0 beta', '01.x.0'])
def test_a_version_that_is_not_semantic_is_refused(version):
    proc = run('bin', 'coll', 'scratch', version)
    assert proc.returncode == 2
    assert 'is not a semantic version' in proc.stderr and version in proc.stderr, proc.stderr
