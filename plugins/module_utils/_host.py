# Private to the smartos.images collection: not a public API.
# Where imgadm keeps things on a host: paths, per-image locks, atomic writes.
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import tempfile
import time

from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError

LOCK_POLL = 0.25
LOCK_WAIT_MAX = 3600


class HostPaths:
    """imgadm's file locations under a host root ('/' on a real host)."""

    def __init__(self, root='/'):
        self.root = root or '/'

    def _path(self, *parts):
        return os.path.join(self.root, *parts)

    @property
    def db_dir(self):
        return self._path('var', 'imgadm')

    @property
    def config(self):
        return self._path('var', 'imgadm', 'imgadm.conf')

    def image_cache(self, pool, uuid):
        """imgadm: /var/imgadm/images/<zpool>-<uuid>.json."""
        return self._path('var', 'imgadm', 'images', '%s-%s.json' % (pool, uuid))

    def import_lock(self, uuid):
        """imgadm: /var/run/img.<uuid>.import.lock."""
        return self._path('var', 'run', 'img.%s.import.lock' % uuid)


@contextlib.contextmanager
def import_lock(path, wait_max=LOCK_WAIT_MAX):
    """Hold imgadm's per-image fcntl write lock; yield the seconds spent waiting."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # imgadm (qlocker) opens 'w+' mode 0644 and takes an fcntl F_WRLCK; lockf is the same family.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    started = time.monotonic()
    try:
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EDEADLK, errno.ENOLCK):
                    raise
            if time.monotonic() - started > wait_max:
                raise ImageError('timed out after %ds waiting for the import lock %s held by '
                                 'another import of this image' % (wait_max, path))
            time.sleep(LOCK_POLL)
        yield time.monotonic() - started
    finally:
        os.close(fd)  # closing the fd drops the lock; imgadm never removes the file either


def write_atomic(path, data, mode=None):
    """Write bytes to path through a temp file in the same directory, fsync, rename."""
    prepared = prepare_atomic(path, data, mode)
    commit_atomic(prepared, path)


def prepare_atomic(path, data, mode=None):
    """Write data to a temp file beside path and return its name (commit or discard it)."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    if mode is None:
        try:
            mode = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o644
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
    except BaseException:
        discard(tmp)
        raise
    return tmp


def commit_atomic(tmp, path):
    """Move a prepared temp file into place."""
    os.replace(tmp, path)


def discard(path):
    """Remove a file if it exists."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def read_json(path):
    """Parse a JSON file; None when it does not exist."""
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except FileNotFoundError:
        return None
    return json.loads(data.decode('utf-8'))


def image_info_json(manifest, pool, source):
    """imgadm's cache file body: JSON.stringify({manifest, zpool, source}, null, 2) + newline."""
    info = {'manifest': manifest, 'zpool': pool}
    if source:
        info['source'] = source
    return (json.dumps(info, indent=2, ensure_ascii=False) + '\n').encode('utf-8')
