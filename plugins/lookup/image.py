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
    one's UUID or manifest (by C(published_at)).
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
  server:
    description:
      - The image server's URL (IMGAPI), for example C(https://images.smartos.org).
      - A C(?channel=NAME) on the URL selects that channel.
    type: str
    required: true
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
    description: Seconds to wait for the server to connect or answer.
    type: int
    default: 30
notes:
  - Only active images are listed, as imgadm lists them.
seealso:
  - module: smartos.images.smartos_image
  - module: smartos.images.smartos_image_facts
'''

EXAMPLES = r'''
- name: Resolve the newest base-64-lts once; every host imports this same UUID
  hosts: compute_nodes
  vars:
    base_uuid: "{{ lookup('smartos.images.image', 'base-64-lts', server='https://images.smartos.org', os='smartos') }}"
  tasks:
    - name: Import it
      smartos.images.smartos_image:
        uuid: "{{ base_uuid }}"

- name: The whole manifest of one exact version
  ansible.builtin.debug:
    msg: "{{ lookup('smartos.images.image', server='https://images.smartos.org', name='base-64-lts',
             version='24.4.1', result='manifest').files[0].size }}"
'''

RETURN = r'''
_raw:
  description:
    - For each term, the UUID of the matching image (O(result=uuid)) or its manifest (O(result=manifest)).
  type: list
  elements: raw
'''

import json
import os

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

try:
    import requests
except ImportError:  # pragma: no cover - reported when the lookup runs
    requests = None
try:
    import jsonschema
except ImportError:  # pragma: no cover - reported when the lookup runs
    jsonschema = None

PAGE = 1000  # IMGAPI ListImages: default and maximum limit
SCHEMA_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'schemas', 'imgmanifest-v2.json')
FILTERS = ('name', 'version', 'os', 'type')


class ImageServerLookup:
    """ListImages on one IMGAPI server, with imgadm's pagination, and the schema check."""

    def __init__(self, server, validate_certs=True, ca_path=None, timeout=30):
        base, sep, query = server.partition('?')
        self.base = base.rstrip('/')
        self.channel = dict(p.partition('=')[::2] for p in query.split('&') if p).get('channel') if sep else None
        self.verify = (ca_path or True) if validate_certs else False
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update({'Accept-Version': '~2', 'Accept': 'application/json',
                                     'User-Agent': 'smartos.images-lookup'})

    def _get(self, params):
        url = self.base + '/images'
        try:
            response = self.session.get(url, params=params, verify=self.verify, timeout=self.timeout)
        except requests.exceptions.Timeout as e:
            raise AnsibleLookupError('image server %s did not answer within %d s (%s); check that it runs, or raise timeout'
                                     % (self.base, self.timeout, e))
        except requests.exceptions.SSLError as e:
            raise AnsibleLookupError('image server %s: TLS failed (%s); give ca_path, or check the URL' % (self.base, e))
        except requests.exceptions.RequestException as e:
            raise AnsibleLookupError('image server %s could not be reached (%s); check the URL and that the server runs'
                                     % (self.base, e))
        if response.status_code != 200:
            try:
                body = response.json()
                message = body.get('message') or body.get('code') or response.text
            except ValueError:
                message = response.text.strip()[:200]
            raise AnsibleLookupError('image server %s answered HTTP %d to GET %s: %s'
                                     % (self.base, response.status_code, response.url, message))
        try:
            page = response.json()
        except ValueError:
            raise AnsibleLookupError('image server %s answered GET %s with something that is not JSON (%r...); '
                                     'is %s an IMGAPI server?' % (self.base, response.url, response.text[:80], self.base))
        if not isinstance(page, list) or not all(isinstance(m, dict) for m in page):
            raise AnsibleLookupError('image server %s answered GET %s with %s, not a list of image manifests; '
                                     'is it an IMGAPI server?' % (self.base, response.url, type(page).__name__))
        return page

    def list_images(self, filters):
        """Every image matching filters: the first request as is, then limit/marker pages (imgadm listAllImages)."""
        params = {k: v for k, v in filters.items() if v}
        if self.channel:
            params['channel'] = self.channel
        images = self._get(params)
        marker = None
        page = images
        full = len(page) >= PAGE
        while full:
            last = page[-1].get('uuid')
            if not last or last == marker:
                break
            marker = last
            page = self._get(dict(params, limit=PAGE, marker=marker))
            full = len(page) >= PAGE  # counted before the repeated marker image is dropped
            if page and page[0].get('uuid') == marker:
                page = page[1:]  # IMGAPI includes the marker image again
            if not page:
                break
            images.extend(page)
        return images


def _matches(manifest, filters):
    """Client-side check of exact filters, in case a server ignores them."""
    for key, want in filters.items():
        if want and not want.startswith(('~', '!')) and str(manifest.get(key)) != want:
            return False
    return True


def validate_manifest(manifest, where):
    """Raise AnsibleLookupError listing every way manifest breaks the v2 schema."""
    try:
        with open(SCHEMA_PATH, encoding='utf-8') as f:
            schema = json.load(f)
    except (OSError, ValueError) as e:
        raise AnsibleLookupError('cannot read the manifest schema %s: %s' % (SCHEMA_PATH, e))
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path))
    if errors:
        details = '; '.join('%s: %s' % ('.'.join(str(p) for p in e.absolute_path) or '(manifest)', e.message[:200])
                            for e in errors[:10])
        raise AnsibleLookupError('%s is not a valid v2 image manifest (%d problem(s)): %s' % (where, len(errors), details))


class LookupModule(LookupBase):
    """lookup('smartos.images.image', name..., server=URL)."""

    def run(self, terms, variables=None, **kwargs):
        if requests is None or jsonschema is None:
            raise AnsibleLookupError('the smartos.images.image lookup needs the Python packages requests and jsonschema '
                                     'on the controller: pip install requests jsonschema')
        self.set_options(var_options=variables, direct=kwargs)
        server = self.get_option('server')
        names = list(terms) or [self.get_option('name')]
        if not all(names):
            raise AnsibleLookupError('smartos.images.image: give an image name, as a term or as name=')
        client = ImageServerLookup(server, self.get_option('validate_certs'), self.get_option('ca_path'),
                                   self.get_option('timeout'))
        results = []
        for name in names:
            filters = {'name': name}
            filters.update({k: self.get_option(k) for k in FILTERS if k != 'name'})
            found = [m for m in client.list_images(filters) if _matches(m, filters)]
            wanted = ', '.join('%s=%s' % (k, v) for k, v in filters.items() if v)
            if not found:
                raise AnsibleLookupError('image server %s has no active image with %s; check the name and version '
                                         '(imgadm avail lists what it has)' % (client.base, wanted))
            if len(found) > 1 and not self.get_option('newest'):
                raise AnsibleLookupError('%d images on %s match %s: %s; give version, or newest=true'
                                         % (len(found), client.base, wanted,
                                            ', '.join('%s (%s@%s)' % (m.get('uuid'), m.get('name'), m.get('version'))
                                                      for m in found[:10])))
            # stable sort: among equal published_at the server's later one wins, as imgadm's newest does
            chosen = sorted(found, key=lambda m: str(m.get('published_at') or ''))[-1]
            validate_manifest(chosen, 'what image server %s returned for %s (uuid %s)' % (client.base, wanted, chosen.get('uuid')))
            results.append(chosen['uuid'] if self.get_option('result') == 'uuid' else chosen)
        return results
