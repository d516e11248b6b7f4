# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report model: hosts x images from smartos_image_facts results."""

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
  - Hosts without a declaration have no C(missing) or C(extra) cells.
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
    hosts:
      description: One entry per host, sorted by name, with C(name), C(status) (ok, failed, unreachable),
        C(error), C(sources), C(layout) and C(counts) (installed, missing, extra, in_use).
      type: list
      elements: dict
    images:
      description: One entry per image row, sorted by name and version, with C(key), C(uuid), C(name),
        C(version), C(published_at) and C(cells) (by host name, each C(state) and C(clones)).
      type: list
      elements: dict
    summary:
      description: Fleet totals (hosts, ok, failed, unreachable, drifted, images) and C(text), a short
        summary in lines.
      type: dict
'''

from ansible.errors import AnsibleFilterError


def _label(manifest):
    name = manifest.get('name')
    return '%s@%s' % (name, manifest.get('version')) if name and manifest.get('version') else (name or '')


def _matches(entry, uuid, manifest):
    """Whether a declared image entry names this installed image."""
    if entry.get('uuid'):
        return entry['uuid'] == uuid
    if entry.get('name') != manifest.get('name'):
        return False
    return not entry.get('version') or entry['version'] == manifest.get('version')


def _kept(keep, uuid, manifest):
    return any(k in (uuid, manifest.get('name'), _label(manifest)) for k in keep or [])


def _host_status(result):
    if not isinstance(result, dict) or not result:
        return 'unreachable', 'no result: the host was not reached'
    if result.get('unreachable'):
        return 'unreachable', str(result.get('msg') or 'unreachable')
    if result.get('failed'):
        return 'failed', str(result.get('msg') or 'failed')
    if result.get('skipped'):
        return 'failed', 'skipped: %s' % (result.get('skip_reason') or '')
    return 'ok', ''


def _host_row(name, status, error, facts, declared):
    sources = [dict(url=s.get('url', ''), type=s.get('type', 'imgapi'), insecure=bool(s.get('insecure')),
                    implicit=bool(s.get('implicit')))
               for s in facts.get('smartos_image_sources') or []]
    return {'name': name, 'status': status, 'error': error, 'layout': facts.get('smartos_images_layout', ''),
            'sources': sources, 'declared': declared is not None,
            'counts': {'installed': 0, 'missing': 0, 'extra': 0, 'in_use': 0}}


def _declared(data, images_var):
    declared = data.get(images_var)
    return [e for e in declared if isinstance(e, dict)] if isinstance(declared, list) else None


def _installed_state(declared, keep, uuid, manifest):
    """installed or extra, for one installed image on a host with or without a declaration."""
    if declared is None:
        return 'installed'
    wanted = [e for e in declared if _matches(e, uuid, manifest)]
    if any(e.get('state', 'present') == 'absent' for e in wanted):
        return 'extra'
    if not wanted and not _kept(keep, uuid, manifest):
        return 'extra'
    return 'installed'


def _add_installed(rows, host, installed, declared, keep):
    for uuid, info in installed.items():
        manifest = info.get('manifest') or {}
        row = rows.setdefault(uuid, {'key': uuid, 'uuid': uuid, 'cells': {}})
        for field in ('name', 'version', 'published_at', 'os', 'type'):
            if manifest.get(field) and not row.get(field):
                row[field] = manifest[field]
        clones = len(info.get('clones') or [])
        state = _installed_state(declared, keep, uuid, manifest)
        row['cells'][host['name']] = {'state': state, 'clones': clones}
        host['counts']['installed'] += 1
        host['counts']['in_use'] += 1 if clones else 0
        host['counts']['extra'] += 1 if state == 'extra' else 0


def _add_missing(rows, host, installed, declared):
    for entry in declared or []:
        if entry.get('state', 'present') != 'present':
            continue
        if any(_matches(entry, u, (i.get('manifest') or {})) for u, i in installed.items()):
            continue
        key = entry.get('uuid') or 'name:%s' % (entry['name'] + ('@' + entry['version'] if entry.get('version') else ''))
        row = rows.setdefault(key, {'key': key, 'uuid': entry.get('uuid', ''), 'cells': {}})
        if not entry.get('uuid'):
            row.setdefault('name', entry.get('name'))
            row.setdefault('version', entry.get('version') or 'newest')
            row.setdefault('entry', entry)
        row['cells'][host['name']] = {'state': 'missing', 'clones': 0}
        host['counts']['missing'] += 1


def _fill_row(row, out_hosts, installed_on):
    """The cells of the hosts a row does not name yet: unknown, installed (by name) or absent."""
    row.setdefault('name', '')
    row.setdefault('version', '')
    row.setdefault('published_at', '')
    entry = row.pop('entry', None)
    for host in out_hosts:
        if host['name'] in row['cells']:
            continue
        if host['status'] != 'ok':
            row['cells'][host['name']] = {'state': 'unknown', 'clones': 0}
            continue
        # a row for a name some host lacks: another host that has an image of that name is not "absent"
        have = [(u, i) for u, i in installed_on[host['name']].items()
                if entry is not None and _matches(entry, u, i.get('manifest') or {})]
        row['cells'][host['name']] = ({'state': 'installed', 'clones': len(have[0][1].get('clones') or []), 'uuid': have[0][0]}
                                      if have else {'state': 'absent', 'clones': 0})


def _summary(out_hosts, images):
    summary = {'hosts': len(out_hosts),
               'ok': sum(1 for h in out_hosts if h['status'] == 'ok'),
               'failed': sum(1 for h in out_hosts if h['status'] == 'failed'),
               'unreachable': sum(1 for h in out_hosts if h['status'] == 'unreachable'),
               'drifted': sorted(h['name'] for h in out_hosts if h['counts']['missing'] or h['counts']['extra']),
               'images': len(images)}
    lines = ['%(hosts)d hosts: %(ok)d ok, %(failed)d failed, %(unreachable)d unreachable; %(images)d images' % summary]
    for h in out_hosts:
        if h['status'] != 'ok':
            lines.append('%s: %s (%s)' % (h['name'], h['status'].upper(), h['error'].splitlines()[0][:160] if h['error'] else ''))
        elif h['counts']['missing'] or h['counts']['extra']:
            lines.append('%s: DRIFT %d missing, %d extra' % (h['name'], h['counts']['missing'], h['counts']['extra']))
    if not summary['drifted'] and summary['ok'] == summary['hosts']:
        lines.append('no drift')
    summary['text'] = lines
    return summary


def fleet_report(hosts, result_var='fleet_report_facts', images_var='image_host_images', keep_var='image_host_keep'):
    """hosts: {name: hostvars} -> {hosts, images, summary}."""
    if not isinstance(hosts, dict):
        raise AnsibleFilterError('fleet_report expects a dict by host name, got %s' % type(hosts).__name__)
    rows = {}
    out_hosts = []
    installed_on = {}
    for name in sorted(hosts):
        data = hosts[name] or {}
        result = data.get(result_var)
        status, error = _host_status(result)
        facts = (result or {}).get('ansible_facts', {}) if status == 'ok' else {}
        installed = facts.get('smartos_images') or {}
        installed_on[name] = installed
        declared = _declared(data, images_var)
        host = _host_row(name, status, error, facts, declared)
        out_hosts.append(host)
        if status != 'ok':
            continue
        _add_installed(rows, host, installed, declared, data.get(keep_var))
        _add_missing(rows, host, installed, declared)
    for row in rows.values():
        _fill_row(row, out_hosts, installed_on)
    images = sorted(rows.values(), key=lambda r: (r['name'] or '~', r['version'] or '', r['published_at'], r['key']))
    return {'hosts': out_hosts, 'images': images, 'summary': _summary(out_hosts, images)}


class FilterModule:
    """smartos.images filters."""

    def filters(self):
        return {'fleet_report': fleet_report}
