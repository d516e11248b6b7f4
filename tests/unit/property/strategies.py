# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hypothesis strategies for outside data: any JSON, manifests with the right keys and wrong types, URLs with
credentials, and the invariants every reader must keep."""

from __future__ import annotations

import hashlib
import json

from hypothesis import strategies as st

from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError

UUIDS = ['2f1dc911-6401-4fa4-8e9d-67ea2e39c271', '930896af-bf8c-48d4-885c-6573a94b1853',
         '00000000-0000-4000-8000-000000000000']
U = UUIDS[0]

# JSON scalars as json.loads gives them (integers beyond a double and NaN included: Python's json reads them)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2 ** 70, max_value=2 ** 70), st.integers(),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(['', '0', '2', '-1', 'true', 'false', 'null', 'NaN', '1e999', ' 2 ', '\x00', '~',
                     '..', 'a.b', 'http://[::1', U, U.upper(), 'gzip', 'zvol', 'smartos', '7.0',
                     '20141030T081701Z', '2024-01-01T00:00:00Z', '2024-01-01T00:00Z']))
keys = st.one_of(st.text(max_size=12), st.sampled_from(
    ['v', 'uuid', 'name', 'version', 'type', 'os', 'files', 'requirements', 'published_at', 'origin', 'owner',
     'creator_uuid', 'min_platform', 'max_platform', 'sha1', 'size', 'compression', 'path', 'url', 'manifest',
     'source', 'sources', 'zpool', 'image_size', 'restricted_to_uuid', 'disabled', 'public', 'state']))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=4)), max_leaves=10)

SHA1 = '3bc7f0d7e4bd0a2c6a7a4a7b1e0a4dd8f6b1c8a2'
GOOD_FILE = {'sha1': SHA1, 'size': 1234, 'compression': 'gzip'}
GOOD_V2 = {'v': 2, 'uuid': U, 'owner': UUIDS[1], 'name': 'base-64-lts', 'version': '24.4.1', 'type': 'zone-dataset',
           'os': 'smartos', 'published_at': '2024-11-01T12:00:00Z', 'files': [GOOD_FILE],
           'requirements': {'min_platform': {'7.0': '20141030T081701Z'}}}
GOOD_V1 = {'uuid': U, 'creator_uuid': UUIDS[1], 'name': 'base64', 'version': '1.8.1', 'type': 'zone-dataset',
           'os': 'smartos', 'created_at': '2012-11-27T21:08Z', 'urn': 'sdc:sdc:base64:1.8.1',
           'files': [{'path': 'base64-1.8.1.zfs.bz2', 'sha1': SHA1, 'size': 1234}]}


@st.composite
def mutated(draw, base):
    """base with some fields (top level, files[0] or requirements) given other values of any JSON type."""
    m = json.loads(json.dumps(base))
    for dummy in range(draw(st.integers(min_value=0, max_value=4))):
        where = draw(st.sampled_from(['top', 'top', 'file', 'req', 'drop']))
        value = draw(json_values)
        if where == 'drop' and m:
            m.pop(draw(st.sampled_from(sorted(m))), None)
        elif where == 'file' and isinstance(m.get('files'), list) and m['files'] and isinstance(m['files'][0], dict):
            m['files'][0][draw(st.sampled_from(['sha1', 'size', 'compression', 'path', 'url']))] = value
        elif where == 'req' and isinstance(m.get('requirements'), dict):
            m['requirements'][draw(st.sampled_from(['min_platform', 'max_platform', 'brand']))] = value
        else:
            m[draw(keys)] = value
    return m


manifests = st.one_of(json_values, mutated(GOOD_V2), mutated(GOOD_V1),
                      st.dictionaries(keys, json_values, max_size=8))

# Credentials with the characters that defeat URL parsing. The password is made of fixed markers joined by
# such characters: no marker may show anywhere, so a password cut in two by a raw '#' still counts as leaked.
# Made at run time, so that hypothesis (which also draws text from constants in the code) cannot produce them
# by chance in inputs that hold no password.
MARKERS = tuple('Pw' + hashlib.sha1(b'smartos.images password marker %d' % i).hexdigest()[:8] for i in range(3))
SPECIALS = '#/?@:%[] &=;+'
specials = st.text(alphabet=SPECIALS, min_size=1, max_size=3)


@st.composite
def passwords(draw):
    count = draw(st.integers(min_value=1, max_value=3))
    parts = [draw(st.text(alphabet=SPECIALS, max_size=2))]
    for marker in MARKERS[:count]:
        parts += [marker, draw(specials)]
    return ''.join(parts[:-1] if draw(st.booleans()) else parts)


@st.composite
def credential_urls(draw):
    """An image server URL with user:password in it, raw or percent-encoded, well or badly formed."""
    scheme = draw(st.sampled_from(['http://', 'https://', 'HTTP://', 'ftp://', '', 'http:/', 'https:///']))
    user = draw(st.text(alphabet='abc#/?@:% ', max_size=6))
    password = draw(passwords())
    host = draw(st.sampled_from(['img.example.com', '127.0.0.1', '[::1]', '[::1', '::1]', 'h', '', 'img.example.com:',
                                 'img.example.com:99999', 'img.example.com:8x', 'x@y.example.com']))
    tail = draw(st.sampled_from(['', '/', '/images', '/datasets', '/?channel=dev', '#frag', '/a?b=c#d', '/%zz']))
    if draw(st.booleans()):
        password = ''.join(c if c.isalnum() else '%%%02X' % ord(c) for c in password)
    PASSWORDS.add(password)
    return scheme + user + ':' + password + '@' + host + tail


PASSWORDS = set()   # every password credential_urls made: ':<password>@' in an input is a credential


def _text(value):
    if isinstance(value, bytes):
        return value.decode('utf-8', 'replace')
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=repr)


def assert_no_secret(given, *texts):
    """No marker of a password given as a credential (':<password>@') shows in any of these texts.

    A marker that the input also holds outside a credential (hypothesis reuses drawn text) is not a secret there.
    """
    rest = _text(given)
    for password in PASSWORDS:
        rest = rest.replace(':%s@' % password, ':@')
    secret = [m for m in MARKERS if m not in rest]
    for text in texts:
        for marker in secret:
            assert marker not in _text(text), 'a password leaked: %r' % (text,)


def error_texts(error):
    """Everything of an error a user could see: its text, msg and evidence."""
    return [str(error), repr(error), getattr(error, 'msg', ''), repr(getattr(error, 'evidence', ''))]


def project_error(error):
    """True for the errors module_utils may raise: the ImageError family."""
    return isinstance(error, ImageError)
