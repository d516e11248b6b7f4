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

from ansible_collections.smartos.images.plugins.module_utils._errors import InvalidParameter
from ansible_collections.smartos.images.plugins.module_utils._filters import matches, newest, row
from ansible_collections.smartos.images.plugins.module_utils._manifest import is_active
from ansible_collections.smartos.images.plugins.module_utils._source_entry import normalize_url
from ansible_collections.smartos.images.plugins.module_utils._urls import redact

# the states a cell can have, in the order the page's legend lists them
STATES = ('installed', 'missing', 'outdated', 'unverified', 'extra', 'absent', 'unknown')
DRIFT_STATES = ('missing', 'extra', 'outdated')


def _label(manifest):
    name = manifest.get('name')
    return '%s@%s' % (name, manifest.get('version')) if name and manifest.get('version') else (name or '')


def _filters_of(entry):
    filters = entry.get('filters')
    return filters if isinstance(filters, Mapping) else {}


def _name_matches(entry, manifest):
    """Whether a declared name (and version, and filters) names this manifest, as smartos_image matches it."""
    if entry.get('name') != manifest.get('name'):
        return False
    if entry.get('version') and entry['version'] != manifest.get('version'):
        return False
    return matches(row(manifest), _filters_of(entry))


def _matches(entry, uuid, manifest):
    """Whether a declared image entry names this installed image."""
    if entry.get('uuid'):
        return entry['uuid'] == uuid
    return _name_matches(entry, manifest)


def _newest_wanted(entry):
    """A present entry by name without a version: smartos_image imports the newest of that name on every run."""
    return bool(entry.get('name')) and not entry.get('uuid') and not entry.get('version') \
        and entry.get('state', 'present') == 'present'


def _kept(keep, uuid, manifest):
    return any(k in (uuid, manifest.get('name'), _label(manifest)) for k in keep or [] if isinstance(k, str))


def _manifest_of(info):
    manifest = info.get('manifest') if isinstance(info, Mapping) else None
    return manifest if isinstance(manifest, Mapping) else {}


def _clone_count(info):
    """How many datasets are cloned from an installed image: the facts list their names; community.general's
    smartos_image_info gave a count, which a facts cache may still hold; anything else counts as none."""
    clones = info.get('clones') if isinstance(info, Mapping) else None
    if clones is None or isinstance(clones, bool):
        return 0
    if isinstance(clones, int):
        return max(clones, 0)
    if isinstance(clones, str):
        return 1 if clones else 0
    return len(clones) if isinstance(clones, (list, tuple, Mapping)) else 0


def _has_facts(result):
    return isinstance(result.get('ansible_facts'), Mapping)


def _host_status(result):
    if not isinstance(result, Mapping) or not result:
        return 'unreachable', 'no result: the host was not reached'
    if result.get('unreachable'):
        return 'unreachable', str(result.get('msg') or 'unreachable')
    if result.get('failed'):
        return 'failed', str(result.get('msg') or 'failed')
    if result.get('skipped'):
        return 'failed', 'skipped: %s' % (result.get('skip_reason') or '')
    if not _has_facts(result):
        # registered with failed_when: false, a failed gathering has failed: false and no facts
        return 'failed', str(result.get('msg') or 'no facts were returned')
    return 'ok', ''


def _source_id(url):
    text = redact(url)
    try:
        return normalize_url(text)
    except InvalidParameter:
        return text


def _sources_drift(sources, data, sources_var, exclusive_var, absent_var):
    """How the host's sources differ from the declared ones (the image_host role's variables): texts, or []."""
    declared = data.get(sources_var)
    declared = [s for s in declared if isinstance(s, Mapping) and isinstance(s.get('url'), str)] \
        if isinstance(declared, list) else []
    unwanted = data.get(absent_var)
    unwanted = [u for u in unwanted if isinstance(u, str)] if isinstance(unwanted, list) else []
    have = [(_source_id(s['url']), s) for s in sources]
    have_ids = [i for i, dummy in have]
    have_by_id = dict(have)
    problems = []
    for d in declared:
        ident = _source_id(d['url'])
        if ident not in have_by_id:
            problems.append('source %s missing' % redact(d['url']))
            continue
        got = have_by_id[ident]
        kind = d.get('type') or 'imgapi'
        if got['type'] != kind:
            problems.append('source %s is %s, declared %s' % (redact(d['url']), got['type'], kind))
        if bool(d.get('insecure')) != got['insecure']:
            problems.append('source %s is %s, declared %s' % (
                redact(d['url']), *(('insecure', 'secure') if got['insecure'] else ('secure', 'insecure'))))
    if data.get(exclusive_var) is True and declared:
        wanted_ids = [_source_id(d['url']) for d in declared]
        problems.extend('source %s not declared' % s['url'] for i, s in have if i not in wanted_ids)
        if not problems and have_ids != wanted_ids:
            problems.append('sources in another order than declared')
    unwanted_ids = {_source_id(u) for u in unwanted}
    problems.extend('source %s declared absent' % s['url'] for i, s in have if i in unwanted_ids)
    return problems


def _host_row(name, status, error, facts, declared):
    sources = [dict(url=str(s.get('url', '')), type=str(s.get('type', 'imgapi')), insecure=bool(s.get('insecure')),
                    implicit=bool(s.get('implicit')))
               for s in (facts.get('smartos_image_sources') if isinstance(facts.get('smartos_image_sources'), list)
                         else []) if isinstance(s, Mapping)]
    return {'name': name, 'status': status, 'error': error, 'layout': facts.get('smartos_images_layout', ''),
            'sources': sources, 'declared': declared is not None, 'sources_drift': [], 'drift': False,
            'counts': {'installed': 0, 'missing': 0, 'extra': 0, 'outdated': 0, 'unverified': 0, 'in_use': 0}}


def _declared(data, images_var):
    declared = data.get(images_var)
    if not isinstance(declared, list):
        return None
    # an entry that names no image by a text uuid or name (the role refuses it) declares nothing here
    return [e for e in declared if isinstance(e, Mapping) and any(
        isinstance(e.get(k), str) and e.get(k) for k in ('uuid', 'name'))]


def _available_lists(data, facts, available_var):
    """The available-image lists gathered for a host: [(the entry asked for or None for all, manifests, error)]."""
    lists = []
    if isinstance(facts.get('smartos_images_available'), list):
        lists.append((None, facts['smartos_images_available'], None))
    gathered = data.get(available_var)
    results = gathered.get('results') if isinstance(gathered, Mapping) and isinstance(gathered.get('results'), list) \
        else [gathered] if isinstance(gathered, Mapping) else []
    for result in results:
        if not isinstance(result, Mapping) or result.get('skipped'):
            continue
        item = result.get('item') if isinstance(result.get('item'), Mapping) else None
        listed = (result.get('ansible_facts') or {}).get('smartos_images_available') \
            if isinstance(result.get('ansible_facts'), Mapping) else None
        if result.get('failed') or result.get('unreachable') or not isinstance(listed, list):
            lists.append((item, None, str(result.get('msg') or 'the available images were not listed')))
        else:
            lists.append((item, listed, None))
    return lists


def _newest_of(entry, lists):
    """(the newest available manifest smartos_image would import for a name-only entry, or None; why unknown)."""
    hits, errors, asked = [], [], False
    for item, listed, error in lists:
        if item is not None and (item.get('name') != entry.get('name') or _filters_of(item) != _filters_of(entry)):
            continue
        asked = True
        if error is not None:
            errors.append(error)
            continue
        hits.extend(e['manifest'] for e in listed if isinstance(e, Mapping) and isinstance(e.get('manifest'), Mapping)
                    and is_active(e['manifest']) and _name_matches(entry, e['manifest']))
    best = newest(hits)
    if best is not None:
        return best, ''
    if not asked:
        return None, 'the available images were not gathered'
    if errors:
        return None, 'the available images could not be listed: %s' % errors[0].splitlines()[0][:200]
    return None, 'no source offers an active image of this name'


class _HostPlan:
    """What one host's declaration means for its installed images, as smartos_image would act on it."""

    def __init__(self, declared, keep, lists):
        self.declared = declared
        self.keep = keep
        self.newest = {}   # index of a name-only entry -> (newest manifest or None, why unknown)
        for i, entry in enumerate(declared or []):
            if _newest_wanted(entry):
                self.newest[i] = _newest_of(entry, lists)

    def state(self, uuid, manifest):
        """installed, outdated, unverified or extra, for one installed image; and a note."""
        if self.declared is None:
            return 'installed', ''
        wanted = [(i, e) for i, e in enumerate(self.declared) if _matches(e, uuid, manifest)]
        if any(e.get('state', 'present') == 'absent' for dummy, e in wanted):
            return 'extra', 'declared absent'
        exact = [e for i, e in wanted if i not in self.newest]
        by_newest = [self.newest[i] for i, dummy in wanted if i in self.newest]
        if exact or any(m is not None and m.get('uuid') == uuid for m, dummy in by_newest):
            return 'installed', ''
        unknown = [why for m, why in by_newest if m is None]
        if unknown:
            return 'unverified', 'declared by name without a version; unknown whether newest: %s' % unknown[0]
        if by_newest and not _kept(self.keep, uuid, manifest):
            return 'outdated', 'newer: %s (%s)' % (_label(by_newest[0][0]), by_newest[0][0].get('uuid'))
        if _kept(self.keep, uuid, manifest):
            return 'installed', 'kept'
        return 'extra', 'not declared'


def _set_fields(row_, manifest):
    for field in ('name', 'version', 'published_at', 'os', 'type'):
        if isinstance(manifest.get(field), str) and manifest.get(field) and not row_.get(field):
            row_[field] = manifest[field]


def _add_installed(rows, host, installed, plan):
    for uuid, info in installed.items():
        info = info if isinstance(info, Mapping) else {}
        manifest = _manifest_of(info)
        row_ = rows.setdefault(uuid, {'key': uuid, 'uuid': uuid, 'cells': {}})
        _set_fields(row_, manifest)
        clones = _clone_count(info)
        state, note = plan.state(uuid, manifest)
        row_['cells'][host['name']] = dict({'state': state, 'clones': clones}, **({'note': note} if note else {}))
        host['counts']['installed'] += 1
        host['counts']['in_use'] += 1 if clones else 0
        if state in ('extra', 'outdated', 'unverified'):
            host['counts'][state] += 1


def _add_missing(rows, host, installed, plan):
    for i, entry in enumerate(plan.declared or []):
        if entry.get('state', 'present') != 'present':
            continue
        newest_, dummy = plan.newest.get(i, (None, ''))
        if newest_ is not None:
            # the module imports this one: it is missing unless it is installed
            if newest_.get('uuid') in installed:
                continue
            key = newest_.get('uuid')
            row_ = rows.setdefault(key, {'key': key, 'uuid': key, 'cells': {}})
            _set_fields(row_, newest_)
        else:
            if any(_matches(entry, u, _manifest_of(i_)) for u, i_ in installed.items()):
                continue
            key = entry.get('uuid') or 'name:%s' % (
                entry['name'] + ('@' + str(entry['version']) if entry.get('version') else ''))
            row_ = rows.setdefault(key, {'key': key, 'uuid': entry.get('uuid', ''), 'cells': {}})
            if not entry.get('uuid'):
                row_.setdefault('name', entry.get('name'))
                row_.setdefault('version', str(entry['version']) if entry.get('version') else 'newest')
                row_.setdefault('entry', entry)
        if host['name'] not in row_['cells']:
            row_['cells'][host['name']] = {'state': 'missing', 'clones': 0}
            host['counts']['missing'] += 1


def _fill_row(row_, out_hosts, installed_on):
    """The cells of the hosts a row does not name yet: unknown, installed (by name) or absent."""
    row_.setdefault('name', '')
    row_.setdefault('version', '')
    row_.setdefault('published_at', '')
    entry = row_.pop('entry', None)
    for host in out_hosts:
        if host['name'] in row_['cells']:
            continue
        if host['status'] != 'ok':
            row_['cells'][host['name']] = {'state': 'unknown', 'clones': 0}
            continue
        # a row for a name some host lacks: another host that has an image of that name is not "absent"
        have = [(u, i) for u, i in installed_on[host['name']].items()
                if _matches(entry, u, _manifest_of(i))] if entry is not None else []
        row_['cells'][host['name']] = ({'state': 'installed', 'clones': _clone_count(have[0][1]),
                                        'uuid': have[0][0]} if have else {'state': 'absent', 'clones': 0})


def _drift_text(host):
    counts = host['counts']
    parts = []
    if counts['missing'] or counts['extra'] or counts['outdated']:
        parts.append('%d missing, %d extra' % (counts['missing'], counts['extra'])
                     + (', %d outdated' % counts['outdated'] if counts['outdated'] else ''))
    if host['sources_drift']:
        parts.append('sources: ' + '; '.join(host['sources_drift']))
    return '; '.join(parts)


def _summary(out_hosts, images):
    summary = {'hosts': len(out_hosts),
               'ok': sum(1 for h in out_hosts if h['status'] == 'ok'),
               'failed': sum(1 for h in out_hosts if h['status'] == 'failed'),
               'unreachable': sum(1 for h in out_hosts if h['status'] == 'unreachable'),
               'drifted': sorted(h['name'] for h in out_hosts if h['drift']),
               'unverified': sorted(h['name'] for h in out_hosts if h['counts']['unverified']),
               'images': len(images)}
    lines = ['%(hosts)d hosts: %(ok)d ok, %(failed)d failed, %(unreachable)d unreachable; %(images)d images' % summary]
    for h in out_hosts:
        if h['status'] != 'ok':
            lines.append('%s: %s (%s)' % (h['name'], h['status'].upper(),
                                          h['error'].splitlines()[0][:160] if h['error'] else ''))
        elif h['drift']:
            lines.append('%s: DRIFT %s' % (h['name'], _drift_text(h)))
        if h['counts']['unverified']:
            lines.append('%s: %d image(s) declared by name only, unknown whether newest'
                         % (h['name'], h['counts']['unverified']))
    if not summary['drifted'] and summary['ok'] == summary['hosts']:
        lines.append('no drift')
    summary['text'] = lines
    return summary


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
    rows = {}
    out_hosts = []
    installed_on = {}
    for name in sorted(hosts, key=str):
        data = hosts[name] if isinstance(hosts[name], Mapping) else {}
        result = data.get(result_var)
        status, error = _host_status(result)
        facts = result['ansible_facts'] if status == 'ok' else {}
        installed = facts.get('smartos_images') if isinstance(facts.get('smartos_images'), Mapping) else {}
        installed_on[str(name)] = installed
        declared = _declared(data, images_var)
        host = _host_row(str(name), status, error, facts, declared)
        out_hosts.append(host)
        if status != 'ok':
            continue
        keep = data.get(keep_var) if isinstance(data.get(keep_var), list) else []
        plan = _HostPlan(declared, keep, _available_lists(data, facts, available_var))
        _add_installed(rows, host, installed, plan)
        _add_missing(rows, host, installed, plan)
        host['sources_drift'] = _sources_drift(host['sources'], data, sources_var, sources_exclusive_var,
                                               sources_absent_var)
        host['drift'] = bool(any(host['counts'][s] for s in DRIFT_STATES) or host['sources_drift'])
    for row_ in rows.values():
        _fill_row(row_, out_hosts, installed_on)
    images = sorted(rows.values(), key=lambda r: (r['name'] or '~', r['version'] or '', r['published_at'], r['key']))
    return {'generated_at': generated_at or _now(), 'hosts': out_hosts, 'images': images,
            'summary': _summary(out_hosts, images)}


class FilterModule:
    """smartos.images filters."""

    def filters(self):
        return {'fleet_report': fleet_report}
