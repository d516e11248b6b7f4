# Private to the smartos.images collection: not a public API.
# Reading an image server's answers under the limits: low speed, size, time, and what an error answer says.
from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
import zlib
from urllib.error import URLError

from ansible_collections.smartos.images.plugins.module_utils._errors import SourceError

# The limits below are documented in docs/docsite/rst/guide_security.rst and the doc fragment.
LOW_SPEED_LIMIT = 1024             # bytes a second, averaged over `timeout` seconds of waiting (curl -Y/-y)
JSON_TIME_FACTOR = 4               # one JSON answer, or any answer's headers, within this many times `timeout`
READ_PIECE = 64 << 10              # bytes asked for per read of a JSON body
TOKEN_COST = 64                    # bytes a parsed JSON value takes, at least, beyond its text

# Errors a retry may cure: the connection failed, dropped or timed out.
TRANSIENT_ERRORS = (URLError, ConnectionError, socket.timeout, http.client.HTTPException, ssl.SSLError)


def now():
    return time.monotonic()  # looked up at call time, so tests can replace it


class LowSpeedError(socket.timeout):
    """The server sends too slowly: a timeout, so the importer resumes and retries as for any other."""


def content_length(headers):
    """The Content-Length of an answer as an int; None when missing, repeated with other values, or not plain digits."""
    if headers is None:
        return None
    values = set(headers.get_all('Content-Length') or ()) if hasattr(headers, 'get_all') else \
        {headers.get('Content-Length')} - {None}
    if len(values) != 1:
        return None
    value = values.pop().strip()
    # str.isdigit() accepts '\xb2' (superscript two) and int() refuses 5,000 digits: only short ASCII digits count
    if not (0 < len(value) <= 20 and value.isascii() and value.isdigit()):
        return None
    return int(value)


def error_message(body):
    """The message of an IMGAPI ({code, message}) or DSAPI ({error: {message}}) error body."""
    try:
        data = json.loads(body.decode('utf-8', 'replace'))
    except (ValueError, RecursionError):  # deep nesting is a RecursionError, not a ValueError
        return body.decode('utf-8', 'replace').strip()[:200] or None
    if isinstance(data, dict):
        if isinstance(data.get('error'), dict):
            data = data['error']
        if data.get('message'):
            return '%s%s' % ('%s: ' % data['code'] if isinstance(data.get('code'), str) else '',
                             str(data['message'])[:500])
    return None


def _read1(response, size):
    """At most size bytes, after at most one receive, so that slow senders are noticed between reads."""
    read1 = getattr(response, 'read1', None)
    return read1(size) if read1 is not None else response.read(size)


class _SpeedMeter:
    """The low-speed rule: fewer than LOW_SPEED_LIMIT bytes a second over `timeout` seconds of waiting fails."""

    def __init__(self, timeout, what):
        self.timeout = timeout
        self.what = what
        self.waited = 0.0
        self.count = 0

    def read(self, response, size):
        started = now()
        data = _read1(response, size)
        self.waited += now() - started  # only time spent waiting for the server counts, not our own work
        self.count += len(data)
        if self.waited >= self.timeout:
            if self.count < LOW_SPEED_LIMIT * self.timeout:
                raise LowSpeedError('%s: only %d bytes arrived in %.0f s, under the low-speed limit of %d bytes/s '
                                    'over timeout (%d s)' % (self.what, self.count, self.waited, LOW_SPEED_LIMIT,
                                                             self.timeout))
            self.waited, self.count = 0.0, 0
        return data


def _json_cost(body):
    """An upper estimate of the memory a JSON text takes once parsed: its size plus TOKEN_COST per value."""
    return len(body) + TOKEN_COST * (body.count(b',') + body.count(b'[') + body.count(b'{') + 1)


class FileStream:
    """An open GetImageFile response, read under the low-speed rule."""

    def __init__(self, response, offset, timeout=30):
        self.response = response
        self.offset = offset
        self.status = response.status
        self.content_length = content_length(response.headers)
        length = response.headers.get('Content-Length')
        self.raw_content_length = None if length is None else length[:40]
        self.content_range = response.headers.get('Content-Range')
        # repeated with other values: joined (as node joins them for imgadm), so no single digest is picked
        md5s = response.headers.get_all('Content-MD5') if hasattr(response.headers, 'get_all') else \
            [response.headers.get('Content-MD5')]
        md5s = sorted(set(m for m in md5s or () if m is not None))
        self.content_md5 = ', '.join(md5s) if md5s else None
        self._meter = _SpeedMeter(timeout, 'the image file')

    def read(self, size):
        return self._meter.read(self.response, size)

    def close(self):
        self.response.close()


def _close(response):
    try:
        response.close()
    except Exception:  # pylint: disable=broad-except  # closing a broken response must not hide the real error
        pass


def read_body(response, limit, what, timeout, scrub, shown=None, truncate=False):
    """A whole body of at most limit bytes, read in pieces under the low-speed rule and the JSON deadline;
    scrub(text) hides credentials in server-given text."""
    declared = content_length(getattr(response, 'headers', None))
    if not truncate and declared is not None and declared > limit:
        raise SourceError('%s answered with %s bytes for %s, more than the %d allowed; refused unread'
                          % (shown, declared, what, limit), url=shown)
    meter = _SpeedMeter(timeout, 'reading %s from %s' % (what, shown))
    deadline = now() + JSON_TIME_FACTOR * timeout
    pieces, size = [], 0
    while size <= limit:
        try:
            piece = meter.read(response, min(READ_PIECE, limit + 1 - size))
        except TRANSIENT_ERRORS:
            raise
        except (OSError, EOFError, zlib.error) as e:  # gzip's errors, for an answer sent with Content-Encoding
            raise SourceError('%s answered with %s that could not be read or decompressed (%s: %s)'
                              % (shown, what, type(e).__name__, scrub(e)[:200]), url=shown)
        if not piece:
            break
        pieces.append(piece)
        size += len(piece)
        if now() > deadline:
            raise LowSpeedError('%s: %s did not arrive whole within %d s (%d x timeout)'
                                % (shown, what, JSON_TIME_FACTOR * timeout, JSON_TIME_FACTOR))
    body = b''.join(pieces)
    if size > limit:
        if truncate:
            return body[:limit]
        raise SourceError('%s answered with more than %d bytes for %s; refused before parsing'
                          % (shown, limit, what), url=shown)
    return body
