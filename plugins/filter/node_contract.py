# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The overlay.mesh.node_contract filter: a host's node contract from the mesh_node role's variables
(docs in node_contract.yml, logic in plugin_utils/_node_inputs.py)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible.utils.display import Display

from ansible_collections.overlay.mesh.plugins.plugin_utils import _node_inputs

display = Display()


def node_contract(variables, host, info=None, leases=None, members=None, warn_unknown=False):
    if not isinstance(variables, dict):
        raise AnsibleFilterError('overlay.mesh.node_contract: the input must be a mapping of mesh_node_* variables')
    if warn_unknown:
        for name in _node_inputs.unknown_variables(variables):
            display.warning('%s: %s is not a variable of the overlay.mesh.mesh_node role (ignored)' % (host, name))
    try:
        contract, warnings = _node_inputs.node_contract(dict(variables), str(host), info=info or None,
                                                        leases=leases or None, members=list(members or []))
    except _node_inputs.InputError as exc:
        raise AnsibleFilterError(str(exc)) from None
    for warning in warnings:
        display.warning('%s: %s' % (host, warning))
    return contract


def node_group_problems(hosts, hostvars, variables_key=None):
    """Settings the hosts of the overlay group do not agree on (an empty list when they do).

    variables_key: the fact in which the hosts of the play keep all their mesh_node_* variables (play and
    role vars included, which hostvars does not hold); the others' come from the inventory."""
    def value_of(host, name):
        if host not in hostvars:
            return None
        variables = hostvars[host].get(variables_key) if variables_key else None
        if isinstance(variables, dict):
            return variables.get(name)
        return hostvars[host].get(name)
    return _node_inputs.group_problems(list(hosts or []), value_of)


def node_public_address(variables, host, info=None):
    """The address peers reach the host at: mesh_node_public_address, else its underlay address (docs in node_public_address.yml)."""
    if not isinstance(variables, dict):
        raise AnsibleFilterError('overlay.mesh.node_public_address: the input must be a mapping of mesh_node_* variables')
    try:
        return _node_inputs.public_address(dict(variables), str(host), info or None)
    except _node_inputs.InputError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    """overlay.mesh filters for the node contract."""

    def filters(self):
        return {'node_contract': node_contract, 'node_group_problems': node_group_problems, 'node_public_address': node_public_address}
