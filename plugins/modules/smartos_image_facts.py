#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: smartos_image_facts
short_description: Gather the images, image sources and available images of a SmartOS host
version_added: 0.1.0
description:
  - Returns, as C(ansible_facts), the images installed on the host, its image sources, and (when
    asked, since it costs network) the images its sources offer, for inventories and reports.
  - Installed images are found as C(imgadm list) finds them, from one C(zfs list) of the pools
    however many images there are; zone roots are left out where C(zoneadm) exists, and so are
    datasets with C(imgadm:ignore) set. Each image's manifest comes from imgadm's cache (or, on a
    host with the original layout, from C(/var/db/imgadm)); an image without one is listed with its
    UUID only and flagged, and a corrupt cache file is reported on that image instead of failing.
  - Available images are listed from every non-docker source (IMGAPI ListImages page by page, DSAPI
    C(/datasets)), several sources at once, merged by UUID in source order as C(imgadm avail)
    does. A source that fails is reported in RV(ansible_facts.smartos_images_available_errors) and
    as a warning; the module fails only when no source answers. An entry of a source's list that is
    not a usable manifest (not an object, not upgradable from v1, or a C(uuid), C(name) or
    C(published_at) of the wrong type) is skipped with a warning naming it.
  - A cache file whose manifest is another image's, or whose C(name), C(version), C(published_at) or
    C(source) has the wrong type, is not used; the image is listed with its UUID and the problem.
  - The module never changes the host.
extends_documentation_fragment:
  - smartos.images.common.base
  - smartos.images.common
  - smartos.images.common.server
attributes:
  action_group:
    description: Use C(group/smartos.images.images) (and, for the modules that ask image servers,
      C(group/smartos.images.servers)) in C(module_defaults) to set the options they share once.
    support: full
    membership: [smartos.images.images, smartos.images.servers]
  check_mode:
    details:
      - It changes nothing, so it runs the same in check mode.
  diff_mode:
    support: none
  platform:
    details:
      - Needs the C(zfs) command for O(gather_subset=installed); C(zoneadm) is used where it exists.
  facts:
    description: Action returns an C(ansible_facts) dictionary that will update existing host facts.
    support: full
options:
  gather_subset:
    description:
      - What to gather. V(installed), V(sources), V(available), or V(all); V(!name) leaves one out.
    type: list
    elements: str
    default: [installed, sources]
  pools:
    description:
      - The pools to look for installed images on. All pools when not given.
    type: list
    elements: str
  filters:
    description:
      - Keep only images whose manifest matches every filter, as C(imgadm list FIELD=VALUE) does.
      - A key is a manifest field, dotted for nested ones (C(requirements.brand)), or one of the fields
        C(imgadm list) and C(imgadm avail) compute, with their meaning - C(pub) and C(published_date) (the
        date of C(published_at)), C(published) (C(published_at) without fractions of a second), C(size)
        (C(files[0].size)), C(source), and, for installed images only, C(zpool) and C(clones) (a count of
        clones; V(0) finds the images nothing uses, although the facts list the clones' names).
      - Any other key is refused, naming the fields there are.
      - A value V(true) or V(false) matches booleans only; a text starting with C(~) matches as a
        substring; any other value matches when the field, written as text, equals it.
      - An image without the field never matches.
    type: dict
    default: {}
  newest:
    description:
      - Keep only the most recently published image of each name.
    type: bool
    default: false
notes:
  - Facts are also returned when the module runs as a task with C(register).
  - Available images are filtered on the host too, as IMGAPI ListImages filters them by default (active images, and
    of the source's channel those whose manifest names its channels), as a static server, such as a mirror made by
    M(smartos.images.smartos_image_mirror) and served by a plain web server, ignores the query string and answers
    its whole list.
seealso:
  - module: smartos.images.smartos_image
  - module: smartos.images.smartos_image_source
'''

EXAMPLES = r'''
- name: Gather installed images and sources
  smartos.images.smartos_image_facts:

- name: Show the name and version of every installed image
  ansible.builtin.debug:
    msg: "{{ ansible_facts.smartos_images | dict2items | map(attribute='value.manifest')
             | map(attribute='name', default='?') | list }}"

- name: Find the newest available SmartOS base images
  smartos.images.smartos_image_facts:
    gather_subset: [available]
    filters:
      os: smartos
      name: ~base
    newest: true

- name: Installed images that VMs are cloned from
  smartos.images.smartos_image_facts:
    gather_subset: [installed]
  register: found

- name: List them
  ansible.builtin.debug:
    msg: "{{ found.ansible_facts.smartos_images | dict2items | selectattr('value.clones') | map(attribute='key') | list }}"
'''

RETURN = r'''
ansible_facts:
  description: The facts gathered.
  returned: always
  type: dict
  contains:
    smartos_images:
      description: Installed images by UUID (when O(gather_subset) has V(installed)).
      returned: when gathered
      type: dict
      sample: {"2f1dc911-6401-4fa4-8e9d-67ea2e39c271": {"manifest": {"uuid": "2f1dc911-6401-4fa4-8e9d-67ea2e39c271",
               "name": "base-64-lts", "version": "24.4.1"}, "zpool": "zones", "source": "https://images.smartos.org",
               "clones": ["zones/59d1ef36-b3d4-4ad1-8a4c-ec2df6bc8d34"], "manifest_cached": true}}
      contains:
        manifest:
          description: The image manifest imgadm cached, or just C({uuid}) when there is none.
          type: dict
        zpool:
          description: The pool the image is on.
          type: str
        source:
          description: The source the image was imported from, when imgadm recorded it (credentials hidden).
          type: str
          returned: when known
        clones:
          description: Names of the datasets cloned from the image's snapshots (VMs, VM disks, child images).
          type: list
          elements: str
        manifest_cached:
          description: Whether a cached manifest was found for the image.
          type: bool
        error:
          description: Why the cached manifest could not be read (a corrupt cache file).
          type: str
          returned: when the cache file is broken
        also_on:
          description: Other pools that hold an image with the same UUID.
          type: list
          elements: str
          returned: when the image is on more than one pool
    smartos_image_sources:
      description: The host's image sources, in order (when O(gather_subset) has V(sources)).
      returned: when gathered
      type: list
      elements: dict
      sample: [{"url": "https://images.smartos.org", "type": "imgapi", "insecure": false, "implicit": true}]
      contains:
        url:
          description: The source URL (credentials hidden).
          type: str
        type:
          description: imgapi, dsapi or docker.
          type: str
        insecure:
          description: Whether TLS certificates go unchecked for it.
          type: bool
        implicit:
          description: True when this is imgadm's default source, used because C(imgadm.conf) names none.
          type: bool
    smartos_images_available:
      description:
        - What the sources offer (when O(gather_subset) has V(available)), oldest first, each once.
      returned: when gathered
      type: list
      elements: dict
      sample: [{"manifest": {"uuid": "2f1dc911-6401-4fa4-8e9d-67ea2e39c271", "name": "base-64-lts"},
                "source": "https://images.smartos.org"}]
      contains:
        manifest:
          description: The manifest (a DSAPI one upgraded to v2).
          type: dict
        source:
          description: The source that listed it first.
          type: str
    smartos_images_available_errors:
      description: The sources that could not be listed, with why.
      returned: when O(gather_subset) has V(available)
      type: list
      elements: dict
      sample: [{"source": "http://mirror.example", "error": "... could not be reached after 4 attempt(s): timed out"}]
      contains:
        source:
          description: The source URL (credentials hidden).
          type: str
        error:
          description: What went wrong.
          type: str
    smartos_images_layout:
      description: The imgadm layout of the host, V(modern) or V(original).
      returned: always
      type: str
      sample: modern
'''

from ansible_collections.smartos.images.plugins.module_utils._common import new_module, run_worker
from ansible_collections.smartos.images.plugins.module_utils._facts import FactsGatherer
from ansible_collections.smartos.images.plugins.module_utils._runner import Runner


def main():
    options = dict(
        gather_subset=dict(type='list', elements='str', default=['installed', 'sources']),
        pools=dict(type='list', elements='str'),
        filters=dict(type='dict', default={}),
        newest=dict(type='bool', default=False),
    )
    module = new_module(options, ('host', 'server'))
    run_worker(module, lambda m: FactsGatherer(m.params, Runner(m)))


if __name__ == '__main__':
    main()
