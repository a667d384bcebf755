# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The overlay.mesh.node_contract filter: a host's node contract from the mesh_node role's variables
(docs in node_contract.yml, logic in plugin_utils/_node_inputs.py)."""

from __future__ import annotations

import importlib

from ansible.errors import AnsibleFilterError
from ansible.utils.display import Display

from ansible_collections.overlay.mesh.plugins.plugin_utils import _node_plan, _node_report

display = Display()


def _inputs():
    """plugin_utils/_node_inputs, imported when a filter needs it: it loads the node spec and every backend
    (pyroute2 with them), and Ansible loads every filter file of the collection when a task uses any of its
    filters - a task that does not build a contract must not pay for that in each worker process."""
    return importlib.import_module('ansible_collections.overlay.mesh.plugins.plugin_utils._node_inputs')


def _warn_unknown(_node_inputs, host, variables):
    for name in _node_inputs.unknown_variables(variables):
        display.warning('%s: %s is not a variable of the overlay.mesh.mesh_node role (ignored)' % (host, name))


def node_contract(variables, host, info=None, leases=None, members=None, warn_unknown=False):
    _node_inputs = _inputs()
    if not isinstance(variables, dict):
        raise AnsibleFilterError('overlay.mesh.node_contract: the input must be a mapping of mesh_node_* variables')
    if warn_unknown:
        _warn_unknown(_node_inputs, host, variables)
    try:
        contract, warnings = _node_inputs.node_contract(dict(variables), str(host), info=info or None,
                                                        leases=leases or None, members=list(members or []))
    except _node_inputs.InputError as exc:
        raise AnsibleFilterError(str(exc)) from None
    for warning in warnings:
        display.warning('%s: %s' % (host, warning))
    return contract


def _fact(hostvars, host, name, default=None):
    """A fact of a host of the play (set_fact, register), or default."""
    if host not in hostvars:
        return default
    value = hostvars[host].get(name)
    return default if value is None else value


def node_contracts(hosts, hostvars, leases=None, members=None, variables_key='mesh_node__inputs', info_key='mesh_node__host',
                   present_key='mesh_node__present', warn_unknown=False):
    """The node contracts of the hosts of the play, {host: contract}, built once on the controller from each
    host's facts: its mesh_node_* variables, its overlay.mesh.node_info result (none with an empty info_key:
    the role-given part only) and whether it joins."""
    _node_inputs = _inputs()

    def present(host):
        return bool(_fact(hostvars, host, present_key, False))
    if warn_unknown:
        for host in hosts or []:
            _warn_unknown(_node_inputs, host, _fact(hostvars, host, variables_key, {}))
    try:
        built = _node_inputs.node_contracts(list(hosts or []), lambda host: _fact(hostvars, host, variables_key, {}),
                                            lambda host: _fact(hostvars, host, info_key) if info_key else None, present, leases=leases, members=members)
    except _node_inputs.InputError as exc:
        raise AnsibleFilterError(str(exc)) from None
    contracts = {}
    for host, (contract, warnings) in built.items():
        for warning in warnings:
            display.warning('%s: %s' % (host, warning))
        contracts[host] = contract
    with_agent = [contract for contract in contracts.values() if contract.get('agent')]
    if with_agent:
        _warn_orphaned(with_agent, [name for name in (leases or {}).get('orphaned') or [] if name not in (members or [])])
    return contracts


def _warn_orphaned(contracts, orphaned):
    """Once per run: the leases in etcd of hosts not in the group, which the node agents follow."""
    peers = set(peer['name'] for contract in contracts for peer in contract.get('peers') or [])
    kept = [name for name in orphaned if name in peers]
    left_out = [name for name in orphaned if name not in peers]
    if kept:
        display.warning('%s: a lease in etcd, not in the group: still a peer, as the node agents follow etcd; put it back in the '
                        'inventory, or take it out with overlay.mesh.remove (in the group, -e remove=HOST --limit HOST)'
                        % ', '.join(kept))
    if left_out:
        display.warning('%s: a lease in etcd, not in the group, that claims the subnet, address or MAC of a host of the group '
                        '(its old name after a rename?): not a peer; delete that lease in etcd' % ', '.join(left_out))


def node_reports(hosts, hostvars, info_key='mesh_node__host', present_key='mesh_node__present', variables_key='mesh_node__inputs'):
    """What each joining host of the play tells the others, {host: lease record}: the underlay_info of
    overlay.mesh.subnet_leases. Its address is the one peers reach it at (mesh_node_public_address, else its
    underlay address). Leaving hosts report nothing."""
    reports = {}
    for host in hosts or []:
        info = _fact(hostvars, host, info_key)
        report = _node_report.node_report(info, bool(_fact(hostvars, host, present_key, False)))
        if report:
            report['address'] = node_public_address(_fact(hostvars, host, variables_key, {}), host, info)
            reports[host] = report
    return reports


def _variable(hostvars, host, name, variables_key=None):
    """A host's own mesh_node_* variable (None when unset): from the fact variables_key holds for the hosts of the play
    (play and role vars included, which hostvars does not hold), else from the inventory."""
    if host not in hostvars:
        return None
    variables = hostvars[host].get(variables_key) if variables_key else None
    if isinstance(variables, dict):
        return variables.get(name)
    return hostvars[host].get(name)


def node_group_problems(hosts, hostvars, variables_key=None):
    """Settings the hosts of the overlay group do not agree on (an empty list when they do).

    variables_key: the fact in which the hosts of the play keep all their mesh_node_* variables (play and
    role vars included, which hostvars does not hold); the others' come from the inventory."""
    hosts = list(hosts or [])
    play_level = _play_level_values(hosts, hostvars, variables_key)

    def value_of(host, name):
        value = _variable(hostvars, host, name, variables_key)
        if value is None and name in play_level and host in hostvars and name not in hostvars[host]:
            return play_level[name]  # a host outside a --limit would have the play's value in a run with it
        return value
    return _inputs().group_problems(hosts, value_of)


def _play_level_values(hosts, hostvars, variables_key):
    """The mesh_node_* values a host of the play has from the play or the role (vars:, role vars, defaults), not from
    the inventory: a host outside a --limit that sets none of them in the inventory would have the same in a run with
    it, so a playbook that sets the backend in its vars can still run with --limit."""
    for host in hosts:
        variables = hostvars[host].get(variables_key) if variables_key and host in hostvars else None
        if isinstance(variables, dict):
            return dict((name, value) for name, value in variables.items() if name not in hostvars[host])
    return {}


def node_group_plan(group_hosts, hostvars, group, play_hosts, play_hosts_all, remove=None, rotate=None, groups=None,
                    variables_key='mesh_node__inputs', info_key=None, present_key='mesh_node__present'):
    """The group plan of the mesh_node role, once per run (docs in node_group_plan.yml): members, leaving hosts, pins and
    the group's problems; with info_key (after overlay.mesh.node_info) also the hosts' own records, their reports and
    why not to go on, instead of the problems."""
    def value_of(host, name):
        return _variable(hostvars, host, name, variables_key)
    hosts, play_hosts, play_hosts_all = list(group_hosts or []), list(play_hosts or []), list(play_hosts_all or [])
    plan = _node_plan.group_plan(str(group), hosts, value_of, remove, rotate, in_play=play_hosts_all)
    if info_key:
        plan.update(_node_plan.read_plan(play_hosts, play_hosts_all, lambda host: _fact(hostvars, host, info_key)))
        plan['reports'] = node_reports(play_hosts, hostvars, info_key, present_key, variables_key)
        return plan
    for host in plan['absent_kept']:
        display.warning('%s: mesh_node_state: absent, but not in this play (--limit): its lease is kept, as it still uses its'
                        ' subnet; a run with it takes it out' % host)
    groups = groups if groups is not None else {str(group): hosts}
    plan['problems'] = _node_plan.membership_problems(plan, groups, play_hosts, play_hosts_all)
    if str(group) in groups:  # the shared settings of a group that exists
        plan['problems'] += node_group_problems(hosts, hostvars, variables_key)
    return plan


def node_public_address(variables, host, info=None):
    """The address peers reach the host at: mesh_node_public_address, else its underlay address (docs in node_public_address.yml)."""
    if not isinstance(variables, dict):
        raise AnsibleFilterError('overlay.mesh.node_public_address: the input must be a mapping of mesh_node_* variables')
    if not _node_report.public_address_set(variables):  # the common case needs no node spec (no pyroute2 import)
        return _node_report.underlay_address(info)
    _node_inputs = _inputs()
    try:
        return _node_inputs.public_address(dict(variables), str(host), info or None)
    except _node_inputs.InputError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    """overlay.mesh filters for the node contract."""

    def filters(self):
        return {'node_contract': node_contract, 'node_contracts': node_contracts, 'node_group_plan': node_group_plan,
                'node_group_problems': node_group_problems,
                'node_public_address': node_public_address, 'node_reports': node_reports}
