"""Benchmark smartos_image with many images: 30 declared and all present against ansible.builtin.ping, and one task against five.

(1) times `ansible -m smartos.images.smartos_image` with 30 installed images against `-m ansible.builtin.ping`;
(2) times one ansible-playbook task importing a 3-image chain and 2 independent images against five tasks, one image each.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request

from benchmarks._common import COLLECTION, REPO, bench_run, write_results
from benchmarks.facts_speed import checked_ping, json_after, timed
from benchmarks.import_speed import destroy, run_setup, spread
from tests.lib.imagebuilder import build_chain, build_image
from tests.lib.imgserver_ctl import ImageServer, publish

POOL = 'manybench'
MODULE = os.path.join(COLLECTION, 'plugins', 'modules', 'smartos_image.py')
RESULTS = os.path.join(REPO, 'benchmarks', 'results', 'many_images.json')
CALLBACKS = os.path.join(REPO, 'tests', 'lib', 'callback')
MB = 1 << 20
GOALS = {'present/ping': 1.5, 'one/five': 1.0}
SMALL_MB = {'random_mb': 1, 'text_mb': 1}        # each of the --images small images
INDEPENDENT_MB = {'random_mb': 12, 'text_mb': 20}  # each of the two independent images: 32 MB, about 13 MB gzip
CHAIN = ('chain-base', 'chain-mid', 'chain-top')   # build_chain puts 1 MB of random data in each level
SETTLE = 0.5               # pause after a clean-up so zfs-fuse's deferred work is not billed to the next run
FETCH_TIMEOUT = 120
LABELS = {'present': '(a) ansible -m smartos_image, all present', 'ping': '(b) ansible -m ansible.builtin.ping',
          'module': '(c) the module alone (python ...image.py)', 'one': '(A) one task: images [top, ind1, ind2]', 'five': '(B) five tasks, one uuid each'}
# Nothing here may go through a proxy: the server is on 127.0.0.1.
NO_PROXY = {'no_proxy': '127.0.0.1,localhost', 'NO_PROXY': '127.0.0.1,localhost'}


def parse_args(argv=None):
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=5, help='timed rounds per part (interleaved); default 5')
    parser.add_argument('--images', type=int, default=30, help='small images declared present in part 1; default 30')
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.images < 1:
        parser.error('--rounds and --images must be at least 1')
    return args


def build_all(count, outdir, served):
    """Build and publish the small images, the chain and the two independent images; their manifests by group."""
    started = time.monotonic()
    print(f'building {count} small images on {POOL} ...', flush=True)
    small = []
    for number in range(1, count + 1):
        manifest, path = build_image(POOL, outdir, name=f'many-{number:02d}', version='1.0.0', compression='gzip', **SMALL_MB)
        publish(served, manifest, path)
        small.append(manifest)
        if number % 10 == 0 or number == count:
            print(f'  {number} built ({time.monotonic() - started:.1f} s)', flush=True)
    print('building a 3-image incremental chain and 2 independent images ...', flush=True)
    chain = []
    for manifest, path in build_chain(POOL, outdir, list(CHAIN)):
        publish(served, manifest, path)
        chain.append(manifest)
    independent = []
    for number in (1, 2):
        manifest, path = build_image(POOL, outdir, name=f'independent-{number}', version='1.0.0', compression='gzip',
                                     **INDEPENDENT_MB)
        publish(served, manifest, path)
        independent.append(manifest)
    print(f'built in {time.monotonic() - started:.1f} s', flush=True)
    return {'small': small, 'chain': chain, 'independent': independent}


def file_bytes(manifests):
    """The compressed bytes of the image files of some manifests."""
    return sum(m['files'][0]['size'] for m in manifests)


def base_env(collections):
    """The environment of every ansible run here."""
    return dict(os.environ, **NO_PROXY, ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_LOCALHOST_WARNING='False',
                ANSIBLE_INVENTORY_UNPARSED_WARNING='False', ANSIBLE_FORCE_COLOR='0', ANSIBLE_NOCOLOR='1',
                ANSIBLE_RETRY_FILES_ENABLED='0', ANSIBLE_DEPRECATION_WARNINGS='0')


def ansible_bin(name):
    """An ansible command beside the benchmark's Python."""
    return os.path.join(os.path.dirname(sys.executable), name)


def file_requests(server):
    """Every request the server logged since the last call, and those for image files; the log is emptied."""
    logged = server.requests()
    server.clear_requests()
    return logged, [r for r in logged if r['path'].endswith('/file')]


class PresentBench:
    """Part 1: the images, all installed, declared in one ad-hoc smartos_image run, against an ad-hoc ping."""

    def __init__(self, collections, server, uuids, root):
        self.server = server
        self.uuids = uuids
        self.collections = collections
        self.env = base_env(collections)
        self.args = {'images': [{'uuid': u} for u in uuids], 'pool': POOL, 'host_root': root, 'source': [server.url]}
        self.args_path = os.path.join(os.path.dirname(root), 'present-args.json')
        with open(self.args_path, 'w', encoding='utf-8') as f:
            json.dump({'ANSIBLE_MODULE_ARGS': self.args}, f)

    def _ansible(self, module, args=None):
        argv = [ansible_bin('ansible'), 'localhost', '-c', 'local', '-e', f'ansible_python_interpreter={sys.executable}',
                '-m', module]
        if args is not None:
            argv += ['-a', json.dumps(args)]
        return timed(argv, self.env)

    def first_import(self):
        """Import every image in one run (untimed as a benchmark figure, but reported); check it imported them all."""
        self.server.clear_requests()
        r = self._ansible('smartos.images.smartos_image', self.args)
        result = json_after(r['stdout'], ' => ')
        if r['rc'] != 0 or not result.get('changed') or sorted(result.get('imported') or []) != sorted(self.uuids):
            raise RuntimeError(f"the first import of the {len(self.uuids)} images failed (rc {r['rc']}): "
                               f"{r['stdout'][-2000:]} {r['stderr']}")
        logged, files = file_requests(self.server)
        if len(files) != len(self.uuids):
            raise RuntimeError(f'the first import fetched {len(files)} image files, not {len(self.uuids)}')
        return {'seconds': r['seconds'], 'module_seconds': result.get('seconds'), 'requests': len(logged),
                'downloaded_bytes': result.get('downloaded_bytes')}

    def present(self):
        """(a) the images declared present: changed false, nothing imported, no image file fetched."""
        self.server.clear_requests()
        r = self._ansible('smartos.images.smartos_image', self.args)
        return self._check_present(r, json_after(r['stdout'], ' => '))

    def module(self):
        """(c) python smartos_image.py args.json: the same run as Ansible makes it, without the controller (for reference)."""
        self.server.clear_requests()
        r = timed([sys.executable, os.path.join(self.collections, MODULE), self.args_path], dict(self.env, PYTHONPATH=self.collections))
        return self._check_present(r, json_after(r['stdout'], ''))

    def _check_present(self, r, result):
        """Check an all-present run: changed false for every image, nothing imported, no image file fetched."""
        entries = result.get('results') or []
        if (r['rc'] != 0 or result.get('changed') is not False or result.get('imported') != [] or len(entries) != len(self.uuids)
                or any(e.get('changed') for e in entries)):
            raise RuntimeError(f"the all-present run did not report changed false for every image (rc {r['rc']}): "
                               f"{r['stdout'][-2000:]} {r['stderr']}")
        logged, files = file_requests(self.server)
        if files:
            raise RuntimeError(f"the all-present run fetched {len(files)} image file(s): {[f['path'] for f in files]}")
        r.update(requests=len(logged), file_requests=len(files))
        return r

    def ping(self):
        """(b) ansible localhost -m ansible.builtin.ping."""
        return checked_ping(self._ansible('ansible.builtin.ping'))


class ImportBench:
    """Part 2: import the chain and the two independent images, in one task (A) or in five (B), from an empty start."""

    def __init__(self, collections, server, groups, workdir):
        self.server = server
        self.chain = [m['uuid'] for m in groups['chain']]
        self.independent = [m['uuid'] for m in groups['independent']]
        self.bytes = file_bytes(groups['chain'] + groups['independent'])
        self.root = os.path.join(workdir, 'host-import')
        self.env = dict(base_env(collections), ANSIBLE_CALLBACK_PLUGINS=CALLBACKS, ANSIBLE_CALLBACKS_ENABLED='record')
        common = {'pool': POOL, 'host_root': self.root, 'source': [server.url]}
        one = [{'name': 'the chain top and two independent images',
                'smartos.images.smartos_image': dict(common, images=[{'uuid': u} for u in (self.chain[-1], *self.independent)])}]
        five = [{'name': f'image {u}', 'smartos.images.smartos_image': dict(common, uuid=u)} for u in self.order]
        # per kind: the playbook, and the file the record callback writes each task's result to
        self.files = {kind: (write_playbook(os.path.join(workdir, f'{kind}.yml'), tasks), os.path.join(workdir, f'record-{kind}.jsonl'))
                      for kind, tasks in (('one', one), ('five', five))}

    @property
    def order(self):
        """What both ways import: the chain base to top, then the independent images."""
        return self.chain + self.independent

    def _run(self, kind):
        """Run one playbook from an empty start; its timing and the task results its record callback wrote."""
        playbook, record = self.files[kind]
        if os.path.exists(record):
            os.unlink(record)
        self.server.clear_requests()
        r = timed([ansible_bin('ansible-playbook'), playbook], dict(self.env, SMARTOS_IMAGES_RECORD=record))
        results = []
        if os.path.exists(record):
            with open(record, encoding='utf-8') as f:
                results = [json.loads(line) for line in f]
        if r['rc'] != 0 or any(e['status'] != 'ok' for e in results):
            raise RuntimeError(f"the {kind} playbook failed (rc {r['rc']}): {r['stdout'][-2000:]} {r['stderr']}")
        logged, files = file_requests(self.server)
        if sorted(f['path'].split('/')[2] for f in files) != sorted(self.order):
            raise RuntimeError(f'the {kind} playbook fetched {len(files)} image file(s), not the {len(self.order)} images once each')
        self.check_pool()
        r.update(requests=len(logged), results=[e['result'] for e in results])
        return r

    def one(self):
        """(A) one task: images [chain top, independent 1, independent 2]; the chain's ancestors come along, base first."""
        r = self._run('one')
        result = r.pop('results')[0] if r['results'] else {}
        imported = result.get('imported') or []
        if (not result.get('changed') or len(imported) != len(self.order) or set(imported) != set(self.order)
                or imported[:len(self.chain)] != self.chain or result.get('downloaded_bytes') != self.bytes):
            raise RuntimeError(f"(A) did not import the chain base first and the independent images: {json.dumps(result)[-2000:]}")
        r.update(module_seconds=result.get('seconds'), imported=imported)
        return r

    def five(self):
        """(B) five tasks, base to top then the two independents, each `uuid:` alone."""
        r = self._run('five')
        results = r.pop('results')
        imported = [u for result in results for u in result.get('imported') or []]
        if imported != self.order or not all(result.get('changed') for result in results):
            raise RuntimeError(f'(B) did not import the five images one task each: imported {imported}')
        r.update(module_seconds=sum(result.get('seconds') or 0 for result in results), imported=imported)
        return r

    def check_pool(self):
        """Every image is on the pool with its @final, each chain level a clone of the one below."""
        listing = subprocess.run(['zfs', 'list', '-H', '-o', 'name,origin', '-t', 'filesystem,snapshot', '-r', POOL],
                                 capture_output=True, text=True, check=True).stdout
        origins = dict(line.split('\t') for line in listing.splitlines())
        for number, uuid in enumerate(self.order):
            dataset = f'{POOL}/{uuid}'
            wanted = f'{POOL}/{self.chain[number - 1]}@final' if 0 < number < len(self.chain) else '-'
            if f'{dataset}@final' not in origins or origins.get(dataset) != wanted:
                raise RuntimeError(f'{dataset} is not installed as expected (origin {origins.get(dataset)}, want {wanted})')
        if any(name.endswith('-partial') for name in origins):
            raise RuntimeError('a -partial dataset is left on the pool')

    def reset(self):
        """Destroy the five images, children before origins, and their cache files: the next run imports all five."""
        for uuid in list(reversed(self.chain)) + self.independent:
            forget_image(POOL, self.root, uuid)
        time.sleep(SETTLE)

    def warm_up(self):
        """Fetch each image file once: the server hashes a file on its first full answer, and the page cache fills."""
        fetch_files(self.server, self.order)


def forget_image(pool, root, uuid):
    """Destroy an imported image and its cache file (modern layout under root): the next run imports it again."""
    destroy(f'{pool}/{uuid}', settle=0)
    cache = os.path.join(root, 'var', 'imgadm', 'images', f'{pool}-{uuid}.json')
    if os.path.exists(cache):
        os.unlink(cache)


def fetch_files(server, uuids):
    """Fetch each image file once (the server hashes a file on its first full answer; the page cache fills)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for uuid in uuids:
        with opener.open(f'{server.url}/images/{uuid}/file', timeout=FETCH_TIMEOUT) as response:
            while response.read(MB):
                pass
    server.clear_requests()


def write_playbook(path, tasks):
    """A one-play playbook on localhost, connection local, with the benchmark's Python; its path."""
    play = [{'hosts': 'localhost', 'gather_facts': False, 'connection': 'local',
             'vars': {'ansible_python_interpreter': sys.executable}, 'tasks': tasks}]
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(play, f)  # JSON is YAML
    return path


def measure(do, kinds, rounds, part, after=None):
    """One untimed warm-up of each run, then the interleaved rounds; the runs by kind."""
    for kind in kinds:
        do[kind]()
        if after:
            after()
    runs = {kind: [] for kind in kinds}
    for number in range(1, rounds + 1):
        for kind in kinds:
            r = do[kind]()
            if after:
                after()
            runs[kind].append({k: v for k, v in r.items() if k not in ('stdout', 'stderr')})
            print(f'{part} round {number}/{rounds} {LABELS[kind]:<44} {r["seconds"]:7.2f} s', flush=True)
    return runs


def summarise(runs, kinds):
    """Medians and spreads of the runs of one part."""
    summary = {}
    for kind in kinds:
        cpu = [r['cpu_seconds'] for r in runs[kind] if r.get('cpu_seconds') is not None]
        module = [r['module_seconds'] for r in runs[kind] if r.get('module_seconds') is not None]
        summary[kind] = dict(spread([r['seconds'] for r in runs[kind]]), cpu_seconds_median=statistics.median(cpu) if cpu else None,
                             module_seconds_median=statistics.median(module) if module else None)
    return summary


def verdict(value, goal, strict=False):
    """'met' or 'missed' beside a goal: a figure to read, not an assertion."""
    return 'met' if (value < goal if strict else value <= goal) else 'missed'


def rows(summary, kinds):
    """The table rows of one part."""
    lines = [f"{'seconds':<46} {'median':>7} {'min':>7} {'max':>7} {'CPU s':>7}"]
    for kind in kinds:
        row = summary[kind]
        cpu = '-' if row['cpu_seconds_median'] is None else f"{row['cpu_seconds_median']:.2f}"
        lines.append(f"{LABELS[kind]:<46} {row['median']:7.2f} {row['min']:7.2f} {row['max']:7.2f} {cpu:>7}")
    return lines


def gain_line(one, five):
    """Where A's gain comes from, in one line: its imports overlapping (module seconds) and four fewer module starts."""
    gain = five['median'] - one['median']
    overlap = five['module_seconds_median'] - one['module_seconds_median']
    return (f'where the gain comes from: of the {gain:.2f} s, {overlap:.2f} s is in the imports themselves (in A the independent images '
            f'download alongside the chain) and {gain - overlap:.2f} s is four fewer task starts (module start, AnsiballZ, host read: '
            f'{(gain - overlap) / 4:.2f} s each)')


def table(data):
    """The printed report."""
    machine, images = data['machine'], data['images']
    load = ' '.join(f'{x:.2f}' for x in machine['load_avg_at_start'])
    present, imports = data['present'], data['import']
    first = present['first_import']
    lines = [
        '',
        f"smartos.images many-images benchmark: {data['rounds']} round(s) per part, runs interleaved after one warm-up of each "
        '(MB = 2^20 bytes)',
        f"machine: {machine['nproc']} CPU(s) {machine['cpu']}, {machine['mem_total_mb']} MB RAM, Python {machine['python']}, "
        f"ansible-core {machine['ansible_core']}, zfs-fuse {machine['zfs_fuse']}, Linux {machine['kernel']}, load at start {load}",
        f"images on one imgserver on 127.0.0.1: {images['small']} small ({images['small_gzip_mb']:.1f} MB gzip in all), a 3-image "
        f"chain ({images['chain_gzip_mb']:.1f} MB gzip), 2 independent ({images['independent_mb']} MB each, "
        f"{images['independent_gzip_mb']:.1f} MB gzip in all)",
        '',
        f"(1) {images['small']} images declared present in one task (`images:`), all installed on pool {POOL}",
    ]
    lines += rows(present['summary'], ('present', 'ping', 'module'))
    ratio = present['ratio']
    lines += [
        f"ratio a/b (all present / ping)     {ratio:5.2f}   goal <= {GOALS['present/ping']:.1f}   {verdict(ratio, GOALS['present/ping'])}",
        f"every (a) and (c) run: changed false for all {images['small']}, {present['file_requests']} image file requests, "
        f"{present['requests']} requests of any kind to the server; (c), for reference, is the module's process without Ansible",
        f"for reference, the first import of the {images['small']} in one task: {first['seconds']:.2f} s "
        f"(module's own seconds {first['module_seconds']:.2f})",
        '',
        '(2) import a 3-image chain and 2 independent images into an empty start: one task against five',
    ]
    lines += rows(imports['summary'], ('one', 'five'))
    ratio = imports['ratio']
    one, five = imports['summary']['one'], imports['summary']['five']
    lines += [
        f"ratio A/B (one task / five tasks)  {ratio:5.2f}   goal <  {GOALS['one/five']:.1f}   "
        f"{verdict(ratio, GOALS['one/five'], strict=True)}   (B takes {five['median'] - one['median']:.2f} s longer)",
        f"module's own `seconds` (imports only), median: A {one['module_seconds_median']:.2f}, B {five['module_seconds_median']:.2f} "
        '(the sum of its five tasks)',
        f"every run imported all five ({imports['bytes'] / MB:.1f} MB gzip, each file fetched once); A's `imported` lists the chain base first",
        gain_line(one, five),
        '(CPU s: median user+sys of the process and its children; the zfs-fuse daemon and the server are not counted)',
        '',
    ]
    return '\n'.join(lines)


def present_part(args, collections, server, groups, workdir):
    """Import the small images once, then time them all present against ping."""
    uuids = [m['uuid'] for m in groups['small']]
    bench = PresentBench(collections, server, uuids, os.path.join(workdir, 'host-present'))
    print(f'importing the {len(uuids)} small images in one task ...', flush=True)
    first = bench.first_import()
    print(f"  done in {first['seconds']:.2f} s", flush=True)
    kinds = ('present', 'ping', 'module')
    runs = measure({'present': bench.present, 'ping': bench.ping, 'module': bench.module}, kinds, args.rounds, '(1)')
    summary = summarise(runs, kinds)
    return {'summary': summary, 'ratio': summary['present']['median'] / summary['ping']['median'], 'first_import': first,
            'requests': sum(r['requests'] for r in runs['present'] + runs['module']),
            'file_requests': sum(r['file_requests'] for r in runs['present'] + runs['module']),
            'runs': runs}


def import_part(args, collections, server, groups, workdir):
    """Time one task against five, each from an empty start."""
    bench = ImportBench(collections, server, groups, workdir)
    bench.reset()
    bench.warm_up()
    runs = measure({'one': bench.one, 'five': bench.five}, ('one', 'five'), args.rounds, '(2)', after=bench.reset)
    summary = summarise(runs, ('one', 'five'))
    return {'summary': summary, 'ratio': summary['one']['median'] / summary['five']['median'], 'bytes': bench.bytes,
            'order': bench.order, 'runs': runs}


def main(argv=None):
    """Set up zfs-fuse, the pool and the server, measure, print and save the figures; clean everything up."""
    args, collections, machine = run_setup(parse_args, argv, 'plugins', 'modules', 'smartos_image.py')
    with bench_run('many_images', 'many-', pool=POOL, size='2G') as workdir:
        served = os.path.join(workdir, 'served')
        groups = build_all(args.images, os.path.join(workdir, 'built'), served)
        images = {'small': args.images, 'small_gzip_mb': file_bytes(groups['small']) / MB,
                  'chain_gzip_mb': file_bytes(groups['chain']) / MB,
                  'independent_mb': sum(INDEPENDENT_MB.values()), 'independent_gzip_mb': file_bytes(groups['independent']) / MB,
                  'uuids': {k: [m['uuid'] for m in v] for k, v in groups.items()}}
        with ImageServer(served) as server:
            data = {'generated_at': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
                    'rounds': args.rounds, 'images': images, 'machine': machine, 'goals': GOALS,
                    'present': present_part(args, collections, server, groups, workdir),
                    'import': import_part(args, collections, server, groups, workdir)}
        print(table(data))
        write_results(RESULTS, data)
        print(f'figures written to {os.path.relpath(RESULTS)}')


if __name__ == '__main__':
    main()
