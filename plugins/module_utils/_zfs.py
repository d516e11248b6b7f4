# Private to the smartos.images collection: not a public API.
# The zfs command seam: list, receive, send, snapshot, rename, destroy, get; output parsing.
from __future__ import annotations

import collections
import time

from ansible_collections.smartos.images.plugins.module_utils._errors import CommandError

# imgadm: `zfs list -t filesystem,volume,snapshot -pH -o name,origin,mountpoint,imgadm:ignore`;
# zfs-fuse rejects -p, and none of these columns is numeric, so it is left out.
LIST_COLUMNS = 'name,origin,mountpoint,imgadm:ignore'

Dataset = collections.namedtuple('Dataset', 'name origin mountpoint ignore')

BUSY_RETRIES = 5
BUSY_DELAY = 0.4


def parse_list(text):
    """Parse `zfs list -H -o name,origin,mountpoint,imgadm:ignore` output into Datasets."""
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split('\t')
        if len(fields) != 4 or fields[0] in ('', '-'):
            raise CommandError('unexpected line in zfs list output: %r' % line)
        rows.append(Dataset(*[None if f == '-' else f for f in fields]))
    return rows


class Zfs:
    """The zfs CLI, through a Runner."""

    def __init__(self, runner):
        self.runner = runner

    def _run(self, argv, what):
        rc, out, err = self.runner.run(['zfs'] + argv)
        if rc != 0:
            raise CommandError('%s failed: %s' % (what, (err or out).strip() or 'exit code %d' % rc),
                               cmd=' '.join(['zfs'] + argv), rc=rc, stderr=err)
        return out

    def list(self, root=None):
        """All filesystems, volumes and snapshots (below root, a name or a list, if given), in one zfs call."""
        roots = [root] if isinstance(root, str) else list(root or [])
        argv = ['list', '-H', '-o', LIST_COLUMNS, '-t', 'filesystem,volume,snapshot']
        if roots:
            argv += ['-r'] + roots
        rc, out, err = self.runner.run(['zfs'] + argv)
        if rc != 0:
            if roots and 'does not exist' in err:
                raise CommandError('zfs pool or dataset %s does not exist (%s)'
                                   % (' or '.join('"%s"' % r for r in roots), err.strip()),
                                   cmd=' '.join(['zfs'] + argv), rc=rc, stderr=err)
            raise CommandError('zfs list failed: %s' % err.strip(), cmd=' '.join(['zfs'] + argv),
                               rc=rc, stderr=err)
        return parse_list(out)

    def exists(self, name):
        """True when the dataset or snapshot exists."""
        argv = ['zfs', 'list', '-H', '-o', 'name', name]
        rc, out, err = self.runner.run(argv)
        if rc == 0:
            return True
        if 'does not exist' in err:
            return False
        raise CommandError('zfs list %s failed: %s' % (name, err.strip()), cmd=' '.join(argv), rc=rc, stderr=err)

    def snapshots(self, name):
        """Names of the snapshots directly on a dataset."""
        out = self._run(['list', '-H', '-o', 'name', '-t', 'snapshot', '-r', '-d', '1', name],
                        'listing snapshots of %s' % name)
        return [line for line in out.splitlines() if line.startswith(name + '@')]

    def guid(self, snapshot):
        """The guid property of a snapshot (exact, as a string)."""
        return self._run(['get', '-Hp', '-o', 'value', 'guid', snapshot], 'reading guid').strip()

    def properties(self, name, props):
        """Exact values of some properties of a dataset or snapshot (None for '-'); None when it does not exist."""
        argv = ['zfs', 'get', '-Hp', '-o', 'property,value', ','.join(props), name]
        rc, out, err = self.runner.run(argv)
        if rc != 0:
            if 'does not exist' in err:
                return None
            raise CommandError('zfs get %s failed: %s' % (name, err.strip() or 'exit code %d' % rc),
                               cmd=' '.join(argv), rc=rc, stderr=err)
        values = {}
        for line in out.splitlines():
            prop, dummy, value = line.partition('\t')
            values[prop] = None if value == '-' else value
        return values

    def snapshot(self, name):
        """zfs snapshot dataset@snap."""
        self._run(['snapshot', name], 'snapshotting %s' % name)

    def destroy_snapshot(self, name):
        """zfs destroy of one snapshot, retrying briefly while it is busy."""
        if '@' not in name:
            raise CommandError('refusing to destroy %s: not a snapshot' % name)
        self._retry_busy(['destroy', name], 'destroying %s' % name)

    def send(self, snapshot, stderr, incremental_from=None):
        """Start `zfs send [-i from] snapshot` writing the stream to its stdout."""
        argv = ['zfs', 'send'] + (['-i', incremental_from] if incremental_from else []) + [snapshot]
        return self.runner.popen_out(argv, stderr=stderr)

    def set_property(self, name, prop, value):
        """zfs set prop=value name."""
        self._run(['set', '%s=%s' % (prop, value), name], 'setting %s on %s' % (prop, name))

    def rename(self, old, new):
        """Rename a dataset or snapshot, retrying briefly while it is busy."""
        self._retry_busy(['rename', old, new], 'renaming %s to %s' % (old, new))

    def destroy_recursive(self, name):
        """zfs destroy -r, retrying briefly while the dataset is busy."""
        self._retry_busy(['destroy', '-r', name], 'destroying %s' % name)

    def _retry_busy(self, argv, what):
        # A dataset unmounted a moment ago can still be busy (zfs-fuse, and SmartOS under load).
        for attempt in range(BUSY_RETRIES):
            rc, out, err = self.runner.run(['zfs'] + argv)
            if rc == 0:
                return
            if 'busy' not in err or attempt == BUSY_RETRIES - 1:
                break
            time.sleep(BUSY_DELAY * (attempt + 1))
        # kernel ZFS: a volume is busy while its /dev/zvol device is open (a VM, or udev just after it appeared)
        hint = ' (a process may be using its mountpoint, or its /dev/zvol device if it is a volume)' if 'busy' in err else ''
        raise CommandError('%s failed: %s%s' % (what, err.strip() or 'exit code %d' % rc, hint),
                           cmd=' '.join(['zfs'] + argv), rc=rc, stderr=err)

    def receive(self, name, stderr):
        """Start `zfs receive -u name` reading a send stream from its stdin."""
        # -u: the half-received dataset is never mounted, so it is never busy and never seen.
        return self.runner.popen(['zfs', 'receive', '-u', name], stderr=stderr)
