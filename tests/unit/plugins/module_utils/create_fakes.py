# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fake host behind the Runner seam for smartos_image_create: zfs (get, list, snapshot, send, destroy) and vmadm."""

from __future__ import annotations

import io
import itertools
import json
import random

from ansible_collections.smartos.images.plugins.module_utils import _zfs

MUTATING_ZFS = {'create', 'receive', 'rename', 'destroy', 'set', 'inherit', 'snapshot', 'clone', 'promote', 'rollback'}
MUTATING_VMADM = {'stop', 'start', 'reboot', 'create', 'delete', 'update'}
_GUIDS = itertools.count(9000000000000000001)


def stream_of(snapshot, incremental_from=None):
    """The bytes `zfs send [-i from] snapshot` gives in the fake: repeatable, partly compressible."""
    seed = '%s|%s' % (incremental_from, snapshot)
    rng = random.Random(seed)
    text = ('send stream of %s from %s\n' % (snapshot, incremental_from)).encode() * 2000
    return text + rng.randbytes(30000) + text


class FakeSend:
    """`zfs send`: its stdout gives the stream; wait() gives its exit code and writes its stderr."""

    def __init__(self, data, rc, err, stderr):
        self.stdout = io.BufferedReader(io.BytesIO(data))
        self.rc, self.err, self.stderr = rc, err, stderr
        self.killed = False

    def wait(self):
        if self.err:
            self.stderr.write(self.err.encode())
            self.stderr.flush()
            self.err = ''
        return self.rc

    def kill(self):
        self.killed = True


class FakeHost:
    """A Runner for a host with zfs (a table of datasets) and, when vms is not None, vmadm."""

    def __init__(self, datasets=(), vms=None, stop_works=True):
        # name -> dict(type, guid, origin, volsize, mountpoint)
        self.datasets = {}
        for row in datasets:
            if isinstance(row, tuple):
                self.add(*row)
            else:
                self.add(row)
        self.vms = vms
        self.stop_works = stop_works
        self.calls = []
        self.send_rc = 0
        self.send_err = ''
        self.sends = []
        self.destroy_fails = ''     # stderr of a `zfs destroy` that fails (the snapshot stays)

    def add(self, name, kind=None, origin=None, volsize=None):
        kind = kind or ('snapshot' if '@' in name else 'filesystem')
        self.datasets[name] = {'type': kind, 'guid': str(next(_GUIDS)), 'origin': origin,
                               'volsize': volsize if kind in ('volume', 'snapshot') else None,
                               'mountpoint': '/' + name if kind == 'filesystem' else None}
        return self.datasets[name]['guid']

    def guid(self, name):
        return self.datasets[name]['guid']

    def which(self, name, required=True):
        if name == 'zfs' or (name == 'vmadm' and self.vms is not None):
            return '/usr/sbin/' + name
        assert not required, 'a required command %s is missing' % name
        return None

    def mutations(self):
        return [c for c in self.calls if (c[0] == 'zfs' and c[1] in MUTATING_ZFS)
                or (c[0] == 'vmadm' and c[1] in MUTATING_VMADM)]

    @staticmethod
    def _missing(name):
        return 1, '', "cannot open '%s': dataset does not exist\n" % name

    def run(self, argv):
        self.calls.append(list(argv))
        if argv[0] == 'vmadm':
            return self._vmadm(argv[1:])
        assert argv[0] == 'zfs', argv
        cmd = argv[1:]
        if cmd[:4] == ['get', '-Hp', '-o', 'property,value'] and len(cmd) == 6:
            name = cmd[5]
            if name not in self.datasets:
                return self._missing(name)
            values = self.datasets[name]
            return 0, ''.join('%s\t%s\n' % (p, values.get(p) or '-') for p in cmd[4].split(',')), ''
        if cmd[:5] == ['get', '-Hp', '-o', 'value', 'guid'] and len(cmd) == 6:
            return (0, self.datasets[cmd[5]]['guid'] + '\n', '') if cmd[5] in self.datasets else self._missing(cmd[5])
        if cmd[:5] == ['list', '-H', '-o', _zfs.LIST_COLUMNS, '-t'] and cmd[6] == '-r':
            root = cmd[7]
            if root not in self.datasets:
                return self._missing(root)
            rows = []
            for name in sorted(self.datasets):
                if name == root or name.startswith(root + '/') or name.startswith(root + '@'):
                    d = self.datasets[name]
                    rows.append('\t'.join([name, d['origin'] or '-', d['mountpoint'] or '-', '-']))
            return 0, ''.join(r + '\n' for r in rows), ''
        if cmd[0] == 'snapshot' and len(cmd) == 2:
            dataset = cmd[1].split('@')[0]
            if dataset not in self.datasets:
                return self._missing(dataset)
            if cmd[1] in self.datasets:
                return 1, '', "cannot create snapshot '%s': dataset already exists\n" % cmd[1]
            self.add(cmd[1], volsize=self.datasets[dataset]['volsize'])  # a volume's snapshot has its volsize
            return 0, '', ''
        if cmd[0] == 'destroy' and len(cmd) == 2:
            if cmd[1] not in self.datasets:
                return self._missing(cmd[1])
            if self.destroy_fails:
                return 1, '', self.destroy_fails
            del self.datasets[cmd[1]]
            return 0, '', ''
        raise AssertionError('unexpected command: %r' % (argv,))

    def _vmadm(self, cmd):
        uuid = cmd[1]
        if uuid not in self.vms:
            return 1, '', 'Could not find VM %s\n' % uuid
        if cmd[0] == 'get':
            return 0, json.dumps(self.vms[uuid]), ''
        if cmd[0] == 'stop':
            if self.stop_works:
                self.vms[uuid]['state'] = 'stopped'
            return 0, 'Successfully completed stop for VM %s\n' % uuid, ''
        raise AssertionError('unexpected vmadm command: %r' % (cmd,))

    def popen_out(self, argv, stderr):
        self.calls.append(list(argv))
        assert argv[:2] == ['zfs', 'send'], argv
        incremental_from = argv[3] if argv[2] == '-i' else None
        snapshot = argv[-1]
        if snapshot not in self.datasets:
            return FakeSend(b'', 1, "cannot open '%s': dataset does not exist\n" % snapshot, stderr)
        self.sends.append((incremental_from, snapshot))
        return FakeSend(stream_of(snapshot, incremental_from), self.send_rc, self.send_err, stderr)


def zone_vm(uuid, pool='zones', state='stopped'):
    """vmadm get of a joyent-brand zone."""
    return {'uuid': uuid, 'brand': 'joyent', 'state': state, 'zpool': pool, 'zfs_filesystem': '%s/%s' % (pool, uuid)}


def bhyve_vm(uuid, pool='zones', state='stopped'):
    """vmadm get of a bhyve VM with its boot disk zvol."""
    return {'uuid': uuid, 'brand': 'bhyve', 'state': state, 'zpool': pool, 'zfs_filesystem': '%s/%s' % (pool, uuid),
            'cpu_type': 'host',
            'disks': [{'path': '/dev/zvol/rdsk/%s/%s/disk0' % (pool, uuid), 'zfs_filesystem': '%s/%s/disk0' % (pool, uuid),
                       'model': 'virtio', 'size': 10240, 'boot': True}],
            'nics': [{'model': 'e1000', 'nic_tag': 'admin'}]}
