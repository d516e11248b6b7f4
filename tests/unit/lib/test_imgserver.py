"""Tests for the test image server (tests/lib/imgserver.py), run as a real process on 127.0.0.1.

They cover IMGAPI and DSAPI answers, pagination, Range resume, every fault kind, channels and TLS."""

import base64
import datetime
import hashlib
import http.client
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid as uuidlib
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[2] / "lib"
sys.path.insert(0, str(LIB))

from imgserver_ctl import ImageServer, publish  # noqa: E402
from tlsca import make_ca_and_cert  # noqa: E402

OWNER = "930896af-bf8c-48d4-885c-6573a94b1853"
BASE_TIME = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
BIG = 256 * 1024


def make_image(images, data, n, dsapi_path=None, **fields):
    """Publish `data` as an image published n seconds after BASE_TIME; return its manifest."""
    uuid = str(uuidlib.uuid4())
    published = BASE_TIME + datetime.timedelta(seconds=n)
    manifest = {"v": 2, "uuid": uuid, "owner": OWNER, "name": f"img{n}", "version": "1.0.0", "state": "active",
                "disabled": False, "public": True, "published_at": published.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "type": "zone-dataset", "os": "smartos",
                "files": [{"sha1": hashlib.sha1(data).hexdigest(), "size": len(data), "compression": "none"}]}
    manifest.update(fields)
    dsmanifest = None
    if dsapi_path:
        dsmanifest = {"uuid": uuid, "creator_uuid": OWNER, "name": manifest["name"], "version": manifest["version"],
                      "description": "v1", "published_at": published.strftime("%Y-%m-%dT%H:%MZ"),
                      "type": "zone-dataset", "os": "smartos",
                      "files": [{"path": dsapi_path, "sha1": manifest["files"][0]["sha1"], "size": len(data)}]}
    source = images.parent / f"{manifest['files'][0]['sha1']}.src"  # shared by images with the same bytes
    if not source.exists():
        source.write_bytes(data)
    publish(str(images), manifest, str(source), dsmanifest)
    return manifest


def fetch(server, path, headers=None, host="127.0.0.1"):
    """GET a path; return (status, headers, body)."""
    if server.tls:
        conn = http.client.HTTPSConnection(host, server.port, context=server.ssl_context, timeout=10)
    else:
        conn = http.client.HTTPConnection(host, server.port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        with conn.getresponse() as resp:  # closed even when the body breaks, so its socket is released
            return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def fetch_json(server, path, headers=None):
    """GET a path; return (status, decoded JSON body)."""
    status, dummy, body = fetch(server, path, headers)
    return status, json.loads(body)


def uuids(server, query=""):
    """UUIDs that ListImages returns for a query string."""
    status, images = fetch_json(server, "/images" + query)
    assert status == 200, images
    return [m["uuid"] for m in images]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A small image store: images a..f, a minute apart, with varied fields; a and b also on DSAPI."""
    images = tmp_path_factory.mktemp("store") / "images"
    images.mkdir()
    big = os.urandom(BIG)
    imgs = {
        "a": make_image(images, big, 60, dsapi_path="a.zfs.bz2", name="base"),
        "b": make_image(images, b"b" * 1000, 120, dsapi_path="b.zfs", name="base", version="2.0.0", type="zvol",
                        os="linux"),
        "c": make_image(images, b"c" * 10, 180, state="disabled", disabled=True),
        "d": make_image(images, b"d" * 10, 240, name="private", public=False),
        "e": make_image(images, b"e" * 10, 300, channels=["experimental"]),
        "f": make_image(images, b"f" * 10, 360, channels=["release"]),
    }
    return {"dir": images, "data": big, **imgs}


@pytest.fixture(scope="module")
def server(store):
    """The store served over plain HTTP with no default channel."""
    srv = ImageServer(str(store["dir"])).start()
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def clean(server):
    """Each test starts without faults or logged requests."""
    server.clear_faults()
    server.clear_requests()


def test_ping_and_common_headers(server):
    status, headers, body = fetch(server, "/ping", {"x-request-id": "req-1"})
    assert status == 200
    assert json.loads(body) == {"ping": "pong", "version": "4.13.1", "imgapi": True, "pid": server.pid}
    assert headers["x-request-id"] == "req-1"
    assert headers["Server"] and headers["Date"] and int(headers["Content-Length"]) == len(body)


def test_ping_status_fault_only_when_asked(server):
    server.add_fault("status", arg=500)  # by default a status fault hits image requests, not ping
    assert fetch(server, "/ping")[0] == 200
    server.add_fault("status", on="ping", arg=503, times=1)
    status, body = fetch_json(server, "/ping")
    assert (status, body["code"]) == (503, "ServiceUnavailableError")
    assert fetch(server, "/ping")[0] == 200


def test_list_filters_and_sort(server, store):
    a, b, c, d, e, f = (store[k]["uuid"] for k in "abcdef")
    assert uuids(server) == [a, b, d]  # active only; channel images hidden without a channel
    assert uuids(server, "?name=base") == [a, b]
    assert uuids(server, "?name=~as") == [a, b]
    assert uuids(server, "?name=~AS") == []
    assert uuids(server, "?version=2.0.0") == uuids(server, "?version=~2.") == [b]
    assert uuids(server, "?os=linux") == uuids(server, "?type=zvol") == [b]
    assert uuids(server, "?type=!zvol") == [a, d]
    assert uuids(server, "?state=disabled") == [c]
    assert uuids(server, "?state=all") == [a, b, c, d]
    assert uuids(server, "?public=false") == [d]
    assert uuids(server, "?sort=published_at.desc") == [d, b, a]
    assert uuids(server, "?channel=*") == [a, b, d, e, f]
    status, body = fetch_json(server, "/images?state=bogus")
    assert status == 422
    assert body == {"code": "InvalidParameter", "message": 'invalid state: "bogus"',
                    "errors": [{"field": "state", "code": "Invalid"}]}
    assert fetch(server, "/images?limit=1001")[0] == 422


def test_accept_version_and_request_log(server, store):
    path = f"/images/{store['e']['uuid']}?channel=experimental"
    assert "channels" not in fetch_json(server, path)[1]  # no header means ~1
    assert fetch_json(server, path, {"Accept-Version": "~2"})[1]["channels"] == ["experimental"]
    status, body = fetch_json(server, path, {"Accept-Version": "~99"})
    assert (status, body["code"]) == (400, "InvalidVersion")
    log = server.requests()
    assert [r["accept_version"] for r in log] == [None, "~2", "~99"]
    assert log[1]["path"] == f"/images/{store['e']['uuid']}" and log[1]["query"] == {"channel": "experimental"}
    assert log[1]["method"] == "GET" and log[1]["headers"]["accept-version"] == "~2"
    server.clear_requests()
    assert server.requests() == []


def test_get_image_and_404(server, store):
    assert fetch_json(server, f"/images/{store['c']['uuid']}") == (200, store["c"])  # any state
    missing = str(uuidlib.uuid4())
    assert fetch_json(server, f"/images/{missing}") == (
        404, {"code": "ResourceNotFound", "message": f"image {missing} not found"})
    assert fetch_json(server, f"/images/{missing}/file")[0] == 404
    assert fetch_json(server, "/images/not-a-uuid")[1]["code"] == "ResourceNotFound"


def test_file_headers_and_bytes(server, store):
    data = store["data"]
    status, headers, body = fetch(server, f"/images/{store['a']['uuid']}/file")
    assert status == 200 and body == data
    assert headers["Content-Length"] == str(len(data))
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-MD5"] == base64.b64encode(hashlib.md5(data).digest()).decode()
    assert headers["Etag"] == hashlib.sha1(data).hexdigest()


def test_range_resume_after_short_body(server, store):
    data, path = store["data"], f"/images/{store['a']['uuid']}/file"
    server.add_fault("short_body", times=1, arg=1000)
    with pytest.raises(http.client.IncompleteRead) as broken:
        fetch(server, path)
    got = broken.value.partial
    assert got == data[:1000]
    status, headers, rest = fetch(server, path, {"Range": f"bytes={len(got)}-"})
    assert status == 206 and got + rest == data
    assert headers["Content-Range"] == f"bytes 1000-{len(data) - 1}/{len(data)}"
    assert headers["Content-Length"] == str(len(data) - 1000)
    assert fetch(server, path, {"Range": "bytes=10-19"})[2] == data[10:20]
    status, headers, dummy = fetch(server, path, {"Range": f"bytes={len(data)}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(data)}"


def test_fault_short_body_default_half(server, store):
    server.add_fault("short_body", uuid=store["a"]["uuid"])
    with pytest.raises(http.client.IncompleteRead) as broken:
        fetch(server, f"/images/{store['a']['uuid']}/file")
    assert len(broken.value.partial) == BIG // 2


def test_fault_drop_then_resume(server, store):
    data, path = store["data"], f"/images/{store['a']['uuid']}/file"
    server.add_fault("drop", times=1, arg=4096)
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        fetch(server, path)
    status, dummy, rest = fetch(server, path, {"Range": "bytes=4096-"})
    assert status == 206 and data[:4096] + rest == data


def test_fault_wrong_bytes_and_times(server, store):
    data, a = store["data"], store["a"]["uuid"]
    server.add_fault("wrong_bytes", uuid=a, times=2)
    assert fetch(server, f"/images/{store['b']['uuid']}/file")[0] == 200  # other images are not hit
    assert server.faults()[0]["times"] == 2
    status, headers, body = fetch(server, f"/images/{a}/file")
    assert status == 200 and len(body) == len(data) and headers["Content-Length"] == str(len(data))
    assert headers["Content-MD5"] == base64.b64encode(hashlib.md5(data).digest()).decode()
    assert [i for i in range(len(data)) if body[i] != data[i]] == [BIG // 2]
    assert server.faults()[0]["times"] == 1
    assert fetch(server, f"/images/{a}/file")[2] != data
    assert server.faults() == []
    assert fetch(server, f"/images/{a}/file")[2] == data


def test_fault_wrong_size(server, store):
    a, size = store["a"]["uuid"], store["a"]["files"][0]["size"]
    server.add_fault("wrong_size", uuid=a, times=2)
    assert fetch_json(server, f"/images/{a}")[1]["files"][0]["size"] == size + 1
    sizes = {m["uuid"]: m["files"][0]["size"] for m in fetch_json(server, "/images")[1]}
    assert sizes[a] == size + 1 and sizes[store["b"]["uuid"]] == 1000
    assert fetch_json(server, f"/images/{a}")[1]["files"][0]["size"] == size
    server.add_fault("wrong_size", uuid=a)
    status, headers, body = fetch(server, f"/images/{a}/file")  # the file itself is untouched
    assert headers["Content-Length"] == str(size) and len(body) == size


def test_fault_status(server, store):
    a, b = store["a"]["uuid"], store["b"]["uuid"]
    server.add_fault("status", uuid=a, arg=500, times=2)
    assert fetch_json(server, f"/images/{a}") == (500, {"code": "InternalError", "message": "injected fault: HTTP 500"})
    assert fetch(server, f"/images/{a}/file")[0] == 500
    assert fetch(server, f"/images/{b}")[0] == 200 and fetch(server, "/images")[0] == 200
    assert fetch(server, f"/images/{a}")[0] == 200
    server.add_fault("status", uuid=a, arg=404, times=1, on="file")
    assert fetch_json(server, f"/images/{a}/file") == (404, {"code": "ResourceNotFound", "message": f"image {a} not found"})
    server.add_fault("status", arg=503, on="list", times=1)
    assert fetch(server, "/images")[0] == 503


def test_fault_slow(server, store):
    a = store["a"]["uuid"]
    server.add_fault("slow", uuid=a, arg=0.3, times=1, on="manifest")
    started = time.monotonic()
    assert fetch(server, f"/images/{a}")[0] == 200
    assert time.monotonic() - started >= 0.3
    server.add_fault("slow", uuid=a, arg=0.2, times=1)
    started = time.monotonic()
    assert fetch(server, f"/images/{a}/file")[2] == store["data"]
    assert time.monotonic() - started >= 0.4  # the delay before the answer, then the trickle
    started = time.monotonic()
    fetch(server, f"/images/{a}")
    assert time.monotonic() - started < 0.2


def test_fault_bad_json(server, store):
    a = store["a"]["uuid"]
    server.add_fault("bad_json", times=2)
    for path in (f"/images/{a}", "/images"):
        status, dummy, body = fetch(server, path)
        assert status == 200
        with pytest.raises(ValueError):
            json.loads(body)
    assert fetch_json(server, f"/images/{a}")[1] == store["a"]


def test_fault_no_content_length(server, store):
    server.add_fault("no_content_length", times=1)
    status, headers, body = fetch(server, f"/images/{store['a']['uuid']}/file")
    assert status == 200 and body == store["data"]
    assert "Content-Length" not in headers and headers["Transfer-Encoding"] == "chunked"


def test_fault_validation(server):
    for bad in ({"kind": "nope"}, {"kind": "wrong_bytes", "on": "manifest"}, {"kind": "status", "arg": 200}):
        with pytest.raises(ValueError, match="BadRequestError"):
            server.add_fault(**bad)
    assert server.faults() == []


def test_channels(store):
    a, b, d, e, f = (store[k]["uuid"] for k in "abdef")
    with ImageServer(str(store["dir"]), default_channel="release") as srv:
        assert uuids(srv) == [a, b, d, f]
        assert uuids(srv, "?channel=experimental") == [a, b, d, e]
        assert uuids(srv, "?channel=*") == [a, b, d, e, f]
        assert fetch_json(srv, "/images?channel=bogus") == (
            422, {"code": "ValidationFailed", "message": "unknown channel: bogus", "errors": []})
        assert fetch_json(srv, f"/images/{e}") == (404, {"code": "ResourceNotFound", "message": "image not found"})
        assert fetch(srv, f"/images/{e}?channel=experimental")[0] == 200
        assert fetch(srv, f"/images/{e}/file?channel=experimental")[2] == b"e" * 10
        assert fetch_json(srv, "/channels")[1] == [
            {"name": "experimental", "description": "experimental images"},
            {"name": "release", "description": "release images", "default": True}]


def test_dsapi(server, store):
    a, b = store["a"], store["b"]
    status, datasets = fetch_json(server, "/datasets")
    assert status == 200 and [m["uuid"] for m in datasets] == [b["uuid"], a["uuid"]]  # newest first, v1 only
    url = f"{server.url}/datasets/{a['uuid']}/a.zfs.bz2"
    assert datasets[1]["files"][0]["url"] == url and "v" not in datasets[1]
    status, one = fetch_json(server, f"/datasets/{a['uuid']}")
    assert status == 200 and one["files"][0]["url"] == url and one["creator_uuid"] == OWNER
    missing = str(uuidlib.uuid4())
    assert fetch_json(server, f"/datasets/{missing}") == (
        404, {"error": {"message": f"dataset {missing} not found", "code": 404}})
    status, headers, body = fetch(server, url[len(server.url):])
    assert status == 200 and body == store["data"] and headers["Etag"] == a["files"][0]["sha1"]
    assert headers["Content-MD5"] == base64.b64encode(hashlib.md5(body).digest()).decode()
    server.add_fault("status", uuid=a["uuid"], arg=503, on="file")
    assert fetch_json(server, url[len(server.url):]) == (
        503, {"error": {"message": "injected fault: HTTP 503", "code": 503}})


def test_pagination_reaches_every_image_once(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    # Pairs of images share a publish time, so the uuid tie-break is exercised at page edges too.
    made = [make_image(images, b"x", n // 2) for n in range(2500)]
    expected = [m["uuid"] for m in sorted(made, key=lambda m: (m["published_at"], m["uuid"]))]
    with ImageServer(str(images)) as srv:
        # The imgadm client's loop (reference §5.1 "Pagination").
        seen, marker = [], None
        for dummy in range(10):
            page = fetch_json(srv, "/images" if marker is None else f"/images?limit=1000&marker={marker}")[1]
            full = len(page) >= 1000
            if page and page[0]["uuid"] == marker:
                page = page[1:]
            seen += [m["uuid"] for m in page]
            if not full or not page or page[-1]["uuid"] == marker:
                break
            marker = page[-1]["uuid"]
        assert seen == expected
        page = uuids(srv, f"?sort=published_at.desc&limit=3&marker={expected[100]}")
        assert page == [expected[100], expected[99], expected[98]]
        assert fetch_json(srv, "/images?marker=junk")[1]["code"] == "InvalidParameter"


def test_tls_verification(tmp_path, store):
    tls = make_ca_and_cert(str(tmp_path / "tls"))
    mtimes = {k: os.stat(p).st_mtime_ns for k, p in tls.items()}
    assert make_ca_and_cert(str(tmp_path / "tls")) == tls  # idempotent
    assert {k: os.stat(p).st_mtime_ns for k, p in tls.items()} == mtimes
    with ImageServer(str(store["dir"]), tls=tls) as srv:
        assert srv.url.startswith("https://127.0.0.1:")
        assert fetch(srv, f"/images/{store['a']['uuid']}/file")[2] == store["data"]
        assert fetch(srv, "/ping", host="localhost")[0] == 200  # DNS SAN
        srv.add_fault("drop", times=1)
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            fetch(srv, f"/images/{store['a']['uuid']}/file")
        with pytest.raises(urllib.error.URLError) as err:
            urllib.request.urlopen(f"{srv.url}/ping", timeout=10)  # system CAs only
        assert "CERTIFICATE_VERIFY_FAILED" in str(err.value.reason)


def test_lifecycle_live_store_and_bind(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    with ImageServer(str(images)) as srv:
        assert uuids(srv) == []
        made = make_image(images, b"new", 1)
        assert uuids(srv) == [made["uuid"]]  # the store is read on every request
        pid = srv.pid
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    script = str(LIB / "imgserver.py")
    result = subprocess.run([sys.executable, script, "--images", str(images), "--bind", "0.0.0.0"],
                            capture_output=True, text=True, timeout=10, check=False)
    assert result.returncode == 2 and "only binds to a 127.0.0.x loopback address" in result.stderr


# ---- faults and modes for the safety tests (issue 10) ----

def test_dsapi_refuses_accept_version_as_restify_does(server, store):
    a = store["a"]["uuid"]
    for path in ("/datasets", f"/datasets/{a}", f"/datasets/{a}/a.zfs.bz2"):
        assert fetch_json(server, path, {"Accept-Version": "~2"}) == (
            405, {"code": "MethodNotAllowedError", "message": "GET is not allowed"})
        assert fetch(server, path)[0] == 200
    assert fetch(server, "/ping", {"Accept-Version": "~2"})[0] == 200  # IMGAPI routes still want it


def test_auth_mode_demands_credentials_and_logs_them(store):
    good = "Basic " + base64.b64encode(b"alice:p@ss/word").decode()
    with ImageServer(str(store["dir"]), auth="alice:p@ss/word") as srv:
        assert fetch_json(srv, "/ping")[1]["code"] == "UnauthorizedError"
        assert fetch(srv, "/ping", {"Authorization": "Basic " + base64.b64encode(b"alice:nope").decode()})[0] == 401
        assert fetch(srv, "/ping", {"Authorization": "Basic %%%"})[0] == 401
        assert fetch(srv, "/ping", {"Authorization": good})[0] == 200
        assert [r["authorization"] for r in srv.requests()] == [
            None, "Basic " + base64.b64encode(b"alice:nope").decode(), "Basic %%%", good]


def test_second_server_on_another_loopback_address(store):
    with ImageServer(str(store["dir"]), bind="127.0.0.2") as srv:
        assert srv.url.startswith("http://127.0.0.2:")
        assert fetch(srv, "/ping", host="127.0.0.2")[0] == 200
        srv.add_fault("status", arg=500, times=1)  # the control API answers on that address too
        assert srv.faults()[0]["kind"] == "status"
    with pytest.raises(RuntimeError, match="127.0.0.x loopback"):
        ImageServer(str(store["dir"]), bind="10.0.0.1").start()


def test_fault_redirect(server, store):
    a = store["a"]["uuid"]
    server.add_fault("redirect", to="http://127.0.0.2:1", times=1)
    status, headers, dummy = fetch(server, f"/images/{a}?x=1")
    assert status == 302 and headers["Location"] == f"http://127.0.0.2:1/images/{a}?x=1"
    server.add_fault("redirect", to="https://127.0.0.1:2/", arg=308, on="file", times=1)
    status, headers, dummy = fetch(server, f"/images/{a}/file")
    assert status == 308 and headers["Location"] == f"https://127.0.0.1:2/images/{a}/file"
    assert fetch(server, f"/images/{a}")[0] == 200
    for bad in ({"to": "http://example.com"}, {"to": None}, {"to": "ftp://127.0.0.1"}, {"to": "http://127.0.0.1", "arg": 200}):
        with pytest.raises(ValueError, match="BadRequestError"):
            server.add_fault("redirect", **bad)
    with pytest.raises(ValueError, match="take `to`"):
        server.add_fault("status", to="http://127.0.0.1")


def test_fault_file_url_points_dsapi_files_elsewhere(server, store):
    a = store["a"]["uuid"]
    server.add_fault("file_url", to="http://127.0.0.2:9", times=1)
    assert fetch_json(server, f"/datasets/{a}")[1]["files"][0]["url"] == f"http://127.0.0.2:9/datasets/{a}/a.zfs.bz2"
    assert fetch_json(server, f"/datasets/{a}")[1]["files"][0]["url"].startswith(server.url)


@pytest.mark.parametrize("chunked", [False, True])
def test_fault_huge_manifest(server, store, chunked):
    a = store["a"]["uuid"]
    server.add_fault("huge", arg=3 << 20, times=1)
    if chunked:
        server.add_fault("chunked_json", times=1)
    status, headers, body = fetch(server, f"/images/{a}")
    manifest = json.loads(body)
    assert status == 200 and len(manifest.pop("padding")) == 3 << 20 and manifest == store["a"]
    assert ("Content-Length" not in headers) is chunked


def test_fault_endless_and_ignore_marker(server, store):
    server.add_fault("endless", times=2)
    first, second = (fetch_json(server, "/images?limit=1000&marker=x")[1] for dummy in range(2))
    assert len(first) == len(second) == 1000
    assert not {m["uuid"] for m in first} & {m["uuid"] for m in second}
    server.add_fault("ignore_marker", times=3)
    one = fetch_json(server, "/images")[1]
    two = fetch_json(server, f"/images?limit=1000&marker={one[-1]['uuid']}")[1]
    assert one == two and len(one) == 1000
    assert fetch_json(server, f"/images?limit=1&marker={one[-1]['uuid']}")[1] == one[:1]   # it obeys limit
    assert len(fetch_json(server, "/images")[1]) == 3  # back to the real list


def test_fault_ignore_query(server, store):
    every = fetch_json(server, "/images?state=all&channel=*")[1]
    server.add_fault("ignore_query", times=2)
    # any filter, state, channel, limit or marker: the whole list, inactive images too
    assert fetch_json(server, "/images?name=nothing-by-this-name&state=active&limit=1")[1] == every
    assert fetch_json(server, f"/images?marker={every[-1]['uuid']}&limit=1000&os=linux&type=!zvol")[1] == every
    server.add_fault("ignore_query", arg=10)
    padded = fetch_json(server, "/images?name=a")[1]
    assert padded[:len(every)] == every and len(padded) == 10
    assert {m["state"] for m in padded[len(every):]} == {"disabled"}
    assert {m["name"] for m in padded[len(every):]} <= {m["name"] for m in every}
    server.clear_faults()
    assert fetch_json(server, "/images?state=all&channel=*")[1] == every


def test_fault_trickle(server, store):
    a = store["a"]["uuid"]
    server.add_fault("trickle", arg=100, times=1, on="manifest")
    started = time.monotonic()
    status, dummy, body = fetch(server, f"/images/{a}")
    assert json.loads(body) == store["a"] and time.monotonic() - started >= len(body) // 100 - 1
    server.add_fault("trickle", times=1)  # on the file by default, 1 byte a second
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", f"/images/{a}/file")
        resp = conn.getresponse()
        started = time.monotonic()
        assert resp.status == 200 and resp.read1(10) == store["data"][:1]
        assert resp.read1(10) == store["data"][1:2] and time.monotonic() - started >= 0.9
    finally:
        conn.close()


def test_fault_slow_headers(server, store):
    server.add_fault("slow_headers", times=1)
    sock = __import__("socket").create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        sock.sendall(f"GET /images/{store['a']['uuid']} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        started = time.monotonic()
        got = b""
        while len(got) < len(b"HTTP/1.1 200 OK\r\nX-S"):
            got += sock.recv(100)
        assert got.startswith(b"HTTP/1.1 200 OK\r\nX-S") and time.monotonic() - started >= 1.5
    finally:
        sock.close()
    assert fetch(server, f"/images/{store['a']['uuid']}")[0] == 200
