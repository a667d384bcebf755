# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one producer of node contracts: the mesh_node role's variables -> a host's contract.

Used by the overlay.mesh.node_contract filter, on the controller. The contract is checked with
the same spec the node module and the boot-time apply use (module_utils/_node_spec.py); every
problem is reported at once, naming the host and the role variable behind the value.

Backend options follow one convention, so a new backend needs nothing here: option ``X`` of
backend ``B`` is the role variable ``mesh_node_B_X`` (mesh_node_vxlan_vni -> backend.vni).
"""

from __future__ import annotations

import ipaddress
import re

from ansible_collections.overlay.mesh.plugins.module_utils import _node_spec
from ansible_collections.overlay.mesh.plugins.module_utils import _spec
from ansible_collections.overlay.mesh.plugins.module_utils._backends import registry
from ansible_collections.overlay.mesh.plugins.module_utils._errors import OverlayMeshError
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_validate import ValidationError
from ansible_collections.overlay.mesh.plugins.module_utils import _lease_schema
from ansible_collections.overlay.mesh.plugins.plugin_utils import _etcd_identities
from ansible_collections.overlay.mesh.plugins.plugin_utils import _leases
from ansible_collections.overlay.mesh.plugins.plugin_utils._node_report import empty, public_address_set, underlay_address

PREFIX = 'mesh_node_'
# Role variable -> where it goes in the contract.
CONTRACT_VARIABLES = {
    'mesh_node_network': 'network',
    'mesh_node_ipv6_network': 'ipv6_network',
    'mesh_node_ipv6_masquerade': 'firewall.ipv6_masquerade',
    'mesh_node_mtu': 'mtu',
    'mesh_node_bridge': 'bridge.name',
    'mesh_node_backend': 'backend.type',
    'mesh_node_peers_only': 'firewall.peers_only',
    'mesh_node_ipmasq': 'firewall.masquerade',
    'mesh_node_ip_forward': 'kernel.ip_forward',
    'mesh_node_rp_filter': 'kernel.rp_filter',
    'mesh_node_route_protocol': 'route_protocol',
    'mesh_node_subnet_env_file': 'subnet_env',
    'mesh_node_cni_conf_dir': 'cni.conf_dir',
    'mesh_node_cni_network_name': 'cni.network_name',
    'mesh_node_docker': 'docker.enabled',
    'mesh_node_docker_restart': 'docker.restart',
}
# Role variables that are not in the contract: the play's, the leases' and the underlay lookup's.
ROLE_VARIABLES = ('mesh_node_group', 'mesh_node_state', 'mesh_node_remove', 'mesh_node_rotate_keys', 'mesh_node_install_packages',
                  'mesh_node_subnet_len', 'mesh_node_subnet_min', 'mesh_node_subnet_max', 'mesh_node_subnet', 'mesh_node_lease_file',
                  'mesh_node_lease_lock_timeout',
                  'mesh_node_underlay_address', 'mesh_node_underlay_interface', 'mesh_node_underlay_reach', 'mesh_node_underlay_family',
                  'mesh_node_ipv6_subnet_len', 'mesh_node_registry', 'mesh_node_public_address', 'mesh_node_agent') + tuple(
                      'mesh_node_agent_etcd_' + name for name in ('endpoints', 'ca_file', 'cert_file', 'key_file')) + tuple(
                      'mesh_node_etcd_' + name for name in ('endpoints', 'ca_file', 'cert_file', 'key_file', 'user', 'password',
                                                            'prefix', 'timeout', 'max_txn_ops', 'flannel_peers',
                                                            'admin_user', 'admin_password')) + tuple(
                      'mesh_node_agent_etcd_' + name for name in ('auth', 'user', 'password'))
# Where contract values that no single role variable gives come from, for messages.
SOURCES = {
    'subnet': 'the lease (lease file, mesh_node_subnet)',
    'underlay': 'the underlay found on the host (mesh_node_underlay_*)',
}


# Settings every host of the group must share, with the value a host that does not set them gets
# (the role's default for mesh_node_network; the others default in the leases or the contract).
GROUP_VARIABLES = {
    'mesh_node_network': _leases.DEFAULT_NETWORK,
    'mesh_node_subnet_len': None,
    'mesh_node_subnet_min': None,
    'mesh_node_subnet_max': None,
    'mesh_node_ipv6_network': None,
    'mesh_node_ipv6_subnet_len': None,
    'mesh_node_backend': _node_spec.DEFAULT_BACKEND,
}


class InputError(OverlayMeshError):
    """The role's variables do not make a valid contract for a host; the message names both."""


def backend_variable(backend, option):
    return '%s%s_%s' % (PREFIX, backend, option)


def known_variable(name):
    if name in CONTRACT_VARIABLES or name in ROLE_VARIABLES or name.startswith(PREFIX + '_'):
        return True
    return any(name.startswith(backend_variable(backend, '')) and name[len(backend_variable(backend, '')):] in
               role_options(registry.get(backend)) for backend in registry.names())


def role_options(backend):
    """The backend's options that role variables set (not those the host fills in)."""
    return sorted(option for option in backend.OPTIONS if option not in backend.HOST_OPTIONS)


def unknown_variables(variables):
    """mesh_node_* variables the role does not know (typos, leftovers of an older release)."""
    return sorted(name for name in variables if name.startswith(PREFIX) and not known_variable(name))


def _set(contract, path, value):
    keys = path.split('.')
    target = contract
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = value


def contract_from_variables(variables):
    """The contract's role-given part (no underlay, lease or peers yet)."""
    contract = {}
    for name, path in sorted(CONTRACT_VARIABLES.items()):
        if not empty(variables.get(name)):
            _set(contract, path, variables[name])
    kind = (contract.get('backend') or {}).get('type') or _node_spec.DEFAULT_BACKEND
    backend = registry.get(kind)
    if backend is not None:
        for option in role_options(backend):
            value = variables.get(backend_variable(kind, option))
            if not empty(value):
                _set(contract, 'backend.' + option, value)
    return contract


def variable_of(path, kind):
    """The role variable (or the source) behind a contract path, for messages."""
    match = re.match(r'^peers\[\d+\]', path)
    if match:
        return 'the lease record of a peer (%s)' % path
    for name, target in CONTRACT_VARIABLES.items():
        if path == target:
            return name
    if path.startswith('backend.') and kind:
        return backend_variable(kind, path.split('.', 1)[1])
    return SOURCES.get(path.split('.', 1)[0], path)


def describe_problems(host, exc, kind):
    problems = getattr(exc, 'problems', None) or [('', str(exc))]
    texts = []
    for path, message in problems:
        where = variable_of(path, kind) if path else ''
        texts.append('%s: %s' % (where, message) if where else message)
    return '%s: %s' % (host, '; '.join(texts))


def public_address(variables, host, info=None):
    """The address peers reach ``host`` at (flannel's --public-ip: mesh_node_public_address, for a host behind a 1:1
    NAT or with a floating address), else its underlay address from ``info`` (None before node_info). It is what the
    host's lease record publishes (``underlay``) and what peers use as its endpoint (vxlan, udp, WireGuard). Raises
    InputError naming the host and the variable: not an address, another family than the underlay, inside the
    overlay network, or with host-gw (its peers route through each other's addresses on one L2 segment)."""
    underlay = underlay_address(info)
    if not public_address_set(variables):
        return underlay
    value = variables['mesh_node_public_address']
    try:
        address = ipaddress.ip_address(str(value).strip())
    except ValueError:
        raise InputError('%s: mesh_node_public_address: %r is not an IP address' % (host, value)) from None
    kind = variables.get('mesh_node_backend') or _node_spec.DEFAULT_BACKEND
    problems = []
    backend = registry.get(kind)
    if backend is not None and not backend.PUBLIC_ADDRESS:
        others = [name for name in registry.names() if registry.get(name).PUBLIC_ADDRESS]
        problems.append("the %s backend routes through the hosts' own addresses on one L2 segment; a public address (NAT)"
                        " needs %s or %s" % (kind, ', '.join(others[:-1]), others[-1]))
    underlay_version = ipaddress.ip_address(underlay).version if underlay else address.version
    if underlay_version != address.version:
        problems.append('%s is IPv%d but the underlay address %s is IPv%d' % (address, address.version, underlay, underlay_version))
    for name in ('mesh_node_network', 'mesh_node_ipv6_network'):
        network = variables.get(name) or (_leases.DEFAULT_NETWORK if name == 'mesh_node_network' else None)
        try:
            inside = network and address in ipaddress.ip_network(str(network), strict=False)
        except (TypeError, ValueError):
            inside = False  # the network's own check names it
        if inside:
            problems.append('%s is inside the overlay network %s (%s)' % (address, network, name))
    if problems:
        raise InputError('%s: mesh_node_public_address: %s' % (host, '; '.join(problems)))
    return str(address)


# Where the role puts the node agent's credentials on the host (roles/mesh_node/vars/main.yml says the same).
AGENT_DIR = '/etc/overlay-mesh/agent'
AGENT_FILES = {'ca_file': 'ca.pem', 'cert_file': 'cert.pem', 'key_file': 'key.pem', 'password': 'password'}


def agent_variable(variables, option):
    """mesh_node_agent_etcd_<option>, else the controller's mesh_node_etcd_<option> (the same identity)."""
    value = variables.get('mesh_node_agent_etcd_' + option)
    return variables.get('mesh_node_etcd_' + option) if empty(value) else value


def agent_settings(variables, host):
    """The contract's ``agent`` section (None without mesh_node_agent); credentials as paths on the host."""
    try:
        wanted = _spec.to_bool(variables.get('mesh_node_agent') or False)  # -e mesh_node_agent=false is a string
    except ValueError:
        raise InputError('%s: mesh_node_agent: %r is not a boolean' % (host, variables.get('mesh_node_agent'))) from None
    if not wanted:
        return None
    if (variables.get('mesh_node_registry') or 'file') != 'etcd':
        raise InputError('%s: mesh_node_agent: the agent follows the leases in etcd; it needs mesh_node_registry: etcd'
                         ' (the lease file needs no agent: site applies it)' % host)
    if variables.get('mesh_node_agent_etcd_auth') == 'certificate':
        raise InputError('%s: mesh_node_agent: the agent logs in with a user and password (etcd\'s JSON gateway does not take the'
                         ' user from a certificate); mesh_node_agent_etcd_auth: certificate is for gRPC clients only' % host)
    endpoints = agent_variable(variables, 'endpoints')
    if not endpoints:
        raise InputError('%s: mesh_node_agent: no etcd endpoints (mesh_node_agent_etcd_endpoints or mesh_node_etcd_endpoints)' % host)
    settings = {'enabled': True, 'name': host, 'endpoints': list(endpoints),
                'prefix': variables.get('mesh_node_etcd_prefix') or '/coreos.com/network',
                'flannel_peers': bool(variables.get('mesh_node_etcd_flannel_peers'))}
    if not empty(variables.get('mesh_node_public_address')):
        settings['public_address'] = str(variables['mesh_node_public_address'])  # what the lease keeps, whatever the host has
    if not empty(variables.get('mesh_node_etcd_timeout')):
        settings['timeout'] = int(float(variables['mesh_node_etcd_timeout']))
    for option in ('ca_file', 'cert_file', 'key_file'):
        if not empty(agent_variable(variables, option)):
            settings[option] = '%s/%s' % (AGENT_DIR, AGENT_FILES[option])
    user = agent_variable(variables, 'user')
    if not empty(variables.get('mesh_node_etcd_admin_user')) and empty(variables.get('mesh_node_agent_etcd_user')):
        user = _etcd_identities.default_name(host)  # the identity the role makes for the host
    if not empty(user):
        settings['user'] = user
        settings['password_file'] = '%s/%s' % (AGENT_DIR, AGENT_FILES['password'])
    return settings


def node_contract(variables, host, info=None, leases=None, members=None):
    """The contract of ``host``. Without ``info`` (node_info's result) and ``leases`` (subnet_leases'
    result) only the role-given part, checked as far as it goes. Raises InputError."""
    public_address(variables, host, info)
    contract = contract_from_variables(variables)
    agent = agent_settings(variables, host)
    if agent:
        contract['agent'] = agent
    kind = (contract.get('backend') or {}).get('type') or _node_spec.DEFAULT_BACKEND
    if info:
        underlay = info.get('underlay') or {}
        if underlay:
            contract['underlay'] = dict((key, underlay[key]) for key in ('address', 'interface', 'mtu', 'network')
                                        if underlay.get(key))
        identity = info.get('identity') or {}
        bridge_mac = (identity.get('bridge') or {}).get('mac')
        if bridge_mac:
            contract.setdefault('bridge', {})['mac'] = bridge_mac
        found = identity.get('backend') or {}
        if found.get('type') == kind:
            # the device's MAC, and what the backend reads from the host (WireGuard's public key)
            for key in ('mac',) + tuple(getattr(registry.get(kind), 'HOST_OPTIONS', ())):
                if found.get(key):
                    contract.setdefault('backend', {}).setdefault(key, found[key])
    if leases:
        lease = (leases.get('leases') or {}).get(host) or {}
        contract['network'] = leases.get('network', contract.get('network'))
        contract['subnet'] = lease.get('subnet')
        if leases.get('ipv6_network'):  # a dual-stack overlay: the lease has an IPv6 subnet too
            contract['ipv6_network'] = leases['ipv6_network']
            contract['ipv6_subnet'] = lease.get('ipv6_subnet')
        backend = registry.get(kind)
        if backend is not None:
            records = leases.get('leases') or {}
            contract['peers'] = _lease_schema.contract_peers(host, records, members or [], backend)
            orphaned = [name for name in leases.get('orphaned') or [] if name not in (members or [])]
            if agent and orphaned:
                # the agents follow every lease in etcd, a host gone from the inventory included: site gives the same
                # peers, less a lease that claims what a host of the group has (its old name after a rename); of two
                # orphaned leases claiming one thing, the newer (etcd mod_revision) has it, as the agents decide
                peers = contract['peers'] + _lease_schema.contract_peers(host, records, orphaned, backend)
                revisions = leases.get('orphaned_revisions') or {}
                newest = sorted(orphaned, key=lambda name: (-int(revisions.get(name) or 0), name))
                _kept, refused = _lease_schema.distinct_peers(peers, backend, first=[peer['name'] for peer in contract['peers']] + newest)
                left_out = set(peer['name'] for peer, _why in refused if peer['name'] in orphaned)
                contract['peers'] = sorted((peer for peer in peers if peer['name'] not in left_out), key=lambda peer: peer['name'])
            # hosts of a fleet running flanneld, from the etcd registry (mesh_node_etcd_flannel_peers)
            contract['peers'] += [dict(record, name=name) for name, record in sorted((leases.get('flannel_peers') or {}).items())]
    try:
        node = _node_spec.normalize(contract, partial=not leases)
    except ValidationError as exc:
        raise InputError(describe_problems(host, exc, kind))
    return node.data, node.warnings


def node_contracts(hosts, variables_of, info_of, present_of, leases=None, members=None):
    """The contracts of several hosts at once, on the controller: {host: (contract, warnings)}.

    A joining host's contract is whole when ``leases`` is given (subnet, peers); a leaving host's
    stays the role-given part checked against its underlay, as node_contract without leases.
    Raises InputError naming every host whose contract is refused (one line each)."""
    contracts, problems = {}, []
    for host in hosts:
        try:
            contracts[host] = node_contract(dict(variables_of(host)), str(host), info=info_of(host) or None,
                                            leases=(leases or None) if present_of(host) else None, members=list(members or []))
        except InputError as exc:
            problems.append(str(exc))
    if problems:
        raise InputError('\n'.join(problems))
    return contracts


def _canonical(value):
    if isinstance(value, bool):
        return str(value).lower()
    text = str(value).strip()
    return str(int(text)) if text.lstrip('-').isdigit() else text


def _default_subnet_len(network):
    try:
        return _leases.default_subnet_len(ipaddress.ip_network(str(network or _leases.DEFAULT_NETWORK)))
    except ValueError:
        return None  # an unreadable network is reported where it is checked


def group_problems(hosts, value_of):
    """Settings the hosts of the group do not agree on (a host_vars value would move or cut off part
    of the mesh). value_of(host, variable) is the host's own value, None when it sets none."""
    problems = []

    def compare(name, default):
        by_value = {}
        for host in sorted(hosts):
            value = value_of(host, name)
            if empty(value) and name == 'mesh_node_subnet_len':
                value = _default_subnet_len(value_of(host, 'mesh_node_network'))  # unset means flannel's default
            by_value.setdefault(_canonical(default if empty(value) else value), []).append(host)
        if len(by_value) > 1:
            problems.append('%s differs across the group (%s); every host of the overlay needs the same value (set it in '
                            'group_vars)' % (name, '; '.join('%s on %s' % ('unset' if value == 'None' else value, ', '.join(names))
                                                             for value, names in sorted(by_value.items()))))
        return by_value

    for name, default in GROUP_VARIABLES.items():
        values = compare(name, default)
        if name == 'mesh_node_backend' and len(values) == 1:
            kind = next(iter(values))
            backend = registry.get(kind)
            for option in (backend.GROUP_OPTIONS if backend is not None else ()):
                compare(backend_variable(kind, option), backend.OPTIONS[option].get('default'))
    return problems
