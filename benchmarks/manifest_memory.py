"""Peak memory of a smartos_image import whose manifest is as large as the module accepts.

A real 1 MB image is served on 127.0.0.1 under several manifests: its own (a few hundred bytes), and
manifests padded with extra keys to just under the module's manifest cap in the shapes that cost
Python the most memory once parsed (many tiny keys; many tiny list items; one long string), and one
just over the cap (which must be refused before it is parsed). Each is imported by the module, run
as Ansible runs it, and its peak RSS is printed. The goal (issue 10): under 100 MB whatever a server
sends.

Then the same for a listing: smartos_image_facts (gather_subset available) lists a source offering as
many images as the module's listing cap lets through, each manifest padded with tiny keys (the shape
whose parsed form costs most per byte), and its peak RSS is printed the same way.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import uuid as uuidlib

from benchmarks._common import REPO, bench_run, collections_dir, write_results
from benchmarks.import_speed import MODULE, NO_PROXY, destroy, module_result, timed
from tests.lib.imagebuilder import build_image
from tests.lib.imgserver_ctl import ImageServer, publish

POOL = 'benchmem'
RESULTS = os.path.join(REPO, 'benchmarks', 'results', 'manifest_memory.json')
GOAL_MB = 100.0
MB = 1 << 20


FACTS = os.path.join('ansible_collections', 'smartos', 'images', 'plugins', 'modules', 'smartos_image_facts.py')
LISTING_KEYS = 120         # tiny keys per listed manifest


def caps(collections):
    """The module's caps on a manifest body and on a listing's parsed size, and its cost estimate, from the copy under test."""
    sys.path.insert(0, collections)
    try:
        from ansible_collections.smartos.images.plugins.module_utils import _imgapi
    finally:
        sys.path.pop(0)
    return _imgapi.MANIFEST_MAX_BYTES, _imgapi.LIST_MAX_COST, _imgapi._json_cost  # pylint: disable=protected-access


def padded(manifest, shape, target):
    """A copy of manifest with a new UUID and padding of the given shape, as the server sends it: at most target bytes."""
    m = dict(manifest, uuid=str(uuidlib.uuid4()))
    room = target - len(json.dumps(m)) - 32
    if shape == 'keys':         # {"k0": 0, ...}: a new str and a dict slot per 10 bytes or so
        m['tags'] = {'k%x' % i: 0 for i in range(room // 10)}  # then trimmed from above
    elif shape == 'list':       # [0, 0, ...]: a list slot per 3 bytes
        m['tags'] = {'pad': [0] * (room // 3)}
    else:                       # one long string
        m['description'] = 'x' * room
    over = len(json.dumps(m)) - target
    while over > 0:                         # trim what the estimate overshot, a little more each time
        if shape == 'keys':
            for dummy in range(over // 16 + 1):
                m['tags'].popitem()
        elif shape == 'list':
            del m['tags']['pad'][-(over // 3 + 1):]
        else:
            m['description'] = m['description'][:-(over + 1)]
        over = len(json.dumps(m)) - target
    return m


def run_module(collections, workdir, url, manifest):
    """Import manifest's image with the module; its result, rc and peak RSS."""
    root = tempfile.mkdtemp(prefix='host-', dir=workdir)
    args_path = os.path.join(root, 'args.json')
    with open(args_path, 'w', encoding='utf-8') as f:
        json.dump({'ANSIBLE_MODULE_ARGS': {'uuid': manifest['uuid'], 'pool': POOL, 'source': [url], 'host_root': root}}, f)
    try:
        r = timed([sys.executable, os.path.join(collections, MODULE), args_path],
                  env=dict(os.environ, PYTHONPATH=collections, **NO_PROXY), watch_rss=True)
    finally:
        destroy(f"{POOL}/{manifest['uuid']}")
        shutil.rmtree(root, ignore_errors=True)
    result = module_result(r['stdout'])
    return {'imported': bool(result.get('changed')) and r['rc'] == 0, 'msg': result.get('msg'),
            'seconds': round(r['seconds'], 2), 'peak_rss_mb': r['peak_rss_mb'], 'ru_maxrss_mb': r['ru_maxrss_mb']}


def listing_run(collections, workdir, base, path, list_cap, cost):
    """smartos_image_facts listing as many key-padded manifests as fit under the listing cap; its peak RSS."""
    one = dict(base, tags={'k%x' % i: 0 for i in range(LISTING_KEYS)})
    count = int(list_cap * 0.97 // cost(json.dumps(one, separators=(',', ':')).encode()))
    images_dir = os.path.join(workdir, 'listing')
    for dummy in range(count):
        publish(images_dir, dict(one, uuid=str(uuidlib.uuid4())), path)
    root = tempfile.mkdtemp(prefix='host-', dir=workdir)
    with ImageServer(images_dir) as server:
        conf = os.path.join(root, 'var', 'imgadm', 'imgadm.conf')
        os.makedirs(os.path.dirname(conf))
        with open(conf, 'w', encoding='utf-8') as f:
            json.dump({'sources': [{'type': 'imgapi', 'url': server.url}]}, f)
        args_path = os.path.join(root, 'args.json')
        with open(args_path, 'w', encoding='utf-8') as f:
            json.dump({'ANSIBLE_MODULE_ARGS': {'gather_subset': ['available'], 'host_root': root}}, f)
        r = timed([sys.executable, os.path.join(collections, FACTS), args_path],
                  env=dict(os.environ, PYTHONPATH=collections, **NO_PROXY), watch_rss=True)
    shutil.rmtree(root, ignore_errors=True)
    result = module_result(r['stdout'])
    listed = len((result.get('ansible_facts') or {}).get('smartos_images_available') or {})
    row = {'variant': 'facts: listing of %d images' % count, 'imported': listed == count, 'listed': listed,
           'msg': result.get('msg'), 'seconds': round(r['seconds'], 2), 'peak_rss_mb': r['peak_rss_mb'],
           'ru_maxrss_mb': r['ru_maxrss_mb']}
    print(f"{row['variant']:<28} listed {listed}  peak RSS {row['peak_rss_mb'] or 0:6.1f} MB  "
          f"(ru_maxrss {row['ru_maxrss_mb']:.1f} MB)  {row['seconds']:.1f} s", flush=True)
    return row


def main(argv=None):
    """Serve the variants, import each once, print and save the figures; clean everything up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    collections = collections_dir(os.path.join('plugins', 'modules', 'smartos_image.py'))
    cap, list_cap, cost = caps(collections)
    rows = []
    with bench_run('manifest_memory', 'run-', pool=POOL, size='1G') as workdir:
        base, path = build_image(POOL, workdir, name='bench-mem', version='1.0.0', compression='gzip',
                                 random_mb=1, text_mb=0)
        variants = [('own manifest', dict(base))]
        variants += [('%s, just under the cap' % shape, padded(base, shape, cap - 4096)) for shape in ('keys', 'list', 'string')]
        variants.append(('keys, just over the cap', padded(base, 'keys', cap + 4096)))
        images_dir = os.path.join(workdir, 'images')
        for dummy, manifest in variants:
            publish(images_dir, manifest, path)
        with ImageServer(images_dir) as server:
            for label, manifest in variants:
                r = run_module(collections, workdir, server.url, manifest)
                r.update(variant=label, manifest_bytes=len(json.dumps(manifest)))
                rows.append(r)
                print(f"{label:<28} manifest {r['manifest_bytes'] / MB:5.2f} MiB  "
                      f"{'imported' if r['imported'] else 'refused '}  peak RSS {r['peak_rss_mb'] or 0:6.1f} MB  "
                      f"(ru_maxrss {r['ru_maxrss_mb']:.1f} MB)", flush=True)
                if not r['imported']:
                    print(f"  {r['msg']}", flush=True)
        rows.append(listing_run(collections, workdir, base, path, list_cap, cost))
        worst = max(r['peak_rss_mb'] or r['ru_maxrss_mb'] for r in rows)
        print(f'manifest cap {cap / MB:.2f} MiB; worst module peak RSS {worst:.1f} MB, goal < {GOAL_MB:.0f} MB: '
              f"{'met' if worst < GOAL_MB else 'MISSED'}")
        write_results(RESULTS, {'manifest_cap_bytes': cap, 'goal_mb': GOAL_MB, 'worst_peak_rss_mb': worst, 'runs': rows})
        print(f'figures written to {os.path.relpath(RESULTS)}')


if __name__ == '__main__':
    main()
