#!/usr/bin/env bash
# Lint the changelog fragments, then release VERSION in a scratch copy (the tree is never touched) and check
# the notes: valid RST, every module, plugin and role listed once as new, no fragment announcing one again.
# Usage: changelog.sh VENV_BIN COLLECTION_DIR SCRATCH_DIR VERSION
#   VENV_BIN        bin directory of the venv with tests/docs/requirements.txt
#   COLLECTION_DIR  the laid-out copy of the collection (read only)
#   SCRATCH_DIR     emptied, then holds ansible_collections/smartos/images with the released notes
#   VERSION         the version to release, such as 0.1.0
set -euo pipefail

venv_bin=$1
collection=$2
scratch=$3
version=$4
export PATH="$venv_bin:$PATH"

echo "changelog: antsibull-changelog lint"
(cd "$collection" && antsibull-changelog lint)

copy=$scratch/ansible_collections/smartos/images
rm -rf "$scratch"
mkdir -p "$copy"
cp -a "$collection/." "$copy/"
rm -rf "$copy/.git" "$copy/CHANGELOG.rst"
# antsibull-changelog lists the plugins git tracks (vcs: auto): track them all in the copy.
git -C "$copy" init -q
git -C "$copy" add -A
export ANSIBLE_COLLECTIONS_PATH="$scratch"
(cd "$copy" && antsibull-changelog release --version "$version")
echo "changelog: dry release $version written to $copy/CHANGELOG.rst"

rstcheck --report-level warning "$copy/CHANGELOG.rst"
antsibull-changelog lint-changelog-yaml "$copy/changelogs/changelog.yaml"

"$venv_bin/python" - "$copy" "$version" <<'EOF'
import os
import re
import sys

import yaml

copy, version = sys.argv[1:]
with open(os.path.join(copy, 'changelogs', 'changelog.yaml'), encoding='utf-8') as f:
    releases = yaml.safe_load(f)['releases']
release = releases[version]
with open(os.path.join(copy, 'CHANGELOG.rst'), encoding='utf-8') as f:
    notes = f.read()
problems = []


def names(directory, suffix):
    path = os.path.join(copy, directory)
    if not os.path.isdir(path):
        return set()
    return {n[:-len(suffix)] if suffix else n for n in os.listdir(path)
            if n.endswith(suffix) and n != '__init__.py' and not n.startswith('.')}


def released(entries):
    return sorted(entry['name'] for entry in entries or [])


# Everything in the collection is new in its first release; later releases list what their version_added names.
first = list(releases) == [version]
expected = {
    'module': (names('plugins/modules', '.py'), released(release.get('modules'))),
    'lookup': (names('plugins/lookup', '.py'), released((release.get('plugins') or {}).get('lookup'))),
    'filter': (names('plugins/filter', '.py'), released((release.get('plugins') or {}).get('filter'))),
    'role': (names('roles', ''), released((release.get('objects') or {}).get('role'))),
}
for kind, (present, listed) in expected.items():
    if len(listed) != len(set(listed)):
        problems.append(f'{kind}s listed twice as new: {listed}')
    if first and set(listed) != present:
        problems.append(f'new {kind}s listed: {listed}; in the collection: {sorted(present)} '
                        '(a missing one lacks version_added)')
    for name in listed:
        count = len(re.findall(rf'^- smartos\.images\.{re.escape(name)} - ', notes, re.M))
        if count != 1:
            problems.append(f'{kind} {name} appears {count} times in the new-{kind} lists of CHANGELOG.rst')

announcement = re.compile(r'\bnew (module|role|lookup|filter|plugin|inventory|callback)s?\b', re.I)
for section, entries in (release.get('changes') or {}).items():
    for entry in entries if isinstance(entries, list) else [entries]:
        if announcement.search(entry):
            problems.append(f'{section}: announces what the new-plugin lists already list: {entry[:100]}')

summary = ', '.join(f'{kind}s {len(listed)}' for kind, (_, listed) in expected.items())
sections = ', '.join(f'{name} {len(entries)}' for name, entries in (release.get('changes') or {}).items()
                     if isinstance(entries, list))
print(f'changelog: new {summary}; fragments: {sections}')
for problem in problems:
    print(f'changelog: {problem}')
sys.exit(1 if problems else 0)
EOF
