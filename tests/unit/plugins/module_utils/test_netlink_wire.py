# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Packing and parsing of the raw netlink messages, with a fake socket (no root)."""

from __future__ import annotations

import socket
import struct

import pytest

from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_wire as wire

GW = socket.inet_aton('10.244.2.0')
MAC = bytes(bytearray([2, 0, 0, 0, 0, 2]))
UNDERLAY6 = socket.inet_pton(socket.AF_INET6, '2001:db8::2')


def test_attr_padding():
    assert wire.attr(1, b'abcde') == struct.pack('=HH', 9, 1) + b'abcde' + b'\0\0\0'
    assert len(wire.attr(2, MAC)) == 12
    assert list(wire.iter_attrs(wire.attr(1, b'ab') + wire.attr(2, b'abcd'), 0, 16)) == [(1, 4, 6), (2, 12, 16)]


def test_neighbour_roundtrip():
    body = wire.neigh_body(socket.AF_INET, 7, wire.NUD_PERMANENT, 0, GW, MAC)
    rec = wire.parse_neigh(body, 0, len(body))
    assert (rec.family, rec.ifindex, rec.state, rec.flags, rec.dst, rec.lladdr) == (
        socket.AF_INET, 7, wire.NUD_PERMANENT, 0, GW, MAC)


def test_fdb_roundtrip_ipv6_destination():
    body = wire.neigh_body(wire.AF_BRIDGE, 7, wire.NUD_PERMANENT, wire.NTF_SELF, UNDERLAY6, MAC)
    rec = wire.parse_neigh(body, 0, len(body))
    assert rec.family == wire.AF_BRIDGE and rec.flags == wire.NTF_SELF and rec.dst == UNDERLAY6 and rec.lladdr == MAC


def test_route_roundtrip():
    body = wire.route_body(socket.AF_INET, GW, 24, 217, flags=wire.RTNH_F_ONLINK, gateway=GW, oif=7, priority=5)
    rec = wire.parse_route(body, 0, len(body))
    assert (rec.dst, rec.dst_len, rec.protocol, rec.flags, rec.gateway, rec.oif, rec.priority, rec.table) == (
        GW, 24, 217, wire.RTNH_F_ONLINK, GW, 7, 5, wire.RT_TABLE_MAIN)


def test_route_delete_matches_any_scope_and_type():
    body = wire.route_body(socket.AF_INET, GW, 24, 217, scope=wire.RT_SCOPE_NOWHERE, rtype=0, oif=7)
    rec = wire.parse_route(body, 0, len(body))
    assert rec.scope == wire.RT_SCOPE_NOWHERE and rec.rtype == 0 and rec.gateway is None


def message(msg_type, seq, body, flags=0):
    return struct.pack('=IHHII', 16 + len(body), msg_type, flags, seq, 0) + body + b'\0' * ((4 - len(body) % 4) % 4)


class FakeSocket(object):
    def __init__(self, replies):
        self.replies = list(replies)
        self.sent = []

    def send(self, data):
        self.sent.append(data)
        return len(data)

    def recv(self, _size):
        return self.replies.pop(0)


def netlink(replies):
    nl = wire.NetlinkRoute.__new__(wire.NetlinkRoute)
    nl.sock = FakeSocket(replies)
    nl.seq = 99
    return nl


def test_dump_parses_until_done_across_reads():
    neigh = wire.neigh_body(socket.AF_INET, 7, wire.NUD_PERMANENT, 0, GW, MAC)
    replies = [message(wire.RTM_NEWNEIGH, 100, neigh, wire.NLM_F_MULTI) * 2,
               message(wire.RTM_NEWNEIGH, 100, neigh, wire.NLM_F_MULTI) + message(wire.NLMSG_DONE, 100, b'\0' * 4)]
    nl = netlink(replies)
    records = nl.dump_neighbours(socket.AF_INET)
    assert len(records) == 3 and records[0].dst == GW
    length, msg_type, flags = struct.unpack_from('=IHH', nl.sock.sent[0])
    assert msg_type == wire.RTM_GETNEIGH and flags == wire.NLM_F_REQUEST | wire.NLM_F_DUMP and length == 28


def test_interrupted_dump_is_restarted():
    neigh = wire.neigh_body(socket.AF_INET, 7, wire.NUD_PERMANENT, 0, GW, MAC)
    replies = [message(wire.RTM_NEWNEIGH, 100, neigh, wire.NLM_F_DUMP_INTR) + message(wire.NLMSG_DONE, 100, b'\0' * 4),
               message(wire.RTM_NEWNEIGH, 101, neigh) + message(wire.NLMSG_DONE, 101, b'\0' * 4)]
    assert len(netlink(replies).dump_neighbours(socket.AF_INET)) == 1


def test_dump_error_raises():
    nl = netlink([message(wire.NLMSG_ERROR, 100, struct.pack('=i', -1) + b'\0' * 16)])
    with pytest.raises(wire.NetlinkFailure, match='dump failed'):
        nl.dump_routes(socket.AF_INET)


def ack(seq, code, text=None):
    body = struct.pack('=i', -code) + struct.pack('=IHHII', 16, 0, 0, seq, 0)
    flags = 0x100  # capped
    if text:
        flags |= wire.NLM_F_ACK_TLVS
        body += wire.attr(wire.NLMSGERR_ATTR_MSG, text.encode() + b'\0')
    return message(wire.NLMSG_ERROR, seq, body, flags)


def test_execute_reports_per_item_errors_with_kernel_text():
    nl = netlink([ack(100, 0) + ack(101, 17, 'File exists, really') + ack(102, 0)])
    requests = [('a', wire.RTM_NEWNEIGH, 0, b'x' * 12), ('b', wire.RTM_NEWROUTE, 0, b'y' * 12), ('c', wire.RTM_DELNEIGH, 0, b'z' * 12)]
    assert nl.execute(requests) == [('b', 17, 'File exists, really')]
    sent = nl.sock.sent[0]
    assert len(sent) == 3 * 28
    assert struct.unpack_from('=IHHI', sent, 28)[2] == wire.NLM_F_REQUEST | wire.NLM_F_ACK


def test_execute_chunks(monkeypatch):
    monkeypatch.setattr(wire, 'CHUNK_MESSAGES', 2)
    nl = netlink([ack(100, 0) + ack(101, 0), ack(102, 2)])
    requests = [(i, wire.RTM_DELNEIGH, 0, b'z' * 12) for i in range(3)]
    failures = nl.execute(requests)
    assert len(nl.sock.sent) == 2 and failures[0][:2] == (2, 2)


def test_query_answers_records_or_errno():
    neigh = wire.neigh_body(socket.AF_INET, 7, wire.NUD_PERMANENT, 0, GW, MAC)
    nl = netlink([message(wire.RTM_NEWNEIGH, 100, neigh) + ack(101, 2)])
    answers = nl.query([('x', wire.RTM_GETNEIGH, wire.parse_neigh, b''), ('y', wire.RTM_GETNEIGH, wire.parse_neigh, b'')])
    assert answers['x'].lladdr == MAC and answers['y'] == 2


def test_a_dump_that_fails_part_way_raises_with_the_errno_of_its_done():
    # The kernel reports a dump that failed after it began (-EBUSY, -ENOBUFS ...) in NLMSG_DONE's errno.
    neigh = wire.neigh_body(socket.AF_INET, 7, wire.NUD_PERMANENT, 0, GW, MAC)
    nl = netlink([message(wire.RTM_NEWNEIGH, 100, neigh, wire.NLM_F_MULTI) + message(wire.NLMSG_DONE, 100, struct.pack('=i', -16))])
    with pytest.raises(wire.NetlinkFailure, match='dump failed: Device or resource busy') as failed:
        nl.dump_neighbours(socket.AF_INET)
    assert failed.value.code == 16
