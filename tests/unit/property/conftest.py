# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hypothesis profiles for the property tests of every reader of outside data.

- "fixed" (the default, what `make units` and `make test` run): a fixed seed (derandomize) and a few hundred
  examples per target, no example database, no deadline: the same inputs every run, well under a minute in all.
- "fuzz" (`make fuzz`, or SMARTOS_IMAGES_FUZZ=1): random inputs, SMARTOS_IMAGES_FUZZ_EXAMPLES per target
  (default 10000), still no database, so a run leaves nothing behind.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import hypothesis
from hypothesis.configuration import set_hypothesis_home_dir

# Hypothesis keeps caches (constants, unicode data) in ./.hypothesis: keep them in a temporary directory of this
# run instead, removed at exit, so that the tests write nothing outside temporary directories.
_HOME = tempfile.mkdtemp(prefix='smartos-images-hypothesis-')
atexit.register(shutil.rmtree, _HOME, True)
set_hypothesis_home_dir(_HOME)

SUPPRESS = [hypothesis.HealthCheck.too_slow, hypothesis.HealthCheck.data_too_large,
            hypothesis.HealthCheck.filter_too_much, hypothesis.HealthCheck.large_base_example]

hypothesis.settings.register_profile(
    'fixed', derandomize=True, max_examples=int(os.environ.get('SMARTOS_IMAGES_PROPERTY_EXAMPLES', '150')),
    database=None, deadline=None, suppress_health_check=SUPPRESS, print_blob=False)
hypothesis.settings.register_profile(
    'fuzz', derandomize=False, max_examples=int(os.environ.get('SMARTOS_IMAGES_FUZZ_EXAMPLES', '10000')),
    database=None, deadline=None, suppress_health_check=SUPPRESS, print_blob=True)
hypothesis.settings.load_profile('fuzz' if os.environ.get('SMARTOS_IMAGES_FUZZ') else 'fixed')
