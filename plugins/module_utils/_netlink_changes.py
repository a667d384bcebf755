# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""What the engine reports: planned changes, before/after object lists, errors.

Kernel objects are described by plain dicts (JSON-friendly) with a ``type`` key:
``link``, ``address``, ``neighbour``, ``fdb`` or ``route``.  Standard library only.
"""

from __future__ import annotations

from ansible_collections.overlay.mesh.plugins.module_utils._errors import OverlayMeshError


class EngineError(OverlayMeshError):
    """The engine cannot reach the desired state; the message names the object and value."""


class Change(object):
    """One planned change: action is 'added', 'updated' or 'removed'."""

    __slots__ = ('action', 'key', 'obj', 'before', 'run')

    def __init__(self, action, key, obj, before=None, run=None):
        self.action = action
        self.key = key
        self.obj = obj          # the object after the change (for 'removed': the object removed)
        self.before = before    # for 'updated': the object before the change
        self.run = run          # callable applying the change (link engine) or None


class ChangeSet(object):
    """The difference between the kernel and the desired state, plus before/after views."""

    def __init__(self):
        self.changes = []
        self.current = {}       # key -> object dict, owned objects as found (filled for diff mode)

    def add(self, action, key, obj, before=None, run=None):
        self.changes.append(Change(action, key, obj, before, run))

    def __len__(self):
        return len(self.changes)

    @property
    def changed(self):
        return bool(self.changes)

    def summary(self):
        """The added/updated/removed lists of the module results."""
        result = {'added': [], 'updated': [], 'removed': []}
        for change in self.changes:
            result[change.action].append(change.obj)
        return result

    def diff(self):
        """before/after lists of owned kernel objects, for Ansible's diff mode."""
        after = dict(self.current)
        for change in self.changes:
            if change.action == 'removed':
                after.pop(change.key, None)
            else:
                after[change.key] = change.obj
        return {'before': _sorted(self.current.values()), 'after': _sorted(after.values())}


def _sorted(objects):
    return sorted(objects, key=lambda obj: sorted((k, str(v)) for k, v in obj.items()))
