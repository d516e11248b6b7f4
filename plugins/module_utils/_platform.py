# Private to the smartos.images collection: not a public API.
# Platform requirements of an image (requirements.min_platform / max_platform), checked as imgadm does.
from __future__ import annotations

import json

from ansible_collections.smartos.images.plugins.module_utils._errors import CommandError, ImageError
from ansible_collections.smartos.images.plugins.module_utils._manifest import json_type


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
    """imgadm checkMinMaxPlatformSync: the error imgadm gives, or None when the platform fits.

    The manifest and sysinfo are outside data: a requirement imgadm could not compare (it would throw or
    skip it) is a problem naming the field, never a Python error.
    """
    if not isinstance(manifest, dict):
        return 'the manifest is not a JSON object'
    requirements = manifest.get('requirements')
    if requirements is None:
        requirements = {}
    if not isinstance(requirements, dict):
        return 'requirements is a JSON %s, not an object' % json_type(requirements)
    version = sysinfo.get('SDC Version') or '6.5'
    stamp = sysinfo.get('Live Image') or ''
    if not isinstance(version, str) or not isinstance(stamp, str):
        return 'sysinfo\'s "SDC Version" and "Live Image" must be strings, found %s and %s' \
            % (json_type(version), json_type(stamp))
    for key, too_low in (('min_platform', True), ('max_platform', False)):
        wanted = requirements.get(key)
        if wanted is None or wanted == {}:
            continue  # imgadm skips an absent one; an empty one has no version to compare with
        if not isinstance(wanted, dict):
            return 'requirements.%s is a JSON %s, not an object {<SDC version>: "<timestamp>"}' \
                % (key, json_type(wanted))
        bad_values = sorted(k for k, v in wanted.items() if not isinstance(v, str))
        if bad_values:
            return 'requirements.%s["%s"] is a JSON %s, not a timestamp string' \
                % (key, bad_values[0], json_type(wanted[bad_values[0]]))
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
        if not isinstance(manifest, dict):
            raise ImageError('image manifest: %s' % problem)
        raise ImageError('image %s (%s@%s): %s' % (manifest.get('uuid'), manifest.get('name'),
                                                   manifest.get('version'), problem), uuid=manifest.get('uuid'))
