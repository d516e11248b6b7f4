# Private to the smartos.images collection: not a public API.
# The smartos_image_source worker: plan the host's source list, ping new sources, write it under a lock.
from __future__ import annotations

import json

from ansible_collections.smartos.images.plugins.module_utils import _host
from ansible_collections.smartos.images.plugins.module_utils._common import check_server_params
from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, InvalidParameter, SourceError
from ansible_collections.smartos.images.plugins.module_utils._imgapi import client_for, redact
from ansible_collections.smartos.images.plugins.module_utils._sources import (
    SourceEntry, check_layout_type, normalize_url, source_store,
)


def apply_change(entries, state, wanted, exclusive):
    """The source list after the change (entries and wanted are SourceEntry lists)."""
    if state == 'absent':
        # imgadm sources -d: every source with that normalized URL goes, whatever its type
        gone = {normalize_url(w.url) for w in wanted}
        return [e for e in entries if normalize_url(e.url) not in gone]
    if exclusive:
        return list(wanted)
    have = {e.identity for e in entries}
    return list(entries) + [w for w in wanted if w.identity not in have]


def same_list(a, b):
    return [e.identity for e in a] == [e.identity for e in b]


class SourceManager:
    """Brings the host's image sources to what the task declares."""

    def __init__(self, params, check_mode=False, client_factory=client_for):
        self.params = params
        self.check_mode = check_mode
        self.client_factory = client_factory
        self.paths = _host.HostPaths(params['host_root'])
        self.layout = _host.detect_layout(self.paths, params['layout'])
        check_server_params(params)
        self.wanted, self.exclusive = self._wanted()
        for entry in self.wanted:
            check_layout_type(self.layout, entry)

    def _wanted(self):
        """The sources the task names, validated, without duplicates; and whether the list is exclusive."""
        p = self.params
        if p.get('sources') is not None:
            entries = [SourceEntry(s['url'], s.get('type') or 'imgapi', s.get('insecure') or False)
                       for s in p['sources']]
            exclusive = p['state'] == 'present'
        elif p.get('url'):
            entries = [SourceEntry(p['url'], p['type'], p['insecure'])]
            exclusive = False
        else:
            return [], False
        unique, seen = [], set()
        for e in entries:
            if e.identity not in seen:
                seen.add(e.identity)
                unique.append(e)
        return unique, exclusive

    def ping(self, entry):
        """Raise unless the source answers its ping (imgadm sources -a does this unless -f)."""
        client = self.client_factory(entry.for_import(), validate_certs=self.params['validate_certs'],
                                     ca_path=self.params['ca_path'], timeout=self.params['timeout'],
                                     retries=self.params['retries'])
        try:
            ok = client.ping()
        except SourceError as e:
            ok, detail = False, e.msg
        else:
            detail = 'it does not answer as an %s server' % entry.type.upper()
        if not ok:
            raise SourceError('unexpected ping error with "%s" image source "%s": %s; check the URL and type, '
                              'or set ping: false to add it anyway' % (entry.type, redact(entry.url), detail),
                              url=redact(entry.url))

    def run(self, diff=False):
        """Plan, ping what is new, then write under the lock unless in check mode."""
        store = source_store(self.paths, self.layout).load()
        before = store.entries()
        after = apply_change(before, self.params['state'], self.wanted, self.exclusive)
        changed = not same_list(before, after)
        if self.params['ping']:
            known = {e.identity for e in before}
            for entry in after:
                if entry.identity not in known:
                    self.ping(entry)
        if changed and not self.check_mode:
            with store.lock():
                store.load()  # another writer may have changed it while we pinged
                current = store.entries()
                after = apply_change(current, self.params['state'], self.wanted, self.exclusive)
                changed = not same_list(current, after)
                if changed:
                    store.save(after)
                before = current
        result = dict(changed=changed, layout=self.layout, sources=[e.shown() for e in after],
                      implicit_default=store.implicit and not changed)
        if self.params.get('update_cache'):
            cache_changed = self.update_cache(after)
            result['changed'] = result['changed'] or cache_changed
            result['cache_updated'] = cache_changed
        if diff:
            result['diff'] = dict(before=dict(sources=[e.shown() for e in before]),
                                  after=dict(sources=[e.shown() for e in after]))
        return result

    def update_cache(self, entries):
        """Original layout: refresh /var/db/imgadm/imgcache.json as imgadm v1's update did."""
        if self.layout != 'original':
            raise InvalidParameter('update_cache refreshes /var/db/imgadm/imgcache.json, which only hosts with '
                                   'the original imgadm layout have (this host: %s layout)' % self.layout)
        cache = []
        for entry in entries:
            client = self.client_factory(entry.for_import(), validate_certs=self.params['validate_certs'],
                                         ca_path=self.params['ca_path'], timeout=self.params['timeout'],
                                         retries=self.params['retries'])
            for manifest in client.list_raw():
                # imgadm v1 cacheUpdate: every manifest the source lists, tagged with the source URL
                cache.append(dict(manifest, _url=entry.url))
        data = json.dumps(cache, separators=(',', ':'), ensure_ascii=False).encode('utf-8')
        try:
            with open(self.paths.imgcache, 'rb') as f:
                if f.read() == data:
                    return False
        except FileNotFoundError:
            pass
        except OSError as e:
            raise ImageError('cannot read %s: %s' % (self.paths.imgcache, e.strerror))
        if not self.check_mode:
            _host.write_atomic(self.paths.imgcache, data)
        return True
