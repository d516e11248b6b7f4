# Private to the smartos.images collection: not a public API.
# Installing from a manifest and an image file on the host (imgadm install -m -f).
from __future__ import annotations

import datetime
import hashlib
import json
import os

from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, InvalidParameter
from ansible_collections.smartos.images.plugins.module_utils._manifest import (
    ManifestError, import_problems, minimal_problems, upgrade_manifest,
)

READ_SIZE = 1 << 20


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


def load_local_manifest(path):
    """Read, upgrade (v1) and validate a manifest file as imgadm install does; list every bad field."""
    try:
        with open(path, 'rb') as f:
            manifest = json.loads(f.read().decode('utf-8'))
    except FileNotFoundError:
        raise InvalidParameter('manifest path does not exist: "%s"' % path)
    except OSError as e:
        raise InvalidParameter('cannot read manifest %s: %s' % (path, e.strerror))
    except ValueError as e:
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
    problems += [p for p in import_problems(manifest, manifest.get('uuid'))
                 if not p.startswith('uuid ') and p not in problems]
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
