"""Issue 10 for smartos_image_source, through real ansible-playbook runs: validate before touching the host,
outside data checked where it enters, no password ever printed, files written as imgadm writes them."""
from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest

from tests.integration.conftest import POOL, tree_state

pytestmark = pytest.mark.usefixtures('collection_built')

RAW_PASSWORDS = ['p#ss', 'p/ss', 'p?ss', 'p@ss', 'a/b?c#d@e']


def src_task(host_root, **args):
    return {'name': 'sources', 'smartos.images.smartos_image_source': dict(host_root=host_root, **args)}


def conf_path(root):
    return os.path.join(root, 'var', 'imgadm', 'imgadm.conf')


def write(path, data, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data if isinstance(data, bytes) else data.encode('utf-8'))
    os.chmod(path, mode)


def read(path):
    with open(path, encoding='utf-8') as f:
        return f.read()


def no_traceback(result):
    """A clean failure: the module's own message, not a Python exception."""
    # ansible-core 2.19 adds "exception": "(traceback unavailable)" to every fail_json; a real one has a stack
    assert 'module_stderr' not in result and 'Traceback (most recent call last)' not in json.dumps(result), result
    assert 'Traceback' not in result['_stdout'] + result['_stderr'] and 'MODULE FAILURE' not in result.get('msg', '')


def warnings_of(result):
    return json.dumps(result.get('warnings', []))


def run_verbose(play, task):
    """ansible-playbook -vvv: the whole printed output and the recorded result. The result carries the module's
    arguments (the invocation): ansible-core 2.21 adds them only when ANSIBLE_INJECT_INVOCATION asks for it."""
    argv, env, record = play.command(task)
    env['ANSIBLE_INJECT_INVOCATION'] = '1'
    proc = subprocess.run(argv + ['-vvv'], env=env, capture_output=True, text=True, timeout=300, check=False)
    last = play.results(record)[-1]
    return proc.stdout + proc.stderr, dict(last['result'], failed=last['status'] == 'failed'), read(record)


# ---- 1. a URL without a scheme is refused, as smartos_image refuses it, before any ping or write ----

@pytest.mark.parametrize('ping', [True, False])
def test_scheme_less_url_refused_before_ping_or_write(play, server, host_root, ping):
    bare = server.url.split('://')[1]
    result = play(src_task(host_root, url=bare, ping=ping))
    assert result['failed'] and 'write https://%s' % bare in result['msg'], result['msg']
    no_traceback(result)
    assert tree_state(host_root) == {} and server.requests() == []
    exclusive = play(src_task(host_root, sources=[{'url': server.url}, {'url': bare}]))
    assert exclusive['failed'] and 'has no scheme' in exclusive['msg'] and tree_state(host_root) == {}


def test_both_modules_refuse_a_scheme_less_url(play, server, host_root):
    bare = server.url.split('://')[1]
    image = play({'name': 'image', 'smartos.images.smartos_image': dict(
        uuid='11111111-2222-4333-8444-555555555555', pool=POOL, host_root=host_root, source=[bare])})
    source = play(src_task(host_root, url=bare))
    assert image['failed'] and source['failed'] and tree_state(host_root) == {}


def test_scheme_less_entry_written_by_imgadm_is_still_read_and_removable(play, server, host_root):
    write(conf_path(host_root), json.dumps({'sources': [{'type': 'imgapi', 'url': server.url.split('://')[1]}]}))
    kept = play(src_task(host_root, url=server.url))
    assert not kept['failed'] and not kept['changed']  # the same source as http://<host>, as imgadm sees it
    gone = play(src_task(host_root, url=server.url, state='absent'))
    assert gone['changed'] and json.loads(read(conf_path(host_root)))['sources'] == []


# ---- 2. update_cache on a modern host fails before anything is written ----

def test_update_cache_with_url_on_a_modern_host_writes_nothing(play, server, host_root):
    for layout in ('auto', 'modern'):
        result = play(src_task(host_root, url=server.url, update_cache=True, layout=layout))
        assert result['failed'] and 'original imgadm layout' in result['msg'] and 'nothing was changed' in result['msg']
        no_traceback(result)
    assert tree_state(host_root) == {} and server.requests() == []
    write(conf_path(host_root), '{"sources": []}')
    before = tree_state(host_root)
    result = play(src_task(host_root, sources=[{'url': server.url}], update_cache=True))
    assert result['failed'] and tree_state(host_root) == before


# ---- 3. outside data checked where it enters ----

@pytest.mark.parametrize('content,words', [
    ('', 'is not valid JSON'),
    ('{"sources": [', 'is not valid JSON'),
    ('[' * 50000, 'is not valid JSON (RecursionError)'),
    (b'\xff\xfe\x00{', 'is not valid JSON'),
    ('null', 'must hold a JSON object, not null'),
    ('{"sources": "http://127.0.0.1:9"}', '"sources" must be a list, not a string'),
    ('{"sources": ["http://127.0.0.1:9"]}', 'entry 1 of "sources" is a string, not an object'),
    ('{"sources": [{"type": "imgapi", "url": "http://127.0.0.1:9"}, 5]}', 'entry 2 of "sources" is a number'),
    ('{"sources": [{"type": "imgapi", "url": {"host": "x"}}]}', 'has an object "url", not a string'),
    ('{"sources": [{"type": 7, "url": "http://127.0.0.1:9"}]}', 'has a number "type", not a string'),
    ('{"sources": [{"type": "imgapi", "url": "http://[::1"}]}', 'is not a valid URL'),
    ('{"sources": [{"type": "imgapi", "url": "http://127.0.0.1:9", "insecure": "false"}]}',
     'has a string "insecure", not true or false'),
    ('{"sources": [{"type": "imgapi", "url": "http://127.0.0.1:9", "channel": ["dev"]}]}', 'has a list "channel"'),
    ('{"sources": [], "x": "' + 'a' * (1024 * 1024) + '"}', 'is larger than 1048576 bytes'),
])
def test_hostile_config_fails_naming_the_file_and_is_left_byte_for_byte(play, host_root, content, words):
    write(conf_path(host_root), content)
    before = tree_state(host_root)
    result = play(src_task(host_root, url='http://127.0.0.1:9', ping=False))
    assert result['failed'] and words in result['msg'] and conf_path(host_root) in result['msg'], result['msg'][:300]
    no_traceback(result)
    assert tree_state(host_root) == before


def test_malformed_ipv6_url_in_arguments(play, host_root):
    for url in ('http://[::1', 'https://[::1]:99999', 'http://[zz]/'):
        result = play(src_task(host_root, url=url, ping=False))
        assert result['failed'] and 'is not a valid URL' in result['msg'], result['msg']
        no_traceback(result)
    assert tree_state(host_root) == {}


def test_directory_in_place_of_the_config(play, host_root):
    os.makedirs(conf_path(host_root))
    result = play(src_task(host_root, url='http://127.0.0.1:9', ping=False))
    assert result['failed'] and 'is not a regular file' in result['msg'] and conf_path(host_root) in result['msg']
    no_traceback(result)


def test_sources_list_junk_lines_are_skipped_with_a_warning_and_kept(play, server, host_root):
    dsapi = server.url + '/datasets'
    listing = '# ours\nimages.example/datasets\nftp://x/datasets\nhttp://[::1/datasets\n%s\n' % dsapi
    path = os.path.join(host_root, 'var', 'db', 'imgadm', 'sources.list')
    write(path, listing)
    result = play(src_task(host_root, url='http://127.0.0.1:9/datasets', type='dsapi', ping=False))
    assert result['changed'] and [s['url'] for s in result['sources']] == [dsapi, 'http://127.0.0.1:9/datasets']
    for line in (2, 3, 4):
        assert 'sources.list line %d skipped' % line in warnings_of(result)
    assert read(path) == listing + 'http://127.0.0.1:9/datasets\n'


# ---- 4. no password printed, whatever its characters ----

@pytest.mark.parametrize('password', RAW_PASSWORDS)
def test_raw_password_in_arguments_never_printed_even_with_vvv(play, server, host_root, password):
    url = server.url.replace('http://', 'http://admin:%s@' % password)
    printed, result, recorded = run_verbose(play, src_task(host_root, url=url, ping=False))
    assert password not in printed and password not in recorded
    assert 'module_args' in printed  # -vvv shows the invocation; its URL is masked
    if password == 'p@ss':  # URL parsing takes the last '@': usable as it is
        assert result['changed'] and not result['failed']
    else:  # a raw '#', '/' or '?' cuts the URL short: refused, with how to write it
        assert result['failed'] and 'percent-encode' in result['msg'] and tree_state(host_root) == {}


@pytest.mark.parametrize('password', RAW_PASSWORDS)
def test_raw_password_in_the_config_never_printed(play, server, host_root, password):
    secret_url = server.url.replace('http://', 'http://admin:%s@' % password)
    write(conf_path(host_root), json.dumps({'sources': [{'type': 'imgapi', 'url': secret_url}]}))
    for task in (src_task(host_root, url='http://127.0.0.1:9', ping=False),
                 src_task(host_root, url=server.url + '/x', state='absent')):
        printed, result, recorded = run_verbose(play, task)
        assert password not in printed and password not in recorded, printed[-2000:]


def test_working_credentials_stored_as_imgadm_does_and_hidden(play, server, host_root):
    url = server.url.replace('http://', 'http://admin:s%23cr%2Ft%3Fx%40y@')
    server.clear_requests()
    printed, result, recorded = run_verbose(play, src_task(host_root, url=url))
    assert result['changed'], result.get('msg')
    for secret in ('s%23cr%2Ft%3Fx%40y', 's#cr/t?x@y'):
        assert secret not in printed and secret not in recorded
    assert any(r['path'] == '/ping' for r in server.requests())
    config = json.loads(read(conf_path(host_root)))
    assert config['sources'][-1] == {'type': 'imgapi', 'url': url}  # as given, as imgadm stores it
    assert stat.S_IMODE(os.stat(conf_path(host_root)).st_mode) == 0o600  # a new file with a password


def test_mode_of_an_existing_config_is_kept_and_a_readable_password_warned(play, server, host_root):
    write(conf_path(host_root), '{"sources": []}', mode=0o644)
    result = play(src_task(host_root, url=server.url.replace('http://', 'http://u:pw9@'), ping=False))
    assert result['changed'] and 'chmod 600' in warnings_of(result) and 'pw9' not in json.dumps(result)
    assert stat.S_IMODE(os.stat(conf_path(host_root)).st_mode) == 0o644
    plain = os.path.join(host_root, 'other')
    result = play(src_task(plain, url=server.url, ping=False))
    assert stat.S_IMODE(os.stat(conf_path(plain)).st_mode) == 0o644 and 'chmod' not in warnings_of(result)


# ---- 6. a careless user and a hostile host ----

def test_symlinked_config_is_written_through_to_its_target(play, host_root):
    target = os.path.join(host_root, 'usbkey', 'imgadm.conf')
    write(target, '{"sources": [], "keep": 1}', mode=0o640)
    os.makedirs(os.path.dirname(conf_path(host_root)))
    os.symlink(target, conf_path(host_root))
    result = play(src_task(host_root, url='http://127.0.0.1:9', ping=False))
    assert result['changed'] and os.path.islink(conf_path(host_root))
    assert json.loads(read(target)) == {'sources': [{'type': 'imgapi', 'url': 'http://127.0.0.1:9'}], 'keep': 1,
                                        'dockerImportSkipUuids': True, 'upgradedToVer': '3.0.0'}
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640
    assert sorted(os.listdir(os.path.dirname(target))) == ['imgadm.conf']  # no temporary file left


def test_read_only_config_is_written_as_imgadm_writes_it_and_keeps_its_mode(play, host_root):
    write(conf_path(host_root), '{"sources": []}', mode=0o444)
    result = play(src_task(host_root, url='http://127.0.0.1:9', ping=False))
    assert result['changed'] and stat.S_IMODE(os.stat(conf_path(host_root)).st_mode) == 0o444


@pytest.mark.parametrize('args,words', [
    ({'url': 'http://127.0.0.1:9', 'stat': 'absent'}, 'Unsupported parameters'),
    ({'url': 'http://127.0.0.1:9', 'state': 'absnt'}, 'value of state must be one of'),
    ({'sources': [{'ur': 'http://127.0.0.1:9'}]}, 'sources'),
    ({'url': ['http://127.0.0.1:9']}, 'url'),
    ({'url': ''}, 'non-empty'),
    ({'url': 'http://127.0.0.1:9 '}, None),
    ({'url': 'http://127.0.0.1:9/ imgs'}, 'space or a control character'),
])
def test_careless_arguments(play, host_root, args, words):
    result = play(src_task(host_root, ping=False, **args))
    no_traceback(result)
    if words is None:
        assert result['changed'] and json.loads(read(conf_path(host_root)))['sources'][-1]['url'] == 'http://127.0.0.1:9'
    else:
        assert result['failed'] and words in result['msg'], result['msg']
        assert tree_state(host_root) == {}


def test_casing_and_trailing_slashes_are_one_source(play, host_root):
    assert play(src_task(host_root, url='http://Images.Example:9/x', ping=False))['changed']
    # node's url.parse, under imgadm's normUrlFromUrl, lower-cases scheme and host; one trailing slash goes
    assert not play(src_task(host_root, url='HTTP://images.EXAMPLE:9/x/', ping=False))['changed']
    assert play(src_task(host_root, url='http://images.example:9/X', ping=False))['changed']  # paths keep their case
    gone = play(src_task(host_root, url='http://IMAGES.example:9/x', state='absent'))
    left = [s['url'] for s in gone['sources']]
    assert gone['changed'] and left == ['https://images.smartos.org', 'http://images.example:9/X']


def test_duplicate_entries_in_the_config(play, host_root):
    write(conf_path(host_root), json.dumps({'sources': [{'type': 'imgapi', 'url': 'http://127.0.0.1:9'},
                                                        {'type': 'imgapi', 'url': 'HTTP://127.0.0.1:9/'}]}))
    assert not play(src_task(host_root, url='http://127.0.0.1:9', ping=False))['changed']
    result = play(src_task(host_root, url='http://127.0.0.1:9', state='absent'))
    assert result['changed'] and json.loads(read(conf_path(host_root)))['sources'] == []


def test_concurrent_additions_with_credentials_all_land_and_stay_private(play, host_root):
    procs = []
    for port in (9001, 9002, 9003, 9004):
        url = 'http://u:pw%d@127.0.0.1:%d' % (port, port)
        argv, env, record = play.command(src_task(host_root, url=url, ping=False))
        procs.append((subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT), record))
    for proc, record in procs:
        out = proc.communicate(timeout=120)[0].decode()
        assert proc.returncode == 0 and 'pw90' not in out and 'pw90' not in read(record)
    urls = [s['url'] for s in json.loads(read(conf_path(host_root)))['sources']]
    assert sorted(urls[1:]) == ['http://u:pw%d@127.0.0.1:%d' % (p, p) for p in (9001, 9002, 9003, 9004)]
    assert sorted(os.listdir(os.path.dirname(conf_path(host_root)))) == ['imgadm.conf', 'imgadm.conf.lock']
