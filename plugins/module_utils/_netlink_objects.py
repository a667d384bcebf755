# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Kernel entries as the modules report them (plain dicts with a ``type``: neighbour, fdb, route)
and as error messages name them (describe_route: ``ip route``'s words). Used by the peers of a VTEP
(_netlink_peers) and the direct routes (_netlink_routes). Standard library only.
"""

from __future__ import annotations

import socket

from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_validate as validate
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_wire as wire

# Route protocol numbers as iproute2 names them (rt_protos), ours included.
PROTO_NAMES = {0: 'unspec', 1: 'redirect', 2: 'kernel', 3: 'boot', 4: 'static', 8: 'gated', 9: 'ra', 10: 'mrt',
               11: 'zebra', 12: 'bird', 13: 'dnrouted', 14: 'xorp', 15: 'ntk', 16: 'dhcp', 42: 'babel', 186: 'bgp',
               187: 'isis', 188: 'ospf', 189: 'rip', 192: 'eigrp', validate.ROUTE_PROTOCOL: validate.ROUTE_PROTOCOL_NAME}


def ntop(packed):
    return socket.inet_ntop(socket.AF_INET if len(packed) == 4 else socket.AF_INET6, packed)


def mac_text(packed):
    return ':'.join('%02x' % octet for octet in bytearray(packed))


def mac_bytes(text):
    return bytes(bytearray(int(part, 16) for part in text.split(':')))


def neigh_obj(dev, dst, lladdr, state='permanent'):
    return {'type': 'neighbour', 'dev': dev, 'address': ntop(dst), 'lladdr': mac_text(lladdr) if lladdr else None,
            'state': state}


def fdb_obj(dev, lladdr, dst, state='permanent'):
    return {'type': 'fdb', 'dev': dev, 'lladdr': mac_text(lladdr), 'dst': ntop(dst) if dst else None, 'self': True,
            'state': state}


def route_obj(dev, family, dst, dst_len, gateway, protocol, onlink=True):
    width = 4 if family == socket.AF_INET else 16
    return {'type': 'route', 'dev': dev, 'dst': '%s/%d' % (ntop(dst or b'\0' * width), dst_len),
            'gateway': ntop(gateway) if gateway else None, 'onlink': onlink, 'table': 'main',
            'protocol': PROTO_NAMES.get(protocol, protocol)}


def state_name(state):
    return 'permanent' if state & wire.NUD_PERMANENT else '0x%x' % state


def describe_route(record, devnames):
    width = 4 if record.family == socket.AF_INET else 16
    text = '%s/%d' % (ntop(record.dst or b'\0' * width), record.dst_len)
    if record.gateway:
        text += ' via %s' % ntop(record.gateway)
    if record.oif is not None:
        text += ' dev %s' % devnames.get(record.oif, 'if%d' % record.oif)
    text += ' proto %s' % PROTO_NAMES.get(record.protocol, record.protocol)
    if record.priority:
        text += ' metric %d' % record.priority
    return text
