# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for what hostile servers and careless users found against the fidelity rules (Content-MD5 checks,
the sources.list migration, a source's channel)."""

from __future__ import annotations

import base64
import email.message
import os
import types
from urllib.parse import quote, unquote

import pytest

from ansible_collections.smartos.images.plugins.module_utils import _host, _importer, _sources
from ansible_collections.smartos.images.plugins.module_utils._errors import DownloadError
from ansible_collections.smartos.images.plugins.module_utils._imgapi import (
    FileStream, ImageServerClient, ImageSource, url_secrets,
)
from ansible_collections.smartos.images.plugins.module_utils._resolver import ImageResolver
from ansible_collections.smartos.images.plugins.modules import smartos_image_facts
from ansible_collections.smartos.images.tests.unit.fakehost import FakeHost, warnings_of

RIGHT = '1B2M2Y8AsgTpgAmY7PhCfg=='   # MD5 of no bytes
OTHER = 'DMF1ucDxtqgxw5niaXcmYQ=='   # MD5 of b'a'


class Response:
    def __init__(self, pairs):
        self.status = 200
        self.headers = email.message.Message()
        for key, value in pairs:
            self.headers[key] = value

    def close(self):
        pass


@pytest.mark.parametrize('values, expected', [
    ([], None), ([RIGHT], RIGHT), ([RIGHT, RIGHT], RIGHT),
    ([RIGHT, OTHER], '%s, %s' % (RIGHT, OTHER)), ([OTHER, RIGHT], '%s, %s' % (RIGHT, OTHER)),
])
def test_a_content_md5_repeated_with_other_values_is_not_one_digest(values, expected):
    """Defect: the first of two differing Content-MD5 headers was taken, so a server could vouch for a file with
    one and deny it with the other. Now they are joined (as node joins them for imgadm) and refused as malformed."""
    stream = FileStream(Response([('Content-MD5', v) for v in values]), 0)
    assert stream.content_md5 == expected
    if expected is not None and ',' in expected:
        client = types.SimpleNamespace(source=types.SimpleNamespace(url='http://img.example'))
        with pytest.raises(DownloadError) as e:
            _importer.content_md5(stream, 'u', client)
        assert 'malformed Content-MD5' in e.value.msg


# ---- warnings of the host's source file reach every module ----

def _leftover(root, data, modern=True):
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


@pytest.mark.parametrize('modern, data, words', BAD_LINES)
def test_facts_warn_of_the_lines_of_a_source_file_they_skip(run_module, tmp_path, modern, data, words):
    """Defect: the warnings of the host's source file (a leftover sources.list that is not UTF-8, lines skipped
    from it) reached smartos_image_source only; smartos_image_facts listed fewer sources in silence."""
    _leftover(tmp_path, data, modern)
    result = run_module(smartos_image_facts, FakeHost(), gather_subset=['sources'])
    assert not result.get('failed'), result.get('msg')
    assert [w for w in warnings_of(result) if words in w], warnings_of(result)


@pytest.mark.parametrize('modern, data, words', BAD_LINES)
def test_imports_warn_of_the_lines_of_a_source_file_they_skip(tmp_path, modern, data, words):
    """Defect: the same warnings were lost by smartos_image (the resolver read the host's sources without them)."""
    _leftover(tmp_path, data, modern)
    warned = []
    paths = _host.HostPaths(str(tmp_path))
    resolver = ImageResolver({'source': None}, paths, _host.detect_layout(paths), warn=lambda text, key=None:
                             warned.append(text))
    assert resolver.sources('an image')
    assert [w for w in warned if words in w], warned


# ---- one credential rule: a user-only token is a secret everywhere ----

@pytest.mark.parametrize('url', ['http://T0kenValue@img.example', 'http://T0kenValue:@img.example',
                                 'http://T0ken%2FValue:@img.example'])
def test_a_user_only_token_is_a_secret_of_the_url_and_of_the_client(url):
    """Defect: url_secrets missed a token written "token:" (an empty password), and the client's own scrub hid a
    password only, so an error echoing a user-only token or its Basic header showed it."""
    token = unquote(url.split('//')[1].split('@')[0].rstrip(':'))
    assert token in url_secrets(url)
    client = ImageServerClient(ImageSource(url), retries=0)
    basic = base64.b64encode(('%s:' % token).encode()).decode()
    shown = client.scrub('you sent Basic %s (%s:) as %s' % (basic, token, quote(token, safe='')))
    assert token not in shown and basic not in shown and quote(token, safe='') not in shown, shown


def test_a_password_is_still_the_only_secret_beside_a_user_name():
    client = ImageServerClient(ImageSource('http://alice:pw@img.example'), retries=0)
    assert url_secrets('http://alice:pw@img.example') == {'pw'}
    assert client.scrub('alice pw') == 'alice ***'


# ---- a huge source file: work that grows with its lines, not their square ----

MANY = 2000


def test_a_leftover_sources_list_of_many_lines_is_read_in_linear_work(tmp_path, monkeypatch):
    """Defect: each migrated line was compared with every line kept before it (a set rebuilt per line), so a
    sources.list of 30,000 mirrors under the 1 MiB cap took hours. Counted: URL normalizations per line."""
    _leftover(tmp_path, ''.join('http://m%d.example/datasets\n' % i for i in range(MANY)).encode())
    calls = []
    real = _sources.normalize_url
    monkeypatch.setattr(_sources, 'normalize_url', lambda url: calls.append(url) or real(url))
    store = _sources.ModernSources(_host.HostPaths(str(tmp_path))).load()
    assert len(store.entries()) == MANY + 1
    assert len(calls) < 10 * MANY


class _CountingUrl(str):
    """A URL that counts how often it is compared."""

    compared = [0]

    def __eq__(self, other):
        self.compared[0] += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_a_sources_list_of_many_lines_is_written_in_linear_work(tmp_path):
    """Defect: the original layout's render looked each line up in lists of every URL, so adding one source to a
    sources.list of 30,000 lines took minutes. Counted: comparisons of URLs; the lines are kept as they were."""
    _leftover(tmp_path, b'# mirrors\n' + ''.join('http://m%d.example/datasets\n' % i for i in range(MANY)).encode(),
              modern=False)
    store = _sources.OriginalSources(_host.HostPaths(str(tmp_path))).load()
    entries = store.entries()
    for entry in entries:
        entry.url = _CountingUrl(entry.url)
    _CountingUrl.compared[0] = 0
    new = _sources.SourceEntry('http://new.example/datasets', 'dsapi')
    text = store.render(entries + [new]).decode()
    assert text.splitlines() == ['# mirrors'] + ['http://m%d.example/datasets' % i for i in range(MANY)] + [new.url]
    assert _CountingUrl.compared[0] < 10 * MANY
