# Private to the smartos.images collection: not a public API.
# The output directory of smartos_image_create: file names, temporary files, and what is already written there.
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import socket
import stat
import tempfile

from ansible_collections.smartos.images.plugins.module_utils import _host
from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, InvalidParameter

MIB = 1 << 20
# most file systems (ZFS, UFS, ext4, tmpfs) allow 255 bytes per name; a temp name adds '.', '.<host>-<pid>.XXXXXXXX'
NAME_MAX = 255
TEMP_EXTRA = 27
# a manifest is a few kB; more (or a FIFO, a device, a directory) in its place is not one to read
MANIFEST_MAX = 8 * MIB


def file_prefix(name, version):
    """imgadm create's default output prefix, <name>-<version>, made safe as a file name."""
    # not one-to-one (a/b-1 and a-b/1 both give a-b-1): check_ownership refuses files another image's manifest claims
    return re.sub(r'[^A-Za-z0-9._+-]', '_', '%s-%s' % (name, version))


def shown(value, limit=60):
    """A value from outside, short and printable, for a message."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + '...'


def check_output_dir(path):
    """Refuse, before anything runs, an output directory that is not one or cannot be written."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise ImageError('output_dir %s cannot be made: %s is not a directory' % (path, probe), path=path)
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ImageError('output_dir %s cannot be written (%s is not writable%s)'
                         % (path, probe, ', or on a read-only file system' if probe == os.path.abspath(path) else ''),
                         path=path)


def check_name_length(paths):
    """Refuse, before anything runs, file names too long for the file system (with the temporary name's extra)."""
    for path in paths:
        size = len(os.path.basename(path).encode('utf-8', 'surrogateescape'))
        if size + TEMP_EXTRA > NAME_MAX:
            raise InvalidParameter('the file name %s is %d bytes long; with the temporary name\'s %d more it exceeds '
                                   'the %d bytes a file system allows: shorten the name or version'
                                   % (os.path.basename(path), size, TEMP_EXTRA, NAME_MAX), path=path)


def write_error(path, error):
    """An ImageError for a failed write of an output file, saying what to do about a full disk."""
    full = error.errno in (errno.ENOSPC, getattr(errno, 'EDQUOT', errno.ENOSPC))
    advice = (' (the file system or a quota is full: free some space in %s, or give another output_dir)'
              % os.path.dirname(path)) if full else ''
    return ImageError('cannot write %s: %s%s' % (path, error.strerror or error, advice), path=path)


def write_all(fd, data, path):
    """os.write until every byte is written (a write may take fewer)."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except OSError as e:
        raise write_error(path, e)


def close_fd(fd, path):
    """Close an output file; some file systems report a failed write only here."""
    try:
        os.close(fd)
    except OSError as e:
        raise write_error(path, e)


def host_tag():
    """8 hex digits naming this host in a temporary file's name (an output_dir may be shared between hosts)."""
    return hashlib.sha1(socket.gethostname().encode('utf-8', 'replace')).hexdigest()[:8]


def orphaned_temps(prefix):
    """Temporary image files of prefix left by runs on this host whose process is gone (killed with SIGKILL)."""
    directory, base = os.path.split(prefix)
    pattern = re.compile(r'\.%s(\.zfs|\.zvol)(\.gz|\.bz2|\.xz)?\.%s-(\d+)\.[a-z0-9_]{8}\Z'
                         % (re.escape(base), host_tag()))
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    found = []
    for name in names:
        match = pattern.match(name)
        if match and not process_exists(int(match.group(3))) and os.path.isfile(os.path.join(directory, name)):
            found.append(os.path.join(directory, name))
    return found


def process_exists(pid):
    """True while the process runs. A zombie (killed, not yet reaped) is gone: it writes nothing any more, and
    check mode, run a moment after the kill, must see what the real run sees once the zombie is reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass            # another user's: it exists, unless it is a zombie
    try:
        with open('/proc/%d/stat' % pid, 'rb') as f:
            # Linux: "pid (comm) S ...", the state after the last ')' (comm may hold spaces and parentheses)
            return f.read().rsplit(b')', 1)[1].split()[0] != b'Z'
    except (OSError, IndexError):
        return True     # no Linux /proc (SmartOS has psinfo): kill(0) said it exists


def open_temp(path):
    """A temporary file beside path (made with the directory if needed), named for this host and process: (fd, name)."""
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix='.%s.%s-%d.' % (os.path.basename(path), host_tag(), os.getpid()),
                                   dir=directory)
        os.fchmod(fd, 0o644)
    except OSError as e:
        raise _host.host_error('cannot write', path, e)
    return fd, tmp


class NotAManifestFile(ValueError):
    """Something at a manifest's path that is not a regular file of a manifest's size."""


def read_json_file(path, limit=MANIFEST_MAX):
    """JSON from a regular file of at most limit bytes; None when there is none, NotAManifestFile when it is not one."""
    try:
        # O_NONBLOCK: a FIFO in a manifest's place opens at once (and is refused) instead of waiting for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, 'O_NOCTTY', 0))
    except FileNotFoundError:
        return None
    except OSError as e:
        raise _host.host_error('cannot read', path, e)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = 'a directory' if stat.S_ISDIR(mode) else 'a FIFO' if stat.S_ISFIFO(mode) else 'a device or socket'
        raise NotAManifestFile('it is not a regular file (%s)' % kind)
    with os.fdopen(fd, 'rb') as f:
        try:
            data = f.read(limit + 1)
        except OSError as e:
            raise _host.host_error('cannot read', path, e)
    if len(data) > limit:
        raise NotAManifestFile('it is larger than the %d MiB a manifest may be' % (limit // MIB))
    return json.loads(data.decode('utf-8'))


def read_manifest(path):
    """The manifest already at path, or None when there is none (or it is not JSON: it will be replaced)."""
    try:
        manifest = read_json_file(path)
    except NotAManifestFile as e:
        raise ImageError('%s is in the way of this image\'s manifest: %s; nothing was changed; remove it, or write '
                         'this image to another output_dir' % (path, e), path=path)
    except (ValueError, RecursionError, ImageError):
        return None
    return manifest if isinstance(manifest, dict) else None


def existing_entry(manifest):
    """The first files entry of a manifest already written, or None."""
    files = (manifest or {}).get('files')
    if isinstance(files, list) and files and isinstance(files[0], dict):
        return files[0]
    return None


def file_size(path):
    """The size of a file, None when there is none."""
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def file_bytes(path):
    """What an output file holds now, None when it cannot be read (it will be written again)."""
    try:
        with open(path, 'rb') as f:
            return f.read()
    except OSError:
        return None
