# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`make galaxy`'s verdict on a built collection tarball and on galaxy-importer's output.

Usage: python tests/galaxy/check_release.py TARBALL [IMPORTER_LOG]

Prints each problem and exits 1 when there is one. The tarball must hold only what users need
(FORBIDDEN lists what it must not), the files it must (REQUIRED), and a MANIFEST.json and FILES.json
that describe it exactly. The importer's output must end in success with no line at WARNING or
ERROR level: galaxy-importer prints INFO lines bare and every other level with its name first, and
it reports each ansible-lint violation as a WARNING line. TOLERATED lists the warnings accepted, each
with its reason; it is empty, so every warning fails the check.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tarfile
import zlib

IMPORTER_SUCCESS = 'Importer processing completed successfully'
IMPORTER_LEVEL = re.compile(r'^(WARNING|ERROR|CRITICAL): ')
TOLERATED = ()   # (regular expression, reason) pairs of accepted importer warnings: none

REQUIRED = (
    'COPYING', 'README.md', 'meta/runtime.yml', 'changelogs/changelog.yaml',
    'roles/image_host/README.md', 'roles/image_host/meta/argument_specs.yml',
    'plugins/modules/smartos_image.py', 'schemas/imgmanifest-v2.json',
)

# Paths, relative to the collection root, that users do not need: caches, virtual environments,
# build and test output, reports, and the development tooling (make demo, benchmarks, CI).
FORBIDDEN = tuple(re.compile(p) for p in (
    r'(^|/)\.git(/|$)', r'(^|/)__pycache__(/|$)', r'\.py[co]$', r'(^|/)\.pytest_cache(/|$)',
    r'(^|/)\.hypothesis(/|$)', r'(^|/)\.ansible(/|$)', r'(^|/)\.venv[^/]*(/|$)', r'(^|/)\.tox(/|$)',
    r'^build(-[^/]*)?(/|$)', r'^tests/output(/|$)', r'(^|/)fleet-report(/|$)',
    r'^changelogs/\.plugin-cache\.yaml$', r'\.tar\.gz$', r'\.retry$', r'^\.ci(/|$)', r'^\.gitignore$',
    r'^benchmarks(/|$)', r'^tools(/|$)', r'^Makefile$', r'^requirements-dev\.txt$',
    r'^playbooks/demo\.yml$', r'^docs/test-environment\.md$',
))

METADATA_URLS = ('repository', 'documentation', 'homepage', 'issues')


def importer_problems(text):
    """What is wrong with galaxy-importer's output (its stdout and stderr together)."""
    problems = []
    for line in text.splitlines():
        if IMPORTER_LEVEL.match(line) and not any(re.search(p, line) for p, dummy in TOLERATED):
            problems.append('importer: %s' % line)
        elif line.startswith('Traceback '):
            problems.append('importer: a traceback (see the log)')
    if IMPORTER_SUCCESS not in text.splitlines():
        problems.append('importer: no "%s" line' % IMPORTER_SUCCESS)
    return problems


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def tarball_problems(path):
    """What is wrong with a collection tarball built by ansible-galaxy."""
    try:
        members, files, problems = _read_tarball(path)
    except (OSError, EOFError, tarfile.TarError, zlib.error) as e:
        return ['tarball %s: cannot be read: %s' % (path, e)]
    problems.extend('%s: not for users' % n for n in sorted(members) if any(p.search(n) for p in FORBIDDEN))
    problems.extend('%s: missing' % n for n in REQUIRED if n not in files)
    problems.extend(_manifest_problems(members, files))
    return problems


def _read_tarball(path):
    """(members by name, contents of the regular files, problems with the members' kinds and paths)."""
    members, files, problems = {}, {}, []
    with tarfile.open(path, 'r:gz') as tar:
        for m in tar.getmembers():
            name = m.name[2:] if m.name.startswith('./') else m.name
            if name.startswith('/') or '..' in name.split('/'):
                problems.append('%s: a path outside the collection' % m.name)
            elif not (m.isfile() or m.isdir()):
                problems.append('%s: neither a file nor a directory' % name)
            members[name] = m
            if m.isfile():
                files[name] = tar.extractfile(m).read()
    return members, files, problems


def _manifest_problems(members, files):
    """MANIFEST.json and FILES.json must describe the tarball exactly, checksums included."""
    try:
        manifest = json.loads(files['MANIFEST.json'])
        listing = json.loads(files['FILES.json'])
        ref = manifest['file_manifest_file']
        entries = {e['name']: e for e in listing['files'] if e['name'] != '.'}
    except (KeyError, TypeError, ValueError) as e:
        return ['MANIFEST.json or FILES.json is missing or malformed: %r' % (e,)]
    problems = []
    if ref.get('name') != 'FILES.json' or ref.get('chksum_sha256') != _sha256(files['FILES.json']):
        problems.append('MANIFEST.json: its checksum of FILES.json is wrong')
    for name in sorted(set(members) - set(entries) - {'MANIFEST.json', 'FILES.json'}):
        problems.append('%s: in the tarball, not in FILES.json' % name)
    for name, entry in sorted(entries.items()):
        member = members.get(name)
        if member is None:
            problems.append('%s: in FILES.json, not in the tarball' % name)
        elif entry.get('ftype') != ('dir' if member.isdir() else 'file'):
            problems.append('%s: FILES.json gives the wrong type' % name)
        elif member.isfile() and entry.get('chksum_sha256') != _sha256(files[name]):
            problems.append('%s: FILES.json gives the wrong checksum' % name)
    info = manifest.get('collection_info', {})
    if not info.get('license') and not info.get('license_file'):
        problems.append('MANIFEST.json: no license nor license_file')
    problems.extend('MANIFEST.json: %s is not an https URL' % key for key in METADATA_URLS
                    if not str(info.get(key) or '').startswith('https://'))
    return problems


def main(argv):
    if len(argv) not in (2, 3):
        sys.stderr.write(__doc__.split('\n\n', 2)[1] + '\n')
        return 2
    problems = tarball_problems(argv[1])
    if len(argv) == 3:
        with open(argv[2], encoding='utf-8', errors='replace') as f:
            problems.extend(importer_problems(f.read()))
    for problem in problems:
        print(problem)
    if problems:
        print('%d problem(s): the release is not ready' % len(problems))
        return 1
    print('tarball and importer output are clean')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
