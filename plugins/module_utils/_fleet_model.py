# Private to the smartos.images collection: not a public API.
# The fleet report's model: each host's declared images against its installed ones, and the image rows across hosts.
from __future__ import annotations

from collections.abc import Mapping

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


def build(hosts, names, generated_at):
    """The report of hosts ({name: hostvars}); names: the variable names (result, images, keep, available, sources,
    sources_exclusive, sources_absent)."""
    result_var, images_var, keep_var, available_var = (names['result'], names['images'], names['keep'],
                                                       names['available'])
    sources_var, sources_exclusive_var, sources_absent_var = (names['sources'], names['sources_exclusive'],
                                                              names['sources_absent'])
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
    return {'generated_at': generated_at, 'hosts': out_hosts, 'images': images,
            'summary': _summary(out_hosts, images)}
