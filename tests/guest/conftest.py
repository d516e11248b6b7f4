"""The kernel-ZFS lane: a qemu guest running Debian's OpenZFS (with zvols), booted once per session.

boot.sh starts the guest that build.sh made (`make guest`), and stops its qemu by PID at the end.
The modules run on the guest over SSH with real ansible-playbook; the image server and the images
live inside the guest (its own loopback, real `zfs send` on its kernel ZFS). A guest that is not
built, or does not boot, fails the session: it is never skipped.

SMARTOS_IMAGES_GUEST_RUN: the run directory of a guest that already runs (`tests/guest/boot.sh
start DIR`): the session then uses it as it is and leaves it running (for running one test by hand).
"""
from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import tarfile

import pytest

from tests.integration.conftest import BUILD, REPO, Play, collection_built  # noqa: F401  pylint: disable=unused-import

HERE = os.path.dirname(os.path.abspath(__file__))
BOOT = os.path.join(HERE, 'boot.sh')
POOL = 'zones'
GUEST_TREE = '/root/smartos-images-tests'   # where tests/lib and the helper go in the guest
HELPER = GUEST_TREE + '/tests/guest/guestside.py'
IMAGES = '/var/tmp/served'                  # what the guest's image server serves
BOOT_TIMEOUT = int(os.environ.get('GUEST_BOOT_TIMEOUT', '600'))


class Guest:
    """The running guest: commands over SSH, and the helper that runs inside it."""

    def __init__(self, rundir):
        self.rundir = rundir
        self.ssh_config = os.path.join(rundir, 'ssh_config')
        self.inventory = os.path.join(rundir, 'inventory')
        self.server_port = None

    def ssh(self, command, stdin=None, check=True, timeout=300):
        """Run a shell command in the guest; its stdout (text)."""
        proc = subprocess.run(['ssh', '-F', self.ssh_config, 'guest', command], input=stdin,
                              capture_output=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError('in the guest, %r failed (%d): %s'
                                 % (command, proc.returncode, proc.stderr.decode(errors='replace')))
        return proc.stdout.decode(errors='replace')

    def helper(self, command, timeout=300, **args):
        """Run guestside.py COMMAND with args; its JSON answer."""
        out = self.ssh('python3 %s %s %s' % (HELPER, command, shlex.quote(json.dumps(args))), timeout=timeout)
        return json.loads(out)

    def copy_tree(self):
        """tests/lib and tests/guest/guestside.py into the guest."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode='w') as tar:
            for rel in sorted(os.listdir(os.path.join(REPO, 'tests', 'lib'))):
                if rel.endswith('.py'):
                    tar.add(os.path.join(REPO, 'tests', 'lib', rel), arcname='tests/lib/' + rel)
            tar.add(os.path.join(HERE, 'guestside.py'), arcname='tests/guest/guestside.py')
            tar.add(os.path.join(HERE, 'zoneadm'), arcname='tests/guest/zoneadm')
        self.ssh('rm -rf %s && mkdir -p %s && tar -xf - -C %s' % (GUEST_TREE, GUEST_TREE, GUEST_TREE),
                 stdin=buf.getvalue())

    def datasets(self):
        """{name: (type, origin)} of everything on the pool."""
        return {name: (kind, None if origin == '-' else origin)
                for name, kind, origin in self.helper('datasets', pool=POOL)}

    def exists(self, name):
        return self.ssh('zfs list -H -o name %s' % shlex.quote(name), check=False).strip() == name


def _boot(action, rundir):
    proc = subprocess.run(['bash', BOOT, action, rundir], capture_output=True, text=True,
                          timeout=BOOT_TIMEOUT + 120, check=False)
    if proc.returncode != 0:
        pytest.fail('tests/guest/boot.sh %s failed (%d):\n%s%s' % (action, proc.returncode, proc.stdout, proc.stderr),
                    pytrace=False)
    return proc


@pytest.fixture(scope='session')
def guest():
    """The booted guest with a fresh pool on its second disk and the image server on its loopback."""
    given = os.environ.get('SMARTOS_IMAGES_GUEST_RUN')
    rundir = given or os.path.join('/var/tmp', 'smartos-images-guest-run-%d' % os.getpid())
    try:
        if not given:
            _boot('start', rundir)
        g = Guest(rundir)
        g.copy_tree()
        # SmartOS always has zoneadm; the stand-in lists the zones a test declares (VM roots are no images)
        g.ssh('install -m 755 %s/tests/guest/zoneadm /usr/local/sbin/zoneadm && rm -f /var/tmp/zones.list'
              % GUEST_TREE)
        g.ssh('if zpool list -H %(p)s >/dev/null 2>&1; then zpool destroy -f %(p)s; fi; '
              'zpool create -f -o ashift=12 %(p)s /dev/vdb && rm -rf %(i)s /var/imgadm /root/out'
              % {'p': POOL, 'i': IMAGES})
        g.server_port = g.helper('serve', images_dir=IMAGES, state_dir='/var/tmp/imgserver')['port']
        yield g
    finally:
        if not given:
            _boot('stop', rundir)
            subprocess.run(['rm', '-rf', rundir], check=False)


class GuestPlay(Play):
    """ansible-playbook runs of one task on the guest, over SSH."""

    def __init__(self, tmpdir, guest):
        super().__init__(tmpdir)
        self.guest = guest

    def target_args(self):
        return ['-i', self.guest.inventory]

    def command(self, task, check=False, diff=True, vars=None):
        argv, env, record = super().command(task, check, diff, vars)
        env.update(ANSIBLE_PIPELINING='1', ANSIBLE_HOST_KEY_CHECKING='0', ANSIBLE_TIMEOUT='60',
                   ANSIBLE_SSH_RETRIES='3', ANSIBLE_COLLECTIONS_PATH=BUILD,
                   ANSIBLE_SSH_CONTROL_PATH_DIR=os.path.join(self.guest.rundir, 'cp'))
        return argv, env, record


@pytest.fixture
def play(tmp_path, guest):
    return GuestPlay(str(tmp_path), guest)
