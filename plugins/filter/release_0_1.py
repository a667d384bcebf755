# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The 0.1 filters, deprecated (meta/runtime.yml; docs in mesh_peers.yml, subnet_address.yml, subnet_env.yml): the
node contract replaced them. One file whose name is none of theirs: ansible-core warns about a deprecated filter
file each time it loads the collection's filters, so only their use warns."""

from __future__ import annotations

import ipaddress

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.overlay.mesh.plugins.plugin_utils import _leases


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


def subnet_env(lease, network=_leases.DEFAULT_NETWORK, mtu=1450, ipmasq=True, ipv6_network=None):
    """Render /run/flannel/subnet.env for ``lease`` (a record returned by overlay.mesh.subnet_leases)."""
    # Inventory values often arrive as text: "1450", "yes".
    if isinstance(mtu, str) and mtu.strip().isdigit():
        mtu = int(mtu)
    if not isinstance(ipmasq, bool):
        try:
            ipmasq = boolean(ipmasq, strict=True)
        except TypeError:
            pass  # reported below, with the other problems
    try:
        return _leases.subnet_env(lease, network, mtu, ipmasq=ipmasq, ipv6_network=ipv6_network)
    except _leases.LeaseError as exc:
        raise AnsibleFilterError('overlay.mesh.subnet_env: %s' % '; '.join(exc.problems)) from None


class FilterModule(object):
    """overlay.mesh's 0.1 filters."""

    def filters(self):
        return {'mesh_peers': mesh_peers, 'subnet_address': subnet_address, 'subnet_env': subnet_env}
