# Private to the smartos.images collection: not a public API.
# Platform requirements of an image (requirements.min_platform / max_platform), checked as imgadm does.
from __future__ import annotations

import json

from ansible_collections.smartos.images.plugins.module_utils._errors import CommandError, ImageError


def read_sysinfo(runner):
    """The host's sysinfo, or None where there is no sysinfo command (not SmartOS)."""
    if not runner.which('sysinfo', required=False):
        return None
    rc, out, err = runner.run(['sysinfo'])
    if rc != 0:
        raise CommandError('sysinfo failed: %s' % err.strip(), cmd='sysinfo', rc=rc, stderr=err)
    try:
        info = json.loads(out)
    except ValueError as e:
        raise CommandError('sysinfo printed something that is not JSON: %s' % e, cmd='sysinfo')
    if not isinstance(info, dict):
        raise CommandError('sysinfo printed a JSON %s, not an object' % type(info).__name__, cmd='sysinfo')
    return info


def platform_problem(manifest, sysinfo):
    """imgadm checkMinMaxPlatformSync: the error imgadm gives, or None when the platform fits."""
    requirements = manifest.get('requirements') or {}
    version = sysinfo.get('SDC Version') or '6.5'
    stamp = sysinfo.get('Live Image') or ''
    for key, too_low in (('min_platform', True), ('max_platform', False)):
        wanted = requirements.get(key)
        if not isinstance(wanted, dict) or not wanted:
            continue
        if version in wanted:
            # imgadm compares an absent Live Image as undefined, which is never < or > anything
            bad = bool(stamp) and (stamp < wanted[version] if too_low else stamp > wanted[version])
        else:
            edge = sorted(wanted)[0] if too_low else sorted(wanted)[-1]
            bad = version < edge if too_low else version > edge
        if bad:
            return ('current platform version, %s/%s, does not satisfy requirements.%s=%s'
                    % (version, stamp, key, json.dumps(wanted, separators=(',', ':'))))
    return None


def check_platform(manifest, sysinfo):
    """Raise the imgadm MinPlatform/MaxPlatform error when the image does not fit this platform."""
    if sysinfo is None:
        return
    problem = platform_problem(manifest, sysinfo)
    if problem:
        raise ImageError('image %s (%s@%s): %s' % (manifest.get('uuid'), manifest.get('name'),
                                                   manifest.get('version'), problem), uuid=manifest.get('uuid'))
