# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_sources.py: URL identity and both source-list formats."""

from __future__ import annotations

import json

import pytest

from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, InvalidParameter
from ansible_collections.smartos.images.plugins.module_utils._host import HostPaths, detect_layout
from ansible_collections.smartos.images.plugins.module_utils._sources import (
    ModernSources, OriginalSources, SourceEntry, normalize_url,
)


@pytest.mark.parametrize('url,expected', [
    ('images.smartos.org', 'http://images.smartos.org'),
    ('https://images.smartos.org/', 'https://images.smartos.org'),
    ('https://images.smartos.org//', 'https://images.smartos.org/'),  # only one slash goes, as in imgadm
    ('https://images.smartos.org:443', 'https://images.smartos.org'),
    ('http://images.smartos.org:80/x/', 'http://images.smartos.org/x'),
    ('http://images.smartos.org:443', 'http://images.smartos.org:443'),
    ('https://u.example/?channel=dev', 'https://u.example?channel=dev'),
    ('https://u.example/x?channel=dev', 'https://u.example/x?channel=dev'),
])
def test_normalize_url(url, expected):
    assert normalize_url(url) == expected


@pytest.mark.parametrize('a,b,same', [
    (('https://i.example/', 'imgapi', False), ('https://i.example:443', 'imgapi', False), True),
    (('https://i.example', 'imgapi', False), ('https://i.example', 'imgapi', True), False),
    (('https://i.example/datasets', 'imgapi', False), ('https://i.example/datasets', 'dsapi', False), False),
    (('https://i.example?channel=a', 'imgapi', False), ('https://i.example?channel=b', 'imgapi', False), False),
    (('i.example', 'imgapi', False), ('http://i.example/', 'imgapi', False), True),
])
def test_identity(a, b, same):
    assert (SourceEntry(*a).identity == SourceEntry(*b).identity) is same


def test_entry_validation():
    with pytest.raises(InvalidParameter, match='must be one of'):
        SourceEntry('https://x', 'ftp')
    with pytest.raises(InvalidParameter, match='not an http'):
        SourceEntry('ftp://x')
    with pytest.raises(InvalidParameter, match='does not end with "/datasets"'):
        SourceEntry('https://x/images', 'dsapi')


def test_entry_validation_hides_credentials():
    with pytest.raises(InvalidParameter) as err:
        SourceEntry('ftp://user:pw@x')
    assert 'pw' not in err.value.msg and '***@x' in err.value.msg


def test_to_config_matches_imgadm():
    assert SourceEntry('https://x').to_config() == {'type': 'imgapi', 'url': 'https://x'}
    assert SourceEntry('https://x', insecure=True).to_config() == {'type': 'imgapi', 'url': 'https://x', 'insecure': True}
    kept = SourceEntry.from_config({'url': 'https://x', 'type': 'imgapi', 'channel': 'dev', 'later': 1}, 'f')
    assert kept.to_config() == {'type': 'imgapi', 'url': 'https://x', 'channel': 'dev', 'later': 1}
    assert kept.channel == 'dev'


def modern(tmp_path, text=None):
    paths = HostPaths(str(tmp_path))
    if text is not None:
        (tmp_path / 'var' / 'imgadm').mkdir(parents=True)
        (tmp_path / 'var' / 'imgadm' / 'imgadm.conf').write_text(text)
    return ModernSources(paths).load()


def test_modern_absent_file_is_the_implicit_default(tmp_path):
    store = modern(tmp_path)
    assert store.implicit and [e.url for e in store.entries()] == ['https://images.smartos.org']


def test_modern_round_trip_keeps_unknown_keys_and_order(tmp_path):
    text = json.dumps({'upgradedToVer': '3.0.0', 'sources': [{'type': 'imgapi', 'url': 'https://a'}],
                       'zzz': {'nested': [1]}}, indent=2)
    store = modern(tmp_path, text)
    assert not store.implicit
    assert store.render(store.entries()).decode() == text
    out = json.loads(store.render(store.entries() + [SourceEntry('https://b', 'imgapi', True)]))
    assert list(out) == ['upgradedToVer', 'sources', 'zzz'] and out['zzz'] == {'nested': [1]}
    assert out['sources'][1] == {'type': 'imgapi', 'url': 'https://b', 'insecure': True}


@pytest.mark.parametrize('text,words', [
    ('{', 'is not valid JSON'), ('[]', 'must hold a JSON object'), ('{"sources": 1}', 'must be a list'),
])
def test_modern_bad_files(tmp_path, text, words):
    with pytest.raises(ImageError, match=words):
        modern(tmp_path, text)


def original(tmp_path, text):
    (tmp_path / 'var' / 'db' / 'imgadm').mkdir(parents=True)
    (tmp_path / 'var' / 'db' / 'imgadm' / 'sources.list').write_text(text)
    return OriginalSources(HostPaths(str(tmp_path))).load()


LISTING = '# comment\nhttps://a/datasets\n\n$ skipped\nhttps://b/datasets\n# tail\n'


def urls(*names):
    return [SourceEntry('https://%s/datasets' % n, 'dsapi') for n in names]


@pytest.mark.parametrize('wanted,expected', [
    (('a', 'b'), LISTING),
    (('a', 'b', 'c'), LISTING + 'https://c/datasets\n'),
    (('b',), '# comment\n\n$ skipped\nhttps://b/datasets\n# tail\n'),
    (('b', 'a'), '# comment\nhttps://b/datasets\n\n$ skipped\nhttps://a/datasets\n# tail\n'),
    ((), '# comment\n\n$ skipped\n# tail\n'),
])
def test_original_render_keeps_comments(tmp_path, wanted, expected):
    store = original(tmp_path, LISTING)
    assert [e.url for e in store.entries()] == ['https://a/datasets', 'https://b/datasets']
    assert all(e.type == 'dsapi' for e in store.entries())
    assert store.render(urls(*wanted)).decode() == expected


def test_layout_detection(tmp_path):
    paths = HostPaths(str(tmp_path))
    assert detect_layout(paths) == 'modern'
    (tmp_path / 'var' / 'db' / 'imgadm').mkdir(parents=True)
    assert detect_layout(paths) == 'original'
    assert detect_layout(paths, 'modern') == 'modern'
    (tmp_path / 'var' / 'imgadm').mkdir(parents=True)
    assert detect_layout(paths) == 'modern'  # modern imgadm ignores a leftover /var/db/imgadm
