"""Make real SmartOS images for tests, the demo and benchmarks: `zfs send` of a dataset with files.

Each image is a compressed send stream plus a v2 manifest with its true SHA-1 and size.
"""
from __future__ import annotations

import datetime
import hashlib
import os
import subprocess
import uuid as uuidlib

from tests.lib.zfspool import retry_busy, run

COMPRESSORS = {'gzip': ['gzip', '-6', '-c'], 'bzip2': ['bzip2', '-c'], 'xz': ['xz', '-1', '-c'],
               'none': None}
SUFFIX = {'gzip': '.zfs.gz', 'bzip2': '.zfs.bz2', 'xz': '.zfs.xz', 'none': '.zfs'}


def sha1_of(path):
    """SHA-1 hex digest of a file."""
    h = hashlib.sha1()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def fill(directory, files=None, random_mb=0, text_mb=0):
    """Write named files, plus random (incompressible) and text (compressible) bulk."""
    for name, data in (files or {}).items():
        path = os.path.join(directory, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            f.write(data if isinstance(data, bytes) else data.encode())
    for i in range(random_mb):
        with open(os.path.join(directory, 'random-%04d.bin' % i), 'wb') as f:
            f.write(os.urandom(1 << 20))
    line = b''.join(b'%06d the quick brown fox jumps over the lazy dog %d\n' % (n, n * 7919)
                    for n in range(1000))
    for i in range(text_mb):
        with open(os.path.join(directory, 'text-%04d.log' % i), 'wb') as f:
            for dummy in range((1 << 20) // len(line) + 1):
                f.write(line)


def manifest_for(image_uuid, name, version, path, compression, origin=None, **extra):
    """A v2 manifest describing the image file at path."""
    published = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.000Z')
    manifest = {
        'v': 2, 'uuid': image_uuid, 'owner': '00000000-0000-0000-0000-000000000000',
        'name': name, 'version': version, 'description': 'test image %s@%s' % (name, version),
        'state': 'active', 'disabled': False, 'public': True, 'published_at': published,
        'type': 'zone-dataset', 'os': 'smartos',
        'files': [{'sha1': sha1_of(path), 'size': os.path.getsize(path), 'compression': compression}],
    }
    if origin:
        manifest['origin'] = origin
    manifest.update(extra)
    return manifest


def send_to_file(snapshot, path, compression='gzip', incremental_from=None):
    """zfs send [-i origin] snapshot | compressor > path."""
    argv = ['zfs', 'send'] + (['-i', incremental_from] if incremental_from else []) + [snapshot]
    with open(path + '.tmp', 'wb') as out:
        send = subprocess.Popen(argv, stdout=subprocess.PIPE if COMPRESSORS[compression] else out)
        if COMPRESSORS[compression]:
            comp = subprocess.Popen(COMPRESSORS[compression], stdin=send.stdout, stdout=out)
            send.stdout.close()
            if comp.wait() != 0:
                raise RuntimeError('%s failed' % compression)
        if send.wait() != 0:
            raise RuntimeError('zfs send %s failed' % snapshot)
    os.replace(path + '.tmp', path)


def guid(snapshot):
    """The exact guid of a snapshot, as manifests carry it in files[0].dataset_guid."""
    return run('zfs', 'get', '-Hp', '-o', 'value', 'guid', snapshot).strip()


def build_image(pool, outdir, name='testimg', version='1.0.0', compression='gzip', files=None,
                random_mb=0, text_mb=0, image_uuid=None, snapshot='image', keep=False, **extra):
    """Create a dataset with files, snapshot it, send it compressed; return (manifest, file path)."""
    image_uuid = image_uuid or str(uuidlib.uuid4())
    dataset = '%s/build-%s' % (pool, image_uuid[:8])
    run('zfs', 'create', dataset)
    mountpoint = run('zfs', 'get', '-H', '-o', 'value', 'mountpoint', dataset).strip()
    fill(mountpoint, files or {'etc/motd': 'image %s %s@%s\n' % (image_uuid, name, version)},
         random_mb, text_mb)
    run('zfs', 'snapshot', '%s@%s' % (dataset, snapshot))
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, image_uuid + SUFFIX[compression])
    send_to_file('%s@%s' % (dataset, snapshot), path, compression)
    manifest = manifest_for(image_uuid, name, version, path, compression, **extra)
    manifest['files'][0]['dataset_guid'] = guid('%s@%s' % (dataset, snapshot))
    if not keep:
        retry_busy('zfs', 'destroy', '-r', dataset)
    return manifest, path


def build_chain(pool, outdir, names, compression='gzip'):
    """An incremental chain, base first, made as imgadm create -i makes one: each level a clone of the
    level before, sent with `zfs send -i <origin>@final`, so that it is received as a clone again."""
    prefix = '%s/chain-%s' % (pool, uuidlib.uuid4().hex[:8])
    os.makedirs(outdir, exist_ok=True)
    chain, datasets = [], []
    for level, name in enumerate(names, 1):
        dataset = '%s-%d' % (prefix, level)
        if datasets:
            run('zfs', 'clone', datasets[-1] + '@final', dataset)
        else:
            run('zfs', 'create', dataset)
        mountpoint = run('zfs', 'get', '-H', '-o', 'value', 'mountpoint', dataset).strip()
        image_uuid = str(uuidlib.uuid4())
        fill(mountpoint, {'etc/level-%d' % level: '%s %s\n' % (name, image_uuid)}, random_mb=1)
        run('zfs', 'snapshot', dataset + '@final')
        path = os.path.join(outdir, image_uuid + SUFFIX[compression])
        send_to_file(dataset + '@final', path, compression,
                     incremental_from=datasets[-1] + '@final' if datasets else None)
        extra = {'origin': chain[-1][0]['uuid']} if chain else {}
        manifest = manifest_for(image_uuid, name, '1.0.%d' % level, path, compression, **extra)
        manifest['files'][0]['dataset_guid'] = guid(dataset + '@final')
        chain.append((manifest, path))
        datasets.append(dataset)
    # the build datasets go: a receive would match their snapshots by guid instead of the images'
    for dataset in reversed(datasets):
        retry_busy('zfs', 'destroy', '-r', dataset)
    return chain
