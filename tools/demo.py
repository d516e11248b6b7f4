"""`make demo`: a local pool and a local image server, then the demo playbook imports a real image.

Run it twice: the second run reports no change. What it leaves running (zfs-fuse) and on disk
(the pool file and the image under /var/tmp/smartos-images-demo) is reused by the next run.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.lib.imagebuilder import build_image
from tests.lib.imgserver_ctl import ImageServer, publish
from tests.lib.zfspool import FilePool, ZfsFuse

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOME = '/var/tmp/smartos-images-demo'
POOL = 'zones'


def demo_image(pool):
    """The demo image, built once with real `zfs send | gzip` and kept for later runs."""
    served = os.path.join(HOME, 'served')
    for entry in sorted(os.listdir(served)) if os.path.isdir(served) else []:
        path = os.path.join(served, entry, 'manifest.json')
        if os.path.exists(path):
            with open(path, encoding='utf-8') as f:
                return json.load(f), served
    print('building the demo image (zfs send | gzip of a dataset with some files)...')
    files = {'etc/motd': 'smartos.images demo image\n', 'etc/release': 'demo-base 1.0.0\n'}
    manifest, path = build_image(pool.name, os.path.join(HOME, 'build'), name='demo-base', version='1.0.0',
                                 files=files, random_mb=8, text_mb=24,
                                 description='smartos.images demo image')
    publish(served, manifest, path)
    return manifest, served


def main():
    """Prepare pool, image and server; run the playbook; stop the server."""
    ZfsFuse(pidfile='/run/smartos-images-demo-zfs-fuse.pid').start()
    pool = FilePool(POOL, os.path.join(HOME, POOL + '.img'), size='2G').create(fresh=False)
    manifest, served = demo_image(pool)
    with ImageServer(served) as server:
        print('image server on %s serving %s (%s@%s)'
              % (server.url, manifest['uuid'], manifest['name'], manifest['version']))
        argv = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'),
                os.path.join(REPO, 'playbooks', 'demo.yml'),
                '-e', 'demo_image_uuid=%s' % manifest['uuid'], '-e', 'demo_source=%s' % server.url,
                '-e', 'demo_pool=%s' % POOL]
        env = dict(os.environ, ANSIBLE_LOCALHOST_WARNING='false')
        return subprocess.run(argv, env=env, check=False).returncode


if __name__ == '__main__':
    sys.exit(main())
