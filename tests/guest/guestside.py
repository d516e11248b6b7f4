"""The guest lane's helper INSIDE the kernel-ZFS guest, run there with the guest's python3.

The lane copies tests/lib and this file to the guest and calls
`python3 guestside.py COMMAND 'JSON ARGUMENTS'`; the answer is one JSON document on stdout.
Images are made here with the test suite's own builders (real `zfs send` on the guest's kernel
ZFS), and served by the suite's image server on the guest's loopback.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid as uuidlib

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

# pylint: disable=wrong-import-position
from tests.lib.imagebuilder import fill, guid, manifest_for, send_to_file  # noqa: E402
from tests.lib.imgserver_ctl import SERVER_SCRIPT, publish  # noqa: E402
from tests.lib.procs import kill_tree  # noqa: E402
from tests.lib.zfspool import retry_busy, run  # noqa: E402

MIB = 1 << 20


def zvol_device(dataset, wait=20.0):
    """/dev/zvol/<dataset> once udev made it (bounded wait)."""
    path = '/dev/zvol/' + dataset
    deadline = time.monotonic() + wait
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise RuntimeError('%s did not appear within %ds' % (path, wait))
        subprocess.run(['udevadm', 'settle', '-t', '5'], check=False)
        time.sleep(0.1)
    return path


def digest(dataset):
    """SHA-256 of a volume's whole content, read through its device node."""
    h = hashlib.sha256()
    with open(zvol_device(dataset), 'rb') as f:
        for block in iter(lambda: f.read(MIB), b''):
            h.update(block)
    return h.hexdigest()


def write_volume(dataset, offset_mb, data_mb, seed):
    """Write data_mb MiB of seeded pseudo-random bytes at offset_mb into the volume."""
    with open(zvol_device(dataset), 'r+b') as f:
        f.seek(offset_mb * MIB)
        for i in range(data_mb):
            f.write(hashlib.sha256(b'%s-%d' % (seed.encode(), i)).digest() * (MIB // 32))
        f.flush()
        os.fsync(f.fileno())


def cmd_zvol_chain(args):
    """An image chain of volumes: the first full, each next one a clone of the one before, sent
    with `zfs send -i <before>@final`, as imgadm create -i makes a KVM image from a VM's disk."""
    pool, outdir, images_dir = args['pool'], args['outdir'], args['images_dir']
    volsize, data_mb = args.get('volsize_mb', 16), args.get('data_mb', 2)
    prefix = '%s/zchain-%s' % (pool, uuidlib.uuid4().hex[:8])
    os.makedirs(outdir, exist_ok=True)
    chain, volumes = [], []
    for level, name in enumerate(args['names'], 1):
        volume = '%s-%d' % (prefix, level)
        if volumes:
            run('zfs', 'clone', volumes[-1] + '@final', volume)
        else:
            run('zfs', 'create', '-V', '%dM' % volsize, volume)
        write_volume(volume, (level - 1) * data_mb, data_mb, volume)
        run('zfs', 'snapshot', volume + '@final')
        image_uuid = str(uuidlib.uuid4())
        path = os.path.join(outdir, image_uuid + '.zvol.gz')
        send_to_file(volume + '@final', path, 'gzip', incremental_from=volumes[-1] + '@final' if volumes else None)
        extra = {'origin': chain[-1]['manifest']['uuid']} if chain else {}
        manifest = manifest_for(image_uuid, name, '1.0.%d' % level, path, 'gzip', type='zvol', os='linux',
                                image_size=volsize, nic_driver='virtio', disk_driver='virtio', cpu_type='host',
                                **extra)
        manifest['files'][0]['dataset_guid'] = guid(volume + '@final')
        publish(images_dir, manifest, path)
        chain.append({'manifest': manifest, 'sha256': digest(volume), 'file': path})
        volumes.append(volume)
    # the build volumes go: a receive would match their snapshots by guid instead of the images'
    for volume in reversed(volumes):
        retry_busy('zfs', 'destroy', '-r', volume)
    return chain


def cmd_filesystem(args):
    """A filesystem with some files (for an image made from a dataset)."""
    run('zfs', 'create', '-p', args['dataset'])
    mountpoint = run('zfs', 'get', '-H', '-o', 'value', 'mountpoint', args['dataset']).strip()
    fill(mountpoint, args.get('files') or {}, random_mb=args.get('random_mb', 0))
    return {'mountpoint': mountpoint}


def cmd_volume(args):
    """A clone of a snapshot that is a volume (a VM disk made from a zvol image), then written to."""
    run('zfs', 'clone', args['origin'], args['dataset'])
    write_volume(args['dataset'], args.get('offset_mb', 0), args.get('data_mb', 1), args['dataset'])
    return {'sha256': digest(args['dataset'])}


def cmd_digest(args):
    return {'sha256': digest(args['dataset'])}


def cmd_read(args):
    """Files of a filesystem, read through a temporary clone of its snapshot (as a zone would see them)."""
    clone = args['snapshot'].split('@')[0] + '-readcheck'
    run('zfs', 'clone', args['snapshot'], clone)
    try:
        mountpoint = run('zfs', 'get', '-H', '-o', 'value', 'mountpoint', clone).strip()
        found = {}
        for name in args['files']:
            with open(os.path.join(mountpoint, name), encoding='utf-8') as f:
                found[name] = f.read()
        return found
    finally:
        retry_busy('zfs', 'destroy', clone)


def cmd_serve(args):
    """Start the test image server on the guest's 127.0.0.1 as a transient systemd service (the server
    stops when its parent goes, so its parent is init, not this short-lived helper); answer its port and PID."""
    state = args['state_dir']
    os.makedirs(state, exist_ok=True)
    os.makedirs(args['images_dir'], exist_ok=True)
    port_file, pid_file = os.path.join(state, 'port'), os.path.join(state, 'pid')
    unit = 'smartos-images-imgserver'
    subprocess.run(['systemctl', 'stop', unit], capture_output=True, check=False)
    for stale in (port_file, pid_file):
        if os.path.exists(stale):
            os.unlink(stale)
    run('systemd-run', '--quiet', '--collect', '--unit', unit, '-p', 'StandardOutput=file:%s/log' % state,
        '-p', 'StandardError=inherit', sys.executable, SERVER_SCRIPT, '--images', args['images_dir'],
        '--port', '0', '--port-file', port_file, '--pid-file', pid_file)
    deadline = time.monotonic() + 60
    while not (os.path.exists(port_file) and os.path.exists(pid_file)):
        if time.monotonic() > deadline:
            subprocess.run(['systemctl', 'stop', unit], capture_output=True, check=False)
            raise RuntimeError('the image server did not start (see %s/log)' % state)
        time.sleep(0.1)
    with open(port_file, encoding='utf-8') as f:
        port = int(f.read())
    with open(pid_file, encoding='utf-8') as f:
        return {'port': port, 'pid': int(f.read())}


def cmd_fault(args):
    """Add a fault to the image server (its control API, on the guest's loopback)."""
    request = urllib.request.Request('http://127.0.0.1:%d/__control/faults' % args['port'],
                                     data=json.dumps(args['fault']).encode(), method='POST',
                                     headers={'Content-Type': 'application/json'})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=30) as response:
        return json.load(response)


def receive_processes(target):
    """PIDs of running `zfs receive ... <target>` processes, with their parents."""
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % entry, 'rb') as f:
                argv = f.read().split(b'\0')
            with open('/proc/%s/stat' % entry, encoding='utf-8') as f:
                ppid = int(f.read().rsplit(')', 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if len(argv) > 2 and argv[0].endswith(b'zfs') and argv[1] in (b'receive', b'recv') \
                and target.encode() in argv:
            found.append((int(entry), ppid))
    return found


def cmd_kill_receive(args):
    """Wait for a `zfs receive` into target, let it receive for a while, then SIGKILL the module running it
    and everything it started (as a crash or an OOM kill would)."""
    deadline = time.monotonic() + args.get('wait', 120)
    while True:
        found = receive_processes(args['target'])
        if found:
            break
        if time.monotonic() > deadline:
            raise RuntimeError('no zfs receive into %s started' % args['target'])
        time.sleep(0.1)
    time.sleep(args.get('after', 2))
    receiver, module = found[0]
    alive = bool(receive_processes(args['target']))
    kill_tree(module)
    return {'receiver': receiver, 'module': module, 'receiving_when_killed': alive}


def cmd_datasets(args):
    """name, type, origin of every dataset and snapshot of the pool."""
    out = run('zfs', 'list', '-H', '-o', 'name,type,origin', '-t', 'all', '-r', args['pool'])
    return [line.split('\t') for line in out.splitlines()]


COMMANDS = {name[4:].replace('_', '-'): f for name, f in globals().items() if name.startswith('cmd_')}


def main():
    command, arguments = sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    json.dump(COMMANDS[command](arguments), sys.stdout)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
