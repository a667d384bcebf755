# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A tiny in-memory stand-in for the kernel's neighbour, FDB and route tables.

It understands exactly the messages the engine sends (parsing them with the engine's own
parsers) and answers dumps and gets with record objects, so that the diff logic can be
tested without root.  Semantics follow the kernel where the engine relies on them: route
deletes match protocol/oif/priority when given, FDB replace rewrites the first remote unless
the destination is already one of them, deleting an FDB entry without dst removes all remotes.
"""

from __future__ import annotations

import socket

from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_wire as wire

EEXIST, ENOENT, ESRCH = 17, 2, 3


class FakeKernel(object):
    def __init__(self):
        self.neigh = []    # NeighRecord (AF_INET/AF_INET6)
        self.fdb = []      # NeighRecord (AF_BRIDGE), list order = remote order
        self.routes = []   # RouteRecord
        self.fail = {}     # (msg_type, key bytes) -> errno to answer
        self.sent = []     # (msg_type, flags, record) in order

    # ---- helpers to set up state -----------------------------------------------------------
    def add_neigh(self, ifindex, dst, lladdr, state=wire.NUD_PERMANENT, family=socket.AF_INET):
        self.neigh.append(wire.NeighRecord(family, ifindex, state, 0, dst, lladdr))

    def add_fdb(self, ifindex, lladdr, dst, state=wire.NUD_PERMANENT, flags=wire.NTF_SELF):
        self.fdb.append(wire.NeighRecord(wire.AF_BRIDGE, ifindex, state, flags, dst, lladdr))

    def add_route(self, dst, dst_len, gateway, oif, protocol, flags=wire.RTNH_F_ONLINK, priority=None,
                  family=socket.AF_INET, table=wire.RT_TABLE_MAIN):
        self.routes.append(wire.RouteRecord(family, dst, dst_len, table, protocol, 0, wire.RTN_UNICAST, flags, gateway,
                                            oif, priority))

    # ---- the NetlinkRoute interface ---------------------------------------------------------
    def dump_neighbours(self, family):
        if family == wire.AF_BRIDGE:
            return list(self.fdb)
        return [rec for rec in self.neigh if rec.family == family]

    def dump_routes(self, family):
        return [rec for rec in self.routes if rec.family == family]

    def execute(self, requests):
        failures = []
        for tag, msg_type, flags, body in requests:
            code = self._handle(msg_type, flags, body)
            if code:
                failures.append((tag, code, 'fake errno %d' % code))
        return failures

    def query(self, requests):
        answers = {}
        for tag, msg_type, _parse, body in requests:
            if msg_type == wire.RTM_GETROUTE:
                rec = wire.parse_route(body, 0, len(body))
                match = self._route_lookup(rec.family, rec.dst)
                answers[tag] = match if match is not None else 101
            else:
                rec = wire.parse_neigh(body, 0, len(body))
                if rec.family == wire.AF_BRIDGE:
                    found = [r for r in self.fdb if r.ifindex == rec.ifindex and r.lladdr == rec.lladdr]
                else:
                    found = [r for r in self.neigh if r.ifindex == rec.ifindex and r.dst == rec.dst and r.family == rec.family]
                answers[tag] = found[0] if found else ENOENT
        return answers

    # ---- semantics ----------------------------------------------------------------------------
    def _route_lookup(self, family, dst):
        best = None
        for rec in self.routes:
            if rec.family != family or rec.table != wire.RT_TABLE_MAIN:
                continue
            if _in_prefix(dst, rec.dst, rec.dst_len) and (best is None or rec.dst_len > best.dst_len):
                best = rec
        return best

    def _handle(self, msg_type, flags, body):
        if msg_type in (wire.RTM_NEWNEIGH, wire.RTM_DELNEIGH):
            rec = wire.parse_neigh(body, 0, len(body))
            self.sent.append((msg_type, flags, rec))
            code = self.fail.get((msg_type, rec.dst if rec.family != wire.AF_BRIDGE else rec.lladdr))
            if code:
                return code
            if rec.family == wire.AF_BRIDGE:
                return self._fdb(msg_type, rec)
            return self._neigh(msg_type, rec)
        rec = wire.parse_route(body, 0, len(body))
        self.sent.append((msg_type, flags, rec))
        code = self.fail.get((msg_type, rec.dst))
        if code:
            return code
        return self._route(msg_type, flags, rec)

    def _neigh(self, msg_type, rec):
        same = [r for r in self.neigh if r.ifindex == rec.ifindex and r.dst == rec.dst and r.family == rec.family]
        if msg_type == wire.RTM_DELNEIGH:
            if not same:
                return ENOENT
            self.neigh.remove(same[0])
            return 0
        if same:
            same[0].lladdr, same[0].state = rec.lladdr, rec.state
        else:
            self.neigh.append(rec)
        return 0

    def _fdb(self, msg_type, rec):
        same = [r for r in self.fdb if r.ifindex == rec.ifindex and r.lladdr == rec.lladdr]
        if msg_type == wire.RTM_DELNEIGH:
            victims = [r for r in same if rec.dst is None or r.dst == rec.dst]
            if not victims:
                return ENOENT
            for victim in victims:
                self.fdb.remove(victim)
            return 0
        if not same:
            self.fdb.append(rec)
            return 0
        for r in same:
            r.state = rec.state
        if not any(r.dst == rec.dst for r in same):
            same[0].dst = rec.dst
        return 0

    def _route(self, msg_type, flags, rec):
        same = [r for r in self.routes if r.family == rec.family and r.dst == rec.dst and r.dst_len == rec.dst_len
                and r.table == rec.table]
        if msg_type == wire.RTM_DELROUTE:
            victims = [r for r in same if (not rec.protocol or r.protocol == rec.protocol)
                       and (rec.oif is None or r.oif == rec.oif)
                       and (rec.priority is None or r.priority == rec.priority)]
            if not victims:
                return ESRCH
            self.routes.remove(victims[0])
            return 0
        if flags & wire.NLM_F_REPLACE:
            for r in same:
                if r.priority == rec.priority:
                    self.routes[self.routes.index(r)] = rec
                    return 0
        elif flags & wire.NLM_F_EXCL and any(r.priority == rec.priority for r in same):
            return EEXIST
        self.routes.append(rec)
        return 0


def _in_prefix(addr, net, plen):
    if len(addr) != len(net or addr):
        return False
    a = int.from_bytes(addr, 'big')
    n = int.from_bytes(net or b'\0' * len(addr), 'big')
    shift = len(addr) * 8 - plen
    return (a >> shift) == (n >> shift) if plen else True
