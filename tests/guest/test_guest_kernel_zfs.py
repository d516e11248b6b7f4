"""The modules on kernel OpenZFS, with zvols: what zfs-fuse cannot run (see conftest.py for the guest).

Each module task costs 3-5 s under qemu TCG, so every test makes the most of each task. The zvol
images are a chain made in the guest with `zfs send` (the first full, the next ones incremental),
served by the image server on the guest's loopback.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import uuid as uuidlib

import pytest

from tests.guest.conftest import IMAGES, POOL
from tests.lib.procs import kill_tree

pytestmark = pytest.mark.usefixtures('collection_built')

MIB = 1 << 20
VOLSIZE_MB = 16
OUT = '/root/out'


def image_task(guest, source=True, **args):
    """A smartos_image task on the guest's pool, with its image server as the source."""
    args.setdefault('pool', POOL)
    if source:
        args['source'] = ['http://127.0.0.1:%d' % guest.server_port]
    return {'name': 'image', 'smartos.images.smartos_image': args}


def create_task(**args):
    args.setdefault('pool', POOL)
    args.setdefault('output_dir', OUT)
    return {'name': 'create', 'smartos.images.smartos_image_create': args}


def destroy(guest, *names):
    """zfs destroy -r of the datasets that exist, and the cached manifests of images among them."""
    quoted = ' '.join(shlex.quote(n) for n in names)
    guest.ssh('for d in %s; do if zfs list -H -o name "$d" >/dev/null 2>&1; then zfs destroy -r "$d"; fi; '
              'rm -f "/var/imgadm/images/%s-${d#%s/}.json"; done' % (quoted, POOL, POOL))


@pytest.fixture(scope='session')
def chain(guest):
    """Three zvol images, each a clone of the one before: [{manifest, sha256, file}], base first."""
    return guest.helper('zvol-chain', pool=POOL, outdir='/var/tmp/built', images_dir=IMAGES,
                        names=['zvol-base', 'zvol-child', 'zvol-grandchild'], volsize_mb=VOLSIZE_MB, data_mb=2)


def uuids(chain):
    return [level['manifest']['uuid'] for level in chain]


@pytest.fixture
def chain_installed(play, guest, chain):
    """The chain, installed (imported by the module when an earlier test did not leave it so)."""
    if not all(guest.exists('%s/%s@final' % (POOL, u)) for u in uuids(chain)):
        result = play(image_task(guest, uuid=uuids(chain)[-1]))
        assert not result['failed'], result.get('msg')
    return chain


def test_zvol_image_full_then_its_incremental_chain(play, guest, chain):
    a, b, c = uuids(chain)
    destroy(guest, *('%s/%s' % (POOL, u) for u in (c, b, a)))

    full = play(image_task(guest, uuid=a))
    assert full['changed'], full.get('msg')
    assert full['actions'] == [{'action': 'import', 'uuid': a, 'dataset': '%s/%s' % (POOL, a)}]
    assert full['downloaded_bytes'] == chain[0]['manifest']['files'][0]['size']

    incremental = play(image_task(guest, uuid=c))  # pulls its origin b, then itself
    assert incremental['changed'], incremental.get('msg')
    assert [x['uuid'] for x in incremental['actions']] == [b, c]

    found = guest.datasets()
    assert found['%s/%s' % (POOL, a)] == ('volume', None)
    assert found['%s/%s' % (POOL, b)] == ('volume', '%s/%s@final' % (POOL, a))
    assert found['%s/%s' % (POOL, c)] == ('volume', '%s/%s@final' % (POOL, b))
    for u in (a, b, c):
        assert found['%s/%s@final' % (POOL, u)][0] == 'snapshot'
    assert not [n for n in found if 'partial' in n]
    # every volume holds exactly what was sent, read through its device node
    for level, u in zip(chain, (a, b, c)):
        assert guest.helper('digest', dataset='%s/%s' % (POOL, u))['sha256'] == level['sha256']
        assert guest.ssh('zfs get -Hp -o value volsize %s/%s' % (POOL, u)).strip() == str(VOLSIZE_MB * MIB)

    again = play(image_task(guest, images=[{'uuid': a}, {'uuid': c}]), check=True)
    assert not again['changed'] and again['actions'] == []


def test_delete_is_refused_while_a_vm_disk_is_a_clone(play, guest, chain_installed):
    c = uuids(chain_installed)[-1]
    disk = '%s/%s-disk0' % (POOL, uuidlib.uuid4())
    guest.ssh('zfs clone %s/%s@final %s' % (POOL, c, disk))
    before = guest.datasets()
    try:
        result = play(image_task(guest, source=False, uuid=c, state='absent'))
        assert result['failed'] and 'dependent clones' in result['msg'] and disk in result['msg']
        assert result['clones'] == [disk]
        assert guest.datasets() == before
    finally:
        destroy(guest, disk)


def test_create_from_a_vm_disk_and_a_filesystem_round_trip_and_facts(play, guest, chain_installed):
    """The wiki's KVM recipe without vmadm (the VM's disk0 volume), and an image of a filesystem; both
    files import again with smartos_image; the facts then list volumes and filesystems alike."""
    a, b, c = uuids(chain_installed)
    vm = str(uuidlib.uuid4())
    disk, fs = '%s/%s-disk0' % (POOL, vm), '%s/fs-%s' % (POOL, vm[:8])
    disk_sha = guest.helper('volume', origin='%s/%s@final' % (POOL, a), dataset=disk, offset_mb=8, data_mb=1)['sha256']
    guest.helper('filesystem', dataset=fs, files={'etc/motd': 'made on kernel zfs\n'})
    made = []
    try:
        from_vm = play(create_task(vm=vm, origin=a, name='kvm-disk', version='1.0.0', remove_snapshot=True))
        assert from_vm['changed'], from_vm.get('msg')
        assert from_vm['dataset'] == disk
        manifest = from_vm['manifest']
        assert manifest['type'] == 'zvol' and manifest['origin'] == a and manifest['os'] == 'linux'
        assert manifest['image_size'] == VOLSIZE_MB
        assert [x['action'] for x in from_vm['actions']][:2] == ['snapshot', 'send']
        assert from_vm['actions'][1]['incremental_from'] == '%s/%s@final' % (POOL, a)

        from_fs = play(create_task(dataset=fs, name='fs-image', version='1.0.0', remove_snapshot=True))
        assert from_fs['changed'], from_fs.get('msg')
        assert from_fs['manifest']['type'] == 'zone-dataset' and 'origin' not in from_fs['manifest']
        # the snapshots the module made are gone again
        assert not [n for n in guest.datasets() if n.startswith((disk + '@', fs + '@'))]

        made = [from_vm['uuid'], from_fs['uuid']]
        back = play(image_task(guest, source=False, images=[
            {'manifest': r['manifest_path'], 'file': r['file_path']} for r in (from_vm, from_fs)]))
        assert back['changed'], back.get('msg')
        found = guest.datasets()
        assert found['%s/%s' % (POOL, made[0])] == ('volume', '%s/%s@final' % (POOL, a))
        assert found['%s/%s' % (POOL, made[1])][0] == 'filesystem'
        assert guest.helper('digest', dataset='%s/%s' % (POOL, made[0]))['sha256'] == disk_sha
        assert guest.helper('read', snapshot='%s/%s@final' % (POOL, made[1]), files=['etc/motd']) == \
            {'etc/motd': 'made on kernel zfs\n'}

        facts = play({'name': 'facts', 'smartos.images.smartos_image_facts': {
            'gather_subset': ['installed'], 'pools': [POOL]}})
        assert not facts['failed'], facts.get('msg')
        installed = facts['ansible_facts']['smartos_images']
        assert set(installed) == {a, b, c} | set(made)
        assert {u: installed[u]['manifest']['type'] for u in installed} == dict(
            {a: 'zvol', b: 'zvol', c: 'zvol', made[0]: 'zvol', made[1]: 'zone-dataset'})
        assert installed[a]['clones'] == sorted([disk, '%s/%s' % (POOL, b), '%s/%s' % (POOL, made[0])])
        assert all(installed[u]['zpool'] == POOL for u in installed)
    finally:
        destroy(guest, disk, fs, *('%s/%s' % (POOL, u) for u in made))


def test_prune_keeps_the_images_vm_disks_use(play, guest, chain_installed):
    """VM disks in both layouts keep their images: <pool>/<uuid>-diskN (KVM) and <pool>/<uuid>/diskN (bhyve,
    under the VM's zone root, which zoneadm lists). Once a disk goes, the images only it used go too."""
    a, b, c = uuids(chain_installed)
    kvm, bhyve = str(uuidlib.uuid4()), str(uuidlib.uuid4())
    kvm_disk = '%s/%s-disk0' % (POOL, kvm)
    bhyve_root, bhyve_disk = '%s/%s' % (POOL, bhyve), '%s/%s/disk0' % (POOL, bhyve)
    guest.ssh('zfs clone %s/%s@final %s && zfs create %s && zfs clone %s/%s@final %s && '
              'echo "1:%s:running:/%s:%s:bhyve:excl" > /var/tmp/zones.list'
              % (POOL, c, kvm_disk, bhyve_root, POOL, a, bhyve_disk, bhyve, bhyve_root, bhyve))
    try:
        kept = play(image_task(guest, source=False, prune_unused=True))
        assert not kept['failed'], kept.get('msg')
        assert not kept['changed'] and kept['unused'] == []
        assert all(guest.exists('%s/%s' % (POOL, u)) for u in (a, b, c))

        destroy(guest, kvm_disk)
        pruned = play(image_task(guest, source=False, prune_unused=True))
        assert pruned['changed'], pruned.get('msg')
        assert pruned['removed'] == [c, b]
        found = guest.datasets()
        assert '%s/%s' % (POOL, a) in found and bhyve_disk in found and bhyve_root in found
        assert not [n for n in found if b in n or c in n]
    finally:
        guest.ssh('rm -f /var/tmp/zones.list')
        destroy(guest, kvm_disk, bhyve_root)


def test_kill_during_a_zvol_receive_leaves_nothing_under_the_final_name(play, guest):
    """kill -9 of the module while `zfs receive` writes a volume; the next run replaces a -partial volume and
    imports the image."""
    level = guest.helper('zvol-chain', pool=POOL, outdir='/var/tmp/built', images_dir=IMAGES,
                         names=['zvol-killed'], volsize_mb=VOLSIZE_MB, data_mb=4)[0]
    uuid = level['manifest']['uuid']
    final, partial = '%s/%s' % (POOL, uuid), '%s/%s-partial' % (POOL, uuid)
    # the file trickles (1 KiB a second) so that the receive is under way when the kill lands
    guest.helper('fault', port=guest.server_port, fault={'kind': 'trickle', 'uuid': uuid, 'arg': 1024, 'times': 1})
    argv, env, dummy = play.command(image_task(guest, uuid=uuid))
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        killed = guest.helper('kill-receive', target=partial, wait=240, after=3, timeout=400)
        assert killed['receiving_when_killed']
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            kill_tree(proc.pid)
            proc.wait()
    after_kill = guest.datasets()
    assert not [n for n in after_kill if n == final or n.startswith(final + '@') or n.startswith(final + '/')]
    if partial not in after_kill:
        # kernel ZFS removed what the killed receive wrote: leave what a kill after the receive leaves, a
        # -partial volume with its snapshot (which the next run must destroy, just after it appeared)
        guest.ssh('gzip -dc %s | zfs receive -u %s' % (shlex.quote(level['file']), partial))

    result = play(image_task(guest, uuid=uuid))
    assert result['changed'], result.get('msg')
    found = guest.datasets()
    assert found[final] == ('volume', None) and found[final + '@final'][0] == 'snapshot'
    assert not [n for n in found if 'partial' in n]
    assert guest.helper('digest', dataset=final)['sha256'] == level['sha256']
    destroy(guest, final)


def test_the_guest_reaches_nothing(guest):
    """restrict=on: not even the host's end of the SSH forward (10.0.2.2 is the host's loopback to qemu)."""
    with open(os.path.join(guest.rundir, 'port'), encoding='utf-8') as f:
        port = int(f.read())
    probe = ("import socket\ntry:\n    socket.create_connection(('10.0.2.2', %d), timeout=5).close()\n"
             "    print('connected')\nexcept OSError as e:\n    print('unreachable', e)\n" % port)
    out = guest.ssh('python3 -c %s' % shlex.quote(probe))
    assert out.startswith('unreachable'), out
