# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The host-gw backend: no encapsulation, per peer `subnet via <peer underlay> dev <underlay>`.

On an IPv6 underlay an IPv4 subnet goes via the peer's IPv6 address (`via inet6`, RFC 5549: the
kernel resolves the next hop's MAC by neighbour discovery), and a dual-stack overlay routes each
peer's IPv6 subnet via the same address. An IPv6 subnet cannot go via an IPv4 next hop, so a
dual-stack overlay with host-gw needs an IPv6 underlay; vxlan's direct routing sends such IPv6
subnets through the VTEP instead.

flannel's host-gw. Every peer must be on-link (on this host's underlay L2 segment): a peer behind
a router is refused before any change, naming it (flannel's host-gw only fails at runtime);
across routers use vxlan, with direct_routing for the peers that are on-link. The node's MTU is
the underlay's (no overhead). Routes carry the collection's route protocol (see _netlink_routes).
"""

from __future__ import annotations

import ipaddress

from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_compat as compat
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_links as links
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_routes as routes
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_validate as validate
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_wire as wire
from ansible_collections.overlay.mesh.plugins.module_utils._backends.base import Backend as BaseBackend
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_changes import EngineError

NAME = 'host-gw'


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


def underlay_network(node):
    """This host's underlay network, as configured on its underlay interface now."""
    ipr = compat.open_iproute()
    try:
        return underlay_link(ipr, node)[2]
    finally:
        ipr.close()


def _other_links(ipr):
    """{ifindex: name} of every link that is not a VXLAN VTEP: where our direct routes may be."""
    return dict((msg['index'], msg.get_attr('IFLA_IFNAME')) for msg in ipr.get_links()
                if compat.nested(msg, 'IFLA_LINKINFO', 'IFLA_INFO_KIND') != 'vxlan')


def direct_subnets(node, peer):
    """The subnets of this peer that go directly via its underlay address: the IPv4 one, and the IPv6 one of
    a dual-stack overlay when that address is IPv6 (the kernel has no IPv6 route via an IPv4 next hop)."""
    subnets = [peer['subnet']]
    if node.ipv6_subnet and peer.get('ipv6_subnet') and ipaddress.ip_address(peer['underlay']).version == 6:
        subnets.append(peer['ipv6_subnet'])
    return subnets


def overlay_networks(network, ipv6_network):
    return [ipaddress.ip_network(one) for one in (network, ipv6_network) if one]


def reconcile_direct(node, host, peers, exclusive):
    """Program the direct routes of these peers (via their underlay address on the underlay interface);
    exclusive: also remove our other direct routes into the overlay networks, on any device."""
    ipr = compat.open_iproute()
    try:
        devices = _other_links(ipr)
        wanted = []
        if peers:
            index, name, network = underlay_link(ipr, node)
            for peer in peers:
                gateway = ipaddress.ip_address(peer['underlay'])
                if gateway not in network:
                    raise EngineError('peer %s: %s is not on-link from this host (underlay network %s); routing it'
                                      ' directly needs one L2 segment' % (peer.get('name') or peer['subnet'], gateway, network))
                wanted += [routes.DirectRoute(ipaddress.ip_network(subnet), gateway, index, name)
                           for subnet in direct_subnets(node, peer)]
        names = links.link_names(ipr)
    finally:
        ipr.close()
    with wire.NetlinkRoute() as nl:
        changes = routes.DirectRoutes(nl, node.route_protocol, devices, names,
                                      within=overlay_networks(node.network, node.ipv6_network)).reconcile(
            wanted, exclusive=exclusive, check_mode=host.check_mode)
    host.report.changeset(changes)


def purge_direct(host, record):
    """Remove every direct route of ours: our protocol, not on a VTEP, into the recorded overlay networks."""
    record = record or {}
    if not record.get('network'):
        return  # a record without its network (release 0.1): no direct route was ever made
    ipr = compat.open_iproute()
    try:
        devices = _other_links(ipr)
    finally:
        ipr.close()
    protocol = record.get('route_protocol') or validate.ROUTE_PROTOCOL
    with wire.NetlinkRoute() as nl:
        within = overlay_networks(record['network'], record.get('ipv6_network'))
        changes = routes.DirectRoutes(nl, protocol, devices, within=within).reconcile(
            [], exclusive=True, check_mode=host.check_mode)
    host.report.changeset(changes)


def purge_network(host, protocol, network):
    """Every route of ours into ``network``, on any device: what a dual-stack overlay turned off (or moved to
    another IPv6 network) leaves behind, whichever backend made it (host-gw's, the VTEP's, WireGuard's)."""
    ipr = compat.open_iproute()
    try:
        devices = links.link_names(ipr)
    finally:
        ipr.close()
    with wire.NetlinkRoute() as nl:
        changes = routes.DirectRoutes(nl, protocol, devices, within=[ipaddress.ip_network(network)]).reconcile(
            [], exclusive=True, check_mode=host.check_mode)
    host.report.changeset(changes)


class Backend(BaseBackend):
    name = NAME
    OPTIONS = {}
    OVERHEAD = {4: 0, 6: 0}
    DUAL_STACK = True

    def check(self, data, problem):
        if data.get('ipv6_network') and ipaddress.ip_address(data['underlay']['address']).version != 6:
            problem('ipv6_network', 'host-gw routes IPv6 subnets via the peers\' IPv6 underlay addresses: a dual-stack'
                                    ' overlay with host-gw needs an IPv6 underlay (mesh_node_underlay_family: ipv6 on'
                                    ' dual-stack hosts), or the vxlan backend')
        network = data['underlay'].get('network')
        if not network:
            return  # checked on the host, against its own addresses, before any route is changed
        for peer in data.get('peers') or []:
            if ipaddress.ip_address(peer['underlay']) not in ipaddress.ip_network(network):
                problem('backend.type',
                        'peer %s (%s) is not on-link from this host (underlay network %s): host-gw routes peers over one'
                        ' L2 segment; across routers use vxlan (mesh_node_vxlan_direct_routing: true routes the on-link'
                        ' peers directly)' % (peer.get('name') or peer['subnet'], peer['underlay'], network))

    def apply(self, node, host):
        reconcile_direct(node, host, node.peers, exclusive=True)

    def teardown(self, host, record, strict=False):
        purge_direct(host, record)
