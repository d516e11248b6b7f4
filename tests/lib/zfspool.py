"""Real ZFS for tests and the demo: the zfs-fuse daemon and file-backed pools.

Processes started here are stopped by their PID, never by name.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time

ZFS_FUSE = '/usr/sbin/zfs-fuse'


def zpool_answers():
    """True when the zfs-fuse daemon answers zpool commands."""
    try:
        r = subprocess.run(['zpool', 'list', '-H'], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0 or b'no pools available' in r.stdout + r.stderr


class ZfsFuse:
    """The zfs-fuse daemon: started here only when not already running, stopped by PID."""

    def __init__(self, pidfile='/run/smartos-images-zfs-fuse.pid', log='/var/tmp/zfs-fuse.log'):
        self.pidfile = pidfile
        self.log = log
        self.pid = None

    def start(self, wait=30):
        """Start the daemon unless zpool already answers; wait until it does."""
        if zpool_answers():
            return self
        os.makedirs(os.path.dirname(self.pidfile), exist_ok=True)
        with open(self.log, 'ab') as log:
            proc = subprocess.Popen([ZFS_FUSE, '--no-daemon', '--pidfile', self.pidfile],
                                    stdout=log, stderr=log, start_new_session=True)
        self.pid = proc.pid
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError('zfs-fuse exited with %s; see %s' % (proc.returncode, self.log))
            if zpool_answers():
                return self
            time.sleep(0.3)
        raise RuntimeError('zfs-fuse did not answer within %ds; see %s' % (wait, self.log))

    def stop(self, wait=20):
        """Stop the daemon this object started (by PID); a no-op otherwise."""
        if not self.pid:
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            self.pid = None
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                done, dummy = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                done = self.pid if not _alive(self.pid) else 0
            if done:
                break
            time.sleep(0.2)
        else:
            os.kill(self.pid, signal.SIGKILL)
        self.pid = None


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def run(*argv, check=True):
    """Run a zfs/zpool command; return stdout."""
    r = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if check and r.returncode != 0:
        raise RuntimeError('%s failed (%d): %s' % (' '.join(argv), r.returncode, r.stderr.strip()))
    return r.stdout


def retry_busy(*argv, attempts=20):
    """Run a zfs command that zfs-fuse may briefly refuse as busy."""
    for dummy in range(attempts):
        r = subprocess.run(list(argv), capture_output=True, text=True, check=False)
        if r.returncode == 0:
            return
        if 'busy' not in r.stderr:
            raise RuntimeError('%s failed: %s' % (' '.join(argv), r.stderr.strip()))
        time.sleep(0.25)
    raise RuntimeError('%s still busy' % ' '.join(argv))


class FilePool:
    """A pool on a sparse file: created (or re-imported) on demand, destroyed or exported after."""

    def __init__(self, name, path, size='2G'):
        self.name = name
        self.path = path
        self.size = size

    def exists(self):
        return subprocess.run(['zpool', 'list', '-H', self.name], capture_output=True, check=False).returncode == 0

    def create(self, fresh=True):
        """Create the pool; with fresh=False re-import an existing pool file instead."""
        if self.exists():
            if not fresh:
                return self
            self.destroy()
        if not fresh and os.path.exists(self.path):
            # -f: a daemon stopped without exporting leaves the pool marked in use; it is our own file
            r = subprocess.run(['zpool', 'import', '-f', '-d', os.path.dirname(self.path), self.name],
                               capture_output=True, text=True, check=False)
            if r.returncode == 0:
                return self
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        if os.path.exists(self.path):
            os.unlink(self.path)
        subprocess.run(['truncate', '-s', self.size, self.path], check=True)
        run('zpool', 'create', '-f', self.name, self.path)
        return self

    def destroy(self):
        if self.exists():
            retry_busy('zpool', 'destroy', '-f', self.name, attempts=40)
        if os.path.exists(self.path):
            os.unlink(self.path)

    def export(self):
        if self.exists():
            retry_busy('zpool', 'export', self.name, attempts=40)

    def datasets(self):
        """Every dataset and snapshot of the pool with its origin, as a sorted list of lines."""
        out = run('zfs', 'list', '-H', '-o', 'name,origin', '-t', 'filesystem,volume,snapshot',
                  '-r', self.name)
        return sorted(out.splitlines())
