# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""smartos_image_source main() end to end: the fake image servers (tests/unit/fakehost.py) behind the Request that ImageServerClient uses;
the module's JSON (with its invocation, what -vvv prints) is parsed from stdout."""

from __future__ import annotations

import functools
import json
import os

import pytest
from ansible.module_utils.common.parameters import PASS_VARS

from ansible_collections.smartos.images.plugins.modules import smartos_image_source

RAW_PASSWORDS = ['p#ss', 'p/ss', 'p?ss', 'p@ss', 'a/b?c#d@e', 'hunter2']


@pytest.fixture
def run(run_module, servers):
    """run(check=..., diff=..., **module args) -> the result of smartos_image_source's main(), the servers faked."""
    return functools.partial(run_module, smartos_image_source, None)


def conf(root):
    return os.path.join(str(root), 'var', 'imgadm', 'imgadm.conf')


def test_scheme_less_url_fails_before_ping_or_write(run, servers, tmp_path):
    for args in ({'url': 'images.example'}, {'url': 'images.example', 'ping': False}):
        result = run(**args)
        assert result['failed'] and 'write https://images.example' in result['msg']
    assert servers.requests == [] and os.listdir(str(tmp_path)) == []


def test_update_cache_with_url_on_a_modern_host_writes_nothing(run, servers, tmp_path):
    servers.serve('https://a.example/ping', {'ping': 'pong', 'imgapi': True})
    result = run(url='https://a.example', update_cache=True)
    assert result['failed'] and 'original imgadm layout' in result['msg']
    assert servers.requests == [] and os.listdir(str(tmp_path)) == []


# The result carries the module's arguments ('invocation', what -vvv shows), and they are masked too: ansible-core
# 2.21 adds them only when asked (ANSIBLE_INJECT_INVOCATION, passed on as this key), older cores always.
INJECT_INVOCATION = {'_ansible_inject_invocation': True} if 'inject_invocation' in PASS_VARS else {}


@pytest.mark.parametrize('password', RAW_PASSWORDS)
def test_argument_password_never_printed(run, password):
    url = 'https://admin:%s@a.example:8443/x' % password
    for args in ({'url': url, 'ping': False}, {'url': url, 'retries': 0}, {'sources': [{'url': url}], 'ping': False},
                 {'url': url, 'state': 'absent'}):
        result = run(**dict(args, **INJECT_INVOCATION))
        text = json.dumps(result)
        assert password not in text, result
        assert 'invocation' in result


@pytest.mark.parametrize('password', RAW_PASSWORDS)
def test_file_password_never_printed(run, tmp_path, password):
    os.makedirs(os.path.dirname(conf(tmp_path)))
    with open(conf(tmp_path), 'w') as f:
        json.dump({'sources': [{'type': 'imgapi', 'url': 'https://admin:%s@a.example' % password}]}, f)
    for args in ({'url': 'https://b.example', 'ping': False}, {'url': 'https://a.example', 'state': 'absent'}):
        result = run(**args)
        assert password not in json.dumps(result), result


def test_percent_encoded_password_is_stored_and_hidden(run, tmp_path):
    url = 'https://admin:p%23ss%2Fw%3Fd%40x@a.example'
    result = run(url=url, ping=False)
    assert result['changed'] and result['sources'][-1]['url'] == 'https://***@a.example'
    for secret in ('p%23ss%2Fw%3Fd%40x', 'p#ss/w?d@x'):
        assert secret not in json.dumps(result)
    assert json.load(open(conf(tmp_path)))['sources'][-1]['url'] == url
    assert os.stat(conf(tmp_path)).st_mode & 0o777 == 0o600


def test_bad_file_warnings_reach_the_result(run, tmp_path):
    os.makedirs(os.path.join(str(tmp_path), 'var', 'db', 'imgadm'))
    with open(os.path.join(str(tmp_path), 'var', 'db', 'imgadm', 'sources.list'), 'w') as f:
        f.write('https://u:pw1@a.example/datasets\njunk line\n')
    result = run(url='https://b.example/datasets', type='dsapi', ping=False)
    warnings = json.dumps(result['warnings'])  # ansible-core 2.19 returns them as structured events
    assert result['changed'] and 'sources.list line 2 skipped' in warnings and 'chmod 600' in warnings
    assert 'pw1' not in json.dumps(result)
