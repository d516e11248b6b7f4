"""What the benchmarks share: where the collection copy is, one run at a time, results as JSON.

Each benchmark keeps its own measurements; only this plumbing is common.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
import tempfile

from tests.lib.zfspool import FilePool, ZfsFuse

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_DIR = '/var/tmp/smartos-images-bench'
COLLECTION = os.path.join('ansible_collections', 'smartos', 'images')


def collections_dir(needed):
    """The directory holding the collection with the file `needed` in it (ANSIBLE_COLLECTIONS_PATH, else ./build)."""
    for entry in (os.environ.get('ANSIBLE_COLLECTIONS_PATH') or '').split(os.pathsep) + [os.path.join(REPO, 'build')]:
        if entry and os.path.isfile(os.path.join(entry, COLLECTION, needed)):
            return os.path.abspath(entry)
    raise SystemExit(f'{os.path.join(COLLECTION, needed)} not found under ANSIBLE_COLLECTIONS_PATH or {REPO}/build: '
                     'run `make collection` first')


def take_lock(name):
    """One run of a benchmark at a time (they reuse pool names); the fd to keep open."""
    os.makedirs(BENCH_DIR, exist_ok=True)
    path = os.path.join(BENCH_DIR, name + '.lock')
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise SystemExit(f'another {name} benchmark is running (lock {path})') from None
    return fd


def write_results(path, data):
    """Write the figures as JSON beside the benchmarks (git-ignored)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + '.tmp', 'w', encoding='utf-8') as f:
        json.dump(data, f, indent=1)
        f.write('\n')
    os.replace(path + '.tmp', path)


@contextlib.contextmanager
def bench_run(name, prefix, pool=None, size=None):
    """One benchmark run: its lock, zfs-fuse, a fresh file-backed pool (when `pool` names one) and a work
    directory; the work directory. Everything is undone on the way out, zfs-fuse only if this run started it
    (then by its PID)."""
    lock = take_lock(name)
    zfs_fuse = ZfsFuse()
    file_pool = FilePool(pool, os.path.join(BENCH_DIR, pool + '.img'), size=size) if pool else None
    workdir = tempfile.mkdtemp(prefix=prefix, dir=BENCH_DIR)
    try:
        zfs_fuse.start()
        if file_pool:
            file_pool.create(fresh=True)
        yield workdir
    finally:
        try:
            if file_pool:
                file_pool.destroy()
        except RuntimeError as e:
            print(f'warning: {e}', file=sys.stderr)
        zfs_fuse.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        os.close(lock)
