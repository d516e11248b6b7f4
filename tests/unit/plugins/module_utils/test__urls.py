# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_urls.py: ImageSource, redact and the secrets of a URL."""

from __future__ import annotations

import base64
from urllib.parse import quote, unquote

import pytest

from ansible_collections.smartos.images.plugins.module_utils._errors import InvalidParameter
from ansible_collections.smartos.images.plugins.module_utils._imgapi import ImageServerClient
from ansible_collections.smartos.images.plugins.module_utils._urls import ImageSource, redact, safe_url, url_secrets

SECRET_URL = 'https://alice:s3cret@img.example.com/?channel=dev'


# ---- ImageSource and redact ----

@pytest.mark.parametrize('url, base, shown, channel', [
    ('http://img.example.com', 'http://img.example.com', 'http://img.example.com', None),
    ('https://img.example.com/', 'https://img.example.com', 'https://img.example.com/', None),
    ('  http://127.0.0.1:8080/  ', 'http://127.0.0.1:8080', 'http://127.0.0.1:8080/', None),
    ('http://img.example.com/api/v2///', 'http://img.example.com/api/v2', 'http://img.example.com/api/v2///', None),
    ('https://updates.tritondatacenter.com?channel=experimental', 'https://updates.tritondatacenter.com',
     'https://updates.tritondatacenter.com?channel=experimental', 'experimental'),
    ('https://img.example.com/?channel=dev&x=1', 'https://img.example.com', 'https://img.example.com/?channel=dev&x=1', 'dev'),
    ('http://[::1]:8080/', 'http://[::1]:8080', 'http://[::1]:8080/', None),
    (SECRET_URL, 'https://img.example.com', 'https://***@img.example.com/?channel=dev', 'dev'),
    ('http://alice@img.example.com:81', 'http://img.example.com:81', 'http://***@img.example.com:81', None),
])
def test_source_parsing(url, base, shown, channel):
    source = ImageSource(url)
    assert source.base == base
    assert source.url == shown
    assert repr(source) == shown
    assert source.channel == channel
    assert source.type == 'imgapi'


def test_source_credentials_move_out_of_base():
    source = ImageSource(SECRET_URL)
    assert (source.username, source.password) == ('alice', 's3cret')
    assert 'alice' not in source.base and 's3cret' not in source.base
    assert 'alice' not in source.url and 's3cret' not in source.url


@pytest.mark.parametrize('url', [
    'ftp://img.example.com/', 'file:///var/tmp/images', 'img.example.com', '//img.example.com/', 'http://', 'https:///path',
    '', '   ', None, 42,
])
def test_source_rejects(url):
    with pytest.raises(InvalidParameter):
        ImageSource(url)


def test_source_rejection_does_not_show_credentials():
    with pytest.raises(InvalidParameter) as exc:
        ImageSource('ftp://alice:s3cret@img.example.com/')
    assert exc.value.msg == 'image source "ftp://***@img.example.com/" is not an http:// or https:// URL'


@pytest.mark.parametrize('url', ['http://img.example.com:80a/', 'http://img.example.com:99999/'])
def test_source_bad_port_is_invalid_parameter(url):
    with pytest.raises(InvalidParameter):
        ImageSource(url)


def test_source_percent_encoded_credentials_are_decoded():
    source = ImageSource('https://alice%40corp:p%40ss%3Aw0rd@img.example.com/')
    assert (source.username, source.password) == ('alice@corp', 'p@ss:w0rd')


@pytest.mark.parametrize('url, shown', [
    ('https://img.example.com/x?channel=a', 'https://img.example.com/x?channel=a'),
    ('https://alice:s3cret@img.example.com/x?channel=a', 'https://***@img.example.com/x?channel=a'),
    ('https://alice@img.example.com', 'https://***@img.example.com'),
    ('https://alice:p@ss@img.example.com:8443/', 'https://***@img.example.com:8443/'),
    ('not a url', 'not a url'),
])
def test_redact(url, shown):
    assert redact(url) == shown


@pytest.mark.parametrize('url, shown', [
    ('https://alice:p#ss@img.example.com/', 'https://***@img.example.com/'),
    ('https://alice:p/ss@img.example.com/', 'https://***@img.example.com/'),
    ('alice:pw@img.example.com', '***@img.example.com'),
    ('https://img.example.com/a?b=c@d', 'https://***@d'),   # hides more rather than less
    (None, '(a NoneType, not a URL)'),
])
def test_redact_does_not_need_a_url_that_parses(url, shown):
    assert redact(url) == shown


@pytest.mark.parametrize('url, shown, secrets', [
    (':80pw%40@https://', '***@https://', {'80pw%40', '80pw@'}),   # found by fuzzing: '://' after the last '@'
    # not a scheme before '://': hide from the start; 'z', a user without password after '://', may be a token
    ('x:pw@y://z@h', '***@h', {'pw@y://z', 'z'}),
    ('https://a:b@c:d@h/', 'https://***@h/', {'b@c:d'}),
    ('https://a:@h/', 'https://***@h/', {'a'}),   # an empty password: the user is the secret (a token)
])
def test_redact_hides_what_url_secrets_finds(url, shown, secrets):
    """One rule (the stricter of the two the collection had): what redact hides covers every secret found."""
    assert redact(url) == shown
    assert url_secrets(url) == secrets


# ---- a password is never shown, whatever its characters ----

NASTY = ['p#ss', 'p/ss', 'p?ss', 'p@ss', 'p:ss', '1234/x', '80#', '[::1', 'a b', 'pä55', '%zz', 'p@ss/w#rd?x:y']


@pytest.mark.parametrize('password', NASTY)
@pytest.mark.parametrize('template', ['https://alice:%s@img.example.com/', 'http://alice:%s@[::1]:8080/x?channel=a',
                                      'https://alice:%s@img.example.com/datasets', 'alice:%s@img.example.com',
                                      'http://alice:%s@[::1'])
def test_a_password_never_shows(password, template):
    url = template % password
    if password in template.replace('%s', ''):
        return  # the host itself looks like that password: nothing to tell apart
    for kind in ('imgapi', 'dsapi'):
        try:
            source = ImageSource(url, type=kind)
            shown = [source.url, repr(source), source.base]
        except InvalidParameter as e:
            shown = [e.msg, str(e.evidence)]
        assert not any(password in text for text in shown), shown
    assert password not in redact(url)
    assert password in url_secrets(url)


@pytest.mark.parametrize('url', ['http://alice:1234/x@img.example.com/', 'http://alice:80?x@img.example.com/',
                                 'http://alice:80#x@img.example.com/', 'http://img.example.com/path@x'])
def test_an_at_sign_after_the_host_is_refused(url):
    # today's parse would send the request (and the rest of the password) to a host named "alice"
    with pytest.raises(InvalidParameter) as exc:
        ImageSource(url)
    assert 'percent-encode' in exc.value.msg and 'x@' not in exc.value.msg


@pytest.mark.parametrize('url', ['http://[::1', 'https://[zz]/', 'http://alice:pw@[::1', 'http://[::1]:99999/'])
def test_a_malformed_ipv6_url_is_an_invalid_parameter(url):
    with pytest.raises(InvalidParameter, match='not a valid URL|invalid port') as exc:
        ImageSource(url)
    assert 'pw' not in exc.value.msg


@pytest.mark.parametrize('url', ['http://img.example.com/a b', 'http://img.example.com/\r\nX: y',
                                 'http://img.example.com/\u00e4', 'http://\u00e9xample.com/'])
def test_urls_http_client_would_choke_on_are_refused(url):
    with pytest.raises(InvalidParameter, match='percent-encode'):
        ImageSource(url)


# ---- outside data checked where it enters, no secret shown ----

RAW_PASSWORDS = ['p#ss', 'p/ss', 'p?ss', 'p@ss', '12#34', 'a/b?c#d@e', 's3cr3t:x']


@pytest.mark.parametrize('password', RAW_PASSWORDS)
def test_url_secrets_and_safe_url_survive_raw_characters(password):
    url = 'https://admin:%s@images.example:8443/x' % password
    assert password in url_secrets(url)
    assert password not in safe_url(url) and '***@images.example:8443/x' in safe_url(url)


def test_url_secrets_without_credentials():
    assert url_secrets('https://images.example/x') == set() and url_secrets(None) == set()
    assert url_secrets('https://tok3n@images.example') == {'tok3n'}
    assert url_secrets('https://u:p%40ss@h') >= {'p%40ss', 'p@ss'}  # as written and as sent


# ---- one credential rule: a user-only token is a secret everywhere ----

@pytest.mark.parametrize('url', ['http://T0kenValue@img.example', 'http://T0kenValue:@img.example',
                                 'http://T0ken%2FValue:@img.example'])
def test_a_user_only_token_is_a_secret_of_the_url_and_of_the_client(url):
    """Defect: url_secrets missed a token written "token:" (an empty password), and the client's own scrub hid a
    password only, so an error echoing a user-only token or its Basic header showed it."""
    token = unquote(url.split('//')[1].split('@')[0].rstrip(':'))
    assert token in url_secrets(url)
    client = ImageServerClient(ImageSource(url), retries=0)
    basic = base64.b64encode(('%s:' % token).encode()).decode()
    shown = client.scrub('you sent Basic %s (%s:) as %s' % (basic, token, quote(token, safe='')))
    assert token not in shown and basic not in shown and quote(token, safe='') not in shown, shown


def test_a_password_is_still_the_only_secret_beside_a_user_name():
    client = ImageServerClient(ImageSource('http://alice:pw@img.example'), retries=0)
    assert url_secrets('http://alice:pw@img.example') == {'pw'}
    assert client.scrub('alice pw') == 'alice ***'
