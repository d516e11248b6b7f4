# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ask an image server, from the controller, for the image matching a name, version, os and type."""

from __future__ import annotations

DOCUMENTATION = r'''
name: image
short_description: Resolve an image on an IMGAPI server to its UUID or manifest, on the controller
version_added: 0.1.0
description:
  - Asks an IMGAPI image server (C(GET /images) with the C(name), C(version), C(os) and C(type)
    filters, page by page as imgadm does) for the images matching each term, and returns the newest
    one's UUID or manifest (by C(published_at), a tie going to the later UUID, as in the modules).
  - Listed entries are checked as the modules check them; one that is not a usable manifest is skipped with a
    warning.
  - It runs once, on the controller, so a play resolves "the newest base-64-lts" once and every host
    imports the same UUID, even if a newer image is published while the play runs.
  - The chosen manifest is validated against the collection's JSON Schema of the v2 manifest
    (C(schemas/imgmanifest-v2.json), node-imgmanifest's rules); an answer that is not a manifest is
    an error, not a result.
author:
  - smartos.images contributors (@smartos-images)
requirements:
  - requests (on the controller)
  - jsonschema (on the controller)
options:
  _terms:
    description:
      - Image names, one result each. Without terms, O(name) is used.
    type: list
    elements: str
  source:
    description:
      - The image server's URL (IMGAPI); C(http://) or C(https://) only. The same option as the modules' O(source)
        (one server here). O(server) is its old name, still accepted.
      - A C(?channel=NAME) on the URL selects that channel.
      - Credentials for HTTP Basic authentication go before the host, C(https://user:password@host). Everything
        between C(://) and the last C(@) is the user and password (split at the first C(:), then percent-decoded),
        so the password may hold C(@), C(#), C(/), C(?) and C(:) as they are; an C(@) after the host is not
        supported. They are sent only to the server's own scheme, host and port, never after a redirect elsewhere
        nor after a downgrade from C(https) to C(http), and never shown (error messages print the URL as
        C(user:***@host) or C(***@host)).
    type: str
    aliases: [server]
    default: https://images.smartos.org
  name:
    description: The image name, when no term is given. C(~text) matches names containing C(text).
    type: str
  version:
    description: The exact version. C(~text) matches versions containing C(text).
    type: str
  os:
    description: The image's C(os) (C(smartos), C(linux), C(bsd), C(illumos), C(windows), C(other)).
    type: str
  type:
    description: The image's C(type) (C(zone-dataset), C(lx-dataset), C(zvol), ...); C(!type) excludes one.
    type: str
  newest:
    description:
      - V(true) returns the most recently published match. V(false) requires exactly one match and
        fails when several images match, listing them.
    type: bool
    default: true
  result:
    description: What to return for each term, the image's V(uuid) or its whole V(manifest).
    type: str
    choices: [uuid, manifest]
    default: uuid
  validate_certs:
    description: Whether the server's TLS certificate is verified.
    type: bool
    default: true
  ca_path:
    description: A PEM file of CA certificates that signed the server's certificate.
    type: path
  timeout:
    description:
      - Seconds to wait for the server to connect, and for each read of its answer (the time without a byte).
    type: int
    default: 30
  listing_timeout:
    description:
      - Seconds the whole listing for one term may take, every page, redirect and byte included, however slowly
        the server trickles its answers; past it the lookup fails naming the server.
    type: int
    default: 300
notes:
  - Only active images are listed, as imgadm lists them.
  - The listing is filtered on the controller too (name, version, os, type, with their C(~) and C(!) forms, active
    state, and the channel of an image that names its channels), so a server that ignores the query string, such as
    a static mirror serving one C(images.json), still yields the right image. A server that ignores both C(limit) and
    C(marker) and lists exactly 1000 images is asked once more (C(limit=1)) to confirm it sent its whole list.
  - Listings are read page by page by the modules' rule and bounds. At most 50 pages (50,000 images) are read for
    one term, each answer at most 8 MiB, with at most 5 redirects per request. Images listed again (IMGAPI repeats
    the C(marker) image and those published at the same time) are listed once; a full page that cannot lead on (its
    last image has no UUID, or was listed before) is an error naming the server, never an endless or short list.
  - A redirect from C(https) to plain C(http) is refused, as M(smartos.images.smartos_image) refuses it.
seealso:
  - module: smartos.images.smartos_image
  - module: smartos.images.smartos_image_facts
'''

EXAMPLES = r'''
# A lookup runs on the controller, once per task: resolve the UUID in one task (run_once) and every
# host imports that same UUID, even if a newer image is published while the play runs.
- name: Resolve the newest base-64-lts once for the whole play
  ansible.builtin.set_fact:
    base_uuid: "{{ lookup('smartos.images.image', 'base-64-lts', source='https://images.smartos.org', os='smartos') }}"
  run_once: true

- name: Import it on every host
  smartos.images.smartos_image:
    uuid: "{{ base_uuid }}"

- name: The whole manifest of one exact version
  ansible.builtin.debug:
    msg: "{{ lookup('smartos.images.image', name='base-64-lts', version='24.4.1', result='manifest').files[0].size }}"

- name: Several names at once, each resolved to its newest UUID, from a mirror with its own CA
  ansible.builtin.set_fact:
    pinned: "{{ query('smartos.images.image', 'base-64-lts', 'minimal-64-lts', source='https://images.internal.example',
                       ca_path='/etc/ssl/mirror-ca.pem') }}"
  run_once: true
'''

RETURN = r'''
_raw:
  description:
    - For each term, the UUID of the matching image (O(result=uuid)) or its manifest (O(result=manifest)).
  type: list
  elements: raw
'''

import base64
import json
import os
import time
from urllib.parse import unquote, urlencode, urljoin, urlsplit

from ansible import constants as C
from ansible.errors import AnsibleError, AnsibleLookupError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.lookup import LookupBase
from ansible.utils.display import Display

from ansible_collections.smartos.images.plugins.module_utils._errors import SourceError
from ansible_collections.smartos.images.plugins.module_utils._filters import newest
from ansible_collections.smartos.images.plugins.module_utils._http_body import READ_PIECE
from ansible_collections.smartos.images.plugins.module_utils._imgapi import MAX_REDIRECTS, REDIRECT_STATUS
from ansible_collections.smartos.images.plugins.module_utils._urls import redact, scrub_secrets, secret_forms, url_origin
from ansible_collections.smartos.images.plugins.module_utils._paging import PAGE_MAX_BYTES, read_listing
from ansible_collections.smartos.images.plugins.module_utils._resolver import listed_as_asked, usable_listing

try:
    import jsonschema
    import requests
except ImportError:  # pragma: no cover - reported when the lookup runs: it needs both
    jsonschema = requests = None

SCHEMA_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'schemas', 'imgmanifest-v2.json')
FILTERS = ('name', 'version', 'os', 'type')
MAX_BODY = PAGE_MAX_BYTES  # the bounds DOCUMENTATION states, the modules' own: bytes per answer, redirects per request
display = Display()


def split_server(server):
    """(scheme, URL without credentials, (user, password) or None, what may be shown of the URL)."""
    # Credentials are cut out by position, not by URL parsing, so that no character in a password can defeat it.
    scheme, sep, rest = server.partition('://')
    userinfo, rest = rest.rsplit('@', 1) if sep and '@' in rest else (None, rest)
    if userinfo:
        user, colon, password = userinfo.partition(':')
        shown = '%s://%s@%s' % (scheme, '%s:***' % user if colon and user not in password else '***', rest)
        credentials = (unquote(user), unquote(password))
    else:
        shown, credentials = server, None
    return scheme.lower(), '%s://%s' % (scheme, rest) if sep else server, credentials, shown


class BasicAuth:
    """Basic credentials for one request, in UTF-8 (requests' own latin-1 cannot encode every password)."""

    def __init__(self, user, password):
        self.value = 'Basic ' + base64.b64encode(('%s:%s' % (user, password)).encode('utf-8')).decode('ascii')

    def __call__(self, request):
        request.headers['Authorization'] = self.value
        return request


class ImageServerLookup:
    """ListImages on one IMGAPI server, with imgadm's pagination, bounded in pages, images, bytes and time."""

    def __init__(self, server, validate_certs=True, ca_path=None, timeout=30, listing_timeout=300):
        scheme, plain, credentials, self.shown = split_server(server)
        self.secrets = secret_forms(server)
        self.display = self.shown.partition('?')[0].rstrip('/')
        if scheme not in ('http', 'https'):
            raise AnsibleLookupError('image server %s: the URL must start with http:// or https://' % self.display)
        base, sep, query = plain.partition('?')
        self.base = base.rstrip('/')
        self.origin = url_origin(self.base)
        if self.origin is None or not self.origin[1]:
            raise AnsibleLookupError('image server %s: the URL has no valid host and port' % self.display)
        self.auth = BasicAuth(*credentials) if credentials else None
        self.channel = dict(p.partition('=')[::2] for p in query.split('&') if p).get('channel') if sep else None
        self.verify = (ca_path or True) if validate_certs else False
        self.timeout, self.listing_timeout = timeout, listing_timeout
        self.deadline = time.monotonic() + listing_timeout
        self.session = requests.Session()
        self.session.headers.update({'Accept-Version': '~2', 'Accept': 'application/json',
                                     'User-Agent': 'smartos.images-lookup'})

    def _fail(self, what):
        raise AnsibleLookupError('image server %s %s' % (self.display, what))

    def _request(self, url, shown):
        """GET url, following redirects here, so that credentials go only to the server's own origin."""
        for dummy in range(MAX_REDIRECTS + 1):
            self._check_time(shown)
            remaining = max(0.001, self.deadline - time.monotonic())
            auth = self.auth if url_origin(url) == self.origin else None
            try:
                response = self.session.get(url, verify=self.verify, timeout=min(self.timeout, remaining), auth=auth,
                                            allow_redirects=False, stream=True)
            except requests.exceptions.Timeout as e:
                self._fail('did not answer GET %s within %d s (%s); check that it runs, or raise timeout'
                           % (shown, self.timeout, e))
            except requests.exceptions.SSLError as e:
                self._fail('TLS failed for GET %s (%s); give ca_path, or check the URL' % (shown, e))
            except requests.exceptions.RequestException as e:
                self._fail('could not be reached for GET %s (%s); check the URL and that the server runs' % (shown, e))
            if response.status_code not in REDIRECT_STATUS:
                return response
            location = response.headers.get('Location')
            response.close()
            if not location:
                self._fail('answered HTTP %d to GET %s without a Location to go to' % (response.status_code, shown))
            previous = url
            try:
                url = urljoin(url, location)
                shown, scheme = redact(url), urlsplit(url).scheme.lower()
            except ValueError:
                return self._fail('redirected GET %s to an invalid URL' % shown)
            if scheme not in ('http', 'https'):
                self._fail('redirected GET to %s, which is not an http(s) URL' % shown)
            if scheme == 'http' and previous.lower().startswith('https://'):
                # as smartos_image does: an answer that left TLS could be anything, whoever signed the first hop
                self._fail('redirected GET from https to plain http (%s); refused: the answer would not be '
                           'protected by TLS' % shown.split('?')[0])
        return self._fail('redirected GET more than %d times (last to %s)' % (MAX_REDIRECTS, shown))

    def _check_time(self, shown):
        if time.monotonic() > self.deadline:
            self._fail('did not finish listing within listing_timeout (%d s), at GET %s; check the server, or raise '
                       'listing_timeout' % (self.listing_timeout, shown))

    def _body(self, response, shown):
        """The whole body, read as it arrives (read1), checking the deadline and the size between reads."""
        raw = response.raw
        read = getattr(raw, 'read1', None) or raw.read    # read1 returns what has arrived; read waits for all
        raw.decode_content = True
        chunks, size = [], 0
        try:
            while True:
                self._check_time(shown)
                try:
                    chunk = read(READ_PIECE)
                except Exception as e:  # pylint: disable=broad-except  # urllib3's, the socket's, the decoder's
                    self._fail('broke off its answer to GET %s (%s: %s)' % (shown, type(e).__name__, e))
                if not chunk:
                    break
                size += len(chunk)
                if size > MAX_BODY:
                    self._fail('answered GET %s with more than %d MiB; is it an IMGAPI server?' % (shown, MAX_BODY >> 20))
                chunks.append(chunk)
        finally:
            response.close()
        return b''.join(chunks)

    def _get(self, params):
        query = urlencode(sorted(params.items()))
        url = self.base + '/images' + ('?' + query if query else '')
        shown = self.display + '/images' + ('?' + query if query else '')
        response = self._request(url, shown)
        text = self._body(response, shown).decode('utf-8', 'replace')
        try:
            data, json_ok = json.loads(text), True
        except (ValueError, RecursionError):
            data, json_ok = None, False
        if response.status_code != 200:
            message = next((data[k] for k in ('message', 'code') if isinstance(data.get(k), str) and data[k]), None) \
                if isinstance(data, dict) else None
            self._fail('answered HTTP %d to GET %s: %s' % (response.status_code, shown,
                                                           (message or text.strip())[:200] or '(no body)'))
        if not json_ok:
            self._fail('answered GET %s with something that is not JSON (%r...); is %s an IMGAPI server?'
                       % (shown, text[:80], self.display))
        if data is None:
            self._fail('answered GET %s with JSON null, not a list of image manifests' % shown)
        return data  # read_listing refuses any other answer that is not a list

    def list_images(self, filters):
        """Every image matching filters, page by page by the collection's one paging rule (imgadm listAllImages)."""
        self.deadline = time.monotonic() + self.listing_timeout
        params = {k: v for k, v in filters.items() if v}
        if self.channel:
            params['channel'] = self.channel
        try:
            listed = read_listing(lambda paging: self._get(dict(params, **paging)), 'image server ' + self.display,
                                  seconds=self.listing_timeout)
        except SourceError as e:
            raise AnsibleLookupError(e.msg) from None
        bad = [m for m in listed if not isinstance(m, dict)]
        if bad:
            display.warning('image server %s listed %d entr%s that %s not an image manifest (%s); skipped'
                            % (self.display, len(bad), 'y' if len(bad) == 1 else 'ies',
                               'is' if len(bad) == 1 else 'are', to_text(repr(bad[0]))[:60]))
        return [m for m in listed if isinstance(m, dict)]


def validate_manifest(manifest, where):
    """Raise AnsibleLookupError listing every way manifest breaks the v2 schema."""
    try:
        with open(SCHEMA_PATH, encoding='utf-8') as f:
            schema = json.load(f)
    except (OSError, ValueError) as e:
        raise AnsibleLookupError('cannot read the manifest schema %s: %s' % (SCHEMA_PATH, e))
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(manifest), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        details = '; '.join('%s: %s' % ('.'.join(str(p) for p in e.absolute_path) or '(manifest)', e.message[:200])
                            for e in errors[:10])
        raise AnsibleLookupError('%s is not a valid v2 image manifest (%d problem(s)): %s' % (where, len(errors), details))


class LookupModule(LookupBase):
    """lookup('smartos.images.image', name..., server=URL)."""

    def run(self, terms, variables=None, **kwargs):
        secrets = []
        try:
            if requests is None or jsonschema is None:
                raise AnsibleLookupError('the smartos.images.image lookup needs the Python packages requests and '
                                         'jsonschema on the controller: pip install requests jsonschema')
            self.set_options(var_options=variables, direct=kwargs)
            server = self.get_option('source')
            secrets = secret_forms(server) if isinstance(server, str) else []
            self._refuse_unknown(kwargs)
            return self._run(terms, server)
        except AnsibleError as e:
            message = to_text(e.message)
            if scrub_secrets(message, secrets) == message:
                raise
            raise AnsibleLookupError(scrub_secrets(message, secrets)) from None
        except Exception as e:  # pylint: disable=broad-except  # a bug; its text may hold the URL, so scrub it too
            raise AnsibleLookupError(scrub_secrets('smartos.images.image failed unexpectedly (%s: %s)'
                                                   % (type(e).__name__, to_text(e)), secrets)) from None

    def _refuse_unknown(self, kwargs):
        """A misspelt keyword (verison=) is an error, as a module's unknown argument is, not a filter left out."""
        options = C.config.get_configuration_definitions('lookup', self._load_name) or {}
        known = set(options).union(*(option.get('aliases') or () for option in options.values()))
        unknown = sorted(k for k in kwargs if k not in known)
        if options and unknown:
            raise AnsibleLookupError('smartos.images.image: unknown option(s) %s; the options are %s'
                                     % (', '.join(unknown), ', '.join(sorted(k for k in options if k != '_terms'))))

    def _run(self, terms, server):
        names = list(terms) or [self.get_option('name')]
        for name in names:
            if not isinstance(name, str) or not name:
                got = 'an empty name' if isinstance(name, str) else 'no name' if name is None else \
                    'a %s (%s)' % (type(name).__name__, to_text(repr(name))[:60])
                raise AnsibleLookupError('smartos.images.image: give an image name, as a term or as name=; got %s' % got)
        client = ImageServerLookup(server, self.get_option('validate_certs'), self.get_option('ca_path'),
                                   self.get_option('timeout'), self.get_option('listing_timeout'))
        results = []
        for name in names:
            filters = {'name': name, **{k: self.get_option(k) for k in FILTERS if k != 'name'}}
            # checked here too, as the modules check them: a static server (a mirror) ignores the query string
            found = [m for m in self._checked(client, client.list_images(filters))
                     if listed_as_asked(m, {k: v for k, v in filters.items() if v}, client.channel)]
            wanted = ', '.join('%s=%s' % (k, v) for k, v in filters.items() if v)
            if not found:
                raise AnsibleLookupError('image server %s has no active image with %s; check the name and version '
                                         '(imgadm avail lists what it has)' % (client.display, wanted))
            if len(found) > 1 and not self.get_option('newest'):
                raise AnsibleLookupError('%d images on %s match %s: %s; give version, or newest=true'
                                         % (len(found), client.display, wanted,
                                            ', '.join('%s (%s@%s)' % (m.get('uuid'), m.get('name'), m.get('version'))
                                                      for m in found[:10])))
            chosen = newest(found)
            validate_manifest(chosen, 'what image server %s returned for %s (uuid %s)'
                              % (client.display, wanted, to_text(chosen.get('uuid'))[:80]))
            results.append(chosen['uuid'] if self.get_option('result') == 'uuid' else chosen)
        return results

    @staticmethod
    def _checked(client, listed):
        """The listed manifests the modules would use (upgraded, fields of the right types); the others warned of."""
        usable, bad = usable_listing(listed)
        if bad:
            display.warning('image server %s listed %d entr%s that %s not a usable image manifest (%s); skipped'
                            % (client.display, len(bad), 'y' if len(bad) == 1 else 'ies',
                               'is' if len(bad) == 1 else 'are', to_text('; '.join(bad[:3]))[:300]))
        return usable
