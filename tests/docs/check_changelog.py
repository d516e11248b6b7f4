# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check the release notes a dry antsibull-changelog release wrote: each new plugin and role listed once, no fragment
announcing one, no fix to what was never released, no internal issue reference."""

from __future__ import annotations

import os
import re
import sys

import yaml

ANNOUNCEMENT = re.compile(r'\bnew (module|role|lookup|filter|plugin|inventory|callback)s?\b(?!\s+options?\b)', re.IGNORECASE)
KINDS = ('module', 'lookup', 'filter', 'role')
# A first release has no earlier behaviour to fix, break, deprecate or remove: its notes describe what it does.
NOT_IN_A_FIRST_RELEASE = ('breaking_changes', 'deprecated_features', 'removed_features', 'security_fixes', 'bugfixes')
# An internal tracker reference, (issue 16), (issues 12 and 16), (#16): a link to a public tracker is fine.
ISSUE_REFERENCE = re.compile(r'\([^()]*(?:\bissues?\s*#?\s*\d+|#\d+\b)[^()]*\)', re.IGNORECASE)


def listed_as_new(release):
    """The names antsibull-changelog lists as new in one release of changelog.yaml, per kind."""
    plugins = release.get('plugins') or {}
    objects = release.get('objects') or {}
    entries = {
        'module': release.get('modules'),
        'lookup': plugins.get('lookup'),
        'filter': plugins.get('filter'),
        'role': objects.get('role'),
    }
    return {kind: sorted(entry['name'] for entry in entries[kind] or []) for kind in KINDS}


def find_problems(releases, version, notes, present):
    """What is wrong with the notes of VERSION; present maps each kind to the names the collection has."""
    release = releases[version]
    listed = listed_as_new(release)
    # Everything is new in the first release; later ones list what their version_added names.
    first = list(releases) == [version]
    problems = []
    for kind in KINDS:
        names = listed[kind]
        if len(names) != len(set(names)):
            problems.append(f'{kind}s listed twice as new: {names}')
        if first and set(names) != set(present[kind]):
            problems.append(f'new {kind}s listed: {names}; in the collection: {sorted(present[kind])} '
                            '(a missing one lacks version_added)')
        for name in sorted(set(names)):
            count = len(re.findall(rf'^- smartos\.images\.{re.escape(name)} - ', notes, re.MULTILINE))
            if count != 1:
                problems.append(f'{kind} {name} appears {count} times in the new-{kind} lists of CHANGELOG.rst')
    for section, entries in (release.get('changes') or {}).items():
        for entry in entries if isinstance(entries, list) else [entries]:
            if ANNOUNCEMENT.search(str(entry)):
                problems.append(f'{section}: announces what the new-plugin lists already list: {str(entry)[:100]}')
            if first and section in NOT_IN_A_FIRST_RELEASE:
                problems.append(f'{section}: the first release has no earlier behaviour to change; a fix to unreleased '
                                'behaviour is trivial, and what users should know is a minor_changes or known_issues '
                                f'note on the behaviour as released: {str(entry)[:100]}')
            reference = ISSUE_REFERENCE.search(str(entry))
            if reference:
                problems.append(f'{section}: an internal reference, {reference.group(0)}, tells users nothing; say what '
                                f'the entry means instead: {str(entry)[:100]}')
    return problems


def collection_names(copy):
    """The modules, lookups, filters and roles of the collection at COPY."""
    def names(directory, suffix):
        path = os.path.join(copy, directory)
        if not os.path.isdir(path):
            return []
        return sorted(n[:len(n) - len(suffix)] for n in os.listdir(path)
                      if n.endswith(suffix) and n != '__init__.py' and not n.startswith(('.', '_')))
    return {'module': names('plugins/modules', '.py'), 'lookup': names('plugins/lookup', '.py'),
            'filter': names('plugins/filter', '.py'), 'role': names('roles', '')}


def main(argv):
    """Usage: check_changelog.py COPY VERSION; prints a summary and each problem, exits 1 on any."""
    copy, version = argv
    with open(os.path.join(copy, 'changelogs', 'changelog.yaml'), encoding='utf-8') as f:
        releases = yaml.safe_load(f)['releases']
    with open(os.path.join(copy, 'CHANGELOG.rst'), encoding='utf-8') as f:
        notes = f.read()
    problems = find_problems(releases, version, notes, collection_names(copy))
    listed = listed_as_new(releases[version])
    changes = releases[version].get('changes') or {}
    print('changelog: new ' + ', '.join(f'{kind}s {len(listed[kind])}' for kind in KINDS) + '; fragments: '
          + ', '.join(f'{name} {len(entries)}' for name, entries in changes.items() if isinstance(entries, list)))
    for problem in problems:
        print(f'changelog: {problem}')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
