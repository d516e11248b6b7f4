#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: smartos_image
short_description: Import, install, delete and prune SmartOS images on a ZFS pool
version_added: 0.1.0
description:
  - Makes images present on or absent from a ZFS pool, the way C(imgadm import), C(install),
    C(delete), C(vacuum) and C(update) do, declaratively, and shares the host with C(imgadm) (the
    same cached manifests under C(/var/imgadm/images), the same per-image import lock, the same
    C(@final) snapshot).
  - An image is named by O(uuid), by O(name) (and O(version)), or given as local files (O(manifest)
    and O(file)); O(images) declares several at once, each present or absent, in one run that reads
    the host once.
  - An import streams the image file once. It is counted, hashed (SHA-1), decompressed and fed
    to C(zfs receive) at the same time, with constant memory whatever the image size. Missing
    ancestors of an incremental image are imported first, base to top; independent images download
    in parallel.
  - Each image is received as C(<pool>/<uuid>-partial) and renamed to C(<pool>/<uuid>) only after
    its size, C(Content-Length) and SHA-1 match the manifest and C(zfs receive) succeeded (a manifest
    without C(files[0].sha1) is checked with the server's C(Content-MD5) instead, as imgadm does, and
    refused when the server sends none). Only images whose manifest says C(state) C(active) are
    imported, as in imgadm. On any failure the partial dataset is destroyed and no manifest is cached,
    so the host is as before. A partial dataset left by a killed run is cleaned up by the next run.
  - Deleting refuses, naming them, while any dataset (a VM, a VM disk, a child image) is a clone of
    one of the image's snapshots.
extends_documentation_fragment:
  - smartos.images.common.base
  - smartos.images.common
  - smartos.images.common.pool
  - smartos.images.common.server
  - smartos.images.common.source
  - smartos.images.image
attributes:
  action_group:
    description: Use C(group/smartos.images.images) (and, for the modules that ask image servers,
      C(group/smartos.images.servers)) in C(module_defaults) to set the options they share once.
    support: full
    membership: [smartos.images.images, smartos.images.servers]
  check_mode:
    details:
      - Check mode reads the host and the manifests from the sources (and checks a local file's size
        and SHA-1), never downloads an image file, and reports the same actions, C(changed) and diff
        as the real run.
  diff_mode:
    support: full
    details:
      - The diff is the set of images installed on O(pool) (UUID and name@version), before and after.
  idempotent:
    details:
      - An image named without O(version) is the newest one the sources offer, asked again on every
        run; a newer one published since the last run is imported then. Pin UUIDs for the same
        image everywhere (see the examples).
  platform:
    details:
      - Needs the C(zfs) command on the target; C(zoneadm) and C(sysinfo) are used where they exist.
options:
  uuid:
    description:
      - The UUID of the image, in lower case.
    type: str
  name:
    description:
      - The name of the image. With O(state=present) and no O(version), the newest active image of
        that name (by C(published_at)) across the sources; an installed image of that name and
        version counts as present.
      - With O(state=absent), every installed image of that name (and O(version)).
    type: str
  version:
    description:
      - The version of the image named by O(name), a string.
      - A number is refused, as YAML makes C(1.10) the number 1.1; quote it. A whole number is taken as its digits.
    type: raw
  filters:
    description:
      - More conditions on an image named by O(name), as C(imgadm avail FIELD=VALUE) takes them, for
        names that several kinds of image share (C(os), C(type), C(requirements.brand), ...).
    type: dict
  manifest:
    description:
      - Install from files on the host (C(imgadm install -m -f)). The path of the image manifest;
        a v1 (DSAPI) manifest is upgraded, then validated; every bad field is listed.
      - The file's size and SHA-1 are checked before anything is received. An incremental image
        needs its origin installed first.
    type: path
  file:
    description:
      - With O(manifest), the path of the (compressed) image file.
    type: path
  images:
    description:
      - Several images in one task, each a dict with one of C(uuid), C(name) (with C(version),
        C(filters)), or C(manifest) and C(file), and optionally its own C(state).
      - The host is read once; images to import download in parallel and are received in
        dependency order. A play that declares 30 images on a host that has them all costs one
        module run and no downloads.
      - Every entry is checked before anything runs; an unknown key or state is refused. An empty
        list, without O(prune_unused) or O(update_manifests), is refused as a task that asks for nothing.
      - An image declared present and also absent (by UUID, or by a C(name) it bears) is refused.
    type: list
    elements: dict
    suboptions:
      uuid: {description: "As O(uuid).", type: str}
      name: {description: "As O(name).", type: str}
      version: {description: "As O(version); needs C(name).", type: raw}
      filters: {description: "As O(filters); needs C(name).", type: dict}
      manifest: {description: "As O(manifest); needs C(file).", type: path}
      file: {description: "As O(file); needs C(manifest).", type: path}
      state: {description: "The state of this image; O(state) when not given.", type: str, choices: [present, absent]}
  state:
    description:
      - V(present) imports what is missing; V(absent) deletes what is installed. The default for
        each entry of O(images).
    type: str
    choices: [present, absent]
    default: present
  prune_unused:
    description:
      - Also delete every image on O(pool) that nothing uses (C(imgadm vacuum)), again and again,
        so that chains only unused images hang on go too. An image is in use while any dataset is a
        clone of one of its snapshots (a zone root, a VM disk C(<pool>/<uuid>-diskN) or
        C(<pool>/<uuid>/diskN), a child image, anything).
      - Images declared present in the same task, and those in O(keep), stay.
      - Check mode lists exactly what would go, in RV(unused), and removes nothing.
      - When not set, nothing is pruned. A task must name an image, or set this or O(update_manifests).
      - An image whose cached manifest is missing or unusable cannot be matched by the C(name) entries of
        O(keep); while O(keep) has such entries, it stays, with a warning.
    type: bool
  keep:
    description:
      - With O(prune_unused), images that stay although unused, by UUID, C(name) or C(name@version).
      - An entry that cannot be meant as a name (an upper-case UUID, an empty string, a dict or a list that
        Ansible turned into text) is refused, so that it never lets the image it was meant to keep be pruned.
    type: list
    elements: str
    default: []
  lock_timeout:
    description:
      - Seconds to wait for the per-image import lock (C(/var/run/img.<uuid>.import.lock)) that C(imgadm)
        or another run holds while it imports the same image; then the task fails, naming it. V(0) does not wait.
    type: int
    default: 3600
notes:
  - When an import fails because of what one source sent (a SHA-1, C(Content-MD5), size or C(Content-Length)
    error, a download that broke off after its O(retries), an error answer for the file, or bytes that do not
    decompress), the image is imported from the next source that has it (the same UUID and origin, usable on this
    host), with a warning naming the source that failed and why. Each attempt starts from a clean
    C(<pool>/<uuid>-partial). Only when every source that has the image fails is the task failed, with one error
    listing each source and its reason. RV(imported_from) and RV(source) name the source each image actually came
    from, and so does imgadm's cached manifest. C(imgadm import) stops at the first such error.
  - A failure of the host (C(zfs receive), a lock, a cache file that cannot be written) would fail the same way
    from any source, and is not retried elsewhere; nor is an install from local files (O(manifest) and O(file)).
  - A source listed twice (another channel, other credentials) is one server; it is not tried again.
  - An image named by O(name) is looked for in each source's listing, filtered on the host too (name, version,
    O(filters) C(os) and C(type), active images, the source's channel), as a static server, such as a mirror made by
    M(smartos.images.smartos_image_mirror), ignores the query string and answers its whole list.
seealso:
  - module: smartos.images.smartos_image_source
  - module: smartos.images.smartos_image_facts
  - module: smartos.images.smartos_image_create
  - name: imgadm(8)
    description: The SmartOS image tool this module works alongside.
    link: https://smartos.org/man/8/imgadm
'''

EXAMPLES = r'''
- name: Import an image from the host's configured image sources
  smartos.images.smartos_image:
    uuid: 2f1dc911-6401-4fa4-8e9d-67ea2e39c271

- name: Import an image from a local image server instead
  smartos.images.smartos_image:
    uuid: 2f1dc911-6401-4fa4-8e9d-67ea2e39c271
    source:
      - http://127.0.0.1:8080
  register: imported

- name: Show what was imported
  ansible.builtin.debug:
    msg: "{{ imported.image.name }}@{{ imported.image.version }}: {{ imported.downloaded_bytes }} bytes"

- name: Import over TLS from a mirror whose certificate a private CA signed, with more patience
  smartos.images.smartos_image:
    uuid: 2f1dc911-6401-4fa4-8e9d-67ea2e39c271
    source:
      - https://127.0.0.1:8443
    ca_path: "{{ mirror_ca_file }}"
    timeout: 60
    retries: 5

- name: The newest base-64-lts for SmartOS zones (asked again on every run)
  smartos.images.smartos_image:
    name: base-64-lts
    filters:
      os: smartos
      type: zone-dataset
  register: newest

- name: A given version of it
  smartos.images.smartos_image:
    name: base-64-lts
    version: 24.4.1

- name: Pin fleet-wide - resolve "newest" once on the first host, then every host imports that UUID
  smartos.images.smartos_image:
    uuid: "{{ hostvars[ansible_play_hosts_all[0]].newest.uuid }}"

- name: Several images in one task, each with its own state
  smartos.images.smartos_image:
    images:
      - uuid: 2f1dc911-6401-4fa4-8e9d-67ea2e39c271
      - name: base-64-lts
        version: 24.4.1
      - name: an-image-we-retired
        state: absent

- name: Delete the image (fails while a VM is cloned from it)
  smartos.images.smartos_image:
    uuid: 2f1dc911-6401-4fa4-8e9d-67ea2e39c271
    state: absent

- name: Remove every unused image but the base image
  smartos.images.smartos_image:
    prune_unused: true
    keep:
      - base-64-lts
'''

RETURN = r'''
uuid:
  description: The image UUID (for O(name), the one it resolved to).
  returned: when the task names one image (O(uuid), O(name) or O(manifest))
  type: str
  sample: 2f1dc911-6401-4fa4-8e9d-67ea2e39c271
dataset:
  description: The image's ZFS dataset, C(<pool>/<uuid>).
  returned: when the task names one image
  type: str
  sample: zones/2f1dc911-6401-4fa4-8e9d-67ea2e39c271
image:
  description:
    - The image manifest. For an import, as the source sent it (upgraded to v2); otherwise the
      manifest imgadm cached for the image, or just C({uuid}) when there is none.
  returned: when the task names one image
  type: dict
  sample: {"v": 2, "uuid": "2f1dc911-6401-4fa4-8e9d-67ea2e39c271", "name": "base-64-lts",
           "version": "24.4.1", "type": "zone-dataset", "os": "smartos", "state": "active"}
source:
  description:
    - The source the image came from (credentials hidden) - the first that has it, or, when the import from that
      one failed, the source it was imported from in the end (see RV(imported_from)).
  returned: when the one image the task names is to be imported from a source
  type: str
  sample: https://images.smartos.org
imported_from:
  description:
    - Each image imported from a source, by UUID, with the source it came from (credentials hidden). In check mode,
      and before the imports run, the source planned (the first that has the image); after them, the source each
      image was actually imported from, another one than planned when the import from the first failed (a warning
      says which and why). Images installed from local files are not in it.
    - When a run fails because no source has an image, or every source that has it failed, the failure carries a
      C(sources) instead, the list of the sources asked, in order.
  returned: when the task imports images (empty when they all come from local files)
  type: dict
  sample: {"c58161c0-2547-11e2-a75e-9fdca1940570": "https://images.smartos.org",
           "900cffef-55e3-4e7d-b7ec-ccf439a159e3": "https://mirror.example.org"}
updates:
  description: One entry per image on O(pool) that O(update_manifests) looked at, with C(uuid), C(result)
    (V(refreshed), V(repaired), V(unchanged), V(not found) or V(failed)), and where they apply C(source),
    C(fields) (those refreshed), C(repaired) (the snapshot made C(@final)) and C(msg) (why it failed).
  returned: when O(update_manifests) is set
  type: list
  elements: dict
  sample: [{"uuid": "2f1dc911-6401-4fa4-8e9d-67ea2e39c271", "result": "failed",
            "msg": "image \"2f1dc911-6401-4fa4-8e9d-67ea2e39c271\" is missing its original snapshot"}]
results:
  description: One entry per image of O(images), in order.
  returned: when O(images) is given
  type: list
  elements: dict
  sample: [{"uuid": "2f1dc911-6401-4fa4-8e9d-67ea2e39c271", "state": "present", "changed": true,
            "imported": ["2f1dc911-6401-4fa4-8e9d-67ea2e39c271"]}]
  contains:
    uuid:
      description: The image UUID (resolved for a name); absent for a name with O(state=absent).
      type: str
    uuids:
      description: For O(state=absent), the installed images it deletes.
      type: list
      elements: str
    state:
      description: The declared state.
      type: str
    changed:
      description: Whether this entry imports or deletes anything.
      type: bool
    imported:
      description: The images this entry imports, base first (its missing ancestors, then itself).
      type: list
      elements: str
    image:
      description: The manifest, as for the top-level RV(image).
      type: dict
    source:
      description: The source the image comes from.
      type: str
    recorded:
      description: True when the image was installed without a cached manifest and this run records it.
      type: bool
actions:
  description:
    - The planned actions in the order they run (imports base first, then deletes children first,
      then refreshes and repairs, then records of missing cached manifests, then clean-ups of
      temporary files left by killed runs), the same in check mode and in the real run. Empty when
      nothing changes.
  returned: always
  type: list
  elements: dict
  sample: [{"action": "import", "uuid": "2f1dc911-6401-4fa4-8e9d-67ea2e39c271",
            "dataset": "zones/2f1dc911-6401-4fa4-8e9d-67ea2e39c271"}]
imported:
  description: Every image imported (or to import, in check mode), base first.
  returned: always
  type: list
  elements: str
  sample: ["c58161c0-2547-11e2-a75e-9fdca1940570", "900cffef-55e3-4e7d-b7ec-ccf439a159e3"]
removed:
  description: Every image deleted (or to delete), children first, unused ones included.
  returned: always
  type: list
  elements: str
  sample: ["900cffef-55e3-4e7d-b7ec-ccf439a159e3"]
unused:
  description: The images O(prune_unused) deletes (or would delete).
  returned: when O(prune_unused=true)
  type: list
  elements: str
  sample: ["900cffef-55e3-4e7d-b7ec-ccf439a159e3", "c58161c0-2547-11e2-a75e-9fdca1940570"]
downloaded_bytes:
  description: Bytes of image files downloaded (0 in check mode and when nothing was imported).
  returned: always
  type: int
  sample: 246812672
seconds:
  description: Seconds the imports, deletes and refreshes took (0 in check mode and when nothing changed).
  returned: always
  type: float
  sample: 7.412
msg:
  description: Why fewer images were imported than planned.
  returned: when another process imported an image while this one waited for its import lock
  type: str
  sample: image(s) 2f1dc911-6401-4fa4-8e9d-67ea2e39c271 were imported by another process while waiting for the import lock
'''

from ansible_collections.smartos.images.plugins.module_utils._common import new_module, run_worker
from ansible_collections.smartos.images.plugins.module_utils._images import ImageManager
from ansible_collections.smartos.images.plugins.module_utils._runner import Runner

# how one image is named: top level, and in each entry of images
IMAGE_OPTIONS = dict(
    uuid=dict(type='str'),
    name=dict(type='str'),
    version=dict(type='raw'),   # a YAML number is refused, not turned into other digits
    filters=dict(type='dict'),
    manifest=dict(type='path'),
    file=dict(type='path'),
)


def main():
    options = dict(
        IMAGE_OPTIONS,
        images=dict(type='list', elements='dict',
                    options=dict(IMAGE_OPTIONS, state=dict(type='str', choices=['present', 'absent']))),
        state=dict(type='str', default='present', choices=['present', 'absent']),
        prune_unused=dict(type='bool'), update_manifests=dict(type='bool'),  # no defaults: required_one_of sees them
        keep=dict(type='list', elements='str', default=[]),
        lock_timeout=dict(type='int', default=3600),
    )
    module = new_module(
        options, ('pool', 'host', 'server', 'source'),
        mutually_exclusive=[('uuid', 'name', 'manifest', 'images')],
        required_one_of=[('uuid', 'name', 'manifest', 'images', 'prune_unused', 'update_manifests')],
        required_together=[('manifest', 'file')],
        required_by={'version': 'name', 'filters': 'name'},
    )
    run_worker(module, lambda m: ImageManager(m.params, Runner(m), check_mode=m.check_mode), diff=module._diff)


if __name__ == '__main__':
    main()
