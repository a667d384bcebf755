# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The peers of one VTEP as the reconciler (_netlink_peers) sees them: the wanted ones, validated
(Peer, normalise_peers), and what the kernel has of them (KernelView: three dumps per family;
TargetedView: one get per object of some peers), with what of it is ours (permanent neighbours,
permanent unicast FDB entries; routes by their protocol, in the reconciler).
"""

from __future__ import annotations

import socket

from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_validate as validate
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_wire as wire
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_objects import mac_bytes

_FAMILY = {4: socket.AF_INET, 6: socket.AF_INET6}


class Peer(object):
    """A validated remote peer: subnet, the address of its VTEP (the subnet's network address, the
    next hop of its route), VTEP MAC, underlay address."""

    __slots__ = ('subnet', 'vtep_address', 'mac', 'underlay', 'family', 'vtep_bytes', 'dst_bytes', 'mac_bytes', 'underlay_bytes')

    def __init__(self, subnet, mac, underlay):
        self.subnet = subnet
        self.vtep_address = subnet.network_address
        self.mac = mac
        self.underlay = underlay
        self.family = _FAMILY[subnet.version]
        self.vtep_bytes = self.vtep_address.packed
        self.dst_bytes = self.vtep_address.packed
        self.mac_bytes = mac_bytes(mac)
        self.underlay_bytes = underlay.packed


def normalise_peers(peers, what='peer'):
    """Validate a list of {subnet, vtep_mac, underlay} dicts; refuse duplicate subnets or MACs. One
    MAC may appear twice for one remote host in both families (a dual-stack overlay: the IPv4 and
    the IPv6 subnet behind one VTEP, one FDB entry)."""
    result = []
    subnets = {}
    macs = {}
    for index, item in enumerate(peers or []):
        label = '%s #%d' % (what, index + 1)
        if not isinstance(item, dict):
            raise validate.ValidationError('%s must be a dict with subnet, vtep_mac and underlay, got %r' % (label, item))
        missing = [k for k in ('subnet', 'vtep_mac', 'underlay') if not item.get(k)]
        if missing:
            raise validate.ValidationError('%s (%r) lacks %s' % (label, item, ', '.join(missing)))
        subnet = validate.network(item['subnet'], '%s subnet' % label)
        label = '%s %s' % (what, subnet)
        mac = validate.mac(item['vtep_mac'], '%s vtep_mac' % label)
        underlay = validate.ip_address(item['underlay'], '%s underlay' % label)
        if str(subnet) in subnets:
            raise validate.ValidationError('%s: %s is also used by %s' % (label, subnet, subnets[str(subnet)]))
        subnets[str(subnet)] = label
        other = macs.get(mac)
        if other is not None and (other[1] != underlay or subnet.version in other[2]):
            raise validate.ValidationError('%s: %s is also used by %s' % (label, mac, other[0]))
        macs[mac] = (label if other is None else other[0], underlay, (other[2] if other else set()) | set([subnet.version]))
        result.append(Peer(subnet, mac, underlay))
    return result


# ---- the kernel as it is ------------------------------------------------------------------
class KernelView(object):
    """Owned and relevant objects of one VTEP, from three raw dumps per family."""

    def __init__(self, nl, ifindex):
        self.neigh = {}   # (family, dst) -> NeighRecord on the VTEP
        self.fdb = {}     # mac -> [NeighRecord] (self entries on the VTEP, remote order)
        self.routes = {}  # (family, dst, dst_len) -> [RouteRecord] main table, any device
        for family in (socket.AF_INET, socket.AF_INET6):
            for rec in nl.dump_neighbours(family):
                if rec.ifindex == ifindex and rec.dst is not None:
                    self.neigh[(family, rec.dst)] = rec
            for rec in nl.dump_routes(family):
                if rec.table == wire.RT_TABLE_MAIN:
                    self.routes.setdefault((family, rec.dst, rec.dst_len), []).append(rec)
        for rec in nl.dump_neighbours(wire.AF_BRIDGE):
            if rec.ifindex == ifindex and rec.lladdr is not None and not rec.flags & wire.NTF_MASTER:
                self.fdb.setdefault(rec.lladdr, []).append(rec)


class TargetedView(KernelView):
    """The objects of the given peers only, from one get per object (neighbour, FDB entry, route): what a
    change of one peer costs does not grow with the number of peers (the node agent's one-lease changes)."""

    def __init__(self, nl, ifindex, peers):  # pylint: disable=super-init-not-called
        self.neigh, self.fdb, self.routes = {}, {}, {}
        queries = []
        for peer in peers:
            plen = peer.subnet.prefixlen
            queries.append((('neighbour', (peer.family, peer.vtep_bytes)), wire.RTM_GETNEIGH, wire.parse_neigh,
                            wire.neigh_body(peer.family, ifindex, 0, 0, peer.vtep_bytes)))
            queries.append((('fdb', peer.mac_bytes), wire.RTM_GETNEIGH, wire.parse_neigh,
                            wire.neigh_body(wire.AF_BRIDGE, ifindex, 0, wire.NTF_SELF, None, peer.mac_bytes)))
            queries.append((('route', (peer.family, peer.dst_bytes, plen)), wire.RTM_GETROUTE, wire.parse_route,
                            wire.route_query_body(peer.family, peer.dst_bytes)))
        # a duplicate tag (both families of one peer share its FDB entry) is asked once
        answers = nl.query(list(dict((query[0], query) for query in queries).values()))
        for (kind, key), rec in answers.items():
            if isinstance(rec, int) or rec is None:
                continue  # ENOENT: not there
            if kind == 'neighbour' and rec.ifindex == ifindex:
                self.neigh[key] = rec
            elif kind == 'fdb' and rec.lladdr is not None and not rec.flags & wire.NTF_MASTER:
                self.fdb[key] = [rec]
            elif kind == 'route' and rec.table == wire.RT_TABLE_MAIN and (rec.family, rec.dst, rec.dst_len) == key:
                self.routes[key] = [rec]  # FIB_MATCH answers with the route that matches, maybe a shorter one


def _owned_neigh(rec):
    return bool(rec.state & wire.NUD_PERMANENT)


def _owned_fdb(mac, entries):
    octets = bytearray(mac)
    return bool(entries[0].state & wire.NUD_PERMANENT) and not octets[0] & 1 and any(octets)
