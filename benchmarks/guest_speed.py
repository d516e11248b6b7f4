"""Runs import_speed and facts_speed inside the kernel-ZFS guest, so that their figures are not zfs-fuse's alone.

Boots the guest that `make guest` built (tests/guest/boot.sh: a fresh overlay over the cached root, a bigger second
disk, stopped by its PID at the end), makes on that disk the pool `benchscratch` mounted at the benchmarks' work
directory (their images, caches and file-backed pools then live on the guest's ZFS), gives the guest a Python
environment with ansible-core (the packages of the venv running this, copied in: the guest has no network), copies in
the built collection, benchmarks/ and tests/lib, and runs each benchmark there with the options given, its output
printed as it comes. Each one's figures are also written to benchmarks/results/guest-<name>.json.

The guest is software-emulated (qemu TCG: the machine's /dev/kvm cannot boot stock kernels), so its absolute figures
are several times the host's: read the ratios, which compare runs on the same emulated CPU.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shlex
import subprocess
import sys
import sysconfig
import tarfile
import time

from benchmarks._common import BENCH_DIR, COLLECTION, REPO, collections_dir, take_lock, write_results
from tests.guest.conftest import BOOT, BOOT_TIMEOUT, Guest

TREE = '/root/smartos-images-bench'             # benchmarks/, tests/lib and build/ in the guest
VENV = TREE + '/venv'                             # the guest's Python environment with ansible-core
SCRATCH = 'benchscratch'                          # the pool on the guest's second disk, mounted at BENCH_DIR
# What ansible-core needs to run, from this venv's site-packages (all built for CPython 3.11, as the guest's is): the
# import names and the distributions' names, as the entries of site-packages start (before a '-' or a '.').
PACKAGES = {'ansible', 'ansible_core', 'jinja2', 'markupsafe', 'yaml', '_yaml', 'pyyaml', 'cryptography', 'cffi',
            '_cffi_backend', 'pycparser', 'packaging', 'resolvelib'}
SCRIPTS = ('ansible', 'ansible-playbook')
BENCHMARKS = {'import_speed': '--rounds 3 --mb 200', 'facts_speed': '--rounds 3 --images 1000 --available 5000'}
RUN_TIMEOUT = 4 * 3600                            # one benchmark in the guest, at most


def parse_args(argv=None):
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in BENCHMARKS.items():
        parser.add_argument('--' + name.replace('_', '-'), default=default, metavar='ARGS',
                            help=f'the options of benchmarks.{name} in the guest (default "{default}"; "skip" skips it)')
    parser.add_argument('--disk', default='16G', help='the size of the guest\'s second disk (default 16G)')
    parser.add_argument('--mem', default='3072', help='the guest\'s memory in MiB (default 3072)')
    parser.add_argument('--guest-run', metavar='DIR',
                        help='the run directory of a guest that already runs (boot.sh start DIR): use it, leave it running')
    return parser.parse_args(argv)


def boot(action, rundir, env=None):
    """boot.sh start|stop RUNDIR; fails the run with boot.sh's output."""
    proc = subprocess.run(['bash', BOOT, action, rundir], capture_output=True, text=True, env=env,
                          timeout=BOOT_TIMEOUT + 120, check=False)
    if proc.returncode != 0:
        raise SystemExit(f'tests/guest/boot.sh {action} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}')


def tar_of(entries):
    """A tar (bytes) of (path on this machine, name in the tar) pairs; directories whole, without __pycache__."""
    buf = io.BytesIO()

    def no_cache(info):
        return None if '__pycache__' in info.name.split('/') else info

    with tarfile.open(fileobj=buf, mode='w') as tar:
        for path, arcname in entries:
            tar.add(path, arcname=arcname, filter=no_cache)
    return buf.getvalue()


def site_packages():
    """The (path, name in the venv's site-packages) of each package ansible-core needs, from this venv."""
    site = sysconfig.get_paths()['purelib']
    chosen = [name for name in sorted(os.listdir(site)) if name.split('-')[0].split('.')[0].lower() in PACKAGES]
    missing = sorted(PACKAGES - {name.split('-')[0].split('.')[0].lower() for name in chosen} - {'_yaml'})
    if missing:
        raise SystemExit(f'{site} lacks {", ".join(missing)}: run this from the venv that has ansible-core')
    return [(os.path.join(site, name), 'site-packages/' + name) for name in chosen]


def prepare(guest, collections, disk_gb):
    """The scratch pool, the venv and the trees in the guest."""
    guest.ssh(f'if zpool list -H {SCRATCH} >/dev/null 2>&1; then zpool destroy -f {SCRATCH}; fi; '
              f'zpool create -f -o ashift=12 -O mountpoint={BENCH_DIR} {SCRATCH} /dev/vdb')
    version = guest.ssh('python3 -c "import sys; print(\'%d.%d\' % sys.version_info[:2])"').strip()
    if version != '%d.%d' % sys.version_info[:2]:
        raise SystemExit(f'the guest has Python {version}, this venv {sys.version_info[0]}.{sys.version_info[1]}: '
                         'the copied packages would not load')
    site = f'{VENV}/lib/python{version}/site-packages'
    guest.ssh(f'rm -rf {TREE} && mkdir -p {TREE} && python3 -m venv --without-pip {VENV}')
    guest.ssh(f'tar -xf - -C {site} --strip-components=1', stdin=tar_of(site_packages()))
    for script in SCRIPTS:
        with open(os.path.join(os.path.dirname(sys.executable), script), encoding='utf-8') as f:
            body = f.read().split('\n', 1)[1]
        guest.ssh(f'cat > {VENV}/bin/{script} && chmod 755 {VENV}/bin/{script}',
                  stdin=(f'#!{VENV}/bin/python\n' + body).encode())
    trees = [(os.path.join(REPO, 'benchmarks'), 'benchmarks'), (os.path.join(REPO, 'tests', 'lib'), 'tests/lib'),
             (os.path.join(collections, COLLECTION, 'plugins'), 'build/' + COLLECTION + '/plugins'),
             (os.path.join(collections, COLLECTION, 'meta'), 'build/' + COLLECTION + '/meta'),
             (os.path.join(collections, COLLECTION, 'galaxy.yml'), 'build/' + COLLECTION + '/galaxy.yml')]
    guest.ssh(f'tar -xf - -C {TREE} && touch {TREE}/tests/__init__.py && rm -rf {TREE}/benchmarks/results',
              stdin=tar_of(trees))
    print(f'guest: Python {version}, ansible-core copied in, pool {SCRATCH} ({disk_gb}) at {BENCH_DIR}', flush=True)


def run_in_guest(guest, name, options):
    """benchmarks.<name> OPTIONS in the guest, its output passed through; its results JSON (a dict)."""
    command = (f'cd {TREE} && ANSIBLE_COLLECTIONS_PATH={TREE}/build ANSIBLE_FORCE_COLOR=0 '
               f'timeout --kill-after=60 {RUN_TIMEOUT} {VENV}/bin/python -m benchmarks.{name} {options}')
    print(f'== in the guest: {name} {options}', flush=True)
    started = time.monotonic()
    proc = subprocess.run(['ssh', '-F', guest.ssh_config, 'guest', command], timeout=RUN_TIMEOUT + 120, check=False)
    print(f'== {name} in the guest ended ({proc.returncode}) after {time.monotonic() - started:.0f} s', flush=True)
    if proc.returncode != 0:
        raise SystemExit(f'benchmarks.{name} failed in the guest ({proc.returncode})')
    return json.loads(guest.ssh(f'cat {TREE}/benchmarks/results/{name}.json'))


def main(argv=None):
    """Boot (or take) the guest, prepare it, run the benchmarks, save their figures, stop the guest."""
    args = parse_args(argv)
    chosen = {name: getattr(args, name) for name in BENCHMARKS if getattr(args, name).strip() != 'skip'}
    collections = collections_dir(os.path.join('plugins', 'modules', 'smartos_image.py'))
    lock = take_lock('guest_speed')
    rundir = args.guest_run or os.path.join('/var/tmp', 'smartos-images-bench-guest-%d' % os.getpid())
    try:
        if not args.guest_run:
            boot('start', rundir, env=dict(os.environ, GUEST_POOL_DISK_SIZE=args.disk, GUEST_MEM=args.mem))
        guest = Guest(rundir)
        prepare(guest, collections, args.disk)
        for name, options in chosen.items():
            data = run_in_guest(guest, name, ' '.join(shlex.quote(o) for o in shlex.split(options)))
            data['guest'] = {'kernel_zfs': guest.ssh('cat /sys/module/zfs/version', check=False).strip(),
                             'accel': 'tcg', 'disk': args.disk, 'mem_mb': int(args.mem)}
            path = os.path.join(REPO, 'benchmarks', 'results', f'guest-{name}.json')
            write_results(path, data)
            print(f'figures written to {os.path.relpath(path)}', flush=True)
    finally:
        if not args.guest_run:
            boot('stop', rundir)
            subprocess.run(['rm', '-rf', rundir], check=False)
        os.close(lock)


if __name__ == '__main__':
    main()
