# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shared real manifests (../shared/fixtures/manifests beside the project), for tests that read them."""

from __future__ import annotations

import json
import os

import pytest


def shared_manifests():
    """The shared fixtures/manifests folder beside the project (or beside a copy of it), or None."""
    here = os.path.abspath(__file__)
    while os.path.dirname(here) != here:
        here = os.path.dirname(here)
        candidate = os.path.join(here, 'shared', 'fixtures', 'manifests')
        if os.path.isdir(candidate):
            return candidate
    return None


SHARED = shared_manifests()
needs_shared = pytest.mark.skipif(SHARED is None, reason='../shared/fixtures/manifests is not beside the project')

# What node-imgmanifest's upgradeManifest + validateMinimalManifest accept (the fixtures README).
VALID_V1 = [
    'restdown__dsapi-doc-getdataset-nodejs-1.0.0.json',
    'restdown__dsapi-doc-putdataset-response-nodejs-1.0.0.json',
    'restdown__dsapi-doc-manifest-spec-smartos-1.3.13.json',
    'sdc-imgapi__fauxnodejs-1.4.0-dsapi-v1.json',
    'sdc-imgapi__fauxubuntu-zvol-dsapi-v1.json',
]
VALID_V2 = [
    'sdc-imgapi__fauxnodejs-1.4.0-imgmanifest-v2.json',
    'sdc-imgapi__xdc-inc-level-1-c58161c0.json',
    'sdc-imgapi__xdc-inc-level-2-900cffef.json',
    'sdc-imgapi__xdc-inc-level-3-15963d90.json',
    'sdc-imgapi__xdc-inc-level-4-649d6948.json',
    'sdc-imgapi__xdc-i-am-your-father-9f819499.json',
    'sdc-imgapi__xdc-private-vader-image-f3078f0c.json',
    'sdc-imgapi__xdc-public-operator-image-1-7a1b1967.json',
    'sdc-vmtools-windows__readme-ws2012-zvol.json',
]


def load(name):
    """One shared manifest file, parsed."""
    with open(os.path.join(SHARED, name), encoding='utf-8') as f:
        return json.load(f)
