# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options shared by the smartos.images modules."""

from __future__ import annotations


class ModuleDocFragment:
    """pool/host_root (DOCUMENTATION), image server options (SERVER), attributes (ATTRIBUTES)."""

    ATTRIBUTES = r'''
attributes:
  check_mode:
    description: Can run in check mode and predict what would change without changing the host.
  diff_mode:
    description: Returns what changed (or would change in check mode) when run with C(--diff).
  idempotent:
    description: Run again with the same options, it changes nothing and reports no change.
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: [smartos, illumos, linux]
'''

    DOCUMENTATION = r'''
options:
  pool:
    description:
      - The ZFS pool that holds the images, as C(imgadm -P).
    type: str
    default: zones
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
    type: path
  timeout:
    description:
      - Seconds to wait for an image server to connect or to send the next bytes.
    type: int
    default: 30
  retries:
    description:
      - How many times a transient failure (connection refused or dropped, timeout, HTTP 408, 429,
        500, 502, 503, 504) is retried, with a growing pause, before a source counts as failed.
      - A download that breaks off is resumed from the byte where it stopped (HTTP Range), up to
        this many times; nothing is received twice.
    type: int
    default: 3
'''
