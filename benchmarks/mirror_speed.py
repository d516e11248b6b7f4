"""Benchmark the fleet-local mirror: simulated hosts converging the same images directly from upstream, against through the mirror.

The fleet of benchmarks/fleet_speed.py (its own pools here, mdocsp0, mdocsp1, ...) needs 2 images from one image server on
127.0.0.1, the upstream. Interleaved round by round, each from an empty fleet, it runs: playbooks/converge.yml with upstream as
every host's only source (direct); playbooks/mirror.yml with the mirror empty (the image_mirror role fills it from upstream, nginx
serves it, then every host imports with the mirror first and upstream second) and with the mirror full; and converge.yml with the
mirror first and upstream second (the hosts alone). It prints what upstream sent (the image files it was asked for, by their
Content-Length), the wall time and the CPU seconds of each.
"""
from __future__ import annotations

import functools
import json
import os
import subprocess
import sys

from benchmarks._common import REPO, bench_run
from benchmarks.facts_speed import timed
from benchmarks.fleet_speed import (
    CPU_FIGURES, MB, POOL_SIZE, Fleet, figures, parse_args as fleet_args, process_cpu, report, summarise, total_cpu, upstream,
)
from benchmarks.import_speed import run_setup
from tests.lib.nginx import NGINX, Nginx, free_port

POOL_PREFIX = 'mdocsp'     # ZFS reserves pool names that begin with "mirror"
MIRROR_PLAYBOOK = os.path.join(REPO, 'playbooks', 'mirror.yml')
RESULTS = os.path.join(REPO, 'benchmarks', 'results', 'mirror_speed.json')
MIRROR_HOST = 'mirror0'
KINDS = ('direct', 'cold', 'warm', 'hosts')
LABELS = {'direct': 'converge.yml, upstream only', 'cold': 'mirror.yml, the mirror empty',
          'warm': 'mirror.yml, the mirror full', 'hosts': 'converge.yml, mirror then upstream'}
# Upstream is asked for each file once per host (direct), once in all (the mirror fills), or never (the mirror is full).
FILES_PER_IMAGE = {'direct': lambda hosts: hosts, 'cold': lambda hosts: 1, 'warm': lambda hosts: 0, 'hosts': lambda hosts: 0}
CPU = CPU_FIGURES + ('nginx_cpu_seconds',)
parse_args = functools.partial(fleet_args, doc=__doc__)   # fleet_speed's options: --rounds, --hosts


def tree_cpu(pid):
    """CPU seconds so far of a process and its live children (nginx's master and workers), or None."""
    total = process_cpu(pid)
    if total is None:
        return None
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat', encoding='utf-8') as f:
                    ppid = int(f.read().rsplit(')', 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                total += process_cpu(int(entry)) or 0
    return total


def nginx_version():
    """What `nginx -v` says (on stderr), e.g. nginx/1.22.1."""
    proc = subprocess.run([NGINX, '-v'], capture_output=True, text=True, timeout=30, check=False)
    return (proc.stderr or proc.stdout).strip().rsplit(' ', 1)[-1] or '?'


class MirrorFleet(Fleet):
    """The fleet of fleet_speed.py with a mirror host: two inventories (direct, through the mirror) over the same pools."""

    pool_prefix = POOL_PREFIX

    def __init__(self, count, workdir, collections):
        super().__init__(count, workdir, collections)
        self.mirror_dir = os.path.join(workdir, 'mirror')
        self.nginx_conf = os.path.join(workdir, 'nginx', 'smartos-image-mirror.conf')
        self.routes = {}
        self.kind = 'direct'
        self.nginx = None

    def serve_both(self, server, images, port):
        """The inventories: fleet_speed's (upstream the only source), the mirror's (mirror.yml, its nginx on
        127.0.0.1:port), and fleet_speed's with the mirror first and upstream second (converge.yml alone)."""
        self.serve(server, images)
        mirror_url = f'http://127.0.0.1:{port}'
        with open(self.inventory, encoding='utf-8') as f:
            inventory = json.load(f)
        for hostvars in inventory['all']['children']['fleet']['hosts'].values():
            hostvars['image_host_sources'] = [{'url': mirror_url}, {'url': server.url}]
        self.routes = {'direct': (self.inventory, self.playbook),
                       'hosts': (self.write_inventory('inventory-hosts.json', inventory), self.playbook)}
        for hostvars in inventory['all']['children']['fleet']['hosts'].values():
            del hostvars['image_host_sources'], hostvars['image_host_sources_exclusive']   # mirror.yml sets both
        inventory['all']['children']['mirror'] = {'hosts': {MIRROR_HOST: {
            'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
            'image_mirror_path': self.mirror_dir, 'image_mirror_images': [{'uuid': u} for u in self.uuids],
            'image_mirror_sources': [server.url], 'image_mirror_install_nginx': False, 'image_mirror_manage_service': False,
            'image_mirror_nginx_conf': self.nginx_conf, 'image_mirror_listen': f'127.0.0.1:{port}'}}}
        inventory['all']['vars'] = {'mirror_url': mirror_url, 'mirror_upstream_sources': [{'url': server.url}]}
        self.routes['cold'] = self.routes['warm'] = (self.write_inventory('inventory-mirror.json', inventory), MIRROR_PLAYBOOK)

    def write_inventory(self, name, inventory):
        """Write an inventory into the work directory; its path."""
        path = os.path.join(self.workdir, name)
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(inventory, f)  # JSON is YAML
        return path

    def fill_mirror(self):
        """Run mirror.yml on the mirror host alone (it writes the nginx server block that serve_mirror starts nginx with)."""
        os.makedirs(os.path.dirname(self.nginx_conf), exist_ok=True)
        argv = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', self.routes['cold'][0],
                '--limit', MIRROR_HOST, MIRROR_PLAYBOOK]
        r = timed(argv, self.env)
        if r['rc'] != 0 or not os.path.isfile(self.nginx_conf):
            raise RuntimeError(f"mirror.yml on the mirror host failed (rc {r['rc']}): {r['stdout'][-3000:]} {r['stderr']}")
        return r

    def empty_mirror(self):
        """Remove what the mirror holds (not its directory, which nginx serves): the next mirror.yml run fills it again."""
        for root, dirs, files in os.walk(self.mirror_dir, topdown=False):
            for name in files:
                os.unlink(os.path.join(root, name))
            for name in dirs:
                os.rmdir(os.path.join(root, name))

    def _run(self, names, pattern):
        """fleet_speed's run on the current route, plus nginx's CPU seconds."""
        self.inventory, self.playbook = self.routes[self.kind]
        pid = self.nginx.proc.pid if self.nginx else None
        before = tree_cpu(pid) if pid else None
        r = super()._run(names, pattern)
        after = tree_cpu(pid) if pid else None
        r['nginx_cpu_seconds'] = None if before is None or after is None else after - before
        return r

    def expected_file_requests(self, names):
        """What upstream is asked for in a run of this kind."""
        return FILES_PER_IMAGE[self.kind](len(names)) * len(self.uuids)

    def run_kind(self, kind):
        """One timed converge of the whole fleet from an empty start, by kind; the images are then removed from every host."""
        self.kind = kind
        if kind == 'cold':
            self.empty_mirror()
        r = self.converge(list(self.hosts), 'fleet')
        self.reset(list(self.hosts))
        return r


def measure(fleet, rounds):
    """One untimed warm-up of each kind, then the interleaved rounds; the runs by kind."""
    print('warm-up: each kind once, untimed ...', flush=True)
    for kind in KINDS:
        fleet.run_kind(kind)
    runs = {kind: [] for kind in KINDS}
    for number in range(1, rounds + 1):
        for kind in KINDS:
            r = fleet.run_kind(kind)
            runs[kind].append({k: v for k, v in r.items() if k not in ('stdout', 'stderr')})
            print(f"round {number}/{rounds} {LABELS[kind]:<38} {r['seconds']:7.2f} s  CPU {r['cpu_seconds']:6.2f} s  "
                  f"upstream {r['server_bytes'] / MB:6.1f} MB", flush=True)
    return runs


def table(data):
    """The printed report."""
    machine, summary = data['machine'], data['summary']
    load = ' '.join(f'{x:.2f}' for x in machine['load_avg_at_start'])
    hosts = summary['direct']['hosts']
    lines = [
        '',
        f"smartos.images mirror benchmark: {data['rounds']} round(s), runs interleaved after one warm-up of each (MB = 2^20 bytes)",
        f"machine: {machine['nproc']} CPU(s) {machine['cpu']}, {machine['mem_total_mb']} MB RAM, Python {machine['python']}, "
        f"ansible-core {machine['ansible_core']}, zfs-fuse {machine['zfs_fuse']}, nginx {data['nginx_version']}, "
        f"Linux {machine['kernel']}, load at start {load}",
        f"{hosts} simulated hosts (connection local, own {POOL_SIZE} pool and host root each), each converging 2 images "
        f"({data['images']['gzip_mb']:.1f} MB gzip together); upstream: one imgserver on 127.0.0.1; the mirror: the image_mirror "
        f"role on a local host, served by nginx on 127.0.0.1",
        '',
        f"{'run (from an empty fleet)':<40} {'median':>7} {'min':>7} {'max':>7} {'CPU s':>7} {'zfs-fuse':>8} {'server':>7} "
        f"{'nginx':>6} {'upstream MB':>11} {'files':>5}",
    ]
    for kind in KINDS:
        row = summary[kind]
        lines.append(f"{LABELS[kind]:<40} {row['median']:7.2f} {row['min']:7.2f} {row['max']:7.2f} {row['cpu_seconds']:7.2f} "
                     f"{row['zfs_fuse_cpu_seconds'] or 0:8.2f} {row['server_cpu_seconds'] or 0:7.2f} {row['nginx_cpu_seconds'] or 0:6.2f} "
                     f"{row['server_bytes'] / MB:11.1f} {row['file_requests']:5.0f}")
    direct, cold, warm, via = (summary[k] for k in KINDS)
    lines += [
        f"upstream bytes: direct {direct['server_bytes'] / MB:.1f} MB ({direct['file_requests']:.0f} files), through the mirror "
        f"{cold['server_bytes'] / MB:.1f} MB ({cold['file_requests']:.0f}; {direct['server_bytes'] / max(cold['server_bytes'], 1):.1f}x "
        f"less: each image crosses once per fleet, not once per host), from a full mirror {warm['server_bytes'] / MB:.1f} MB",
        f"wall time against direct: mirror.yml with the mirror empty {cold['median'] / direct['median']:.2f}x, full "
        f"{warm['median'] / direct['median']:.2f}x; the hosts alone through the mirror {via['median'] / direct['median']:.2f}x. "
        f"The mirror host's play costs about {warm['median'] - via['median']:.1f} s a run (mirror.yml full minus converge.yml "
        f"through the mirror), filling it {cold['median'] - warm['median']:.1f} s more",
        f"CPU seconds in all (ansible and modules, zfs-fuse, upstream, nginx): direct {total_cpu(direct, CPU):.1f}, mirror empty "
        f"{total_cpu(cold, CPU):.1f}, mirror full {total_cpu(warm, CPU):.1f}, hosts alone through the mirror {total_cpu(via, CPU):.1f}",
        "(all on one machine: upstream is as near as the mirror here, so the wall times show what the mirror costs, not the WAN "
        "time it saves: at 100 Mbit/s each MB takes 0.08 s to cross)",
        "every run checked: each host imported both images and its pool holds <uuid>@final of both; upstream saw each file "
        "once per host (direct), once in all (mirror empty) or never (mirror full, hosts alone)",
        "(CPU s: user+sys of ansible-playbook and its children; zfs-fuse, server (upstream) and nginx (master and workers): "
        "the daemons' CPU seconds during the run, from /proc)",
        '',
    ]
    return '\n'.join(lines)


def main(argv=None):
    """Set up zfs-fuse, the pools, upstream and nginx; measure, print and save the figures; stop and remove everything."""
    args, collections, machine = run_setup(parse_args, argv, 'roles', 'image_mirror', 'tasks', 'main.yml')
    with bench_run('mirror_speed', 'mirror-') as workdir:
        os.chmod(workdir, 0o755)   # nginx's workers (www-data when run as root) read the mirror under it
        fleet = MirrorFleet(args.hosts, workdir, collections)
        with upstream(fleet, workdir) as (images, server):
            port = free_port()
            fleet.serve_both(server, images, port)
            fill = fleet.fill_mirror()
            print(f"the mirror host's first run (fills the mirror, writes the server block): {fill['seconds']:.1f} s", flush=True)
            with Nginx(fleet.nginx_conf, port) as nginx:
                fleet.nginx = nginx
                runs = measure(fleet, args.rounds)
        report(figures(args, machine, fleet, images, summarise(runs, CPU), runs, nginx_version=nginx_version()), table, RESULTS)


if __name__ == '__main__':
    main()
