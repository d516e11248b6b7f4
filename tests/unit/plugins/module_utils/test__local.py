# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_local.py: imgadm install's manifest and file checks, and the local file stream."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, InvalidParameter
from ansible_collections.smartos.images.plugins.module_utils._local import (
    MAX_MANIFEST_BYTES, LocalClient, LocalFileStream, load_local_manifest, verify_local_file,
)
from ansible_collections.smartos.images.tests.unit.fakehost import manifest_with

U = '2f1dc911-6401-4fa4-8e9d-67ea2e39c271'
OWNER = '352971aa-31ba-496c-9ade-a379feaecd52'
BODY = bytes(range(256)) * 40
SHA1 = hashlib.sha1(BODY).hexdigest()

GOOD = {
    'v': 2, 'uuid': U, 'name': 'base-64-lts', 'version': '24.4.1', 'type': 'zone-dataset', 'os': 'smartos',
    'published_at': '2024-11-01T12:00:00Z', 'files': [{'sha1': SHA1, 'size': len(BODY), 'compression': 'gzip'}],
}
# what a DSAPI server sent and imgadm v1 saved: no "v", a creator, the file's path
V1 = {
    'uuid': U, 'name': 'base64', 'version': '1.8.1', 'type': 'zone-dataset', 'os': 'smartos',
    'creator_uuid': OWNER, 'vendor_uuid': OWNER, 'creator_name': 'sdc', 'cloud_name': 'sdc', 'platform_type': 'smartos',
    'urn': 'sdc:sdc:base64:1.8.1', 'created_at': '2012-11-27T21:08Z',
    'files': [{'path': 'base64-1.8.1.zfs.bz2', 'sha1': SHA1, 'size': len(BODY)}],
}
TYPES = 'zone-dataset, lx-dataset, lxd, zvol, docker, other'
OSES = 'smartos, linux, windows, bsd, illumos, other'


def changed(**fields):
    """GOOD with top-level fields replaced (None removes) and files[0] fields given as file_<key>."""
    return manifest_with(GOOD, **fields)


def write(tmp_path, content, name='manifest.json'):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    return str(path)


# ---- load_local_manifest ----

def test_load_a_good_manifest(tmp_path):
    assert load_local_manifest(write(tmp_path, GOOD)) == GOOD


def test_load_upgrades_a_v1_manifest(tmp_path):
    m = load_local_manifest(write(tmp_path, V1))
    assert m['v'] == 2
    assert m['owner'] == OWNER and m['public'] is True
    assert m['state'] == 'active' and m['disabled'] is False
    assert m['published_at'] == '2012-11-27T21:08:00Z'
    assert m['files'] == [{'sha1': SHA1, 'size': len(BODY), 'compression': 'bzip2'}]
    assert m['urn'] == 'sdc:sdc:base64:1.8.1'
    for gone in ('creator_uuid', 'vendor_uuid', 'creator_name', 'cloud_name', 'platform_type', 'created_at'):
        assert gone not in m


def test_missing_manifest(tmp_path):
    path = str(tmp_path / 'nope.json')
    with pytest.raises(InvalidParameter) as exc:
        load_local_manifest(path)
    assert exc.value.msg == 'manifest path does not exist: "%s"' % path


def test_manifest_that_is_a_directory(tmp_path):
    with pytest.raises(InvalidParameter) as exc:
        load_local_manifest(str(tmp_path))
    assert exc.value.msg == 'cannot read manifest %s: Is a directory' % tmp_path


@pytest.mark.parametrize('content, why', [
    (b'', 'Expecting value: line 1 column 1 (char 0)'),
    (b'{"uuid": ', 'Expecting value: line 1 column 10 (char 9)'),
    (b'uuid=' + U.encode(), 'Expecting value: line 1 column 1 (char 0)'),
    (b'{"name": "caf\xe9"}', "'utf-8' codec can't decode byte 0xe9 in position 13: invalid continuation byte"),
    (b'[]', 'it is not a JSON object'),
    (b'[{"uuid": "%s"}]' % U.encode(), 'it is not a JSON object'),
    (b'null', 'it is not a JSON object'),
    (b'"%s"' % U.encode(), 'it is not a JSON object'),
    # neither "v" nor a creator: node-imgmanifest cannot tell the version
    (json.dumps(changed(v=None)).encode(), 'manifest does not have a "v" field'),
    (json.dumps(changed(v='two')).encode(), "manifest \"v\" field is not a number: 'two'"),
    (json.dumps(dict(V1, uuid=U.upper())).encode(), "v1 manifest \"uuid\" is not a UUID: '%s'" % U.upper()),
])
def test_manifest_that_cannot_be_read(tmp_path, content, why):
    path = write(tmp_path, content)
    with pytest.raises(InvalidParameter) as exc:
        load_local_manifest(path)
    assert exc.value.msg == 'manifest %s is invalid: %s' % (path, why)


@pytest.mark.parametrize('manifest, problems', [
    (changed(uuid=None), ['uuid is missing']),
    (changed(uuid=''), ['uuid is missing']),
    (changed(uuid=U.upper()), ['uuid is not a lower-case UUID']),
    (changed(name=None), ['name is missing']),
    (changed(version=None), ['version is missing']),
    (changed(os=None), ['os is missing']),
    (changed(v=2, name=None, version='', os=None), ['name is missing', 'version is missing', 'os is missing']),
    (changed(name='base@64'), ["name 'base@64' is invalid (letters, digits, space and . _ / - only, at most 1024)"]),
    (changed(name='a' * 1025), ["name '%s' is invalid (letters, digits, space and . _ / - only, at most 1024)" % ('a' * 1025)]),
    (changed(version='1.0 beta'), ["version '1.0 beta' is invalid (letters, digits and . _ / + - only, at most 512)"]),
    (changed(version='1.0:2'), ["version '1.0:2' is invalid (letters, digits and . _ / + - only, at most 512)"]),
    (changed(type='vmimage'), ["type 'vmimage' is not one of %s" % TYPES]),
    (changed(os='solaris'), ["os 'solaris' is not one of %s" % OSES]),
    (changed(files=None), ['files[0] is missing']),
    (changed(files=[]), ['files[0] is missing']),
    (changed(file_sha1='x'), ['files[0].sha1 is missing or not 40 hex digits']),
    (changed(file_size=0), ['files[0].size is missing or not a positive integer']),
    (changed(file_compression='zstd'), ["files[0].compression is 'zstd', not one of gzip, bzip2, xz, none"]),
    (changed(origin='base-64'), ["origin 'base-64' is not a UUID"]),
    # every bad field at once, in one message
    (changed(uuid=None, name='base 64!', version='1 0', type='vm', os='plan9', file_sha1=None, file_size=-1, file_compression=None), [
        'uuid is missing',
        "name 'base 64!' is invalid (letters, digits, space and . _ / - only, at most 1024)",
        "version '1 0' is invalid (letters, digits and . _ / + - only, at most 512)",
        "type 'vm' is not one of %s" % TYPES,
        "os 'plan9' is not one of %s" % OSES,
        'files[0].sha1 is missing or not 40 hex digits',
        'files[0].size is missing or not a positive integer',
        'files[0].compression is None, not one of gzip, bzip2, xz, none',
    ]),
])
def test_validation_lists_every_bad_field(tmp_path, manifest, problems):
    path = write(tmp_path, manifest)
    with pytest.raises(InvalidParameter) as exc:
        load_local_manifest(path)
    assert exc.value.msg == 'manifest %s is invalid: %s' % (path, '; '.join(problems))
    assert exc.value.evidence == {'problems': problems}


def test_a_v1_manifest_is_validated_after_the_upgrade(tmp_path):
    path = write(tmp_path, dict(V1, name='base64!', files=[{'path': 'base64.zfs', 'size': len(BODY)}]))
    with pytest.raises(InvalidParameter) as exc:
        load_local_manifest(path)
    # the upgrade gave the file a compression ("none" for a plain .zfs); sha1 is still missing
    assert exc.value.evidence['problems'] == [
        "name 'base64!' is invalid (letters, digits, space and . _ / - only, at most 1024)",
        'files[0].sha1 is missing or not 40 hex digits']


def test_a_missing_type_is_listed_once(tmp_path):
    path = write(tmp_path, changed(type=None))
    with pytest.raises(InvalidParameter) as exc:
        load_local_manifest(path)
    assert exc.value.evidence == {'problems': ['type is missing']}


def test_a_v1_manifest_without_creator_is_invalid(tmp_path):
    path = write(tmp_path, {'v': 1, 'uuid': U, 'name': 'base64', 'version': '1.8.1', 'type': 'zone-dataset', 'os': 'smartos'})
    with pytest.raises(InvalidParameter) as exc:
        load_local_manifest(path)
    assert exc.value.msg == 'manifest %s is invalid: v1 manifest has no "creator_uuid"' % path


def test_a_missing_published_at_is_set_as_imgadm_install_does(tmp_path):
    m = load_local_manifest(write(tmp_path, changed(published_at=None)))
    assert isinstance(m.get('published_at'), str) and m['published_at'].endswith('Z')


# ---- verify_local_file ----

def test_verify_a_good_file(tmp_path):
    path = write(tmp_path, BODY, 'image.zfs.gz')
    assert verify_local_file(path, GOOD) is None
    assert verify_local_file(path, changed(file_sha1=SHA1.upper())) is None   # hex compares in any case


@pytest.mark.parametrize('content, manifest, msg', [
    (BODY[:-1], GOOD, 'image file size error: manifest says %d bytes, {path} is %d bytes' % (len(BODY), len(BODY) - 1)),
    (BODY + b'\0', GOOD, 'image file size error: manifest says %d bytes, {path} is %d bytes' % (len(BODY), len(BODY) + 1)),
    (BODY[::-1], GOOD, 'image file checksum (sha1) error: manifest says "%s", {path} is "%s"'
     % (SHA1, hashlib.sha1(BODY[::-1]).hexdigest())),
    (BODY, changed(file_sha1='AB' * 20), 'image file checksum (sha1) error: manifest says "%s", {path} is "%s"' % ('ab' * 20, SHA1)),
])
def test_verify_a_bad_file(tmp_path, content, manifest, msg):
    path = write(tmp_path, content, 'image.zfs.gz')
    with pytest.raises(ImageError) as exc:
        verify_local_file(path, manifest)
    assert not isinstance(exc.value, InvalidParameter)   # a bad file, not a bad option
    assert exc.value.msg == msg.format(path=path)


def test_verify_a_missing_file(tmp_path):
    path = str(tmp_path / 'image.zfs.gz')
    with pytest.raises(InvalidParameter) as exc:
        verify_local_file(path, GOOD)
    assert exc.value.msg == 'file path does not exist: "%s"' % path


# ---- LocalClient / LocalFileStream: a file on the host read like a GetImageFile answer ----

def read_all(stream, size=1000):
    data = b''
    while True:
        block = stream.read(size)
        if not block:
            return data
        assert len(block) <= size
        data += block


@pytest.mark.parametrize('offset, status', [(0, 200), (1, 206), (4000, 206), (len(BODY), 206)])
def test_local_client_opens_the_file_at_an_offset(tmp_path, offset, status):
    path = write(tmp_path, BODY, 'image.zfs.gz')
    client = LocalClient(path)
    assert client.source.url == 'file://' + path
    assert client.source.type == 'file'
    stream = client.open_file(U, offset)
    assert isinstance(stream, LocalFileStream)
    assert stream.status == status
    assert stream.content_length == len(BODY) - offset
    assert stream.raw_content_length == str(len(BODY) - offset)
    assert read_all(stream) == BODY[offset:]
    stream.close()
    with pytest.raises(ValueError):
        stream.read(1)   # closed


def test_local_client_default_offset(tmp_path):
    stream = LocalClient(write(tmp_path, BODY, 'image.zfs.gz')).open_file(U)
    try:
        assert (stream.status, stream.content_length) == (200, len(BODY))
        assert stream.read(10) == BODY[:10]
    finally:
        stream.close()


# ---- every shape of bad manifest: an InvalidParameter naming the field ----

@pytest.mark.parametrize('manifest, problem', [
    (changed(files='x'), 'files[0] is missing'),
    (changed(files=['x']), 'files[0] is missing'),
    (changed(files=[None]), 'files[0] is missing'),
    (changed(file_size='1234'), 'files[0].size is missing or not a positive integer'),
    (changed(file_size=True), 'files[0].size is missing or not a positive integer'),
    (changed(file_sha1=['a' * 40]), 'files[0].sha1 is missing or not 40 hex digits'),
    (changed(file_compression=['gzip']), "files[0].compression is ['gzip'], not one of gzip, bzip2, xz, none"),
    (changed(name=['base']), "name ['base'] is invalid (letters, digits, space and . _ / - only, at most 1024)"),
    (changed(version={'v': 1}), "version {'v': 1} is invalid (letters, digits and . _ / + - only, at most 512)"),
    (changed(type=['zvol']), "type ['zvol'] is not one of %s" % TYPES),
    (changed(os={'os': 'smartos'}), "os {'os': 'smartos'} is not one of %s" % OSES),
    (changed(origin=7), 'origin 7 is not a UUID'),
    # the other fields imgadm install's validateMinimalManifest checks, in node-imgmanifest's words
    (changed(published_at=1700000000), 'published_at: must be YYYY-MM-DDTHH:MM:SS(.mmm)Z'),
    (changed(published_at='yesterday'), 'published_at: must be YYYY-MM-DDTHH:MM:SS(.mmm)Z'),
    (changed(requirements='lx'), 'requirements: must be an object'),
    (changed(requirements={'min_platform': '20141030T081701Z'}),
     'requirements.min_platform: must be a non-empty object {<SDC version>: "YYYYMMDDTHHMMSSZ"}'),
    (changed(requirements={'max_platform': {'7.0': 1}}),
     'requirements.max_platform: has an invalid platform timestamp 1 (YYYYMMDDTHHMMSSZ, 2012 or later)'),
    (changed(owner=['x']), 'owner: must be a lower-case UUID'),
    (changed(homepage='javascript:alert(1)'), 'homepage: must be an http: or https: URL'),
    (changed(disabled='no'), 'disabled: must be a boolean'),
    (changed(tags=['a']), 'tags: must be an object (at most 102400 characters as JSON)'),
    (changed(mystery=1), 'mystery: unknown field'),
])
def test_a_field_of_the_wrong_type_is_named(tmp_path, manifest, problem):
    path = write(tmp_path, manifest)
    with pytest.raises(InvalidParameter) as exc:
        load_local_manifest(path)
    assert exc.value.evidence == {'problems': [problem]}
    assert exc.value.msg == 'manifest %s is invalid: %s' % (path, problem)


@pytest.mark.parametrize('content, why', [
    (b'[' * 100000, 'maximum recursion depth exceeded'),
    (b'{"v": 2, "size": ' + b'9' * 5000 + b'}', 'Exceeds the limit'),
])
def test_json_python_cannot_hold_is_invalid(tmp_path, content, why):
    path = write(tmp_path, content)
    with pytest.raises(InvalidParameter) as exc:
        load_local_manifest(path)
    assert exc.value.msg.startswith('manifest %s is invalid: ' % path) and why in exc.value.msg


def test_a_v1_manifest_with_files_of_the_wrong_shape_is_named(tmp_path):
    path = write(tmp_path, dict(V1, files=['base64.zfs.bz2']))
    with pytest.raises(InvalidParameter) as exc:
        load_local_manifest(path)
    assert exc.value.msg == 'manifest %s is invalid: v1 manifest "files[0]" is a JSON string, not an object' % path


# ---- size cap: refused before it is read ----

def test_a_manifest_at_the_cap_is_read(tmp_path):
    body = json.dumps(changed(description='')).encode()
    padded = body[:-1] + b' ' * (MAX_MANIFEST_BYTES - len(body)) + b'}'
    assert len(padded) == MAX_MANIFEST_BYTES
    assert load_local_manifest(write(tmp_path, padded))['uuid'] == U


def test_a_manifest_over_the_cap_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = tmp_path / 'big.json'
    with open(str(path), 'wb') as f:
        f.truncate(MAX_MANIFEST_BYTES + 1)     # sparse: nothing to read, and reading it would not be JSON anyway
    reads = []
    real_loads = json.loads
    monkeypatch.setattr(json, 'loads', lambda *a, **kw: reads.append(a) or real_loads(*a, **kw))
    with pytest.raises(InvalidParameter) as exc:
        load_local_manifest(str(path))
    assert exc.value.msg == ('manifest %s is %d bytes, more than the %d (4 MiB) a manifest may have'
                             % (path, MAX_MANIFEST_BYTES + 1, MAX_MANIFEST_BYTES))
    assert reads == []


def test_a_manifest_that_grows_past_the_cap_while_read_is_refused(tmp_path, monkeypatch):
    """fstat said it was small; what arrives is still read only up to the cap, then refused."""
    path = write(tmp_path, GOOD)
    real_fstat = os.fstat
    monkeypatch.setattr(os, 'fstat', lambda fd: type('S', (), {'st_size': 10, 'st_mode': real_fstat(fd).st_mode})())
    with open(path, 'ab') as f:
        f.write(b' ' * MAX_MANIFEST_BYTES)
    with pytest.raises(InvalidParameter) as exc:
        load_local_manifest(path)
    assert exc.value.msg == 'manifest %s is more than the %d bytes (4 MiB) a manifest may have' % (path, MAX_MANIFEST_BYTES)


def test_a_named_pipe_is_refused_at_once(tmp_path):
    """Opened for reading, a named pipe would wait for a writer forever."""
    path = str(tmp_path / 'pipe.json')
    os.mkfifo(path)
    with pytest.raises(InvalidParameter) as exc:
        load_local_manifest(path)
    assert exc.value.msg == 'manifest %s is not a regular file' % path


def test_a_character_device_is_refused():
    with pytest.raises(InvalidParameter) as exc:
        load_local_manifest('/dev/zero')
    assert exc.value.msg == 'manifest /dev/zero is not a regular file'
