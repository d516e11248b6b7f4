"""Benchmark the image_host role on a fleet: simulated hosts converged in parallel (forks = hosts) against one host alone.

Each simulated host has its own small pool (fleetbench0, fleetbench1, ...) and its own host root, with connection local; every
host needs the same 2 images from one image server on 127.0.0.1. It times `ansible-playbook playbooks/converge.yml` on the whole
fleet against the same playbook on one host, interleaved, each from an empty start; then a no-change run of the whole fleet.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

from benchmarks._common import BENCH_DIR, REPO, bench_run, write_results
from benchmarks.facts_speed import timed
from benchmarks.import_speed import run_setup, spread
from benchmarks.many_images import fetch_files, forget_image
from tests.lib.imagebuilder import build_image
from tests.lib.imgserver_ctl import ImageServer, publish
from tests.lib.zfspool import FilePool

POOL_PREFIX = 'fleetbench'
POOL_SIZE = '256M'
PLAYBOOK = os.path.join(REPO, 'playbooks', 'converge.yml')
RESULTS = os.path.join(REPO, 'benchmarks', 'results', 'fleet_speed.json')
CALLBACKS = os.path.join(REPO, 'tests', 'lib', 'callback')
IMAGE_TASK = 'smartos.images.image_host : Make the images'
MB = 1 << 20
GOAL_SHARE = 0.5           # the goal: the fleet/one ratio well under the number of hosts, i.e. below this share of it
IMAGE_MB = {'random_mb': 8, 'text_mb': 16}    # each of the two images: 24 MB uncompressed, about 8.5 MB gzip
SETTLE = 0.5               # pause after a clean-up so zfs-fuse's deferred work is not billed to the next run
MAX_HOSTS = 32
LABELS = {'fleet': 'fleet: all hosts, forks = hosts', 'one': 'one host alone', 'nochange': 'fleet, no change (all present)'}
# CPU seconds of a run: ansible-playbook and its children, then the daemons' during it
CPU_FIGURES = ('cpu_seconds', 'zfs_fuse_cpu_seconds', 'server_cpu_seconds')
# Nothing here may go through a proxy: the server is on 127.0.0.1.
NO_PROXY = {'no_proxy': '127.0.0.1,localhost', 'NO_PROXY': '127.0.0.1,localhost'}


def parse_args(argv=None, doc=__doc__):
    """Command-line options (the fleet's, which mirror_speed.py shares; doc: the benchmark's docstring)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=3, help='timed rounds of each run (interleaved); default 3')
    parser.add_argument('--hosts', type=int, default=10, help=f'simulated hosts in the fleet (and forks); default 10, at most {MAX_HOSTS}')
    args = parser.parse_args(argv)
    if args.rounds < 1 or not 1 <= args.hosts <= MAX_HOSTS:
        parser.error(f'--rounds must be at least 1 and --hosts between 1 and {MAX_HOSTS}')
    return args


def process_cpu(pid):
    """User+system CPU seconds a running process has used so far (from /proc), or None when it cannot be read."""
    if not pid:
        return None
    try:
        with open(f'/proc/{pid}/stat', encoding='utf-8') as f:
            fields = f.read().rsplit(')', 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def zfs_fuse_pid():
    """The PID of the running zfs-fuse daemon (read only, to count its CPU seconds), or None."""
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/comm', encoding='utf-8') as f:
                    if f.read().strip() == 'zfs-fuse':
                        return int(entry)
            except OSError:
                continue
    return None


class Fleet:
    """The simulated hosts, their pools and roots, the inventory, and the runs of converge.yml."""

    playbook = PLAYBOOK
    pool_prefix = POOL_PREFIX

    def __init__(self, count, workdir, collections):
        self.workdir = workdir
        self.collections = collections
        self.hosts = {}
        for number in range(count):
            root = os.path.join(workdir, f'root{number}')
            os.makedirs(root, exist_ok=True)
            self.hosts[f'sim{number:02d}'] = {
                'pool': FilePool(f'{self.pool_prefix}{number}', os.path.join(BENCH_DIR, f'{self.pool_prefix}{number}.img'),
                                 size=POOL_SIZE),
                'root': root}
        self.first = next(iter(self.hosts))
        self.server = self.uuids = self.sizes = self.env = None
        self.inventory = os.path.join(workdir, 'inventory.json')
        self.record = os.path.join(workdir, 'record.jsonl')

    def serve(self, server, images):
        """Write the inventory: every host gets the server as its only source and both images."""
        self.server = server
        self.uuids = sorted(m['uuid'] for m in images)
        self.sizes = {m['uuid']: m['files'][0]['size'] for m in images}
        hostvars = {name: {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                           'image_host_pool': h['pool'].name, 'image_host_host_root': h['root'],
                           'image_host_sources': [{'url': server.url}], 'image_host_sources_exclusive': True,
                           'image_host_images': [{'uuid': u} for u in self.uuids]}
                    for name, h in self.hosts.items()}
        with open(self.inventory, 'w', encoding='utf-8') as f:
            json.dump({'all': {'children': {'fleet': {'hosts': hostvars}}}}, f)  # JSON is YAML
        self.env = dict(os.environ, **NO_PROXY, ANSIBLE_COLLECTIONS_PATH=self.collections, ANSIBLE_LOCALHOST_WARNING='False',
                        ANSIBLE_INVENTORY_UNPARSED_WARNING='False', ANSIBLE_FORCE_COLOR='0', ANSIBLE_NOCOLOR='1',
                        ANSIBLE_RETRY_FILES_ENABLED='0', ANSIBLE_DEPRECATION_WARNINGS='0', ANSIBLE_CALLBACK_PLUGINS=CALLBACKS,
                        ANSIBLE_CALLBACKS_ENABLED='record', SMARTOS_IMAGES_RECORD=self.record)

    def create_pools(self):
        """A fresh pool per host."""
        for h in self.hosts.values():
            h['pool'].create(fresh=True)

    def destroy_pools(self):
        """Destroy every pool this fleet made; report, not raise, what cannot be destroyed."""
        for h in self.hosts.values():
            try:
                h['pool'].destroy()
            except RuntimeError as e:
                print(f'warning: {e}', file=sys.stderr)

    def _run(self, names, pattern):
        """One converge.yml run on the hosts matched by pattern, forks = len(names); timing, CPU and what it did."""
        if os.path.exists(self.record):
            os.unlink(self.record)
        self.server.clear_requests()
        argv = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', self.inventory, '-f', str(len(names)),
                '-e', json.dumps({'fleet_hosts': pattern}), self.playbook]
        daemons = {'zfs_fuse': zfs_fuse_pid(), 'server': self.server.pid}
        before = {k: process_cpu(pid) for k, pid in daemons.items()}
        r = timed(argv, self.env)
        after = {k: process_cpu(pid) for k, pid in daemons.items()}
        r.update({f'{k}_cpu_seconds': None if before[k] is None or after[k] is None else after[k] - before[k] for k in daemons})
        records = []
        if os.path.exists(self.record):
            with open(self.record, encoding='utf-8') as f:
                records = [json.loads(line) for line in f]
        failed = [x for x in records if x['status'] in ('failed', 'unreachable')]
        if r['rc'] != 0 or failed:
            raise RuntimeError(f"converge.yml on {pattern} failed (rc {r['rc']}): {json.dumps(failed)[-2000:]} "
                               f"{r['stdout'][-2000:]} {r['stderr']}")
        results = {x['host']: x['result'] for x in records if x['task'].startswith(IMAGE_TASK)}
        if sorted(results) != sorted(names):
            raise RuntimeError(f'the image task ran on {sorted(results)}, not on {sorted(names)}')
        files = [q['path'].split('/')[2] for q in self.server.requests() if q['path'].endswith('/file')]
        r.update(hosts=len(names), results=results, file_requests=len(files), server_bytes=sum(self.sizes.get(u, 0) for u in files),
                 changed=any(x['result'].get('changed') for x in records))
        return r

    def converge(self, names, pattern):
        """A run from an empty start: every host must have imported both images, each file fetched once per host."""
        r = self._run(names, pattern)
        for name, result in r.pop('results').items():
            if not result.get('changed') or sorted(result.get('imported') or []) != self.uuids:
                raise RuntimeError(f"{name} did not import both images: {json.dumps(result)[-1500:]}")
        if r['file_requests'] != self.expected_file_requests(names):
            raise RuntimeError(f"{r['file_requests']} image file requests, not {self.expected_file_requests(names)}")
        self.check_pools(names)
        return r

    def expected_file_requests(self, names):
        """The image server sees each file requested once per host."""
        return len(names) * len(self.uuids)

    def fleet(self):
        """Converge the whole fleet."""
        return self.converge(list(self.hosts), 'fleet')

    def one(self):
        """Converge the first host alone (the same playbook, fleet_hosts naming it)."""
        return self.converge([self.first], self.first)

    def nochange(self):
        """Converge the whole fleet with everything in place: changed false everywhere, no image file fetched."""
        r = self._run(list(self.hosts), 'fleet')
        r.pop('results')
        if r['changed'] or r['file_requests']:
            raise RuntimeError(f"the no-change run changed something or fetched {r['file_requests']} image file(s): {r['stdout'][-2000:]}")
        self.check_pools(list(self.hosts))
        return r

    def check_pools(self, names):
        """Each named host's pool really holds both images, each with its @final, and no -partial dataset."""
        for name in names:
            pool = self.hosts[name]['pool'].name
            listing = subprocess.run(['zfs', 'list', '-H', '-o', 'name', '-t', 'filesystem,snapshot', '-r', pool],
                                     capture_output=True, text=True, check=True).stdout.split()
            for uuid in self.uuids:
                if f'{pool}/{uuid}' not in listing or f'{pool}/{uuid}@final' not in listing:
                    raise RuntimeError(f'{name}: {pool}/{uuid}@final is not on the pool: {listing}')
            if any(n.endswith('-partial') for n in listing):
                raise RuntimeError(f'{name}: a -partial dataset is left on {pool}')

    def reset(self, names):
        """Destroy the imported datasets and their cache files: the next run imports again."""
        for name in names:
            h = self.hosts[name]
            for uuid in self.uuids:
                forget_image(h['pool'].name, h['root'], uuid)
        time.sleep(SETTLE)

    def warm_up(self):
        """Fetch each image file once (the server hashes a file on its first full answer; the page cache fills)."""
        fetch_files(self.server, self.uuids)


@contextlib.contextmanager
def upstream(fleet, workdir):
    """The fleet's pools made, the two images built and published under workdir, and the image server on 127.0.0.1
    that serves them: (manifests, server). The pools are destroyed on the way out."""
    served = os.path.join(workdir, 'served')
    try:
        fleet.create_pools()
        images = build_images(fleet.hosts[fleet.first]['pool'].name, os.path.join(workdir, 'built'), served)
        with ImageServer(served) as server:
            yield images, server
    finally:
        fleet.destroy_pools()


def build_images(pool, outdir, served):
    """Build the two images on pool and publish them; their manifests."""
    started = time.monotonic()
    manifests = []
    for number in (1, 2):
        manifest, path = build_image(pool, outdir, name=f'fleet-{number}', version='1.0.0', compression='gzip', **IMAGE_MB)
        publish(served, manifest, path)
        manifests.append(manifest)
    print(f'built 2 images of {sum(IMAGE_MB.values())} MB in {time.monotonic() - started:.1f} s', flush=True)
    return manifests


def measure(fleet, rounds):
    """One untimed warm-up, the interleaved rounds (each from an empty start), then the no-change rounds; the runs by kind."""
    everyone = list(fleet.hosts)
    resets = {'fleet': everyone, 'one': [fleet.first]}
    print('warm-up: the whole fleet, untimed ...', flush=True)
    fleet.warm_up()
    fleet.fleet()
    fleet.reset(everyone)
    runs = {'fleet': [], 'one': [], 'nochange': []}
    for number in range(1, rounds + 1):
        for kind in ('one', 'fleet'):
            r = getattr(fleet, kind)()
            if not (kind == 'fleet' and number == rounds):  # the last fleet run leaves the images for the no-change runs
                fleet.reset(resets[kind])
            runs[kind].append({k: v for k, v in r.items() if k not in ('stdout', 'stderr')})
            print(f'round {number}/{rounds} {LABELS[kind]:<34} {r["seconds"]:7.2f} s  CPU {r["cpu_seconds"]:6.2f} s', flush=True)
    for number in range(1, rounds + 1):
        r = fleet.nochange()
        runs['nochange'].append({k: v for k, v in r.items() if k not in ('stdout', 'stderr')})
        print(f'round {number}/{rounds} {LABELS["nochange"]:<34} {r["seconds"]:7.2f} s  CPU {r["cpu_seconds"]:6.2f} s', flush=True)
    return runs


def median_of(runs, key):
    """The median of one figure over some runs, or None when no run has it."""
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def summarise(runs, cpu=CPU_FIGURES):
    """Medians and spreads by kind (cpu: the CPU figures a run has)."""
    return {kind: dict(spread([r['seconds'] for r in kind_runs]), hosts=kind_runs[0]['hosts'],
                       **{key: median_of(kind_runs, key) for key in cpu + ('server_bytes', 'file_requests')})
            for kind, kind_runs in runs.items()}


def total_cpu(row, cpu=CPU_FIGURES):
    """CPU seconds of one run: ansible and its children, plus the zfs-fuse daemon and the image server (and what else
    cpu names)."""
    return sum(row[k] or 0 for k in cpu)


def figures(args, machine, fleet, images, summary, runs, **extra):
    """What a fleet benchmark writes: when, the options, the machine, the images, the summary and every run."""
    data = {'generated_at': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
            'rounds': args.rounds, 'hosts': args.hosts, 'forks': args.hosts, 'machine': machine,
            'images': {'uuids': fleet.uuids, 'gzip_mb': sum(m['files'][0]['size'] for m in images) / MB},
            'summary': summary, 'runs': runs}
    data.update(extra)
    return data


def report(data, table_of, results):
    """Print the table of the figures and write them to results."""
    print(table_of(data))
    write_results(results, data)
    print(f'figures written to {os.path.relpath(results)}')


def explanation(summary, nproc):
    """Why the fleet takes what it takes, from the figures: CPU seconds against the cores there are, and Ansible's own share."""
    fleet, one, nochange = summary['fleet'], summary['one'], summary['nochange']
    fleet_cpu, one_cpu = total_cpu(fleet), total_cpu(one)
    floor = fleet_cpu / nproc
    bound = 'CPU-bound' if floor >= 0.75 * fleet['median'] else 'not CPU-bound (waiting on I/O: zfs-fuse, the server)'
    return (f"why: the fleet used {fleet_cpu:.1f} CPU s ({fleet_cpu / max(one_cpu, 1e-9):.1f}x one host's {one_cpu:.1f}: ansible+modules "
            f"{fleet['cpu_seconds']:.1f}, zfs-fuse {fleet['zfs_fuse_cpu_seconds'] or 0:.1f}, server {fleet['server_cpu_seconds'] or 0:.1f}); "
            f"on {nproc} core(s) that needs at least {floor:.1f} s ({floor / one['median']:.1f}x one host's wall time) and the fleet kept "
            f"{fleet_cpu / fleet['median']:.2f} cores busy (one host alone: {one_cpu / one['median']:.2f}): {bound}. Ansible's per-host work "
            f"alone (the no-change run, {total_cpu(nochange):.1f} CPU s) is {nochange['median']:.1f} s of the {fleet['median']:.1f}; the server "
            f"sent {fleet['server_bytes'] / MB:.0f} MB ({fleet['file_requests']:.0f} files) at {fleet['server_bytes'] / MB / fleet['median']:.0f} MB/s")


def table(data):
    """The printed report."""
    machine, summary = data['machine'], data['summary']
    load = ' '.join(f'{x:.2f}' for x in machine['load_avg_at_start'])
    hosts = summary['fleet']['hosts']
    lines = [
        '',
        f"smartos.images fleet benchmark: {data['rounds']} round(s), runs interleaved after one warm-up (MB = 2^20 bytes)",
        f"machine: {machine['nproc']} CPU(s) {machine['cpu']}, {machine['mem_total_mb']} MB RAM, Python {machine['python']}, "
        f"ansible-core {machine['ansible_core']}, zfs-fuse {machine['zfs_fuse']}, Linux {machine['kernel']}, load at start {load}",
        f"{hosts} simulated hosts (connection local, own {POOL_SIZE} pool and host root each), each converging 2 images of "
        f"{sum(IMAGE_MB.values())} MB ({data['images']['gzip_mb']:.1f} MB gzip together) from one imgserver on 127.0.0.1",
        '',
        f"{'ansible-playbook converge.yml':<36} {'hosts':>5} {'median':>7} {'min':>7} {'max':>7} {'CPU s':>7} {'zfs-fuse':>8} "
        f"{'server':>7} {'MB sent':>8}",
    ]
    for kind in ('fleet', 'one', 'nochange'):
        row = summary[kind]
        lines.append(f"{LABELS[kind]:<36} {row['hosts']:5d} {row['median']:7.2f} {row['min']:7.2f} {row['max']:7.2f} "
                     f"{row['cpu_seconds']:7.2f} {row['zfs_fuse_cpu_seconds'] or 0:8.2f} {row['server_cpu_seconds'] or 0:7.2f} "
                     f"{row['server_bytes'] / MB:8.1f}")
    ratio = data['ratio']
    lines += [
        f"ratio fleet/one host  {ratio:5.2f}x for {hosts} hosts   goal well under {hosts}x (< {hosts * GOAL_SHARE:.1f}x)   "
        f"({'met' if ratio < hosts * GOAL_SHARE else 'missed'}: per host {summary['fleet']['median'] / hosts:.2f} s against {summary['one']['median']:.2f} s)",
        explanation(summary, machine['nproc']),
        f"no-change run of the fleet: {summary['nochange']['median']:.2f} s, changed false on every host, no image file fetched "
        f"({summary['nochange']['median'] / summary['fleet']['median']:.2f} of an importing fleet run)",
        "every import run checked: each host imported both images, fetched each file once, and its pool holds <uuid>@final of both",
        '(CPU s: user+sys of ansible-playbook and its children; zfs-fuse and server: the daemons\' CPU seconds during the run, from /proc)',
        '',
    ]
    return '\n'.join(lines)


def main(argv=None):
    """Set up zfs-fuse, the pools and the server, measure, print and save the figures; clean everything up."""
    args, collections, machine = run_setup(parse_args, argv, 'roles', 'image_host', 'tasks', 'main.yml')
    with bench_run('fleet_speed', 'fleet-') as workdir:
        fleet = Fleet(args.hosts, workdir, collections)
        with upstream(fleet, workdir) as (images, server):
            fleet.serve(server, images)
            runs = measure(fleet, args.rounds)
        summary = summarise(runs)
        data = figures(args, machine, fleet, images, summary, runs, goal_ratio_below=args.hosts * GOAL_SHARE,
                       ratio=summary['fleet']['median'] / summary['one']['median'])
        data['images']['mb_each'] = sum(IMAGE_MB.values())
        report(data, table, RESULTS)


if __name__ == '__main__':
    main()
