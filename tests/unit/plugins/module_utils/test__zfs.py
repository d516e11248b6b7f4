# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_zfs.py: output parsing and the zfs commands through a scripted Runner (tests/unit/fakehost.py)."""

from __future__ import annotations

import pytest

from ansible_collections.smartos.images.plugins.module_utils import _zfs
from ansible_collections.smartos.images.plugins.module_utils._errors import CommandError
from ansible_collections.smartos.images.plugins.module_utils._zfs import Dataset, Zfs, parse_list
from ansible_collections.smartos.images.tests.unit.fakehost import FakeHost, ScriptedRunner

UUID = '2f1dc911-6401-4fa4-8e9d-67ea2e39c271'
BUSY = "cannot rename 'zones/x': dataset is busy\n"


@pytest.fixture
def no_sleep(monkeypatch):
    """Replace time.sleep in _zfs; return the list of delays asked for."""
    delays = []
    monkeypatch.setattr(_zfs.time, 'sleep', delays.append)
    return delays


# Recorded on a SmartOS zones pool (trimmed), then on zfs-fuse: name, origin, mountpoint, imgadm:ignore.
SMARTOS_LIST = (
    'zones\t-\t/zones\t-\n'
    'zones/dump\t-\t-\t-\n'
    'zones/%(u)s\t-\t/zones/%(u)s\t-\n'
    'zones/%(u)s@final\t-\t-\t-\n'
    'zones/vm\tzones/%(u)s@final\t/zones/vm\ttrue\n'
) % {'u': UUID}


@pytest.mark.parametrize('text, expected', [
    ('', []),
    ('\n\n', []),
    (SMARTOS_LIST, [
        Dataset('zones', None, '/zones', None),
        Dataset('zones/dump', None, None, None),
        Dataset('zones/%s' % UUID, None, '/zones/%s' % UUID, None),
        Dataset('zones/%s@final' % UUID, None, None, None),
        Dataset('zones/vm', 'zones/%s@final' % UUID, '/zones/vm', 'true'),
    ]),
    # a mountpoint with spaces stays one field: only tabs separate columns
    ('tank/a b\t-\t/mnt/a b\tfalse\n', [Dataset('tank/a b', None, '/mnt/a b', 'false')]),
    # zfs-fuse prints 'none' and 'legacy' literally; only '-' means unset
    ('tank\t-\tnone\t-\ntank/l\t-\tlegacy\t-', [Dataset('tank', None, 'none', None), Dataset('tank/l', None, 'legacy', None)]),
])
def test_parse_list(text, expected):
    assert parse_list(text) == expected


@pytest.mark.parametrize('line', [
    'zones /zones - -',             # spaces, not tabs
    'zones\t-\t/zones',             # a column missing
    'zones\t-\t/zones\t-\textra',   # a column too many
    '-\t-\t-\t-',                    # no name (the unset marker)
    '\t-\t/zones\t-',                # an empty name
])
def test_parse_list_rejects_unexpected_lines(line):
    with pytest.raises(CommandError) as exc:
        parse_list('zones\t-\t/zones\t-\n' + line + '\n')
    assert repr(line) in exc.value.msg


def test_list_runs_one_zfs_call_below_the_pool():
    runner = ScriptedRunner((0, SMARTOS_LIST, ''))
    rows = Zfs(runner).list('zones')
    assert runner.calls == [['zfs', 'list', '-H', '-o', 'name,origin,mountpoint,imgadm:ignore',
                             '-t', 'filesystem,volume,snapshot', '-r', 'zones']]
    assert [r.name for r in rows][:2] == ['zones', 'zones/dump']


def test_list_without_root_lists_every_pool():
    runner = ScriptedRunner((0, '', ''))
    assert Zfs(runner).list() == []
    assert '-r' not in runner.calls[0]


def test_list_missing_pool_names_it():
    with pytest.raises(CommandError) as exc:
        Zfs(FakeHost(['zones'])).list('nopool')
    assert exc.value.msg == 'zfs pool or dataset "nopool" does not exist (cannot open \'nopool\': dataset does not exist)'
    assert exc.value.evidence['rc'] == 1
    assert exc.value.evidence['cmd'].startswith('zfs list -H ')
    assert 'does not exist' in exc.value.evidence['stderr']


def test_list_several_pools_in_one_call():
    host = FakeHost(['a', 'a/x', 'b', 'c'])
    assert [d.name for d in Zfs(host).list(['a', 'b'])] == ['a', 'a/x', 'b']
    with pytest.raises(CommandError, match='"a" or "d" does not exist'):
        Zfs(host).list(['a', 'd'])
    assert [c[-3:] for c in host.calls] == [['-r', 'a', 'b'], ['-r', 'a', 'd']]


def test_list_other_failure_keeps_stderr():
    runner = ScriptedRunner((2, '', 'internal error: Bad file descriptor\n'))
    with pytest.raises(CommandError) as exc:
        Zfs(runner).list('zones')
    assert exc.value.msg == 'zfs list failed: internal error: Bad file descriptor'
    assert exc.value.evidence['rc'] == 2


def test_list_output_that_does_not_parse_is_an_error():
    runner = ScriptedRunner((0, 'garbage\n', ''))
    with pytest.raises(CommandError):
        Zfs(runner).list('zones')


def test_exists_true_on_rc_0():
    runner = ScriptedRunner((0, 'zones/%s\n' % UUID, ''))
    assert Zfs(runner).exists('zones/%s' % UUID) is True
    assert runner.calls == [['zfs', 'list', '-H', '-o', 'name', 'zones/%s' % UUID]]


def test_exists_false_when_zfs_says_it_does_not_exist():
    runner = ScriptedRunner((1, '', "cannot open 'zones/x': dataset does not exist\n"))
    assert Zfs(runner).exists('zones/x') is False


@pytest.mark.parametrize('rc, err', [
    (1, "cannot open 'zones/x': permission denied\n"),   # rc 1 for another reason is not "absent"
    (2, 'internal error: out of memory\n'),
    (127, ''),
])
def test_exists_other_failures_raise(rc, err):
    runner = ScriptedRunner((rc, '', err))
    with pytest.raises(CommandError) as exc:
        Zfs(runner).exists('zones/x')
    assert 'zones/x' in exc.value.msg
    assert exc.value.evidence['rc'] == rc


def test_snapshots_only_those_directly_on_the_dataset():
    ds = 'zones/%s-partial' % UUID
    out = '%s@final\n%s/child@final\nzones/other@final\n' % (ds, ds)
    runner = ScriptedRunner((0, out, ''))
    assert Zfs(runner).snapshots(ds) == ['%s@final' % ds]
    assert runner.calls == [['zfs', 'list', '-H', '-o', 'name', '-t', 'snapshot', '-r', '-d', '1', ds]]


def test_snapshots_failure_raises_with_command():
    runner = ScriptedRunner((1, '', "cannot open 'zones/x': dataset does not exist\n"))
    with pytest.raises(CommandError) as exc:
        Zfs(runner).snapshots('zones/x')
    assert 'listing snapshots of zones/x failed' in exc.value.msg
    assert exc.value.evidence['cmd'] == 'zfs list -H -o name -t snapshot -r -d 1 zones/x'


def test_guid_is_exact_string():
    runner = ScriptedRunner((0, '18302938475629384756\n', ''))
    assert Zfs(runner).guid('zones/x@final') == '18302938475629384756'
    assert runner.calls == [['zfs', 'get', '-Hp', '-o', 'value', 'guid', 'zones/x@final']]


@pytest.mark.parametrize('method, args, argv', [
    ('rename', ('zones/a-partial', 'zones/a'), ['zfs', 'rename', 'zones/a-partial', 'zones/a']),
    ('destroy_recursive', ('zones/a',), ['zfs', 'destroy', '-r', 'zones/a']),
])
class TestBusyRetry:

    def test_success_first_time(self, method, args, argv, no_sleep):
        runner = ScriptedRunner((0, '', ''))
        getattr(Zfs(runner), method)(*args)
        assert runner.calls == [argv]
        assert no_sleep == []

    def test_succeeds_after_busy(self, method, args, argv, no_sleep):
        runner = ScriptedRunner((1, '', BUSY), (1, '', BUSY), (0, '', ''))
        getattr(Zfs(runner), method)(*args)
        assert runner.calls == [argv] * 3
        assert no_sleep == [_zfs.BUSY_DELAY, _zfs.BUSY_DELAY * 2]

    def test_gives_up_after_busy_retries(self, method, args, argv, no_sleep):
        runner = ScriptedRunner((1, '', BUSY))
        with pytest.raises(CommandError) as exc:
            getattr(Zfs(runner), method)(*args)
        assert runner.calls == [argv] * _zfs.BUSY_RETRIES
        assert len(no_sleep) == _zfs.BUSY_RETRIES - 1
        assert 'dataset is busy' in exc.value.msg
        assert 'a process may be using its mountpoint' in exc.value.msg
        assert 'its /dev/zvol device if it is a volume' in exc.value.msg
        assert exc.value.evidence == {'cmd': ' '.join(argv), 'rc': 1, 'stderr': BUSY}

    def test_other_errors_are_not_retried(self, method, args, argv, no_sleep):
        err = "cannot destroy 'zones/a': filesystem has dependent clones\n"
        runner = ScriptedRunner((1, '', err), (0, '', ''))
        with pytest.raises(CommandError) as exc:
            getattr(Zfs(runner), method)(*args)
        assert runner.calls == [argv]
        assert no_sleep == []
        assert 'dependent clones' in exc.value.msg
        assert 'mountpoint' not in exc.value.msg

    def test_silent_failure_reports_exit_code(self, method, args, argv, no_sleep):
        runner = ScriptedRunner((3, '', ''))
        with pytest.raises(CommandError) as exc:
            getattr(Zfs(runner), method)(*args)
        assert exc.value.msg.endswith('failed: exit code 3')


def test_receive_starts_zfs_receive_unmounted_through_popen():
    runner = ScriptedRunner((0, '', ''))
    errfile = object()
    proc = Zfs(runner).receive('zones/%s-partial' % UUID, stderr=errfile)
    assert proc == ('popen', ['zfs', 'receive', '-u', 'zones/%s-partial' % UUID], errfile)


# ---- what smartos_image_create adds: properties, snapshot, destroy_snapshot, send ----

def test_properties_exact_values():
    runner = ScriptedRunner((0, 'type\tvolume\nguid\t11192632609860586301\norigin\t-\n', ''))
    assert Zfs(runner).properties('zones/vol', ['type', 'guid', 'origin']) == {
        'type': 'volume', 'guid': '11192632609860586301', 'origin': None}
    assert runner.calls == [['zfs', 'get', '-Hp', '-o', 'property,value', 'type,guid,origin', 'zones/vol']]


def test_properties_of_what_does_not_exist():
    assert Zfs(ScriptedRunner((1, '', "cannot open 'zones/x': dataset does not exist\n"))).properties('zones/x', ['type']) is None
    with pytest.raises(CommandError, match='zfs get zones/x failed: bad property list') as e:
        Zfs(ScriptedRunner((2, '', 'bad property list: invalid property written\n'))).properties('zones/x', ['written'])
    assert e.value.evidence['rc'] == 2


def test_snapshot_and_destroy_snapshot():
    runner = ScriptedRunner((0, '', ''))
    zfs = Zfs(runner)
    zfs.snapshot('zones/a@s')
    zfs.destroy_snapshot('zones/a@s')
    assert runner.calls == [['zfs', 'snapshot', 'zones/a@s'], ['zfs', 'destroy', 'zones/a@s']]
    with pytest.raises(CommandError, match='not a snapshot'):
        zfs.destroy_snapshot('zones/a')
    assert len(runner.calls) == 2


def test_snapshot_failure():
    with pytest.raises(CommandError, match="snapshotting zones/a@s failed: cannot create snapshot"):
        Zfs(ScriptedRunner((1, '', "cannot create snapshot 'zones/a@s': dataset already exists\n"))).snapshot('zones/a@s')


@pytest.mark.parametrize('origin, argv', [
    (None, ['zfs', 'send', 'zones/a@s']),
    ('zones/%s@final' % UUID, ['zfs', 'send', '-i', 'zones/%s@final' % UUID, 'zones/a@s']),
])
def test_send_streams_through_popen_out(origin, argv):
    runner = ScriptedRunner()
    assert Zfs(runner).send('zones/a@s', 'ERR', incremental_from=origin) == ('popen_out', argv, 'ERR')
    assert runner.calls == [argv]
