# Private to the smartos.images collection: not a public API.
# Where host commands run: the one seam that unit tests replace.
from __future__ import annotations

import fcntl
import os
import subprocess
import sys

from ansible_collections.smartos.images.plugins.module_utils._errors import CommandError

C_LOCALE = {'LANG': 'C', 'LC_ALL': 'C', 'LC_MESSAGES': 'C'}


class Runner:
    """Runs host commands by argv, in the C locale, through AnsibleModule."""

    def __init__(self, module):
        self._module = module
        self._paths = {}

    def which(self, name, required=True):
        """Return the path of a host command, or None when optional and absent."""
        if name not in self._paths:
            self._paths[name] = self._module.get_bin_path(name, opt_dirs=['/usr/sbin', '/sbin', '/usr/bin'])
        if required and not self._paths[name]:
            raise CommandError('the %s command was not found on the host (searched PATH, /usr/sbin, /sbin)' % name)
        return self._paths[name]

    def run(self, argv):
        """Run argv to completion; return (rc, stdout, stderr)."""
        argv = [self.which(argv[0])] + list(argv[1:])
        return self._module.run_command(argv, environ_update=C_LOCALE)

    def popen(self, argv, stderr):
        """Start argv with a pipe on stdin, for streaming large inputs."""
        # run_command(data=...) would buffer a whole image in memory; a receive must stream.
        return self._streaming(argv, stderr, feed=True)

    def popen_out(self, argv, stderr):
        """Start argv with a pipe on stdout, for streaming large outputs."""
        # run_command would hold a whole send stream in memory; a send must stream.
        return self._streaming(argv, stderr, feed=False)

    def _streaming(self, argv, stderr, feed):
        """Start argv (C locale) with a widened pipe on its stdin (feed) or its stdout (not feed)."""
        env = dict(os.environ, **C_LOCALE)
        argv = [self.which(argv[0])] + list(argv[1:])
        # Popen (argv, no shell), not run_command, which would hold a whole image in memory: receive and send stream.
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE if feed else subprocess.DEVNULL,  # pylint: disable=ansible-bad-function
                                stdout=subprocess.DEVNULL if feed else subprocess.PIPE,
                                stderr=stderr, env=env, close_fds=True)
        widen_pipe(proc.stdin if feed else proc.stdout)
        return proc


# Linux only (F_SETPIPE_SZ, 1031 before Python 3.10 named it): a 1 MiB pipe instead of 64 KiB
# halves the time zfs-fuse spends receiving from a pipe; elsewhere the default pipe stays.
F_SETPIPE_SZ = getattr(fcntl, 'F_SETPIPE_SZ', 1031 if sys.platform.startswith('linux') else None)


def widen_pipe(pipe, size=1 << 20):
    """Ask for a bigger pipe buffer where the platform allows it; ignore a refusal."""
    if F_SETPIPE_SZ is None:
        return
    try:
        fcntl.fcntl(pipe.fileno(), F_SETPIPE_SZ, size)
    except OSError:
        pass
