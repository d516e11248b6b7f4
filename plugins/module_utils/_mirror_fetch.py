# Private to the smartos.images collection: not a public API.
# One image file into the mirror: file.partial, hashed as it arrives (and resumed), renamed into place when verified.
from __future__ import annotations

import hashlib
import os

from ansible_collections.smartos.images.plugins.module_utils import _host
from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, SourceError
from ansible_collections.smartos.images.plugins.module_utils._importer import (
    CHUNK, content_md5, digest_error, open_sized, read_file, resume_at,
)
from ansible_collections.smartos.images.plugins.module_utils._mirror_store import FILE, PARTIAL


class _Digests:
    """The digest the file is checked with (SHA-1 of the manifest, else MD5 for Content-MD5), and its SHA-1."""

    def __init__(self, checked_by_sha1):
        self.sha1 = hashlib.sha1()
        self.checked = self.sha1 if checked_by_sha1 else hashlib.md5()

    def update(self, data):
        self.sha1.update(data)
        if self.checked is not self.sha1:
            self.checked.update(data)


def fetch(store, found, retries, pause):
    """Bring found's file to images/<uuid>/file, verified; return (stored manifest, bytes downloaded).

    A file.partial left by a killed run is hashed and resumed (Range) when the manifest has a SHA-1; without one
    the file is checked by the answer's Content-MD5, which covers a whole file only, so it starts over."""
    manifest = found.manifest
    uuid = manifest['uuid']
    size, want_sha1 = manifest['files'][0]['size'], manifest['files'][0].get('sha1')
    partial = store.file_of(uuid, PARTIAL)
    store.check_image_dir(uuid)
    have, digests = _kept_bytes(found.client, uuid, size, want_sha1, partial, store.partial_size(uuid))
    received = have
    if have < size:
        _check_space(store.image_dir(uuid), uuid, size - have)
        received, digests, have = _fill(found.client, uuid, size, want_sha1, partial, have, digests, retries, pause)
    stored = manifest
    if not want_sha1:
        # hosts need a checksum; nginx sends no Content-MD5. Copied one level (not deepcopy: a manifest may nest
        # deeper than Python's recursion limit lets deepcopy walk)
        stored = dict(manifest, files=[dict(manifest['files'][0], sha1=digests.sha1.hexdigest())]
                      + list(manifest['files'][1:]))
    try:
        os.replace(partial, store.file_of(uuid, FILE))
    except OSError as e:
        raise _host.host_error('cannot rename', partial, e)
    store.commit_image(stored, size)
    return stored, received - have


def _kept_bytes(client, uuid, size, want_sha1, partial, have):
    """(bytes of the partial file worth keeping, the digests over them): none without a SHA-1 to check them by,
    none when there are more than the file has, none when they are the whole file but not the image."""
    digests = _Digests(bool(want_sha1))
    if not want_sha1 or have > size:
        return 0, digests
    have = _hash_partial(partial, have, digests) if have else 0
    if have == size and digest_error(client, uuid, digests.checked, want_sha1, None) is not None:
        return 0, _Digests(True)
    return have, digests


def _fill(client, uuid, size, want_sha1, partial, have, digests, retries, pause):
    """Download the rest into partial: (bytes reached, digests, byte it started from). Resumed bytes that turn out
    not to be the image's, or a resume the server refuses (an HTTP error such as 416, or a 206 whose Content-Range
    starts past the byte asked, which every later run would get again), are dropped, and the file is downloaded
    once from the start; a server that cannot be reached, or a connection that keeps breaking, keeps the partial
    for the next run."""
    if have:
        stream = _resumed(client, uuid, have)
        received = None
        if stream is not None:
            received = _download(client, uuid, size, want_sha1, partial, have, digests, retries, pause, stream)
        if received is not None:
            return received, digests, have
        _host.discard(partial)
        digests = _Digests(bool(want_sha1))
    return _download(client, uuid, size, want_sha1, partial, 0, digests, retries, pause), digests, 0


def _resumed(client, uuid, have):
    """The file reopened at byte have, or None when the server answers the resume with something else than those
    bytes (an HTTP error, a Content-Range elsewhere, a body that ends before them): starting over is the way on.
    A server that cannot be reached raises: the kept bytes are as good as they were."""
    try:
        return resume_at(client, uuid, have)
    except ConnectionError:
        return None   # resume_at's refusal of the answer (or a body that ended before the byte asked)
    except SourceError as e:
        if e.evidence.get('status') is None:
            raise
        return None


def _check_space(directory, uuid, need):
    """Refuse, before any byte arrives, a file larger than the free space of the mirror's file system."""
    try:
        st = os.statvfs(directory)
    except (OSError, AttributeError):
        return
    free = st.f_bavail * st.f_frsize
    if need > free:
        raise ImageError('image %s needs %d more bytes in %s, which has %d bytes free: free some space (prune) '
                         'or mirror it elsewhere' % (uuid, need, directory, free), path=directory)


def _hash_partial(path, have, digests):
    """Hash the first `have` bytes of a partial file; return how many there were."""
    try:
        return _host.hash_file(path, digests, CHUNK, limit=have)
    except OSError as e:
        raise _host.host_error('cannot read', path, e)


def _download(client, uuid, size, want_sha1, partial, have, digests, retries, pause, stream=None):
    """Download the rest of the file into partial by the one download rule (from the open stream of a resume, when
    have); the bytes downloaded, or None when a resumed file is not the image. The partial goes when the bytes
    are wrong, and stays (for the next run to resume) when the connection broke."""
    want_md5 = None
    if not have:
        _host.discard(partial)   # whatever is there (a symlink too) goes; the new file is made here
        stream = open_sized(client, uuid, size)
        want_md5 = None if want_sha1 else content_md5(stream, uuid, client)
    try:
        # never through a symlink: O_EXCL for a new file, O_NOFOLLOW for one resumed
        flags = os.O_WRONLY | (os.O_NOFOLLOW if have else os.O_CREAT | os.O_EXCL)
        with os.fdopen(os.open(partial, flags, 0o644), 'wb') as f:
            os.fchmod(f.fileno(), 0o644)   # readable by the web server's user whatever the umask the run has
            f.truncate(have)
            f.seek(have)
            received = read_file(client, uuid, stream, size, digests, f.write, retries, pause, received=have)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        if stream is not None:
            stream.close()
        raise _host.host_error('cannot write', partial, e)
    mismatch = digest_error(client, uuid, digests.checked, want_sha1, want_md5)
    if mismatch is not None:
        _host.discard(partial)
        if have:
            return None
        raise mismatch
    return received
