#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: smartos_image_mirror
short_description: Keep a local mirror of SmartOS images that a web server serves as an IMGAPI source
version_added: 0.1.0
description:
  - Keeps a directory of images copied from upstream image servers (IMGAPI or DSAPI), laid out so that
    a static web server answers the read routes of IMGAPI from it (the role C(smartos.images.image_mirror)
    sets up nginx for it). Hosts then list it first among their sources and each image crosses the WAN once per fleet.
  - Runs on the mirror host, which needs only Python (any Linux or SmartOS host), or on the controller
    with C(delegate_to).
  - Each listed image is mirrored with its origin ancestors. Its file is streamed once into
    C(images/<uuid>/file.partial), its size (C(Content-Length)) and SHA-1 checked against the
    manifest as it arrives (a manifest without C(files[0].sha1) is checked with the answer's
    C(Content-MD5), and the SHA-1 computed is then added to the stored manifest), and renamed to
    C(images/<uuid>/file) only when verified; the manifest is written after it.
  - A C(file.partial) left by an interrupted run is hashed and the download resumed from its end (HTTP Range).
  - A run with nothing new asks upstream for no file; images named by UUID that are mirrored are not
    asked about at all, a O(images[].name) entry asks for the listing.
  - "Layout under O(path): C(images/<uuid>/manifest.json) (the v2 manifest, compact JSON as IMGAPI
    serializes it; a v1 DSAPI manifest is stored upgraded), C(images/<uuid>/file) (the image file,
    byte for byte), C(images.json) (every mirrored manifest, sorted by C(published_at) then C(uuid),
    what C(GET /images) answers), C(ping.json) (what C(GET /ping) answers). Temporary files are
    C(file.partial) and names starting with C(.), including the lock file C(.lock)."
  - What is on disk is checked on every run. An image whose C(manifest.json) does not parse or is not a
    usable v2 manifest, or whose file is missing or not the manifest's size, is withdrawn (its
    C(manifest.json) removed, its file kept as C(file.partial)) with a warning, and mirrored again
    when it is listed. Entries of C(images/) that are no image directory are reported and left alone;
    temporary files of killed runs are removed. A mirrored file is checked by its size on each run, not
    hashed again (hosts check the SHA-1 of what they download); O(verify=true) hashes every one and
    downloads a damaged one again.
  - Images to remove go before any download, and a file larger than the free space left is refused
    before its first byte.
author:
  - smartos.images contributors (@smartos-images)
extends_documentation_fragment:
  - smartos.images.common.base
  - smartos.images.common.server
attributes:
  action_group:
    description: Use C(group/smartos.images.servers) in C(module_defaults) to set the options the modules
      that ask image servers share once.
    support: full
    membership: [smartos.images.servers]
  check_mode:
    details:
      - Check mode asks upstream for manifests and listings as the real run does, downloads no file
        and writes nothing, and reports the same RV(added), RV(removed), RV(kept), RV(repaired) and diff
        (with O(verify=true) it hashes the mirrored files, reading them only).
  diff_mode:
    support: full
    details:
      - The diff is the mirrored images before and after, each side a mapping C(images) to a list of
        C(uuid name@version) sorted by UUID (see RV(diff)); the line of an image repaired by
        O(verify) has the word C(damaged) in parentheses after it on the side before.
  idempotent:
    details:
      - An image named without O(images[].version) is the newest one upstream offers, asked again on
        every run; a newer one published since is mirrored then.
  platform:
    details:
      - Needs only Python; no imgadm, zfs or SmartOS.
options:
  path:
    description:
      - The directory of the mirror; created when missing.
      - Two runs on the same directory take turns (an C(fcntl) lock on C(<path>/.lock), waited for up to an hour).
    type: path
    required: true
  images:
    description:
      - The images to mirror (or, with O(state=absent), to remove), each by C(uuid), or by C(name) with
        optional C(version) and C(filters) as M(smartos.images.smartos_image) takes them.
      - With O(state=present), a name is the newest active image of that name upstream (filtered on the
        client side too), and the origin ancestors of every image are mirrored as well.
      - With O(state=absent), a name removes every mirrored image of that name (and version); removing
        an image that another mirrored image that stays has as origin is refused.
      - An empty list with O(state=present) only checks the mirror (and, with O(prune), empties it).
    type: list
    elements: dict
    default: []
    suboptions:
      uuid:
        description: The UUID of the image, in lower case.
        type: str
      name:
        description: The name of the image.
        type: str
      version:
        description: With C(name), its version, a string (a YAML number is refused; quote it).
        type: raw
      filters:
        description: With C(name), more conditions on the image, as C(imgadm avail FIELD=VALUE) takes them.
        type: dict
  source:
    description:
      - The upstream image servers, asked in order. A URL whose path ends in C(/datasets) is a DSAPI server,
        any other an IMGAPI server; docker registries are refused.
      - A C(?channel=NAME) on an IMGAPI URL selects that channel. Credentials in a URL
        (C(https://user:password@host)) are used but never shown.
    type: list
    elements: str
    default: ['https://images.smartos.org']
  state:
    description:
      - V(present) mirrors the listed images and their ancestors; V(absent) removes the listed images.
    type: str
    choices: [present, absent]
    default: present
  prune:
    description:
      - With O(state=present), also remove every mirrored image that is not listed and is not an ancestor
        of a listed one (and any image directory left incomplete).
    type: bool
    default: false
  verify:
    description:
      - Also hash every mirrored file that stays and check its size and SHA-1 against its manifest's
        C(files[0].sha1). A file that does not match (damaged in place, its size unchanged) is reported
        with a warning and downloaded again from upstream into C(file.partial), checked against the
        mirror's manifest and renamed over the damaged file only when verified; the image is then in
        RV(repaired). The run fails, and leaves the damaged file as it is, when no upstream source has
        the image or upstream's file is no longer the one the mirror's manifest describes.
      - Upstream is asked only about damaged images, so a verify run of a sound mirror asks it nothing.
      - With V(false), a mirrored file is checked by its size only (a missing file, or one of the wrong size,
        is withdrawn and mirrored again as described above), so a run reads no file and stays cheap; a file
        damaged in place keeps being served until a verify run. Schedule one, for example weekly.
      - Hashing reads every byte of the mirror, in chunks of 1 MiB.
    type: bool
    default: false
notes:
  - Docker images are refused with a clear error.
  - Only active images are mirrored when listed; their ancestors are mirrored whatever their state, as
    hosts need them to import the image.
seealso:
  - module: smartos.images.smartos_image
  - module: smartos.images.smartos_image_source
'''

EXAMPLES = r'''
- name: Mirror an image and the newest base-64-lts (with their origins) from the public image server
  smartos.images.smartos_image_mirror:
    path: /var/imgmirror
    images:
      - uuid: 2f1dc911-6401-4fa4-8e9d-67ea2e39c271
      - name: base-64-lts
        filters:
          type: zone-dataset
  register: mirrored

- name: Show what was downloaded
  ansible.builtin.debug:
    msg: "{{ mirrored.added | map(attribute='uuid') | list }}: {{ mirrored.bytes }} bytes"

- name: Keep only base-64-lts 24.4.1, from an old DSAPI server, running on the controller
  smartos.images.smartos_image_mirror:
    path: /var/imgmirror
    source:
      - http://127.0.0.1:8081/datasets
    images:
      - name: base-64-lts
        version: 24.4.1
    prune: true
  delegate_to: localhost

- name: Weekly, hash every mirrored file and download a damaged one again
  smartos.images.smartos_image_mirror:
    path: /var/imgmirror
    verify: true

- name: Remove an image from the mirror
  smartos.images.smartos_image_mirror:
    path: /var/imgmirror
    images:
      - uuid: 2f1dc911-6401-4fa4-8e9d-67ea2e39c271
    state: absent
'''

RETURN = r'''
added:
  description: The images mirrored by this run (or to mirror, in check mode), base first, each with its
    C(uuid), C(name), C(version) and C(bytes) (the size of its file).
  returned: always
  type: list
  elements: dict
  sample: [{"uuid": "2f1dc911-6401-4fa4-8e9d-67ea2e39c271", "name": "base-64-lts", "version": "24.4.1",
            "bytes": 246812672}]
removed:
  description: The images removed (or to remove), each as in RV(added), with C(bytes) the size of its file;
    an incomplete image directory has C(name) and C(version) null and C(bytes) 0.
  returned: always
  type: list
  elements: dict
  sample: []
kept:
  description: The images that were mirrored and stay, each as in RV(added), with C(bytes) the size of its file
    (an image in RV(repaired) is not listed here).
  returned: always
  type: list
  elements: dict
  sample: [{"uuid": "c58161c0-2547-11e2-a75e-9fdca1940570", "name": "minimal-64", "version": "24.4.1",
            "bytes": 104857600}]
repaired:
  description: The mirrored images whose file O(verify) found damaged and downloaded again (or would, in check
    mode), each as in RV(added), with C(bytes) the size of its file. Always empty without O(verify).
  returned: always
  type: list
  elements: dict
  sample: [{"uuid": "c58161c0-2547-11e2-a75e-9fdca1940570", "name": "minimal-64", "version": "24.4.1",
            "bytes": 104857600}]
bytes:
  description: Bytes downloaded by this run, files of RV(repaired) included (0 in check mode and when nothing was downloaded; bytes a
    resumed download already had are not counted).
  returned: always
  type: int
  sample: 246812672
diff:
  description:
    - The mirrored images before and after the run (in check mode, as it would leave them), each side a
      mapping with one key, C(images), the list of C(uuid name@version) sorted by UUID.
    - The line of an image in RV(repaired) has the word C(damaged) in parentheses after it on the side
      before (C(uuid name@version) after), so the repair shows as a changed line.
    - Ansible's C(--diff) output shows it as a diff of the two sides.
  returned: when run with C(--diff)
  type: dict
  contains:
    before:
      description: The images mirrored before the run.
      type: dict
      returned: always
      sample: {"images": []}
    after:
      description: The images mirrored after it.
      type: dict
      returned: always
      sample: {"images": ["2f1dc911-6401-4fa4-8e9d-67ea2e39c271 base-64-lts@24.4.1"]}
  sample: {"before": {"images": []},
           "after": {"images": ["2f1dc911-6401-4fa4-8e9d-67ea2e39c271 base-64-lts@24.4.1"]}}
images:
  description: The UUIDs of every image mirrored after the run, sorted.
  returned: always
  type: list
  elements: str
  sample: ["2f1dc911-6401-4fa4-8e9d-67ea2e39c271", "c58161c0-2547-11e2-a75e-9fdca1940570"]
'''

from ansible_collections.smartos.images.plugins.module_utils._common import new_module, run_worker
from ansible_collections.smartos.images.plugins.module_utils._mirror import ImageMirror

DEFAULT_SOURCE = ['https://images.smartos.org']


def main():
    options = dict(
        path=dict(type='path', required=True),
        images=dict(type='list', elements='dict', default=[],
                    options=dict(uuid=dict(type='str'), name=dict(type='str'), version=dict(type='raw'),
                                 filters=dict(type='dict'))),
        source=dict(type='list', elements='str', default=DEFAULT_SOURCE),
        state=dict(type='str', default='present', choices=['present', 'absent']),
        prune=dict(type='bool', default=False),
        verify=dict(type='bool', default=False),
    )
    module = new_module(options, ('server',))
    run_worker(module, lambda m: ImageMirror(m.params, check_mode=m.check_mode), diff=module._diff)


if __name__ == '__main__':
    main()
