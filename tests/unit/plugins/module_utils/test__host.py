# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_host.py: imgadm's paths, the cross-process import lock, atomic writes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading

import pytest

from ansible_collections.smartos.images.plugins.module_utils import _host
from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError

U = '2f1dc911-6401-4fa4-8e9d-67ea2e39c271'

# Another process: try the lock without blocking (imgadm's qlocker uses the same fcntl record locks).
TRY_LOCK = '''
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError:
    print("busy")
else:
    print("free")
'''

# Another process: take the lock, say so, hold it until stdin closes.
HOLD_LOCK = '''
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.lockf(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
'''


def try_lock_elsewhere(path):
    done = subprocess.run([sys.executable, '-c', TRY_LOCK, path], capture_output=True, text=True, timeout=30, check=True)
    return done.stdout.strip()


def test_host_paths(tmp_path):
    paths = _host.HostPaths(str(tmp_path))
    assert paths.db_dir == str(tmp_path / 'var' / 'imgadm')
    assert paths.config == str(tmp_path / 'var' / 'imgadm' / 'imgadm.conf')
    assert paths.image_cache('zones', U) == str(tmp_path / 'var' / 'imgadm' / 'images' / ('zones-%s.json' % U))
    assert paths.import_lock_path(U) == str(tmp_path / 'var' / 'run' / ('img.%s.import.lock' % U))


@pytest.mark.parametrize('root', ['/', '', None])
def test_host_paths_default_to_the_real_host(root):
    paths = _host.HostPaths(root)
    assert paths.image_cache('zones', U) == '/var/imgadm/images/zones-%s.json' % U
    assert paths.import_lock_path(U) == '/var/run/img.%s.import.lock' % U


def test_import_lock_excludes_other_processes(tmp_path):
    path = _host.HostPaths(str(tmp_path)).import_lock_path(U)
    with _host.hold_import_lock(path) as waited:  # creates var/run as needed
        assert waited < 1
        assert stat.S_IMODE(os.stat(path).st_mode) & 0o600 == 0o600
        assert try_lock_elsewhere(path) == 'busy'
    assert try_lock_elsewhere(path) == 'free'
    assert os.path.exists(path)  # as imgadm: the lock file is never removed


def test_a_lock_planted_as_a_symlink_is_not_followed(tmp_path):
    """A dangling symlink in place of the lock file: a clear error, and nothing created where it points."""
    target = tmp_path / 'elsewhere'
    lock = tmp_path / 'run' / 'x.lock'
    lock.parent.mkdir()
    lock.symlink_to(target)
    with pytest.raises(ImageError) as exc:
        with _host.file_lock(str(lock)):
            pass
    assert 'cannot open the lock' in exc.value.msg and not target.exists()


def test_import_lock_is_released_when_the_body_raises(tmp_path):
    path = str(tmp_path / 'run' / 'x.lock')
    with pytest.raises(RuntimeError):
        with _host.hold_import_lock(path):
            raise RuntimeError('boom')
    assert try_lock_elsewhere(path) == 'free'


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock file until the test lets go."""
    path = str(tmp_path / 'var' / 'run' / ('img.%s.import.lock' % U))
    os.makedirs(os.path.dirname(path))
    proc = subprocess.Popen([sys.executable, '-c', HOLD_LOCK, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == 'held'
        yield path, proc
    finally:
        if proc.poll() is None:
            proc.stdin.close()
            proc.wait(timeout=30)


def test_import_lock_times_out_naming_the_lock(holder, monkeypatch):
    path, dummy = holder
    monkeypatch.setattr(_host, 'LOCK_POLL', 0.01)
    with pytest.raises(ImageError) as exc:
        with _host.hold_import_lock(path, wait_max=0):
            pytest.fail('got a lock another process holds')
    assert exc.value.msg.startswith('timed out after 0s waiting for the import lock %s held by another ' % path)


def test_import_lock_waits_until_the_other_process_lets_go(holder, monkeypatch):
    path, proc = holder
    monkeypatch.setattr(_host, 'LOCK_POLL', 0.01)
    polls = []
    real_sleep = _host.time.sleep

    def sleep(seconds):
        polls.append(seconds)
        if len(polls) == 3:
            proc.stdin.close()   # the other import finishes
            proc.wait(timeout=30)
        real_sleep(seconds)

    monkeypatch.setattr(_host.time, 'sleep', sleep)
    with _host.hold_import_lock(path) as waited:
        assert len(polls) >= 3
        assert waited > 0
        assert try_lock_elsewhere(path) == 'busy'


def test_write_atomic_new_file(tmp_path):
    path = str(tmp_path / 'images' / 'zones-x.json')
    _host.write_atomic(path, b'{}\n')
    with open(path, 'rb') as f:
        assert f.read() == b'{}\n'
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert os.listdir(str(tmp_path / 'images')) == ['zones-x.json']


def test_write_atomic_keeps_the_mode_of_an_existing_file(tmp_path):
    path = str(tmp_path / 'imgadm.conf')
    with open(path, 'wb') as f:
        f.write(b'old')
    os.chmod(path, 0o600)
    _host.write_atomic(path, b'new')
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path, 'rb') as f:
        assert f.read() == b'new'


def test_write_atomic_explicit_mode(tmp_path):
    path = str(tmp_path / 'f')
    _host.write_atomic(path, b'x', mode=0o640)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_write_atomic_failure_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    path = str(tmp_path / 'zones-x.json')
    with open(path, 'wb') as f:
        f.write(b'old')

    def fsync(fd):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(_host.os, 'fsync', fsync)
    with pytest.raises(ImageError, match='cannot write .*zones-x.json: No space left on device'):
        _host.write_atomic(path, b'new')
    assert os.listdir(str(tmp_path)) == ['zones-x.json']
    with open(path, 'rb') as f:
        assert f.read() == b'old'


def test_prepare_then_discard_leaves_nothing(tmp_path):
    path = str(tmp_path / 'zones-x.json')
    tmp = _host.prepare_atomic(path, b'data')
    assert os.path.dirname(tmp) == str(tmp_path)
    assert os.path.basename(tmp).startswith('.zones-x.json.')
    assert not os.path.exists(path)
    _host.discard(tmp)
    _host.discard(tmp)  # a second discard of a missing file is fine
    assert os.listdir(str(tmp_path)) == []


def test_prepare_then_commit(tmp_path):
    path = str(tmp_path / 'zones-x.json')
    tmp = _host.prepare_atomic(path, b'data')
    _host.commit_atomic(tmp, path)
    assert os.listdir(str(tmp_path)) == ['zones-x.json']


def test_read_json(tmp_path):
    path = tmp_path / 'x.json'
    assert _host.read_json(str(path)) is None
    path.write_bytes('{"name": "b\u00e4se"}'.encode('utf-8'))
    assert _host.read_json(str(path)) == {'name': 'b\u00e4se'}
    path.write_bytes(b'{not json')
    with pytest.raises(ValueError):
        _host.read_json(str(path))


MANIFEST = {'v': 2, 'uuid': U, 'name': 'b\u00e4se-64', 'version': '1.0', 'files': [{'size': 10}], 'tags': {}}


def test_image_info_json_is_what_imgadm_writes():
    body = _host.image_info_json(MANIFEST, 'zones', 'https://images.smartos.org')
    # JSON.stringify({manifest, zpool, source}, null, 2) + '\n', non-ASCII kept as UTF-8
    assert body == (json.dumps({'manifest': MANIFEST, 'zpool': 'zones', 'source': 'https://images.smartos.org'},
                               indent=2, ensure_ascii=False) + '\n').encode('utf-8')
    text = body.decode('utf-8')
    assert text.startswith('{\n  "manifest": {\n    "v": 2,\n')
    assert '"tags": {}' in text
    assert text.endswith('},\n  "zpool": "zones",\n  "source": "https://images.smartos.org"\n}\n')
    assert 'b\u00e4se-64' in text


@pytest.mark.parametrize('source', [None, ''])
def test_image_info_json_without_source(source):
    body = _host.image_info_json({'uuid': U}, 'zones', source)
    assert json.loads(body) == {'manifest': {'uuid': U}, 'zpool': 'zones'}


# ---- safety (issue 10): no temp file left on a failed rename, leftovers, locks, nested JSON ----

def test_write_atomic_to_a_directory_leaves_no_temp_file(tmp_path):
    """The final rename fails (a directory is where the file goes): the temp file goes too."""
    path = tmp_path / 'imgadm.conf'
    path.mkdir()
    (path / 'keep').write_text('x')
    with pytest.raises(ImageError, match='cannot write .*imgadm.conf'):
        _host.write_atomic(str(path), b'{}', mode=0o444)
    assert sorted(os.listdir(str(tmp_path))) == ['imgadm.conf']


def test_commit_atomic_failure_removes_the_temp_file(tmp_path, monkeypatch):
    path = str(tmp_path / 'zones-x.json')
    tmp = _host.prepare_atomic(path, b'new', mode=0o444)

    def replace(src, dst):
        raise PermissionError(1, 'Operation not permitted')   # an immutable target

    monkeypatch.setattr(_host.os, 'replace', replace)
    with pytest.raises(ImageError, match='cannot write .*zones-x.json: Operation not permitted'):
        _host.commit_atomic(tmp, path)
    assert os.listdir(str(tmp_path)) == []


def test_commit_atomic_failure_reports_the_rename_even_if_the_clean_up_fails(tmp_path, monkeypatch):
    path = str(tmp_path / 'zones-x.json')
    tmp = _host.prepare_atomic(path, b'new')

    def read_only(*args):
        raise OSError(30, 'Read-only file system')

    monkeypatch.setattr(_host.os, 'replace', read_only)
    monkeypatch.setattr(_host.os, 'unlink', read_only)
    with pytest.raises(ImageError, match='cannot write'):
        _host.commit_atomic(tmp, path)


def test_cache_record_record_writes_in_one_go_and_cleans_up_on_failure(tmp_path):
    paths = _host.HostPaths(str(tmp_path))
    rec = _host.modern_record(paths, 'zones', {'uuid': U}, None)

    class Zfs:
        pass
    rec.record(Zfs(), 'zones/' + U)
    with open(paths.image_cache('zones', U)) as f:
        assert json.load(f) == {'manifest': {'uuid': U}, 'zpool': 'zones'}

    class FailingZfs:
        def set_property(self, *args):
            raise ImageError('zfs set failed')
    orig = _host.OriginalRecord(paths, {'uuid': U, 'name': 'x'})
    with pytest.raises(ImageError, match='zfs set failed'):
        orig.record(FailingZfs(), 'zones/' + U)
    assert not os.path.exists(paths.original_manifest(U))
    assert os.listdir(paths.original_db_dir) == []


def test_lock_is_free(tmp_path, holder):
    path, dummy = holder
    assert _host.lock_is_free(path) is False
    missing = str(tmp_path / 'nope.lock')
    assert _host.lock_is_free(missing) is True
    assert not os.path.exists(missing)           # testing never creates the lock file
    free = tmp_path / 'free.lock'
    free.write_text('')
    assert _host.lock_is_free(str(free)) is True


def test_stale_temp_files(tmp_path):
    for name, age in (('.zones-a.json.abcdefgh', 120), ('.zones-b.json.abcdefgh', 5), ('.zones-c.json.abc', 120),
                      ('zones-d.json', 120), ('.zones-e.json.abcdefgh.x', 120)):
        path = tmp_path / name
        path.write_text('{')
        os.utime(str(path), (1000 - age, 1000 - age))
    (tmp_path / '.zones-f.json.abcdefgh').mkdir()
    victim = tmp_path / 'victim'
    victim.write_text('keep me')
    os.symlink(str(victim), str(tmp_path / '.zones-g.json.abcdefgh'))     # never followed, never removed
    found = _host.stale_temp_files(str(tmp_path), r'\.zones-(\w)\.json' + _host.TEMP_SUFFIX_RE, 60, now=1000)
    assert found == [(str(tmp_path / '.zones-a.json.abcdefgh'), 'a')]
    assert _host.stale_temp_files(str(tmp_path / 'missing'), 'x', 60) == []


def test_prepare_atomic_names_match_the_temp_pattern(tmp_path):
    import re
    tmp = _host.prepare_atomic(str(tmp_path / ('zones-%s.json' % U)), b'x')
    assert re.match(r'\.zones-%s\.json%s\Z' % (U, _host.TEMP_SUFFIX_RE), os.path.basename(tmp))


def test_read_json_nested_too_deeply_is_a_value_error(tmp_path):
    path = tmp_path / 'deep.json'
    path.write_bytes(b'[' * 200000 + b']' * 200000)
    with pytest.raises(ValueError):
        _host.read_json(str(path))


def test_a_fifo_is_refused_at_once_not_waited_on(tmp_path):
    path = str(tmp_path / 'fifo')
    os.mkfifo(path)
    box = []
    worker = threading.Thread(target=lambda: box.append(pytest.raises(ImageError, _host.read_json, path)), daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), 'read_json waits on a FIFO'
    assert 'not a regular file (a FIFO)' in box[0].value.msg


def test_a_directory_reads_as_imgadm_says_it(tmp_path):
    with pytest.raises(ImageError, match='^cannot read .*: Is a directory$'):
        _host.read_regular_file(str(tmp_path))


def test_a_regular_file_and_a_missing_one(tmp_path):
    path = tmp_path / 'f.json'
    assert _host.read_json(str(path)) is None
    path.write_text('{"a": 1}')
    assert _host.read_json(str(path), 100) == {'a': 1}
    with pytest.raises(ValueError, match='larger than 3 bytes'):
        _host.read_json(str(path), 3)


def test_pending_file_prepare_then_commit(tmp_path):
    path = str(tmp_path / 'd' / 'f.json')
    pending = _host.PendingFile(path)
    pending.prepare(b'new', 0o600)
    assert not os.path.exists(path) and os.path.dirname(pending.tmp) == os.path.dirname(path)
    pending.commit()
    assert pending.tmp is None and os.listdir(str(tmp_path / 'd')) == ['f.json']
    assert (tmp_path / 'd' / 'f.json').read_bytes() == b'new' and stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_pending_file_abort_leaves_the_old_file(tmp_path):
    (tmp_path / 'f').write_bytes(b'old')
    pending = _host.PendingFile(str(tmp_path / 'f'))
    pending.prepare(b'new')
    pending.abort()
    pending.abort()                 # twice: nothing left to remove
    assert os.listdir(str(tmp_path)) == ['f'] and (tmp_path / 'f').read_bytes() == b'old'


def test_pending_file_adopts_a_streamed_temp_file(tmp_path):
    tmp = tmp_path / '.f.stream'
    tmp.write_bytes(b'streamed')
    pending = _host.PendingFile(str(tmp_path / 'f'))
    pending.adopt(str(tmp))
    pending.commit()
    assert os.listdir(str(tmp_path)) == ['f'] and (tmp_path / 'f').read_bytes() == b'streamed'


def test_cache_record_is_a_pending_file(tmp_path):
    record = _host.CacheRecord(str(tmp_path / 'c.json'), b'{}')
    record.prepare()
    assert record.tmp and os.path.exists(record.tmp)
    record.abort()
    assert record.tmp is None and os.listdir(str(tmp_path)) == []


def test_original_records_are_the_v1_manifest_files_only(tmp_path):
    paths = _host.HostPaths(str(tmp_path))
    assert paths.original_records() == []   # no /var/db/imgadm at all
    db = tmp_path / 'var' / 'db' / 'imgadm'
    db.mkdir(parents=True)
    for name in ('11111111-2222-4333-8444-555555555555.json', 'imgcache.json', 'sources.list',
                 '11111111-2222-4333-8444-55555555555A.json', '11111111-2222-4333-8444-555555555555.json.tmp'):
        (db / name).write_text('{}')
    assert paths.original_records() == ['11111111-2222-4333-8444-555555555555']
