# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_errors.py: one exception family, its message and its evidence."""

from __future__ import annotations

import pytest

from ansible_collections.smartos.images.plugins.module_utils import _errors
from ansible_collections.smartos.images.plugins.module_utils._errors import (
    CommandError, DownloadError, ImageError, ImageInUse, ImageNotFound, InvalidParameter, SourceError,
    UnsupportedImage,
)


def test_message_and_evidence_without_empty_values():
    e = CommandError('zfs list failed: no pool', cmd='zfs list', rc=1, stderr=None)
    assert str(e) == e.msg == 'zfs list failed: no pool'
    assert e.evidence == {'cmd': 'zfs list', 'rc': 1}     # None is no evidence; 0 and '' are
    assert ImageError('x', rc=0, stderr='').evidence == {'rc': 0, 'stderr': ''}
    assert ImageError('x').evidence == {}


@pytest.mark.parametrize('cls, parent', [
    (InvalidParameter, ImageError), (SourceError, ImageError), (ImageNotFound, SourceError),
    (DownloadError, ImageError), (CommandError, ImageError), (ImageInUse, ImageError),
    (UnsupportedImage, ImageError), (ImageError, Exception),
])
def test_one_family(cls, parent):
    assert issubclass(cls, parent)


def test_every_error_of_the_module_is_an_image_error():
    errors = [v for v in vars(_errors).values() if isinstance(v, type) and issubclass(v, Exception)]
    assert errors and all(issubclass(e, ImageError) for e in errors)
