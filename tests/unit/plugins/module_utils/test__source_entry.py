# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_source_entry.py: a source entry from an argument or a config, normalized URLs."""

from __future__ import annotations

import json

import pytest

from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, InvalidParameter
from ansible_collections.smartos.images.plugins.module_utils._source_entry import SourceEntry, normalize_url
from ansible_collections.smartos.images.plugins.module_utils._urls import url_secrets


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


@pytest.mark.parametrize('url,expected', [
    ('HTTPS://Images.SmartOS.org/', 'https://images.smartos.org'),  # node's url.parse lower-cases scheme and host
    ('https://User:PW@Images.Example:443/x/', 'https://User:PW@images.example/x'),  # credentials keep their case
    ('Images.SmartOS.org', 'http://images.smartos.org'),
])
def test_normalize_url_case(url, expected):
    assert normalize_url(url) == expected


@pytest.mark.parametrize('url', ['http://[::1', 'http://u:pw@[::1/x', '[::1', None, 5, ['x']])
def test_normalize_url_is_total(url):
    with pytest.raises(InvalidParameter) as err:
        normalize_url(url)
    assert 'pw' not in err.value.msg


@pytest.mark.parametrize('url,words', [
    ('images.example', 'has no scheme: write https://images.example'),
    ('127.0.0.1:8080', 'has no scheme: write https://127.0.0.1:8080'),
    ('ftp://images.example', 'is not an http:// or https:// URL'),
    ('http://[::1', 'is not a valid URL'),
    ('http://images.example:99999', 'is not a valid URL'),
    ('http://', 'has no host'),
    ('http://images example', 'space or a control character'),
    ('https://admin:12#34@images.example', 'percent-encode'),
    ('https://admin:p/ss@images.example', 'percent-encode'),
    ('https://admin:p?ss@images.example', 'percent-encode'),
])
def test_argument_urls_refused(url, words):
    with pytest.raises(InvalidParameter) as err:
        SourceEntry.from_argument(url)
    assert words in err.value.msg
    for secret in url_secrets(url):
        assert secret not in err.value.msg


def test_argument_url_with_raw_at_in_the_password_is_usable():
    entry = SourceEntry.from_argument('https://admin:p@ss@images.example')
    assert entry.for_import().password == 'p@ss' and 'p@ss' not in json.dumps(entry.shown())


def test_config_entry_without_scheme_is_read_as_imgadm_reads_it():
    entry = SourceEntry.from_config({'type': 'imgapi', 'url': 'images.example'}, 'f', 1)
    assert entry.for_import().base == 'http://images.example'
    assert entry.identity == SourceEntry.from_argument('http://images.example/').identity


@pytest.mark.parametrize('item,words', [
    ('https://admin:hunter2@x', 'entry 1 of "sources" is a string, not an object'),
    (['https://admin:hunter2@x'], 'is a list, not an object'),
    ({'url': ['https://admin:hunter2@x']}, 'has a list "url", not a string'),
    ({'url': None}, 'has null "url"'),
    ({'url': 'https://admin:hunter2@x', 'type': 1}, 'has a number "type", not a string'),
    ({'url': 'https://admin:hunter2@x', 'type': ['imgapi']}, 'has a list "type"'),
    ({'url': 'https://admin:hunter2@x', 'insecure': 'false'}, 'has a string "insecure", not true or false'),
    ({'url': 'https://admin:hunter2@x', 'channel': ['dev']}, 'has a list "channel"'),
    ({'url': 'http://[::1', 'type': 'imgapi'}, 'is not a valid URL'),
    ({'url': 'https://admin:hunter2@[::1', 'type': 'imgapi'}, 'is not a valid URL'),
    ({'url': 'https://admin:hun#ter2@x', 'type': 'imgapi'}, 'percent-encode'),
    ({'url': 'ftp://admin:hunter2@x', 'type': 'imgapi'}, 'not an http://'),
    ({'url': 'https://admin:hunter2@x', 'type': 'ftp'}, 'is invalid: must be one of'),
])
def test_bad_config_entries_name_the_file_and_hide_passwords(item, words):
    with pytest.raises(ImageError) as err:
        SourceEntry.from_config(item, '/var/imgadm/imgadm.conf', 1)
    assert words in err.value.msg and err.value.msg.startswith('/var/imgadm/imgadm.conf: entry 1')
    assert 'hunter2' not in err.value.msg and 'hun#ter2' not in err.value.msg


@pytest.mark.parametrize('url,kind', [('https://d.example/datasets', 'dsapi'), ('https://d.example/datasets/', 'dsapi'),
                                      ('https://i.example', 'imgapi'), ('https://i.example/datasets/x', 'imgapi')])
def test_typeless_entry_gets_the_type_imgadm_upgrade_gives_it(url, kind):
    assert SourceEntry.from_config({'url': url}, 'f', 1).type == kind
    assert SourceEntry.from_config({'url': url, 'type': None}, 'f', 1).type == kind
