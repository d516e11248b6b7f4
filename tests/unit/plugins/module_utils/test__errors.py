# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_errors.py: one exception family, its message and its evidence, and which
failures of an import are of what a source sent (another source may do better)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from ansible_collections.smartos.images.plugins.module_utils import _errors, _importer
from ansible_collections.smartos.images.plugins.module_utils._errors import (
    CommandError, DownloadError, ImageError, ImageInUse, ImageNotFound, InvalidParameter, SourceError,
    UnsupportedImage,
)
from ansible_collections.smartos.images.plugins.module_utils._imgapi import ImageSource, client_from_params


def throw(error):
    """Raise error (from a lambda)."""
    raise error


def test_message_and_evidence_without_empty_values():
    e = CommandError('zfs list failed: no pool', cmd='zfs list', rc=1, stderr=None)
    assert str(e) == e.msg == 'zfs list failed: no pool'
    assert e.evidence == {'cmd': 'zfs list', 'rc': 1}     # None is no evidence; 0 and '' are
    assert ImageError('x', rc=0, stderr='').evidence == {'rc': 0, 'stderr': ''}
    assert ImageError('x').evidence == {}


@pytest.mark.parametrize('cls, parent', [
    (InvalidParameter, ImageError), (SourceError, ImageError), (ImageNotFound, SourceError),
    (DownloadError, ImageError), (CommandError, ImageError), (ImageInUse, ImageError),
    (UnsupportedImage, ImageError), (ImageError, Exception),
])
def test_one_family(cls, parent):
    assert issubclass(cls, parent)


def test_every_error_of_the_module_is_an_image_error():
    errors = [v for v in vars(_errors).values() if isinstance(v, type) and issubclass(v, Exception)]
    assert errors and all(issubclass(e, ImageError) for e in errors)


# ---- from_the_source: which failures of an import another source of the same image may not have ----

URL = 'http://img.example.com'
U = '2f1dc911-6401-4fa4-8e9d-67ea2e39c271'


class Stream:
    """A file answer: its headers, then body bytes (then the connection ends)."""

    def __init__(self, body=b'', content_length=None, raw=None, content_md5=None):
        self.body, self.content_length, self.raw_content_length = body, content_length, raw
        self.content_md5, self.status = content_md5, 200

    def read(self, size):
        data, self.body = self.body[:size], self.body[size:]
        return data

    def close(self):
        pass


class Client:
    def __init__(self, stream=None):
        self.source, self.stream = ImageSource(URL), stream

    def open_file(self, uuid, offset=0):
        return self.stream


def raised(call):
    with pytest.raises(ImageError) as exc:
        call()
    return exc.value


def source_sent_errors(servers):
    """What a source can send wrong, each raised by the code that meets it."""
    client = Client()
    real = client_from_params(ImageSource(URL), dict(validate_certs=True, ca_path=None, timeout=30, retries=0))
    servers.serve('%s/images/%s/file' % (URL, U), {'code': 'InternalError', 'message': 'disk'}, status=500)

    def checksum():
        raise _importer.digest_error(client, U, hashlib.sha1(b'sent'), hashlib.sha1(b'meant').hexdigest(), None)

    def content_md5():
        raise _importer.digest_error(client, U, hashlib.md5(b'sent'), None,
                                     base64.b64encode(hashlib.md5(b'meant').digest()).decode())

    return {
        'checksum': checksum,
        'content-md5': content_md5,
        'no-checksum-at-all': lambda: _importer.content_md5(Stream(), U, client),
        'content-length': lambda: _importer.open_sized(Client(Stream(content_length=5)), U, 10),
        'no-content-length': lambda: _importer.open_sized(Client(Stream(raw='ten')), U, 10),
        'broke-off': lambda: _importer.read_file(client, U, Stream(b'12345'), 10, hashlib.sha1(), lambda c: None,
                                                 0, lambda s: None),
        'http-500-for-the-file': lambda: real.open_file(U),
        'inflate': lambda: throw(ImageError(
            'image %s file could not be decompressed as gzip (bad), although its SHA-1 of the manifest matches: '
            'the image on %s is damaged' % (U, URL), url=URL)),
    }


SENT = ['checksum', 'content-md5', 'no-checksum-at-all', 'content-length', 'no-content-length', 'broke-off',
        'http-500-for-the-file', 'inflate']


@pytest.mark.parametrize('kind', SENT)
def test_what_a_source_sent_wrong_is_from_the_source(servers, kind):
    error = raised(source_sent_errors(servers)[kind])
    assert _errors.from_the_source(error), error.msg
    assert URL in error.evidence.get('url', '')


@pytest.mark.parametrize('error', [
    CommandError('zfs receive of image %s into zones/%s-partial failed: out of space' % (U, U), cmd='zfs receive'),
    ImageError('timed out after 0s waiting for the import lock /var/run/img.%s.import.lock held by another process'
               % U),
    ImageError('cannot write /var/imgadm/images/zones-%s.json: No space left on device' % U, path='/var/imgadm'),
    ImageError('image "%s" has an unexpected number of snapshots (2): a, b' % U),
    ImageError('dataset zones/%s-partial is in the way of the import' % U),
    InvalidParameter('bad', url=URL),                 # refused before anything ran, whatever it names
    UnsupportedImage('image %s from %s is a docker image' % (U, URL), url=URL),
    ImageInUse('in use'),
], ids=['zfs-receive', 'lock', 'cache-write', 'snapshots', 'in-the-way', 'parameter', 'unsupported', 'in-use'])
def test_a_host_failure_is_not_from_the_source(error):
    assert not _errors.from_the_source(error)
