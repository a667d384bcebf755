# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Glue shared by the vxlan, peers and bridge modules: library check, errors, results.

The engine (_netlink_links, _netlink_peers, _netlink_wire) knows nothing about Ansible;
this file turns its ChangeSet and exceptions into module results.
"""

from __future__ import annotations

from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_compat as compat
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_changes import EngineError
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_validate import ValidationError
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_wire import NetlinkFailure
from ansible_collections.overlay.mesh.plugins.module_utils._respawn import require_library


def require_pyroute2(module):
    require_library(module, compat.HAS_PYROUTE2, 'pyroute2', 'pyroute2', compat.PYROUTE2_IMPORT_ERROR)


def results(module, changesets, **extra):
    """changed, added/updated/removed and (in diff mode) before/after for one or more ChangeSets."""
    result = {'changed': False, 'added': [], 'updated': [], 'removed': []}
    before = []
    after = []
    for changes in changesets:
        result['changed'] = result['changed'] or changes.changed
        for key, objects in changes.summary().items():
            result[key].extend(objects)
        if module._diff:
            diff = changes.diff()
            before.extend(diff['before'])
            after.extend(diff['after'])
    if module._diff:
        # dicts, which Ansible's callbacks render as YAML: {object type: [objects]}
        result['diff'] = {'before': by_type(before), 'after': by_type(after)}
    result.update(extra)
    return result


def by_type(objects):
    grouped = {}
    for obj in objects:
        grouped.setdefault(obj['type'], []).append(obj)
    return grouped


def run(module, func):
    """Call func() and exit_json with what it returns; engine errors become fail_json."""
    require_pyroute2(module)
    try:
        result = func()
    except (ValidationError, EngineError) as exc:
        module.fail_json(msg=str(exc))
    except NetlinkFailure as exc:
        module.fail_json(msg=str(exc), errno=exc.code)
    except compat.NetlinkError as exc:
        module.fail_json(msg='netlink request failed: %s' % compat.netlink_error_text(exc))
    except OSError as exc:
        module.fail_json(msg='netlink socket error: %s' % exc)
    module.exit_json(**result)


def device_after(changes, name):
    """The link called name as it is (or would be) after the changes; {} when it is absent."""
    for obj in changes.diff()['after']:
        if obj.get('type') == 'link' and obj.get('name') == name:
            return obj
    return {}
