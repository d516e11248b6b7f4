#!/usr/bin/env bash
# ansible-test --venv bootstraps pip from a web address this network cannot reach; it first looks
# for a cached get-pip script, so leave one there that bootstraps pip from the Python itself.
set -euo pipefail
# Usage: prepare-ansible-test.sh VENV_PYTHON (the Python of the venv whose ansible-test runs; each ansible-core
# asks for its own pip version: 24.2 for 2.19, 25.2 for 2.20 and 2.21).
py=${1:-.venv/bin/python}
version=$("$py" - <<'PY'
import inspect
import re
import sys

try:
    import ansible_test._internal.python_requirements as r
    found = re.search(r"pip='([0-9.]+)'", inspect.getsource(r.get_venv_packages))
except (ImportError, AttributeError) as e:
    sys.exit('ansible-test not usable from %s: %s' % (sys.executable, e))
if not found:
    sys.exit('cannot tell which pip version the ansible-test of %s wants' % sys.executable)
print(found.group(1))
PY
) || { echo "prepare-ansible-test.sh: no pip version for ansible-test from $py" >&2; exit 1; }
cache="$HOME/.ansible/test/cache/get_pip_${version//./_}.py"
mkdir -p "$(dirname "$cache")"
cat > "$cache" <<'PY'
# Stand-in for get-pip.py: pip from ensurepip, then the pip version ansible-test asked for.
import ensurepip
import os
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
ensurepip.bootstrap(upgrade=True)
os.environ.pop('PIP_CONFIG_FILE', None)  # ensurepip sets it to /dev/null; the host's pip.conf matters
subprocess.check_call([sys.executable, '-m', 'pip', 'install', '--upgrade'] + args)
PY
