# Private to the smartos.images collection: not a public API.
# The module scaffold: options shared by the modules (paired with the doc fragment smartos.images.common),
# and the one place where a worker's outcome becomes the module's result, warnings or failure.
from __future__ import annotations

import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, InvalidParameter
from ansible_collections.smartos.images.plugins.module_utils._host import without_lone_surrogates
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


def source_argument_spec():
    """source, image servers instead of the host's (doc fragment: smartos.images.common.source)."""
    return dict(source=dict(type='list', elements='str'))


SHARED_OPTIONS = {
    'host': host_argument_spec,
    'pool': pool_argument_spec,
    'server': server_argument_spec,
    'source': source_argument_spec,
}


def module_argument_spec(options, *shared):
    """A module's argument spec: its own options plus the named groups of SHARED_OPTIONS, each built once here."""
    spec = {}
    for group in shared:
        spec.update(SHARED_OPTIONS[group]())
    clash = sorted(set(spec) & set(options))
    if clash:
        raise ValueError('options %s are shared options; do not declare them again' % ', '.join(clash))
    spec.update(options)
    return spec


URL_OPTIONS = ('source', 'sources', 'url')   # the options (and sub-options) that hold image server URLs


def option_urls(params):
    """Every string held, at any depth, under a URL option of params (the task's arguments, checked or not)."""
    urls = []

    def walk(value, under_url_option):
        if isinstance(value, str) and under_url_option:
            urls.append(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, under_url_option or key in URL_OPTIONS)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item, under_url_option)
    walk(params, False)
    return urls


class ImagesModule(AnsibleModule):
    """AnsibleModule that masks the passwords of the task's source URLs in every failure, including the failures
    AnsibleModule raises itself while it checks the arguments (before the module's own code runs)."""

    def fail_json(self, *args, **kwargs):
        hide_url_passwords(self, option_urls(getattr(self, 'params', None) or {}))
        super().fail_json(*args, **kwargs)


def new_module(options, shared, **constraints):
    """The AnsibleModule of a smartos.images module: every one supports check mode, and the passwords of the URLs
    its task names are masked wherever Ansible would show them."""
    module = ImagesModule(argument_spec=module_argument_spec(options, *shared), supports_check_mode=True,
                          **constraints)
    hide_url_passwords(module, option_urls(module.params))
    return module


def run_worker(module, make_worker, **run_args):
    """Build a worker, run it and end the module: ImageError becomes fail_json with its evidence, warnings
    (the worker's, and a result's 'warnings') become module.warn, on success and on failure alike."""
    worker = None
    try:
        worker = make_worker(module)
        result = worker.run(**run_args)
    except ImageError as e:
        warn_all(module, getattr(worker, 'warnings', None))
        module.fail_json(**without_lone_surrogates(dict(e.evidence, msg=e.msg)))
    else:
        warn_all(module, list(result.pop('warnings', None) or []) + list(getattr(worker, 'warnings', None) or []))
        module.exit_json(**without_lone_surrogates(result))


def warn_all(module, warnings):
    """module.warn each warning once, in order (a worker may hand the same list in two places)."""
    seen = set()
    for warning in warnings or []:
        if warning not in seen:
            seen.add(warning)
            module.warn(without_lone_surrogates(warning))


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
