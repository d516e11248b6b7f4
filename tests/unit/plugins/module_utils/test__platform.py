# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_platform.py: imgadm's checkMinMaxPlatformSync as a table, and reading sysinfo."""

from __future__ import annotations

import json

import pytest

from ansible_collections.smartos.images.plugins.module_utils._errors import CommandError, ImageError
from ansible_collections.smartos.images.plugins.module_utils._platform import check_platform, platform_problem, read_sysinfo
from ansible_collections.smartos.images.tests.unit.fakehost import FakeHost, ScriptedRunner

U = '2f1dc911-6401-4fa4-8e9d-67ea2e39c271'
STAMP = '20141030T081701Z'
HOST = {'SDC Version': '7.0', 'Live Image': STAMP, 'UUID': '44454c4c-5000-104d-8037-b7c04f433432'}


def manifest(**requirements):
    return {'v': 2, 'uuid': U, 'name': 'base-64-lts', 'version': '24.4.1', 'requirements': requirements}


def problem(ver, stamp, key, wanted):
    """imgadm's MinPlatform / MaxPlatform message, with JSON.stringify's compact form of the requirement."""
    return ('current platform version, %s/%s, does not satisfy requirements.%s=%s'
            % (ver, stamp, key, json.dumps(wanted, separators=(',', ':'))))


@pytest.mark.parametrize('sysinfo, requirements, expected', [
    # nothing required
    (HOST, None, None),
    (HOST, {}, None),
    (HOST, {'brand': 'joyent'}, None),
    (HOST, {'min_platform': {}}, None),
    (HOST, {'max_platform': {}}, None),
    # min_platform with the host's version as a key: the timestamps compare as strings
    (HOST, {'min_platform': {'7.0': STAMP}}, None),
    (HOST, {'min_platform': {'7.0': '20130101T000000Z'}}, None),
    (HOST, {'min_platform': {'7.0': '20141030T081702Z'}}, problem('7.0', STAMP, 'min_platform', {'7.0': '20141030T081702Z'})),
    (HOST, {'min_platform': {'6.5': '20990101T000000Z', '7.0': '20150101T000000Z'}},
     problem('7.0', STAMP, 'min_platform', {'6.5': '20990101T000000Z', '7.0': '20150101T000000Z'})),
    # min_platform without that key: the version against the lowest key, as strings
    (HOST, {'min_platform': {'7.1': '20990101T000000Z'}}, problem('7.0', STAMP, 'min_platform', {'7.1': '20990101T000000Z'})),
    (HOST, {'min_platform': {'6.5': '20990101T000000Z'}}, None),      # its timestamp does not matter
    (HOST, {'min_platform': {'7.1': '20990101T000000Z', '6.5': '20990101T000000Z'}}, None),   # the lowest is 6.5
    (dict(HOST, **{'SDC Version': '10.0'}), {'min_platform': {'9.0': '20120101T000000Z'}},   # '10.0' < '9.0' as text
     problem('10.0', STAMP, 'min_platform', {'9.0': '20120101T000000Z'})),
    # max_platform with the host's version as a key
    (HOST, {'max_platform': {'7.0': STAMP}}, None),
    (HOST, {'max_platform': {'7.0': '20990101T000000Z'}}, None),
    (HOST, {'max_platform': {'7.0': '20141030T081700Z'}}, problem('7.0', STAMP, 'max_platform', {'7.0': '20141030T081700Z'})),
    # max_platform without that key: the version against the highest key
    (HOST, {'max_platform': {'6.5': '20990101T000000Z'}}, problem('7.0', STAMP, 'max_platform', {'6.5': '20990101T000000Z'})),
    (HOST, {'max_platform': {'7.1': '20120101T000000Z'}}, None),
    (HOST, {'max_platform': {'6.5': '20120101T000000Z', '7.1': '20120101T000000Z'}}, None),   # the highest is 7.1
    # no SDC Version: imgadm assumes 6.5
    ({'Live Image': STAMP}, {'min_platform': {'7.0': '20120101T000000Z'}},
     problem('6.5', STAMP, 'min_platform', {'7.0': '20120101T000000Z'})),
    ({'SDC Version': '', 'Live Image': STAMP}, {'min_platform': {'7.0': '20120101T000000Z'}},
     problem('6.5', STAMP, 'min_platform', {'7.0': '20120101T000000Z'})),
    ({'Live Image': STAMP}, {'min_platform': {'6.5': STAMP}}, None),
    ({'Live Image': STAMP}, {'max_platform': {'6.5': '20120101T000000Z'}},
     problem('6.5', STAMP, 'max_platform', {'6.5': '20120101T000000Z'})),
    # both fail: min_platform is reported, as imgadm checks it first
    (HOST, {'min_platform': {'7.1': '20990101T000000Z'}, 'max_platform': {'6.5': '20120101T000000Z'}},
     problem('7.0', STAMP, 'min_platform', {'7.1': '20990101T000000Z'})),
    (HOST, {'min_platform': {'7.0': STAMP}, 'max_platform': {'6.5': '20120101T000000Z'}},
     problem('7.0', STAMP, 'max_platform', {'6.5': '20120101T000000Z'})),
])
def test_platform_problem(sysinfo, requirements, expected):
    m = manifest(**requirements) if requirements is not None else {'uuid': U}
    assert platform_problem(m, sysinfo) == expected


def test_platform_problem_message_is_imgadms_exactly():
    m = manifest(min_platform={'7.0': '20150101T000000Z', '6.5': '20120101T000000Z'})
    assert platform_problem(m, HOST) == ('current platform version, 7.0/20141030T081701Z, does not satisfy '
                                         'requirements.min_platform={"7.0":"20150101T000000Z","6.5":"20120101T000000Z"}')


def test_check_platform_names_the_image():
    m = manifest(max_platform={'6.5': '20120101T000000Z'})
    with pytest.raises(ImageError) as exc:
        check_platform(m, HOST)
    assert exc.value.msg == ('image %s (base-64-lts@24.4.1): current platform version, 7.0/%s, does not satisfy '
                             'requirements.max_platform={"6.5":"20120101T000000Z"}' % (U, STAMP))
    assert exc.value.evidence == {'uuid': U}


@pytest.mark.parametrize('m, sysinfo', [
    (manifest(min_platform={'7.0': STAMP}), HOST),
    (manifest(min_platform={'7.1': '20990101T000000Z'}), None),   # no sysinfo command (not SmartOS): nothing to check
    ({'uuid': U}, HOST),
])
def test_check_platform_passes(m, sysinfo):
    assert check_platform(m, sysinfo) is None


def test_read_sysinfo_without_the_command_is_none():
    host = FakeHost(['zones'])      # which() of a missing required command would raise
    assert read_sysinfo(host) is None
    assert host.calls == []


def test_read_sysinfo():
    host = FakeHost(['zones'], sysinfo=HOST)
    assert read_sysinfo(host) == HOST
    assert host.calls == [['sysinfo']]


def test_read_sysinfo_failure():
    runner = ScriptedRunner((1, '', 'sysinfo: permission denied\n'))
    with pytest.raises(CommandError) as exc:
        read_sysinfo(runner)
    assert exc.value.msg == 'sysinfo failed: sysinfo: permission denied'
    assert exc.value.evidence == {'cmd': 'sysinfo', 'rc': 1, 'stderr': 'sysinfo: permission denied\n'}


@pytest.mark.parametrize('out', ['', 'SDC Version: 7.0\n', '{"SDC Version": "7.0",', '{"SDC Version": "7.0"}\n{}'])
def test_read_sysinfo_not_json(out):
    with pytest.raises(CommandError) as exc:
        read_sysinfo(ScriptedRunner((0, out, '')))
    assert exc.value.msg.startswith('sysinfo printed something that is not JSON: ')
    assert exc.value.evidence == {'cmd': 'sysinfo'}


@pytest.mark.parametrize('out', ['null\n', '[]\n', '"7.0"\n'])
def test_read_sysinfo_json_that_is_not_an_object(out):
    with pytest.raises(CommandError):
        read_sysinfo(ScriptedRunner((0, out, '')))


# ---- requirements of the wrong shape: a problem naming the field, never a Python error ----

@pytest.mark.parametrize('m, expected', [
    (dict(manifest(), requirements='lx'), 'requirements is a JSON string, not an object'),
    (dict(manifest(), requirements=['min_platform']), 'requirements is a JSON array, not an object'),
    (dict(manifest(), requirements=7), 'requirements is a JSON number, not an object'),
    (manifest(min_platform='20141030T081701Z'),
     'requirements.min_platform is a JSON string, not an object {<SDC version>: "<timestamp>"}'),
    (manifest(max_platform=['7.0']),
     'requirements.max_platform is a JSON array, not an object {<SDC version>: "<timestamp>"}'),
    (manifest(min_platform=7), 'requirements.min_platform is a JSON number, not an object {<SDC version>: "<timestamp>"}'),
    (manifest(min_platform=True),
     'requirements.min_platform is a JSON boolean, not an object {<SDC version>: "<timestamp>"}'),
    (manifest(min_platform={'7.0': 20141030}), 'requirements.min_platform["7.0"] is a JSON number, not a timestamp string'),
    (manifest(max_platform={'6.5': None, '7.0': STAMP}),
     'requirements.max_platform["6.5"] is a JSON null, not a timestamp string'),
    (manifest(min_platform={'7.0': {'ts': STAMP}}),
     'requirements.min_platform["7.0"] is a JSON object, not a timestamp string'),
])
def test_malformed_requirements_are_a_clear_error(m, expected):
    assert platform_problem(m, HOST) == expected
    with pytest.raises(ImageError) as exc:
        check_platform(m, HOST)
    assert exc.value.msg == 'image %s (base-64-lts@24.4.1): %s' % (U, expected)


@pytest.mark.parametrize('sysinfo', [{'SDC Version': 7.0, 'Live Image': STAMP}, {'SDC Version': '7.0', 'Live Image': ['x']}])
def test_sysinfo_fields_of_the_wrong_type_are_a_clear_error(sysinfo):
    with pytest.raises(ImageError) as exc:
        check_platform(manifest(min_platform={'7.0': STAMP}), sysinfo)
    assert 'sysinfo\'s "SDC Version" and "Live Image" must be strings' in exc.value.msg


def test_requirements_of_the_wrong_shape_do_not_matter_off_smartos():
    check_platform(dict(manifest(), requirements='lx'), None)   # no sysinfo: nothing is checked, as imgadm
