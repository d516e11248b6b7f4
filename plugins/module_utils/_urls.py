# Private to the smartos.images collection: not a public API.
# Image server URLs: what is sent, what is shown, the credentials in them and every form they may be echoed in.
from __future__ import annotations

import base64
import re
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

from ansible_collections.smartos.images.plugins.module_utils._errors import InvalidParameter


class ImageSource:
    """An image server URL, split into what is sent, what is shown and its channel."""

    def __init__(self, url, type='imgapi', insecure=False):
        if not isinstance(url, str) or not url.strip():
            raise InvalidParameter('image source URL must be a non-empty string')
        text = url.strip()
        shown = redact(text)
        if any(c <= ' ' or c >= '\x7f' for c in text):
            raise InvalidParameter('image source "%s" contains spaces, control or non-ASCII characters: '
                                   'percent-encode them' % shown)
        try:
            parts = urlsplit(text)
            hostname = parts.hostname
        except ValueError:
            raise InvalidParameter('image source "%s" is not a valid URL (check the brackets of an IPv6 address)'
                                   % shown)
        if parts.scheme not in ('http', 'https') or not hostname:
            raise InvalidParameter('image source "%s" is not an http:// or https:// URL' % shown)
        try:
            port = parts.port
        except ValueError:
            raise InvalidParameter('image source "%s" has an invalid port (a "/", "?", "#" or "@" in a user name '
                                   'or password must be percent-encoded)' % shown)
        if '@' in text.split('://', 1)[1][len(parts.netloc):]:
            # a raw '/', '?' or '#' in a password ends the host part early: the rest would go to the wrong host
            raise InvalidParameter('image source "%s" has an "@" after its host: percent-encode "/", "?", "#" '
                                   'and "@" in its user name and password (%%2F, %%3F, %%23, %%40)' % shown)
        query = parse_qsl(parts.query)
        self.type = type
        self.insecure = insecure
        self.channel = dict(query).get('channel')
        # user:password in a URL are percent-encoded; the server wants them decoded
        self.username = unquote(parts.username) if parts.username is not None else None
        self.password = unquote(parts.password) if parts.password is not None else None
        host = hostname if ':' not in hostname else '[%s]' % hostname
        netloc = host + (':%d' % port if port else '')
        self.base = urlunsplit((parts.scheme, netloc, parts.path.rstrip('/'), '', ''))
        self.url = shown

    def __repr__(self):
        return self.url


_SCHEME_RE = re.compile(r'[A-Za-z][A-Za-z0-9+.-]*\Z')


def _userinfo_span(url):
    """(start, end) of what may be user:password in a URL: from after the first '://' (or the start) to the last '@'."""
    at = url.rfind('@')
    if at < 0:
        return None
    scheme_end = url.find('://')
    # a password may hold raw '/', '?', '#', '@' or ':', so no URL parser is trusted here: hiding more is fine
    scheme = _SCHEME_RE.match(url[:scheme_end]) if 0 <= scheme_end and scheme_end + 3 <= at else None
    return (scheme_end + 3 if scheme else 0), at


def redact(url):
    """A URL with anything that may be user:password replaced by ***, safe to show whether it parses or not."""
    if not isinstance(url, str):
        return '(a %s, not a URL)' % type(url).__name__
    span = _userinfo_span(url)
    return url if span is None else url[:span[0]] + '***' + url[span[1]:]


def url_secrets(url):
    """Every part of url that may be a secret, as written and decoded, found even where a raw '#', '/', '?' or '@'
    defeats URL parsing: the password (or, without one, the user: often a token) by position and by urlsplit."""
    found = set()
    if not isinstance(url, str):
        return found
    span = _userinfo_span(url)
    rest = url.partition('://')[2] or url
    for userinfo in ([url[span[0]:span[1]]] if span else []) + ([rest.rpartition('@')[0]] if '@' in rest else []):
        user, dummy, password = userinfo.partition(':')
        found.add(password or user)   # a token written as "token:" (an empty password) is a secret too
    try:
        parts = urlsplit(url)
        found.update((parts.password, None if parts.password else parts.username))
    except ValueError:
        pass
    found.update([unquote(s) for s in found if s])
    return {s for s in found if s}


def secret_forms(url):
    """url_secrets and the forms a server may echo back: the whole user:password and its Basic header value;
    longest first, so that a longer form is hidden whole."""
    forms = set(url_secrets(url))
    span = _userinfo_span(url) if isinstance(url, str) else None
    if span:
        userinfo = url[span[0]:span[1]]
        user, dummy, password = userinfo.partition(':')
        basic = base64.b64encode(('%s:%s' % (unquote(user), unquote(password))).encode('utf-8')).decode('ascii')
        forms.update((userinfo, unquote(userinfo), basic))
    return sorted((f for f in forms if len(f) > 2 or f in url_secrets(url)), key=len, reverse=True)


def scrub_secrets(text, forms):
    """text with every one of forms (longest first) replaced by ***."""
    text = str(text)
    for form in forms:
        text = text.replace(form, '***')
    return text


def has_credentials(url):
    """Whether url carries a user or password (or may: an '@' anywhere after the scheme)."""
    return isinstance(url, str) and '@' in (url.partition('://')[2] or url)


def safe_url(url):
    """redact(), checked: when parsing fails or leaves a secret in place, everything up to the last '@' goes."""
    if not isinstance(url, str):
        return '<not a string>'
    shown = redact(url)
    if has_credentials(url) and any(s in shown for s in url_secrets(url)):
        scheme, sep, rest = url.partition('://')
        shown = scheme + sep + '***@' + rest.rpartition('@')[2] if sep else '***@' + url.rpartition('@')[2]
    return shown


def without_credentials(url):
    """url with any user:password left out (everything up to the last '@' after the scheme)."""
    if not has_credentials(url):
        return url
    scheme, sep, rest = url.partition('://')
    return scheme + sep + rest.rpartition('@')[2] if sep else url.rpartition('@')[2]


def url_origin(url):
    """(scheme, host, port) of a URL, the unit credentials belong to; None when it does not parse."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or '').lower(), port or {'http': 80, 'https': 443}.get(scheme)


def without_userinfo(url):
    """An http(s) URL a server gave us (redirect, DSAPI file URL), without user:password; None if unusable."""
    if not isinstance(url, str) or any(c <= ' ' or c >= '\x7f' for c in url):
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # pylint: disable=pointless-statement  # raises ValueError for a bad port
    except ValueError:
        return None
    if parts.scheme not in ('http', 'https') or not host:
        return None
    return urlunsplit((parts.scheme, parts.netloc.rpartition('@')[2], parts.path, parts.query, parts.fragment))


def credential_forms(source, auth):
    """Every form in which a server may echo a source's credentials back: the password (or a user-only token) raw,
    decoded, percent-encoded, and the Basic header with its base64 value. Longest first, so that a longer form is
    hidden whole."""
    secret = source.password or source.username   # without a password the user is the secret (url_secrets' rule)
    if not secret:
        return []
    forms = {secret, quote(secret, safe=''), quote(secret)}
    if auth:
        auth = auth.decode('ascii') if isinstance(auth, bytes) else auth
        forms.update((auth, auth.split(' ', 1)[-1]))
    return sorted((f for f in forms if f), key=len, reverse=True)
