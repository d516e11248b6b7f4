#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: smartos_image
short_description: Import or delete a SmartOS image on a ZFS pool
version_added: 0.1.0
description:
  - Makes an image, named by its UUID, present on or absent from a ZFS pool, the way
    C(imgadm import) and C(imgadm delete) do, and shares the host with C(imgadm) (the same cached
    manifests under C(/var/imgadm/images), the same per-image import lock, the same C(@final)
    snapshot).
  - The import streams the image file once. It is counted, hashed (SHA-1), decompressed and fed
    to C(zfs receive) at the same time, with constant memory whatever the image size.
  - The image is received as C(<pool>/<uuid>-partial) and renamed to C(<pool>/<uuid>) only after
    its size, C(Content-Length) and SHA-1 match the manifest and C(zfs receive) succeeded. On any
    failure the partial dataset is destroyed and no manifest is cached, so the host is as before.
    A partial dataset left by a killed run is cleaned up by the next run.
  - A download that breaks off is resumed where it stopped (HTTP Range) up to O(retries) times.
  - Deleting refuses, naming them, while any dataset (a VM, a child image) is a clone of one of the
    image's snapshots.
author:
  - smartos.images contributors (@smartos-images)
extends_documentation_fragment:
  - smartos.images.common
  - smartos.images.common.pool
  - smartos.images.common.server
  - smartos.images.common.attributes
attributes:
  check_mode:
    support: full
    details:
      - Check mode reads the host and the image manifest from the sources, never downloads the
        image file, and reports the same plan, C(changed) and diff as the real run.
  diff_mode:
    support: full
    details:
      - The diff is the set of images installed on O(pool) (UUID and name@version), before and after.
  idempotent:
    support: full
  platform:
    details:
      - Needs the C(zfs) command on the target; C(zoneadm) is used where it exists.
options:
  uuid:
    description:
      - The UUID of the image, in lower case.
    type: str
    required: true
  state:
    description:
      - V(present) imports the image if it is not installed on O(pool).
      - V(absent) deletes it if it is installed; this fails while datasets are cloned from it.
    type: str
    choices: [present, absent]
    default: present
  source:
    description:
      - IMGAPI image server URLs to import from instead of the host's configured sources (as
        C(imgadm import -S)).
      - Without it, the host's sources are used in their order (C(/var/imgadm/imgadm.conf), or
        C(/var/db/imgadm/sources.list) on a host with the original layout), IMGAPI and DSAPI alike;
        see M(smartos.images.smartos_image_source).
      - Sources are tried in order until one has the image as an active image. A source that fails
        (unreachable, HTTP error, bad answer) is skipped, where imgadm would give up; the error lists
        every source with its answer when none has the image.
      - A C(?channel=NAME) on a URL selects that channel, as in imgadm.
      - Credentials in a URL (C(https://user:password@host)) are used but never shown.
    type: list
    elements: str
notes:
  - The image is received with C(zfs receive -u) and stays unmounted; VMs are clones of its
    C(@final) snapshot and never use its mountpoint.
  - Docker-type images are not supported yet and are refused with a clear error.
  - On a host with the original layout, an import also records what imgadm v1 recorded
    (C(/var/db/imgadm/<uuid>.json) and the C(imgadm:uuid) property); a delete removes that file too.
seealso:
  - module: smartos.images.smartos_image_source
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

- name: Delete the image (fails while a VM is cloned from it)
  smartos.images.smartos_image:
    uuid: 2f1dc911-6401-4fa4-8e9d-67ea2e39c271
    state: absent
'''

RETURN = r'''
uuid:
  description: The image UUID.
  returned: always
  type: str
  sample: 2f1dc911-6401-4fa4-8e9d-67ea2e39c271
dataset:
  description: The image's ZFS dataset, C(<pool>/<uuid>).
  returned: always
  type: str
  sample: zones/2f1dc911-6401-4fa4-8e9d-67ea2e39c271
image:
  description:
    - The image manifest. For an import, as the source sent it; otherwise the manifest imgadm
      cached for the image, or just C({uuid}) when there is none.
  returned: always
  type: dict
  sample: {"v": 2, "uuid": "2f1dc911-6401-4fa4-8e9d-67ea2e39c271", "name": "base-64-lts",
           "version": "24.4.1", "type": "zone-dataset", "os": "smartos", "state": "active"}
source:
  description: The source the manifest came from (credentials hidden).
  returned: when the image is to be imported
  type: str
  sample: https://images.smartos.org
actions:
  description:
    - The planned actions, the same in check mode and in the real run. Empty when nothing changes.
  returned: always
  type: list
  elements: dict
  sample: [{"action": "import", "uuid": "2f1dc911-6401-4fa4-8e9d-67ea2e39c271",
            "dataset": "zones/2f1dc911-6401-4fa4-8e9d-67ea2e39c271"}]
downloaded_bytes:
  description: Bytes of the image file downloaded (0 in check mode and when nothing changed).
  returned: always
  type: int
  sample: 246812672
seconds:
  description: Seconds the import or delete took (0 in check mode and when nothing changed).
  returned: always
  type: float
  sample: 7.412
msg:
  description: Why nothing changed although the plan said it would.
  returned: when another process imported the image while this one waited for the import lock
  type: str
  sample: image 2f1dc911-6401-4fa4-8e9d-67ea2e39c271 was imported by another process while waiting for its lock
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smartos.images.plugins.module_utils._common import (
    hide_url_passwords, host_argument_spec, pool_argument_spec, server_argument_spec,
)
from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError
from ansible_collections.smartos.images.plugins.module_utils._images import ImageManager
from ansible_collections.smartos.images.plugins.module_utils._runner import Runner


def main():
    argument_spec = dict(
        uuid=dict(type='str', required=True),
        state=dict(type='str', default='present', choices=['present', 'absent']),
        source=dict(type='list', elements='str'),
    )
    argument_spec.update(pool_argument_spec())
    argument_spec.update(host_argument_spec())
    argument_spec.update(server_argument_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    hide_url_passwords(module, module.params['source'])
    try:
        manager = ImageManager(module.params, Runner(module), check_mode=module.check_mode)
        result = manager.run(diff=module._diff)
    except ImageError as e:
        module.fail_json(msg=e.msg, **e.evidence)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
