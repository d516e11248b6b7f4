# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options shared by the smartos.images modules."""

from __future__ import annotations


class ModuleDocFragment:
    """authors and attributes (BASE, every module's), where imgadm's files are on the host (DOCUMENTATION), pool
    (POOL), image server options (SERVER), sources (SOURCE)."""

    POOL = r'''
options:
  pool:
    description:
      - The ZFS pool that holds the images, as C(imgadm -P).
    type: str
    default: zones
'''

    SOURCE = r'''
options:
  source:
    description:
      - IMGAPI image server URLs to use instead of the host's configured sources (as
        C(imgadm import -S)).
      - Without it, the host's sources are used in their order (C(/var/imgadm/imgadm.conf), or
        C(/var/db/imgadm/sources.list) on a host with the original layout), IMGAPI and DSAPI alike;
        see M(smartos.images.smartos_image_source).
      - Sources are tried in order until one has the image as an active image. A source that fails
        (unreachable, HTTP error, bad answer) is skipped, where imgadm would give up; the error lists
        every source with its answer when none has the image.
      - A C(?channel=NAME) on a URL selects that channel, as in imgadm; so does a configured source's
        C(channel) key, which wins over the URL's.
      - Credentials in a URL (C(https://user:password@host)) are used but never shown.
    type: list
    elements: str
'''

    # every module's: its authors and its attributes (each module adds the details; every module supports check mode
    # fully and is idempotent). smartos_image_mirror, which runs on any host, takes it without DOCUMENTATION.
    BASE = r'''
author:
  - smartos.images contributors (@smartos-images)
attributes:
  check_mode:
    description: Can run in check mode and predict what would change without changing the host.
    support: full
  diff_mode:
    description: Returns what changed (or would change in check mode) when run with C(--diff).
  idempotent:
    description: Run again with the same options, it changes nothing and reports no change.
    support: full
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: [smartos, illumos, linux]
'''

    # the modules of a SmartOS host (with BASE): where imgadm's files are
    DOCUMENTATION = r'''
options:
  layout:
    description:
      - Where imgadm keeps its files on the host.
      - V(modern) is today's imgadm (C(/var/imgadm/imgadm.conf), C(/var/imgadm/images/)).
      - V(original) is the first imgadm's layout that the SmartOS wiki described
        (C(/var/db/imgadm/sources.list), C(imgcache.json), C(/var/db/imgadm/<uuid>.json)).
      - V(auto) picks V(original) only when C(/var/db/imgadm) exists and C(/var/imgadm) does not,
        as every module of this collection does.
    type: str
    choices: [auto, modern, original]
    default: auto
  host_root:
    description:
      - The directory under which imgadm's files live (C(/var/imgadm), C(/var/run)).
      - Keep the default on a real host. Another value lets several simulated hosts share one
        machine, each with its own files; the pool still decides where datasets go.
    type: path
    default: /
'''

    SERVER = r'''
options:
  validate_certs:
    description:
      - Whether the TLS certificates of C(https://) image servers are verified.
      - Set to V(false) only for test servers; prefer O(ca_path).
    type: bool
    default: true
  ca_path:
    description:
      - A PEM file of CA certificates that signed the image servers' certificates.
      - A file that does not exist or holds no PEM certificates fails the task before any server is asked.
    type: path
  timeout:
    description:
      - Seconds to wait for an image server to connect, to answer, or to send the next bytes (each wait on the
        network is bounded by it). At most 86400 (a day).
      - "Low-speed rule, as C(curl --speed-limit 1024 --speed-time <timeout>): a body (image file, manifest,
        listing page) that delivers fewer than 1024 bytes a second on average over O(timeout) seconds spent
        waiting for the server fails as a timeout. An image file download that fails so is resumed from the
        byte where it stopped, as for any broken connection (see O(retries))."
      - The headers of any answer, and the whole of a JSON answer (manifest, listing page, ping), must arrive
        within 4 times O(timeout) seconds.
      - A whole image listing (name resolution, available images) ends after at most 300 seconds, 50 pages
        or about 32 MiB of parsed manifests; beyond, the source fails with an error that names it.
      - Size caps (refused before parsing) are 1 MiB for a manifest and 8 MiB for one listing page; see the
        Security guide.
    type: int
    default: 30
  retries:
    description:
      - How many times a transient failure (connection refused or dropped, timeout, HTTP 408, 429,
        500, 502, 503, 504) is retried, with a growing pause, before a source counts as failed.
      - A download that breaks off is resumed from the byte where it stopped (HTTP Range), up to
        this many times; nothing is received twice.
      - A resumed answer (HTTP 206) is placed by its C(Content-Range) header. Bytes before the offset are
        skipped; one that starts past the offset, or whose C(Content-Range) cannot be read, counts as a broken
        connection. The SHA-1 of the manifest checks the result.
    type: int
    default: 3
'''
