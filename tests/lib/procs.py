"""Process helpers for tests: find what a process started, to stop it by PID."""
from __future__ import annotations

import os
import signal


def descendants(pid):
    """PIDs of every living descendant of pid (children first, then theirs)."""
    parents = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry, encoding='utf-8') as f:
                stat = f.read()
        except OSError:
            continue
        # the command name may hold spaces and parentheses: the ppid follows the last ')'
        parents.setdefault(int(stat.rsplit(')', 1)[1].split()[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(0), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(pid):
    """SIGKILL a process and all its descendants, by PID (as a crash or an OOM kill would)."""
    for target in [pid] + descendants(pid):
        try:
            os.kill(target, signal.SIGKILL)
        except ProcessLookupError:
            pass
