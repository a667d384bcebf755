# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of overlay.mesh.subnet_leases: allocate the overlay subnets on the controller.

Documentation: plugins/modules/subnet_leases.py (``ansible-doc overlay.mesh.subnet_leases``).
The work is done by plugins/plugin_utils/_leases.py; this file reads the options, finds the
lease file, holds its lock across read-modify-write and reports changed/diff.
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.overlay.mesh.plugins.plugin_utils import _leases

ARGUMENT_SPEC = {
    'hosts': {'type': 'list', 'elements': 'str', 'required': True},
    'network': {'type': 'str', 'default': _leases.DEFAULT_NETWORK},
    'subnet_len': {'type': 'int'},
    'subnet_min': {'type': 'str'},
    'subnet_max': {'type': 'str'},
    'ipv6_network': {'type': 'str'},
    'ipv6_subnet_len': {'type': 'int'},
    'ipv6_subnet_min': {'type': 'str'},
    'ipv6_subnet_max': {'type': 'str'},
    'pinned': {'type': 'dict', 'default': {}},
    'host_records': {'type': 'dict', 'default': {}},
    'underlay': {'type': 'dict', 'default': {}},
    'release': {'type': 'list', 'elements': 'str', 'default': []},
    'lease_file': {'type': 'path'},
    'lock_timeout': {'type': 'float', 'default': 60.0},
}


def default_lease_file(task_vars):
    """``<inventory_dir>/.overlay-mesh-leases.yml`` of the host the task runs for, or None."""
    inventory_dir = task_vars.get('inventory_dir')
    if not inventory_dir:
        return None
    return os.path.join(str(inventory_dir), _leases.LEASE_FILE_NAME)


class ActionModule(ActionBase):
    """Allocate, keep and release the overlay subnet of every host of the overlay."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)

        path = args['lease_file'] or default_lease_file(task_vars)
        if not path:
            raise AnsibleActionFail('lease_file: not set, and this host has no inventory_dir to put the lease file beside '
                                    '(implicit localhost?); set lease_file')
        path = os.path.abspath(path)
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            raise AnsibleActionFail('lease_file: directory %s of %s does not exist' % (directory, path))
        check_mode = bool(self._task.check_mode)

        try:
            config = _leases.make_config(
                network=args['network'], subnet_len=args['subnet_len'],
                subnet_min=args['subnet_min'], subnet_max=args['subnet_max'],
                ipv6_network=args['ipv6_network'], ipv6_subnet_len=args['ipv6_subnet_len'],
                ipv6_subnet_min=args['ipv6_subnet_min'], ipv6_subnet_max=args['ipv6_subnet_max'])
            alloc, old_text, new_text = _leases.update_lease_file(
                path, config, args['hosts'], check_mode=check_mode, lock_timeout=args['lock_timeout'],
                pinned=args['pinned'], host_records=args['host_records'], underlay=args['underlay'], release=args['release'])
        except _leases.LeaseError as exc:
            # Expected failures (bad inventory data): a plain failed result listing every problem.
            result.update(failed=True, msg=str(exc), problems=exc.problems)
            return result
        except OSError as exc:
            raise AnsibleActionFail('lease_file %s: %s' % (path, exc)) from None

        changed = new_text != old_text
        result.update(
            changed=changed,
            lease_file=path,
            leases=alloc.leases,
            added=alloc.added,
            released=alloc.released,
            moved=alloc.moved,
            recovered=alloc.recovered,
            orphaned=alloc.orphaned,
        )
        # The pools as the options name them: network (IPv4, or IPv6 alone) and ipv6_network.
        for prefix, pool in zip(('', 'ipv6_'), config.pools):
            result[prefix + 'network'] = str(pool.network)
            result[prefix + 'subnet_len'] = pool.subnet_len
        if alloc.warnings:
            result['warnings'] = alloc.warnings
        if changed and self._task.diff:
            result['diff'] = {'before': old_text, 'after': new_text, 'before_header': path, 'after_header': path}
        return result
