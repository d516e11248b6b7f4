"""Benchmark the smartos_image import against shell pipelines, on one real image served on 127.0.0.1.

Times (a) the module, (b) `curl | gzip -dc | zfs receive`, (c) raw `zfs receive`; prints medians, ratios and peak RSS.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks._common import BENCH_DIR, REPO, bench_run, collections_dir, write_results
from tests.lib.imagebuilder import build_image
from tests.lib.imgserver_ctl import ImageServer, publish

POOL = 'benchpool'
MODULE = os.path.join('ansible_collections', 'smartos', 'images', 'plugins', 'modules', 'smartos_image.py')
RESULTS = os.path.join(REPO, 'benchmarks', 'results', 'import_speed.json')
MB = 1 << 20
# About a third of the data random, the rest text: a 2-3x gzip ratio, like real SmartOS zone images.
RANDOM_SHARE = 0.35
GOALS = {'a/b': 1.0, 'a/c': 1.3, 'peak_rss_mb': 100.0}
RSS_POLL = 0.02
RUN_TIMEOUT = 900          # seconds any one timed run may take before it is killed
SETTLE = 0.5               # pause after each clean-up so zfs-fuse's deferred work is not billed to the next run
KINDS = ('a', 'b', 'c')
LABELS = {'a': '(a) smartos_image module', 'b': '(b) curl | gzip -dc | zfs receive', 'c': '(c) zfs receive < stream'}
# Nothing here may go through a proxy: the server is on 127.0.0.1.
NO_PROXY = {'no_proxy': '127.0.0.1,localhost', 'NO_PROXY': '127.0.0.1,localhost'}


def parse_args(argv=None):
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=5, help='rounds of a, b, c (interleaved); default 5')
    parser.add_argument('--mb', type=int, default=600, help='image data in MB (2^20 bytes) before compression; default 600')
    parser.add_argument('--keep', action='store_true', help=f'reuse, or build and keep, the image cached under {BENCH_DIR} keyed by --mb')
    parser.add_argument('--no-ansible', action='store_true', help='skip the one reference run through the `ansible` command')
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.mb < 10:
        parser.error('--rounds must be at least 1 and --mb at least 10')
    return args


def command_output(argv):
    """First line of a command's output, or '?' when it cannot run."""
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return '?'
    text = (r.stdout or r.stderr).strip()
    return text.splitlines()[0] if text else '?'


def run_setup(parse_args, argv, *needed):
    """A benchmark's arguments, the collections directory that holds `needed` (a path in the collection) and what
    the figures are measured on, taken before anything here loads the machine."""
    args = parse_args(argv)
    collections = collections_dir(os.path.join(*needed))
    return args, collections, machine_info()


def machine_info():
    """What the figures were measured on."""
    cpu = '?'
    with open('/proc/cpuinfo', encoding='utf-8') as f:
        for line in f:
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    try:
        import ansible.release  # pylint: disable=import-outside-toplevel
        ansible_core = ansible.release.__version__
    except ImportError:
        ansible_core = '?'
    return {
        'nproc': len(os.sched_getaffinity(0)), 'cpu': cpu, 'python': platform.python_version(),
        'python_executable': sys.executable, 'ansible_core': ansible_core,
        'zfs_fuse': command_output(['dpkg-query', '-W', '-f', '${Version}', 'zfs-fuse']),
        'kernel': platform.release(), 'mem_total_mb': os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') // MB,
        'load_avg_at_start': [round(x, 2) for x in os.getloadavg()],
    }


def prepare_image(pool, mb, image_dir):
    """The image's manifest, gzip file and uncompressed send stream; reused when image_dir already has them."""
    manifest_path = os.path.join(image_dir, 'manifest.json')
    raw_path = os.path.join(image_dir, 'stream.zfs')
    if os.path.exists(manifest_path) and os.path.exists(raw_path):
        with open(manifest_path, encoding='utf-8') as f:
            cached = json.load(f)['manifest']
        gz_path = os.path.join(image_dir, cached['uuid'] + '.zfs.gz')
        if os.path.exists(gz_path) and os.path.getsize(gz_path) == cached['files'][0]['size']:
            print(f'reusing the image cached in {image_dir}', flush=True)
            return cached, gz_path, raw_path
    random_mb = round(mb * RANDOM_SHARE)
    print(f'building a {mb} MB image ({random_mb} MB random, {mb - random_mb} MB text) in pool {pool} ...', flush=True)
    started = time.monotonic()
    os.makedirs(image_dir, exist_ok=True)
    manifest, gz_path = build_image(pool, image_dir, name=f'bench-{mb}mb', version='1.0.0', compression='gzip',
                                    random_mb=random_mb, text_mb=mb - random_mb)
    with open(gz_path, 'rb') as src, open(raw_path + '.tmp', 'wb') as dst:
        subprocess.run(['gzip', '-dc'], stdin=src, stdout=dst, check=True)
    os.replace(raw_path + '.tmp', raw_path)
    # The manifest is written last: its presence marks a complete cache entry.
    with open(manifest_path + '.tmp', 'w', encoding='utf-8') as f:
        json.dump({'manifest': manifest}, f, indent=1)
    os.replace(manifest_path + '.tmp', manifest_path)
    print(f'built in {time.monotonic() - started:.1f} s', flush=True)
    return manifest, gz_path, raw_path


def read_hwm_kb(pid):
    """VmHWM (peak resident set) of a process in kB, or None once it has gone."""
    try:
        with open(f'/proc/{pid}/status', encoding='ascii') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def kill_group(proc):
    """Kill a timed process and everything it started (its own session), then reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(proc.pid, 0)
    except ChildProcessError:
        pass
    proc.returncode = -signal.SIGKILL


def timed(argv, env=None, stdin_path=None, watch_rss=False):
    """Run argv to the end; return wall seconds, rc, output, CPU seconds (with its children) and peak RSS in MB."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, open(stdin_path or os.devnull, 'rb') as stdin:
        hwm_kb = None
        started = time.monotonic()
        # Its own session, so a timeout or Ctrl-C here kills the whole pipeline by its process group.
        proc = subprocess.Popen(argv, stdin=stdin, stdout=out, stderr=err, env=env,  # pylint: disable=consider-using-with
                                start_new_session=True)
        try:
            deadline = started + RUN_TIMEOUT
            while True:
                if watch_rss:
                    hwm_kb = read_hwm_kb(proc.pid) or hwm_kb  # a zombie has no VmHWM: keep the last value seen
                # wait4 rather than Popen.poll: it also gives the process's CPU time and ru_maxrss.
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f'{" ".join(argv)} ran longer than {RUN_TIMEOUT} s')
                time.sleep(RSS_POLL)
            wall = time.monotonic() - started
            proc.returncode = os.waitstatus_to_exitcode(status)
        except BaseException:
            kill_group(proc)
            raise
        out.seek(0)
        err.seek(0)
        return {'seconds': wall, 'rc': proc.returncode, 'cpu_seconds': usage.ru_utime + usage.ru_stime,
                'peak_rss_mb': hwm_kb / 1024 if hwm_kb else None, 'ru_maxrss_mb': usage.ru_maxrss / 1024,
                'stdout': out.read().decode('utf-8', 'replace'), 'stderr': err.read().decode('utf-8', 'replace').strip()[-2000:]}


def destroy(dataset, attempts=40, settle=SETTLE):
    """Destroy a received dataset if it is there, then pause `settle` seconds; zfs-fuse may call it busy for a moment."""
    for dummy in range(attempts):
        r = subprocess.run(['zfs', 'destroy', '-r', dataset], capture_output=True, text=True, check=False)
        # 'does not exist' also when a receive killed a moment ago has just removed its own dataset
        if r.returncode == 0 or 'does not exist' in r.stderr:
            break
        if 'busy' not in r.stderr:
            raise RuntimeError(f'zfs destroy -r {dataset} failed: {r.stderr.strip()}')
        time.sleep(0.25)
    else:
        raise RuntimeError(f'zfs destroy -r {dataset}: still busy after {attempts} attempts')
    time.sleep(settle)


def module_result(text):
    """The JSON result a module printed on stdout, or {}."""
    start = text.find('{')
    try:
        return json.loads(text[start:]) if start >= 0 else {}
    except ValueError:
        return {}


class Bench:
    """The three ways to import the image, each run as its own process and measured alike."""

    def __init__(self, collections, workdir, manifest, url, raw_path):
        self.collections = collections
        self.workdir = workdir
        self.uuid = manifest['uuid']
        self.size = manifest['files'][0]['size']
        self.url = url
        self.raw_path = raw_path
        self.env = dict(os.environ, **NO_PROXY)

    @property
    def file_url(self):
        """The image file's IMGAPI URL, as the module fetches it."""
        return f'{self.url}/images/{self.uuid}/file'

    def module(self):
        """(a) python smartos_image.py args.json: as Ansible runs a module, without the controller."""
        root = tempfile.mkdtemp(prefix='host-', dir=self.workdir)  # a fresh host root: no cached manifest carries over
        args_path = os.path.join(root, 'args.json')
        with open(args_path, 'w', encoding='utf-8') as f:
            json.dump({'ANSIBLE_MODULE_ARGS': {'uuid': self.uuid, 'pool': POOL, 'source': [self.url], 'host_root': root}}, f)
        try:
            r = timed([sys.executable, os.path.join(self.collections, MODULE), args_path],
                      env=dict(self.env, PYTHONPATH=self.collections), watch_rss=True)
            result = module_result(r['stdout'])
            if r['rc'] != 0 or not result.get('changed') or result.get('downloaded_bytes') != self.size:
                raise RuntimeError(f"the module did not import the image (rc {r['rc']}): {r['stdout'][-2000:]} {r['stderr']}")
            r['module_seconds'] = result.get('seconds')
        finally:
            destroy(f'{POOL}/{self.uuid}')
            shutil.rmtree(root, ignore_errors=True)
        return r

    def pipeline(self):
        """(b) curl -s URL | gzip -dc | zfs receive -u: the shell way to import."""
        dataset = f'{POOL}/bench-curl'
        script = f'curl -sf {shlex.quote(self.file_url)} | gzip -dc | zfs receive -u {dataset}'
        return self.timed_receive(dataset, script, ['bash', '-o', 'pipefail', '-c', script])

    def raw(self):
        """(c) zfs receive -u < the uncompressed stream: the floor, with no download and no inflate."""
        dataset = f'{POOL}/bench-raw'
        return self.timed_receive(dataset, f'zfs receive < {self.raw_path}', ['zfs', 'receive', '-u', dataset],
                                  stdin_path=self.raw_path)

    def timed_receive(self, dataset, what, argv, **kwargs):
        """One timed command that receives into `dataset`, which is destroyed afterwards; `what` names it in errors."""
        try:
            r = timed(argv, env=self.env, **kwargs)
            if r['rc'] != 0:
                raise RuntimeError(f"{what} failed (rc {r['rc']}): {r['stderr']}")
        finally:
            destroy(dataset)
        return r

    def ansible_reference(self):
        """One full `ansible localhost -m smartos.images.smartos_image` run, for reference only; None without ansible."""
        ansible = os.path.join(os.path.dirname(sys.executable), 'ansible')
        if not os.path.exists(ansible):
            return None
        root = tempfile.mkdtemp(prefix='host-', dir=self.workdir)
        env = dict(self.env, ANSIBLE_COLLECTIONS_PATH=self.collections, ANSIBLE_LOCALHOST_WARNING='False',
                   ANSIBLE_INVENTORY_UNPARSED_WARNING='False', ANSIBLE_FORCE_COLOR='0')
        module_args = f'uuid={self.uuid} pool={POOL} source={self.url} host_root={root}'
        try:
            r = timed([ansible, 'localhost', '-m', 'smartos.images.smartos_image', '-a', module_args], env=env)
            if r['rc'] != 0 or 'CHANGED' not in r['stdout']:
                raise RuntimeError(f"the ansible reference run failed (rc {r['rc']}): {r['stdout'][-2000:]} {r['stderr']}")
        finally:
            destroy(f'{POOL}/{self.uuid}')
            shutil.rmtree(root, ignore_errors=True)
        return r

    def warm_up(self):
        """Read both inputs once: the server hashes a file on its first full answer, and the page cache fills."""
        subprocess.run(['curl', '-sf', '-o', '/dev/null', self.file_url], env=self.env, check=True, timeout=RUN_TIMEOUT)
        with open(self.raw_path, 'rb') as f:
            while f.read(8 * MB):
                pass


def spread(values):
    """Median, min and max of a list of numbers."""
    return {'median': statistics.median(values), 'min': min(values), 'max': max(values)}


def summarise(runs, image, machine, reference, rounds):
    """Every figure, as one JSON-ready dict."""
    gz_mb, raw_mb = image['gzip_bytes'] / MB, image['stream_bytes'] / MB
    summary = {}
    for kind in KINDS:
        seconds = [r['seconds'] for r in runs[kind]]
        median = statistics.median(seconds)
        summary[kind] = dict(spread(seconds), cpu_seconds_median=statistics.median(r['cpu_seconds'] for r in runs[kind]),
                             stream_mb_per_s=raw_mb / median, download_mb_per_s=None if kind == 'c' else gz_mb / median)
    module_seconds = [r['module_seconds'] for r in runs['a'] if r.get('module_seconds') is not None]
    return {
        'generated_at': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'rounds': rounds, 'image': image, 'machine': machine, 'goals': GOALS, 'summary': summary,
        'ratios': {'a/b': summary['a']['median'] / summary['b']['median'], 'a/c': summary['a']['median'] / summary['c']['median']},
        'module_peak_rss_mb': max(r['peak_rss_mb'] or 0 for r in runs['a']),
        'module_ru_maxrss_mb': max(r['ru_maxrss_mb'] for r in runs['a']),
        'module_own_seconds': spread(module_seconds) if module_seconds else None,
        'ansible_reference_seconds': reference['seconds'] if reference else None,
        'runs': {kind: [{k: v for k, v in r.items() if k not in ('stdout', 'stderr')} for r in runs[kind]] for kind in KINDS},
    }


def verdict(value, goal):
    """'met' or 'missed' beside a goal: a figure to read, not an assertion."""
    return 'met' if value <= goal else 'missed'


def table(data):
    """The printed report."""
    image, machine, summary, ratios = data['image'], data['machine'], data['summary'], data['ratios']
    stream_mb, gzip_mb = image['stream_bytes'] / MB, image['gzip_bytes'] / MB
    load = ' '.join(f'{x:.2f}' for x in machine['load_avg_at_start'])
    lines = [
        '',
        f"smartos.images import benchmark: {data['rounds']} round(s), runs interleaved a, b, c (MB = 2^20 bytes)",
        f"image {image['uuid']}: stream {stream_mb:.1f} MB uncompressed, gzip file {gzip_mb:.1f} MB ({stream_mb / gzip_mb:.2f}x), "
        'served by imgserver on 127.0.0.1',
        f"machine: {machine['nproc']} CPU(s) {machine['cpu']}, {machine['mem_total_mb']} MB RAM, Python {machine['python']}, "
        f"ansible-core {machine['ansible_core']}, zfs-fuse {machine['zfs_fuse']}, Linux {machine['kernel']}, load at start {load}",
        '',
        f"{'seconds':<36} {'median':>8} {'min':>8} {'max':>8} {'download MB/s':>13} {'stream MB/s':>11} {'CPU s':>7}",
    ]
    for kind in KINDS:
        s = summary[kind]
        download = '-' if s['download_mb_per_s'] is None else f"{s['download_mb_per_s']:.1f}"
        lines.append(f"{LABELS[kind]:<36} {s['median']:8.2f} {s['min']:8.2f} {s['max']:8.2f} {download:>13} "
                     f"{s['stream_mb_per_s']:11.1f} {s['cpu_seconds_median']:7.2f}")
    rss = data['module_peak_rss_mb']
    lines += [
        '(CPU s: median user+sys of the process and its children; the zfs-fuse daemon and the server are not counted)',
        '',
        f"ratio a/b (module / curl|gzip|zfs)   {ratios['a/b']:6.2f}     goal <= {GOALS['a/b']:.1f}    {verdict(ratios['a/b'], GOALS['a/b'])}",
        f"ratio a/c (module / raw receive)     {ratios['a/c']:6.2f}     goal <= {GOALS['a/c']:.1f}    {verdict(ratios['a/c'], GOALS['a/c'])}",
        f"module peak RSS (VmHWM, polled)      {rss:6.1f} MB  goal <= {GOALS['peak_rss_mb']:.0f} MB "
        f"{verdict(rss, GOALS['peak_rss_mb'])}",
        f"module ru_maxrss (wait4, cross-check) {data['module_ru_maxrss_mb']:5.1f} MB",
    ]
    own = data['module_own_seconds']
    if own:
        lines.append(f"module's own `seconds` (the import step only): median {own['median']:.2f}  min {own['min']:.2f}  max {own['max']:.2f}")
    if data['ansible_reference_seconds'] is not None:
        lines.append(f"reference, not in the ratios: one `ansible localhost -m smartos.images.smartos_image` run "
                     f"{data['ansible_reference_seconds']:.2f} s")
    lines.append('')
    return '\n'.join(lines)


def measure(bench, rounds, skip_ansible):
    """Warm up, time the reference run, then the interleaved rounds; return (runs, reference)."""
    bench.warm_up()
    reference = None
    if not skip_ansible:
        print('reference run through `ansible` ...', flush=True)
        reference = bench.ansible_reference()
    runs = {kind: [] for kind in KINDS}
    do = {'a': bench.module, 'b': bench.pipeline, 'c': bench.raw}
    for number in range(1, rounds + 1):
        for kind in KINDS:
            r = do[kind]()
            runs[kind].append(r)
            rss = f"  peak RSS {r['peak_rss_mb']:.1f} MB" if kind == 'a' else ''
            print(f"round {number}/{rounds} {LABELS[kind]:<36} {r['seconds']:7.2f} s{rss}", flush=True)
    return runs, reference


def serve_and_measure(args, collections, workdir):
    """Build (or reuse) the image, serve it, measure; return the figures."""
    image_dir = os.path.join(BENCH_DIR, f'image-{args.mb}mb') if args.keep else os.path.join(workdir, 'image')
    manifest, gz_path, raw_path = prepare_image(POOL, args.mb, image_dir)
    image = {'uuid': manifest['uuid'], 'gzip_bytes': os.path.getsize(gz_path), 'stream_bytes': os.path.getsize(raw_path),
             'data_mb': args.mb, 'random_share': RANDOM_SHARE}
    print(f"image: stream {image['stream_bytes'] / MB:.1f} MB uncompressed, gzip file {image['gzip_bytes'] / MB:.1f} MB", flush=True)
    images_dir = os.path.join(workdir, 'images')
    publish(images_dir, manifest, gz_path)
    with ImageServer(images_dir) as server:
        runs, reference = measure(Bench(collections, workdir, manifest, server.url, raw_path), args.rounds, args.no_ansible)
    return image, runs, reference


def main(argv=None):
    """Set up zfs-fuse and the pool, measure, print and save the figures; clean everything up."""
    args, collections, machine = run_setup(parse_args, argv, 'plugins', 'modules', 'smartos_image.py')
    with bench_run('import_speed', 'run-', pool=POOL, size=f'{max(4096, 3 * args.mb + 1024)}M') as workdir:
        image, runs, reference = serve_and_measure(args, collections, workdir)
        data = summarise(runs, image, machine, reference, args.rounds)
        print(table(data))
        write_results(RESULTS, data)
        print(f'figures written to {os.path.relpath(RESULTS)}')


if __name__ == '__main__':
    main()
