#!/usr/bin/env bash
# Lint the changelog fragments, then release VERSION in a scratch copy (the tree is never touched) and check
# the notes: valid RST, every module, plugin and role listed once as new, no fragment announcing one again or
# citing an internal issue, no fixes in the first release (check_changelog.py).
# Usage: changelog.sh VENV_BIN COLLECTION_DIR SCRATCH_DIR VERSION
#   VENV_BIN        bin directory of the venv with tests/docs/requirements.txt
#   COLLECTION_DIR  the laid-out copy of the collection (read only)
#   SCRATCH_DIR     emptied, then holds ansible_collections/smartos/images with the released notes
#   VERSION         the version to release, such as 0.1.0
set -euo pipefail

if [ "$#" -ne 4 ] || [ -z "$4" ]; then
  echo "changelog: no version to release (make reads it from galaxy.yml's top-level 'version:' line)" >&2
  echo "usage: changelog.sh VENV_BIN COLLECTION_DIR SCRATCH_DIR VERSION" >&2
  exit 2
fi
# antsibull-changelog stops with a bare "Uncaught exception" on a version that is not semantic: say so first.
if ! printf '%s\n' "$4" | grep -Eq '^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$'; then
  echo "changelog: version '$4' (galaxy.yml's) is not a semantic version X.Y.Z, as Galaxy and antsibull-changelog require" >&2
  exit 2
fi
venv_bin=$1
collection=$2
scratch=$3
version=$4
export PATH="$venv_bin:$PATH"

echo "changelog: antsibull-changelog lint"
(cd "$collection" && antsibull-changelog lint)
# Two release summaries pass lint, then break the release with a bare exception: name them instead.
summaries=$(grep -l '^release_summary:' "$collection"/changelogs/fragments/*.y*ml 2>/dev/null || true)
if [ "$(printf '%s' "$summaries" | grep -c .)" -gt 1 ]; then
  printf 'changelog: more than one release_summary fragment:\n%s\n' "$summaries"
  exit 1
fi

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

"$venv_bin/python" "$(dirname "${BASH_SOURCE[0]}")/check_changelog.py" "$copy" "$version"
