# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet_report filter: hosts x images from smartos_image_facts results (the model is in module_utils._fleet_model)."""

from __future__ import annotations

DOCUMENTATION = r'''
name: fleet_report
short_description: Turn every host's smartos_image_facts into a hosts x images drift report
version_added: 0.1.0
description:
  - Takes, per host, the result registered from M(smartos.images.smartos_image_facts) (or the failure or
    unreachable result in its place) and the images the host should have, and returns one report,
    for every host and image whether it is C(installed), C(missing), C(extra) or C(absent), how many
    datasets use it, each host's sources, and per-host and fleet totals.
  - C(missing) is an image declared present and not installed; C(extra) is an installed image the
    host declares no use for (not present in its declaration, not kept) or one declared absent.
  - An image declared by name without a version is the newest active image of that name (and filters) that
    the host's sources offer, as M(smartos.images.smartos_image) resolves it on every run. When the host's
    available images were gathered (see O(available_var)), an installed older version is C(outdated) and the
    newest, when not installed, is C(missing); when they were not, an installed image of that name is
    C(unverified) (unknown whether newest), never claimed as satisfied. An older version that is kept stays
    C(installed).
  - A host drifts when it has C(missing), C(extra) or C(outdated) images, or when its sources differ from the
    declared ones (O(sources_var), O(sources_exclusive_var), O(sources_absent_var); compared by URL with
    credentials hidden, as imgadm normalizes it, and by type and insecure).
  - Hosts without a declaration have no C(missing), C(extra), C(outdated) or C(unverified) cells.
  - playbooks/report.yml renders the result as one self-contained HTML page and a JSON file.
author:
  - smartos.images contributors (@smartos-images)
options:
  _input:
    description:
      - A dict by host name of each host's variables (C(hostvars[host])), holding the result registered
        from M(smartos.images.smartos_image_facts) (possibly C(unreachable) or C(failed)), and optionally
        the images it should have (entries as the C(image_host) role's C(image_host_images) takes them)
        and those it keeps (as C(image_host_keep)).
    type: dict
    required: true
  result_var:
    description: The name of the registered facts result.
    type: str
    default: fleet_report_facts
  images_var:
    description: The name of the variable that declares a host's images.
    type: str
    default: image_host_images
  keep_var:
    description: The name of the variable that lists the images a host keeps although unused.
    type: str
    default: image_host_keep
  available_var:
    description:
      - The name of the result registered from M(smartos.images.smartos_image_facts) with
        O(smartos.images.smartos_image_facts#module:gather_subset=available), one result or a loop over the
        name-only entries (each C(item) with C(name) and C(filters)). An C(ansible_facts.smartos_images_available)
        in the O(result_var) result is used as well.
    type: str
    default: fleet_report_available
  sources_var:
    description: The name of the variable that declares a host's sources (as C(image_host_sources)).
    type: str
    default: image_host_sources
  sources_exclusive_var:
    description: The name of the variable that, when true, makes the declared sources the whole list, in order.
    type: str
    default: image_host_sources_exclusive
  sources_absent_var:
    description: The name of the variable that lists source URLs a host must not have.
    type: str
    default: image_host_sources_absent
  generated_at:
    description: When the report was made, in ISO 8601; the current UTC time (C(YYYY-MM-DDTHH:MM:SSZ)) by default.
    type: str
'''

EXAMPLES = r'''
- name: Build the report model on the controller
  ansible.builtin.set_fact:
    report: "{{ dict(groups['smartos'] | zip(groups['smartos'] | map('extract', hostvars))) | smartos.images.fleet_report }}"
'''

RETURN = r'''
_value:
  description: The report.
  type: dict
  contains:
    generated_at:
      description: When the report was made (UTC, ISO 8601).
      type: str
      sample: "2026-01-31T12:00:00Z"
    hosts:
      description: One entry per host, sorted by name, with C(name), C(status) (ok, failed, unreachable),
        C(error), C(sources), C(layout), C(declared), C(counts) (installed, missing, extra, outdated,
        unverified, in_use), C(sources_drift) (how its sources differ from the declared ones, in words) and
        C(drift) (true when it has missing, extra or outdated images or C(sources_drift)).
      type: list
      elements: dict
    images:
      description: One entry per image row, sorted by name and version, with C(key), C(uuid), C(name),
        C(version), C(published_at) and C(cells) (by host name, each C(state) - installed, missing, outdated,
        unverified, extra, absent or unknown - C(clones), and for some states a C(note) saying why).
      type: list
      elements: dict
    summary:
      description: Fleet totals (hosts, ok, failed, unreachable, drifted, unverified, images) and C(text), a short
        summary in lines.
      type: dict
'''

from collections.abc import Mapping
from datetime import datetime, timezone

from ansible.errors import AnsibleFilterError

from ansible_collections.smartos.images.plugins.module_utils._fleet_model import STATES, build

__all__ = ['STATES', 'fleet_report', 'FilterModule']   # STATES: the order of the page's legend, for callers


def _now():
    return datetime.now(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def fleet_report(hosts, result_var='fleet_report_facts', images_var='image_host_images', keep_var='image_host_keep',
                 available_var='fleet_report_available', sources_var='image_host_sources',
                 sources_exclusive_var='image_host_sources_exclusive', sources_absent_var='image_host_sources_absent',
                 generated_at=None):
    """hosts: {name: hostvars} -> {generated_at, hosts, images, summary}."""
    if not isinstance(hosts, Mapping):
        raise AnsibleFilterError('fleet_report expects a dict by host name, got %s' % type(hosts).__name__)
    if generated_at is not None and not isinstance(generated_at, str):
        raise AnsibleFilterError('fleet_report: generated_at must be a text such as 2026-01-31T12:00:00Z, got %s'
                                 % type(generated_at).__name__)
    names = dict(result=result_var, images=images_var, keep=keep_var, available=available_var, sources=sources_var,
                 sources_exclusive=sources_exclusive_var, sources_absent=sources_absent_var)
    return build(hosts, names, generated_at or _now())


class FilterModule:
    """smartos.images filters."""

    def filters(self):
        return {'fleet_report': fleet_report}
