# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_http_body.py: error bodies, Content-Length, Content-MD5 and the file stream."""

from __future__ import annotations

import email.message
import socket
import types

import pytest

from ansible_collections.smartos.images.plugins.module_utils import _http_body, _importer
from ansible_collections.smartos.images.plugins.module_utils._errors import DownloadError
from ansible_collections.smartos.images.plugins.module_utils._http_body import FileStream, error_message
from ansible_collections.smartos.images.tests.unit.fakehost import FakeResponse, Trickling, message_of

U = '2f1dc911-6401-4fa4-8e9d-67ea2e39c271'


# ---- error bodies ----

@pytest.mark.parametrize('body, message', [
    (b'{"code": "ResourceNotFound", "message": "image %s not found"}' % U.encode(), 'ResourceNotFound: image %s not found' % U),
    (b'{"code": "ValidationFailed", "message": "boom", "errors": []}', 'ValidationFailed: boom'),
    (b'{"message": "no code"}', 'no code'),
    (b'{"error": {"message": "You do not have permission", "code": 403}}', 'You do not have permission'),   # DSAPI
    (b'{"error": {"message": "gone", "code": "Gone"}}', 'Gone: gone'),
    (b'<html><body>502 Bad Gateway</body></html>\n', '<html><body>502 Bad Gateway</body></html>'),
    (b'x' * 500, 'x' * 200),
    (b'\xff\xfe broken', '\ufffd\ufffd broken'),
    (b'', None),
    (b'  \n', None),
    (b'[]', None),
    (b'"a string"', None),
    (b'{"code": "InternalError"}', None),
    (b'{"error": "flat string"}', None),
])
def test_error_message(body, message):
    assert error_message(body) == message


@pytest.mark.parametrize('body', [b'[' * 60000, b'{"message": ' + b'[' * 60000 + b']' * 60000 + b'}'])
def test_error_message_of_deep_nesting_is_text(body):
    assert error_message(body).startswith(body[:1].decode())


# ---- Content-Length, Content-MD5 and the file stream ----


@pytest.mark.parametrize('values, expected', [
    (['123'], 123), ([' 7 '], 7), (['0'], 0), (['5', '5'], 5),
    ([], None), (['\xb2'], None), (['9' * 5000], None), (['9' * 21], None), (['-5'], None), (['0x10'], None),
    (['1e3'], None), (['abc'], None), ([''], None), (['5', '6'], None), (['\u0663'], None),
])
def test_content_length_is_short_ascii_digits_given_once(values, expected):
    assert _http_body.content_length(message_of(*[('Content-Length', v) for v in values])) == expected


def test_content_length_of_nothing():
    assert _http_body.content_length(None) is None


def test_file_stream_keeps_a_short_raw_length_and_the_content_range():
    answer = FakeResponse(b'', 206, {'Content-Length': '9' * 5000, 'Content-Range': 'bytes 5-9/10'})
    stream = FileStream(answer, 5)
    assert stream.content_length is None and stream.raw_content_length == '9' * 40
    assert stream.content_range == 'bytes 5-9/10'


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


# ---- slow servers end ----

def test_file_stream_low_speed_rule_is_a_transient_timeout(clock):
    response = Trickling(b'x' * 10000, clock, 1.0)   # 1 byte a second
    stream = FileStream(response, 0, timeout=5)
    with pytest.raises(_http_body.LowSpeedError) as exc:
        for dummy in range(100):
            stream.read(1 << 20)
    assert isinstance(exc.value, socket.timeout) and isinstance(exc.value, _http_body.TRANSIENT_ERRORS)
    assert response.reads == 5
    assert 'low-speed limit of 1024 bytes/s' in str(exc.value)


def test_file_stream_at_the_limit_goes_on(clock):
    response = Trickling(b'x' * 100000, clock, 1.0, step=1024)   # exactly 1 KiB a second
    stream = FileStream(response, 0, timeout=5)
    assert sum(len(stream.read(1 << 20)) for dummy in range(50)) == 50 * 1024


def test_file_stream_does_not_count_our_own_pauses(clock):
    response = Trickling(b'x' * 100000, clock, 0.01, step=1024)
    stream = FileStream(response, 0, timeout=5)
    for dummy in range(20):
        stream.read(1 << 20)
        clock.now += 60   # zfs receive is slow: not the server's fault
