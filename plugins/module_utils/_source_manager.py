# Private to the smartos.images collection: not a public API.
# The smartos_image_source worker: plan the host's source list, ping new sources, write it under a lock.
from __future__ import annotations

import os
import stat

from ansible_collections.smartos.images.plugins.module_utils import _host
from ansible_collections.smartos.images.plugins.module_utils._common import check_server_params
from ansible_collections.smartos.images.plugins.module_utils._errors import InvalidParameter, SourceError
from ansible_collections.smartos.images.plugins.module_utils._imgapi import client_from_params
from ansible_collections.smartos.images.plugins.module_utils._source_entry import SourceEntry, normalize_url
from ansible_collections.smartos.images.plugins.module_utils._sources import check_layout_type, source_store
from ansible_collections.smartos.images.plugins.module_utils._urls import (
    has_credentials, safe_url, url_secrets, without_credentials,
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


def argument_urls(params):
    """Every URL the task names (strings only; the argument spec made them so)."""
    urls = [params.get('url')] + [s.get('url') for s in params.get('sources') or []]
    return [u for u in urls if isinstance(u, str)]


class SourceManager:
    """Brings the host's image sources to what the task declares.

    secrets: a set (the module's no_log_values) that receives every password found in the task's URLs and
    in the source file, before anything can fail, so that Ansible masks it wherever it would be shown.
    warnings: what the module should warn about, filled as the run goes."""

    def __init__(self, params, check_mode=False, client_factory=None, secrets=None):
        self.params = params
        self.check_mode = check_mode
        self.client_factory = client_factory
        self.secrets = secrets if secrets is not None else set()
        self.warnings = []
        for url in argument_urls(params):
            self.secrets.update(url_secrets(url))
        self.paths = _host.HostPaths(params['host_root'])
        self.layout = _host.detect_layout(self.paths, params['layout'])
        check_server_params(params)
        self.wanted, self.exclusive = self._wanted()
        for entry in self.wanted:
            check_layout_type(self.layout, entry)
        if params.get('update_cache') and self.layout != 'original':
            # checked here, before the source list is written: the task fails whole or not at all
            raise InvalidParameter('update_cache refreshes /var/db/imgadm/imgcache.json, which only hosts with '
                                   'the original imgadm layout have (this host: %s layout); nothing was changed'
                                   % self.layout)

    def _wanted(self):
        """The sources the task names, validated, without duplicates; and whether the list is exclusive."""
        p = self.params
        if p.get('sources') is not None:
            entries = [SourceEntry.from_argument(s['url'], s.get('type') or 'imgapi', s.get('insecure') or False)
                       for s in p['sources']]
            exclusive = p['state'] == 'present'
        elif p.get('url') is not None:
            entries = [SourceEntry.from_argument(p['url'], p['type'], p['insecure'])]
            exclusive = False
        else:
            return [], False
        unique, seen = [], set()
        for e in entries:
            if e.identity not in seen:
                seen.add(e.identity)
                unique.append(e)
        return unique, exclusive

    def client(self, entry):
        return client_from_params(entry.for_import(), self.params, self.client_factory)

    def ping(self, entry):
        """Raise unless the source answers its ping (imgadm sources -a does this unless -f)."""
        try:
            ok = self.client(entry).ping()
        except SourceError as e:
            ok, detail = False, e.msg
        else:
            detail = 'it does not answer as an %s server' % entry.type.upper()
        if not ok:
            raise SourceError('unexpected ping error with "%s" image source "%s": %s; check the URL and type, '
                              'or set ping: false to add it anyway' % (entry.type, safe_url(entry.url), detail),
                              url=safe_url(entry.url))

    def load(self, store):
        """Read the source file and its entries; its passwords are registered first, its warnings kept."""
        try:
            store.load()
        finally:
            self.secrets.update(store.secrets())
        entries = store.entries()
        self.warnings.extend(w for w in store.warnings if w not in self.warnings)
        return entries

    def run(self, diff=False):
        """Plan, ping what is new, then write under the lock unless in check mode."""
        store = source_store(self.paths, self.layout)
        before = self.load(store)
        after = apply_change(before, self.params['state'], self.wanted, self.exclusive)
        changed = not same_list(before, after)
        if self.params['ping']:
            known = {e.identity for e in before}
            for entry in after:
                if entry.identity not in known:
                    self.ping(entry)
        if changed and not self.check_mode:
            with store.lock():
                current = self.load(store)  # another writer may have changed it while we pinged
                after = apply_change(current, self.params['state'], self.wanted, self.exclusive)
                changed = not same_list(current, after)
                if changed:
                    store.save(after)
                before = current
        self.warn_readable(store, after)
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

    def warn_readable(self, store, entries):
        """A password in a file other users can read deserves a word (the mode is the user's to choose)."""
        if not any(has_credentials(e.url) for e in entries):
            return
        try:
            mode = stat.S_IMODE(os.stat(store.path).st_mode)
        except OSError:
            return  # check mode before the file exists: it would be made 0600
        if mode & 0o044:
            self.warnings.append('%s holds a source password and other users can read it (mode %04o); '
                                 'chmod 600 it: the mode is kept from then on' % (store.path, mode))

    def update_cache(self, entries):
        """Original layout: refresh /var/db/imgadm/imgcache.json as imgadm v1's update did."""
        cache = []
        for entry in entries:
            for n, manifest in enumerate(self.client(entry).list_raw(), 1):
                if not isinstance(manifest, dict):
                    self.warnings.append('%s: entry %d of its list is not a manifest object; skipped'
                                         % (safe_url(entry.url), n))
                    continue
                # imgadm v1 cacheUpdate: every manifest the source lists, tagged with the source URL; we leave
                # its credentials out (imgadm v1 kept them): only imgadm.conf and sources.list hold passwords
                cache.append(dict(manifest, _url=without_credentials(entry.url)))
        data = _host.json_bytes(cache, separators=(',', ':'))
        if _host.read_regular_file(self.paths.imgcache) == data:
            return False
        if not self.check_mode:
            _host.write_atomic(self.paths.imgcache, data)
        return True
