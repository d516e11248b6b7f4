#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: smartos_image_source
short_description: Manage the image sources of a SmartOS host
version_added: 0.1.0
description:
  - Adds or removes one image source, or makes the host's list exactly the given sources in the
    given order, as C(imgadm sources -a), C(-d) and C(-e) do, in the same files imgadm reads.
  - On a host with today's imgadm the list lives in C(/var/imgadm/imgadm.conf). While that file has
    no C(sources) key, imgadm uses its default source C(https://images.smartos.org); adding a source
    then keeps the default first, and removing the default leaves an empty list, as imgadm does.
    Other keys of the file are kept; it is written atomically (2-space JSON, file mode kept) under a
    lock (C(imgadm.conf.lock), waited for up to 120 seconds), so two runs adding different sources at
    once both land. Each write also records C(dockerImportSkipUuids) and C(upgradedToVer), as imgadm's
    saves do.
  - A leftover C(/var/db/imgadm/sources.list) on such a host counts as imgadm's upgrade reads it. While
    C(imgadm.conf) has no C(sources) key and was never upgraded, the default source comes first and each
    URL of that file follows as a DSAPI source; the first write records that list.
  - On a host with the original layout described by the SmartOS wiki the list lives in
    C(/var/db/imgadm/sources.list), one DSAPI URL a line; comments and blank lines are kept.
    O(update_cache=true) then refreshes C(/var/db/imgadm/imgcache.json) as C(imgadm update) did there.
  - Two sources are the same when their normalized URLs (scheme and host lower-cased, one trailing slash
    and default ports dropped, C(?channel=) kept), types, O(insecure) and channels are.
  - Everything is checked before the host is touched, namely the URLs and types given, the current source file
    (a broken C(imgadm.conf) fails the task naming the file and the entry, and is left as it was), and
    whether O(update_cache) fits the host. A failed task changes nothing.
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
      - Check mode pings new sources as the real run does, and reports the same list and diff.
  diff_mode:
    support: full
    details:
      - The diff is the ordered list of sources before and after.
  platform:
    details:
      - Works on the files only; imgadm itself is not needed.
options:
  url:
    description:
      - The URL of one source to add or remove. Mutually exclusive with O(sources).
      - It must start with C(http://) or C(https://), as the O(smartos.images.smartos_image#module:source)
        URLs of M(smartos.images.smartos_image) must. This differs from imgadm on purpose. imgadm adds
        C(http://) to a URL without a scheme, which would send requests, and any credentials, in clear
        text to a host the user may have meant to reach over TLS. Write C(https://<host>) instead.
      - An entry without a scheme that imgadm itself wrote into C(imgadm.conf) is still read as C(http://),
        as imgadm reads it; O(state=absent) with C(http://<host>) removes it.
      - Special characters in a user name or password (C(@), C(#), C(/), C(?), C(:)) must be
        percent-encoded (C(%40), C(%23), C(%2F), C(%3F), C(%3A)); a URL with C(@) after its host is refused.
    type: str
  type:
    description:
      - The type of the source given by O(url).
      - V(docker) sources are stored and listed for imgadm; the collection does not import from them.
      - The original layout holds V(dsapi) sources only.
    type: str
    choices: [imgapi, dsapi, docker]
    default: imgapi
  insecure:
    description:
      - Whether TLS certificates of the source given by O(url) go unchecked (imgadm's C(-k)).
    type: bool
    default: false
  sources:
    description:
      - With O(state=present), the host's whole list, in this order; sources not named are removed.
        This is the only way to reorder sources.
      - With O(state=absent), sources to remove.
    type: list
    elements: dict
    suboptions:
      url:
        description: The source URL. It must start with C(http://) or C(https://), as O(url) must.
        type: str
        required: true
      type:
        description: The source type.
        type: str
        choices: [imgapi, dsapi, docker]
        default: imgapi
      insecure:
        description: Whether TLS certificates of this source go unchecked.
        type: bool
        default: false
  state:
    description:
      - V(present) appends O(url) when it is missing (or, with O(sources), sets the whole list).
      - V(absent) removes every source whose normalized URL is O(url) (whatever its type, as imgadm
        does), or each of O(sources).
    type: str
    choices: [present, absent]
    default: present
  ping:
    description:
      - Whether a source to be added must first answer its ping (C(GET /ping) answering as an IMGAPI
        or DSAPI server, C(GET /v2/) for docker), as C(imgadm sources -a) checks unless C(-f).
    type: bool
    default: true
  update_cache:
    description:
      - Original layout only. Refresh C(/var/db/imgadm/imgcache.json) from every source, as
        C(imgadm update) did there; reported as a change only when its content changed.
      - On a host with the modern layout the task fails before any source is pinged or written.
      - A listed item that is not a manifest object is skipped with a warning naming the source.
    type: bool
    default: false
notes:
  - Credentials in a source URL (C(https://user:password@host)) are kept in the file, as imgadm keeps
    them, but never shown in results, diffs, warnings, errors or the C(-vvv) invocation; the module hides
    every password it finds in its arguments and in the source file, whatever its characters.
    C(imgcache.json) gets the source URL without its credentials.
  - File modes. imgadm writes C(imgadm.conf) in place, so an existing file keeps its mode, and a new one
    gets 0666 less the umask (0644 on SmartOS). The module keeps an existing file's mode too (it writes
    a temporary file, then renames it over the old one); a file it creates gets 0644, or 0600 when a
    source URL in it holds credentials. When a password sits in a file others can read, the module warns.
  - A symlinked C(imgadm.conf) is written through to its target, as imgadm's write does; the link stays.
  - C(imgadm.conf) must be a regular file of at most 1 MiB. Its entries are checked as they are read.
    imgadm fails on a bad entry, and so does the module, naming the file and the entry. Unlike imgadm,
    a non-boolean C(insecure) (such as the string C("false"), which imgadm takes as true) is refused.
  - In C(sources.list) (original layout), a line that is not a DSAPI URL with C(http://) or C(https://)
    is skipped with a warning and kept as it is when the file is rewritten. imgadm v1 skipped lines
    without a scheme and host too, but would have tried other URLs.
seealso:
  - module: smartos.images.smartos_image
  - name: imgadm(8)
    description: The SmartOS image tool this module works alongside.
    link: https://smartos.org/man/8/imgadm
'''

EXAMPLES = r'''
- name: Use a local mirror first, then the public image server
  smartos.images.smartos_image_source:
    sources:
      - url: http://127.0.0.1:8080
      - url: https://images.smartos.org

- name: Add one more source at the end, without pinging it
  smartos.images.smartos_image_source:
    url: http://127.0.0.1:8081
    ping: false

- name: Remove it again
  smartos.images.smartos_image_source:
    url: http://127.0.0.1:8081
    state: absent

- name: On a host with the original layout, add a DSAPI source and refresh the local cache
  smartos.images.smartos_image_source:
    url: http://127.0.0.1:8080/datasets
    type: dsapi
    layout: original
    update_cache: true
'''

RETURN = r'''
sources:
  description: The host's sources after the change, in order (credentials hidden).
  returned: always
  type: list
  elements: dict
  contains:
    url:
      description: The source URL as stored.
      type: str
      sample: https://images.smartos.org
    type:
      description: The source type.
      type: str
      sample: imgapi
    insecure:
      description: Whether TLS certificates go unchecked for it.
      type: bool
      sample: false
  sample: [{"url": "https://images.smartos.org", "type": "imgapi", "insecure": false}]
layout:
  description: The host layout the module used.
  returned: always
  type: str
  sample: modern
implicit_default:
  description:
    - True when C(imgadm.conf) has no C(sources) key, so the list is imgadm's default source.
  returned: always
  type: bool
  sample: false
cache_updated:
  description: Whether C(/var/db/imgadm/imgcache.json) changed (or would change in check mode).
  returned: when O(update_cache=true)
  type: bool
  sample: true
'''

from ansible_collections.smartos.images.plugins.module_utils._common import new_module, run_worker
from ansible_collections.smartos.images.plugins.module_utils._source_manager import SourceManager

SOURCE_TYPES = ['imgapi', 'dsapi', 'docker']


def main():
    options = dict(
        url=dict(type='str'),
        type=dict(type='str', default='imgapi', choices=SOURCE_TYPES),
        insecure=dict(type='bool', default=False),
        sources=dict(type='list', elements='dict', options=dict(
            url=dict(type='str', required=True),
            type=dict(type='str', default='imgapi', choices=SOURCE_TYPES),
            insecure=dict(type='bool', default=False),
        )),
        state=dict(type='str', default='present', choices=['present', 'absent']),
        ping=dict(type='bool', default=True),
        update_cache=dict(type='bool', default=False),
    )
    module = new_module(options, ('host', 'server'), mutually_exclusive=[('url', 'sources')],
                        required_one_of=[('url', 'sources', 'update_cache')])
    # the manager adds every password it finds (task URLs, then the source file) to no_log_values itself,
    # even where a raw '#', '/', '?' or '@' defeats URL parsing
    run_worker(module, lambda m: SourceManager(m.params, check_mode=m.check_mode, secrets=m.no_log_values),
               diff=module._diff)


if __name__ == '__main__':
    main()
