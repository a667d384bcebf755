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

from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_routes as routes
from ansible_collections.overlay.mesh.plugins.module_utils._backends.base import Backend as BaseBackend

NAME = 'host-gw'


class Backend(BaseBackend):
    name = NAME
    OPTIONS = {}
    OVERHEAD = {4: 0, 6: 0}
    DUAL_STACK = True
    # peers are routed via their own underlay addresses, on one L2 segment
    PUBLIC_ADDRESS = False

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
        routes.reconcile_direct(node, host, node.peers, exclusive=True, skip_kinds=_skip_kinds())

    def teardown(self, host, record, strict=False):
        routes.purge_direct(host, record, skip_kinds=_skip_kinds())


def _skip_kinds():
    """The link kinds whose routes of our protocol are another backend's own (a VTEP's), never direct routes."""
    from ansible_collections.overlay.mesh.plugins.module_utils._backends import registry  # registry imports this module
    return registry.peer_route_kinds()
