"""The action groups as a careless user meets them, with real ansible-playbook: misspelt group names and
options, an option a member lacks, a wrong type, which of group, module and task defaults wins, check mode
through a group, and what the README of the image_host role says of a play's own module_defaults."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.integration.conftest import BUILD, POOL, REPO
from tests.lib.zfspool import retry_busy

pytestmark = pytest.mark.usefixtures('collection_built')
MISSING_CA = '/nonexistent/smartos-images-attack-ca.pem'


def grouped(defaults, *tasks):
    return [{'name': 'grouped', 'module_defaults': defaults, 'block': list(tasks)}]


def run_raw(play, tasks, check=False):
    """ansible-playbook's exit code and output, for runs that stop before any task is recorded."""
    argv, env, dummy = play.command(tasks, check=check)
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def sources_in(root):
    """The URLs of the sources imgadm.conf under root lists (None without one)."""
    path = os.path.join(root, 'var', 'imgadm', 'imgadm.conf')
    if not os.path.exists(path):
        return None
    with open(path, encoding='utf-8') as f:
        return [s['url'] for s in json.load(f)['sources']]


def source_task(url, **args):
    return {'name': 'source', 'smartos.images.smartos_image_source': dict(url=url, ping=False, **args)}


@pytest.mark.parametrize('group', ['group/smartos.images.image', 'group/images', 'group/smartos.image.images'])
def test_a_misspelt_or_short_group_name_stops_the_play_naming_it(play, host_root, group):
    rc, out = run_raw(play, grouped({group: {'host_root': host_root}},
                                    source_task('http://127.0.0.1:9/')))
    assert rc != 0
    assert 'could not resolve the module_defaults group' in out, out
    assert sources_in(host_root) is None


def test_a_misspelt_option_in_a_group_fails_the_task_naming_it(play, host_root):
    result = play(grouped({'group/smartos.images.servers': {'timout': 5}},
                          source_task('http://127.0.0.1:9/', host_root=host_root)))
    assert result['failed']
    assert 'Unsupported parameters' in result['msg'] and 'timout' in result['msg'], result['msg']
    assert sources_in(host_root) is None


def test_a_server_option_in_the_images_group_fails_smartos_image_create(play, tmp_path):
    """validate_certs is not an option of smartos_image_create, which is only in the images group."""
    out = tmp_path / 'out'
    out.mkdir()
    result = play(grouped({'group/smartos.images.images': {'validate_certs': False}},
                          {'name': 'create', 'smartos.images.smartos_image_create': {
                              'dataset': POOL + '/attack-none', 'output_dir': str(out), 'name': 'x',
                              'version': '1'}}))
    assert result['failed']
    assert 'Unsupported parameters' in result['msg'] and 'validate_certs' in result['msg'], result['msg']
    assert os.listdir(str(out)) == []


def test_a_wrong_type_in_a_group_default_is_refused(play, host_root):
    result = play(grouped({'group/smartos.images.servers': {'timeout': 'soon'}},
                          source_task('http://127.0.0.1:9/', host_root=host_root)))
    assert result['failed'] and 'timeout' in result['msg'], result['msg']
    assert sources_in(host_root) is None


def test_module_defaults_win_over_group_defaults_and_task_options_over_both(play, server, tmp_path):
    roots = {}
    for name in ('group', 'module', 'task'):
        roots[name] = str(tmp_path / name)
        os.makedirs(roots[name])
    defaults = {'group/smartos.images.images': {'host_root': roots['group']},
                'smartos.images.smartos_image_source': {'host_root': roots['module']}}
    result = play(grouped(defaults, source_task(server.url)))
    assert not result['failed'] and result['changed'], result
    assert server.url in sources_in(roots['module']) and sources_in(roots['group']) is None
    result = play(grouped(defaults, source_task(server.url, host_root=roots['task'])))
    assert not result['failed'] and result['changed'], result
    assert server.url in sources_in(roots['task']) and sources_in(roots['group']) is None
    # a member the module default does not name still takes the group's
    facts = play(grouped(defaults, {'name': 'facts', 'smartos.images.smartos_image_facts': {
        'gather_subset': ['sources']}}))
    assert server.url not in [s['url'] for s in facts['ansible_facts']['smartos_image_sources']], facts


def test_check_mode_and_diff_through_a_group_write_nothing(play, server, host_root):
    defaults = {'group/smartos.images.images': {'host_root': host_root, 'layout': 'modern'}}
    check = play(grouped(defaults, source_task(server.url)), check=True)
    assert not check['failed'] and check['changed'], check
    assert server.url in json.dumps(check['diff'])
    assert os.listdir(host_root) == []
    real = play(grouped(defaults, source_task(server.url)))
    assert real['changed'] and real['diff'] == check['diff'], (real['diff'], check['diff'])
    assert server.url in sources_in(host_root)


def role(host_root, **variables):
    return {'name': 'role', 'ansible.builtin.include_role': {'name': 'smartos.images.image_host'},
            'vars': dict({'image_host_pool': POOL, 'image_host_host_root': host_root,
                          'image_host_source_ping': False}, **variables)}


def test_a_play_s_group_defaults_do_not_reach_the_role(play, server, host_root, tmp_path):
    """roles/image_host/README.md: a play's module_defaults for the two groups do not reach the role's
    tasks (the role's variables do)."""
    other_root = str(tmp_path / 'other')
    os.makedirs(other_root)
    defaults = {'group/smartos.images.images': {'host_root': other_root, 'layout': 'original'},
                'group/smartos.images.servers': {'ca_path': MISSING_CA, 'timeout': 1}}
    result = play(grouped(defaults, role(host_root, image_host_sources=[{'url': server.url}],
                                         image_host_sources_exclusive=True)))
    assert not result['failed'], result
    assert sources_in(host_root) == [server.url]
    assert os.listdir(other_root) == []


def test_a_play_s_module_default_wins_over_the_role_s_variable_for_a_group_option(play, server, host_root, tmp_path):
    other_root = str(tmp_path / 'other')
    os.makedirs(other_root)
    result = play(grouped({'smartos.images.smartos_image_source': {'host_root': other_root}},
                          role(host_root, image_host_sources=[{'url': server.url}])))
    assert not result['failed'], result
    assert server.url in sources_in(other_root) and sources_in(host_root) is None


def test_a_play_s_module_default_for_pool_does_not_move_the_role_s_images(play, images, server, host_root):
    """pool is an option the role's image task sets itself (image_host_pool): a play's default for it
    loses, as a task option always wins."""
    uuid = images('attack-role-pool')['uuid']
    try:
        result = play(grouped({'smartos.images.smartos_image': {'pool': 'attack-no-such-pool'}},
                              role(host_root, image_host_sources=[{'url': server.url}],
                                   image_host_images=[{'uuid': uuid}])))
        assert not result['failed'], result
        assert result['changed'] and result['imported'] == [uuid], result
        assert subprocess.run(['zfs', 'list', '%s/%s' % (POOL, uuid)], capture_output=True,
                              check=False).returncode == 0
    finally:
        if subprocess.run(['zfs', 'list', '%s/%s' % (POOL, uuid)], capture_output=True,
                          check=False).returncode == 0:
            retry_busy('zfs', 'destroy', '-r', '%s/%s' % (POOL, uuid))


def test_the_readme_migration_rows_for_smartos_image_info_hold(play, images, server, host_root):
    """README's migration table: `.manifest.name`, `clones` a list, `zpool`, filters as a dict where every
    one applies (`state`, `clones: 0` for unused images, `~` for a substring), and facts without `pools`
    covering every pool (only `pool` defaults to zones)."""
    manifest = images('attack-migrate')
    uuid = manifest['uuid']
    try:
        imported = play({'name': 'import', 'smartos.images.smartos_image': {
            'uuid': uuid, 'pool': POOL, 'host_root': host_root, 'source': [server.url]}})
        assert imported['changed'] and not imported['failed'], imported
        facts = play({'name': 'facts', 'smartos.images.smartos_image_facts': {
            'host_root': host_root, 'gather_subset': ['installed'],
            'filters': {'state': 'active', 'clones': 0, 'name': '~' + manifest['name'][4:]}}})
        found = facts['ansible_facts']['smartos_images']
        assert list(found) == [uuid], found
        assert found[uuid]['manifest']['name'] == manifest['name'] and 'name' not in found[uuid]
        assert found[uuid]['clones'] == [] and found[uuid]['zpool'] == POOL
        other = play({'name': 'facts', 'smartos.images.smartos_image_facts': {
            'host_root': host_root, 'gather_subset': ['installed'],
            'filters': {'state': 'active', 'clones': 1}}})
        assert uuid not in other['ansible_facts']['smartos_images']
    finally:
        if subprocess.run(['zfs', 'list', '%s/%s' % (POOL, uuid)], capture_output=True,
                          check=False).returncode == 0:
            retry_busy('zfs', 'destroy', '-r', '%s/%s' % (POOL, uuid))


# ---- the fleet report against sources that are down, with a hostile host name ----

def test_report_with_a_name_only_declaration_whose_sources_are_down(tmp_path, play, images, server, host_root):
    """The host's only source does not answer: its image declared by name only is unverified (the report says
    why) and the run still writes the report; a host name with markup stays text in the page."""
    from tests.integration.test_fleet import inventory, local_host, run_playbook
    manifest = images('attack-down')
    uuid = manifest['uuid']
    down = 'http://127.0.0.1:9/'
    evil = 'h<i>&"\'x'
    try:
        setup = play([
            {'name': 'import', 'smartos.images.smartos_image': {
                'uuid': uuid, 'pool': POOL, 'host_root': host_root, 'source': [server.url]}},
            {'name': 'source', 'smartos.images.smartos_image_source': {
                'sources': [{'url': down}], 'ping': False, 'host_root': host_root}}])
        assert not setup['failed'], setup
        out_dir = tmp_path / 'report'
        inv = inventory({evil: local_host(POOL, host_root, image_host_images=[{'name': manifest['name']}],
                                          image_host_timeout=2, image_host_retries=0)})
        rep = run_playbook(tmp_path, 'report.yml', inv, extra={'fleet_report_dir': str(out_dir)})
        assert rep.rc == 0, rep.out
        report = json.loads((out_dir / 'report.json').read_text())
        (host,) = report['hosts']
        assert host['name'] == evil and host['status'] == 'ok', host
        cell = [row for row in report['images'] if row['uuid'] == uuid][0]['cells'][evil]
        assert cell['state'] == 'unverified', cell
        assert 'could not be listed' in cell['note'] and '127.0.0.1:9' in cell['note'], cell
        assert any('unknown whether newest' in line for line in report['summary']['text'])
        html = (out_dir / 'report.html').read_text()
        assert evil not in html and 'h&lt;i&gt;&amp;' in html
    finally:
        if subprocess.run(['zfs', 'list', '%s/%s' % (POOL, uuid)], capture_output=True,
                          check=False).returncode == 0:
            retry_busy('zfs', 'destroy', '-r', '%s/%s' % (POOL, uuid))


# ---- make with a path it cannot quote ----

def test_make_refuses_a_build_path_with_a_space_and_removes_nothing(tmp_path):
    """`rm -rf $(COLLECTION)` with BUILD="<dir> x" would remove <dir>: make stops first, naming BUILD."""
    keep = tmp_path / 'keep'
    keep.mkdir()
    (keep / 'file').write_text('mine\n')
    proc = subprocess.run(['make', '-C', REPO, '-o', '.venv/.installed', 'collection', 'BUILD=%s x' % keep],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0
    assert 'is not one path without spaces' in proc.stderr, proc.stdout + proc.stderr
    assert (keep / 'file').read_text() == 'mine\n' and not (tmp_path / 'x').exists()


def test_make_refuses_a_checkout_whose_path_has_a_space(tmp_path):
    checkout = tmp_path / 'my checkout'
    checkout.mkdir()
    shutil.copy(os.path.join(REPO, 'Makefile'), str(checkout / 'Makefile'))
    proc = subprocess.run(['make', '-n', 'collection'], cwd=str(checkout), capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode != 0
    assert 'has a space, which make cannot handle' in proc.stderr, proc.stdout + proc.stderr


# ---- the README's install command, then a run of the installed copy through its action group ----

@pytest.fixture(scope='module')
def built_tarball(tmp_path_factory):
    """The tarball ansible-galaxy builds from the laid-out copy, as make galaxy does."""
    out = str(tmp_path_factory.mktemp('dist'))
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), 'ansible-galaxy'), 'collection', 'build',
                           '--output-path', out], cwd=os.path.join(BUILD, 'ansible_collections', 'smartos', 'images'),
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (name,) = os.listdir(out)
    return os.path.join(out, name)


def test_the_readme_install_command_then_a_grouped_facts_run_from_the_installed_copy(built_tarball, pool, host_root,
                                                                                     tmp_path):
    tarball = built_tarball
    dest = str(tmp_path / 'collections')
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=dest, ANSIBLE_NOCOLOR='1', ANSIBLE_LOCALHOST_WARNING='0')
    galaxy = os.path.join(os.path.dirname(sys.executable), 'ansible-galaxy')
    proc = subprocess.run([galaxy, 'collection', 'install', os.path.basename(tarball), '-p', dest],
                          cwd=os.path.dirname(tarball), env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    playbook = tmp_path / 'facts.yml'
    playbook.write_text(yaml.safe_dump([{
        'hosts': 'all', 'gather_facts': False,
        'module_defaults': {'group/smartos.images.images': {'host_root': host_root, 'layout': 'original'}},
        'tasks': [{'name': 'facts', 'smartos.images.smartos_image_facts': {'pools': [pool.name]},
                   'register': 'found'},
                  {'name': 'show', 'ansible.builtin.debug': {'msg': '{{ found.ansible_facts | to_json }}'}}]}]))
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', 'localhost,',
                           '-c', 'local', '-e', 'ansible_python_interpreter=%s' % sys.executable, str(playbook)],
                          env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # auto would be modern on an empty host_root: original comes from the installed copy's action group
    assert '"smartos_images_layout": "original"' in proc.stdout.replace('\\"', '"'), proc.stdout


def test_group_defaults_reach_a_module_called_by_its_short_name(play, host_root):
    """A play with `collections: [smartos.images]` calls smartos_image_source by its short name: ansible-core
    resolves it to the collection's module, and the group's defaults reach it."""
    argv, env, record = play.command([source_task('http://127.0.0.1:9/')])
    playbook = [a for a in argv if a.endswith('.yml')][0]
    with open(playbook, encoding='utf-8') as f:
        plays = yaml.safe_load(f)
    plays[0]['collections'] = ['smartos.images']
    plays[0]['module_defaults'] = {'group/smartos.images.images': {'host_root': host_root}}
    plays[0]['tasks'] = [{'name': 'short', 'smartos_image_source': {'url': 'http://127.0.0.1:9/', 'ping': False}}]
    with open(playbook, 'w', encoding='utf-8') as f:
        yaml.safe_dump(plays, f)
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert play.results(record)[-1]['result']['changed']
    assert 'http://127.0.0.1:9/' in sources_in(host_root)
