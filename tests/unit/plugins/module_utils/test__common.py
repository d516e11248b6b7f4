# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_common.py: shared option checks and password hiding."""

from __future__ import annotations

import pytest

from ansible.module_utils.common.parameters import remove_values

from ansible_collections.smartos.images.plugins.module_utils._common import (
    check_pool, check_server_params, hide_url_passwords,
)
from ansible_collections.smartos.images.plugins.module_utils._errors import InvalidParameter


class FakeModule:
    def __init__(self):
        self.no_log_values = set()


@pytest.mark.parametrize('url, hidden', [
    ('https://alice:s3cret@img.example.com/', {'s3cret'}),
    ('https://alice:p%40ss@img.example.com/', {'p%40ss', 'p@ss'}),    # as written and as sent
    ('https://alice:p#ss@img.example.com/', {'p#ss'}),                # urlsplit would see no password
    ('https://alice:p/ss@img.example.com/', {'p/ss'}),
    ('https://alice:p?ss@img.example.com/', {'p?ss'}),
    ('https://alice:p@ss@img.example.com/', {'p@ss'}),
    ('https://alice:p:ss@img.example.com/', {'p:ss'}),
    ('http://alice:pw@[::1', {'pw'}),                                 # urlsplit raises
    ('http://alice:pw@img.example.com:99999', {'pw'}),                # .port raises
    ('alice:pw@img.example.com', {'pw'}),                             # no scheme
    ('https://alice@img.example.com/', {'alice'}),   # a user without password is often a token: hidden too
    ('https://img.example.com/', set()),
    (None, set()),
    (42, set()),
])
def test_hide_url_passwords(url, hidden):
    module = FakeModule()
    hide_url_passwords(module, [url])
    assert module.no_log_values == hidden


def test_hidden_passwords_are_masked_in_module_args():
    module = FakeModule()
    urls = ['https://alice:p#ss/w?rd@img.example.com/', 'http://bob:x@y@[::1']
    hide_url_passwords(module, urls)
    shown = remove_values({'source': urls}, module.no_log_values)
    assert 'p#ss/w?rd' not in str(shown) and 'x@y' not in str(shown)


def test_hide_url_passwords_without_urls():
    module = FakeModule()
    hide_url_passwords(module, None)
    assert module.no_log_values == set()


@pytest.mark.parametrize('params, words', [
    ({'timeout': 0, 'retries': 3}, 'timeout must be a positive number'),
    ({'timeout': 30, 'retries': -1}, 'retries must be 0 or more'),
    ({'timeout': 10 ** 10, 'retries': 3}, r'timeout must be at most 86400 seconds \(a day\)'),
])
def test_check_server_params(params, words):
    with pytest.raises(InvalidParameter, match=words):
        check_server_params(params)


def test_check_server_params_accepts_defaults():
    check_server_params({'timeout': 30, 'retries': 3, 'ca_path': None})


@pytest.mark.parametrize('pool', ['', '1zones', 'zones/x', '-o', None])
def test_check_pool_refuses(pool):
    with pytest.raises(InvalidParameter):
        check_pool(pool)
