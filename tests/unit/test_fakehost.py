# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for tests/unit/fakehost.py: the fake host answers as zfs, zoneadm, vmadm and sysinfo do, through the
collection's own readers of them."""

from __future__ import annotations

import io
import json
import types

import pytest

from ansible_collections.smartos.images.plugins.module_utils._errors import CommandError, SourceError
from ansible_collections.smartos.images.plugins.module_utils._inventory import load_inventory
from ansible_collections.smartos.images.plugins.module_utils._vmadm import Vmadm
from ansible_collections.smartos.images.plugins.module_utils._zfs import Dataset, Zfs
from ansible_collections.smartos.images.tests.unit.fakehost import (
    BASE, INCR, FakeClient, FakeClients, FakeHost, FakeServers, ScriptedRunner, smartos_host, stream_of, zone_vm,
)

U = '2f1dc911-6401-4fa4-8e9d-67ea2e39c271'
O = '7b5981c4-1889-11e7-b4c5-3f3bdfc9b88b'


def host():
    return FakeHost([('zones', None, '/zones'), ('zones/a', None, '/zones/a'), 'zones/a@s', ('zones/b', 'zones/a@s'),
                     'tank'])


def test_list_below_roots_and_everything():
    zfs = Zfs(host())
    assert zfs.list('zones') == [Dataset('zones', None, '/zones', None), Dataset('zones/a', None, '/zones/a', None),
                                 Dataset('zones/a@s', None, None, None), Dataset('zones/b', 'zones/a@s', None, None)]
    assert [d.name for d in zfs.list()] == ['tank', 'zones', 'zones/a', 'zones/a@s', 'zones/b']
    with pytest.raises(CommandError, match='"nopool" does not exist'):
        zfs.list('nopool')


def test_rows_given_to_add_make_filesystems_volumes_and_snapshots():
    made = FakeHost.from_rows(['zones', ('zones/v', 'volume', None, '1024'), ('zones/c', None, 'zones/v@s')],
                              vms={U: zone_vm(U)})
    assert made.datasets['zones']['mountpoint'] == '/zones'
    assert (made.datasets['zones/v']['type'], made.datasets['zones/v']['volsize']) == ('volume', '1024')
    assert made.datasets['zones/c']['origin'] == 'zones/v@s' and made.which('vmadm') == '/usr/sbin/vmadm'


def test_exists_snapshots_guid_properties():
    fake = host()
    zfs = Zfs(fake)
    assert zfs.exists('zones/a@s') and not zfs.exists('zones/c')
    assert zfs.snapshots('zones/a') == ['zones/a@s']
    assert zfs.guid('zones/a@s') == fake.guid('zones/a@s')
    fake.add('zones/vol', 'volume', volsize='1024')
    assert zfs.properties('zones/vol', ['type', 'volsize', 'origin']) == {
        'type': 'volume', 'volsize': '1024', 'origin': None}
    assert zfs.properties('zones/b', ['origin', 'mountpoint']) == {'origin': 'zones/a@s', 'mountpoint': None}
    assert zfs.properties('zones/c', ['type']) is None


def test_snapshot_rename_set_destroy_change_the_table():
    fake = host()
    zfs = Zfs(fake)
    zfs.snapshot('zones/b@t')
    with pytest.raises(CommandError, match='dataset already exists'):
        zfs.snapshot('zones/b@t')
    zfs.rename('zones/b', 'zones/c')
    assert 'zones/c@t' in fake.datasets and 'zones/b' not in fake.datasets
    zfs.set_property('zones/c', 'imgadm:uuid', U)
    assert fake.datasets['zones/c']['props'] == {'imgadm:uuid': U}
    with pytest.raises(CommandError, match='dependent clones'):
        zfs.destroy_recursive('zones/a')
    zfs.destroy_snapshot('zones/c@t')
    zfs.destroy_recursive('zones/c')
    zfs.destroy_recursive('zones/a')
    assert sorted(fake.datasets) == ['tank', 'zones']
    assert [c[1] for c in fake.mutations()] == ['snapshot', 'snapshot', 'rename', 'set', 'destroy', 'destroy',
                                                'destroy', 'destroy']


def test_receive_takes_only_its_stream_and_needs_its_origin():
    fake = FakeHost(['zones', 'zones/%s' % O, 'zones/%s@final' % O], streams={U: b'stream'}, origins={U: O})
    for data, rc in ((b'other', 1), (b'stream', 0)):
        err = io.BytesIO()
        proc = Zfs(fake).receive('zones/%s-partial' % U, stderr=err)
        proc.stdin.write(data)
        assert proc.wait() == rc and (b'invalid stream' in err.getvalue()) == (rc == 1)
    assert fake.datasets['zones/%s-partial' % U]['origin'] == 'zones/%s@final' % O
    assert 'zones/%s-partial@final' % U in fake.datasets
    del fake.datasets['zones/%s@final' % O]
    err = io.BytesIO()
    proc = Zfs(fake).receive('zones/' + U, stderr=err)
    proc.stdin.write(b'stream')
    assert proc.wait() == 1 and b'local origin for clone' in err.getvalue()


def test_send_gives_the_stream_and_its_exit():
    fake = host()
    err = io.BytesIO()
    proc = Zfs(fake).send('zones/a@s', err)
    assert proc.stdout.read() == stream_of('zones/a@s') and proc.wait() == 0 and err.getvalue() == b''
    fake.send_rc, fake.send_err = 1, 'broken pipe\n'
    proc = Zfs(fake).send('zones/a@s', err, incremental_from='zones/a@r')
    assert proc.stdout.read() == stream_of('zones/a@s', 'zones/a@r') and proc.wait() == 1
    assert err.getvalue() == b'broken pipe\n'
    assert fake.sends == [(None, 'zones/a@s'), ('zones/a@r', 'zones/a@s')]


def test_the_recorded_host_is_read_as_recorded():
    fake = smartos_host()
    inventory = load_inventory(Zfs(fake), fake, 'zones')
    assert BASE in inventory.images_on('zones') and INCR in inventory.images_on('zones')


def test_commands_that_are_not_there():
    fake = FakeHost(['zones'])
    assert fake.which('zoneadm', required=False) is None
    with pytest.raises(CommandError, match='the vmadm command was not found'):
        fake.which('vmadm')
    with pytest.raises(AssertionError, match='unexpected command'):
        fake.run(['zfs', 'upgrade'])
    with pytest.raises(AssertionError, match='unexpected command'):
        fake.run(['vmadm', 'get', U])


def test_vmadm_get_and_stop():
    fake = FakeHost(['zones'], vms={U: zone_vm(U, state='running')}, stop_works=False)
    vmadm = Vmadm(fake)
    vmadm.stop(U)
    assert vmadm.get(U)['state'] == 'running' and vmadm.get(O) is None
    fake.stop_works = True
    vmadm.stop(U)
    assert vmadm.get(U)['state'] == 'stopped'


def test_scripted_runner():
    runner = ScriptedRunner((1, '', 'a'), (0, 'b', ''))
    assert [runner.run(['zfs']) for dummy in range(3)] == [(1, '', 'a'), (0, 'b', ''), (0, 'b', '')]
    by_command = ScriptedRunner({'zfs': (0, 'z', '')}, paths={'zfs': '/sbin/zfs'})
    assert by_command.run(['zfs', 'list']) == (0, 'z', '') and by_command.which('zoneadm', required=False) is None
    with pytest.raises(AssertionError, match='no command may run'):
        by_command.run(['zoneadm'])
    with pytest.raises(CommandError):
        by_command.which('zoneadm')
    assert by_command.which_calls == [('zoneadm', False), ('zoneadm', True)]


def test_servers_answer_routes_and_404():
    servers = FakeServers()
    servers.image('http://a', {'uuid': U}, b'file')
    request = servers(timeout=1)
    assert json.loads(request.open('GET', 'http://a/images/%s?channel=dev' % U).read()) == {'uuid': U}
    assert request.open('GET', 'http://a/images/%s/file' % U).read() == b'file'
    with pytest.raises(Exception) as exc:
        request.open('GET', 'http://a/images/' + O)
    assert exc.value.code == 404
    assert servers.made == [{'timeout': 1}] and servers.file_requests() == ['http://a/images/%s/file' % U]


def test_clients_list_ping_and_record():
    own = FakeClient(None, None, [])     # any object with list_raw is handed out as it is
    down = SourceError('answered HTTP 503')
    clients = FakeClients({'http://a': [{'uuid': U}], 'http://b': down, 'http://c': own}, default=[{'uuid': O}])
    a, b, c, d = (clients(types.SimpleNamespace(base=base), timeout=5) for base in ('http://a', 'http://b', 'http://c', 'http://d'))
    assert a.list_raw() == [{'uuid': U}] and d.list_raw() == [{'uuid': O}] and c is own
    with pytest.raises(SourceError, match='503'):
        b.list_raw()
    assert a.ping() is True
    clients.ping_error = 'down'
    with pytest.raises(SourceError, match='down'):
        d.ping()
    assert clients.pinged == ['http://a', 'http://d']
    assert [(s.base, kw) for s, kw in clients.made] == [('http://%s' % x, {'timeout': 5}) for x in 'abcd']
