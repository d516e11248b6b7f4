# Private to the smartos.images collection: not a public API.
# The mirror's directory, read as hostile: images/<uuid>/manifest.json and file, images.json, ping.json, the lock.
from __future__ import annotations

import hashlib
import os
import shutil
import stat

from ansible_collections.smartos.images.plugins.module_utils import _host
from ansible_collections.smartos.images.plugins.module_utils._host import json_bytes
from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, SourceError
from ansible_collections.smartos.images.plugins.module_utils._manifest import (
    SHA1_RE, check_importable, is_uuid, label, upgrade_manifest,
)
from ansible_collections.smartos.images.plugins.module_utils._resolver import listing_problem

COLLECTION_VERSION = '0.1.0'         # ping.json's "version": galaxy.yml's version (a unit test keeps them equal)
MANIFEST_MAX = 1 << 20               # as _imgapi.MANIFEST_MAX_BYTES: a stored manifest is no bigger than a served one
DIR_MODE = 0o755                     # every directory the store makes: nginx's worker (another user) walks through it
HASH_CHUNK = 1 << 20                 # bytes read per call when a kept file is hashed (verify): memory stays bounded
LOCK_WAIT = 3600                     # seconds a run waits for another run of the same mirror to end
FILE = 'file'
PARTIAL = 'file.partial'
MANIFEST = 'manifest.json'


def serialize(document):
    """JSON as IMGAPI serializes it: compact, keys in their order, UTF-8, no trailing newline (ValueError for
    NaN or Infinity, which Python reads but no JSON parser of a host does).

    A lone surrogate (a string of upstream's JSON may hold one: "\\ud800" is valid JSON) has no UTF-8 form: it is
    written as that escape again, as IMGAPI's JSON.stringify writes it, so the mirror serves what upstream did and
    reads it back the same (_host.json_bytes, the rule of every JSON file this collection writes)."""
    return json_bytes(document, separators=(',', ':'), allow_nan=False)


def serving_problem(manifest):
    """Why a (checked, v2) manifest cannot be served in the mirror's listing (None when it can): hosts skip a
    listed entry whose fields have the wrong type, and no host parses NaN."""
    problem = listing_problem(manifest)
    if problem is None:
        try:
            serialize(manifest)
        except (ValueError, TypeError) as e:
            problem = 'it cannot be written as JSON (%s)' % str(e)[:100]
    return problem


def ping_document():
    return serialize({'ping': 'pong', 'imgapi': True, 'version': COLLECTION_VERSION})


def sort_key(manifest):
    """IMGAPI ListImages' default order: published_at ascending, then uuid."""
    published = manifest.get('published_at')
    return (published if isinstance(published, str) else '', manifest['uuid'])


def line(manifest):
    """'uuid name@version': one image in a diff."""
    return '%s %s' % (manifest['uuid'], label(manifest))


class Mirrored:
    """One complete image of the mirror: its manifest and the size of its file."""

    def __init__(self, manifest, size):
        self.manifest, self.size = manifest, size
        self.uuid = manifest['uuid']

    @property
    def origin(self):
        return self.manifest.get('origin')

    def entry(self, size=None):
        """{uuid, name, version, bytes}: one image in the result."""
        return {'uuid': self.uuid, 'name': self.manifest.get('name'), 'version': self.manifest.get('version'),
                'bytes': self.size if size is None else size}


class MirrorStore:
    """The layout under path (see the module's documentation): read, checked, repaired, written atomically."""

    def __init__(self, path):
        self.path = path
        self.images_dir = os.path.join(path, 'images')
        self.complete = {}      # uuid -> Mirrored
        self.broken = {}        # uuid -> why the image directory cannot be served as it is
        self.partial = set()    # uuids of image directories without a manifest.json (a download under way)
        self.orphans = set()    # those of them that hold a file: it is served by nobody until it is checked
        self.stray = []         # entries of images/ that are no image directory
        self.leftovers = []     # temporary files left by killed runs

    def image_dir(self, uuid):
        return os.path.join(self.images_dir, uuid)

    def file_of(self, uuid, name=FILE):
        return os.path.join(self.images_dir, uuid, name)

    # ---- reading ----

    def exists(self):
        """True when path is a directory; an error when it is something else."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        except OSError as e:
            raise _host.host_error('cannot read', self.path, e)
        if not stat.S_ISDIR(st.st_mode):
            raise ImageError('path %s is not a directory: give the directory of the mirror' % self.path,
                             path=self.path)
        return True

    def scan(self):
        """Read every entry of images/: complete images, broken ones (and why), partial ones, strays."""
        if not self.exists():
            return self
        self.leftovers = [os.path.join(self.path, n) for n in _listdir(self.path) if n.startswith('.')
                          and n != '.lock']
        if not os.path.lexists(self.images_dir):
            return self
        if not os.path.isdir(self.images_dir):
            raise ImageError('%s is not a directory: move it away, the mirror keeps its images there'
                             % self.images_dir, path=self.images_dir)
        for name in _listdir(self.images_dir):
            path = os.path.join(self.images_dir, name)
            if not is_uuid(name) or os.path.islink(path) or not os.path.isdir(path):
                self.stray.append(name)
                continue
            self._scan_image(name)
        return self

    def _scan_image(self, uuid):
        names = _listdir(self.image_dir(uuid))
        self.leftovers.extend(self.file_of(uuid, n) for n in names if n.startswith('.'))
        if MANIFEST not in names:
            self.partial.add(uuid)
            if FILE in names:
                self.orphans.add(uuid)   # a killed run renamed the file into place but wrote no manifest.json
            return
        manifest, why = self._read_manifest(uuid)
        size = None
        if why is None:
            size, why = self._file_size(uuid, manifest)
        if why is None:
            self.complete[uuid] = Mirrored(manifest, size)
        else:
            self.broken[uuid] = why

    def _read_manifest(self, uuid):
        """(manifest, None), or (None, why it cannot be served)."""
        path = self.file_of(uuid, MANIFEST)
        try:
            st = os.lstat(path)
        except OSError as e:
            return None, 'its manifest.json cannot be read: %s' % (e.strerror or e)
        if not stat.S_ISREG(st.st_mode):
            # a symlink is none of the mirror's (it writes none) and nginx follows none: the image is not served
            return None, 'its manifest.json is not a regular file'
        try:
            raw = _host.read_json(path, MANIFEST_MAX)
            manifest = upgrade_manifest(raw)
        except (ValueError, ImageError) as e:
            return None, 'its manifest.json cannot be read: %s' % (getattr(e, 'msg', None) or str(e))[:200]
        try:
            check_importable(manifest, uuid, path)
        except SourceError as e:
            return None, 'its manifest.json is unusable: %s' % e.msg.split(': ', 1)[-1][:300]
        if manifest.get('v') != 2 or manifest != raw:
            return None, 'its manifest.json is not a v2 manifest'
        if not isinstance(manifest['files'][0].get('sha1'), str) or not SHA1_RE.match(manifest['files'][0]['sha1']):
            return None, 'its manifest.json has no files[0].sha1'
        problem = serving_problem(manifest)
        if problem:
            return None, 'its manifest.json is unusable: %s' % problem
        return manifest, None

    def _file_size(self, uuid, manifest):
        """(size of the file, None), or (None, why it does not match the manifest)."""
        try:
            st = os.lstat(self.file_of(uuid))
        except FileNotFoundError:
            return None, 'its file is missing'
        except OSError as e:
            return None, 'its file cannot be read: %s' % (e.strerror or e)
        if not stat.S_ISREG(st.st_mode):
            return None, 'its file is not a regular file'
        want = manifest['files'][0]['size']
        if st.st_size != want:
            return None, 'its file is %d bytes, its manifest says %d' % (st.st_size, want)
        return st.st_size, None

    def file_damage(self, uuid, manifest):
        """Why images/<uuid>/file is not the manifest's file by its size and SHA-1 (None when it is): read-only,
        in chunks of HASH_CHUNK bytes, never through a symlink."""
        want = manifest['files'][0]
        digest = hashlib.sha1()
        try:
            size = _host.hash_file(self.file_of(uuid), digest, HASH_CHUNK, follow=False)
        except FileNotFoundError:
            return 'its file is missing'
        except OSError as e:
            return 'its file cannot be read: %s' % (e.strerror or e)
        if size != want['size']:
            return 'its file is %d bytes, its manifest says %d' % (size, want['size'])
        if digest.hexdigest() != want['sha1'].lower():
            return 'the SHA-1 of its file is %s, its manifest says %s' % (digest.hexdigest(), want['sha1'].lower())
        return None

    def partial_size(self, uuid):
        """Bytes of images/<uuid>/file.partial (0 when there is none, or it is no regular file)."""
        try:
            st = os.lstat(self.file_of(uuid, PARTIAL))
        except OSError:
            return 0
        return st.st_size if stat.S_ISREG(st.st_mode) else 0

    # ---- writing ----

    def create(self, images=False):
        """Make path (where the lock lives), and images/."""
        target = self.images_dir if images else self.path
        try:
            make_dirs(target)
        except OSError as e:
            raise _host.host_error('cannot create', target, e)

    def lock(self):
        return _host.file_lock(os.path.join(self.path, '.lock'), LOCK_WAIT, 'mirror lock')

    def clean_leftovers(self):
        """Remove the temporary files of killed runs (the lock is held: no run owns them)."""
        for path in self.leftovers:
            _remove(path)
        self.leftovers = []

    def withdraw(self, uuid):
        """An image that cannot be served as it is: manifest.json goes, so nothing serves it; its file stays as
        file.partial (a later run hashes it and resumes, or starts over)."""
        _host.discard(self.file_of(uuid, MANIFEST))
        self.adopt_file(uuid)
        self.broken.pop(uuid, None)
        self.partial.add(uuid)

    def adopt_file(self, uuid):
        """A file left without its manifest.json by a killed run: kept as file.partial (unless a longer one is
        there), to be checked when the image is mirrored; nothing serves it meanwhile."""
        path = self.file_of(uuid)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        except OSError as e:
            raise _host.host_error('cannot read', path, e)
        if stat.S_ISREG(st.st_mode) and self.partial_size(uuid) < st.st_size:
            _rename(path, self.file_of(uuid, PARTIAL))
        else:
            _remove(path)
        self.orphans.discard(uuid)

    def check_image_dir(self, uuid):
        """Make images/<uuid> for a download; refuse one that is a symlink or no directory (it is not ours)."""
        path = self.image_dir(uuid)
        if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
            raise ImageError('%s is not a directory (a symlink or a file): move it away so that the image can be '
                             'mirrored there' % path, path=path)
        try:
            make_dirs(path)
        except OSError as e:
            raise _host.host_error('cannot create', path, e)

    def commit_image(self, manifest, size):
        """The verified file is in place: its manifest.json is written last, atomically."""
        _host.write_atomic(self.file_of(manifest['uuid'], MANIFEST), serialize(manifest), 0o644)
        self.complete[manifest['uuid']] = Mirrored(manifest, size)
        self.partial.discard(manifest['uuid'])

    def remove(self, uuid):
        """Remove an image: manifest.json first (it stops being served), then the rest."""
        _host.discard(self.file_of(uuid, MANIFEST))
        try:
            shutil.rmtree(self.image_dir(uuid))
        except FileNotFoundError:
            pass
        except OSError as e:
            raise _host.host_error('cannot remove', self.image_dir(uuid), e)
        self.complete.pop(uuid, None)
        self.broken.pop(uuid, None)
        self.partial.discard(uuid)

    def index(self):
        """images.json: every complete image's manifest, sorted as ListImages."""
        manifests = sorted((m.manifest for m in self.complete.values()), key=sort_key)
        return b'[' + b','.join(serialize(m) for m in manifests) + b']'

    def stale_documents(self):
        """The top-level documents (images.json, ping.json) whose content is not what it must be."""
        wanted = {'images.json': self.index(), 'ping.json': ping_document()}
        stale = {}
        for name, data in wanted.items():
            path = os.path.join(self.path, name)
            try:
                current = _host.read_regular_file(path, len(data))
            except (ValueError, ImageError):
                current = None
            if current != data:
                stale[name] = data
        return stale

    def write_documents(self, stale):
        for name, data in sorted(stale.items()):
            _host.write_atomic(os.path.join(self.path, name), data, 0o644)


def make_dirs(path):
    """os.makedirs(path, exist_ok=True), with every directory it makes DIR_MODE whatever the umask (under umask 077
    nginx's worker could not walk into them: 404 for every image). A directory that was there is left as it is."""
    missing, here = [], os.path.abspath(path)
    while not os.path.lexists(here) and len(missing) < 4096:   # bounded: a path has no more components
        missing.append(here)
        parent = os.path.dirname(here)
        if parent == here:
            break
        here = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, DIR_MODE)
        except FileExistsError:
            continue   # made meanwhile by someone else: its mode is theirs
        os.chmod(directory, DIR_MODE)
    os.makedirs(path, exist_ok=True)   # the same errors as before for a path that is a file


def _listdir(path):
    try:
        return sorted(os.listdir(path))
    except OSError as e:
        raise _host.host_error('cannot list', path, e)


def _rename(source, target):
    try:
        os.replace(source, target)
    except OSError as e:
        raise _host.host_error('cannot rename', source, e)


def _remove(path):
    """Remove a file, or a directory a killed run left (a temporary name starting with '.')."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise _host.host_error('cannot remove', path, e)
