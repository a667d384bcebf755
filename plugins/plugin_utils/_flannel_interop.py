# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Hosts of a fleet that runs flanneld, as peers of our mesh (the etcd registry's opt-in, see docs/leases.md).

flanneld's vxlan backend and ours build the same data path (flannel's recipe: a VTEP per host, per
remote host a permanent neighbour, an FDB entry and an on-link route), so a flanneld host can be
one more peer: its subnet behind its ``VtepMAC`` at its ``PublicIP``. flanneld in turn reads our
leases, which carry the same fields. Only what both sides agree on is taken: the vxlan backend
with our VNI (the port is the config's, checked by the registry); a lease that cannot be a peer is
a problem naming its key, reported before any change. flannel's dual stack runs IPv6 on a second
device with a second MAC, which one VTEP cannot reach: such a lease's IPv6 subnet is left out.
"""

from __future__ import annotations

import ipaddress
import re

_MAC = re.compile(r'^[0-9a-f]{2}(:[0-9a-f]{2}){5}$')
SETTING = 'mesh_node_etcd_flannel_peers'


def peer_name(public_ip):
    """How such a peer is named in contracts and messages: not an inventory host, the flanneld at an address."""
    return 'flanneld@%s' % public_ip


def peers(leases, vni, backend_type='vxlan'):
    """({name: lease record}, problems) of flanneld leases. ``leases``: [(key, subnet record, value)] with the
    value as flanneld wrote it (JSON decoded, or None when it is not JSON)."""
    found = {}
    problems = []
    for key, record, value in leases:
        def problem(text, key=key):
            problems.append('etcd key %s: %s; it cannot join the mesh (%s), delete it or turn that off' % (key, text, SETTING))

        if not isinstance(value, dict):
            problem('not flannel\'s lease JSON')
            continue
        if not record.get('subnet'):
            problem('no IPv4 subnet (the mesh reaches a flanneld host\'s IPv4 subnet only)')
            continue
        if backend_type != 'vxlan' or value.get('BackendType') != 'vxlan':
            problem('a lease of the %s backend, not vxlan (both sides must run vxlan)' % value.get('BackendType'))
            continue
        data = value.get('BackendData') or {}
        theirs = data.get('VNI', 1) if isinstance(data, dict) else None  # flanneld before 0.21 wrote no VNI: its default
        if theirs != vni:
            problem('VNI %s, but the mesh uses VNI %s (mesh_node_vxlan_vni)' % (theirs, vni))
            continue
        mac = str(data.get('VtepMAC') or '').lower()
        if not _MAC.match(mac):
            problem('no VtepMAC in its BackendData')
            continue
        try:
            address = ipaddress.ip_address(str(value.get('PublicIP') or value.get('PublicIPv6') or ''))
        except ValueError:
            problem('no PublicIP')
            continue
        name = peer_name(address)
        if name in found:
            problem('a second lease of the flanneld at %s' % address)
            continue
        found[name] = {'subnet': record['subnet'], 'underlay': str(address), 'vtep_mac': mac}
    return found, problems
