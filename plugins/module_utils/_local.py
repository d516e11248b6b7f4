# Private to the smartos.images collection: not a public API.
# Installing from a manifest and an image file on the host (imgadm install -m -f).
from __future__ import annotations

import datetime
import errno
import hashlib
import json
import os
import stat

from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, InvalidParameter
from ansible_collections.smartos.images.plugins.module_utils._manifest import (
    MINIMAL_FIELDS, ManifestError, import_problems, minimal_problems, upgrade_manifest,
)
from ansible_collections.smartos.images.plugins.module_utils._manifest_build import manifest_problems

READ_SIZE = 1 << 20
# A manifest is a few KiB (the largest real ones, with long descriptions and tags, stay under 200 KiB);
# a bigger file is refused before it is read, so that it cannot fill the module's memory or the cache file.
MAX_MANIFEST_BYTES = 4 << 20
# Fields the imgadm install checks below already name in their own words.
_CHECKED = frozenset(MINIMAL_FIELDS + ('files', 'origin'))


class LocalSource:
    """Stands where an image server would: the file on the host."""

    def __init__(self, path):
        self.url = 'file://' + path
        self.type = 'file'


class LocalFileStream:
    """An image file read like a GetImageFile answer."""

    def __init__(self, path, offset=0):
        self.status = 206 if offset else 200
        self.content_length = os.path.getsize(path) - offset
        self.raw_content_length = str(self.content_length)
        self._f = open(path, 'rb')  # pylint: disable=consider-using-with  # closed by close()
        self._f.seek(offset)

    def read(self, size):
        return self._f.read(size)

    def close(self):
        self._f.close()


class LocalClient:
    """The client an ImportPipeline reads a local image file through."""

    def __init__(self, path):
        self.path = path
        self.source = LocalSource(path)

    def open_file(self, uuid, offset=0):
        return LocalFileStream(self.path, offset)


def _field(problem):
    """The top-level field a 'field: why' problem is about."""
    return problem.partition(':')[0].partition('.')[0].partition('[')[0]


def load_local_manifest(path):
    """Read, upgrade (v1) and validate a manifest file as imgadm install does; list every bad field."""
    try:
        # O_NONBLOCK: a named pipe given by mistake must not hang the module waiting for a writer
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), 'rb') as f:
            info = os.fstat(f.fileno())
            if stat.S_ISDIR(info.st_mode):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
            if not stat.S_ISREG(info.st_mode):
                raise InvalidParameter('manifest %s is not a regular file' % path)
            size = info.st_size
            if size > MAX_MANIFEST_BYTES:
                raise InvalidParameter('manifest %s is %d bytes, more than the %d (4 MiB) a manifest may have'
                                       % (path, size, MAX_MANIFEST_BYTES))
            data = f.read(MAX_MANIFEST_BYTES + 1)   # it may have grown since fstat
        if len(data) > MAX_MANIFEST_BYTES:
            raise InvalidParameter('manifest %s is more than the %d bytes (4 MiB) a manifest may have'
                                   % (path, MAX_MANIFEST_BYTES))
        manifest = json.loads(data.decode('utf-8'))
    except FileNotFoundError:
        raise InvalidParameter('manifest path does not exist: "%s"' % path)
    except OSError as e:
        raise InvalidParameter('cannot read manifest %s: %s' % (path, e.strerror))
    except (ValueError, RecursionError) as e:
        # RecursionError: thousands of nested arrays; ValueError also covers bad UTF-8 and huge integers
        raise InvalidParameter('manifest %s is invalid: %s' % (path, e))
    if not isinstance(manifest, dict):
        raise InvalidParameter('manifest %s is invalid: it is not a JSON object' % path)
    try:
        manifest = upgrade_manifest(manifest)
    except ManifestError as e:
        raise InvalidParameter('manifest %s is invalid: %s' % (path, e))
    if not manifest.get('published_at'):
        # imgadm install: a manifest without published_at is published now
        manifest['published_at'] = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.000Z')
    problems = minimal_problems(manifest)
    named = {p.split(' ')[0] for p in problems}
    problems += [p for p in import_problems(manifest, manifest.get('uuid'))
                 if p.split(' ')[0] not in named | {'uuid'}]
    # imgadm install's validateMinimalManifest checks every other field present too (reference 6.4)
    problems += [p for p in manifest_problems(manifest, required=()) if _field(p) not in _CHECKED]
    if problems:
        raise InvalidParameter('manifest %s is invalid: %s' % (path, '; '.join(problems)), problems=problems)
    return manifest


def verify_local_file(path, manifest):
    """imgadm install: the file's size and SHA-1 must match the manifest, checked before receiving."""
    entry = manifest['files'][0]
    try:
        size = os.path.getsize(path)
        if size != entry['size']:
            raise ImageError('image file size error: manifest says %d bytes, %s is %d bytes' % (entry['size'], path, size))
        digest = hashlib.sha1()
        with open(path, 'rb') as f:
            for block in iter(lambda: f.read(READ_SIZE), b''):
                digest.update(block)
    except FileNotFoundError:
        raise InvalidParameter('file path does not exist: "%s"' % path)
    except OSError as e:
        raise ImageError('cannot read image file %s: %s' % (path, e.strerror))
    if digest.hexdigest() != entry['sha1'].lower():
        raise ImageError('image file checksum (sha1) error: manifest says "%s", %s is "%s"'
                         % (entry['sha1'].lower(), path, digest.hexdigest()))
