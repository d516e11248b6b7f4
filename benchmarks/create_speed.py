"""Benchmark smartos_image_create against the wiki's recipe, on one real dataset of a pool of its own.

Times (a) the module, (b) `zfs send | gzip > file; sha1sum file; ls -l file`, (c) `zfs send > /dev/null`; prints medians
and the ratio a/b; checks that the module's file decompresses with `gzip -dc` to the same stream and installs.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks._common import REPO, bench_run, collections_dir, write_results
from benchmarks.import_speed import MB, RANDOM_SHARE, machine_info, module_result, spread, timed, verdict
from tests.lib.imagebuilder import fill
from tests.lib.zfspool import retry_busy, run

POOL = 'createbench'
DATASET = POOL + '/source'
SNAPSHOT = DATASET + '@bench'
MODULES = os.path.join('ansible_collections', 'smartos', 'images', 'plugins', 'modules')
RESULTS = os.path.join(REPO, 'benchmarks', 'results', 'create_speed.json')
GOALS = {'a/b': 0.6}
KINDS = ('a', 'b', 'c')
LABELS = {'a': '(a) smartos_image_create module', 'b': '(b) zfs send | gzip; sha1sum; ls -l', 'c': '(c) zfs send > /dev/null'}
SETTLE = 0.5   # a pause after each run so zfs-fuse's deferred work is not billed to the next one


def parse_args(argv=None):
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=3, help='rounds of a, b, c (interleaved); default 3')
    parser.add_argument('--mb', type=int, default=600, help='dataset data in MB (2^20 bytes); default 600 (at least 500 '
                                                            'for the figure the issue asks for)')
    parser.add_argument('--random-share', type=float, default=RANDOM_SHARE,
                        help='share of the data that is random (incompressible); default %.2f' % RANDOM_SHARE)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.mb < 10 or not 0 <= args.random_share <= 1:
        parser.error('--rounds must be at least 1, --mb at least 10 and --random-share between 0 and 1')
    return args


def sha1_of_stream(argv):
    """SHA-1 and length of what a command prints."""
    digest, size = hashlib.sha1(), 0
    with subprocess.Popen(argv, stdout=subprocess.PIPE) as proc:
        for block in iter(lambda: proc.stdout.read(MB), b''):
            digest.update(block)
            size += len(block)
        if proc.wait() != 0:
            raise RuntimeError('%s failed (rc %d)' % (' '.join(argv), proc.returncode))
    return digest.hexdigest(), size


class Bench:
    """The ways to make the image, each run as its own process and measured alike."""

    def __init__(self, collections, workdir):
        self.collections = collections
        self.workdir = workdir
        self.kept = {}   # the last output of a and b, for the checks after the rounds

    def fresh_dir(self, kind):
        old = self.kept.pop(kind, None)
        if old:
            shutil.rmtree(old['dir'], ignore_errors=True)
        return tempfile.mkdtemp(prefix=kind + '-', dir=self.workdir)

    def module(self):
        """(a) python smartos_image_create.py args.json: as Ansible runs a module, without the controller."""
        out = self.fresh_dir('a')
        args_path = os.path.join(out, 'args.json')
        with open(args_path, 'w', encoding='utf-8') as f:
            json.dump({'ANSIBLE_MODULE_ARGS': {'snapshot': SNAPSHOT, 'output_dir': out, 'name': 'bench',
                                               'version': '1.0.0', 'compression': 'gzip'}}, f)
        r = timed([sys.executable, os.path.join(self.collections, MODULES, 'smartos_image_create.py'), args_path],
                  env=dict(os.environ, PYTHONPATH=self.collections), watch_rss=True)
        result = module_result(r['stdout'])
        if r['rc'] != 0 or not result.get('changed') or not result.get('sha1'):
            raise RuntimeError('the module made no image (rc %d): %s %s' % (r['rc'], r['stdout'][-2000:], r['stderr']))
        r['module_seconds'] = result['seconds']
        self.kept['a'] = {'dir': out, 'result': result}
        time.sleep(SETTLE)
        return r

    def recipe(self):
        """(b) the wiki's recipe, then the SHA-1 and size the manifest needs, as the wiki says to get them."""
        out = self.fresh_dir('b')
        path = os.path.join(out, 'image.zfs.gz')
        script = 'zfs send %s | gzip > %s; sha1sum %s; ls -l %s' % ((SNAPSHOT,) + (shlex.quote(path),) * 3)
        r = timed(['bash', '-o', 'pipefail', '-c', script])
        if r['rc'] != 0 or len(r['stdout'].split()) < 2:
            raise RuntimeError('%s failed (rc %d): %s' % (script, r['rc'], r['stderr']))
        self.kept['b'] = {'dir': out, 'path': path, 'sha1': r['stdout'].split()[0]}
        time.sleep(SETTLE)
        return r

    def send_only(self):
        """(c) the floor: zfs send with nothing to compress or write."""
        r = timed(['bash', '-o', 'pipefail', '-c', 'zfs send %s > /dev/null' % SNAPSHOT])
        if r['rc'] != 0:
            raise RuntimeError('zfs send failed: %s' % r['stderr'])
        time.sleep(SETTLE)
        return r

    def check_outputs(self):
        """The module's file is the same stream, gzip -dc reads it, and smartos_image installs it."""
        a, b = self.kept['a'], self.kept['b']
        entry = a['result']['manifest']['files'][0]
        with open(a['result']['file_path'], 'rb') as f:
            if hashlib.sha1(f.read()).hexdigest() != entry['sha1']:
                raise RuntimeError('the manifest sha1 is not the file')
        stream = sha1_of_stream(['zfs', 'send', SNAPSHOT])
        by_module = sha1_of_stream(['gzip', '-dc', a['result']['file_path']])
        by_recipe = sha1_of_stream(['gzip', '-dc', b['path']])
        if not stream == by_module == by_recipe:
            raise RuntimeError('the streams differ: send %s, module file %s, recipe file %s' % (stream, by_module, by_recipe))
        root = tempfile.mkdtemp(prefix='host-', dir=self.workdir)
        args_path = os.path.join(root, 'args.json')
        with open(args_path, 'w', encoding='utf-8') as f:
            json.dump({'ANSIBLE_MODULE_ARGS': {'manifest': a['result']['manifest_path'], 'file': a['result']['file_path'],
                                               'pool': POOL, 'host_root': root}}, f)
        image = '%s/%s' % (POOL, a['result']['uuid'])
        try:
            r = timed([sys.executable, os.path.join(self.collections, MODULES, 'smartos_image.py'), args_path],
                      env=dict(os.environ, PYTHONPATH=self.collections))
            result = module_result(r['stdout'])
            if r['rc'] != 0 or result.get('imported') != [a['result']['uuid']]:
                raise RuntimeError('smartos_image did not install the file: %s %s' % (r['stdout'][-2000:], r['stderr']))
            received_guid = run('zfs', 'get', '-Hp', '-o', 'value', 'guid', image + '@final').strip()
            if received_guid != entry['dataset_guid']:
                raise RuntimeError('installed @final has guid %s, the manifest says %s' % (received_guid, entry['dataset_guid']))
        finally:
            if run('zfs', 'list', '-H', '-o', 'name', image, check=False).strip():
                retry_busy('zfs', 'destroy', '-r', image)
        return {'stream_sha1': stream[0], 'stream_bytes': stream[1], 'module_gzip_bytes': entry['size'],
                'recipe_gzip_bytes': os.path.getsize(b['path']), 'gzip_dc_ok': True, 'installed_ok': True,
                'install_seconds': r['seconds']}


def prepare(mb, random_share):
    """A dataset of mb MB (by default a third random, the rest text: a 2-3x gzip ratio, like zone images) and its snapshot."""
    random_mb = round(mb * random_share)
    print('filling %s with %d MB (%d MB random, %d MB text) ...' % (DATASET, mb, random_mb, mb - random_mb), flush=True)
    started = time.monotonic()
    run('zfs', 'create', DATASET)
    fill('/' + DATASET, {'etc/motd': 'create benchmark\n'}, random_mb=random_mb, text_mb=mb - random_mb)
    run('zfs', 'snapshot', SNAPSHOT)
    print('filled in %.1f s' % (time.monotonic() - started), flush=True)


def measure(bench, rounds):
    """One untimed warm-up send, then the interleaved rounds."""
    bench.send_only()
    runs = {kind: [] for kind in KINDS}
    do = {'a': bench.module, 'b': bench.recipe, 'c': bench.send_only}
    for number in range(1, rounds + 1):
        for kind in KINDS:
            r = do[kind]()
            runs[kind].append(r)
            rss = '  peak RSS %.1f MB' % r['peak_rss_mb'] if kind == 'a' and r.get('peak_rss_mb') else ''
            print('round %d/%d %-38s %7.2f s%s' % (number, rounds, LABELS[kind], r['seconds'], rss), flush=True)
    return runs


def summarise(runs, checks, machine, args):
    """Every figure, as one JSON-ready dict."""
    stream_mb = checks['stream_bytes'] / MB
    summary = {}
    for kind in KINDS:
        seconds = [r['seconds'] for r in runs[kind]]
        summary[kind] = dict(spread(seconds), cpu_seconds_median=statistics.median(r['cpu_seconds'] for r in runs[kind]),
                             stream_mb_per_s=stream_mb / statistics.median(seconds))
    return {
        'generated_at': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'rounds': args.rounds, 'data_mb': args.mb, 'random_share': args.random_share, 'checks': checks, 'machine': machine,
        'goals': GOALS, 'summary': summary, 'ratios': {'a/b': summary['a']['median'] / summary['b']['median']},
        'module_peak_rss_mb': max(r['peak_rss_mb'] or 0 for r in runs['a']),
        'module_own_seconds': spread([r['module_seconds'] for r in runs['a']]),
        'runs': {k: [{x: v for x, v in r.items() if x not in ('stdout', 'stderr')} for r in runs[k]] for k in KINDS},
    }


def table(data):
    """The printed report."""
    c, m, s = data['checks'], data['machine'], data['summary']
    lines = [
        '',
        'smartos.images create benchmark: %d round(s), runs interleaved a, b, c (MB = 2^20 bytes)' % data['rounds'],
        'dataset %s: %d MB of files (%d%% random), send stream %.1f MB; gzip file %.1f MB (module, %d workers) / '
        '%.1f MB (gzip -6)' % (DATASET, data['data_mb'], round(100 * data['random_share']), c['stream_bytes'] / MB,
                               c['module_gzip_bytes'] / MB, m['nproc'], c['recipe_gzip_bytes'] / MB),
        'machine: %d CPU(s) %s, %d MB RAM, Python %s, ansible-core %s, zfs-fuse %s, load at start %s'
        % (m['nproc'], m['cpu'], m['mem_total_mb'], m['python'], m['ansible_core'], m['zfs_fuse'],
           ' '.join('%.2f' % x for x in m['load_avg_at_start'])),
        '',
        '%-38s %8s %8s %8s %11s %7s' % ('seconds', 'median', 'min', 'max', 'stream MB/s', 'CPU s'),
    ]
    for kind in KINDS:
        k = s[kind]
        lines.append('%-38s %8.2f %8.2f %8.2f %11.1f %7.2f' % (LABELS[kind], k['median'], k['min'], k['max'],
                                                               k['stream_mb_per_s'], k['cpu_seconds_median']))
    ratio = data['ratios']['a/b']
    lines += [
        '(CPU s: median user+sys of the process and its children; the zfs-fuse daemon, which does the send, is not counted)',
        '',
        'ratio a/b (module / wiki recipe)       %6.2f     goal <= %.1f    %s' % (ratio, GOALS['a/b'], verdict(ratio, GOALS['a/b'])),
        "module's own `seconds` (send+compress+write): median %.2f  min %.2f  max %.2f"
        % (data['module_own_seconds']['median'], data['module_own_seconds']['min'], data['module_own_seconds']['max']),
        'module peak RSS (VmHWM, polled)        %6.1f MB' % data['module_peak_rss_mb'],
        'checks: gzip -dc of the module file == zfs send stream == gzip -dc of the recipe file; installed with '
        'smartos_image (manifest/file), @final guid == files[0].dataset_guid: ok',
        '',
    ]
    return '\n'.join(lines)


def main(argv=None):
    """Set up zfs-fuse and the pool, measure, check, print and save the figures; clean everything up."""
    args = parse_args(argv)
    collections = collections_dir(os.path.join('plugins', 'modules', 'smartos_image_create.py'))
    if not os.path.isfile(os.path.join(collections, MODULES, 'smartos_image_create.py')):
        raise SystemExit('smartos_image_create.py is not in %s: run `make collection` first' % collections)
    machine = machine_info()   # before anything here loads the machine
    with bench_run('create_speed', 'create-', pool=POOL, size='%dM' % max(2048, 2 * args.mb + 1024)) as workdir:
        prepare(args.mb, args.random_share)
        bench = Bench(collections, workdir)
        runs = measure(bench, args.rounds)
        checks = bench.check_outputs()
        data = summarise(runs, checks, machine, args)
        print(table(data))
        write_results(RESULTS, data)
        print('figures written to %s' % os.path.relpath(RESULTS))


if __name__ == '__main__':
    main()
