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
flanneld's LeaseAttrs (flannel's pkg/lease/lease.go) pair an endpoint with its data: ``PublicIP`` with
``BackendData`` (the IPv4 VTEP), ``PublicIPv6`` with ``BackendV6Data`` (the IPv6 one); a lease gives its
IPv4 VTEP, or when it has none (an IPv6 underlay) its IPv6 VTEP, never one's address with the other's MAC.
"""

from __future__ import annotations

import ipaddress
import re

_MAC = re.compile(r'^[0-9a-f]{2}(:[0-9a-f]{2}){5}$')
SETTING = 'mesh_node_etcd_flannel_peers'


def _address(text, version):
    """An address of that version that is not the unspecified one (flanneld writes PublicIP 0.0.0.0 without IPv4)."""
    try:
        address = ipaddress.ip_address(str(text or ''))
    except ValueError:
        return None
    return address if address.version == version and not address.is_unspecified else None


def vtep(value, family=4):
    """(address, backend data) of a lease's VTEP: PublicIP with BackendData, else PublicIPv6 with BackendV6Data
    (on an IPv6 underlay, ``family`` 6, the other way round)."""
    pairs = ((4, 'PublicIP', 'BackendData'), (6, 'PublicIPv6', 'BackendV6Data'))
    for version, public, data in (pairs if family == 4 else pairs[::-1]):
        address = _address(value.get(public), version)
        if address:
            return address, value.get(data)
    return None, None


def public_address(value):
    """The address a lease's host is reached at (None: none)."""
    return vtep(value)[0]


def peer_name(public_ip):
    """How such a peer is named in contracts and messages: not an inventory host, the flanneld at an address."""
    return 'flanneld@%s' % public_ip


def peers(leases, vni, backend_type='vxlan', family=4):
    """({name: lease record}, problems) of flanneld leases. ``leases``: [(key, subnet record, value)] with the
    value as flanneld wrote it (JSON decoded, or None when it is not JSON); ``family``: our underlay's."""
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
        address, data = vtep(value, family)
        if address is None:
            problem('no PublicIP (nor PublicIPv6)')
            continue
        data = data or {}
        # flanneld's vxlan backend writes the VNI since flannel 0.14; a lease without one means its default, 1
        theirs = data.get('VNI', 1) if isinstance(data, dict) else None
        if theirs != vni:
            problem('VNI %s, but the mesh uses VNI %s (mesh_node_vxlan_vni)' % (theirs, vni))
            continue
        mac = str(data.get('VtepMAC') or '').lower()
        if not _MAC.match(mac):
            problem('no VtepMAC in its %s' % ('BackendData' if address.version == 4 else 'BackendV6Data'))
            continue
        name = peer_name(address)
        if name in found:
            problem('a second lease of the flanneld at %s' % address)
            continue
        found[name] = {'subnet': record['subnet'], 'underlay': str(address), 'vtep_mac': mac}
    return found, problems
