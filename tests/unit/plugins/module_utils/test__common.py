# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_common.py: shared option checks and password hiding."""

from __future__ import annotations

import importlib
import json

import pytest

from ansible.module_utils.common.parameters import remove_values

from ansible_collections.smartos.images.plugins.module_utils._common import (
    SHARED_OPTIONS, check_pool, check_server_params, hide_url_passwords, module_argument_spec, option_urls, run_worker,
)
from ansible_collections.smartos.images.plugins.module_utils._errors import CommandError, InvalidParameter


class FakeModule:
    """What run_worker and hide_url_passwords use of an AnsibleModule; exit_json and fail_json end the run."""

    def __init__(self):
        self.no_log_values = set()
        self.params = {}
        self.warned = []
        self.ended = None

    def warn(self, text):
        self.warned.append(text)

    def exit_json(self, **result):
        self.ended = ('exit', result)
        raise SystemExit(0)

    def fail_json(self, **result):
        self.ended = ('fail', result)
        raise SystemExit(1)


class Worker:
    """A worker that returns result (or raises error), with warnings of its own."""

    def __init__(self, result=None, error=None, warnings=()):
        self.result, self.error, self.warnings = result, error, list(warnings)
        self.run_args = None

    def run(self, **run_args):
        self.run_args = run_args
        if self.error:
            raise self.error
        return self.result


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


def run(worker, **run_args):
    module = FakeModule()
    with pytest.raises(SystemExit):
        run_worker(module, lambda m: worker, **run_args)
    return module


def test_run_worker_exits_with_the_result_and_warns_the_worker_warnings():
    worker = Worker(result={'changed': True, 'x': 1}, warnings=['w1'])
    module = run(worker, diff=True)
    assert module.ended == ('exit', {'changed': True, 'x': 1})
    assert module.warned == ['w1'] and worker.run_args == {'diff': True}


def test_run_worker_turns_result_warnings_into_module_warnings_once():
    shared = ['a', 'b']
    module = run(Worker(result={'changed': False, 'warnings': shared}, warnings=shared))
    assert module.ended == ('exit', {'changed': False})      # no 'warnings' key of the worker's own
    assert module.warned == ['a', 'b']


def test_run_worker_fails_with_the_evidence_and_the_warnings_so_far():
    error = CommandError('zfs failed', cmd='zfs list', rc=1, stderr='boom', path=None)
    module = run(Worker(error=error, warnings=['seen before the failure']))
    assert module.ended == ('fail', {'msg': 'zfs failed', 'cmd': 'zfs list', 'rc': 1, 'stderr': 'boom'})
    assert module.warned == ['seen before the failure']


def test_run_worker_fails_when_the_worker_cannot_be_built():
    module = FakeModule()

    def refuse(m):
        raise InvalidParameter('bad option')

    with pytest.raises(SystemExit):
        run_worker(module, refuse)
    assert module.ended == ('fail', {'msg': 'bad option'}) and module.warned == []


def test_module_argument_spec_adds_each_shared_group_once():
    spec = module_argument_spec({'name': {'type': 'str'}}, 'pool', 'host', 'server', 'source')
    expected = {'name'}
    for group in SHARED_OPTIONS.values():
        expected |= set(group())
    assert set(spec) == expected
    assert spec['pool'] == {'type': 'str', 'default': 'zones'}
    assert spec is not module_argument_spec({}, 'pool')           # built afresh: no module changes another's


def test_module_argument_spec_refuses_a_shared_option_declared_again():
    with pytest.raises(ValueError, match='pool'):
        module_argument_spec({'pool': {'type': 'str'}}, 'pool')


def test_option_urls_finds_every_url_option_at_any_depth():
    params = {'source': ['https://a:1@x', 5, None], 'url': 'https://b:2@y', 'pool': 'https://not:a@url',
              'sources': [{'url': 'https://c:3@z', 'type': 'imgapi'}], 'images': [{'uuid': 'u', 'source': 'd'}]}
    assert option_urls(params) == ['https://a:1@x', 'https://b:2@y', 'https://c:3@z', 'imgapi', 'd']


SECRET = 'pw-0f3e9a'


@pytest.mark.parametrize('module_name, careless', [
    ('smartos_image', dict(source=['http://u:%s@127.0.0.1:1' % SECRET], uuid='x', statez='present')),
    ('smartos_image', dict(source=['http://u:%s@127.0.0.1:1' % SECRET], uuid='x', timeout='soon')),
    ('smartos_image_source', dict(url='http://u:%s@127.0.0.1:1' % SECRET, state='gone')),
    ('smartos_image_source', dict(sources=[{'url': 'http://u:%s@127.0.0.1:1' % SECRET, 'typo': 1}])),
    ('smartos_image_facts', dict(source=['http://u:%s@127.0.0.1:1' % SECRET], gather_subset='nonsense')),
    ('smartos_image_mirror', dict(source=['http://u:%s@127.0.0.1:1' % SECRET], path='/m', imagez=[])),
])
def test_options_ansible_refuses_do_not_show_the_source_password(run_module, module_name, careless):
    """AnsibleModule fails on these before the module's own code runs: the password is masked all the same."""
    module = importlib.import_module('ansible_collections.smartos.images.plugins.modules.' + module_name)
    result = run_module(module, **careless)
    assert result['failed'] and result['msg']
    assert SECRET not in json.dumps(result)
