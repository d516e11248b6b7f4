# Private to the smartos.images collection: not a public API.
# Options shared by the modules, paired with the doc fragment smartos.images.common.
from __future__ import annotations

import re

from ansible_collections.smartos.images.plugins.module_utils._errors import InvalidParameter
from ansible_collections.smartos.images.plugins.module_utils._imgapi import url_secrets

# A ZFS pool name: a letter first, then letters, digits, '_', '-', '.', ':'.
POOL_RE = re.compile(r'^[A-Za-z][A-Za-z0-9_.:-]*\Z')
TIMEOUT_MAX = 86400  # sockets refuse timeouts past the platform's time_t; a day is more than any server needs


def host_argument_spec():
    """host_root and layout (doc fragment: smartos.images.common)."""
    return dict(
        host_root=dict(type='path', default='/'),
        layout=dict(type='str', default='auto', choices=['auto', 'modern', 'original']),
    )


def pool_argument_spec():
    """pool (doc fragment: smartos.images.common.pool)."""
    return dict(pool=dict(type='str', default='zones'))


def server_argument_spec():
    """How image servers are reached (doc fragment: smartos.images.common.server)."""
    return dict(
        validate_certs=dict(type='bool', default=True),
        ca_path=dict(type='path'),
        timeout=dict(type='int', default=30),
        retries=dict(type='int', default=3),
    )


def check_pool(pool):
    """Raise InvalidParameter unless pool is a valid ZFS pool name."""
    if not POOL_RE.match(pool or ''):
        raise InvalidParameter('pool "%s" is not a valid ZFS pool name (a letter, then letters, '
                               'digits, "_", "-", ".", ":")' % pool)


def check_server_params(params):
    """Raise InvalidParameter for impossible timeout or retries values (ca_path: when a client is made)."""
    if params['timeout'] <= 0:
        raise InvalidParameter('timeout must be a positive number of seconds, not %d' % params['timeout'])
    if params['timeout'] > TIMEOUT_MAX:
        raise InvalidParameter('timeout must be at most %d seconds (a day), not %d' % (TIMEOUT_MAX, params['timeout']))
    if params['retries'] < 0:
        raise InvalidParameter('retries must be 0 or more, not %d' % params['retries'])


def hide_url_passwords(module, urls):
    """Have Ansible mask the passwords of source URLs wherever they would be shown, even in URLs that do not parse."""
    for url in urls or []:
        for secret in url_secrets(url):
            module.no_log_values.add(secret)
