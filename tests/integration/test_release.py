"""The collection as it is published: module_defaults through its action groups, on the real pool and
image server with real ansible-playbook; the tarball ansible-galaxy builds, with what it must and must not
hold, installed and read back; and the verdict tests/galaxy/check_release.py gives `make galaxy`."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml

from tests.galaxy.check_release import importer_problems, tarball_problems
from tests.integration.conftest import POOL, REPO, four_runs
from tests.lib.zfspool import retry_busy

pytestmark = pytest.mark.usefixtures('collection_built')
BIN = os.path.dirname(sys.executable)
MISSING_CA = '/nonexistent/smartos-images-release-ca.pem'


def grouped(defaults, *tasks):
    """The tasks in one block with these module_defaults (Play runs plays without any)."""
    return [{'name': 'grouped', 'module_defaults': defaults, 'block': list(tasks)}]


def failure(play, tasks):
    """The failed task's result of a run expected to fail."""
    result = play(tasks)
    assert result['failed'] and result['_rc'] != 0, result
    return result


# ---- module_defaults for group/smartos.images.images and group/smartos.images.servers ----

def test_group_defaults_reach_the_source_facts_and_image_modules(play, images, server, host_root):
    manifest = images('release-groups')
    uuid = manifest['uuid']
    defaults = {'group/smartos.images.images': {'host_root': host_root, 'layout': 'modern'},
                'group/smartos.images.servers': {'timeout': 20, 'retries': 1, 'validate_certs': True},
                'smartos.images.smartos_image': {'pool': POOL}}
    try:
        # no task names host_root, layout, pool or a server option: each comes from the defaults
        result = play(grouped(defaults,
                              {'name': 'source', 'smartos.images.smartos_image_source': {
                                  'sources': [{'url': server.url}]}},
                              {'name': 'facts', 'smartos.images.smartos_image_facts': {'pools': [POOL]}}))
        assert not result['failed'], result
        assert [s['url'] for s in result['ansible_facts']['smartos_image_sources']] == [server.url]
        assert result['ansible_facts']['smartos_images_layout'] == 'modern'
        assert uuid not in result['ansible_facts']['smartos_images']
        with open(os.path.join(host_root, 'var', 'imgadm', 'imgadm.conf'), encoding='utf-8') as f:
            assert [s['url'] for s in json.load(f)['sources']] == [server.url]

        check, real, again_check, again = four_runs(play, grouped(defaults, {
            'name': 'image', 'smartos.images.smartos_image': {'uuid': uuid}}))
        assert [r['changed'] for r in (check, real, again_check, again)] == [True, True, False, False], real
        assert check['diff'] == real['diff'] and check['imported'] == real['imported'] == [uuid]
        assert real['dataset'] == '%s/%s' % (POOL, uuid) and real['source'] == server.url
        assert os.path.isfile(os.path.join(host_root, 'var', 'imgadm', 'images', '%s-%s.json' % (POOL, uuid)))

        facts = play(grouped(defaults, {'name': 'facts', 'smartos.images.smartos_image_facts': {'pools': [POOL]}}))
        found = facts['ansible_facts']['smartos_images'][uuid]
        assert found['manifest']['name'] == manifest['name'] and found['zpool'] == POOL and found['clones'] == []
    finally:
        if subprocess.run(['zfs', 'list', '%s/%s' % (POOL, uuid)], capture_output=True, check=False).returncode == 0:
            retry_busy('zfs', 'destroy', '-r', '%s/%s' % (POOL, uuid))


def test_a_task_option_wins_over_the_group_default(play, server, host_root, tmp_path):
    other_root = str(tmp_path / 'other-root')
    os.makedirs(other_root)
    defaults = {'group/smartos.images.images': {'host_root': other_root}}
    result = play(grouped(defaults, {'name': 'source', 'smartos.images.smartos_image_source': {
        'url': server.url, 'host_root': host_root}}))
    assert result['changed']
    assert os.path.isfile(os.path.join(host_root, 'var', 'imgadm', 'imgadm.conf'))
    assert os.listdir(other_root) == []


def test_the_servers_group_reaches_every_module_that_asks_a_server(play, server, host_root):
    defaults = {'group/smartos.images.images': {'host_root': host_root},
                'group/smartos.images.servers': {'ca_path': MISSING_CA}}
    tasks = [
        {'name': 'facts', 'smartos.images.smartos_image_facts': {'gather_subset': ['available']}},
        {'name': 'source', 'smartos.images.smartos_image_source': {'url': server.url}},
        {'name': 'image', 'smartos.images.smartos_image': {
            'uuid': '0ddba11a-0000-4000-8000-0000000000ff', 'pool': POOL, 'source': [server.url]}},
    ]
    for task in tasks:
        result = failure(play, grouped(defaults, task))
        assert MISSING_CA in result['msg'], (task['name'], result['msg'])
    assert server.requests() == []   # refused before any server is asked
    assert not os.path.exists(os.path.join(host_root, 'var', 'imgadm', 'imgadm.conf'))


def test_a_group_default_a_member_does_not_take_fails_that_member(play, host_root):
    """ansible-core passes a group's defaults to every member whole, so `pool` (which smartos_image_facts
    does not take) in group/smartos.images.images fails it: why pool is not part of that group's options."""
    defaults = {'group/smartos.images.images': {'host_root': host_root, 'pool': POOL}}
    result = failure(play, grouped(defaults, {'name': 'facts', 'smartos.images.smartos_image_facts': {}}))
    assert 'Unsupported parameters' in result['msg'] and 'pool' in result['msg'], result['msg']


def test_the_role_keeps_a_play_s_own_defaults_for_a_module(play, server, host_root):
    """The role sets its options as group defaults; a play's defaults for smartos.images.smartos_image by name
    still reach the role's image task (here a CA file that does not exist, so the task fails naming it)."""
    role = {'name': 'role', 'ansible.builtin.include_role': {'name': 'smartos.images.image_host'},
            'vars': {'image_host_pool': POOL, 'image_host_host_root': host_root, 'image_host_source_ping': False,
                     'image_host_sources': [{'url': server.url}], 'image_host_sources_exclusive': True,
                     'image_host_images': [{'uuid': '0ddba11a-0000-4000-8000-0000000000fe'}]}}
    result = failure(play, grouped({'smartos.images.smartos_image': {'ca_path': MISSING_CA}}, role))
    assert MISSING_CA in result['msg'], result['msg']
    # the sources task before it ran with the role's own options, untouched by the play's smartos_image defaults
    with open(os.path.join(host_root, 'var', 'imgadm', 'imgadm.conf'), encoding='utf-8') as f:
        assert [s['url'] for s in json.load(f)['sources']] == [server.url]


# ---- the tarball ----

# Tracked, and left out of the tarball on purpose: development tooling (galaxy.yml's build_ignore), and
# galaxy.yml, which MANIFEST.json replaces.
DEVELOPMENT = ('galaxy.yml', '.ci/', '.gitignore', 'Makefile', 'requirements-dev.txt', 'tools/', 'benchmarks/',
               'playbooks/demo.yml', 'docs/test-environment.md')
# What a working tree gathers that must never be published.
JUNK = ('.venv/bin/python3', '.venv-galaxy/pyvenv.cfg', '.pytest_cache/v/cache/nodeids', '.ansible/tmp/x',
        'roles/image_host/.ansible/x', '.hypothesis/examples/x', 'fleet-report/report.html',
        'playbooks/fleet-report/report.json', 'changelogs/.plugin-cache.yaml', 'tests/output/junit/x.xml',
        'build/ansible_collections/x', 'build-old/x', 'plugins/modules/__pycache__/smartos_image.cpython-311.pyc',
        'plugins/module_utils/_zfs.pyc', 'smartos-images-0.0.9.tar.gz', '.git/HEAD')


def source_files():
    """The files `make collection` lays out: tracked, or untracked and not ignored."""
    out = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], cwd=REPO,
                         capture_output=True, check=True).stdout.decode()
    return sorted(p for p in out.split('\0') if p and os.path.isfile(os.path.join(REPO, p)))


@pytest.fixture(scope='module')
def tarball(tmp_path_factory):
    """The collection built by ansible-galaxy from a copy of the sources with a working tree's junk added."""
    tree = str(tmp_path_factory.mktemp('tree'))
    for path in source_files():
        os.makedirs(os.path.dirname(os.path.join(tree, path)), exist_ok=True)
        shutil.copy2(os.path.join(REPO, path), os.path.join(tree, path))
    for path in JUNK:
        os.makedirs(os.path.dirname(os.path.join(tree, path)), exist_ok=True)
        with open(os.path.join(tree, path), 'w', encoding='utf-8') as f:
            f.write('junk\n')
    out = str(tmp_path_factory.mktemp('dist'))
    proc = subprocess.run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'build', '--output-path', out, tree],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (name,) = os.listdir(out)
    return os.path.join(out, name)


def test_the_tarball_holds_exactly_the_sources_users_need(tarball):
    with tarfile.open(tarball) as tar:
        names = {m.name for m in tar.getmembers() if m.isfile()}
    expected = {p for p in source_files() if not any(p == d or p.startswith(d) for d in DEVELOPMENT if d)}
    assert names - {'MANIFEST.json', 'FILES.json'} == expected
    assert {'COPYING', 'MANIFEST.json', 'FILES.json', 'roles/image_host/README.md', 'tests/config.yml'} <= names
    assert not {p for p in names if p in JUNK or p.startswith(('.', 'build', 'tests/output'))}
    assert tarball_problems(tarball) == []


def test_the_tarball_metadata_is_galaxy_s(tarball):
    with tarfile.open(tarball) as tar:
        info = json.load(tar.extractfile('MANIFEST.json'))['collection_info']
        licence = tar.extractfile('COPYING').read().decode()
    with open(os.path.join(REPO, 'galaxy.yml'), encoding='utf-8') as f:
        galaxy = yaml.safe_load(f)
    assert (info['namespace'], info['name'], info['version']) == ('smartos', 'images', galaxy['version'])
    assert info['license'] == ['GPL-3.0-or-later'] and info['license_file'] is None
    assert 'GNU GENERAL PUBLIC LICENSE' in licence and 'Version 3, 29 June 2007' in licence
    base = 'https://github.com/smartos-images/smartos.images'
    assert (info['repository'], info['homepage'], info['issues']) == (base, base, base + '/issues')
    assert info['documentation'].startswith(base + '/') and info['documentation'].endswith('docs/docsite/rst')


def test_the_tarball_installs_and_its_plugins_and_role_load(tarball, tmp_path):
    dest = str(tmp_path / 'collections')
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=dest, ANSIBLE_NOCOLOR='1')
    proc = subprocess.run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'install', '--offline', '-p', dest,
                           tarball], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    installed = os.path.join(dest, 'ansible_collections', 'smartos', 'images')
    assert os.path.isfile(os.path.join(installed, 'COPYING'))
    for kind, name in (('module', 'smartos.images.smartos_image'), ('module', 'smartos.images.smartos_image_facts'),
                       ('lookup', 'smartos.images.image'), ('role', 'smartos.images.image_host')):
        doc = subprocess.run([os.path.join(BIN, 'ansible-doc'), '-t', kind, '--json', name], env=env,
                             capture_output=True, text=True, timeout=120, check=False)
        assert doc.returncode == 0, doc.stdout + doc.stderr
        assert installed in json.dumps(json.loads(doc.stdout)) or kind != 'role', name
    with open(os.path.join(installed, 'meta', 'runtime.yml'), encoding='utf-8') as f:
        groups = yaml.safe_load(f)['action_groups']
    modules = {n[:-3] for n in os.listdir(os.path.join(installed, 'plugins', 'modules')) if n.endswith('.py')}
    # every module is in a group, and every module of a SmartOS host (all but the mirror's) in group images
    assert set(groups['images']) | set(groups['servers']) == modules
    assert set(groups['images']) == modules - {'smartos_image_mirror'}


def test_a_tarball_with_junk_is_refused(tarball, tmp_path):
    bad = str(tmp_path / 'bad.tar.gz')
    with tarfile.open(tarball) as src, tarfile.open(bad, 'w:gz') as dst:
        for member in src.getmembers():
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        for name in ('.pytest_cache/v/x', 'plugins/modules/__pycache__/x.pyc', '.venv-galaxy/pyvenv.cfg'):
            info = tarfile.TarInfo(name)
            info.size = 5
            dst.addfile(info, io.BytesIO(b'junk\n'))
    problems = tarball_problems(bad)
    for name in ('.pytest_cache/v/x', 'plugins/modules/__pycache__/x.pyc', '.venv-galaxy/pyvenv.cfg'):
        assert '%s: not for users' % name in problems
        assert '%s: in the tarball, not in FILES.json' % name in problems


def test_a_tarball_whose_files_list_lies_is_refused(tarball, tmp_path):
    bad = str(tmp_path / 'bad.tar.gz')
    with tarfile.open(tarball) as src, tarfile.open(bad, 'w:gz') as dst:
        for member in src.getmembers():
            if member.name == 'COPYING':
                continue
            data = src.extractfile(member).read() if member.isfile() else None
            if member.name == 'README.md':
                data = data + b'\nchanged after the build\n'
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    problems = tarball_problems(bad)
    assert 'COPYING: missing' in problems and 'COPYING: in FILES.json, not in the tarball' in problems
    assert 'README.md: FILES.json gives the wrong checksum' in problems


def test_a_tarball_with_links_or_paths_outside_is_refused(tarball, tmp_path):
    bad = str(tmp_path / 'bad.tar.gz')
    with tarfile.open(tarball) as src, tarfile.open(bad, 'w:gz') as dst:
        for member in src.getmembers():
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        link = tarfile.TarInfo('plugins/modules/passwd.py')
        link.type, link.linkname = tarfile.SYMTYPE, '/etc/passwd'
        dst.addfile(link)
        outside = tarfile.TarInfo('../outside.txt')
        outside.size = 0
        dst.addfile(outside, io.BytesIO(b''))
    problems = tarball_problems(bad)
    assert 'plugins/modules/passwd.py: neither a file nor a directory' in problems
    assert '../outside.txt: a path outside the collection' in problems


@pytest.mark.parametrize('content', [b'', b'not a tarball at all', b'\x1f\x8b\x08\x00truncated'],
                         ids=['empty', 'text', 'truncated gzip'])
def test_a_file_that_is_no_tarball_is_refused(tmp_path, content):
    bad = tmp_path / 'smartos-images-0.1.0.tar.gz'
    bad.write_bytes(content)
    problems = tarball_problems(str(bad))
    assert len(problems) == 1 and 'cannot be read' in problems[0], problems


def test_the_check_command_fails_on_problems_and_passes_a_clean_release(tarball, tmp_path):
    script = os.path.join(REPO, 'tests', 'galaxy', 'check_release.py')
    log = tmp_path / 'importer.log'
    log.write_text(CLEAN_IMPORT, encoding='utf-8')
    ok = subprocess.run([sys.executable, script, tarball, str(log)], capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and 'clean' in ok.stdout, ok.stdout + ok.stderr
    log.write_text(CLEAN_IMPORT.replace('Collection loading', 'WARNING: roles/x.yml:1: name[missing]\nCollection '
                                        'loading'), encoding='utf-8')
    bad = subprocess.run([sys.executable, script, tarball, str(log)], capture_output=True, text=True, check=False)
    assert bad.returncode == 1 and 'name[missing]' in bad.stdout, bad.stdout + bad.stderr
    usage = subprocess.run([sys.executable, script], capture_output=True, text=True, check=False)
    assert usage.returncode == 2 and 'Usage' in usage.stderr and not usage.stdout


# ---- galaxy-importer's output, as make galaxy judges it ----

CLEAN_IMPORT = '''Importing with galaxy-importer 0.4.44
Getting doc strings via ansible-doc
Finding content inside collection
Loading module smartos_image
Loading role image_host
Linting collection via ansible-lint 26.10.1...
...ansible-lint run complete
Collection loading complete
Importer processing completed successfully
'''


@pytest.mark.parametrize('output, words', [
    (CLEAN_IMPORT.replace('...ansible-lint', 'WARNING: plugins/lookup/image.py:1:1: schema[playbook]: bad\n'
                          '...ansible-lint'), 'schema[playbook]'),
    ('Importing with galaxy-importer 0.4.44\nERROR: The import failed for the following reason: Invalid collection '
     "metadata. 'repository' is required\n", "'repository' is required"),
    (CLEAN_IMPORT.replace('Finding', 'WARNING: ansible-doc not found, skipping loading of docstrings\nFinding'),
     'ansible-doc not found'),
    (CLEAN_IMPORT.replace('Importer processing completed successfully\n', ''), 'no "Importer processing'),
    (CLEAN_IMPORT + 'Traceback (most recent call last):\n', 'a traceback'),
    ('', 'no "Importer processing'),
], ids=['lint warning', 'metadata error', 'tool missing', 'no success', 'traceback', 'no output'])
def test_an_importer_warning_or_error_fails_the_check(output, words):
    problems = importer_problems(output)
    assert problems and any(words in p for p in problems), problems


def test_a_clean_import_passes_the_check():
    assert importer_problems(CLEAN_IMPORT) == []
