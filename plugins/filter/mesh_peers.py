# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters the node role uses to turn leases into kernel objects."""

from __future__ import annotations

import ipaddress

from ansible.errors import AnsibleFilterError


def mesh_peers(leases, hosts, exclude=None):
    """The peers list of overlay.mesh.peers for one host: every other host of `hosts` with a complete lease."""
    if not isinstance(leases, dict):
        raise AnsibleFilterError('mesh_peers: the input must be the leases mapping of overlay.mesh.subnet_leases')
    peers = []
    for host in sorted(set(hosts)):
        lease = leases.get(host) or {}
        underlay = lease.get('underlay') or lease.get('address')  # 'address' in release 0.1
        if host == exclude or not (lease.get('subnet') and underlay and lease.get('vtep_mac')):
            continue
        peers.append({'subnet': lease['subnet'], 'vtep_mac': lease['vtep_mac'], 'underlay': underlay})
    return peers


def subnet_address(subnet, index=0):
    """Address number `index` of a subnet (0: the network address, 1: the first usable one)."""
    try:
        network = ipaddress.ip_network(subnet)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError('subnet_address: %r is not a subnet: %s' % (subnet, exc))
    if not 0 <= int(index) < network.num_addresses:
        raise AnsibleFilterError('subnet_address: %s has no address number %s' % (network, index))
    return str(network.network_address + int(index))


class FilterModule(object):
    def filters(self):
        return {'mesh_peers': mesh_peers, 'subnet_address': subnet_address}
