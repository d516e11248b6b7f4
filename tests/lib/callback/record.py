"""Test-only callback plugin: appends every task result as one JSON line to $SMARTOS_IMAGES_RECORD.

It lets the integration tests assert on what modules really returned in real ansible-playbook runs.
"""
from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = '''
name: record
type: aggregate
short_description: Record task results as JSON lines for the smartos.images tests
description: Appends each task result to the file named by the SMARTOS_IMAGES_RECORD variable.
'''


class CallbackModule(CallbackBase):
    """Write {host, task, status, result} per task result."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'record'
    CALLBACK_NEEDS_ENABLED = True

    def _record(self, result, status):
        path = os.environ.get('SMARTOS_IMAGES_RECORD')
        if not path:
            return
        entry = {'host': result._host.get_name(), 'task': result._task.get_name(), 'status': status,
                 'result': result._result}
        with open(path, 'a', encoding='utf-8') as f:
            f.write(json.dumps(entry, default=str) + '\n')

    def v2_runner_on_ok(self, result):
        self._record(result, 'ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, 'failed')

    def v2_runner_on_unreachable(self, result):
        self._record(result, 'unreachable')

    def v2_runner_on_skipped(self, result):
        self._record(result, 'skipped')
