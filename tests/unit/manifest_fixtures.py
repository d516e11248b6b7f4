# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Example image manifests for the tests, in lanes: the project's own (tests/unit/fixtures/manifests, always there)
and the shared real ones (../shared/fixtures/manifests beside the project), an extra lane only when that folder is
found. Tests parametrize over lane_params(...): without the shared folder its cases are simply not generated, so
nothing is skipped."""

from __future__ import annotations

import json
import os

import pytest

OWN_FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures', 'manifests')


def shared_manifests():
    """The shared fixtures/manifests folder beside the project (or beside a copy of it), or None."""
    here = os.path.abspath(__file__)
    while os.path.dirname(here) != here:
        here = os.path.dirname(here)
        candidate = os.path.join(here, 'shared', 'fixtures', 'manifests')
        if os.path.isdir(candidate):
            return candidate
    return None


class Lane:
    """One folder of example manifests and which file plays which part.

    valid_v1, valid_v2: what node-imgmanifest's upgradeManifest then validateMinimalManifest accept;
    zvol_v1: a v1 zvol manifest and fields its upgrade must give; short_published_at: a v1 manifest whose
    published_at has no seconds, and the upgraded value; no_v: neither "v" nor "creator_uuid";
    dc_records: a JSON array of database records with "objectclass" (some with a string "acl");
    icon_records: a JSON array of records whose "icon" is an object."""

    def __init__(self, name, folder, valid_v1, valid_v2, zvol_v1, short_published_at, no_v, dc_records, icon_records):
        self.name, self.folder = name, folder
        self.valid_v1, self.valid_v2 = list(valid_v1), list(valid_v2)
        self.zvol_v1, self.short_published_at, self.no_v = zvol_v1, short_published_at, no_v
        self.dc_records, self.icon_records = dc_records, icon_records

    def path(self, name):
        return os.path.join(self.folder, name)

    def load(self, name):
        """One manifest file, parsed."""
        with open(self.path(name), encoding='utf-8') as f:
            return json.load(f)

    def files(self):
        return sorted(n for n in os.listdir(self.folder) if n.endswith('.json'))


OWN = Lane(
    'own', OWN_FOLDER,
    valid_v1=[
        'v1-dsapi-get-path-only.json',
        'v1-dsapi-put-relative-url.json',
        'v1-dsapi-spec-short-published-at.json',
        'v1-dsapi-dsmanifest-zone.json',
        'v1-dsapi-dsmanifest-zvol.json',
    ],
    valid_v2=[
        'v2-minimal-no-files.json',
        'v2-chain-1-base.json',
        'v2-chain-2.json',
        'v2-chain-3.json',
        'v2-chain-4.json',
        'v2-private.json',
        'v2-private-spaced-name.json',
        'v2-zvol-windows-string-v.json',
        'v2-docker-base-layer.json',
        'v2-docker-tagged-layer.json',
    ],
    zvol_v1=('v1-dsapi-dsmanifest-zvol.json', {
        'image_size': 10240, 'urn': 'acme-cloud:acme:debian-7:1.3.0', 'owner': '2ed7c547-a987-4037-a9ef-95d78ef27415',
        'published_at': '2013-02-11T19:30:05.912Z', 'nic_driver': 'e1000', 'cpu_type': 'host',
        'files': [{'sha1': 'a7a9b33b359e6107c78bd7d0427da3c3a34f425b', 'size': 402653184, 'compression': 'gzip'}],
    }),
    short_published_at=('v1-dsapi-spec-short-published-at.json', '2011-07-21T14:07:00Z'),
    no_v='invalid-no-v-getimage.json',
    dc_records='invalid-dc-records.json',
    icon_records='invalid-icon-object-records.json',
)
# Valid by the project's rules (and by node-imgmanifest's public-mode check on a server configured with
# channels), but not a validateMinimalManifest vector: that one throws on any "channels" field.
OWN_CHANNELS = 'v2-channels.json'

SHARED_FOLDER = shared_manifests()
SHARED = None if SHARED_FOLDER is None else Lane(
    'shared', SHARED_FOLDER,
    valid_v1=[
        'restdown__dsapi-doc-getdataset-nodejs-1.0.0.json',
        'restdown__dsapi-doc-putdataset-response-nodejs-1.0.0.json',
        'restdown__dsapi-doc-manifest-spec-smartos-1.3.13.json',
        'sdc-imgapi__fauxnodejs-1.4.0-dsapi-v1.json',
        'sdc-imgapi__fauxubuntu-zvol-dsapi-v1.json',
    ],
    valid_v2=[
        'sdc-imgapi__fauxnodejs-1.4.0-imgmanifest-v2.json',
        'sdc-imgapi__xdc-inc-level-1-c58161c0.json',
        'sdc-imgapi__xdc-inc-level-2-900cffef.json',
        'sdc-imgapi__xdc-inc-level-3-15963d90.json',
        'sdc-imgapi__xdc-inc-level-4-649d6948.json',
        'sdc-imgapi__xdc-i-am-your-father-9f819499.json',
        'sdc-imgapi__xdc-private-vader-image-f3078f0c.json',
        'sdc-imgapi__xdc-public-operator-image-1-7a1b1967.json',
        'sdc-vmtools-windows__readme-ws2012-zvol.json',
    ],
    # the reference's worked example (§5.4), observed by running node-imgmanifest
    zvol_v1=('sdc-imgapi__fauxubuntu-zvol-dsapi-v1.json', {
        'image_size': 16384, 'urn': 'sdc:jpc:ubuntu-12.04:2.2.1', 'published_at': '2012-11-30T11:40:03.494Z',
    }),
    short_published_at=('restdown__dsapi-doc-manifest-spec-smartos-1.3.13.json', '2011-05-10T09:25:00Z'),
    no_v='sdc-imgapi__docs-getimage-smartos-1.6.3.json',
    dc_records='sdc-imgapi__dc-test-images-dbrecords-array.json',
    icon_records='sdc-imgapi__public-test-images-dbrecords-array.json',
)
LANES = [OWN] + ([SHARED] if SHARED is not None else [])


def lane_params(pick):
    """pytest params (lane, item) for every lane and every item pick(lane) gives (a list, or one value)."""
    params = []
    for lane in LANES:
        items = pick(lane)
        for item in (items if isinstance(items, list) else [items]):
            shown = item[0] if isinstance(item, tuple) else item
            params.append(pytest.param(lane, item, id='%s-%s' % (lane.name, shown)))
    return params
