# Private to the smartos.images collection: not a public API.
# The vmadm command seam: a VM's properties and stopping it; where a VM's disk dataset is.
from __future__ import annotations

import json

from ansible_collections.smartos.images.plugins.module_utils._errors import CommandError

HVM_BRANDS = ('kvm', 'bhyve')
# What vmadm says when it has no such VM (vmadm get: "No such zone", "Could not find VM").
MISSING_WORDS = ('no such zone', 'could not find', 'not found', 'does not exist')


class Vmadm:
    """vmadm through a Runner; absent on hosts that are not SmartOS."""

    def __init__(self, runner):
        self.runner = runner

    def available(self):
        return bool(self.runner.which('vmadm', required=False))

    def get(self, uuid):
        """`vmadm get <uuid>` as a dict; None when there is no such VM."""
        rc, out, err = self.runner.run(['vmadm', 'get', uuid])
        if rc != 0:
            if any(w in (err or '').lower() for w in MISSING_WORDS):
                return None
            raise CommandError('vmadm get %s failed: %s' % (uuid, (err or out).strip() or 'exit code %d' % rc),
                               cmd='vmadm get %s' % uuid, rc=rc, stderr=err)
        try:
            vm = json.loads(out)
        except ValueError as e:
            raise CommandError('vmadm get %s printed no JSON: %s' % (uuid, e), cmd='vmadm get %s' % uuid)
        if not isinstance(vm, dict):
            raise CommandError('vmadm get %s printed no JSON object' % uuid, cmd='vmadm get %s' % uuid)
        return vm

    def stop(self, uuid):
        """`vmadm stop <uuid>` (waits until the VM has stopped)."""
        rc, out, err = self.runner.run(['vmadm', 'stop', uuid])
        if rc != 0:
            raise CommandError('vmadm stop %s failed: %s' % (uuid, (err or out).strip() or 'exit code %d' % rc),
                               cmd='vmadm stop %s' % uuid, rc=rc, stderr=err)


def vm_dataset(vm):
    """The dataset an image of the VM is made from: disk0's zvol for KVM and bhyve, else the zone root (§2.3)."""
    if vm.get('brand') in HVM_BRANDS:
        disks = vm.get('disks') or []
        boot = [d for d in disks if isinstance(d, dict) and d.get('boot')] or disks
        return boot[0].get('zfs_filesystem') if boot and isinstance(boot[0], dict) else None
    return vm.get('zfs_filesystem')


def vm_zvol_fields(vm):
    """imgadm create for a KVM/bhyve VM: the drivers, CPU type and disk size its image needs (§6.1)."""
    if vm.get('brand') not in HVM_BRANDS:
        return {}
    disks = [d for d in vm.get('disks') or [] if isinstance(d, dict)]
    nics = [n for n in vm.get('nics') or [] if isinstance(n, dict)]
    fields = {'nic_driver': nics[0].get('model') if nics else None,
              'disk_driver': disks[0].get('model') if disks else None,
              'cpu_type': vm.get('cpu_type'),
              'image_size': disks[0].get('size') if disks else None}
    return {k: v for k, v in fields.items() if v is not None}
