#!/usr/bin/env bash
# Lint the collection's docs and build its docsite, offline, failing on any warning.
# Usage: docsite.sh VENV_BIN COLLECTIONS_DIR DEST_DIR
#   VENV_BIN         bin directory of the venv with tests/docs/requirements.txt
#   COLLECTIONS_DIR  the directory holding ansible_collections/smartos/images (the laid-out copy)
#   DEST_DIR         where the site is made (emptied first); HTML ends in DEST_DIR/build/html
set -euo pipefail

venv_bin=$1
collections=$2
dest=$3
collection=$collections/ansible_collections/smartos/images
export PATH="$venv_bin:$PATH" ANSIBLE_COLLECTIONS_PATH="$collections"

# Run a command without network where the kernel lets us (root, or user namespaces): the build must not
# depend on anything online. Elsewhere it runs as it is.
offline=()
if unshare --net true 2>/dev/null; then
  offline=(unshare --net)
fi

echo "docs: antsibull-docs lint-collection-docs --plugin-docs"
(cd "$collection" && "${offline[@]}" antsibull-docs lint-collection-docs --plugin-docs .)

rm -rf "$dest"
mkdir -p "$dest"
"${offline[@]}" antsibull-docs sphinx-init --use-current --squash-hierarchy --fail-on-error \
  --no-add-antsibull-docs-version --dest-dir "$dest" \
  --project smartos.images --copyright 'smartos.images contributors' \
  --title 'smartos.images Collection Documentation' smartos.images >/dev/null

# sphinx-init's conf.py fetches intersphinx inventories (Python, Jinja, Ansible) from the internet. The pages
# antsibull-docs writes refer to two labels of the Ansible docs only: a local inventory resolves them to
# their pages on docs.ansible.com, and nothing is downloaded.
cat >>"$dest/conf.py" <<'EOF'

# Offline build: only a local inventory of the ansible-core labels the generated pages use.
intersphinx_mapping = {
    'ansible_devel': ('https://docs.ansible.com/projects/ansible/devel/', '../ansible_devel.inv'),
}
EOF
"$venv_bin/python" - "$dest/ansible_devel.inv" <<'EOF'
import sys
import zlib

entries = [
    'ansible_configuration_settings std:label -1 reference_appendices/config.html Ansible Configuration Settings',
    'common_return_values std:label -1 reference_appendices/common_return_values.html Return Values',
]
header = (
    '# Sphinx inventory version 2\n# Project: Ansible\n# Version: devel\n'
    '# The remainder of this file is compressed using zlib.\n'
)
with open(sys.argv[1], 'wb') as inventory:
    inventory.write(header.encode() + zlib.compress(('\n'.join(entries) + '\n').encode()))
EOF

log=$dest/build.log
status=0
"${offline[@]}" bash "$dest/build.sh" >"$log" 2>&1 || status=$?
warnings=$(grep -c 'WARNING' "$log" || true)
echo "docs: sphinx build exit status $status, $warnings warning(s); log in $log"
if [ "$status" -ne 0 ] || [ "$warnings" -ne 0 ]; then
  grep -E 'WARNING|ERROR' "$log" || tail -n 20 "$log"
  exit 1
fi

# Every module, plugin, role and guide has its page (a guide left out of extra-docs.yml gets none).
html=$dest/build/html
missing=0
expect() {
  if [ ! -s "$html/$1" ]; then
    echo "docs: missing page $1"
    missing=1
  fi
}
shopt -s nullglob
for path in "$collection"/plugins/modules/*.py; do
  name=${path##*/}; name=${name%.py}; [ "$name" = __init__ ] || expect "${name}_module.html"
done
for kind in lookup filter; do
  for path in "$collection"/plugins/"$kind"/*.py; do
    name=${path##*/}; name=${name%.py}; [ "$name" = __init__ ] || expect "${name}_${kind}.html"
  done
done
for path in "$collection"/roles/*/; do
  name=${path%/}; expect "${name##*/}_role.html"
done
for path in "$collection"/docs/docsite/rst/*.rst; do
  name=${path##*/}; expect "docsite/${name%.rst}.html"
done
[ "$missing" -eq 0 ]
echo "docs: $(find "$html" -name '*.html' | wc -l) HTML pages in $html"
