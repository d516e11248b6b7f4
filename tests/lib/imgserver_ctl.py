"""Test-side control of imgserver.py: start and stop the process, switch faults, read its request log.

Also lays out images in the directory the server reads."""

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

SERVER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "imgserver.py")
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


def _write_json(path, obj):
    """Write JSON via rename: the running server may read it at any moment."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def publish(images_dir, manifest, file_path, dsmanifest=None):
    """Lay out one image (file, optional DSAPI manifest, then manifest) and return its directory."""
    image_dir = os.path.join(images_dir, manifest["uuid"])
    os.makedirs(image_dir, exist_ok=True)
    tmp = os.path.join(image_dir, f"file.tmp{os.getpid()}")
    try:
        os.link(file_path, tmp)
    except OSError:
        shutil.copyfile(file_path, tmp)  # other filesystem, or links not allowed
    os.replace(tmp, os.path.join(image_dir, "file"))
    if os.path.lexists(tmp):   # rename(2) between two links to one file does nothing: a republish left tmp
        os.unlink(tmp)
    if dsmanifest is not None:
        _write_json(os.path.join(image_dir, "dsmanifest.json"), dsmanifest)
    # The manifest goes last: once it exists the image is listed, so everything else must be there.
    _write_json(os.path.join(image_dir, "manifest.json"), manifest)
    return image_dir


class ImageServer:
    """One imgserver.py process on 127.0.0.1 (or another 127.0.0.x: bind); tls is make_ca_and_cert()'s dict or None.

    auth: "user:password" that the server then demands of every API request."""

    def __init__(self, images_dir, tls=None, default_channel=None, port=0, bind="127.0.0.1", auth=None):
        self.images_dir, self.tls, self.default_channel = images_dir, tls, default_channel
        self.wanted_port, self.bind, self.auth = port, bind, auth
        self.pid = self.port = None
        self._proc = self._state_dir = None
        self.ssl_context = ssl.create_default_context(cafile=tls["ca"]) if tls else None
        # No proxy handler: control calls must only ever go to 127.0.0.1, whatever the environment says.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                                   urllib.request.HTTPSHandler(context=self.ssl_context))

    @property
    def url(self):
        """Base URL of the running server."""
        return f"{'https' if self.tls else 'http'}://{self.bind}:{self.port}"

    def start(self):
        """Start the server and wait until it listens."""
        self._state_dir = tempfile.mkdtemp(prefix="imgserver-")
        port_file = os.path.join(self._state_dir, "port")
        cmd = [sys.executable, SERVER_SCRIPT, "--images", self.images_dir, "--port", str(self.wanted_port), "--port-file", port_file,
               "--pid-file", os.path.join(self._state_dir, "pid")]
        if self.tls:
            cmd += ["--tls-cert", self.tls["cert"], "--tls-key", self.tls["key"]]
        if self.default_channel:
            cmd += ["--default-channel", self.default_channel]
        if self.bind != "127.0.0.1":
            cmd += ["--bind", self.bind]
        if self.auth is not None:
            cmd += ["--auth", self.auth]
        with open(os.path.join(self._state_dir, "log"), "wb") as log:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        self.pid = self._proc.pid
        deadline = time.monotonic() + START_TIMEOUT
        while not os.path.exists(port_file):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                log_text = self._log_tail()
                self.stop()
                raise RuntimeError(f"imgserver did not start: {log_text}")
            time.sleep(0.02)
        with open(port_file, encoding="utf-8") as f:
            self.port = int(f.read())
        return self

    def stop(self):
        """Stop the server by its PID: SIGTERM, then SIGKILL if it lingers."""
        if self._proc is not None:
            if self._proc.poll() is None:
                os.kill(self.pid, signal.SIGTERM)
                try:
                    self._proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    os.kill(self.pid, signal.SIGKILL)
                    self._proc.wait(STOP_TIMEOUT)
            self._proc = None
        if self._state_dir:
            shutil.rmtree(self._state_dir, ignore_errors=True)
            self._state_dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _log_tail(self):
        """The end of the server's output, for start-up errors."""
        try:
            with open(os.path.join(self._state_dir, "log"), encoding="utf-8", errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return "(no log)"

    def _control(self, method, what, body=None):
        """Call the control API; a refusal raises ValueError with the server's message."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}/__control/{what}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with self._opener.open(request, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as e:
            with e:  # an HTTPError holds the open response
                raise ValueError(f"imgserver refused {method} {what}: {e.read().decode(errors='replace')}") from None

    def add_fault(self, kind, uuid=None, times=None, arg=None, on=None, to=None):
        """Add a fault and return it as the server stored it (to: the base URL of a redirect or file_url fault)."""
        spec = {"kind": kind, "uuid": uuid, "times": times, "arg": arg}
        if on is not None:
            spec["on"] = on
        if to is not None:
            spec["to"] = to
        return self._control("POST", "faults", spec)

    def faults(self):
        """The faults still active."""
        return self._control("GET", "faults")

    def clear_faults(self):
        """Remove every fault."""
        self._control("DELETE", "faults")

    def requests(self):
        """Recent requests as [{method, path, query, headers, accept_version, authorization}], oldest first."""
        return self._control("GET", "requests")

    def clear_requests(self):
        """Empty the request log."""
        self._control("DELETE", "requests")
