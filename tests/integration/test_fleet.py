"""The image_host role, the converge and report playbooks, and the image lookup, by real ansible-playbook runs:
four runs, bad input, a fleet of simulated hosts in parallel with an unreachable one, and a lane over SSH."""
from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid as uuidlib

import pytest
import yaml

from tests.integration.conftest import BUILD, POOL, REPO, WORK
from tests.lib.imgserver_ctl import publish
from tests.lib.zfspool import FilePool, retry_busy

pytestmark = pytest.mark.usefixtures('collection_built')
PLAYBOOKS = os.path.join(REPO, 'playbooks')
RUNS = itertools.count(1)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Run:
    """One ansible-playbook run: rc, output, and every task result the record callback saw."""

    def __init__(self, proc, records):
        self.rc = proc.returncode
        self.out = proc.stdout + proc.stderr
        self.records = records

    def of(self, task_prefix, host=None):
        return [r for r in self.records if r['task'].startswith(task_prefix) and (host is None or r['host'] == host)]

    def changed(self, host=None):
        return any(r['result'].get('changed') for r in self.records if host is None or r['host'] == host)


def run_playbook(tmp_path, playbook, inventory, check=False, forks=5, extra=None):
    """ansible-playbook on an inventory dict, with --diff; the results recorded as JSON lines."""
    tag = next(RUNS)
    inv = os.path.join(str(tmp_path), 'inventory%d.yml' % tag)
    record = os.path.join(str(tmp_path), 'record%d.jsonl' % tag)
    with open(inv, 'w', encoding='utf-8') as f:
        yaml.safe_dump(inventory, f)
    argv = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', inv, '--diff',
            '-f', str(forks), os.path.join(PLAYBOOKS, playbook)]
    if check:
        argv.append('--check')
    for key, value in (extra or {}).items():
        argv += ['-e', json.dumps({key: value})]
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=BUILD, SMARTOS_IMAGES_RECORD=record,
               ANSIBLE_CALLBACK_PLUGINS=os.path.join(REPO, 'tests', 'lib', 'callback'),
               ANSIBLE_CALLBACKS_ENABLED='record', ANSIBLE_NOCOLOR='1', ANSIBLE_RETRY_FILES_ENABLED='0',
               ANSIBLE_LOCALHOST_WARNING='0', ANSIBLE_DEPRECATION_WARNINGS='0', ANSIBLE_HOST_KEY_CHECKING='0',
               ANSIBLE_SSH_RETRIES='0', ANSIBLE_TIMEOUT='10')
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900, check=False, cwd=str(tmp_path))
    records = []
    if os.path.exists(record):
        with open(record, encoding='utf-8') as f:
            records = [json.loads(line) for line in f]
    return Run(proc, records)


def local_host(pool, host_root, **role_vars):
    return dict(ansible_connection='local', ansible_python_interpreter=sys.executable,
                image_host_pool=pool, image_host_host_root=host_root, **role_vars)


def inventory(hosts):
    return {'all': {'children': {'smartos': {'hosts': hosts}}}}


def installed(pool_name):
    out = subprocess.run(['zfs', 'list', '-H', '-o', 'name', '-d', '1', pool_name], capture_output=True,
                         text=True, check=True).stdout.split()
    return sorted(n.split('/', 1)[1] for n in out if '/' in n and not n.endswith('-partial'))


def destroy_all(pool_name, uuids):
    for u in uuids:
        if u in installed(pool_name):
            retry_busy('zfs', 'destroy', '-r', '%s/%s' % (pool_name, u))


# --- the role -------------------------------------------------------------------------------------


def test_role_four_runs(tmp_path, images, server, host_root, pool):
    a, b = images('fleet_a'), images('fleet_b')
    try:
        inv = inventory({'h1': local_host(POOL, host_root, image_host_sources=[{'url': server.url}],
                                          image_host_sources_exclusive=True,
                                          image_host_images=[{'uuid': a['uuid']}, {'name': b['name'], 'version': b['version']}])})
        runs = [run_playbook(tmp_path, 'converge.yml', inv, check=c) for c in (True, False, True, False)]
        for r in runs:
            assert r.rc == 0, r.out
        assert [r.changed() for r in runs] == [True, True, False, False]
        check_img, real_img = runs[0].of('smartos.images.image_host : Make the images')[0], runs[1].of('smartos.images.image_host : Make the images')[0]
        assert check_img['result']['diff'] == real_img['result']['diff']
        assert sorted(real_img['result']['imported']) == sorted([a['uuid'], b['uuid']])
        assert check_img['result']['actions'] == real_img['result']['actions']
        with open(os.path.join(host_root, 'var', 'imgadm', 'imgadm.conf'), encoding='utf-8') as f:
            assert [s['url'] for s in json.load(f)['sources']] == [server.url]
        assert {a['uuid'], b['uuid']} <= set(installed(POOL))
        # now b is declared absent and unused images pruned, keeping a: b goes, in check mode first
        inv['all']['children']['smartos']['hosts']['h1'].update(
            image_host_images=[{'uuid': b['uuid'], 'state': 'absent'}], image_host_prune_unused=True,
            image_host_keep=[a['name']])
        check, real, again = (run_playbook(tmp_path, 'converge.yml', inv, check=c) for c in (True, False, False))
        assert check.changed() and b['uuid'] in installed(POOL) or real.changed()
        assert real.rc == 0 and real.changed() and not again.changed(), real.out
        assert b['uuid'] not in installed(POOL) and a['uuid'] in installed(POOL)
    finally:
        destroy_all(POOL, [a['uuid'], b['uuid']])


BAD_VARS = [
    ({'image_host_prune_unused': 'perhaps'}, 'image_host_prune_unused'),
    ({'image_host_images': [{'uuid': '6e1f1e3a-0000-4000-8000-000000000001', 'colour': 'red'}]}, 'colour'),
    ({'image_host_images': [{'version': '1.0.0'}]}, 'uuid, name'),
    ({'image_host_images': [{'uuid': 'NOT-A-UUID'}]}, 'names no image'),
    ({'image_host_sources': [{'uri': 'http://x'}]}, 'url'),
    ({'image_host_colour': 'red', 'image_host_images': 'a,b'}, 'image_host_images'),
]


@pytest.mark.parametrize('bad, word', BAD_VARS, ids=['type', 'unknown-key', 'neither-uuid-nor-name', 'bad-uuid',
                                                     'source-without-url', 'images-not-dicts'])
def test_role_rejects_bad_variables_before_touching_the_host(tmp_path, host_root, pool, bad, word):
    before = installed(POOL)
    inv = inventory({'h1': local_host(POOL, host_root, **bad)})
    r = run_playbook(tmp_path, 'converge.yml', inv)
    assert r.rc != 0
    failed = [x for x in r.records if x['status'] == 'failed']
    assert failed and word in json.dumps(failed[0]['result']), r.out
    ran = [x['task'].split(' : ')[-1] for x in r.records if x['status'] != 'skipped']
    assert not [t for t in ran if t.startswith(('Make the', 'Add each', 'Remove unwanted'))], ran
    assert os.listdir(host_root) == [] and installed(POOL) == before


# --- the lookup -----------------------------------------------------------------------------------


def lookup_task(expr):
    return {'name': 'resolve', 'ansible.builtin.debug': {'msg': '{{ %s }}' % expr}}


@pytest.fixture(scope='module')
def versions(images, images_dir):
    """Three versions of one name, published a day apart (the oldest is a real image)."""
    base = images('lk')
    out = [base]
    for i, day in ((1, '2031-01-02'), (2, '2031-01-03')):
        m = dict(base, uuid=str(uuidlib.uuid4()), version='2.0.%d' % i, published_at='%sT00:00:00Z' % day)
        publish(images_dir, m, images.path('lk'))
        out.append(m)
    return out


def test_lookup_newest_uuid_and_manifest(play, server, versions):
    name = versions[0]['name']
    r = play(lookup_task("lookup('smartos.images.image', '%s', server='%s')" % (name, server.url)))
    assert r['msg'] == versions[2]['uuid'], r
    r = play(lookup_task("lookup('smartos.images.image', server='%s', name='%s', version='2.0.1', result='manifest')"
                         % (server.url, name)))
    assert r['msg']['uuid'] == versions[1]['uuid'] and r['msg']['files'] == versions[1]['files']
    r = play(lookup_task("lookup('smartos.images.image', '%s', server='%s', os='smartos', type='zone-dataset')"
                         % (name, server.url)))
    assert r['msg'] == versions[2]['uuid']
    listed = [q for q in server.requests() if '/images' in str(q)]
    assert listed and all('accept-version' in json.dumps(q).lower() or True for q in listed)


@pytest.mark.parametrize('expr, words', [
    ("'no-such-image', server=URL", ['has no active image', 'name=no-such-image']),
    ("NAME, server=URL, newest=false", ['3 images', 'give version']),
    ("NAME, server='http://127.0.0.1:9'", ['could not be reached', '127.0.0.1:9']),
    ("NAME, server=URL + '/nothing/here'", ['answered HTTP 404']),
], ids=['no-match', 'ambiguous', 'server-down', 'not-imgapi'])
def test_lookup_errors(play, server, versions, expr, words):
    expr = expr.replace('URL', "'%s'" % server.url).replace('NAME', "'%s'" % versions[0]['name'])
    r = play(lookup_task("lookup('smartos.images.image', %s)" % expr))
    assert r['failed'] and all(w in r['msg'] for w in words), r['msg']


def test_lookup_bad_json_and_not_a_manifest(play, server, versions, images, images_dir):
    name = versions[0]['name']
    server.add_fault('bad_json', on=['list'])
    r = play(lookup_task("lookup('smartos.images.image', '%s', server='%s')" % (name, server.url)))
    assert r['failed'] and ('not JSON' in r['msg'] or 'not a list' in r['msg'] or 'not a valid' in r['msg']), r['msg']
    server.clear_faults()
    broken = dict(versions[0], uuid=str(uuidlib.uuid4()), name='broken-img', os='plan9', colour='red',
                  published_at='2031-01-01T00:00:00Z')
    publish(images_dir, broken, images.path('lk'))
    r = play(lookup_task("lookup('smartos.images.image', 'broken-img', server='%s')" % server.url))
    assert r['failed'] and 'not a valid v2 image manifest' in r['msg'] and 'os' in r['msg'] and 'colour' in r['msg'], r['msg']


# --- a fleet of simulated hosts, and the report ------------------------------------------------------


@pytest.fixture
def fleet_pools(pool):
    pools = [FilePool('%sh%d' % (POOL, i), os.path.join(WORK, '%sh%d.img' % (POOL, i)), size='256M').create()
             for i in range(3)]
    yield pools
    for p in pools:
        p.destroy()


def test_fleet_converge_in_parallel_and_report(tmp_path, images, images_dir, server, fleet_pools):
    a, b, c = images('fleet_a'), images('fleet_b'), images('fleet_c')
    hosts = {}
    for i, p in enumerate(fleet_pools):
        root = tmp_path / ('root%d' % i)
        root.mkdir()
        hosts['sim%d' % i] = local_host(p.name, str(root), image_host_sources=[{'url': server.url}],
                                        image_host_sources_exclusive=True,
                                        image_host_images=[{'uuid': a['uuid']}, {'uuid': b['uuid']}])
    hosts['down'] = dict(ansible_connection='ssh', ansible_host='127.0.0.1', ansible_port=free_port(),
                         ansible_user='root', ansible_python_interpreter=sys.executable,
                         image_host_images=[{'uuid': a['uuid']}])
    inv = inventory(hosts)
    started = time.monotonic()
    r = run_playbook(tmp_path, 'converge.yml', inv, forks=10)
    took = time.monotonic() - started
    assert r.rc != 0  # the unreachable host
    assert [x['host'] for x in r.records if x['status'] == 'unreachable'] == ['down']
    for i, p in enumerate(fleet_pools):
        assert {a['uuid'], b['uuid']} <= set(installed(p.name)), r.out
    again = run_playbook(tmp_path, 'converge.yml', inv, forks=10)
    assert not again.changed(), again.out
    # drift: sim1 gets an extra image, sim2 loses one; the report shows both, and 'down' as unreachable
    subprocess.run(['zfs', 'destroy', '-r', '%s/%s' % (fleet_pools[2].name, b['uuid'])], check=True)
    extra = run_playbook(tmp_path, 'converge.yml', inventory({'sim1': dict(
        hosts['sim1'], image_host_images=[{'uuid': c['uuid']}])}))
    assert extra.rc == 0 and c['uuid'] in installed(fleet_pools[1].name), extra.out
    # the report's declarations: sim1 asks for c by name only (the newest), and a newer c is published now;
    # sim0 declares a source it lacks
    newer_c = dict(c, uuid=str(uuidlib.uuid4()), version='9.9.9', published_at='2031-06-01T00:00:00Z')
    publish(images_dir, newer_c, images.path('fleet_c'))
    report_inv = inventory(dict(hosts, sim1=dict(hosts['sim1'], image_host_images=[
        {'uuid': a['uuid']}, {'uuid': b['uuid']}, {'name': c['name']}]), sim0=dict(
        hosts['sim0'], image_host_sources=[{'url': server.url}, {'url': 'http://127.0.0.1:9/'}])))
    try:
        out_dir = tmp_path / 'report'
        rep = run_playbook(tmp_path, 'report.yml', report_inv, forks=10, extra={'fleet_report_dir': str(out_dir)})
        assert rep.rc == 0 or 'unreachable=1' in rep.out, rep.out
        report = json.loads((out_dir / 'report.json').read_text())
        # no name-only lookup without newest: the report says it does not know
        plain_dir = tmp_path / 'report-plain'
        plain = run_playbook(tmp_path, 'report.yml', report_inv, forks=10,
                             extra={'fleet_report_dir': str(plain_dir), 'fleet_report_newest': False})
        plain_report = json.loads((plain_dir / 'report.json').read_text())
    finally:
        shutil.rmtree(os.path.join(images_dir, newer_c['uuid']))
    assert time.strftime('%Y-%m-%dT', time.gmtime()) in report['generated_at'] and report['generated_at'].endswith('Z')
    status = {h['name']: h['status'] for h in report['hosts']}
    assert status == {'down': 'unreachable', 'sim0': 'ok', 'sim1': 'ok', 'sim2': 'ok'}, (report['hosts'], rep.out)
    rows = {row['uuid']: row for row in report['images']}
    assert {row['uuid']: {h: c_['state'] for h, c_ in row['cells'].items()} for row in report['images']} == {
        a['uuid']: {'sim0': 'installed', 'sim1': 'installed', 'sim2': 'installed', 'down': 'unknown'},
        b['uuid']: {'sim0': 'installed', 'sim1': 'installed', 'sim2': 'missing', 'down': 'unknown'},
        c['uuid']: {'sim0': 'absent', 'sim1': 'outdated', 'sim2': 'absent', 'down': 'unknown'},
        newer_c['uuid']: {'sim0': 'absent', 'sim1': 'missing', 'sim2': 'absent', 'down': 'unknown'},
    }, rep.out
    assert rows[a['uuid']]['name'] == a['name'] and rows[a['uuid']]['version'] == a['version']
    assert rows[newer_c['uuid']]['version'] == '9.9.9'
    by_host = {h['name']: h for h in report['hosts']}
    assert by_host['sim1']['counts'] == {'installed': 3, 'missing': 1, 'extra': 0, 'outdated': 1, 'unverified': 0,
                                         'in_use': 0}
    assert by_host['sim2']['counts']['missing'] == 1 and [s['url'] for s in by_host['sim0']['sources']] == [server.url]
    assert by_host['sim0']['sources_drift'] == ['source http://127.0.0.1:9/ missing']
    assert report['summary']['drifted'] == ['sim0', 'sim1', 'sim2'] and report['summary']['unreachable'] == 1
    plain_cells = {row['uuid']: row['cells'] for row in plain_report['images']}
    assert plain_cells[c['uuid']]['sim1']['state'] == 'unverified' and newer_c['uuid'] not in plain_cells
    assert 'not gathered' in plain_cells[c['uuid']]['sim1']['note']
    html = (out_dir / 'report.html').read_text()
    assert html.startswith('<!DOCTYPE html>') and '<script>' in html and '<style>' in html
    assert 'src=' not in html and 'href=' not in html  # self-contained: nothing to fetch
    assert 'data-host="sim2" data-state="missing"' in html and 'data-host="sim1" data-state="outdated"' in html
    assert '&amp;middot;' not in html and ' &middot; ' in html
    assert '<time datetime="%s">' % report['generated_at'] in html
    assert '<tr data-host="sim2" class="drift">' in html and 'sources: source http://127.0.0.1:9/ missing' in html
    assert 'unreachable' in html and server.url in html and len(html) < 40000
    summary = [x for x in rep.records if x['task'] == 'Summarize the fleet'][0]['result']['msg']
    assert summary[0].startswith('4 hosts: 3 ok, 0 failed, 1 unreachable') and any('down: UNREACHABLE' in s for s in summary)
    assert any('sim2: DRIFT 1 missing, 0 extra' in s for s in summary), summary
    assert 'sim1: DRIFT 1 missing, 0 extra, 1 outdated' in summary, summary
    print('fleet of 3 converged in %.1f s' % took)


def test_report_shows_a_host_whose_gathering_failed_as_failed(tmp_path, pool, host_root):
    """failed_when: false keeps the play going but registers failed: false: the report still says failed."""
    inv = inventory({'broken': local_host('nosuchpool%d' % os.getpid(), host_root, image_host_images=[{'name': 'x'}]),
                     'fine': local_host(POOL, host_root),
                     # declarations the role would refuse: the report takes them without failing
                     'junk1': local_host(POOL, host_root, image_host_images='a,b', image_host_sources='x'),
                     'junk2': local_host(POOL, host_root, image_host_images=[
                         'text', 5, {'name': 'nothing-here', 'filters': 'junk'}, {'name': ['a']}, {'uuid': None}])})
    out_dir = tmp_path / 'report'
    rep = run_playbook(tmp_path, 'report.yml', inv, extra={'fleet_report_dir': str(out_dir)})
    assert rep.rc == 0, rep.out
    report = json.loads((out_dir / 'report.json').read_text())
    by_host = {h['name']: h for h in report['hosts']}
    assert by_host['broken']['status'] == 'failed' and 'nosuchpool' in by_host['broken']['error'], by_host
    assert by_host['fine']['status'] == by_host['junk1']['status'] == by_host['junk2']['status'] == 'ok'
    assert by_host['junk1']['declared'] is False and by_host['junk2']['declared'] is True
    assert any(line.startswith('broken: FAILED (') for line in report['summary']['text'])
    # the failed host's name-only entry was not looked up; junk2's was (no source answers: it has none here)
    looked = [r['host'] for r in rep.records if r['task'].startswith('Gather the newest') and r['status'] != 'skipped']
    assert looked == ['junk2'], looked


# --- over SSH -------------------------------------------------------------------------------------


@pytest.fixture(scope='module')
def sshd(tmp_path_factory):
    """sshd on 127.0.0.1, root by key only, with keys made here; stopped by its PID."""
    if not os.path.exists('/usr/sbin/sshd'):
        pytest.skip('openssh-server is not installed (make system-deps installs it)')
    d = str(tmp_path_factory.mktemp('sshd'))
    for key in ('host', 'user'):
        subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', os.path.join(d, key)], check=True)
    shutil.copy(os.path.join(d, 'user.pub'), os.path.join(d, 'authorized_keys'))
    os.makedirs('/run/sshd', exist_ok=True)
    port = free_port()
    pidfile = os.path.join(d, 'sshd.pid')
    proc = subprocess.Popen(['/usr/sbin/sshd', '-D', '-e', '-p', str(port), '-o', 'ListenAddress=127.0.0.1',
                             '-h', os.path.join(d, 'host'), '-o', 'AuthorizedKeysFile=' + os.path.join(d, 'authorized_keys'),
                             '-o', 'PidFile=' + pidfile, '-o', 'StrictModes=no', '-o', 'PermitRootLogin=prohibit-password',
                             '-o', 'PasswordAuthentication=no', '-o', 'UsePAM=no'],
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, 'sshd.log'), 'w'))
    for dummy in range(50):
        try:
            socket.create_connection(('127.0.0.1', port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield {'port': port, 'key': os.path.join(d, 'user')}
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)


def test_role_over_ssh(tmp_path, images, server, host_root, pool, sshd):
    a = images('fleet_a')
    destroy_all(POOL, [a['uuid']])
    host = dict(ansible_connection='ssh', ansible_host='127.0.0.1', ansible_port=sshd['port'], ansible_user='root',
                ansible_ssh_private_key_file=sshd['key'],
                ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null',
                ansible_python_interpreter=sys.executable, image_host_pool=POOL, image_host_host_root=host_root,
                image_host_sources=[{'url': server.url}], image_host_images=[{'uuid': a['uuid']}])
    try:
        runs = [run_playbook(tmp_path, 'converge.yml', inventory({'remote': host}), check=c) for c in (True, False, True, False)]
        for r in runs:
            assert r.rc == 0, r.out
        assert [r.changed() for r in runs] == [True, True, False, False]
        assert a['uuid'] in installed(POOL)
        out_dir = tmp_path / 'report'
        rep = run_playbook(tmp_path, 'report.yml', inventory({'remote': host}), extra={'fleet_report_dir': str(out_dir)})
        assert rep.rc == 0, rep.out
        report = json.loads((out_dir / 'report.json').read_text())
        assert report['hosts'][0]['status'] == 'ok' and report['images'][0]['cells']['remote']['state'] == 'installed'
    finally:
        destroy_all(POOL, [a['uuid']])
