#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: smartos_image_create
short_description: Make a SmartOS image file and its manifest from a VM, a dataset or a snapshot
version_added: 0.1.0
description:
  - Makes an image the way the SmartOS wiki describes it by hand (stop the VM, snapshot its dataset,
    C(zfs send | gzip > file), work out the SHA-1 and size, write the manifest), in one task that
    can run again without making anything twice.
  - The image is made from a VM (O(vm)), any filesystem or volume (O(dataset)), or an existing
    snapshot (O(snapshot)); with O(origin), incrementally on an installed image, as
    C(zfs send -i <pool>/<origin>@final) (C(imgadm create -i)).
  - Writes, in O(output_dir), the image file C(<name>-<version>.zfs.gz) (C(.zvol.gz) for a volume;
    C(.bz2), C(.xz) or no suffix for the other compressions), its v2 manifest
    C(<name>-<version>.imgmanifest), and with O(dsmanifest) a v1 C(<name>-<version>.dsmanifest)
    for old DSAPI servers. C(smartos.images.smartos_image) installs them (options C(manifest) and
    C(file)) and image servers import them.
  - The send stream is compressed on every core the host has, in independent blocks of about
    1 MiB written in order as one valid file (a multi-member gzip file, as C(pigz) writes, which
    C(gzip -d), Python and imgadm read as one), and the SHA-1 and size of the file are computed in
    the same pass. Memory stays bounded whatever the image size.
  - The file is written under a temporary name and renamed only when complete. On any failure (a full disk, a
    failed compression, rename or C(zfs send), SIGTERM or SIGHUP) the module removes what this run made (its
    temporary files, the image file when its manifest could not be written, the snapshot it made) and nothing
    else, and its message names the path and the cause, and anything it could not remove.
  - A run killed with SIGKILL cannot clean up; its temporary image file (C(.<file>.<host>-<pid>.XXXXXXXX)) is
    removed by the next run for the same file names on the same host, once that process is gone (a
    C(remove_file) action). Its snapshot is the one the next run reuses.
  - File names are C(<name>-<version>) with every character other than letters, digits and C(. _ + -) turned into
    C(_), as C(imgadm create) names them. Different images can get the same names (C(a)/C(b-1) and C(a-b)/C(1),
    or C(a/b) and C(a_b)). A manifest (C(.imgmanifest) or C(.dsmanifest)) already there that names another image
    (or no image) is never replaced, nor its image file; the task fails before anything runs, naming that file and
    its image. Write such images to different O(output_dir)s. A manifest that is not JSON, and an image file
    that no manifest describes, are taken for this image's leftovers and replaced.
  - With O(origin), the origin's cached manifest must be that image's (its C(uuid)) and its inherited fields of
    the right types; otherwise the task fails naming the file, rather than inheriting from it.
  - The manifest validates against the collection's JSON Schema C(schemas/imgmanifest-v2.json) and
    passes node-imgmanifest's rules; bad names, versions or fields are refused before anything runs.
extends_documentation_fragment:
  - smartos.images.common.base
  - smartos.images.common
  - smartos.images.common.pool
attributes:
  action_group:
    description: Use C(group/smartos.images.images) (and, for the modules that ask image servers,
      C(group/smartos.images.servers)) in C(module_defaults) to set the options they share once.
    support: full
    membership: [smartos.images.images]
  check_mode:
    details:
      - Check mode reads the host and the output directory and returns the same RV(actions), C(changed)
        and diff as the real run, and sends nothing. What only the send can tell (RV(sha1), RV(size),
        and RV(dataset_guid) and a derived RV(uuid) while the snapshot is still to be made) is null.
  diff_mode:
    support: full
    details:
      - The diff shows the output files, the image (name@version) they describe and the module's snapshot,
        before and after.
  idempotent:
    details:
      - An existing manifest is recognised by its C(files[0].dataset_guid) (the guid of the snapshot sent),
        its origin, compression and fields, never by its timestamps; the file must still have its size.
      - With O(dataset) or O(vm), the module's snapshot is named for the image's name and version, so a second
        run finds it again. When it is gone (O(remove_snapshot), or removed by hand), an output with the same
        options counts as made; give a new O(version) (or remove the output) to make a new image.
  platform:
    details:
      - Needs the C(zfs) command on the target; C(vmadm) (for O(vm)) and C(zoneadm) are used where they exist.
options:
  vm:
    description:
      - The UUID of a VM to make the image of. Its dataset is found as C(vmadm) reports it (the zone root
        C(<pool>/<uuid>), or disk0 C(<pool>/<uuid>-disk0) or C(<pool>/<uuid>/disk0) for KVM and bhyve);
        without C(vmadm), the first of those three that exists on O(pool) (disks first).
      - A VM that is not stopped is refused unless O(stop_vm=true). For a KVM or bhyve VM, the image's
        C(nic_driver), C(disk_driver), C(cpu_type) and C(image_size) come from the VM.
      - One of O(vm), O(dataset) and O(snapshot) is required.
    type: str
  dataset:
    description:
      - A filesystem (an image of type V(zone-dataset)) or volume (V(zvol)) to make the image of, as it is now.
      - The module snapshots it as C(<dataset>@smartos-images-create-<12 hex digits of the name and version>),
        reuses that snapshot on later runs, and removes it with O(remove_snapshot=true).
    type: str
  snapshot:
    description:
      - An existing snapshot (C(dataset@name)) to make the image of. The module never removes it.
    type: str
  stop_vm:
    description:
      - Stop a running O(vm) with C(vmadm stop) before it is snapshotted. Only when a snapshot is to be made;
        the VM is left stopped.
      - Without C(vmadm) (a host that is not SmartOS) a VM's state cannot be known and nothing is stopped.
    type: bool
    default: false
  output_dir:
    description:
      - The directory the image file and manifest(s) are written to; made if missing.
    type: path
    required: true
  name:
    description:
      - The image name (letters, digits, space and C(. _ / -), at most 1024 characters). Also names the
        files, with O(version); the longest file name must fit in the 255 bytes a file system allows (with 27 for
        the temporary name), or the task fails before anything runs.
    type: str
    required: true
  version:
    description:
      - The image version (letters, digits and C(. _ / + -), at most 512 characters).
    type: str
    required: true
  description:
    description:
      - A short description of the image. Required with O(dsmanifest=true) (at most 255 characters there).
    type: str
  homepage:
    description:
      - A URL (C(http://) or C(https://)) with more about the image.
    type: str
  uuid:
    description:
      - The UUID of the image. By default it is derived from the snapshot's guid, O(name), O(version), the type
        and O(origin), so the same snapshot gives the same UUID on every run and on every host.
    type: str
  os:
    description:
      - The OS of the image. Defaults to the origin image's, else V(smartos).
    type: str
    choices: [smartos, linux, windows, bsd, illumos, other]
  type:
    description:
      - The image type. Defaults to the origin image's, else V(zone-dataset) for a filesystem and V(zvol) for a
        volume. It must fit the dataset (V(zvol) only for a volume).
    type: str
    choices: [zone-dataset, lx-dataset, lxd, zvol, docker, other]
  compression:
    description:
      - How the send stream is compressed. V(gzip) (level 6) is the fastest; V(bzip2) (level 9) and V(xz)
        (preset 3) give smaller files; V(none) writes the stream as is.
      - C(imgadm create) writes V(none) by default; V(gzip) is the default here on purpose, as the file is made
        to be copied and served.
    type: str
    choices: [gzip, bzip2, xz, none]
    default: gzip
  origin:
    description:
      - The UUID of an image installed on the dataset's pool to make an incremental image on. The dataset must
        be a clone of C(<pool>/<origin>@final) (directly or through its origins), as a VM made from that image
        is. The manifest gets C(origin), and the fields the reference lists as inherited (C(type), C(os),
        C(requirements), C(users), C(billing_tags), C(traits), C(generate_passwords),
        C(inherited_directories), C(nic_driver), C(disk_driver), C(cpu_type), C(image_size)) come from the
        origin's cached manifest unless given; an empty array there (such as an empty C(billing_tags)) is not
        inherited, as in C(imgadm create).
    type: str
  owner:
    description:
      - The UUID of the image's owner; also the v1 C(creator_uuid), which the v1 to v2 upgrade turns into
        C(owner). Defaults to C(00000000-0000-0000-0000-000000000000) (owners mean nothing outside a data center).
    type: str
  requirements:
    description:
      - The image's C(requirements) (C(networks), C(brand), C(ssh_key), C(min_ram), C(max_ram),
        C(min_platform), C(max_platform), C(bootrom)), checked as node-imgmanifest checks them.
    type: dict
  fields:
    description:
      - Other v2 manifest fields, such as C(tags), C(users), C(billing_tags), C(traits), C(generate_passwords),
        C(inherited_directories), C(nic_driver), C(disk_driver), C(cpu_type), C(image_size), C(public), C(acl),
        C(eula), checked as node-imgmanifest checks them.
      - Fields with their own option, and those the module sets (C(v), C(uuid), C(published_at), C(files),
        C(origin), C(state)), are refused here.
    type: dict
  dsmanifest:
    description:
      - Also write a v1 (DSAPI) manifest C(<name>-<version>.dsmanifest) for old DSAPI servers, with the fields
        the SmartOS wiki lists as required (C(uuid), C(name), C(version), C(description), C(published_at),
        C(creator_uuid), C(creator_name), C(urn), C(type), C(os), C(files) with C(path), C(sha1), C(size)).
      - Needs O(description) and O(creator_name); DSAPI's stricter names and versions (a letter first, then
        letters, digits, C(- . _), at most 32) are checked; incremental images have no v1 form.
    type: bool
    default: false
  creator_name:
    description:
      - The v1 C(creator_name), usually your organisation; also the second part of the v1 C(urn)
        C(smartos:<creator_name>:<name>:<version>).
    type: str
  remove_snapshot:
    description:
      - Remove the snapshot this module made (O(dataset), O(vm)) once the files are written. A snapshot given by
        O(snapshot) is never removed.
    type: bool
    default: false
notes:
  - O(pool) is only used to find a O(vm)'s dataset without C(vmadm); an O(origin) image is looked for on the
    pool of the dataset (C(zfs send -i) needs both on one pool).
  - O(host_root) and O(layout) say where imgadm's cached manifest of an O(origin) image is.
  - When the compression changes, the file of the manifest that is replaced is removed.
  - Unlike C(imgadm create), nothing is run inside the VM (no prepare-image script) and no C(min_platform) is added.
seealso:
  - module: smartos.images.smartos_image
  - module: smartos.images.smartos_image_facts
  - name: imgadm(8)
    description: C(imgadm create) makes images from VMs on SmartOS.
    link: https://smartos.org/man/8/imgadm
'''

EXAMPLES = r'''
- name: Make an image of a VM (stopping it first if it runs) in /var/tmp/images
  smartos.images.smartos_image_create:
    vm: 79ae2d1c-5e48-4ae4-9c2f-f9e4d6b7cf0d
    stop_vm: true
    output_dir: /var/tmp/images
    name: example
    version: 1.0.0
    description: An example image
    requirements:
      networks:
        - name: net0
          description: public
  register: created

- name: Install it on this host from the files just written
  smartos.images.smartos_image:
    manifest: "{{ created.manifest_path }}"
    file: "{{ created.file_path }}"

- name: The same snapshot, xz-compressed, with a v1 manifest for an old DSAPI server
  smartos.images.smartos_image_create:
    snapshot: "{{ created.snapshot }}"
    output_dir: /var/tmp/images
    name: example-xz
    version: 1.0.0
    description: The same data, smaller
    compression: xz
    dsmanifest: true
    creator_name: example-org

- name: Another image of the VM's dataset with bzip2, dropping the module's snapshot afterwards
  smartos.images.smartos_image_create:
    dataset: "{{ created.dataset }}"
    output_dir: /var/tmp/images
    name: example-bz2
    version: 1.0.0
    compression: bzip2
    remove_snapshot: true
'''

RETURN = r'''
uuid:
  description: The image UUID (null in check mode while it derives from a snapshot still to be made).
  returned: always
  type: str
  sample: 6b2f1d0c-1f7e-5d43-9d67-0c2b4c5a7e21
manifest:
  description:
    - The v2 manifest written (or already there). In check mode, when a file is still to be written, what is
      known of it before the send (no C(published_at), no C(files[0].sha1) or C(size)).
  returned: always
  type: dict
  sample: {"v": 2, "uuid": "6b2f1d0c-1f7e-5d43-9d67-0c2b4c5a7e21", "owner": "00000000-0000-0000-0000-000000000000",
           "name": "example", "version": "1.0.0", "state": "active", "disabled": false, "public": true,
           "published_at": "2025-01-01T12:00:00.000Z", "type": "zone-dataset", "os": "smartos",
           "files": [{"sha1": "3bc7f0d7e4bd0a2c6a7a4a7b1e0a4dd8f6b1c8a2", "size": 246812672,
                      "compression": "gzip", "dataset_guid": "11192632609860586301"}]}
manifest_path:
  description: The v2 manifest's path.
  returned: always
  type: str
  sample: /var/tmp/images/example-1.0.0.imgmanifest
file_path:
  description: The image file's path.
  returned: always
  type: str
  sample: /var/tmp/images/example-1.0.0.zfs.gz
dsmanifest_path:
  description: The v1 manifest's path (null without O(dsmanifest)).
  returned: always
  type: str
  sample: /var/tmp/images/example-1.0.0.dsmanifest
dataset:
  description: The dataset the image is made of.
  returned: always
  type: str
  sample: zones/example-image-source
snapshot:
  description: The snapshot sent (or to send); with O(remove_snapshot), it is gone after the run.
  returned: always
  type: str
  sample: zones/example-image-source@smartos-images-create-5c1f0d2e9a7b
dataset_guid:
  description: The guid of the snapshot, as C(files[0].dataset_guid) (null in check mode before the snapshot exists).
  returned: always
  type: str
  sample: "11192632609860586301"
sha1:
  description: The SHA-1 of the image file (null in check mode when the file is still to be written).
  returned: always
  type: str
  sample: 3bc7f0d7e4bd0a2c6a7a4a7b1e0a4dd8f6b1c8a2
size:
  description: The size of the image file in bytes (null in check mode when the file is still to be written).
  returned: always
  type: int
  sample: 246812672
actions:
  description:
    - The planned actions in order, the same in check mode and in the real run; empty when nothing changes.
      C(stop_vm), C(snapshot), C(send) (with C(snapshot), C(incremental_from), C(file), C(compression)),
      C(write_manifest), C(write_dsmanifest), C(remove_file) (the file of a replaced manifest, or a killed run's
      temporary file, first), C(remove_snapshot).
  returned: always
  type: list
  elements: dict
  sample: [{"action": "snapshot", "snapshot": "zones/example-image-source@smartos-images-create-5c1f0d2e9a7b"},
           {"action": "send", "snapshot": "zones/example-image-source@smartos-images-create-5c1f0d2e9a7b",
            "incremental_from": null, "file": "/var/tmp/images/example-1.0.0.zfs.gz", "compression": "gzip"},
           {"action": "write_manifest", "path": "/var/tmp/images/example-1.0.0.imgmanifest"}]
seconds:
  description: Seconds the actions took (0 in check mode and when nothing changed).
  returned: always
  type: float
  sample: 9.482
'''

from ansible_collections.smartos.images.plugins.module_utils._common import new_module, run_worker
from ansible_collections.smartos.images.plugins.module_utils._create import ImageCreator
from ansible_collections.smartos.images.plugins.module_utils._runner import Runner


def main():
    options = dict(
        vm=dict(type='str'),
        dataset=dict(type='str'),
        snapshot=dict(type='str'),
        stop_vm=dict(type='bool', default=False),
        output_dir=dict(type='path', required=True),
        name=dict(type='str', required=True),
        version=dict(type='str', required=True),
        description=dict(type='str'),
        homepage=dict(type='str'),
        uuid=dict(type='str'),
        os=dict(type='str', choices=['smartos', 'linux', 'windows', 'bsd', 'illumos', 'other']),
        type=dict(type='str', choices=['zone-dataset', 'lx-dataset', 'lxd', 'zvol', 'docker', 'other']),
        compression=dict(type='str', default='gzip', choices=['gzip', 'bzip2', 'xz', 'none']),
        origin=dict(type='str'),
        owner=dict(type='str'),
        requirements=dict(type='dict'),
        fields=dict(type='dict'),
        dsmanifest=dict(type='bool', default=False),
        creator_name=dict(type='str'),
        remove_snapshot=dict(type='bool', default=False),
    )
    module = new_module(
        options, ('pool', 'host'),
        mutually_exclusive=[('vm', 'dataset', 'snapshot')],
        required_one_of=[('vm', 'dataset', 'snapshot')],
        required_if=[('dsmanifest', True, ('description', 'creator_name'))],
    )
    run_worker(module, lambda m: ImageCreator(m.params, Runner(m), check_mode=m.check_mode), diff=module._diff)


if __name__ == '__main__':
    main()
