# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_source_manager.py: validate before touching the host, hide passwords."""

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, InvalidParameter, SourceError
from ansible_collections.smartos.images.plugins.module_utils._source_manager import SourceManager
from ansible_collections.smartos.images.tests.unit.fakehost import FakeClients


def params(root, **kw):
    p = dict(url=None, type='imgapi', insecure=False, sources=None, state='present', ping=True, update_cache=False,
             host_root=str(root), layout='auto', validate_certs=True, ca_path=None, timeout=30, retries=0)
    p.update(kw)
    return p


def tree(root):
    return sorted(os.path.relpath(os.path.join(d, f), str(root)) for d, dummy, fs in os.walk(str(root)) for f in fs)


def conf(root):
    return os.path.join(str(root), 'var', 'imgadm', 'imgadm.conf')


@pytest.mark.parametrize('args', [
    {'url': 'images.example'},
    {'url': '127.0.0.1:8080', 'ping': False},
    {'url': 'images.example', 'state': 'absent'},
    {'sources': [{'url': 'https://a'}, {'url': 'b.example'}]},
])
def test_url_without_scheme_is_refused_before_ping_or_write(tmp_path, args):
    factory = FakeClients()
    with pytest.raises(InvalidParameter) as err:
        SourceManager(params(tmp_path, **args), client_factory=factory).run()
    assert 'has no scheme: write https://' in err.value.msg
    assert factory.made == [] and tree(tmp_path) == []


@pytest.mark.parametrize('args', [{'url': 'https://a.example'}, {'url': 'https://a.example', 'ping': False},
                                  {'sources': [{'url': 'https://a.example'}]}, {}])
def test_update_cache_on_a_modern_host_fails_before_anything(tmp_path, args):
    factory = FakeClients()
    with pytest.raises(InvalidParameter, match='only hosts with the original imgadm layout have.*nothing was changed'):
        SourceManager(params(tmp_path, update_cache=True, **args), client_factory=factory).run()
    assert factory.made == [] and tree(tmp_path) == []


@pytest.mark.parametrize('password', ['p#ss', 'p/ss', 'p?ss', 'p@ss', 'hunter2'])
def test_argument_passwords_are_registered_before_anything_fails(tmp_path, password):
    secrets = set()
    url = 'https://admin:%s@images.example' % password
    try:
        SourceManager(params(tmp_path, url=url, ping=False), client_factory=FakeClients(), secrets=secrets).run()
    except ImageError as e:
        assert password not in e.msg
    assert password in secrets


def test_file_passwords_are_registered_even_when_the_file_is_bad(tmp_path):
    os.makedirs(os.path.dirname(conf(tmp_path)))
    with open(conf(tmp_path), 'w') as f:
        json.dump({'sources': [{'type': 'imgapi', 'url': 'https://u:s3#cret@a.example'}, 1]}, f)
    secrets = set()
    with pytest.raises(ImageError) as err:
        SourceManager(params(tmp_path, url='https://b.example', ping=False), secrets=secrets).run()
    assert 'entry 1 of "sources"' in err.value.msg and 's3#cret' not in err.value.msg
    assert 's3#cret' in secrets


def test_ping_error_hides_a_raw_password(tmp_path):
    factory = FakeClients(ping_error='connection refused')
    with pytest.raises(SourceError) as err:
        SourceManager(params(tmp_path, url='https://admin:p@ss@a.example'), client_factory=factory).run()
    assert 'p@ss' not in err.value.msg and 'p@ss' not in json.dumps(err.value.evidence)
    assert not os.path.exists(conf(tmp_path))


def test_password_in_a_readable_file_warns(tmp_path):
    url = 'https://admin:hunter2@a.example'
    manager = SourceManager(params(tmp_path, url=url, ping=False))
    result = manager.run(diff=True)
    assert stat.S_IMODE(os.stat(conf(tmp_path)).st_mode) == 0o600 and manager.warnings == []
    assert 'hunter2' not in json.dumps(result)
    os.chmod(conf(tmp_path), 0o644)
    again = SourceManager(params(tmp_path, url=url, ping=False))
    assert not again.run()['changed']
    assert again.warnings and 'mode 0644' in again.warnings[0] and 'hunter2' not in again.warnings[0]


@pytest.mark.parametrize('first,second', [
    ('https://Images.Example/', 'HTTPS://images.example'),
    ('https://images.example:443', 'https://images.example'),
    ('http://images.example:80/', 'http://images.example'),
])
def test_equivalent_urls_are_one_source(tmp_path, first, second):
    SourceManager(params(tmp_path, url=first, ping=False)).run()
    result = SourceManager(params(tmp_path, url=second, ping=False)).run()
    assert not result['changed'] and len(result['sources']) == 2  # the implicit default, then ours
    gone = SourceManager(params(tmp_path, url=second, state='absent')).run()
    assert gone['changed'] and [s['url'] for s in gone['sources']] == ['https://images.smartos.org']


def test_duplicates_in_the_task_collapse(tmp_path):
    result = SourceManager(params(tmp_path, sources=[{'url': 'https://a/'}, {'url': 'https://A'}], ping=False)).run()
    assert [s['url'] for s in result['sources']] == ['https://a/']


def test_duplicates_in_the_file_are_kept_and_removed_together(tmp_path):
    os.makedirs(os.path.dirname(conf(tmp_path)))
    with open(conf(tmp_path), 'w') as f:
        json.dump({'sources': [{'type': 'imgapi', 'url': 'https://a'}, {'type': 'imgapi', 'url': 'https://a/'}]}, f)
    assert not SourceManager(params(tmp_path, url='https://a')).run()['changed']
    assert SourceManager(params(tmp_path, url='https://a', state='absent')).run()['sources'] == []


def original_root(root, text):
    os.makedirs(os.path.join(str(root), 'var', 'db', 'imgadm'))
    with open(os.path.join(str(root), 'var', 'db', 'imgadm', 'sources.list'), 'w') as f:
        f.write(text)


def test_update_cache_skips_what_is_not_a_manifest_and_leaves_credentials_out(tmp_path):
    original_root(tmp_path, 'https://u:pw@d.example/datasets\nnot a url\n')
    factory = FakeClients(default=[{'uuid': 'u1', 'name': 'a'}, 'junk', None, ['x']])
    manager = SourceManager(params(tmp_path, update_cache=True), client_factory=factory)
    result = manager.run()
    assert result['cache_updated'] and result['changed']
    cache = json.load(open(os.path.join(str(tmp_path), 'var', 'db', 'imgadm', 'imgcache.json')))
    assert cache == [{'uuid': 'u1', 'name': 'a', '_url': 'https://d.example/datasets'}]
    assert sum('not a manifest object; skipped' in w for w in manager.warnings) == 3
    assert any('line 2 skipped' in w for w in manager.warnings)
    assert not any('pw' in w for w in manager.warnings)
