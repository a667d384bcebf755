# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Raw rtnetlink for the bulk objects of a mesh: neighbours, FDB entries and routes.

pyroute2 spends about 0.3 ms of Python per message (encode + parse), which is 6 s for the
15 000 objects of a 5000-peer mesh.  This module packs those three message types with
``struct``, sends them a few hundred per ``send()`` and parses dumps in place, which is an
order of magnitude faster.  Links and addresses (a handful of objects) stay with pyroute2.

Only the standard library is used: this file also runs outside Ansible (boot-time unit).
"""

from __future__ import annotations

import dataclasses
import os
import socket
import struct

# Framing, attributes and the socket are the netlink core's; names other modules take from here stay here.
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_core import (  # noqa: F401 pylint: disable=unused-import
    NETLINK_ROUTE, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_EXCL, NLM_F_MULTI,
    NLM_F_REPLACE, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, NLMSGERR_ATTR_MSG, NetlinkFailure, NetlinkSocket,
    attr, attr_u32, error_code, error_text, iter_attrs,
)

# ---- constants (linux/rtnetlink.h, linux/neighbour.h) ---------------------------------------
RTM_NEWROUTE = 24
RTM_DELROUTE = 25
RTM_GETROUTE = 26
RTM_NEWNEIGH = 28
RTM_DELNEIGH = 29
RTM_GETNEIGH = 30

AF_BRIDGE = 7

NDA_DST = 1
NDA_LLADDR = 2

NUD_NOARP = 0x40
NUD_PERMANENT = 0x80
NTF_SELF = 0x02
NTF_MASTER = 0x04
NTF_EXT_LEARNED = 0x10

RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PRIORITY = 6
RTA_TABLE = 15
RTA_VIA = 18  # a next hop of the other family (an IPv4 route via an IPv6 address, RFC 5549)

RTNH_F_ONLINK = 0x4
RTM_F_FIB_MATCH = 0x2000
RT_TABLE_MAIN = 254
RTN_UNICAST = 1
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_NOWHERE = 255

_NDMSG = struct.Struct('=BxxxiHBB')   # ndmsg: family, ifindex, state, flags, type
_RTMSG = struct.Struct('=BBBBBBBBI')  # rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags
_U32 = struct.Struct('=I')
_WIDTH = {socket.AF_INET: 4, socket.AF_INET6: 16}  # address bytes by family

# How many messages go into one send(), and the byte ceiling of one send (well under
# the default socket send buffer); acks of one chunk are drained before the next.
CHUNK_MESSAGES = 512
CHUNK_BYTES = 96 * 1024


# ---- message bodies (everything after the nlmsghdr) --------------------------------------
def neigh_body(family, ifindex, state, flags, dst=None, lladdr=None):
    """An ndmsg with NDA_DST / NDA_LLADDR: a neighbour (AF_INET/6) or an FDB entry (AF_BRIDGE)."""
    body = _NDMSG.pack(family, ifindex, state, flags, 0)
    if lladdr is not None:
        body += attr(NDA_LLADDR, lladdr)
    if dst is not None:
        body += attr(NDA_DST, dst)
    return body


def route_body(family, dst, dst_len, protocol, table=RT_TABLE_MAIN, scope=RT_SCOPE_UNIVERSE,
               rtype=RTN_UNICAST, flags=0, gateway=None, oif=None, priority=None):
    """An rtmsg with RTA_DST, RTA_GATEWAY, RTA_OIF, RTA_PRIORITY and RTA_TABLE as given.

    A gateway of the other family (16 bytes for an IPv4 route) goes in RTA_VIA, with its family."""
    body = _RTMSG.pack(family, dst_len, 0, 0, table if table < 256 else 252, protocol, scope, rtype, flags)
    body += attr_u32(RTA_TABLE, table)
    if dst_len:
        body += attr(RTA_DST, dst)
    if gateway is not None and len(gateway) == _WIDTH[family]:
        body += attr(RTA_GATEWAY, gateway)
    elif gateway is not None:
        body += attr(RTA_VIA, struct.pack('=H', socket.AF_INET6 if len(gateway) == 16 else socket.AF_INET) + gateway)
    if oif is not None:
        body += attr_u32(RTA_OIF, oif)
    if priority is not None:
        body += attr_u32(RTA_PRIORITY, priority)
    return body


def route_query_body(family, dst):
    """An RTM_GETROUTE get (not dump) answering with the route the kernel matches for dst."""
    return _RTMSG.pack(family, len(dst) * 8, 0, 0, 0, 0, 0, 0, RTM_F_FIB_MATCH) + attr(RTA_DST, dst)


# ---- parsed dump records ------------------------------------------------------------------
def _record(name, fields, doc):
    """A record class with __slots__ and an __init__ taking the fields in order (dataclasses write the code a hand-made
    one would have, as fast; identity equality, as plain objects)."""
    fields = tuple(fields.split())
    return dataclasses.make_dataclass(name, fields, namespace={'__slots__': fields, '__doc__': doc, '__module__': __name__},
                                      eq=False)


NeighRecord = _record('NeighRecord', 'family ifindex state flags dst lladdr',
                      """A neighbour or an FDB entry as the kernel reports it (addresses as packed bytes).""")
RouteRecord = _record('RouteRecord', 'family dst dst_len table protocol scope rtype flags gateway oif priority',
                      """A route as the kernel reports it (addresses as packed bytes, dst b'' for default).""")


def parse_neigh(data, offset, end):
    family, ifindex, state, flags, _ntype = _NDMSG.unpack_from(data, offset)
    dst = lladdr = None
    for atype, start, stop in iter_attrs(data, offset + 12, end):
        if atype == NDA_DST:
            dst = bytes(data[start:stop])
        elif atype == NDA_LLADDR:
            lladdr = bytes(data[start:stop])
    return NeighRecord(family, ifindex, state, flags, dst, lladdr)


def parse_route(data, offset, end):
    family, dst_len, _src_len, _tos, table, protocol, scope, rtype, flags = _RTMSG.unpack_from(data, offset)
    dst = b''
    gateway = oif = priority = None
    for atype, start, stop in iter_attrs(data, offset + 12, end):
        if atype == RTA_DST:
            dst = bytes(data[start:stop])
        elif atype == RTA_GATEWAY:
            gateway = bytes(data[start:stop])
        elif atype == RTA_VIA:
            gateway = bytes(data[start + 2:stop])  # after rtvia_family: the address, its width tells the family
        elif atype == RTA_OIF:
            oif = _U32.unpack_from(data, start)[0]
        elif atype == RTA_TABLE:
            table = _U32.unpack_from(data, start)[0]
        elif atype == RTA_PRIORITY:
            priority = _U32.unpack_from(data, start)[0]
    return RouteRecord(family, dst, dst_len, table, protocol, scope, rtype, flags, gateway, oif, priority)


class NetlinkRoute(NetlinkSocket):
    """A NETLINK_ROUTE socket in the current network namespace: dumps and batched requests."""

    def __init__(self, rcvbuf=16 * 1024 * 1024):
        super(NetlinkRoute, self).__init__(NETLINK_ROUTE, buffer_size=rcvbuf)

    # ---- dumps -------------------------------------------------------------------------
    def dump_records(self, msg_type, body, parse):
        """Dump and parse every reply message (restarted when the kernel flags it as interrupted)."""
        try:
            return self.dump(lambda: self.message(msg_type, NLM_F_DUMP, body), parse)
        except NetlinkFailure as failure:
            raise NetlinkFailure(failure.code, 'netlink dump failed: %s' % failure)

    def dump_neighbours(self, family):
        """Every neighbour (AF_INET, AF_INET6) or FDB entry (AF_BRIDGE) of the namespace."""
        return self.dump_records(RTM_GETNEIGH, _NDMSG.pack(family, 0, 0, 0, 0), parse_neigh)

    def dump_routes(self, family):
        """Every route of one family, all tables."""
        return self.dump_records(RTM_GETROUTE, _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0), parse_route)

    # ---- batched requests ----------------------------------------------------------------
    def _send_chunk(self, chunk, flags_of, tag_of):
        """Send one chunk of requests (body last in each); returns {seq: tag}."""
        pending = {}
        messages = []
        for request in chunk:
            messages.append(self.message(request[1], flags_of(request), request[-1]))
            pending[self.seq] = tag_of(request)
        self.sock.send(b''.join(messages))
        return pending

    def execute(self, requests):
        """Send (tag, msg_type, flags, body) requests in chunks, each acked.

        Returns a list of (tag, errno, text) for the requests the kernel refused; netlink
        batches are not atomic, every request is processed whatever happened to the others.
        """
        failures = []
        for chunk in _chunks(requests):
            pending = self._send_chunk(chunk, lambda r: r[2] | NLM_F_ACK, lambda r: r[0])
            for data, offset, length, mtype, flags, mseq in self.replies():
                if mtype != NLMSG_ERROR or mseq not in pending:
                    continue
                tag = pending.pop(mseq)
                code = error_code(data, offset)
                if code:
                    text = error_text(data, offset, offset + length, flags)
                    failures.append((tag, code, text or os.strerror(code)))
                if not pending:
                    break
        return failures

    def query(self, requests):
        """Send (tag, msg_type, parse, body) get-requests (not dumps) in chunks.

        Returns {tag: parsed record, or the errno (an int) the kernel answered with}.
        """
        answers = {}
        for chunk in _chunks(requests):
            pending = self._send_chunk(chunk, lambda r: 0, lambda r: (r[0], r[2]))
            for data, offset, length, mtype, _flags, mseq in self.replies():
                if mseq not in pending:
                    continue
                tag, parse = pending.pop(mseq)
                if mtype == NLMSG_ERROR:
                    answers[tag] = error_code(data, offset)
                else:
                    answers[tag] = parse(data, offset + 16, offset + length)
                if not pending:
                    break
        return answers


def _chunks(requests):
    """Split requests (body last in each) into sends of at most CHUNK_MESSAGES / CHUNK_BYTES."""
    chunk = []
    size = 0
    for request in requests:
        if chunk and (len(chunk) >= CHUNK_MESSAGES or size >= CHUNK_BYTES):
            yield chunk
            chunk = []
            size = 0
        chunk.append(request)
        size += 16 + len(request[-1])
    if chunk:
        yield chunk
