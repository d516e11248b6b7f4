# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The unit tests' one fake host: an in-memory ZFS (with zoneadm, vmadm and sysinfo) behind the Runner seam of
plugins/module_utils/_runner.py, and fake image servers behind the Request that ImageServerClient opens.

FakeHost(datasets=(), zone_roots=None, vms=None, sysinfo=None, streams=None, origins=None, stop_works=True)
    A Runner (which, run, popen, popen_out) over a table of datasets.
    - datasets: names, or `zfs list` rows (name, origin, mountpoint, imgadm:ignore); add() takes keywords.
      A row's mountpoint defaults to '-' (as a row given without one reads); add() gives a filesystem '/<name>'.
    - zone_roots: the zone roots `zoneadm list -pc` lists (or its recorded output as text); None: no zoneadm.
    - vms: uuid -> `vmadm get` document (zone_vm(), bhyve_vm()); None: no vmadm. stop_works: vmadm stop stops.
    - sysinfo: the `sysinfo` document; None: no sysinfo.
    - streams: uuid -> the send stream `zfs receive -u <pool>/<uuid>[-partial]` accepts (anything else is a bad
      stream); origins: uuid -> the origin uuid that stream is incremental from (the origin's @final must exist, and
      the received dataset becomes its clone).
    FakeHost.from_rows(rows, **kw): a host whose datasets are add() rows (name, kind, origin, volsize).
    .datasets: name -> {'type', 'origin', 'mountpoint', 'ignore', 'guid', 'volsize', 'props'} (the state).
    .add(name, kind=None, origin=None, volsize=None, mountpoint='/<name>', ignore=None, guid=None) -> its guid.
    .calls: every argv (run, popen, popen_out), in order; .mutations(): those of them that change the host.
    .sends: (incremental_from, snapshot) of every `zfs send` started.
    .processes: every command started (popen, popen_out): .argv, .stdin (.closed, getvalue()), .waited, .killed.
    Failure switches: send_rc and send_err (how `zfs send` ends), destroy_fails (the stderr of a failing destroy),
    receive_rc and receive_err (how `zfs receive` ends, whatever its stream, when receive_rc is not 0),
    receive_accept (the bytes `zfs receive` reads before its stdin pipe breaks; None: all).
    It answers the command lines the collection runs: zfs list (the inventory's columns, a name, the snapshots of
    a dataset), zfs get (guid, property lists), snapshot, send [-i], receive -u, rename, set, destroy [-r] (refused
    while clones depend), zoneadm list -pc, vmadm get/stop, sysinfo; any other argv fails the test.
    FakeHost.recorded(zfs_list, zoneadm=None): a host whose datasets are a recorded `zfs list` output.
    smartos_host(with_zoneadm=True): the recorded SmartOS host of tests/unit/plugins/module_utils/fixtures (pools
    zones and zones2; BASE, INCR, KVM_IMG, ... name its images and VMs); fixture(name) reads a file there.

ScriptedRunner(*answers, paths=None)
    A Runner that answers from a script, for tests that pin one command's exact argv, output and errors.
    - answers: (rc, out, err) tuples given in turn (the last one repeats), or one dict command -> (rc, out, err).
      No answers: any command fails the test (a stub for code that must run nothing).
    - paths: command -> path for which() (a required command without one raises CommandError, as Runner does);
      None: every command is at /usr/sbin/<name>. .calls and .which_calls record what was asked.
    - popen and popen_out return ('popen', argv, stderr) and ('popen_out', argv, stderr).

FakeServers()
    Stands in for ansible.module_utils.urls.Request (monkeypatch _imgapi.Request with it, or use the `servers`
    fixture of tests/unit/conftest.py): GETs are answered from routes; an unknown URL is a 404.
    .serve(url, body, status=200) (body: bytes, or JSON made of anything else); .image(base, manifest, file_body)
    serves a manifest and its file; .requests: every URL asked; .made: the keyword arguments of every Request made;
    .file_requests(): the URLs of image files asked.

FakeClients(listings=None, default=(), ping_error=None)
    Stands in for _imgapi.client_for (a client_factory): the image servers one level up, as clients.
    - listings: source base URL -> what its list_raw() gives (a list of manifests) or raises (an exception), or a
      client of the test's own (anything with list_raw) to hand out as it is; default: the listing of other URLs.
    - ping_error: the message of the SourceError every ping() raises; None: ping() answers True.
    .made: (source, keyword arguments) of every client made; .pinged: the base URL of every ping.

Helpers: stream_of(snapshot, incremental_from=None) (what the fake `zfs send` gives), zone_vm() and bhyve_vm()
(`vmadm get` documents), warnings_of(result) (a module result's warning texts). tests/unit/conftest.py has the
fixtures: servers (FakeServers patched in), run_module (a module's main() on a fake host), image_params.
"""

from __future__ import annotations

import copy
import email.message
import http.client
import io
import itertools
import json
import os
import random
import threading
import urllib.parse
from urllib.error import HTTPError

from ansible_collections.smartos.images.plugins.module_utils import _zfs
from ansible_collections.smartos.images.plugins.module_utils._errors import CommandError, SourceError
from ansible_collections.smartos.images.plugins.module_utils._imgapi import ImageServerClient
from ansible_collections.smartos.images.plugins.module_utils._inventory import parse_zone_roots
from ansible_collections.smartos.images.plugins.module_utils._urls import ImageSource

MUTATING_ZFS = {'create', 'receive', 'rename', 'destroy', 'set', 'inherit', 'snapshot', 'clone', 'promote', 'rollback'}
MUTATING_VMADM = {'stop', 'start', 'reboot', 'create', 'delete', 'update'}
ZONE_VM = 'c0ffee00-1111-4222-8333-444455556603'
_GUIDS = itertools.count(9000000000000000001)
_UNSET = object()
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'plugins', 'module_utils', 'fixtures')

# What the recorded listings hold (fixtures/README.md): images, VMs, and every case of imgadm's rules.
BASE = 'a3e0a1c8-2d6b-4c57-9f2e-1a2b3c4d5e01'
INCR = 'b7c1d2e3-4f50-4a61-8b72-93a4b5c6d702'
VM = 'c0ffee00-1111-4222-8333-444455556603'
KVM_IMG = 'd4e5f6a7-b8c9-4dae-8fb0-c1d2e3f4a504'
KVM_VM = 'e1e2e3e4-e5e6-4e7e-8e9e-eaebecedee05'
BHYVE_VM = 'f1f2f3f4-f5f6-4f7f-8f9f-fafbfcfdfe06'
IGN_TRUE = '10000000-0000-4000-8000-000000000007'
IGN_YES = '10000000-0000-4000-8000-000000000008'
IGN_FALSE = '10000000-0000-4000-8000-000000000009'
IGN_GARBAGE = '10000000-0000-4000-8000-00000000000a'
COPY = '10000000-0000-4000-8000-00000000000b'
SNAP_CLONE = '10000000-0000-4000-8000-00000000000c'
NO_FINAL = '10000000-0000-4000-8000-00000000000d'
PARTIAL = '10000000-0000-4000-8000-00000000000e'
UPPER = 'A3E0A1C8-2D6B-4C57-9F2E-1A2B3C4D5E01'


def fixture(name):
    """The text of a recorded command output in tests/unit/plugins/module_utils/fixtures."""
    with open(os.path.join(FIXTURES, name), encoding='utf-8') as f:
        return f.read()


def smartos_host(with_zoneadm=True):
    """The recorded SmartOS host: zfs (pools zones and zones2) and, unless told, zoneadm."""
    zoneadm = fixture('zoneadm_list_pc_smartos.txt') if with_zoneadm else None
    return FakeHost.recorded(fixture('zfs_list_smartos.txt'), zoneadm=zoneadm)


def stream_of(snapshot, incremental_from=None):
    """The bytes `zfs send [-i from] snapshot` gives on the fake host: repeatable, partly compressible."""
    seed = '%s|%s' % (incremental_from, snapshot)
    rng = random.Random(seed)
    text = ('send stream of %s from %s\n' % (snapshot, incremental_from)).encode() * 2000
    return text + rng.randbytes(30000) + text


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


def _missing(name):
    return 1, '', "cannot open '%s': dataset does not exist\n" % name


class _Stdin:
    """A command's stdin: keeps what is written (getvalue()) after it is closed; its pipe breaks after accept bytes."""

    def __init__(self, accept=None):
        self.data, self.accept, self.closed = bytearray(), accept, False

    def write(self, data):
        if self.closed:
            raise ValueError('write to closed file')
        if self.accept is not None and len(self.data) + len(data) > self.accept:
            raise BrokenPipeError(32, 'Broken pipe')
        self.data += data
        return len(data)

    def close(self):
        self.closed = True

    def getvalue(self):
        return bytes(self.data)


class _Process:
    """A started command: `zfs receive` (stdin collects the stream) or `zfs send` (stdout gives it)."""

    def __init__(self, argv, stderr, finish, stdout=b'', accept=None):
        self.argv = list(argv)
        self.stdin = _Stdin(accept)
        self.stdout = io.BufferedReader(io.BytesIO(stdout))
        self.stderr, self.finish, self.killed, self.waited = stderr, finish, False, False

    def wait(self):
        self.waited = True
        if self.finish is not None:
            self.rc, err = self.finish(self)
            self.finish = None
            if err:
                self.stderr.write(err.encode())
                self.stderr.flush()
        return self.rc

    def kill(self):
        self.killed = True


class FakeHost:
    """An in-memory ZFS with zoneadm, vmadm and sysinfo behind the Runner seam (the module docstring has its API)."""

    def __init__(self, datasets=(), zone_roots=None, vms=None, sysinfo=None, streams=None, origins=None,
                 stop_works=True):
        self.datasets = {}
        for row in datasets:
            row = [row] if isinstance(row, str) else list(row)
            name, origin, mountpoint, ignore = row + [None] * (4 - len(row))
            self.add(name, origin=origin, mountpoint=mountpoint, ignore=ignore)
        self.zone_roots, self.vms, self.sysinfo = zone_roots, vms, sysinfo
        self.streams = streams or {}
        self.origins = origins or {}
        self.stop_works = stop_works
        self.calls, self.sends, self.processes = [], [], []
        self.send_rc, self.send_err, self.destroy_fails = 0, '', ''
        self.receive_rc, self.receive_err, self.receive_accept = 0, '', None
        self.lock = threading.RLock()       # imports run in threads

    @classmethod
    def from_rows(cls, rows, **kw):
        """A host whose datasets are add() rows: a name, or (name, kind, origin, volsize); kw as FakeHost takes."""
        host = cls(**kw)
        for row in rows:
            host.add(*((row,) if isinstance(row, str) else tuple(row)))
        return host

    @classmethod
    def recorded(cls, zfs_list, zoneadm=None):
        """A host whose datasets are those of a recorded `zfs list -H -o name,origin,mountpoint,imgadm:ignore`."""
        return cls([tuple(d) for d in _zfs.parse_list(zfs_list)], zone_roots=zoneadm)

    def add(self, name, kind=None, origin=None, volsize=None, mountpoint=_UNSET, ignore=None, guid=None):
        """Add a filesystem, volume or snapshot (kind: its type, from its name unless told); return its guid."""
        kind = kind or ('snapshot' if '@' in name else 'filesystem')
        if mountpoint is _UNSET:
            mountpoint = '/' + name if kind == 'filesystem' else None
        self.datasets[name] = {'type': kind, 'origin': origin, 'mountpoint': mountpoint, 'ignore': ignore,
                               'guid': guid or str(next(_GUIDS)), 'volsize': volsize if kind in ('volume', 'snapshot') else None,
                               'props': {}}
        return self.datasets[name]['guid']

    def guid(self, name):
        return self.datasets[name]['guid']

    def mutations(self):
        """The calls that change the host."""
        return [c for c in self.calls if (c[0] == 'zfs' and c[1] in MUTATING_ZFS)
                or (c[0] == 'vmadm' and c[1] in MUTATING_VMADM)]

    def which(self, name, required=True):
        present = {'zfs': True, 'zoneadm': self.zone_roots is not None, 'vmadm': self.vms is not None,
                   'sysinfo': self.sysinfo is not None}
        if present.get(name):
            return '/usr/sbin/' + name
        if required:
            raise CommandError('the %s command was not found on the host (searched PATH, /usr/sbin, /sbin)' % name)
        return None

    def _below(self, name):
        return [n for n in self.datasets if n == name or n.startswith(name + '/') or n.startswith(name + '@')]

    def run(self, argv):
        with self.lock:
            self.calls.append(list(argv))
            handler = {'zfs': self._zfs, 'zoneadm': self._zoneadm, 'vmadm': self._vmadm,
                       'sysinfo': self._sysinfo}.get(argv[0])
            answer = handler(list(argv[1:])) if handler and self.which(argv[0], required=False) else None
        if answer is None:
            raise AssertionError('unexpected command: %r' % (argv,))
        return answer

    # -- zfs --

    def _zfs(self, cmd):
        verb = cmd[0]
        if verb == 'list':
            return self._list(cmd)
        if verb == 'get' and cmd[1:3] == ['-Hp', '-o'] and len(cmd) == 6:
            return self._get(cmd[3], cmd[4], cmd[5])
        return getattr(self, '_zfs_' + verb, lambda cmd: None)(cmd)

    def _list(self, cmd):
        if cmd[:4] == ['list', '-H', '-o', _zfs.LIST_COLUMNS] and cmd[4:6] == ['-t', 'filesystem,volume,snapshot']:
            roots = cmd[7:] if cmd[6:7] == ['-r'] else []
            for root in roots:
                if root not in self.datasets:
                    return _missing(root)
            names = sorted({n for r in roots for n in self._below(r)} if roots else self.datasets)
            rows = []
            for n in names:
                d = self.datasets[n]
                rows.append('\t'.join([n] + [d[k] or '-' for k in ('origin', 'mountpoint', 'ignore')]))
            return 0, ''.join(r + '\n' for r in rows), ''
        if cmd[:4] == ['list', '-H', '-o', 'name'] and len(cmd) == 5:
            return (0, cmd[4] + '\n', '') if cmd[4] in self.datasets else _missing(cmd[4])
        if cmd[:4] == ['list', '-H', '-o', 'name'] and cmd[4:9] == ['-t', 'snapshot', '-r', '-d', '1'] and len(cmd) == 10:
            if cmd[9] not in self.datasets:
                return _missing(cmd[9])
            return 0, ''.join(n + '\n' for n in sorted(self.datasets) if n.startswith(cmd[9] + '@')), ''
        return None

    def _get(self, columns, props, name):
        if name not in self.datasets:
            return _missing(name)
        d = self.datasets[name]
        values = [d['props'].get(p, d.get(p)) or '-' for p in props.split(',')]
        if columns == 'value':
            return 0, ''.join(v + '\n' for v in values), ''
        if columns == 'property,value':
            return 0, ''.join('%s\t%s\n' % pv for pv in zip(props.split(','), values)), ''
        return None

    def _zfs_snapshot(self, cmd):
        if len(cmd) != 2:
            return None
        dataset = cmd[1].split('@')[0]
        if dataset not in self.datasets:
            return _missing(dataset)
        if cmd[1] in self.datasets:
            return 1, '', "cannot create snapshot '%s': dataset already exists\n" % cmd[1]
        self.add(cmd[1], volsize=self.datasets[dataset]['volsize'])   # a volume's snapshot keeps its volsize
        return 0, '', ''

    def _zfs_rename(self, cmd):
        if len(cmd) != 3:
            return None
        old, new = cmd[1], cmd[2]
        if old not in self.datasets:
            return _missing(old)
        for name in self._below(old):
            self.datasets[new + name[len(old):]] = self.datasets.pop(name)
        return 0, '', ''

    def _zfs_set(self, cmd):
        if len(cmd) != 3 or '=' not in cmd[1]:
            return None
        if cmd[2] not in self.datasets:
            return _missing(cmd[2])
        prop, dummy, value = cmd[1].partition('=')
        self.datasets[cmd[2]]['props'][prop] = value
        return 0, '', ''

    def _zfs_destroy(self, cmd):
        recursive = cmd[1:2] == ['-r']
        if len(cmd) != 2 + recursive:
            return None
        name = cmd[-1]
        if name not in self.datasets:
            return _missing(name)
        if self.destroy_fails:
            return 1, '', self.destroy_fails
        doomed = self._below(name) if recursive else [name]
        if not recursive and len(self._below(name)) > 1:
            return 1, '', "cannot destroy '%s': filesystem has children\n" % name
        clones = [n for n, d in self.datasets.items()
                  if d['origin'] and d['origin'] in doomed and n not in doomed]
        if clones:
            return 1, '', "cannot destroy '%s': filesystem has dependent clones\n" % name
        for n in doomed:
            del self.datasets[n]
        return 0, '', ''

    def popen(self, argv, stderr):
        """`zfs receive -u <target>`: the stream written to stdin is checked when the command is waited for."""
        with self.lock:
            self.calls.append(list(argv))
        assert argv[:3] == ['zfs', 'receive', '-u'] and len(argv) == 4, argv
        proc = _Process(argv, stderr, lambda proc: self._receive(argv[3], proc), accept=self.receive_accept)
        self.processes.append(proc)
        return proc

    def _receive(self, target, proc):
        uuid = target.split('/')[-1].replace('-partial', '')
        origin = self.origins.get(uuid)
        origin = '%s/%s@final' % (target.split('/')[0], origin) if origin else None
        with self.lock:
            if self.receive_rc:
                return self.receive_rc, self.receive_err
            if target in self.datasets:
                return 1, "cannot receive new filesystem stream: destination '%s' exists\n" % target
            if proc.killed or proc.stdin.getvalue() != self.streams.get(uuid):
                return 1, 'cannot receive: invalid stream (bad magic number)\n'
            if origin and origin not in self.datasets:
                return 1, 'cannot receive: local origin for clone %s@final does not exist\n' % target
            self.add(target, origin=origin, mountpoint=None)
            self.add(target + '@final')
            return 0, ''

    def popen_out(self, argv, stderr):
        """`zfs send [-i from] snapshot`: stdout gives stream_of(snapshot, from); waiting gives send_rc/send_err."""
        with self.lock:
            self.calls.append(list(argv))
        assert argv[:2] == ['zfs', 'send'], argv
        incremental_from = argv[3] if argv[2] == '-i' else None
        snapshot = argv[-1]
        if snapshot not in self.datasets:
            proc = _Process(argv, stderr, lambda proc: (1, "cannot open '%s': dataset does not exist\n" % snapshot))
        else:
            self.sends.append((incremental_from, snapshot))
            proc = _Process(argv, stderr, lambda proc: (self.send_rc, self.send_err), stream_of(snapshot, incremental_from))
        self.processes.append(proc)
        return proc

    # -- zoneadm, vmadm, sysinfo --

    def _zoneadm(self, cmd):
        if cmd != ['list', '-pc']:
            return None
        if isinstance(self.zone_roots, str):
            return 0, self.zone_roots, ''
        lines = ['0:global:running:/::liveimg:shared:0']
        lines += ['%d:z%d:running:%s:%s:joyent:excl:%d' % (i + 1, i, root, ZONE_VM, i + 1)
                  for i, root in enumerate(self.zone_roots)]
        return 0, '\n'.join(lines) + '\n', ''

    def zone_root_set(self):
        """The zone roots zoneadm lists (as _inventory.parse_zone_roots reads them)."""
        return parse_zone_roots(self._zoneadm(['list', '-pc'])[1]) if self.zone_roots is not None else set()

    def _vmadm(self, cmd):
        if len(cmd) != 2 or cmd[0] not in ('get', 'stop'):
            return None
        uuid = cmd[1]
        if uuid not in self.vms:
            return 1, '', 'Could not find VM %s\n' % uuid
        if cmd[0] == 'get':
            return 0, json.dumps(self.vms[uuid]), ''
        if self.stop_works:
            self.vms[uuid]['state'] = 'stopped'
        return 0, 'Successfully completed stop for VM %s\n' % uuid, ''

    def _sysinfo(self, cmd):
        return (0, json.dumps(self.sysinfo, indent=2) + '\n', '') if cmd == [] else None


class ScriptedRunner:
    """A Runner answering from a script (the module docstring has its API)."""

    def __init__(self, *answers, paths=None):
        self.script = answers[0] if len(answers) == 1 and isinstance(answers[0], dict) else list(answers)
        self.paths = paths
        self.calls, self.which_calls = [], []

    def which(self, name, required=True):
        self.which_calls.append((name, required))
        path = '/usr/sbin/' + name if self.paths is None else self.paths.get(name)
        if required and not path:
            raise CommandError('the %s command was not found on the host (searched PATH, /usr/sbin, /sbin)' % name)
        return path

    def run(self, argv):
        self.calls.append(list(argv))
        if isinstance(self.script, dict):
            if argv[0] in self.script:
                return self.script[argv[0]]
        elif self.script:
            return self.script.pop(0) if len(self.script) > 1 else self.script[0]
        raise AssertionError('no command may run: %r' % (argv,))

    def popen(self, argv, stderr):
        self.calls.append(list(argv))
        return ('popen', argv, stderr)

    def popen_out(self, argv, stderr):
        self.calls.append(list(argv))
        return ('popen_out', argv, stderr)


def manifest_with(base, **fields):
    """A deep copy of a manifest with top-level fields replaced (None removes) and files[0] fields given as
    file_<key>."""
    m = copy.deepcopy(base)
    for key, value in fields.items():
        target, key = (m['files'][0], key[5:]) if key.startswith('file_') else (m, key)
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    return m


def warnings_of(result):
    """The warning texts of a module result (ansible-core 2.19 returns them as WarningSummary objects)."""
    return [w if isinstance(w, str) else w['event']['msg'] for w in result.get('warnings', [])]


# ---- fake image servers behind ImageServerClient's Request ----

class FakeResponse:
    """What Request.open returns: a body to read, a status and headers."""

    def __init__(self, body=b'', status=200, headers=None):
        self._body = io.BytesIO(body)
        self.status = status
        self.headers = email.message.Message()
        for key, value in (headers or {}).items():
            self.headers[key] = value
        self.closed = False

    def read(self, size=-1):
        return self._body.read(size)

    def close(self):
        self.closed = True


class FakeServers:
    """Stands in for ansible.module_utils.urls.Request: answers GETs from a table of URL -> (status, body)."""

    def __init__(self):
        self.routes = {}
        self.requests = []
        self.made = []

    def serve(self, url, body, status=200):
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        self.routes[url] = (status, body)

    def image(self, base, manifest, file_body):
        self.serve('%s/images/%s' % (base, manifest['uuid']), manifest)
        self.serve('%s/images/%s/file' % (base, manifest['uuid']), file_body)

    def __call__(self, **kwargs):
        self.made.append(kwargs)
        return self

    def open(self, method, url, headers=None, decompress=True):
        assert method == 'GET', method
        self.requests.append(url)
        # an exact route (with its query) first, then the route of the path alone
        missing = (404, b'{"code": "ResourceNotFound", "message": "not found"}')
        status, body = self.routes.get(url) or self.routes.get(url.split('?')[0], missing)
        if status >= 400:
            raise HTTPError(url, status, 'error', email.message.Message(), io.BytesIO(body))
        return FakeResponse(body, status, {'Content-Length': str(len(body))})

    def file_requests(self):
        return [u for u in self.requests if u.split('?')[0].endswith('/file')]


# ---- fake image server clients behind client_for ----

class FakeClient:
    """One source's client made by FakeClients: ping() and list_raw()."""

    def __init__(self, clients, source, listing):
        self.clients, self.source, self.listing = clients, source, listing

    def ping(self):
        self.clients.pinged.append(self.source.base)
        if self.clients.ping_error:
            raise SourceError(self.clients.ping_error)
        return True

    def list_raw(self):
        if isinstance(self.listing, Exception):
            raise self.listing
        return self.listing


class FakeClients:
    """Stands in for client_for: a FakeClient per source base URL (the module docstring has its API)."""

    def __init__(self, listings=None, default=(), ping_error=None):
        self.listings = listings or {}
        self.default = list(default)
        self.ping_error = ping_error
        self.made, self.pinged = [], []

    def __call__(self, source, **kw):
        self.made.append((source, kw))
        listing = self.listings.get(source.base, self.default)
        return listing if hasattr(listing, 'list_raw') else FakeClient(self, source, listing)


# ---- a fake clock and a server that trickles ----

class Clock:
    """A clock for _http_body.now that moves only when a test moves it."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Trickling(FakeResponse):
    """Gives step bytes per read, each read taking `seconds` of the fake clock."""

    def __init__(self, body, clock, seconds, step=1, headers=None):
        super().__init__(body, headers=headers)
        self.clock, self.seconds, self.step = clock, seconds, step
        self.reads = 0

    def read1(self, size=-1):
        self.clock.now += self.seconds
        self.reads += 1
        return self._body.read(min(size, self.step))

    def read(self, size=-1):
        raise AssertionError('a whole read() may block for ever: read1 only')


# ---- a leftover sources.list of the original layout ----

def leftover_sources_list(root, data, modern=True):
    """Write data as the host's sources.list under root (with /var/imgadm too when modern: a host of the new layout)."""
    if modern:
        os.makedirs(os.path.join(str(root), 'var', 'imgadm'), exist_ok=True)
    path = os.path.join(str(root), 'var', 'db', 'imgadm', 'sources.list')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)


BAD_LINES = [
    (True, b'# caf\xe9\nhttp://mirror.example/datasets\n', 'is not UTF-8 text'),
    (True, b'http://mirror.example/datasets\nftp://old.example/datasets\n', 'line 2 not imported'),
    (False, b'http://mirror.example/datasets\nftp://old.example/datasets\n', 'line 2 skipped'),
]


# ---- answer headers ----

def message_of(*pairs):
    """Headers as an email message: a header may repeat."""
    message = email.message.Message()
    for key, value in pairs:
        message[key] = value
    return message


# ---- one ImageServerClient over a scripted Request ----

def ok(body=b'', status=200, headers=None):
    """An answer of FakeRequest: body (JSON unless bytes) with a status and headers."""
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    return lambda url: FakeResponse(body, status, headers)


def http_error(code, body=b''):
    """An answer of FakeRequest: the HTTPError Request raises for an HTTP error status."""
    def answer(url):
        raise HTTPError(url, code, http.client.responses.get(code, 'Error'), email.message.Message(), io.BytesIO(body))
    return answer


class FakeRequest:
    """Stands in for ansible.module_utils.urls.Request: records open() calls, answers in order (the last repeats)."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def open(self, method, url, headers=None, decompress=True):
        self.calls.append({'method': method, 'url': url, 'headers': dict(headers or {}), 'decompress': decompress})
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(url)


def imgapi_client(*answers, url='http://img.example.com', retries=3):
    """(an ImageServerClient of url whose Request gives answers, its FakeRequest, the sleeps it asked for)."""
    sleeps = []
    c = ImageServerClient(ImageSource(url), retries=retries, sleep=sleeps.append)
    c._request = FakeRequest(*answers)
    return c, c._request, sleeps


def manifests(count, prefix='0'):
    """count manifests with distinct, ordered UUIDs."""
    return [{'v': 2, 'uuid': '%s%07x-0000-4000-8000-%012x' % (prefix, i, i), 'name': 'img%d' % i} for i in range(count)]


def paged(images, default_limit=1000):
    """An IMGAPI ListImages answer: limit (default and maximum 1000) from the marker image, which is included again."""
    def answer(url):
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
        start = 0
        if 'marker' in query:
            start = next(i for i, m in enumerate(images) if m['uuid'] == query['marker'])
        limit = int(query.get('limit', default_limit))
        return FakeResponse(json.dumps(images[start:start + limit]).encode())
    return answer


def queries(req):
    """The query strings of the URLs a FakeRequest was asked for."""
    return [urllib.parse.urlsplit(call['url']).query for call in req.calls]
