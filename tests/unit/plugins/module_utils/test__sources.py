# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_sources.py: both source-list formats and the upgrade of a leftover sources.list."""

from __future__ import annotations

import json
import os
import random
import stat
import subprocess
import sys

import pytest

from ansible_collections.smartos.images.plugins.module_utils import _imgapi, _sources
from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, InvalidParameter
from ansible_collections.smartos.images.plugins.module_utils._host import HostPaths, detect_layout
from ansible_collections.smartos.images.plugins.module_utils._source_entry import SourceEntry, normalize_url
from ansible_collections.smartos.images.plugins.module_utils._sources import MAX_SOURCE_FILE, ModernSources, OriginalSources
from ansible_collections.smartos.images.tests.unit.fakehost import leftover_sources_list


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
    text = json.dumps({'dockerImportSkipUuids': False, 'upgradedToVer': '3.0.0',
                       'sources': [{'type': 'imgapi', 'url': 'https://a'}], 'zzz': {'nested': [1]}}, indent=2)
    store = modern(tmp_path, text)
    assert not store.implicit
    assert store.render(store.entries()).decode() == text
    out = json.loads(store.render(store.entries() + [SourceEntry('https://b', 'imgapi', True)]))
    assert list(out) == ['dockerImportSkipUuids', 'upgradedToVer', 'sources', 'zzz'] and out['zzz'] == {'nested': [1]}
    assert out['dockerImportSkipUuids'] is False
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


# ---- issue 10: outside data checked where it enters, no secret shown ----

def test_modern_entries_number_the_bad_one(tmp_path):
    store = modern(tmp_path, json.dumps({'sources': [{'type': 'imgapi', 'url': 'https://a'}, 7]}))
    with pytest.raises(ImageError, match='imgadm.conf: entry 2 of "sources" is a number'):
        store.entries()


def test_modern_secrets_are_found_in_any_shape(tmp_path):
    store = modern(tmp_path, json.dumps({'sources': [{'url': 'https://u:p#ss@a', 'type': 'imgapi'}, 'junk',
                                                     {'url': 5}, {'url': 'https://t0ken@b'}]}))
    assert {'p#ss', 't0ken'} <= store.secrets()


@pytest.mark.parametrize('content,words', [
    ('[' * 100000, 'is not valid JSON (RecursionError)'),
    (b'\xff\xfe{}', 'is not valid JSON'),
    ('', 'is not valid JSON'),
    ('  \n', 'is not valid JSON'),
    ('"sources"', 'must hold a JSON object, not a string'),
    ('null', 'must hold a JSON object, not null'),
    ('{"sources": null}', '"sources" must be a list, not null'),
    ('{"sources": "https://admin:hunter2@x"}', '"sources" must be a list, not a string'),
    ('{"sources": [' + '1' * 5000 + ']}', 'is not valid JSON'),
])
def test_modern_hostile_files(tmp_path, content, words):
    (tmp_path / 'var' / 'imgadm').mkdir(parents=True)
    path = tmp_path / 'var' / 'imgadm' / 'imgadm.conf'
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ImageError) as err:
        ModernSources(HostPaths(str(tmp_path))).load()
    assert words in err.value.msg and str(path) in err.value.msg and 'hunter2' not in err.value.msg


def test_huge_file_is_refused_unread(tmp_path):
    (tmp_path / 'var' / 'imgadm').mkdir(parents=True)
    path = tmp_path / 'var' / 'imgadm' / 'imgadm.conf'
    path.write_bytes(b'{"sources": [], "x": "' + b'a' * MAX_SOURCE_FILE + b'"}')
    with pytest.raises(ImageError, match='is larger than 1048576 bytes'):
        ModernSources(HostPaths(str(tmp_path))).load()


def test_directory_and_fifo_in_place_of_the_file(tmp_path):
    (tmp_path / 'var' / 'imgadm' / 'imgadm.conf').mkdir(parents=True)
    with pytest.raises(ImageError, match='imgadm.conf is not a regular file'):
        ModernSources(HostPaths(str(tmp_path))).load()
    (tmp_path / 'var' / 'imgadm' / 'imgadm.conf').rmdir()
    os.mkfifo(str(tmp_path / 'var' / 'imgadm' / 'imgadm.conf'))  # opening it for reading must not block
    with pytest.raises(ImageError, match='imgadm.conf is not a regular file'):
        ModernSources(HostPaths(str(tmp_path))).load()


def test_symlinked_config_is_written_through(tmp_path):
    (tmp_path / 'var' / 'imgadm').mkdir(parents=True)
    target = tmp_path / 'persistent.conf'
    target.write_text('{"sources": []}')
    os.chmod(str(target), 0o640)
    link = tmp_path / 'var' / 'imgadm' / 'imgadm.conf'
    link.symlink_to(target)
    store = ModernSources(HostPaths(str(tmp_path))).load()
    store.save([SourceEntry('https://a')])
    assert link.is_symlink() and json.loads(target.read_text())['sources'] == [{'type': 'imgapi', 'url': 'https://a'}]
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


@pytest.mark.parametrize('url,mode', [('https://a', 0o644), ('https://u:pw@a', 0o600), ('https://tok@a', 0o600)])
def test_new_file_mode(tmp_path, url, mode):
    store = ModernSources(HostPaths(str(tmp_path))).load()
    store.save([SourceEntry(url)])
    assert stat.S_IMODE(os.stat(store.path).st_mode) == mode


def test_existing_mode_is_kept_even_read_only(tmp_path):
    store = modern(tmp_path, '{}')
    os.chmod(store.path, 0o444)
    store.save([SourceEntry('https://u:pw@a')])
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o444
    assert json.loads(open(store.path).read())['sources'][0]['url'] == 'https://u:pw@a'  # stored as imgadm does


JUNK = ('# ok\nhttps://a/datasets\nimages.example/datasets\nftp://b/datasets\nhttps://c/images\n'
        'https://u:p#ss@d/datasets\nhttp://[::1/datasets\n\x00\x01\nhttps://e/datasets\n')


def test_original_junk_lines_are_skipped_with_warnings_and_kept(tmp_path):
    store = original(tmp_path, JUNK)
    assert [e.url for e in store.entries()] == ['https://a/datasets', 'https://e/datasets']
    warnings = '\n'.join(store.warnings)
    assert len(store.warnings) == 6 and 'sources.list line 3 skipped: source url "images.example/datasets" has ' \
        'no scheme' in warnings
    assert 'p#ss' not in warnings and 'p#ss' in store.secrets()
    out = store.render([SourceEntry('https://e/datasets', 'dsapi'), SourceEntry('https://f/datasets', 'dsapi')])
    assert out.decode() == JUNK.replace('https://a/datasets\n', '') + 'https://f/datasets\n'


def test_original_not_utf8(tmp_path):
    (tmp_path / 'var' / 'db' / 'imgadm').mkdir(parents=True)
    (tmp_path / 'var' / 'db' / 'imgadm' / 'sources.list').write_bytes(b'https://a/datasets\n\xff\n')
    with pytest.raises(ImageError, match=r'sources.list is not UTF-8 text \(byte 19\)'):
        OriginalSources(HostPaths(str(tmp_path))).load()


def test_readers_are_total_on_random_text(tmp_path):
    """A small fixed-seed run of what the property tests do at scale: only ImageError escapes."""
    rng = random.Random(10)
    alphabet = '{}[]":,\\ /#?@:%.-_aAhtps0123[]\n\t\x00\xff' + 'https://'
    paths = HostPaths(str(tmp_path))
    for dummy in range(500):
        text = ''.join(rng.choice(alphabet) for dummy in range(rng.randint(0, 40)))
        for doc in (text, json.dumps({'sources': [{'url': text, 'type': 'imgapi'}]}),
                    json.dumps({'sources': [{'url': 'https://' + text, 'channel': text}]})):
            for store in (ModernSources(paths), OriginalSources(paths)):
                try:
                    store.parse(doc.encode('utf-8', 'surrogatepass'))
                    entries = store.entries()
                    for e in entries:
                        e.identity, e.shown(), store.render(entries)
                except ImageError:
                    pass
        try:
            normalize_url(text)
        except ImageError:
            pass


def test_a_stuck_lock_holder_is_waited_for_a_bounded_time(tmp_path, monkeypatch):
    store = modern(tmp_path, '{}')
    holder = subprocess.Popen([sys.executable, '-c', 'import fcntl, os, sys, time\n'
                               'fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n'
                               'fcntl.lockf(fd, fcntl.LOCK_EX)\nprint("held", flush=True)\ntime.sleep(30)\n',
                               store.path + '.lock'], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b'held\n'
        monkeypatch.setattr(_sources, 'SOURCES_LOCK_WAIT', 0.5)
        with pytest.raises(ImageError, match='waiting for the source list lock .*imgadm.conf.lock'):
            with store.lock():
                pass
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_symlink_loop_and_dangling_symlink(tmp_path):
    (tmp_path / 'var' / 'imgadm').mkdir(parents=True)
    link = tmp_path / 'var' / 'imgadm' / 'imgadm.conf'
    link.symlink_to(link)
    with pytest.raises(ImageError, match='cannot read .*imgadm.conf'):
        ModernSources(HostPaths(str(tmp_path))).load()
    link.unlink()
    link.symlink_to(tmp_path / 'elsewhere.conf')
    store = ModernSources(HostPaths(str(tmp_path))).load()
    assert store.implicit
    store.save([SourceEntry('https://a')])
    assert link.is_symlink() and json.loads((tmp_path / 'elsewhere.conf').read_text())['sources'][0]['url'] == 'https://a'


@pytest.mark.parametrize('raw', [5, ['{}'], object()])
def test_parse_refuses_what_is_not_file_content(tmp_path, raw):
    for store in (ModernSources(HostPaths(str(tmp_path))), OriginalSources(HostPaths(str(tmp_path)))):
        with pytest.raises(ImageError):
            store.parse(raw)


def test_parse_takes_text_too(tmp_path):
    store = ModernSources(HostPaths(str(tmp_path)))
    store.parse('{"sources": [{"type": "imgapi", "url": "https://a"}]}')
    assert [e.url for e in store.entries()] == ['https://a']
    with pytest.raises(InvalidParameter, match='must be an object'):
        SourceEntry('https://a', extra=[('k', 'v')])


# ---- imgadm's upgrade of a leftover sources.list, and what its saves write (reference 1.1.1, 1.3) ----

def leftover(tmp_path, lines):
    path = tmp_path / 'var' / 'db' / 'imgadm' / 'sources.list'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(lines)


MIRROR = 'https://mirror.example/datasets'


@pytest.mark.parametrize('config', [None, '{}', '{"userAgentExtra": "x"}', '{"upgradedToVer": "1.0.0"}'])
def test_leftover_sources_list_adds_its_mirrors_after_the_default(tmp_path, config):
    leftover(tmp_path, '# mirrors\n\n%s  # ours\nhttp://other.example/datasets/\n' % MIRROR)
    store = modern(tmp_path, config)
    assert not store.implicit
    assert [(e.url, e.type) for e in store.entries()] == [
        ('https://images.smartos.org', 'imgapi'), (MIRROR, 'dsapi'), ('http://other.example/datasets/', 'dsapi')]


@pytest.mark.parametrize('config', ['{"sources": []}', '{"upgradedToVer": "2.0.0"}', '{"upgradedToVer": "3.0.0"}'])
def test_leftover_sources_list_is_ignored_once_configured_or_upgraded(tmp_path, config):
    leftover(tmp_path, MIRROR + '\n')
    assert MIRROR not in [e.url for e in modern(tmp_path, config).entries()]


@pytest.mark.parametrize('old', ['https://datasets.joyent.com/datasets/', 'https://datasets.joyent.com/datasets',
                                 'https://datasets.tritondatacenter.com/datasets/'])
def test_leftover_old_default_alone_keeps_the_implicit_default(tmp_path, old):
    leftover(tmp_path, old + '\n')
    store = modern(tmp_path)
    assert store.implicit and [e.url for e in store.entries()] == ['https://images.smartos.org']
    leftover(tmp_path, '%s\n%s\n' % (MIRROR, old))   # beside a mirror it is the default again, listed once
    assert [e.url for e in modern(tmp_path).entries()] == ['https://images.smartos.org', MIRROR]


def test_leftover_url_without_datasets_is_kept_and_fails_only_when_used(tmp_path):
    leftover(tmp_path, 'https://mirror.example/images\nnot a url\n')
    store = modern(tmp_path)
    entries = store.entries()
    assert [(e.url, e.type) for e in entries][1:] == [('https://mirror.example/images', 'dsapi')]
    assert len(store.warnings) == 1 and 'line 2 not imported' in store.warnings[0]
    with pytest.raises(ImageError, match='does not end with "/datasets"'):
        _imgapi.client_for(entries[1].for_import())


def test_config_dsapi_entry_without_datasets_is_read_but_a_new_one_is_refused(tmp_path):
    store = modern(tmp_path, json.dumps({'sources': [{'type': 'dsapi', 'url': 'https://m.example/x'}]}))
    assert [e.type for e in store.entries()] == ['dsapi']
    with pytest.raises(InvalidParameter, match='does not end with "/datasets"'):
        SourceEntry.from_argument('https://m.example/x', 'dsapi')


def test_typeless_config_source_is_dsapi_when_its_url_ends_in_datasets(tmp_path):
    store = modern(tmp_path, json.dumps({'sources': [{'url': MIRROR + '/'}, {'url': 'https://i.example'}]}))
    assert [e.type for e in store.entries()] == ['dsapi', 'imgapi']


def test_save_on_a_fresh_host_writes_imgadm_defaults_first(tmp_path):
    store = modern(tmp_path)
    out = json.loads(store.render(store.entries() + [SourceEntry('https://b.example')]))
    assert list(out) == ['dockerImportSkipUuids', 'upgradedToVer', 'sources']
    assert out['dockerImportSkipUuids'] is True and out['upgradedToVer'] == '3.0.0'


def test_save_after_a_migration_writes_sources_before_the_version(tmp_path):
    leftover(tmp_path, MIRROR + '\n')
    store = modern(tmp_path, '{}')
    out = json.loads(store.render(store.entries()))
    assert list(out) == ['dockerImportSkipUuids', 'sources', 'upgradedToVer']
    assert out['sources'] == [{'type': 'imgapi', 'url': 'https://images.smartos.org'}, {'type': 'dsapi', 'url': MIRROR}]


def test_save_leaves_the_upgrade_to_imgadm_while_original_image_records_wait(tmp_path):
    leftover(tmp_path, MIRROR + '\n')
    (tmp_path / 'var' / 'db' / 'imgadm' / '11111111-2222-4333-8444-555555555555.json').write_text('{}')
    store = modern(tmp_path, '{}')
    out = json.loads(store.render(store.entries()))
    assert 'upgradedToVer' not in out and [s['url'] for s in out['sources']][1:] == [MIRROR]


def test_channel_key_is_sent_and_wins_over_the_url(tmp_path):
    store = modern(tmp_path, json.dumps({'sources': [
        {'type': 'imgapi', 'url': 'https://i.example?channel=dev', 'channel': 'staging'},
        {'type': 'imgapi', 'url': 'https://j.example?channel=dev'}]}))
    first, second = [e.for_import() for e in store.entries()]
    assert first.channel == 'staging' and second.channel == 'dev'
    assert _imgapi.ImageServerClient(first)._url('/images/x').endswith('?channel=staging')


def test_leftover_sources_list_passwords_are_secrets(tmp_path):
    leftover(tmp_path, 'https://bob:s3cret@mirror.example/datasets\n')
    store = modern(tmp_path)
    assert 's3cret' in store.secrets()
    assert all('s3cret' not in str(e.shown()) for e in store.entries())


# ---- a huge source file: work that grows with its lines, not their square ----

MANY = 2000


def test_a_leftover_sources_list_of_many_lines_is_read_in_linear_work(tmp_path, monkeypatch):
    """Defect: each migrated line was compared with every line kept before it (a set rebuilt per line), so a
    sources.list of 30,000 mirrors under the 1 MiB cap took hours. Counted: URL normalizations per line."""
    leftover_sources_list(tmp_path, ''.join('http://m%d.example/datasets\n' % i for i in range(MANY)).encode())
    calls = []
    real = _sources.normalize_url
    monkeypatch.setattr(_sources, 'normalize_url', lambda url: calls.append(url) or real(url))
    store = _sources.ModernSources(HostPaths(str(tmp_path))).load()
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
    leftover_sources_list(tmp_path, b'# mirrors\n' + ''.join('http://m%d.example/datasets\n' % i for i in range(MANY)).encode(),
                          modern=False)
    store = _sources.OriginalSources(HostPaths(str(tmp_path))).load()
    entries = store.entries()
    for entry in entries:
        entry.url = _CountingUrl(entry.url)
    _CountingUrl.compared[0] = 0
    new = SourceEntry('http://new.example/datasets', 'dsapi')
    text = store.render(entries + [new]).decode()
    assert text.splitlines() == ['# mirrors'] + ['http://m%d.example/datasets' % i for i in range(MANY)] + [new.url]
    assert _CountingUrl.compared[0] < 10 * MANY
