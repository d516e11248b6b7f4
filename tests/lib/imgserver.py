"""A real IMGAPI/DSAPI image server for tests, serving a directory of images on a 127.0.0.x loopback address only.

Faults (wrong bytes, short bodies, drops, delays, trickles, error statuses, bad JSON, redirects, oversized manifests,
endless listings, listings that ignore the query string as a static mirror does) are switched at run time via
/__control. With --auth it demands HTTP Basic credentials."""

import argparse
import base64
import binascii
import collections
import datetime
import email.utils
import hashlib
import http.server
import itertools
import json
import os
import re
import signal
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
import uuid as uuidlib
from urllib.parse import parse_qsl, urlsplit

VERSION = "4.13.1"
SERVER_NAME = "imgserver-test"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
STATES = {"active", "disabled", "unactivated", "creating", "failed"}
SORTS = {"published_at", "published_at.asc", "published_at.desc"}
DSAPI_FILTERS = ("name", "version", "type", "os", "restricted_to_uuid", "creator_uuid")
MAX_LIMIT = 1000
CHUNK = 64 * 1024
MAX_SLOW = 60.0
TRICKLE_PAUSES = 20
TRICKLE_MAX = 60.0   # a `trickle` fault sends slowly for at most this long, then the rest at full speed
HUGE_DEFAULT = 5 << 20
HUGE_MAX = 64 << 20
REDIRECT_CODES = {301, 302, 303, 307, 308}
LOOPBACK_RE = re.compile(r"^127\.0\.0\.([1-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-4])$")
REQUEST_LOG_SIZE = 1000
ENDPOINTS = {"ping", "list", "manifest", "file"}
OWNER = "930896af-bf8c-48d4-885c-6573a94b1853"
# Endpoints each fault kind can act on, and those it acts on when the fault names none.
APPLIES = {
    "wrong_bytes": {"file"}, "short_body": {"file"}, "drop": {"file"}, "no_content_length": {"file"},
    "wrong_size": {"manifest", "list"}, "bad_json": {"manifest", "list"},
    "status": ENDPOINTS, "slow": ENDPOINTS,
    "trickle": {"file", "manifest", "list"}, "redirect": ENDPOINTS, "huge": {"manifest", "list"},
    "endless": {"list"}, "ignore_marker": {"list"}, "ignore_query": {"list"}, "chunked_json": {"manifest", "list"},
    "file_url": {"manifest", "list"}, "slow_headers": ENDPOINTS,
}
DEFAULT_ON = dict(APPLIES, status={"manifest", "file"}, slow={"manifest", "file"}, trickle={"file"},
                  redirect={"manifest", "file"}, huge={"manifest"}, slow_headers={"manifest", "file"})
REST_CODES = {
    400: "BadRequestError", 401: "UnauthorizedError", 403: "ForbiddenError", 404: "ResourceNotFound",
    409: "ConflictError", 422: "ValidationFailed", 500: "InternalError", 501: "NotAvailable",
    502: "BadGatewayError", 503: "ServiceUnavailableError", 504: "GatewayTimeoutError",
}
EPOCH = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)


class Answered(Exception):
    """The request was answered already (a redirect fault)."""


class ApiError(Exception):
    """An error answer: HTTP status and JSON body."""

    def __init__(self, status, body):
        super().__init__(status)
        self.status, self.body = status, body


def rest_error(status, code, message, **extra):
    """Build a restify-style (IMGAPI) error."""
    return ApiError(status, {"code": code, "message": message, **extra})


def invalid_param(field, value):
    """Build IMGAPI's 422 InvalidParameter error for a bad query value."""
    return rest_error(422, "InvalidParameter", f'invalid {field}: "{value}"', errors=[{"field": field, "code": "Invalid"}])


def dsapi_error(status, message):
    """Build a DSAPI-style error."""
    return ApiError(status, {"error": {"message": message, "code": status}})


def parse_time(value):
    """Parse an ISO 8601 timestamp (v1 or v2 manifest style) to an aware datetime, or None."""
    try:
        parsed = datetime.datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)  # "Z": 3.11+
    except (AttributeError, TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)


def sort_key(manifest):
    """Order by publication time; ties by uuid so that pages are stable."""
    published = parse_time(manifest.get("published_at") or manifest.get("created_at")) or EPOCH
    return published, manifest.get("uuid", "")


def api_major(header):
    """Return the API major version (1 or 2) an Accept-Version range selects, or None if unsupported."""
    if header is None:
        return 1  # restify treats a request without the header as ~1
    match = re.fullmatch(r"\s*(?:[*x]|[~^=]?\s*v?(\d+)(?:\.(?:0|x|\*)){0,2})\s*", header)
    if not match:
        return None
    major = int(match[1]) if match[1] else 2
    return major if major in (1, 2) else None


def visible(manifest, channel):
    """Whether an image shows on a channel (None: no channel selected, '*': every channel)."""
    channels = manifest.get("channels")
    return channels is None or channel == "*" or channel in channels


def compact_json(obj):
    """JSON as IMGAPI (node's JSON.stringify) sends it: no spaces, non-ASCII characters as UTF-8 (a lone surrogate,
    which UTF-8 cannot carry, escaped as \\uXXXX as JSON.stringify does)."""
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, separators=(",", ":")).encode("ascii")


def write_atomic(path, text):
    """Write a file via rename so a reader never sees it partially written."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


class Store:
    """The image directory, read afresh on every request so tests can change it while serving."""

    def __init__(self, root):
        self.root = root
        self._md5 = {}
        self._lock = threading.Lock()

    def manifest(self, uuid, name="manifest.json"):
        """One image's manifest (or DSAPI manifest with name='dsmanifest.json'), or None."""
        if not UUID_RE.match(uuid):
            return None
        try:
            with open(os.path.join(self.root, uuid, name), encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def all(self, name="manifest.json"):
        """Every image's manifest of that name."""
        with os.scandir(self.root) as entries:
            found = (self.manifest(e.name, name) for e in entries)
            return [m for m in found if m is not None]

    def file_path(self, uuid):
        """Where an image's file lives."""
        return os.path.join(self.root, uuid, "file")

    def md5(self, path, st):
        """Base64 MD5 of a file, cached by identity and mtime since hashing big files per request is slow."""
        key = (path, st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            digest = self._md5.get(key)
        if digest is None:
            h = hashlib.md5()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            digest = base64.b64encode(h.digest()).decode()
            with self._lock:
                if len(self._md5) > 4096:
                    self._md5.clear()
                self._md5[key] = digest
        return digest


class Faults:
    """Active faults; every request a fault matches uses up one of its `times`."""

    def __init__(self):
        self._lock = threading.Lock()
        self._faults = []
        self._next_id = 1

    def add(self, spec):
        """Validate and add a fault from its control-API JSON; return it."""
        kind = spec.get("kind")
        if kind not in APPLIES:
            raise ValueError(f"unknown fault kind: {kind!r} (known: {', '.join(sorted(APPLIES))})")
        on = spec.get("on") or DEFAULT_ON[kind]
        on = {on} if isinstance(on, str) else set(on)
        on = APPLIES[kind] if "any" in on else on
        if not on <= APPLIES[kind]:
            raise ValueError(f"fault {kind} cannot act on {sorted(on - APPLIES[kind])}")
        times, arg = spec.get("times"), spec.get("arg")
        if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
            raise ValueError("times must be a positive integer or null")
        if arg is not None and (isinstance(arg, bool) or not isinstance(arg, (int, float)) or arg < 0):
            raise ValueError("arg must be a non-negative number or null")
        if kind == "status" and arg is not None and not 400 <= arg <= 599:
            raise ValueError("status arg must be an HTTP error status (400-599)")
        if kind == "redirect" and arg is not None and arg not in REDIRECT_CODES:
            raise ValueError(f"redirect arg must be one of {sorted(REDIRECT_CODES)}")
        to = spec.get("to")
        if kind in ("redirect", "file_url"):
            parts = urlsplit(to) if isinstance(to, str) else None
            host = parts.hostname if parts is not None else None
            if parts is None or parts.scheme not in ("http", "https") or not (host == "localhost"
                                                                              or LOOPBACK_RE.match(host or "")):
                raise ValueError(f"{kind} needs `to`: an http(s)://127.0.0.x[:port] or localhost base URL")
        elif to is not None:
            raise ValueError("only redirect and file_url faults take `to`")
        with self._lock:
            fault = {"id": self._next_id, "kind": kind, "uuid": spec.get("uuid"), "times": times,
                     "arg": arg, "on": sorted(on), "to": to}
            self._next_id += 1
            self._faults.append(fault)
            return dict(fault)

    def take(self, endpoint, uuids):
        """Use up and return the faults matching a request on `endpoint` about the images `uuids`."""
        hits = []
        with self._lock:
            for fault in list(self._faults):
                if endpoint in fault["on"] and (fault["uuid"] is None or fault["uuid"] in uuids):
                    hits.append(dict(fault))
                    if fault["times"] is not None:
                        fault["times"] -= 1
                        if fault["times"] == 0:
                            self._faults.remove(fault)
        return hits

    def list(self):
        """The active faults."""
        with self._lock:
            return [dict(f) for f in self._faults]

    def clear(self):
        """Remove every fault."""
        with self._lock:
            self._faults.clear()


def slow_seconds(fault):
    """How long a `slow` fault delays (default 1 s, bounded by MAX_SLOW)."""
    return min(fault["arg"] if fault["arg"] is not None else 1.0, MAX_SLOW)


class Trickle:
    """A `trickle` fault: `arg` bytes a second (default 1) for at most TRICKLE_MAX seconds, then full speed."""

    def __init__(self, fault):
        self.rate = max(1, int(fault["arg"] or 1)) if fault else None
        self.started = time.monotonic()

    def split(self, data):
        """Yield data in the pieces to write, sleeping between them while the trickle lasts."""
        while data:
            if self.rate is None or time.monotonic() - self.started > TRICKLE_MAX:
                yield data
                return
            yield data[:self.rate]
            data = data[self.rate:]
            time.sleep(1.0)


def synthetic(n):
    """A made-up manifest for the endless listing faults (its file does not exist)."""
    return {"v": 2, "uuid": "%08x-0000-4000-8000-%012x" % (n >> 48, n & 0xFFFFFFFFFFFF), "owner": OWNER,
            "name": "endless", "version": f"1.0.{n}", "state": "active", "disabled": False, "public": True,
            "published_at": "2020-01-01T00:00:00Z", "type": "zone-dataset", "os": "smartos",
            "files": [{"sha1": "0" * 40, "size": 1, "compression": "none"}]}


def hit(hits, kind, uuid=None):
    """The first used-up fault of a kind (covering `uuid` when one is given), or None."""
    return next((f for f in hits if f["kind"] == kind and (uuid is None or f["uuid"] in (None, uuid))), None)


class Handler(http.server.BaseHTTPRequestHandler):
    """Answers IMGAPI, DSAPI and control requests."""

    protocol_version = "HTTP/1.1"
    timeout = 60  # an idle keep-alive connection must not hold its thread forever

    def version_string(self):
        return SERVER_NAME

    def log_request(self, code="-", size="-"):
        pass  # requests are kept in the control log; stderr only gets errors

    def do_GET(self):
        self._dispatch()

    do_POST = do_DELETE = do_GET

    def _dispatch(self):
        """Log the request, route it and turn ApiError into its JSON answer."""
        self.started = time.monotonic()
        self.req_id = self.headers.get("x-request-id") or str(uuidlib.uuid4())
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))  # drained to keep the connection usable
        try:
            if url.path.startswith("/__control/"):
                return self._control(url.path[len("/__control/"):], body)
            self.server.record({"method": self.command, "path": url.path, "query": query,
                                "headers": {k.lower(): v for k, v in self.headers.items()},
                                "accept_version": self.headers.get("Accept-Version"),
                                "authorization": self.headers.get("Authorization")})
            if self.command != "GET":
                raise rest_error(405, "MethodNotAllowedError", f"{self.command} is not allowed")
            self._check_auth()
            parts = url.path.strip("/").split("/")
            if parts[0] == "datasets":
                if self.headers.get("Accept-Version") is not None:
                    # the original DSAPI was restify with versioned routes: no route matches any Accept-Version
                    raise rest_error(405, "MethodNotAllowedError", f"{self.command} is not allowed")
                return self._dsapi(parts[1:], query)
            self._imgapi(url.path, parts, query)
        except ApiError as e:
            self._send_json(e.status, e.body)
        except Answered:
            pass
        except (ConnectionError, TimeoutError, ssl.SSLError):
            self.close_connection = True  # the client went away mid-answer

    def _check_auth(self):
        """With --auth, every API request must carry those Basic credentials."""
        if self.server.auth is None:
            return
        scheme, dummy, value = (self.headers.get("Authorization") or "").partition(" ")
        try:
            given = base64.b64decode(value, validate=True).decode("utf-8") if scheme.lower() == "basic" else None
        except (binascii.Error, UnicodeDecodeError):
            given = None
        if given != self.server.auth:
            raise rest_error(401, "UnauthorizedError", "credentials required")

    # -- IMGAPI --------------------------------------------------------------

    def _imgapi(self, path, parts, query):
        """The IMGAPI endpoints: /ping, /channels, /images, /images/<uuid> and its file."""
        major = api_major(self.headers.get("Accept-Version"))
        if major is None:
            raise rest_error(400, "InvalidVersion", f"{self.headers['Accept-Version']} is not supported by GET {path}")
        store = self.server.store
        if parts == ["ping"]:
            self._take_faults("ping", set())
            return self._send_json(200, {"ping": "pong", "version": VERSION, "imgapi": True, "pid": os.getpid()})
        if parts == ["channels"]:
            return self._send_json(200, self._channels())
        if parts == ["images"]:
            return self._list_images(query, major)
        if parts[0] != "images" or len(parts) > 3 or (len(parts) == 3 and parts[2] != "file"):
            raise rest_error(404, "ResourceNotFound", f"{path} does not exist")
        uuid = parts[1]
        if not UUID_RE.match(uuid):
            raise rest_error(404, "ResourceNotFound", f"{path} does not exist")
        manifest = store.manifest(uuid)
        if manifest is None:
            raise rest_error(404, "ResourceNotFound", f"image {uuid} not found")
        if not visible(manifest, self._channel(query)):
            raise rest_error(404, "ResourceNotFound", "image not found")
        if len(parts) == 2:
            return self._send_manifests([manifest], self._take_faults("manifest", {uuid}), major, single=True)
        files = manifest.get("files") or [{}]
        not_found = rest_error(404, "ResourceNotFound", f'image "{uuid}" has no file')
        self._send_file(store.file_path(uuid), self._take_faults("file", {uuid}), files[0].get("sha1"), not_found)

    def _channel(self, query, images=None, allow_star=False):
        """The channel a request selects (None: none, '*': all), rejecting unknown ones as IMGAPI does."""
        name = query.get("channel") or self.server.default_channel
        if name in (None, self.server.default_channel) or (allow_star and name == "*"):
            return name
        images = self.server.store.all() if images is None else images
        if not any(name in (m.get("channels") or ()) for m in images):
            raise rest_error(422, "ValidationFailed", f"unknown channel: {name}", errors=[])
        return name

    def _channels(self):
        """ListChannels: every channel a manifest names, plus the default."""
        default = self.server.default_channel
        names = {c for m in self.server.store.all() for c in m.get("channels") or ()} | ({default} if default else set())
        return [{"name": n, "description": f"{n} images", **({"default": True} if n == default else {})}
                for n in sorted(names)]

    def _list_images(self, query, major):
        """ListImages with IMGAPI's filters, sort and marker pagination."""
        if any(f["kind"] in ("endless", "ignore_marker", "ignore_query") for f in self.server.faults.list()):
            hits = self._take_faults("list", set())  # a made-up list: its markers are not real images
            if hit(hits, "endless"):
                return self._send_manifests([synthetic(next(self.server.counter)) for dummy in range(MAX_LIMIT)],
                                            hits, major)  # always new images
            if hit(hits, "ignore_marker"):
                # obeys limit, ignores the marker: the start of a longer list again, whatever marker is asked
                limit = query.get("limit", "")
                count = int(limit) if limit.isdigit() and 1 <= int(limit) <= MAX_LIMIT else MAX_LIMIT
                return self._send_manifests([synthetic(n) for n in range(count)], hits, major)
            ignore = hit(hits, "ignore_query")
            if ignore:
                # a static file served for any query string: every image, whatever its name, state or channel, and
                # no limit or marker; `arg` pads it to that many entries with disabled images of the real names,
                # published later (their files do not exist), so only a client that checks state itself is right
                everything = sorted(self.server.store.all(), key=sort_key)
                names = [m.get("name") for m in everything] or ["endless"]
                padding = [dict(synthetic(n), name=names[n % len(names)], state="disabled", disabled=True,
                                published_at="2099-01-01T00:00:00Z")
                           for n in range(max(0, int(ignore["arg"] or 0) - len(everything)))]
                return self._send_manifests(everything + padding, hits, major)
        images = self.server.store.all()
        channel = self._channel(query, images, allow_star=True)
        state = query.get("state", "active")
        if state != "all" and state not in STATES:
            raise invalid_param("state", state)
        sort = query.get("sort", "published_at")
        if sort not in SORTS:
            raise invalid_param("sort", sort)
        limit = query.get("limit", str(MAX_LIMIT))
        if not limit.isdigit() or not 1 <= int(limit) <= MAX_LIMIT:
            raise invalid_param("limit", limit)
        if query.get("public", "true") not in ("true", "false"):
            raise invalid_param("public", query["public"])
        desc = sort == "published_at.desc"
        chosen = sorted((m for m in images if visible(m, channel) and (state == "all" or m.get("state") == state)
                         and self._filters_match(m, query)), key=sort_key, reverse=desc)
        if "marker" in query:
            # Like IMGAPI the marker image is included again; comparing (time, uuid) keeps ties from repeating.
            mark = self._marker_key(query["marker"], images, desc)
            chosen = [m for m in chosen if (sort_key(m) <= mark if desc else sort_key(m) >= mark)]
        page = chosen[:int(limit)]
        self._send_manifests(page, self._take_faults("list", {m.get("uuid") for m in page}), major)

    @staticmethod
    def _filters_match(manifest, query):
        """Whether a manifest passes the name, version, type, os and public filters."""
        for field in ("name", "version"):
            want = query.get(field)
            if want is not None and not (want[1:] in str(manifest.get(field, "")) if want.startswith("~")
                                         else manifest.get(field) == want):
                return False
        kind = query.get("type")
        if kind is not None and ((manifest.get("type") == kind[1:]) if kind.startswith("!") else manifest.get("type") != kind):
            return False
        if "os" in query and manifest.get("os") != query["os"]:
            return False
        return "public" not in query or manifest.get("public") == (query["public"] == "true")

    @staticmethod
    def _marker_key(marker, images, desc):
        """The sort key a marker (image uuid or date) stands for."""
        image = next((m for m in images if m.get("uuid") == marker), None)
        if image is not None:
            return sort_key(image)
        when = parse_time(marker)
        if when is None:
            raise invalid_param("marker", marker)
        return when, "\uffff" if desc else ""

    # -- DSAPI ---------------------------------------------------------------

    def _dsapi(self, parts, query):
        """The DSAPI endpoints: /datasets, /datasets/<uuid> and /datasets/<uuid>/<path>."""
        store = self.server.store
        scheme = "https" if self.server.tls else "http"
        base = f"{scheme}://{self.headers.get('Host') or '%s:%d' % (self.server.server_name, self.server.server_port)}"

        def with_url(manifest, hits=()):
            files = [dict(f) if isinstance(f, dict) else f for f in manifest.get("files") or ()]  # served as published
            moved = hit(hits, "file_url", manifest.get("uuid"))  # the file is said to live on another server
            if files:
                files[0]["url"] = f"{moved['to'].rstrip('/') if moved else base}/datasets/{manifest.get('uuid')}/" \
                                  f"{files[0].get('path', '')}"
            return dict(manifest, files=files)

        parts = [p for p in parts if p]
        if not parts:
            chosen = sorted((m for m in store.all("dsmanifest.json")
                             if all(m.get(f) == query[f] for f in DSAPI_FILTERS if f in query)), key=sort_key, reverse=True)
            hits = self._take_faults("list", {m.get("uuid") for m in chosen}, dsapi=True)
            return self._send_manifests([with_url(m, hits) for m in chosen], hits, 2)
        uuid = parts[0]
        manifest = store.manifest(uuid, "dsmanifest.json")
        if manifest is None:
            raise dsapi_error(404, f"dataset {uuid} not found")
        if len(parts) == 1:
            hits = self._take_faults("manifest", {uuid}, dsapi=True)
            return self._send_manifests([with_url(manifest, hits)], hits, 2, single=True)
        path = "/".join(parts[1:])
        files = manifest.get("files") or [{}]
        if files[0].get("path") != path:
            raise dsapi_error(404, f"dataset {uuid} has no file {path}")
        not_found = dsapi_error(404, f"dataset {uuid} file {path} is missing")
        self._send_file(store.file_path(uuid), self._take_faults("file", {uuid}, dsapi=True), files[0].get("sha1"), not_found)

    # -- control API ---------------------------------------------------------

    def _control(self, name, body):
        """The /__control API for faults and the request log."""
        if not LOOPBACK_RE.match(self.client_address[0]):
            raise rest_error(403, "ForbiddenError", "control API is for 127.0.0.x only")
        faults, server = self.server.faults, self.server
        action = (self.command, name)
        if action == ("POST", "faults"):
            try:
                result = faults.add(json.loads(body or b"{}"))
            except (ValueError, TypeError, AttributeError) as e:
                raise rest_error(400, "BadRequestError", str(e))
        elif action == ("GET", "faults"):
            result = faults.list()
        elif action == ("DELETE", "faults"):
            faults.clear()
            result = []
        elif action == ("GET", "requests"):
            result = server.recorded()
        elif action == ("DELETE", "requests"):
            server.clear_recorded()
            result = []
        else:
            raise rest_error(404, "ResourceNotFound", f"{self.command} /__control/{name} does not exist")
        self._send_json(200, result)

    # -- answering -----------------------------------------------------------

    def _take_faults(self, endpoint, uuids, dsapi=False):
        """Use up this request's faults; apply `slow`, `redirect` and `status` here and return them all."""
        hits = self.server.faults.take(endpoint, uuids)
        slow, status, redirect = hit(hits, "slow"), hit(hits, "status"), hit(hits, "redirect")
        if slow:
            time.sleep(slow_seconds(slow))
        if hit(hits, "slow_headers"):
            # the status line, then a header a byte a second for TRICKLE_MAX seconds, then a hang-up
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            for piece in Trickle({"arg": 1}).split(b"X-Slow: " + b"x" * int(TRICKLE_MAX) + b"\r\n"):
                self.wfile.write(piece)
            self.close_connection = True
            raise Answered()
        if redirect:
            location = redirect["to"].rstrip("/") + self.path
            self._send(int(redirect["arg"] or 302), b"", "text/plain", [("Location", location)])
            raise Answered()
        if status:
            code = int(status["arg"] or 500)
            single = endpoint in ("manifest", "file") and code == 404
            message = f"image {next(iter(uuids))} not found" if single else f"injected fault: HTTP {code}"
            raise dsapi_error(code, message) if dsapi else rest_error(code, REST_CODES.get(code, "InternalError"), message)
        return hits

    def _send_manifests(self, manifests, hits, major, single=False):
        """Answer one manifest or a list, as the API version and the `wrong_size`/`bad_json` faults make it."""
        answer = []
        for manifest in manifests:
            if major < 2:
                manifest = {k: v for k, v in manifest.items() if k != "channels"}
            if hit(hits, "wrong_size", manifest.get("uuid")) and manifest.get("files"):
                first = manifest["files"][0]
                manifest = dict(manifest, files=[dict(first, size=first.get("size", 0) + 1)] + manifest["files"][1:])
            answer.append(manifest)
        huge = hit(hits, "huge")
        if huge and answer:
            answer[0] = dict(answer[0], padding="")
        body = compact_json(answer[0] if single else answer)
        if hit(hits, "bad_json"):
            body = body[:max(1, len(body) // 2)]  # half a JSON document never parses
        pieces = [body]
        if huge and answer:
            # the padding is written piece by piece: the server never holds a huge body in memory
            before, after = body.split(b'"padding":""', 1)
            size = int(min(huge["arg"] if huge["arg"] is not None else HUGE_DEFAULT, HUGE_MAX))
            pieces = [before + b'"padding":"', *(b"x" * min(CHUNK, size - i) for i in range(0, size, CHUNK)),
                      b'"' + after]
        self._send_pieces(pieces, sum(map(len, pieces)) if not hit(hits, "chunked_json") else None,
                          hit(hits, "trickle"))

    def _send_pieces(self, pieces, length, trickle):
        """Answer 200 with a JSON body given in pieces: with Content-Length, or chunked when length is None."""
        self.send_response(200)
        headers = [("Content-Type", "application/json")]
        headers.append(("Content-Length", str(length)) if length is not None else ("Transfer-Encoding", "chunked"))
        self._send_headers(headers)
        pace = Trickle(trickle)
        for piece in pieces:
            for data in pace.split(piece):
                self.wfile.write(data if length is not None else b"%x\r\n%s\r\n" % (len(data), data))
        if length is None:
            self.wfile.write(b"0\r\n\r\n")

    def _send_json(self, status, obj):
        """Answer with a JSON body."""
        self._send(status, compact_json(obj), "application/json")

    def _send(self, status, body, content_type, headers=()):
        """Answer with a complete body."""
        self.send_response(status)
        self._send_headers([("Content-Type", content_type), ("Content-Length", str(len(body))), *headers])
        self.wfile.write(body)

    def _send_headers(self, headers):
        """Send headers plus the ones IMGAPI puts on every answer."""
        elapsed_ms = int((time.monotonic() - self.started) * 1000)
        for name, value in [*headers, ("x-request-id", self.req_id), ("x-server-name", SERVER_NAME),
                            ("x-response-time", str(elapsed_ms))]:
            self.send_header(name, value)
        self.end_headers()

    def _send_file(self, path, hits, etag, not_found):
        """Stream a file in chunks, honouring Range and the file faults."""
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            raise not_found from None
        with f:
            st = os.fstat(f.fileno())
            size, start, end, status = st.st_size, 0, st.st_size, 200
            headers = [("Content-Type", "application/octet-stream"), ("Accept-Ranges", "bytes"),
                       ("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True))]
            headers += [("Etag", etag)] if etag else []
            wanted = self.headers.get("Range")
            if wanted:
                match = re.fullmatch(r"\s*bytes=(\d+)-(\d*)\s*", wanted)
                start = int(match[1]) if match else size
                end = min(size, int(match[2]) + 1) if match and match[2] else size
                if start >= end:
                    return self._send(416, b"", "application/octet-stream", [("Content-Range", f"bytes */{size}")])
                status = 206
                headers.append(("Content-Range", f"bytes {start}-{end - 1}/{size}"))
            else:
                headers.append(("Content-MD5", self.server.store.md5(path, st)))  # of the whole file, so only on 200
            length = end - start
            cut_fault = hit(hits, "drop") or hit(hits, "short_body")
            cut = length if not cut_fault else min(length, int(cut_fault["arg"]) if cut_fault["arg"] is not None else length // 2)
            flip = hit(hits, "wrong_bytes")
            flip_at = (int(flip["arg"]) if flip["arg"] is not None else size // 2) if flip else -1
            chunked = hit(hits, "no_content_length") is not None
            slow = hit(hits, "slow")
            pace = Trickle(hit(hits, "trickle"))
            # A slow file also trickles: at most TRICKLE_PAUSES pauses, `arg` seconds in all, whatever the size.
            step = max(1, -(-cut // TRICKLE_PAUSES)) if slow else cut or 1
            pause = slow_seconds(slow) / TRICKLE_PAUSES if slow else 0
            headers.append(("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(length)))
            self.send_response(status)
            self._send_headers(headers)
            f.seek(start)
            sent = 0
            while sent < cut:
                if slow and sent % step == 0:
                    time.sleep(pause)
                data = f.read(min(CHUNK, cut - sent, step - sent % step))
                if not data:
                    break  # the file shrank while being served
                if start + sent <= flip_at < start + sent + len(data):
                    i = flip_at - start - sent
                    data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
                for piece in pace.split(data):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                sent += len(data)
            if cut < length:
                return self._cut_connection(reset=bool(hit(hits, "drop")))
            if chunked:
                self.wfile.write(b"0\r\n\r\n")

    def _cut_connection(self, reset):
        """End the connection mid-body: a plain close (FIN) or, for `drop`, a TCP reset."""
        self.close_connection = True
        if reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()  # the socket only really closes once its reader is gone
            self.connection.close()


class ImageHTTPServer(http.server.ThreadingHTTPServer):
    """Threaded HTTP(S) server holding the image store, faults and request log."""

    daemon_threads = True

    def __init__(self, port, images, default_channel=None, tls=None, bind="127.0.0.1", auth=None):
        if not LOOPBACK_RE.match(bind):
            raise ValueError(f"{bind}: this test server only binds to a 127.0.0.x loopback address")
        self.store, self.faults = Store(images), Faults()
        self.default_channel, self.tls, self.auth = default_channel, tls, auth
        self.counter = itertools.count(1 << 40)
        self._log = collections.deque(maxlen=REQUEST_LOG_SIZE)
        self._log_lock = threading.Lock()
        super().__init__((bind, port), Handler)

    def server_bind(self):
        socketserver.TCPServer.server_bind(self)  # HTTPServer's version adds a reverse DNS lookup we never need
        self.server_name, self.server_port = self.server_address[:2]

    def get_request(self):
        sock, addr = super().get_request()
        if self.tls:
            # The handshake happens in the request's thread, so a stalled client cannot block accept().
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def finish_request(self, request, client_address):
        if self.tls:
            request.settimeout(Handler.timeout)
            request.do_handshake()
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError, ssl.SSLError)):
            super().handle_error(request, client_address)  # clients hanging up or failing TLS are expected

    def record(self, entry):
        """Add a request to the bounded log."""
        with self._log_lock:
            self._log.append(entry)

    def recorded(self):
        """The logged requests, oldest first."""
        with self._log_lock:
            return list(self._log)

    def clear_recorded(self):
        """Empty the request log."""
        with self._log_lock:
            self._log.clear()


def stop_when_orphaned(server, parent, interval=0.5):
    """Shut down once the process that started us is gone (a test runner killed before its teardown)."""
    while os.getppid() == parent:
        time.sleep(interval)
    server.shutdown()


def main(argv=None):
    """Run the server until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, help="directory of <uuid>/{manifest.json,dsmanifest.json,file}")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", help="where to write the port once listening")
    parser.add_argument("--bind", default="127.0.0.1", help="a 127.0.0.x loopback address")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--pid-file")
    parser.add_argument("--default-channel")
    parser.add_argument("--auth", help="user:password that every API request must send (HTTP Basic)")
    args = parser.parse_args(argv)
    if not LOOPBACK_RE.match(args.bind):
        parser.error(f"--bind {args.bind}: this test server only binds to a 127.0.0.x loopback address")
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if not os.path.isdir(args.images):
        parser.error(f"--images {args.images}: not a directory")
    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    server = ImageHTTPServer(args.port, args.images, args.default_channel, tls, args.bind, args.auth)
    # shutdown() waits for serve_forever(), which runs in this thread, so it must be called from another one.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    threading.Thread(target=stop_when_orphaned, args=(server, os.getppid()), daemon=True).start()
    written = [p for p in (args.pid_file, args.port_file) if p]
    try:
        if args.pid_file:
            write_atomic(args.pid_file, f"{os.getpid()}\n")
        if args.port_file:
            write_atomic(args.port_file, f"{server.server_port}\n")
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        for path in written:
            try:
                os.remove(path)
            except OSError:
                pass


if __name__ == "__main__":
    main()
