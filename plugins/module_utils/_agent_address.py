# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The node agent's view of its own underlay address (docs/agent.md, "Move"): netlink address events that wake it,
and the address the underlay has now. What the agent then does (re-point its devices, re-register its lease) is
in _agent.py."""

from __future__ import annotations

import ipaddress
import socket
import struct
import time

from ansible_collections.overlay.mesh.plugins.module_utils import _underlay

_RTM_NEWADDR, _RTM_DELADDR = 20, 21
_RTMGRP_IPV4_IFADDR = 0x10
_RTMGRP_IPV6_IFADDR = 0x100


def global_address_event(data):
    """Whether a batch of netlink address messages has one of global scope (struct ifaddrmsg's ifa_scope 0)."""
    offset = 0
    while offset + 24 <= len(data):
        length, kind = struct.unpack_from('=IH', data, offset)
        if kind in (_RTM_NEWADDR, _RTM_DELADDR) and data[offset + 16 + 3] == 0:
            return True
        if length < 16:
            break
        offset += (length + 3) & ~3
    return False


def follow_addresses(wake):
    """Thread body: calls wake() when an address of global scope is added or removed on the host (a container's
    link-local address is none of ours), and after a burst too large to read (ENOBUFS): look anyway."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    sock.bind((0, _RTMGRP_IPV4_IFADDR | _RTMGRP_IPV6_IFADDR))
    while True:
        try:
            data = sock.recv(65536)
        except OSError:
            time.sleep(1)
            data = None
        if data is None or global_address_event(data):
            wake()


def current_underlay(underlay):
    """{address, network, interface, mtu} of the underlay now, for the contract's ``underlay``: that one while the host
    still has its address (a second address on the interface moves nothing), else the first global address of that
    family on the underlay interface; None when there is none (the address is gone and no other came yet)."""
    family = 'ipv6' if ':' in underlay['address'] else 'ipv4'
    try:
        found = list(_underlay.global_addresses(_underlay.ip_json('addr', 'show'), family))
    except _underlay.UnderlayError:
        return None
    mine = [one for one in found if one[1] == underlay['address']]
    others = [one for one in found if one[0] == underlay.get('interface')]
    if mine or not others:
        return dict(underlay) if mine else None
    interface, address, prefixlen, mtu = others[0]
    network = str(ipaddress.ip_interface('%s/%d' % (address, prefixlen)).network)
    return {'address': address, 'network': network, 'interface': interface, 'mtu': mtu}
