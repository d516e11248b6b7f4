# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for what hostile servers and careless users found against the fidelity rules (Content-MD5 checks,
the sources.list migration, a source's channel)."""

from __future__ import annotations

import email.message
import types

import pytest

from ansible_collections.smartos.images.plugins.module_utils import _importer
from ansible_collections.smartos.images.plugins.module_utils._errors import DownloadError
from ansible_collections.smartos.images.plugins.module_utils._imgapi import FileStream

RIGHT = '1B2M2Y8AsgTpgAmY7PhCfg=='   # MD5 of no bytes
OTHER = 'DMF1ucDxtqgxw5niaXcmYQ=='   # MD5 of b'a'


class Response:
    def __init__(self, pairs):
        self.status = 200
        self.headers = email.message.Message()
        for key, value in pairs:
            self.headers[key] = value

    def close(self):
        pass


@pytest.mark.parametrize('values, expected', [
    ([], None), ([RIGHT], RIGHT), ([RIGHT, RIGHT], RIGHT),
    ([RIGHT, OTHER], '%s, %s' % (RIGHT, OTHER)), ([OTHER, RIGHT], '%s, %s' % (RIGHT, OTHER)),
])
def test_a_content_md5_repeated_with_other_values_is_not_one_digest(values, expected):
    """Defect: the first of two differing Content-MD5 headers was taken, so a server could vouch for a file with
    one and deny it with the other. Now they are joined (as node joins them for imgadm) and refused as malformed."""
    stream = FileStream(Response([('Content-MD5', v) for v in values]), 0)
    assert stream.content_md5 == expected
    if expected is not None and ',' in expected:
        client = types.SimpleNamespace(source=types.SimpleNamespace(url='http://img.example'))
        with pytest.raises(DownloadError) as e:
            _importer.content_md5(stream, 'u', client)
        assert 'malformed Content-MD5' in e.value.msg
