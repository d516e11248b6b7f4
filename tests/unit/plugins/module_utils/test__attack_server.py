# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for what a hostile image server found: lying Content-Length, echoed credentials, misplaced 206s."""

from __future__ import annotations

import base64
import email.message
import http.client
import io
import types
from urllib.error import HTTPError
from urllib.parse import quote

import pytest

from ansible_collections.smartos.images.plugins.module_utils import _importer
from ansible_collections.smartos.images.plugins.module_utils._errors import SourceError
from ansible_collections.smartos.images.plugins.module_utils._http_body import FileStream, content_length, error_message
from ansible_collections.smartos.images.plugins.module_utils._imgapi import ImageServerClient
from ansible_collections.smartos.images.plugins.module_utils._urls import ImageSource

PASSWORD = 'p#ss/w?rd@x:y'
URL = 'http://alice:%s@img.example.com' % quote(PASSWORD, safe='')
B64 = base64.b64encode(('alice:' + PASSWORD).encode()).decode()
SECRETS = (PASSWORD, quote(PASSWORD, safe=''), B64)


def headers(*pairs):
    message = email.message.Message()
    for key, value in pairs:
        message[key] = value
    return message


@pytest.mark.parametrize('values, expected', [
    (['123'], 123), ([' 7 '], 7), (['0'], 0), (['5', '5'], 5),
    ([], None), (['\xb2'], None), (['9' * 5000], None), (['9' * 21], None), (['-5'], None), (['0x10'], None),
    (['1e3'], None), (['abc'], None), ([''], None), (['5', '6'], None), (['\u0663'], None),
])
def test_content_length_is_short_ascii_digits_given_once(values, expected):
    assert content_length(headers(*[('Content-Length', v) for v in values])) == expected


def test_content_length_of_nothing():
    assert content_length(None) is None


class Response:
    def __init__(self, status=200, pairs=()):
        self.status = status
        self.headers = headers(*pairs)

    def close(self):
        pass


def test_file_stream_keeps_a_short_raw_length_and_the_content_range():
    stream = FileStream(Response(206, [('Content-Length', '9' * 5000), ('Content-Range', 'bytes 5-9/10')]), 5)
    assert stream.content_length is None and stream.raw_content_length == '9' * 40
    assert stream.content_range == 'bytes 5-9/10'


@pytest.mark.parametrize('body', [b'[' * 60000, b'{"message": ' + b'[' * 60000 + b']' * 60000 + b'}'])
def test_error_message_of_deep_nesting_is_text(body):
    assert error_message(body).startswith(body[:1].decode())


# ---- credentials a server echoes back ----

class Echo:
    """A Request whose open() raises what `answer(headers)` makes of the request's headers."""

    def __init__(self, answer):
        self.answer = answer

    def open(self, method, url, headers=None, decompress=True):
        return self.answer(url, headers or {})


def echo_client(answer, retries=0):
    c = ImageServerClient(ImageSource(URL), retries=retries, sleep=lambda s: None)
    c._request = Echo(answer)
    return c


def _echo_text(headers):
    auth = headers['Authorization']
    auth = auth.decode() if isinstance(auth, bytes) else auth
    return '%s %s %s %s' % (auth, base64.b64decode(auth.split()[-1]).decode(), PASSWORD, quote(PASSWORD, safe=''))


def assert_clean(message):
    for secret in SECRETS:
        assert secret not in message


@pytest.mark.parametrize('status, body, words', [
    (401, lambda h: ('{"code": "Denied", "message": "%s"}' % _echo_text(h)).encode(), 'HTTP 401: Denied: ***'),
    (403, lambda h: b'', 'HTTP 403'),     # echoed in the reason phrase only
], ids=['body', 'reason'])
def test_an_error_answer_echoing_the_credentials_is_scrubbed(status, body, words):
    def answer(url, h):
        raise HTTPError(url, status, _echo_text(h), email.message.Message(), io.BytesIO(body(h)))
    with pytest.raises(SourceError) as e:
        echo_client(answer).get_image('2f1dc911-6401-4fa4-8e9d-67ea2e39c271')
    assert words in e.value.msg
    assert_clean(e.value.msg)


def test_a_status_line_echoing_the_credentials_is_scrubbed():
    def answer(url, h):
        raise http.client.BadStatusLine('HTTP/1.0 2OO ' + _echo_text(h))
    with pytest.raises(SourceError) as e:
        echo_client(answer, retries=1).get_image('2f1dc911-6401-4fa4-8e9d-67ea2e39c271')
    assert 'could not be reached after 2 attempt(s)' in e.value.msg
    assert_clean(e.value.msg)


def test_a_location_echoing_the_credentials_is_scrubbed():
    def answer(url, h):
        location = headers(('Location', 'ftp://x.invalid/' + _echo_text(h).replace(' ', '/')))
        raise HTTPError(url, 302, 'Found', location, io.BytesIO(b''))
    with pytest.raises(SourceError) as e:
        echo_client(answer).get_image('2f1dc911-6401-4fa4-8e9d-67ea2e39c271')
    assert 'not an http:// or https:// URL' in e.value.msg
    assert_clean(e.value.msg)


def test_a_source_without_a_password_scrubs_nothing():
    c = ImageServerClient(ImageSource('http://img.example.com'))
    assert c.scrub('Basic abc p#ss') == 'Basic abc p#ss'


# ---- a 206 is placed by its Content-Range ----

class RangeStream:
    def __init__(self, data, start, content_range):
        self.data, self.pos, self.status, self.content_range = data, start, 206, content_range
        self.closed = False

    def read(self, size):
        chunk = self.data[self.pos:self.pos + size]
        self.pos += len(chunk)
        return chunk

    def close(self):
        self.closed = True


def range_client(start, content_range):
    data = bytes(range(256)) * 8
    return types.SimpleNamespace(open_file=lambda uuid, offset: RangeStream(data, start, content_range),
                                 scrub=lambda text: str(text).replace(PASSWORD, '***')), data


@pytest.mark.parametrize('start, content_range', [(0, 'bytes 0-2047/2048'), (100, 'bytes 100-2047/2048'),
                                                  (500, None), (500, 'bytes 500-2047/*')])
def test_a_206_continues_at_the_offset(start, content_range):
    client, data = range_client(start, content_range)
    stream = _importer.ImportPipeline._resume(client, 'u', 500)
    assert stream.read(10) == data[500:510]


@pytest.mark.parametrize('content_range', ['bytes 600-2047/2048', 'bytes 500-2047/2048 ' + PASSWORD, 'nonsense'])
def test_a_206_past_the_offset_or_unreadable_is_a_transient_error(content_range):
    client, dummy = range_client(600, content_range)
    with pytest.raises(ConnectionError) as e:
        _importer.ImportPipeline._resume(client, 'u', 500)
    assert 'Content-Range' in str(e.value) and PASSWORD not in str(e.value)
