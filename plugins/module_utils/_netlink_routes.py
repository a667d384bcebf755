# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Direct routes to peers over the underlay: `subnet via <peer underlay> dev <underlay>`.

The host-gw backend routes every peer this way (flannel's host-gw); vxlan with direct routing
routes the peers on its own L2 segment this way (flannel's DirectRouting, Calico's CrossSubnet).

Ownership, as for the VXLAN peers: a route carries the collection's route protocol. Any route of
that protocol on a peer's subnet is ours and is replaced in place (a pair switching between
VXLAN and direct), one of another protocol is foreign and an error naming it. Purging removes
routes of our protocol, on the given devices, to destinations inside the overlay networks (within:
IPv4 and, for a dual-stack overlay, IPv6) that no peer wants any more: a route of the same number to
anywhere else is left alone. An IPv4 subnet routed via an IPv6 underlay address (host-gw on an
IPv6 underlay) has its next hop in RTA_VIA (_netlink_wire).

The backends that route peers directly (host-gw for all of them, vxlan's direct routing for the
on-link ones) call reconcile_direct / purge_direct; a backend that keeps per-peer routes of our
protocol on devices of its own (a VTEP) names their link kind in skip_kinds, so that those are
never taken for direct routes. purge_network removes a whole network's routes of ours, on any
device, whichever backend made them (the node apply, for an IPv6 network turned off).
"""

from __future__ import annotations

import ipaddress
import socket

from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_compat as compat
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_links as links
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_objects as objects
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_validate as validate
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_wire as wire
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_changes import ChangeSet, EngineError

_FAMILY = {4: socket.AF_INET, 6: socket.AF_INET6}
_ADD = wire.NLM_F_CREATE | wire.NLM_F_EXCL
_REPLACE = wire.NLM_F_CREATE | wire.NLM_F_REPLACE
_RT_SCOPE_LINK = 253


class DirectRoute(object):
    """One wanted route: the peer's subnet via its underlay address on an underlay device."""

    __slots__ = ('subnet', 'gateway', 'oif', 'dev', 'family')

    def __init__(self, subnet, gateway, oif, dev):
        self.subnet = subnet
        self.gateway = gateway
        self.oif = oif
        self.dev = dev
        self.family = _FAMILY[subnet.version]

    @property
    def key(self):
        return (self.family, self.subnet.network_address.packed, self.subnet.prefixlen)


class DirectRoutes(object):
    """Plan and apply the direct routes of one host. devices: {ifindex: name} of the underlay;
    within: the overlay networks our routes go into (None: anywhere)."""

    def __init__(self, nl, protocol, devices, devnames=None, within=None):
        self.nl = nl
        self.protocol = protocol
        self.devices = devices
        self.within = within
        self.devnames = dict(devnames or {})
        self.devnames.update(devices)

    def _routes(self):
        found = {}
        for family in (socket.AF_INET, socket.AF_INET6):
            for rec in self.nl.dump_routes(family):
                if rec.table == wire.RT_TABLE_MAIN:
                    found.setdefault((family, rec.dst, rec.dst_len), []).append(rec)
        return found

    def _owned(self, rec):
        """A route of ours that a purge may remove: our protocol, our devices, into the overlay network."""
        if rec.protocol != self.protocol or rec.oif not in self.devices:
            return False
        if self.within is None:
            return True
        return any(rec.family == _FAMILY[network.version] and rec.dst_len >= network.prefixlen
                   and ipaddress.ip_network((rec.dst, rec.dst_len), strict=False).subnet_of(network)
                   for network in self.within)

    def _obj(self, rec):
        return objects.route_obj(self.devnames.get(rec.oif, 'if%s' % rec.oif), rec.family, rec.dst, rec.dst_len, rec.gateway,
                                 rec.protocol, onlink=False)

    def plan(self, wanted, exclusive=True):
        """A ChangeSet whose changes carry (phase, msg_type, flags, body) in ``run``; phase 0 removes."""
        routes = self._routes()
        changes = ChangeSet()
        for key, recs in routes.items():
            for rec in recs:
                if self._owned(rec):
                    changes.current[('route', key)] = self._obj(rec)
        conflicts = []
        wanted_keys = set()
        for route in wanted:
            wanted_keys.add(route.key)
            family, dst, plen = route.key
            obj = objects.route_obj(route.dev, family, dst, plen, route.gateway.packed, self.protocol, onlink=False)
            ours = [rec for rec in routes.get(route.key, ()) if rec.protocol == self.protocol]
            conflicts += [objects.describe_route(rec, self.devnames) for rec in routes.get(route.key, ())
                          if rec.protocol != self.protocol]
            body = wire.route_body(family, dst, plen, self.protocol, gateway=route.gateway.packed, oif=route.oif)
            if not ours:
                changes.add('added', ('route', route.key), obj, None, (1, wire.RTM_NEWROUTE, _ADD, body))
                continue
            first = ours[0]
            if first.gateway != route.gateway.packed or first.oif != route.oif or first.flags & wire.RTNH_F_ONLINK:
                body = wire.route_body(family, dst, plen, self.protocol, gateway=route.gateway.packed, oif=route.oif,
                                       priority=first.priority)
                changes.add('updated', ('route', route.key), obj, self._obj(first), (1, wire.RTM_NEWROUTE, _REPLACE, body))
            for extra in ours[1:]:
                self._remove(extra, changes, suffix=extra.priority)
        if conflicts:
            raise EngineError('route(s) not owned by overlay.mesh (protocol %d) already exist for peer subnet(s): %s;'
                              ' remove them or change the peers' % (self.protocol, '; '.join(conflicts)))
        if exclusive:
            for key, recs in routes.items():
                for rec in recs:
                    if key not in wanted_keys and self._owned(rec):
                        self._remove(rec, changes)
        return changes

    def _remove(self, rec, changes, suffix=None):
        body = wire.route_body(rec.family, rec.dst, rec.dst_len, self.protocol, scope=wire.RT_SCOPE_NOWHERE, rtype=0,
                               oif=rec.oif, priority=rec.priority)
        key = ('route', (rec.family, rec.dst, rec.dst_len))
        if suffix is not None:
            key += (suffix,)
        changes.add('removed', key, self._obj(rec), None, (0, wire.RTM_DELROUTE, 0, body))

    def reconcile(self, wanted, exclusive=True, check_mode=False):
        changes = self.plan(wanted, exclusive)
        if check_mode or not changes.changed:
            return changes
        errors = []
        for phase in (0, 1):
            requests = [(change, change.run[1], change.run[2], change.run[3]) for change in changes.changes
                        if change.run is not None and change.run[0] == phase]
            for change, code, text in self.nl.execute(requests):
                if phase == 0 and code == 3:
                    continue  # already gone (ESRCH)
                errors.append('route %s: errno %d (%s)' % (change.obj['dst'], code, text))
        if errors:
            raise EngineError('%d direct route(s) failed: %s' % (len(errors), '; '.join(errors[:20])))
        left = self.plan(wanted, exclusive)
        if left.changed:
            raise EngineError('reading back, the kernel did not keep %d direct route change(s), for example %s'
                              % (len(left), left.changes[0].obj['dst']))
        return changes


def reconcile_device_route(nl, network, device, index, protocol, check_mode=False):
    """One route for a whole overlay network into a device (WireGuard's: the device's cryptokey routing picks the
    peer), with our route protocol, scope link; a route of another protocol there is an error. index None: the
    device is still to be made (check mode), the route is only planned."""
    family = _FAMILY[network.version]
    dst = network.network_address.packed
    found = [rec for rec in nl.dump_routes(family) if rec.table == wire.RT_TABLE_MAIN and rec.dst == dst
             and rec.dst_len == network.prefixlen]
    wanted = objects.route_obj(device, family, dst, network.prefixlen, None, protocol, onlink=False)
    foreign = [rec for rec in found if rec.protocol != protocol]
    if foreign:
        raise EngineError('a route for the overlay network %s not owned by overlay.mesh (protocol %s) exists: %s;'
                          ' remove it' % (network, foreign[0].protocol, objects.describe_route(foreign[0], {})))
    changes = ChangeSet()
    if any(rec.oif == index for rec in found):
        changes.current[('route', network)] = wanted
        return changes
    changes.add('updated' if found else 'added', ('route', network), wanted, None, None)
    if check_mode or index is None:
        return changes
    body = wire.route_body(family, dst, network.prefixlen, protocol, scope=_RT_SCOPE_LINK, oif=index)
    failures = nl.execute([('route', wire.RTM_NEWROUTE, _REPLACE, body)])
    if failures:
        raise EngineError('route %s dev %s: errno %d (%s)' % (network, device, failures[0][1], failures[0][2]))
    return changes


# ---- direct routes of a node: what the backends call ------------------------------------------
def underlay_link(ipr, node):
    """(ifindex, name, network) of the underlay interface: the one holding the underlay address."""
    address = node.underlay_address
    for index, interface, _scope in links.read_addresses(ipr):
        if interface.ip == address:
            name = links.link_names(ipr).get(index, 'if%d' % index)
            if node.underlay.get('interface') and node.underlay['interface'] != name:
                raise EngineError('underlay address %s is on %s, not on the underlay interface %s'
                                  % (address, name, node.underlay['interface']))
            return index, name, interface.network
    raise EngineError('underlay address %s is not configured on any interface of this host' % address)


def _read_links(read):
    """read(ipr) on a pyroute2 socket opened for it."""
    ipr = compat.open_iproute()
    try:
        return read(ipr)
    finally:
        ipr.close()


def underlay_network(node):
    """This host's underlay network, as configured on its underlay interface now."""
    return _read_links(lambda ipr: underlay_link(ipr, node)[2])


def _direct_links(ipr, skip_kinds):
    """{ifindex: name} of every link whose kind is not in skip_kinds: where our direct routes may be."""
    return dict((msg['index'], msg.get_attr('IFLA_IFNAME')) for msg in ipr.get_links()
                if compat.nested(msg, 'IFLA_LINKINFO', 'IFLA_INFO_KIND') not in skip_kinds)


def direct_subnets(node, peer):
    """The subnets of this peer that go directly via its underlay address: the IPv4 one, and the IPv6 one of
    a dual-stack overlay when that address is IPv6 (the kernel has no IPv6 route via an IPv4 next hop)."""
    subnets = [peer['subnet']]
    if node.ipv6_subnet and peer.get('ipv6_subnet') and ipaddress.ip_address(peer['underlay']).version == 6:
        subnets.append(peer['ipv6_subnet'])
    return subnets


def overlay_networks(network, ipv6_network):
    return [ipaddress.ip_network(one) for one in (network, ipv6_network) if one]


def reconcile_direct(node, host, wanted_peers, exclusive, skip_kinds=()):
    """Program the direct routes of these peers (via their underlay address on the underlay interface);
    exclusive: also remove our other direct routes into the overlay networks, on any device but those of skip_kinds."""
    ipr = compat.open_iproute()
    try:
        devices = _direct_links(ipr, skip_kinds)
        wanted = []
        if wanted_peers:
            index, name, network = underlay_link(ipr, node)
            for peer in wanted_peers:
                gateway = ipaddress.ip_address(peer['underlay'])
                if gateway not in network:
                    raise EngineError('peer %s: %s is not on-link from this host (underlay network %s); routing it'
                                      ' directly needs one L2 segment' % (peer.get('name') or peer['subnet'], gateway, network))
                wanted += [DirectRoute(ipaddress.ip_network(subnet), gateway, index, name)
                           for subnet in direct_subnets(node, peer)]
        names = links.link_names(ipr)
    finally:
        ipr.close()
    with wire.NetlinkRoute() as nl:
        changes = DirectRoutes(nl, node.route_protocol, devices, names,
                               within=overlay_networks(node.network, node.ipv6_network)).reconcile(
            wanted, exclusive=exclusive, check_mode=host.check_mode)
    host.report.changeset(changes)


def purge_direct(host, record, skip_kinds=()):
    """Remove every direct route of ours: our protocol, on no device of skip_kinds, into the recorded overlay networks."""
    record = record or {}
    if not record.get('network'):
        return  # a record without its network (release 0.1): no direct route was ever made
    _purge(host, record.get('route_protocol') or validate.ROUTE_PROTOCOL,
           _read_links(lambda ipr: _direct_links(ipr, skip_kinds)),
           overlay_networks(record['network'], record.get('ipv6_network')))


def purge_network(host, protocol, network):
    """Every route of ours into ``network``, on any device: what a dual-stack overlay turned off (or moved to
    another IPv6 network) leaves behind, whichever backend made it (host-gw's, the VTEP's, WireGuard's)."""
    _purge(host, protocol, _read_links(links.link_names), [ipaddress.ip_network(network)])


def _purge(host, protocol, devices, within):
    """Remove every route of ours (protocol) on these devices into the networks within."""
    with wire.NetlinkRoute() as nl:
        changes = DirectRoutes(nl, protocol, devices, within=within).reconcile([], exclusive=True, check_mode=host.check_mode)
    host.report.changeset(changes)
