"""Real nginx for tests: /usr/sbin/nginx in the foreground on 127.0.0.1, with a minimal main config of its own that
includes one server block (the image_mirror role's), every path it writes under its own directory; stopped by PID."""
from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

from tests.lib.procs import kill_tree

NGINX = os.environ.get('SMARTOS_IMAGES_TEST_NGINX', '/usr/sbin/nginx')
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
# The account the workers run as when nginx starts as root (as a packaged nginx does): files it must serve have to
# be readable by others, as on a real mirror host.
WORKER_USERS = ('www-data', 'nginx', 'nobody')

MAIN_CONF = """\
{user}worker_processes 1;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{
    worker_connections 64;
}}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    sendfile on;
    include {include};
}}
"""


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def worker_user():
    """'user <name> <group>;' for a root master (the first of WORKER_USERS this machine has), else nothing."""
    if os.geteuid() != 0:
        return ''
    for name in WORKER_USERS:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return 'user %s %s;\n' % (name, grp.getgrgid(entry.pw_gid).gr_name)
    return ''


class Nginx:
    """One nginx master process (and its worker) serving the server block in `include`, which listens on `port`."""

    def __init__(self, include, port, host='127.0.0.1'):
        self.include, self.port, self.host = include, port, host
        self.dir = self.proc = None

    @property
    def url(self):
        return 'http://%s:%d' % (self.host, self.port)

    def _write_main(self):
        """The main config in a fresh directory (the -p prefix); its path."""
        self.dir = tempfile.mkdtemp(prefix='nginx-test-')
        os.chmod(self.dir, 0o755)
        path = os.path.join(self.dir, 'nginx.conf')
        with open(path, 'w', encoding='utf-8') as f:
            f.write(MAIN_CONF.format(user=worker_user(), d=self.dir, include=self.include))
        return path

    def argv(self, *extra):
        return [NGINX, '-p', self.dir + '/', '-c', os.path.join(self.dir, 'nginx.conf'), '-e',
                os.path.join(self.dir, 'error.log')] + list(extra)

    def test(self):
        """`nginx -t` on the main config with the server block: the CompletedProcess (output in stderr)."""
        if self.dir is None:
            self._write_main()
        return subprocess.run(self.argv('-t'), capture_output=True, text=True, timeout=30, check=False)

    def start(self):
        """Start nginx and wait (bounded) until it answers HTTP on its port."""
        if self.dir is None:
            self._write_main()
        log = open(os.path.join(self.dir, 'stderr.log'), 'wb')
        with log:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError('nginx did not start on port %d:\n%s' % (self.port, tail))
            time.sleep(0.05)
        return self

    def _answers(self):
        """Whether an HTTP request to / gets any HTTP answer."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(self.url + '/', timeout=2):
                return True
        except urllib.error.HTTPError as e:
            e.close()
            return True
        except OSError:
            return False

    def reload(self):
        """SIGHUP: re-read the configuration (as a service manager's reload does)."""
        os.kill(self.proc.pid, signal.SIGHUP)

    def stop(self):
        """Stop the master by its PID (SIGQUIT, then SIGKILL to it and its workers), and remove the directory."""
        if self.proc is not None:
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGQUIT)
                try:
                    self.proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    kill_tree(self.proc.pid)
                    self.proc.wait(STOP_TIMEOUT)
            self.proc = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def log_tail(self):
        """The end of nginx's error log and output, for failures."""
        text = ''
        for name in ('stderr.log', 'error.log'):
            try:
                with open(os.path.join(self.dir, name), encoding='utf-8', errors='replace') as f:
                    text += '%s:\n%s\n' % (name, f.read()[-3000:])
            except (OSError, TypeError):
                pass
        return text or '(no log)'

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
