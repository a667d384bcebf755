# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Reconcile the remote peers of one VTEP: neighbour, FDB entry and on-link route per peer.

desired peers -> dump the kernel (raw netlink) -> diff -> batched apply in three phases
(route removals; neighbour/FDB changes; route additions) -> dump again to verify.

Ownership (see docs/netlink.md):
- routes: protocol ROUTE_PROTOCOL, device = our VTEP, table main;
- neighbours: permanent entries on our VTEP;
- FDB entries: permanent, self, unicast entries on our VTEP.
Anything else is foreign: never removed, never replaced; a foreign route on a peer's
subnet is an error naming it. The wanted peers and the kernel's view of them are _netlink_peer_state's.
"""

from __future__ import annotations

import contextlib
import socket

from ansible_collections.overlay.mesh.plugins.module_utils import _host
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_compat as compat
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_links as links
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_validate as validate
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_wire as wire
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_changes import ChangeSet, EngineError
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_objects import (
    describe_route, fdb_obj, mac_bytes, neigh_obj, route_obj, state_name)
# the wanted peers and the kernel's view of them (importable from here too, as before the split)
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_peer_state import (  # noqa: F401 pylint: disable=unused-import
    _FAMILY, KernelView, Peer, TargetedView, _owned_fdb, _owned_neigh, normalise_peers)

_ROUTE_ADD = wire.NLM_F_CREATE | wire.NLM_F_EXCL
# Up to this many changes are read back with one get per object; more with a full dump.
VERIFY_TARGETED_MAX = 300
_REPLACE = wire.NLM_F_CREATE | wire.NLM_F_REPLACE


class PeerReconciler(object):
    """Plan and apply the peers of one VTEP.  ``vtep`` is a dict from _netlink_links.read_link()."""

    def __init__(self, nl, vtep, protocol=validate.ROUTE_PROTOCOL, devnames=None):
        self.nl = nl
        self.vtep = vtep
        self.ifindex = vtep['index']
        self.dev = vtep['name']
        self.protocol = protocol
        self.devnames = devnames or {}

    # ---- planning -------------------------------------------------------------------------
    def plan(self, peers, state='present', exclusive=False, with_current=False):
        """A ChangeSet whose changes carry (phase, peer, msg_type, flags, body) in ``run``."""
        if self.vtep.get('kind') != 'vxlan':
            raise validate.ValidationError('device %s is a %s device, not a VXLAN VTEP' % (self.dev, self.vtep.get('kind') or 'physical'))
        view = KernelView(self.nl, self.ifindex)
        changes = ChangeSet()
        if with_current:
            changes.current = self._owned_objects(view)
        if state == 'present':
            self._check_underlay_family(peers)
            conflicts = self._plan_present(view, peers, changes)
            if conflicts:
                raise EngineError('route(s) not owned by overlay.mesh (protocol %d on %s) already exist for peer subnet(s): %s;'
                                  ' remove them or change the peers' % (self.protocol, self.dev, '; '.join(conflicts)))
            if exclusive:
                self._plan_purge(view, peers, changes)
        else:
            self._plan_absent(view, peers, changes)
        return changes

    def plan_targeted(self, present, absent):
        """A ChangeSet for some peers only: ``present`` added or updated, ``absent`` taken away (what they have
        that no present peer keeps: a peer whose MAC changed keeps its route and neighbour, loses its old
        FDB entry). Reads only the objects of these peers (TargetedView)."""
        if self.vtep.get('kind') != 'vxlan':
            raise validate.ValidationError('device %s is a %s device, not a VXLAN VTEP' % (self.dev, self.vtep.get('kind') or 'physical'))
        view = TargetedView(self.nl, self.ifindex, list(present) + list(absent))
        changes = ChangeSet()
        self._check_underlay_family(present)
        conflicts = self._plan_present(view, present, changes)
        if conflicts:
            raise EngineError('route(s) not owned by overlay.mesh (protocol %d on %s) already exist for peer subnet(s): %s'
                              % (self.protocol, self.dev, '; '.join(conflicts)))
        kept = set(change.key for change in changes.changes)
        kept.update(('neighbour', (p.family, p.vtep_bytes)) for p in present)
        kept.update(('fdb', p.mac_bytes) for p in present)
        kept.update(('route', (p.family, p.dst_bytes, p.subnet.prefixlen)) for p in present)
        gone = ChangeSet()
        self._plan_absent(view, absent, gone)
        changes.changes += [change for change in gone.changes if change.key[:2] not in kept]
        return changes

    def reconcile_targeted(self, present, absent, check_mode=False):
        """plan_targeted(), applied (unless check_mode) and read back; the ChangeSet."""
        changes = self.plan_targeted(present, absent)
        if check_mode or not changes.changed:
            return changes
        self.apply(changes)
        wrong = self._verify_targeted(changes)
        if wrong:
            raise EngineError('VTEP %s: reading back, the kernel did not keep %d change(s), for example %s'
                              % (self.dev, len(wrong), wrong[0]))
        return changes

    def _check_underlay_family(self, peers):
        local = self.vtep.get('vxlan', {}).get('local')
        if not local:
            return
        version = 6 if ':' in local else 4
        for peer in peers:
            if peer.underlay.version != version:
                raise validate.ValidationError(
                    'peer %s: underlay %s is IPv%d but VTEP %s has the IPv%d local address %s; the kernel refuses'
                    ' FDB destinations of another family (EAFNOSUPPORT)'
                    % (peer.subnet, peer.underlay, peer.underlay.version, self.dev, version, local))

    def _plan_present(self, view, peers, changes):
        dev, ifindex, proto = self.dev, self.ifindex, self.protocol
        conflicts = []
        fdb_planned = set()
        for peer in peers:
            family = peer.family
            # neighbour: peer VTEP address -> peer VTEP MAC, permanent
            key = (family, peer.vtep_bytes)
            rec = view.neigh.get(key)
            if rec is None or rec.lladdr != peer.mac_bytes or not rec.state & wire.NUD_PERMANENT:
                body = wire.neigh_body(family, ifindex, wire.NUD_PERMANENT, 0, peer.vtep_bytes, peer.mac_bytes)
                obj = neigh_obj(dev, peer.vtep_bytes, peer.mac_bytes)
                before = None if rec is None else neigh_obj(dev, rec.dst, rec.lladdr, state_name(rec.state))
                changes.add('added' if rec is None else 'updated', ('neighbour', key), obj, before,
                            (1, peer, wire.RTM_NEWNEIGH, _REPLACE, body))
            # FDB: peer VTEP MAC -> underlay address, self, permanent (once per MAC: both families share it)
            if peer.mac_bytes not in fdb_planned:
                fdb_planned.add(peer.mac_bytes)
                self._plan_fdb(view, peer, changes)
            # route: subnet via the peer VTEP address, onlink, our protocol
            rkey = (family, peer.dst_bytes, peer.subnet.prefixlen)
            ours = []
            for rec in view.routes.get(rkey, ()):
                # our protocol is ours on any device: a direct route of ours (host-gw, direct
                # routing) for a peer that now goes through the VTEP is replaced
                if rec.protocol == proto:
                    ours.append(rec)
                else:
                    conflicts.append(describe_route(rec, self.devnames))
            obj = route_obj(dev, family, peer.dst_bytes, peer.subnet.prefixlen, peer.vtep_bytes, proto)
            if not ours:
                body = wire.route_body(family, peer.dst_bytes, peer.subnet.prefixlen, proto, flags=wire.RTNH_F_ONLINK,
                                       gateway=peer.vtep_bytes, oif=ifindex)
                changes.add('added', ('route', rkey), obj, None, (2, peer, wire.RTM_NEWROUTE, _ROUTE_ADD, body))
                continue
            first = ours[0]
            if (first.gateway != peer.vtep_bytes or not first.flags & wire.RTNH_F_ONLINK or first.rtype != wire.RTN_UNICAST
                    or first.scope != wire.RT_SCOPE_UNIVERSE or first.oif != ifindex):
                body = wire.route_body(family, peer.dst_bytes, peer.subnet.prefixlen, proto, flags=wire.RTNH_F_ONLINK,
                                       gateway=peer.vtep_bytes, oif=ifindex, priority=first.priority)
                before = route_obj(self.devnames.get(first.oif, dev), family, first.dst, first.dst_len, first.gateway,
                                   first.protocol, bool(first.flags & wire.RTNH_F_ONLINK))
                changes.add('updated', ('route', rkey), obj, before, (2, peer, wire.RTM_NEWROUTE, _REPLACE, body))
            for extra in ours[1:]:
                self._remove_route(extra, changes, key_suffix=extra.priority)
        return conflicts

    def _plan_fdb(self, view, peer, changes):
        dev, ifindex = self.dev, self.ifindex
        entries = view.fdb.get(peer.mac_bytes, [])
        dsts = [rec.dst for rec in entries]
        key = ('fdb', peer.mac_bytes)
        obj = fdb_obj(dev, peer.mac_bytes, peer.underlay_bytes)
        permanent = bool(entries) and bool(entries[0].state & wire.NUD_PERMANENT)
        if permanent and dsts == [peer.underlay_bytes]:
            return
        if permanent and peer.underlay_bytes in dsts:
            extras = dsts              # right entry, plus stray remotes
        else:
            body = wire.neigh_body(wire.AF_BRIDGE, ifindex, wire.NUD_PERMANENT, wire.NTF_SELF, peer.underlay_bytes,
                                   peer.mac_bytes)
            before = fdb_obj(dev, peer.mac_bytes, dsts[0], state_name(entries[0].state)) if entries else None
            changes.add('updated' if entries else 'added', key, obj, before, (1, peer, wire.RTM_NEWNEIGH, _REPLACE, body))
            # replace rewrites the first remote, unless the wanted one is already among them
            extras = dsts if peer.underlay_bytes in dsts else dsts[1:]
        for dst in extras:
            if dst is not None and dst != peer.underlay_bytes:
                body = wire.neigh_body(wire.AF_BRIDGE, ifindex, 0, wire.NTF_SELF, dst, peer.mac_bytes)
                changes.add('removed', ('fdb', peer.mac_bytes, dst), fdb_obj(dev, peer.mac_bytes, dst), None,
                            (1, peer, wire.RTM_DELNEIGH, 0, body))

    def _remove_route(self, rec, changes, key_suffix=None):
        body = wire.route_body(rec.family, rec.dst, rec.dst_len, self.protocol, scope=wire.RT_SCOPE_NOWHERE, rtype=0,
                               oif=rec.oif, priority=rec.priority)
        key = ('route', (rec.family, rec.dst, rec.dst_len))
        if key_suffix is not None:
            key = key + (key_suffix,)
        obj = route_obj(self.dev, rec.family, rec.dst, rec.dst_len, rec.gateway, rec.protocol,
                        bool(rec.flags & wire.RTNH_F_ONLINK))
        changes.add('removed', key, obj, None, (0, None, wire.RTM_DELROUTE, 0, body))

    def _remove_neigh(self, rec, changes):
        body = wire.neigh_body(rec.family, self.ifindex, 0, 0, rec.dst)
        changes.add('removed', ('neighbour', (rec.family, rec.dst)), neigh_obj(self.dev, rec.dst, rec.lladdr, state_name(rec.state)),
                    None, (1, None, wire.RTM_DELNEIGH, 0, body))

    def _remove_fdb(self, mac, entries, changes):
        body = wire.neigh_body(wire.AF_BRIDGE, self.ifindex, 0, wire.NTF_SELF, None, mac)
        for rec in entries:
            changes.add('removed', ('fdb', mac) if rec is entries[0] else ('fdb', mac, rec.dst),
                        fdb_obj(self.dev, mac, rec.dst, state_name(rec.state)), None,
                        (1, None, wire.RTM_DELNEIGH, 0, body) if rec is entries[0] else None)

    def _owned_routes(self, view):
        for recs in view.routes.values():
            for rec in recs:
                if rec.protocol == self.protocol and rec.oif == self.ifindex:
                    yield rec

    def _plan_purge(self, view, peers, changes):
        vtep_addresses = set((p.family, p.vtep_bytes) for p in peers)
        macs = set(p.mac_bytes for p in peers)
        subnets = set((p.family, p.dst_bytes, p.subnet.prefixlen) for p in peers)
        for rec in self._owned_routes(view):
            if (rec.family, rec.dst, rec.dst_len) not in subnets:
                self._remove_route(rec, changes)
        for key, rec in view.neigh.items():
            if key not in vtep_addresses and _owned_neigh(rec):
                self._remove_neigh(rec, changes)
        for mac, entries in view.fdb.items():
            if mac not in macs and _owned_fdb(mac, entries):
                self._remove_fdb(mac, entries, changes)

    def _plan_absent(self, view, peers, changes):
        for peer in peers:
            ours = [rec for rec in view.routes.get((peer.family, peer.dst_bytes, peer.subnet.prefixlen), ())
                    if rec.protocol == self.protocol and rec.oif == self.ifindex]
            for index, rec in enumerate(ours):
                self._remove_route(rec, changes, key_suffix=rec.priority if index else None)
            rec = view.neigh.get((peer.family, peer.vtep_bytes))
            if rec is not None and _owned_neigh(rec):
                self._remove_neigh(rec, changes)
            entries = view.fdb.get(peer.mac_bytes)
            if entries and _owned_fdb(peer.mac_bytes, entries):
                self._remove_fdb(peer.mac_bytes, entries, changes)

    def _owned_objects(self, view):
        dev = self.dev
        current = {}
        for rec in self._owned_routes(view):
            current[('route', (rec.family, rec.dst, rec.dst_len))] = route_obj(
                dev, rec.family, rec.dst, rec.dst_len, rec.gateway, rec.protocol, bool(rec.flags & wire.RTNH_F_ONLINK))
        for key, rec in view.neigh.items():
            if _owned_neigh(rec):
                current[('neighbour', key)] = neigh_obj(dev, rec.dst, rec.lladdr, state_name(rec.state))
        for mac, entries in view.fdb.items():
            if _owned_fdb(mac, entries):
                current[('fdb', mac)] = fdb_obj(dev, mac, entries[0].dst, state_name(entries[0].state))
                for rec in entries[1:]:
                    current[('fdb', mac, rec.dst)] = fdb_obj(dev, mac, rec.dst, state_name(rec.state))
        return current

    # ---- applying -----------------------------------------------------------------------------
    def apply(self, changes):
        """Send the planned changes in three batched phases; raise EngineError listing failures.

        A peer whose neighbour or FDB entry failed gets no route, so the kernel never ARPs
        for its VTEP address.
        """
        failed_peers = set()
        errors = []
        for phase in (0, 1, 2):
            requests = []
            for change in changes.changes:
                if change.run is None or change.run[0] != phase:
                    continue
                _phase, peer, msg_type, flags, body = change.run
                if phase == 2 and peer is not None and id(peer) in failed_peers:
                    errors.append('%s: skipped because the neighbour or FDB entry of peer %s failed'
                                  % (_label(change), peer.subnet))
                    continue
                requests.append((change, msg_type, flags, body))
            for change, code, text in self.nl.execute(requests):
                if phase == 1 and change.action == 'removed' and code == 2:
                    continue  # already gone (ENOENT): someone removed it meanwhile
                if phase == 0 and code == 3:
                    continue  # route already gone (ESRCH)
                if change.run[1] is not None:
                    failed_peers.add(id(change.run[1]))
                errors.append('%s: errno %d (%s)' % (_label(change), code, text))
        if errors:
            shown = errors[:20]
            if len(errors) > 20:
                shown.append('... and %d more' % (len(errors) - 20))
            raise EngineError('VTEP %s: %d change(s) failed: %s' % (self.dev, len(errors), '; '.join(shown)))

    def reconcile(self, peers, state='present', exclusive=False, check_mode=False, with_current=False, verify=True):
        """Plan, apply (unless check_mode) and verify by reading back.  Returns the ChangeSet."""
        if state == 'present' and not self.vtep.get('up') and not check_mode:
            raise EngineError('VTEP %s is down: on-link routes cannot be added to a down device (ENETDOWN) and taking a'
                              ' device down flushes its neighbours; bring it up first (overlay.mesh.vxlan does)' % self.dev)
        changes = self.plan(peers, state, exclusive, with_current)
        if check_mode or not changes.changed:
            return changes
        self.apply(changes)
        if verify:
            self.verify(peers, state, exclusive, changes)
        return changes

    # ---- reading back -------------------------------------------------------------------------
    def verify(self, peers, state, exclusive, changes):
        """Read back what was changed: one get per object for a few changes, else a full re-plan."""
        if len(changes) <= VERIFY_TARGETED_MAX and all(len(c.key) == 2 for c in changes.changes):
            wrong = self._verify_targeted(changes)
        else:
            wrong = [_label(c) for c in self.plan(peers, state, exclusive).changes]
        if wrong:
            raise EngineError('VTEP %s: reading back, the kernel did not keep %d change(s), for example %s'
                              % (self.dev, len(wrong), wrong[0]))

    def _verify_targeted(self, changes):
        queries = []
        for change in changes.changes:
            kind, key = change.key
            if kind == 'route':
                family, dst, _plen = key
                body = wire.route_query_body(family, dst)
                queries.append((change, wire.RTM_GETROUTE, wire.parse_route, body))
            elif kind == 'neighbour':
                family, dst = key
                queries.append((change, wire.RTM_GETNEIGH, wire.parse_neigh, wire.neigh_body(family, self.ifindex, 0, 0, dst)))
            else:
                body = wire.neigh_body(wire.AF_BRIDGE, self.ifindex, 0, wire.NTF_SELF, None, key)
                queries.append((change, wire.RTM_GETNEIGH, wire.parse_neigh, body))
        answers = self.nl.query(queries)
        return [_label(change) for change, _t, _b, _p in queries if not self._as_planned(change, answers.get(change))]

    def _as_planned(self, change, rec):
        kind, key = change.key
        present = change.action != 'removed'
        obj = change.obj
        if isinstance(rec, int) or rec is None:
            return not present
        if kind == 'route':
            family, dst, plen = key
            ours = rec.dst == dst and rec.dst_len == plen and rec.protocol == self.protocol and rec.oif == self.ifindex
            if not present:
                return not ours
            return ours and rec.gateway == socket.inet_pton(family, obj['gateway']) and bool(rec.flags & wire.RTNH_F_ONLINK)
        if not rec.state & wire.NUD_PERMANENT:
            return not present
        if kind == 'neighbour':
            return present and rec.lladdr == mac_bytes(obj['lladdr'])
        underlay = socket.inet_pton(socket.AF_INET6 if ':' in obj['dst'] else socket.AF_INET, obj['dst'])
        return present and rec.dst == underlay


def _label(change):
    obj = change.obj
    if obj['type'] == 'route':
        return 'route %s via %s dev %s' % (obj['dst'], obj['gateway'], obj['dev'])
    if obj['type'] == 'neighbour':
        return 'neighbour %s lladdr %s dev %s' % (obj['address'], obj['lladdr'], obj['dev'])
    return 'fdb %s dst %s dev %s self' % (obj['lladdr'], obj['dst'], obj['dev'])


# ---- entry points for modules and the boot-time unit -------------------------------------------
@contextlib.contextmanager
def open_vtep(name):
    """(NetlinkRoute, VTEP link dict or None, ifindex -> name) for the VTEP called name."""
    ipr = compat.open_iproute()
    try:
        vtep = links.read_link(ipr, name)
        names = links.link_names(ipr)
    finally:
        ipr.close()
    nl = wire.NetlinkRoute()
    try:
        yield nl, vtep, names
    finally:
        nl.close()


def plan_without_vtep(dev, peers, protocol=validate.ROUTE_PROTOCOL):
    """What would be added on a VTEP that does not exist yet (check mode before overlay.mesh.vxlan ran)."""
    changes = ChangeSet()
    macs = set()
    for peer in peers:
        changes.add('added', ('neighbour', (peer.family, peer.vtep_bytes)), neigh_obj(dev, peer.vtep_bytes, peer.mac_bytes))
        if peer.mac_bytes not in macs:
            macs.add(peer.mac_bytes)
            changes.add('added', ('fdb', peer.mac_bytes), fdb_obj(dev, peer.mac_bytes, peer.underlay_bytes))
        changes.add('added', ('route', (peer.family, peer.dst_bytes, peer.subnet.prefixlen)),
                    route_obj(dev, peer.family, peer.dst_bytes, peer.subnet.prefixlen, peer.vtep_bytes, protocol))
    return changes


def ensure_rt_protos(path, protocol=validate.ROUTE_PROTOCOL, check_mode=False):
    """Name the route protocol for iproute2 in path (rt_protos.d), atomically, only when it differs."""
    changes = ChangeSet()
    if not path:
        return changes
    content = '# Written by overlay.mesh: routes of its peers carry this protocol number.\n%d\t%s\n' % (
        protocol, validate.ROUTE_PROTOCOL_NAME)
    try:
        with open(path) as handle:
            current = handle.read()
    except (IOError, OSError):
        current = None
    if current == content:
        return changes
    obj = {'type': 'file', 'path': path, 'content': content}
    if current is not None:
        changes.current[('file', path)] = {'type': 'file', 'path': path, 'content': current}
    changes.add('added' if current is None else 'updated', ('file', path), obj)
    if check_mode:
        return changes
    _host.write_atomic(path, content)
    return changes


def reconcile_peers(params, check_mode=False, with_current=False):
    """Reconcile the peers of one VTEP (the peers module's parameters).

    Returns (changesets, route protocol, warnings)."""
    validate.ifname(params['vtep'], 'VTEP name')
    protocol = validate.route_protocol(params.get('route_protocol', validate.ROUTE_PROTOCOL))
    peers = normalise_peers(params['peers'])
    changesets = [ensure_rt_protos(params.get('rt_protos_file'), protocol, check_mode)]
    warnings = []
    with open_vtep(params['vtep']) as (nl, vtep, names):
        if vtep is None:
            if params['state'] == 'present' and not check_mode:
                raise validate.ValidationError('VTEP %s does not exist; create it first (overlay.mesh.vxlan)' % params['vtep'])
            changes = ChangeSet()
            if params['state'] == 'present':
                warnings.append('VTEP %s does not exist (yet): reporting every peer as to be added' % params['vtep'])
                changes = plan_without_vtep(params['vtep'], peers, protocol)
        else:
            reconciler = PeerReconciler(nl, vtep, protocol, names)
            changes = reconciler.reconcile(peers, params['state'], params.get('exclusive', False), check_mode=check_mode,
                                           with_current=with_current)
    changesets.append(changes)
    return changesets, protocol, warnings
