"""Benchmark smartos_image_facts against ansible.builtin.ping: 1,000 images on a real pool, then 5,000 offered by a source.

Times, interleaved round by round, `ansible localhost -m smartos.images.smartos_image_facts` and `-m ansible.builtin.ping`.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import random
import resource
import signal
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid

from benchmarks._common import REPO, bench_run, write_results
from benchmarks.import_speed import run_setup, spread, verdict
from tests.lib.imgserver_ctl import ImageServer, publish

POOL = 'factsbench'
MODULE = os.path.join('ansible_collections', 'smartos', 'images', 'plugins', 'modules', 'smartos_image_facts.py')
RESULTS = os.path.join(REPO, 'benchmarks', 'results', 'facts_speed.json')
GOALS = {'installed': 1.5, 'available': 3.0}
RUN_TIMEOUT = 600          # seconds any one timed run may take before it is killed
PAGE = 1000                # IMGAPI ListImages page size
ZFS_LIST = ['zfs', 'list', '-H', '-o', 'name,origin,mountpoint,imgadm:ignore', '-t', 'filesystem,volume,snapshot']
NAMES = ('base-64-lts', 'minimal-64-lts', 'pkgbuild', 'ubuntu-24.04', 'debian-12', 'alpine-3', 'nodejs', 'postgresql-16',
         'redis', 'nginx', 'haproxy', 'mongodb', 'centos-stream-9', 'rocky-9', 'almalinux-9', 'freebsd-14')
LABELS = {'facts': '(a) ansible -m smartos_image_facts', 'ping': '(b) ansible -m ansible.builtin.ping',
          'playbook_facts': '(c) ansible-playbook: the facts task', 'playbook_ping': '(d) ansible-playbook: a ping task',
          'module': '(e) the module alone (python ...facts.py)'}
FLOOR_LABELS = {'installed': '(f) the one zfs list it runs', 'available': '(f) the ListImages pages by urllib'}
KINDS = ('facts', 'ping', 'playbook_facts', 'playbook_ping', 'module', 'floor')
# Nothing here may go through a proxy: the server is on 127.0.0.1.
NO_PROXY = {'no_proxy': '127.0.0.1,localhost', 'NO_PROXY': '127.0.0.1,localhost'}


def parse_args(argv=None):
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=5, help='timed rounds per phase (interleaved); default 5')
    parser.add_argument('--images', type=int, default=1000, help='image datasets on the pool; default 1000')
    parser.add_argument('--available', type=int, default=5000, help='images the source offers; default 5000 (0: skip)')
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.images < 1 or args.available < 0:
        parser.error('--rounds and --images must be at least 1, --available at least 0')
    return args


def make_manifests(count, seed):
    """count realistic v2 manifests (about 1 KB each), published an hour apart, names repeating."""
    rng = random.Random(seed)
    start = datetime.datetime(2015, 1, 1, tzinfo=datetime.timezone.utc)
    manifests = []
    for i in range(count):
        image = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        name = NAMES[i % len(NAMES)]
        manifests.append({
            'v': 2, 'uuid': image, 'owner': '00000000-0000-0000-0000-000000000000', 'name': name,
            'version': f'{15 + i // 400}.{(i // len(NAMES)) % 4}.{i % 10}', 'state': 'active', 'disabled': False,
            'public': True, 'published_at': (start + datetime.timedelta(hours=i)).strftime('%Y-%m-%dT%H:%M:%S.000Z'),
            'type': 'zvol' if name.startswith(('ubuntu', 'debian', 'centos', 'rocky', 'alma')) else 'zone-dataset',
            'os': 'smartos', 'description': f'{name}: a benchmark image with the fields real SmartOS images carry.',
            'homepage': 'https://docs.smartos.org/images', 'generate_passwords': True,
            'files': [{'sha1': hashlib.sha1(image.encode()).hexdigest(), 'size': 100_000_000 + i, 'compression': 'gzip'}],
            'requirements': {'min_platform': {'7.0': '20230101T000000Z'}, 'networks': [{'name': 'net0', 'description': 'public'}]},
            'users': [{'name': 'root'}, {'name': 'admin'}], 'tags': {'role': 'os', 'group': name},
        })
    return manifests


def create_images(manifests):
    """A dataset <pool>/<uuid> per image, then one recursive snapshot gives each its @final."""
    started = time.monotonic()
    for i, manifest in enumerate(manifests, 1):
        subprocess.run(['zfs', 'create', f"{POOL}/{manifest['uuid']}"], check=True, capture_output=True)
        if i % 250 == 0 or i == len(manifests):
            print(f'  {i} datasets created ({time.monotonic() - started:.1f} s)', flush=True)
    subprocess.run(['zfs', 'snapshot', '-r', f'{POOL}@final'], check=True, capture_output=True)


def write_caches(root, manifests, source):
    """imgadm's cache file per image: JSON.stringify({manifest, zpool, source}, null, 2) + newline."""
    images_dir = os.path.join(root, 'var', 'imgadm', 'images')
    os.makedirs(images_dir, exist_ok=True)
    for manifest in manifests:
        with open(os.path.join(images_dir, f"{POOL}-{manifest['uuid']}.json"), 'w', encoding='utf-8') as f:
            f.write(json.dumps({'manifest': manifest, 'zpool': POOL, 'source': source}, indent=2) + '\n')


def kill_group(proc):
    """Kill a timed process and everything it started (its own session, by its PID), then reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def timed(argv, env):
    """Run argv to the end; wall seconds, rc, CPU seconds of it and its children, stdout, stderr tail."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    # Its own session, so that a timeout or Ctrl-C here kills everything it started.
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,  # pylint: disable=consider-using-with
                            env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
    except BaseException:
        kill_group(proc)
        raise
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {'seconds': wall, 'rc': proc.returncode, 'cpu_seconds': cpu, 'stdout_bytes': len(out),
            'stdout': out.decode('utf-8', 'replace'), 'stderr': err.decode('utf-8', 'replace').strip()[-2000:]}


def checked_ping(r):
    """The timed run of `ansible -m ping`, once it is seen to have answered pong."""
    if r['rc'] != 0 or json_after(r['stdout'], ' => ').get('ping') != 'pong':
        raise RuntimeError(f"the ping run failed (rc {r['rc']}): {r['stdout'][-2000:]} {r['stderr']}")
    return r


def json_after(text, marker):
    """The JSON object printed after marker (e.g. 'SUCCESS => '), or {}."""
    start = text.find(marker)
    start = text.find('{', start if start >= 0 else 0)
    if start < 0:
        return {}
    try:
        return json.JSONDecoder().raw_decode(text[start:])[0]
    except ValueError:
        return {}


class Bench:
    """The runs of one phase: the facts module through ansible, ping, the module alone, and the floor."""

    def __init__(self, collections, workdir, module_args, check):
        self.collections = collections
        self.module_args = module_args
        self.check = check          # facts dict -> None, or raises when the module did not return what it should
        self.env = dict(os.environ, **NO_PROXY, ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_LOCALHOST_WARNING='False',
                        ANSIBLE_INVENTORY_UNPARSED_WARNING='False', ANSIBLE_FORCE_COLOR='0', ANSIBLE_NOCOLOR='1')
        self.ansible = os.path.join(os.path.dirname(sys.executable), 'ansible')
        self.args_path = os.path.join(workdir, f'args-{id(self)}.json')
        with open(self.args_path, 'w', encoding='utf-8') as f:
            json.dump({'ANSIBLE_MODULE_ARGS': module_args}, f)
        self.playbooks = {}
        for kind, task in (('facts', {'smartos.images.smartos_image_facts': module_args}), ('ping', {'ansible.builtin.ping': {}})):
            self.playbooks[kind] = os.path.join(workdir, f'{kind}-{id(self)}.yml')
            play = [{'hosts': 'localhost', 'gather_facts': False, 'connection': 'local',
                     'vars': {'ansible_python_interpreter': sys.executable}, 'tasks': [task]}]
            with open(self.playbooks[kind], 'w', encoding='utf-8') as f:
                json.dump(play, f)  # JSON is YAML

    def _ansible(self, module, args=None):
        argv = [self.ansible, 'localhost', '-c', 'local', '-e', f'ansible_python_interpreter={sys.executable}', '-m', module]
        if args is not None:
            argv += ['-a', json.dumps(args)]
        return timed(argv, self.env)

    def facts(self):
        """(a) ansible localhost -m smartos.images.smartos_image_facts -a '<json>'."""
        r = self._ansible('smartos.images.smartos_image_facts', self.module_args)
        result = json_after(r['stdout'], ' => ')
        if r['rc'] != 0 or 'ansible_facts' not in result:
            raise RuntimeError(f"the facts run failed (rc {r['rc']}): {r['stdout'][-2000:]} {r['stderr']}")
        self.check(result['ansible_facts'])
        return r

    def ping(self):
        """(b) ansible localhost -m ansible.builtin.ping."""
        return checked_ping(self._ansible('ansible.builtin.ping'))

    def _playbook(self, kind):
        r = timed([self.ansible + '-playbook', self.playbooks[kind]], self.env)
        if r['rc'] != 0 or 'ok=1 ' not in r['stdout'] or 'failed=0 ' not in r['stdout']:
            raise RuntimeError(f"the {kind} playbook failed (rc {r['rc']}): {r['stdout'][-2000:]} {r['stderr']}")
        return r

    def playbook_facts(self):
        """(c) ansible-playbook with the same facts task: the default callback does not print its result."""
        return self._playbook('facts')

    def playbook_ping(self):
        """(d) ansible-playbook with one ping task."""
        return self._playbook('ping')

    def module(self):
        """(e) python smartos_image_facts.py args.json: the module as Ansible runs it, without the controller."""
        r = timed([sys.executable, os.path.join(self.collections, MODULE), self.args_path],
                  dict(self.env, PYTHONPATH=self.collections))
        result = json_after(r['stdout'], '')
        if r['rc'] != 0 or 'ansible_facts' not in result:
            raise RuntimeError(f"the module run failed (rc {r['rc']}): {r['stdout'][-2000:]} {r['stderr']}")
        self.check(result['ansible_facts'])
        return r


def zfs_list_floor():
    """(f) the one zfs list the module runs, alone."""
    r = timed(ZFS_LIST + ['-r', POOL], dict(os.environ, LANG='C', LC_ALL='C'))
    if r['rc'] != 0:
        raise RuntimeError(f"zfs list failed: {r['stderr']}")
    return r


def pages_floor(url, expected):
    """(f) ListImages page by page with urllib, in this process: what the server alone costs."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    started, images, marker, pages = time.monotonic(), [], None, 0
    for dummy in range(expected // (PAGE - 1) + 3):
        query = '' if marker is None else '?' + urllib.parse.urlencode({'limit': PAGE, 'marker': marker})
        request = urllib.request.Request(f'{url}/images{query}', headers={'Accept-Version': '~2'})
        with opener.open(request, timeout=RUN_TIMEOUT) as response:
            page = json.load(response)
        pages += 1
        full = len(page) >= PAGE
        if marker and page and page[0]['uuid'] == marker:
            page = page[1:]
        images.extend(page)
        if not full or not page:
            break
        marker = page[-1]['uuid']
    if len(images) != expected:
        raise RuntimeError(f'the server listed {len(images)} images, not {expected}')
    return {'seconds': time.monotonic() - started, 'rc': 0, 'cpu_seconds': None, 'pages': pages}


def expect_installed(count):
    """A check that the facts hold count images, each with its cached manifest."""
    def check(facts):
        images = facts.get('smartos_images') or {}
        cached = sum(1 for e in images.values() if e.get('manifest_cached'))
        if len(images) != count or cached != count:
            raise RuntimeError(f'the facts list {len(images)} images ({cached} with a cached manifest), not {count}')
    return check


def expect_available(count):
    """A check that the facts hold count available images and no source error."""
    def check(facts):
        listed = facts.get('smartos_images_available') or []
        errors = facts.get('smartos_images_available_errors')
        if len(listed) != count or len({e['manifest']['uuid'] for e in listed}) != count or errors:
            raise RuntimeError(f'the facts list {len(listed)} available images, not {count} (errors: {errors})')
    return check


def measure(bench, floor, rounds, phase):
    """One untimed warm-up of each run, then the interleaved rounds; the runs by kind."""
    do = {'facts': bench.facts, 'ping': bench.ping, 'playbook_facts': bench.playbook_facts, 'playbook_ping': bench.playbook_ping,
          'module': bench.module, 'floor': floor}
    for kind in KINDS:
        do[kind]()
    runs = {kind: [] for kind in KINDS}
    for number in range(1, rounds + 1):
        for kind in KINDS:
            r = do[kind]()
            runs[kind].append({k: v for k, v in r.items() if k not in ('stdout', 'stderr')})
            print(f'{phase} round {number}/{rounds} {label(kind, phase):<42} {r["seconds"]:7.2f} s', flush=True)
    return runs


def label(kind, phase):
    """The row label of a kind of run."""
    return FLOOR_LABELS[phase] if kind == 'floor' else LABELS[kind]


def summarise(runs):
    """Medians, spreads and the ratio facts/ping of one phase."""
    summary = {}
    for kind in KINDS:
        cpu = [r['cpu_seconds'] for r in runs[kind] if r.get('cpu_seconds') is not None]
        summary[kind] = dict(spread([r['seconds'] for r in runs[kind]]), cpu_seconds_median=statistics.median(cpu) if cpu else None)
    summary['ratio'] = summary['facts']['median'] / summary['ping']['median']
    summary['playbook_ratio'] = summary['playbook_facts']['median'] / summary['playbook_ping']['median']
    summary['module_share_of_facts'] = summary['module']['median'] / summary['facts']['median']
    summary['facts_stdout_mb'] = runs['facts'][0]['stdout_bytes'] / 1e6
    return summary


def table(data):
    """The printed report."""
    machine = data['machine']
    load = ' '.join(f'{x:.2f}' for x in machine['load_avg_at_start'])
    lines = [
        '',
        f"smartos.images facts benchmark: {data['rounds']} round(s) per phase, runs interleaved a to f after one warm-up of each",
        f"machine: {machine['nproc']} CPU(s) {machine['cpu']}, {machine['mem_total_mb']} MB RAM, Python {machine['python']}, "
        f"ansible-core {machine['ansible_core']}, zfs-fuse {machine['zfs_fuse']}, Linux {machine['kernel']}, load at start {load}",
    ]
    for phase, title in (('installed', f"installed: {data['images']} image datasets with @final on pool {POOL}, a cache file "
                                       'each; gather_subset [installed]'),
                         ('available', f"available: {data['available']} images from one imgserver source on 127.0.0.1 "
                                       f"({data.get('pages', '?')} ListImages pages); gather_subset [available]")):
        s = data['phases'].get(phase)
        if not s:
            continue
        lines += ['', title, f"{'seconds':<44} {'median':>7} {'min':>7} {'max':>7} {'CPU s':>7}"]
        for kind in KINDS:
            row = s[kind]
            cpu = '-' if row['cpu_seconds_median'] is None else f"{row['cpu_seconds_median']:.2f}"
            lines.append(f"{label(kind, phase):<44} {row['median']:7.2f} {row['min']:7.2f} {row['max']:7.2f} {cpu:>7}")
        goal = GOALS[phase]
        lines += [f"ratio a/b (facts / ping)            {s['ratio']:5.2f}   goal <= {goal:.1f}   {verdict(s['ratio'], goal)}",
                  f"ratio c/d (the same in a playbook)  {s['playbook_ratio']:5.2f}   (for reference: the result is not printed)",
                  f"module alone / facts run (e/a)      {s['module_share_of_facts']:5.2f}   "
                  f"output of the facts run (a): {s['facts_stdout_mb']:.1f} MB"]
    lines += ['(CPU s: median user+sys of the process and its children; the zfs-fuse daemon and the server are not counted)', '']
    return '\n'.join(lines)


def installed_phase(args, collections, workdir, root):
    """Lay out the images on the pool and their cache files, then time gather_subset [installed]."""
    print(f'creating {args.images} image datasets on {POOL} ...', flush=True)
    manifests = make_manifests(args.images, seed=1)
    create_images(manifests)
    write_caches(root, manifests, 'https://images.smartos.org')
    bench = Bench(collections, workdir, {'pools': [POOL], 'host_root': root, 'gather_subset': ['installed']},
                  expect_installed(args.images))
    return summarise(measure(bench, zfs_list_floor, args.rounds, 'installed'))


def available_phase(args, collections, workdir, root):
    """Publish the manifests to an image server, make it the only source, then time gather_subset [available]."""
    print(f'publishing {args.available} manifests ...', flush=True)
    images_dir = os.path.join(workdir, 'served')
    dummy_file = os.path.join(workdir, 'dummy.zfs.gz')
    with open(dummy_file, 'wb') as f:
        f.write(b'\x1f\x8b')
    for manifest in make_manifests(args.available, seed=2):
        publish(images_dir, manifest, dummy_file)
    with ImageServer(images_dir) as server:
        with open(os.path.join(root, 'var', 'imgadm', 'imgadm.conf'), 'w', encoding='utf-8') as f:
            json.dump({'sources': [{'type': 'imgapi', 'url': server.url}]}, f, indent=2)
        bench = Bench(collections, workdir, {'host_root': root, 'gather_subset': ['available']},
                      expect_available(args.available))
        pages = pages_floor(server.url, args.available)['pages']
        summary = summarise(measure(bench, lambda: pages_floor(server.url, args.available), args.rounds, 'available'))
    return summary, pages


def main(argv=None):
    """Set up zfs-fuse, the pool and the server, measure, print and save the figures; clean everything up."""
    args, collections, machine = run_setup(parse_args, argv, 'plugins', 'modules', 'smartos_image_facts.py')
    with bench_run('facts_speed', 'facts-', pool=POOL, size='2G') as workdir:
        root = os.path.join(workdir, 'host')
        # No mounts: 1,000 FUSE mounts would burden the shared machine, and zfs list reads the same properties.
        subprocess.run(['zfs', 'set', 'mountpoint=none', POOL], check=True, capture_output=True)
        data = {'generated_at': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
                'rounds': args.rounds, 'images': args.images, 'available': args.available, 'machine': machine, 'goals': GOALS,
                'phases': {}}
        data['phases']['installed'] = installed_phase(args, collections, workdir, root)
        if args.available:
            data['phases']['available'], data['pages'] = available_phase(args, collections, workdir, root)
        print(table(data))
        write_results(RESULTS, data)
        print(f'figures written to {os.path.relpath(RESULTS)}')


if __name__ == '__main__':
    main()
