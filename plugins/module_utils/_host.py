# Private to the smartos.images collection: not a public API.
# Where imgadm keeps things on a host: paths, per-image locks, atomic writes.
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import stat
import tempfile
import time

from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError

LOCK_POLL = 0.25
LOCK_WAIT_MAX = 3600
# tempfile.mkstemp's random part: 8 characters of this set (what prepare_atomic adds to a name)
TEMP_SUFFIX_RE = r'\.[a-z0-9_]{8}'
ORIGINAL_RECORD_RE = re.compile(r'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.json\Z')


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

    def import_lock_path(self, uuid):
        """imgadm: /var/run/img.<uuid>.import.lock."""
        return self._path('var', 'run', 'img.%s.import.lock' % uuid)

    @property
    def original_db_dir(self):
        """The original (v1) imgadm's database directory, from the seed wiki page."""
        return self._path('var', 'db', 'imgadm')

    @property
    def sources_list(self):
        return self._path('var', 'db', 'imgadm', 'sources.list')

    @property
    def imgcache(self):
        return self._path('var', 'db', 'imgadm', 'imgcache.json')

    def original_manifest(self, uuid):
        """imgadm v1: /var/db/imgadm/<uuid>.json (no pool in the name)."""
        return self._path('var', 'db', 'imgadm', '%s.json' % uuid)

    def original_records(self):
        """The UUIDs with an imgadm v1 record in /var/db/imgadm: what imgadm's upgrade to 2.0.0 still reads."""
        try:
            names = os.listdir(self.original_db_dir)
        except OSError:
            return []
        return sorted(name[:-5] for name in names if ORIGINAL_RECORD_RE.match(name))


LAYOUTS = ('modern', 'original')


def detect_layout(paths, forced='auto'):
    """Which imgadm layout the host has: 'original' only where /var/db/imgadm exists and /var/imgadm does not.

    On a modern host, a leftover /var/db/imgadm/sources.list still counts once, as imgadm's upgrade imports it:
    _sources.ModernSources, the one reader of a modern host's sources, applies that rule (reference 1.3)."""
    if forced and forced != 'auto':
        return forced
    if os.path.isdir(paths.db_dir):
        return 'modern'
    if os.path.exists(paths.sources_list) or os.path.isdir(paths.original_db_dir):
        return 'original'
    return 'modern'


@contextlib.contextmanager
def file_lock(path, wait_max=LOCK_WAIT_MAX, what='lock'):
    """Hold an fcntl write lock on path (created if needed); yield the seconds spent waiting."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        # imgadm (qlocker) opens 'w+' mode 0644 and takes an fcntl F_WRLCK; lockf is the same family. A symlink
        # planted as the lock is not followed (it would create a file wherever it points).
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, 'O_NOFOLLOW', 0), 0o644)
    except OSError as e:
        raise host_error('cannot open the %s' % what, path, e)
    started = time.monotonic()
    try:
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EDEADLK, errno.ENOLCK):
                    raise
            if time.monotonic() - started >= wait_max:
                raise ImageError('timed out after %ds waiting for the %s %s held by another process'
                                 % (wait_max, what, path), path=path)
            time.sleep(LOCK_POLL)
        yield time.monotonic() - started
    finally:
        os.close(fd)  # closing the fd drops the lock; imgadm never removes its lock files either


def hold_import_lock(path, wait_max=LOCK_WAIT_MAX):
    """imgadm's per-image import lock, held for the with block."""
    return file_lock(path, wait_max, 'import lock')


def write_atomic(path, data, mode=None):
    """Write bytes to path through a temp file in the same directory, fsync, rename."""
    pending = PendingFile(path)
    pending.prepare(data, mode)
    pending.commit()


def prepare_atomic(path, data, mode=None):
    """Write data to a temp file beside path and return its name (commit or discard it)."""
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, exist_ok=True)
        if mode is None:
            try:
                mode = os.stat(path).st_mode & 0o7777
            except FileNotFoundError:
                mode = 0o644
        fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=directory)
    except OSError as e:
        raise host_error('cannot write', path, e)
    with _discarded_on_error(tmp, path):
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
    return tmp


def commit_atomic(tmp, path):
    """Move a prepared temp file into place; on failure the temp file is removed."""
    with _discarded_on_error(tmp, path):
        os.replace(tmp, path)


@contextlib.contextmanager
def _discarded_on_error(tmp, path):
    """On any error in the block the temp file goes; an OSError becomes 'cannot write path'."""
    try:
        yield
    except OSError as e:
        _discard_quietly(tmp)
        raise host_error('cannot write', path, e)
    except BaseException:
        _discard_quietly(tmp)
        raise


def _discard_quietly(path):
    """Remove a temp file while another error is on its way: that error is what the user needs."""
    try:
        discard(path)
    except ImageError:
        pass


def lock_is_free(path):
    """True when nobody holds the fcntl lock on path (a missing file is free); never creates the file."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return True
    except OSError as e:
        raise host_error('cannot open the lock', path, e)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES, errno.EDEADLK, errno.ENOLCK):
            return False
        raise host_error('cannot test the lock', path, e)
    finally:
        os.close(fd)


def stale_temp_files(directory, pattern, older_than, now=None):
    """(path, group 1) of the files in directory whose whole name matches pattern and whose mtime is
    more than older_than seconds ago: temporary files that a killed writer left behind."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    except OSError as e:
        raise host_error('cannot list', directory, e)
    regex = re.compile(pattern + r'\Z')
    now = time.time() if now is None else now
    found = []
    for name in sorted(names):
        match = regex.match(name)
        if not match:
            continue
        path = os.path.join(directory, name)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue  # its writer committed or removed it meanwhile
        except OSError as e:
            raise host_error('cannot read', path, e)
        if stat.S_ISREG(st.st_mode) and now - st.st_mtime > older_than:
            found.append((path, match.group(1)))
    return found


def discard(path):
    """Remove a file if it exists."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise host_error('cannot remove', path, e)


class NotRegularFile(ImageError):
    """A directory, FIFO, device or socket where a regular file is read."""


def read_regular_file(path, limit=None):
    """A regular file's bytes; None when it does not exist. ValueError when it holds more than limit bytes;
    NotRegularFile when it is no regular file (a FIFO in a cache file's place would block the run for ever)."""
    try:
        # O_NONBLOCK: a FIFO opens at once (and is refused) instead of waiting for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, 'O_NOCTTY', 0))
    except FileNotFoundError:
        return None
    except OSError as e:
        raise host_error('cannot read', path, e)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise NotRegularFile('cannot read %s: Is a directory' % path, path=path)
        if not stat.S_ISREG(mode):
            raise NotRegularFile('cannot read %s: not a regular file (%s)'
                                 % (path, 'a FIFO' if stat.S_ISFIFO(mode) else 'a device or socket'), path=path)
        with os.fdopen(fd, 'rb') as f:
            fd = None
            data = f.read() if limit is None else f.read(limit + 1)
    except OSError as e:
        raise host_error('cannot read', path, e)
    finally:
        if fd is not None:
            os.close(fd)
    if limit is not None and len(data) > limit:
        raise ValueError('%s is larger than %d bytes' % (path, limit))
    return data


def read_json(path, limit=None):
    """Parse a JSON file (of at most limit bytes); None when it does not exist."""
    data = read_regular_file(path, limit)
    if data is None:
        return None
    try:
        return json.loads(data.decode('utf-8'))
    except RecursionError:
        raise ValueError('%s: JSON nested too deeply' % path)


def json_bytes(document, newline=False, **layout):
    """A JSON file's bytes as imgadm's JSON.stringify and fs.writeFileSync make them: UTF-8, non-ASCII characters
    as themselves (ensure_ascii=False), the layout (indent, separators, ...) as asked, and a final newline if asked.

    A lone surrogate ("\\ud800" is valid JSON, and json.loads makes it a str of its own) has no UTF-8 form: it is
    written as its escape, as JSON.stringify writes it, and reads back the same. That is right wherever it stands:
    json.dumps writes every str (key or value) inside quotes and escapes each backslash of it, so the surrogate is
    inside a JSON string and never right after an escaping backslash. UTF-8 encodes every other character, so the
    bytes of a document without lone surrogates are exactly json.dumps's, encoded."""
    text = json.dumps(document, ensure_ascii=False, **layout)
    if newline:
        text += '\n'
    return text.encode('utf-8', 'backslashreplace')


LONE_SURROGATE_RE = re.compile('[\ud800-\udfff]')


def without_lone_surrogates(value):
    """value (a module's result: dicts, lists, strings, ...) with each lone surrogate of its strings, keys too,
    replaced by U+FFFD: ansible-core's controller refuses a module result holding one (it has no UTF-8 form), and
    U+FFFD is what imgadm shows for it (node writes it so as UTF-8). Values without one are returned as they are."""
    if isinstance(value, str):
        return LONE_SURROGATE_RE.sub('\ufffd', value)
    if isinstance(value, dict):
        return dict((without_lone_surrogates(k), without_lone_surrogates(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(without_lone_surrogates(v) for v in value)
    return value


def hash_file(path, digests, chunk, limit=None, follow=True):
    """Feed path's bytes (its first `limit` bytes when given) to digests (anything with update()), `chunk` bytes a
    read, so memory stays bounded; return how many bytes there were. follow=False opens it without following a
    symbolic link. OSError as open and read raise it."""
    flags = os.O_RDONLY | (0 if follow else getattr(os, 'O_NOFOLLOW', 0))
    done = 0
    with os.fdopen(os.open(path, flags), 'rb') as f:
        while limit is None or done < limit:
            data = f.read(chunk if limit is None else min(chunk, limit - done))
            if not data:
                break
            digests.update(data)
            done += len(data)
    return done


def host_error(what, path, error):
    """An ImageError for a failed file operation on the host."""
    return ImageError('%s %s: %s' % (what, path, error.strerror or error), path=path)


def image_info_json(manifest, pool, source):
    """imgadm's cache file body: JSON.stringify({manifest, zpool, source}, null, 2) + newline."""
    info = {'manifest': manifest, 'zpool': pool}
    if source:
        info['source'] = source
    return json_bytes(info, indent=2, newline=True)


class PendingFile:
    """The one file transaction: a file written under a temporary name beside its final one (prepare, or adopt a
    temporary file written elsewhere), then moved into place (commit) or removed (abort)."""

    def __init__(self, path):
        self.path = path
        self.tmp = None

    def prepare(self, data, mode=None):
        """Write data under a temporary name (fsynced): nothing is at path yet."""
        self.tmp = prepare_atomic(self.path, data, mode)

    def adopt(self, tmp):
        """Take over a temporary file written beside path by other means (a stream)."""
        self.tmp = tmp

    def commit(self):
        """Move the temporary file into place; on failure it is removed (abort makes sure)."""
        commit_atomic(self.tmp, self.path)
        self.tmp = None

    def abort(self):
        """Remove the temporary file, if any; the final file is left as it was."""
        tmp, self.tmp = self.tmp, None
        if tmp:
            discard(tmp)


class CacheRecord:
    """A manifest file that is committed together with the image dataset, or not at all."""

    def __init__(self, path, data):
        self.path = path
        self.data = data
        self.pending = PendingFile(path)

    @property
    def tmp(self):
        """The temporary file while prepared and not yet committed or aborted."""
        return self.pending.tmp

    def prepare(self):
        """Write the file under a temporary name beside its final one."""
        self.pending.prepare(self.data)

    def commit(self, zfs, dataset):
        """The dataset has its final name: move the file into place."""
        self.pending.commit()

    def abort(self):
        self.pending.abort()

    def write(self):
        """Replace the file of an image that is already installed."""
        write_atomic(self.path, self.data)

    def record(self, zfs, dataset):
        """Record an image that is installed without its file (an import killed before its commit)."""
        self.prepare()
        try:
            self.commit(zfs, dataset)
        except BaseException:
            self.abort()
            raise


def modern_record(paths, pool, manifest, source_url):
    """imgadm's cache of an installed image: /var/imgadm/images/<pool>-<uuid>.json."""
    return CacheRecord(paths.image_cache(pool, manifest['uuid']), image_info_json(manifest, pool, source_url))


class OriginalRecord(CacheRecord):
    """imgadm v1's record: /var/db/imgadm/<uuid>.json and the imgadm:uuid property on the dataset."""

    def __init__(self, paths, manifest):
        # imgadm v1 db.save: JSON.stringify(manifest, null, '  '), no trailing newline
        super().__init__(paths.original_manifest(manifest['uuid']),
                         json_bytes(manifest, indent=2))
        self.uuid = manifest['uuid']

    def commit(self, zfs, dataset):
        zfs.set_property(dataset, 'imgadm:uuid', self.uuid)
        super().commit(zfs, dataset)
