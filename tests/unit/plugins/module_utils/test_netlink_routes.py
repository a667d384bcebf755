# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Direct routes (host-gw, direct routing) against an in-memory kernel: ownership and switching."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_routes as routes
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_wire as wire
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_changes import EngineError

from fake_kernel import FakeKernel

ETH0, ETH1, VTEP = 2, 4, 7
PROTO = 217
OVERLAY = ipaddress.ip_network('10.244.0.0/16')


def ip(text):
    return socket.inet_aton(text)


def direct(n):
    return routes.DirectRoute(ipaddress.ip_network('10.244.%d.0/24' % n), ipaddress.ip_address('198.18.0.%d' % n), ETH0, 'eth0')


def engine(kernel):
    return routes.DirectRoutes(kernel, PROTO, {ETH0: 'eth0', ETH1: 'eth1'}, {VTEP: 'mesh.1'}, within=[OVERLAY])


def ours(kernel):
    return sorted((socket.inet_ntoa(r.dst), r.oif, socket.inet_ntoa(r.gateway)) for r in kernel.routes if r.protocol == PROTO)


def test_routes_are_added_once():
    kernel = FakeKernel()
    changes = engine(kernel).reconcile([direct(2), direct(3)])
    assert [c.action for c in changes.changes] == ['added', 'added']
    assert ours(kernel) == [('10.244.2.0', ETH0, '198.18.0.2'), ('10.244.3.0', ETH0, '198.18.0.3')]
    assert not engine(kernel).reconcile([direct(2), direct(3)]).changed


def test_a_pair_leaving_the_vtep_is_replaced_in_place_and_keeps_its_metric():
    kernel = FakeKernel()
    kernel.add_route(ip('10.244.2.0'), 24, ip('10.244.2.0'), VTEP, PROTO, priority=5)
    changes = engine(kernel).reconcile([direct(2)], exclusive=False)
    assert [(c.action, c.before['dev'], c.obj['dev']) for c in changes.changes] == [('updated', 'mesh.1', 'eth0')]
    assert [(msg_type, flags & wire.NLM_F_REPLACE) for msg_type, flags, _rec in kernel.sent] == [
        (wire.RTM_NEWROUTE, wire.NLM_F_REPLACE)]  # one replace, no delete first
    assert [(r.oif, r.priority) for r in kernel.routes] == [(ETH0, 5)]


def test_purge_removes_only_our_stale_routes_into_the_overlay():
    kernel = FakeKernel()
    kernel.add_route(ip('10.244.9.0'), 24, ip('198.18.0.9'), ETH1, PROTO, flags=0)     # ours, old underlay device: goes
    kernel.add_route(ip('10.98.0.0'), 16, ip('198.18.0.254'), ETH0, PROTO, flags=0)    # our number, outside the overlay
    kernel.add_route(ip('10.244.8.0'), 24, ip('198.18.0.8'), ETH0, 4, flags=0)         # another protocol
    kernel.add_route(ip('10.244.7.0'), 24, ip('10.244.7.0'), VTEP, PROTO)              # the VTEP's: not a direct route
    engine(kernel).reconcile([direct(2)])
    assert ours(kernel) == [('10.244.2.0', ETH0, '198.18.0.2'), ('10.244.7.0', VTEP, '10.244.7.0'),
                            ('10.98.0.0', ETH0, '198.18.0.254')]
    assert any(r.protocol == 4 for r in kernel.routes)


def test_another_protocol_on_a_peer_subnet_is_refused_before_anything_is_sent():
    kernel = FakeKernel()
    kernel.add_route(ip('10.244.2.0'), 24, ip('198.18.0.254'), ETH0, 4, flags=0)
    with pytest.raises(EngineError, match='10.244.2.0/24 via 198.18.0.254 dev eth0 proto static'):
        engine(kernel).reconcile([direct(2), direct(3)])
    assert kernel.sent == []


def test_an_ipv4_subnet_via_an_ipv6_next_hop_round_trips_through_rta_via():
    kernel = FakeKernel()
    wanted = [routes.DirectRoute(ipaddress.ip_network('10.244.2.0/24'), ipaddress.ip_address('2001:db8::2'), ETH0, 'eth0')]
    changes = engine(kernel).reconcile(wanted)
    assert [(c.action, c.obj['dst'], c.obj['gateway']) for c in changes.changes] == [('added', '10.244.2.0/24', '2001:db8::2')]
    body = kernel.sent[0][2]
    assert body.family == socket.AF_INET and body.gateway == ipaddress.ip_address('2001:db8::2').packed
    assert not engine(kernel).reconcile(wanted).changed  # read back as the same next hop: nothing to do
    assert engine(kernel).reconcile([direct(2)]).changes[0].action == 'updated'  # back to an IPv4 next hop
