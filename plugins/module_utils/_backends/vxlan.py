# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The vxlan backend: a kernel VXLAN VTEP and, per peer, a permanent neighbour, FDB entry and
on-link route (flannel's recipe).

Owns the VTEP's reconciler (also used by the overlay.mesh.vxlan module), its defaults (VNI 1,
UDP port 8472, device mesh.<VNI>), its overhead and its derived MAC. The peers are programmed by
the raw-netlink engine of _netlink_peers (also behind the overlay.mesh.peers module).
"""

from __future__ import annotations

import ipaddress

from ansible_collections.overlay.mesh.plugins.module_utils import _identity
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_links as links
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_peers as peers_engine
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_routes as routes
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_validate as validate
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_wire as wire
from ansible_collections.overlay.mesh.plugins.module_utils._backends.base import Backend as BaseBackend
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_changes import EngineError
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_compat import first, open_iproute

NAME = 'vxlan'
DEFAULT_VNI = 1
# The kernel's default VXLAN port (flannel's too); IANA's is 4789.
DEFAULT_PORT = 8472
# Outer headers: IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14; an IPv6 outer header is 20 more.
OVERHEAD = {4: 50, 6: 70}
# Attributes of a VXLAN device the kernel refuses to change in place (EOPNOTSUPP) or that
# this engine treats as identity: changing them means deleting and recreating the device.
VXLAN_IMMUTABLE = ('vni', 'port', 'local', 'underlay_device')


def default_device(vni):
    """mesh.<VNI>, as flannel's flannel.<VNI>."""
    return 'mesh.%d' % vni


class VxlanReconciler(links.LinkReconciler):
    """A flannel-style VTEP: learning off, explicit MAC, local address, underlay device."""

    kind = 'vxlan'
    extra_keys = ('vni', 'local', 'underlay_device', 'port', 'learning')
    # The VTEP's /128 is unique by construction (the node's own subnet): no DAD, usable at once.
    nodad = True

    def __init__(self, ipr, name, vni=None, local=None, underlay_device=None, port=DEFAULT_PORT,
                 learning=False, mac=None, mtu=None, address=None, recreate=False, state='present', recreate_moves=False):
        super(VxlanReconciler, self).__init__(ipr, name)
        self.recreate = recreate
        self.recreate_moves = recreate_moves
        self._names = None
        if state != 'present':
            return
        if vni is None or local is None or mac is None:
            raise validate.ValidationError('VTEP %s: vni, local and mac are required with state=present' % name)
        self.vni = validate.vni(vni, 'VTEP %s VNI' % name)
        self.port = validate.port(port, 'VTEP %s UDP port' % name)
        self.mac = validate.mac(mac, 'VTEP %s MAC' % name)
        self.local = validate.ip_address(local, 'VTEP %s local address' % name)
        self.learning = bool(learning)
        # one address, or one per family (a dual-stack overlay: the IPv4 and the IPv6 VTEP address)
        self.addresses = [validate.host_address(one, 'VTEP %s overlay address' % name)
                          for one in (address if isinstance(address, (list, tuple)) else [address]) if one]
        self.underlay_device, underlay_mtu = self._resolve_underlay(underlay_device)
        if mtu is None:
            self.mtu = underlay_mtu - OVERHEAD[self.local.version]
        else:
            self.mtu = validate.mtu(mtu, 'VTEP %s MTU' % name)

    def _resolve_underlay(self, underlay_device):
        holders = [index for index, interface, _scope in links.read_addresses(self.ipr) if interface.ip == self.local]
        if not holders:
            raise EngineError('VTEP %s: local address %s is not configured on any interface of this host'
                              % (self.name, self.local))
        if underlay_device:
            validate.ifname(underlay_device, 'VTEP %s underlay device' % self.name)
            link = links.read_link(self.ipr, underlay_device)
            if link is None:
                raise EngineError('VTEP %s: underlay device %s does not exist' % (self.name, underlay_device))
        else:
            link = links.link_from_message(first(self.ipr.link('get', index=holders[0])))
        self.underlay_index = link['index']
        return link['name'], link['mtu']

    def _name_of(self, index):
        if self._names is None:
            self._names = links.link_names(self.ipr)
        return self._names.get(index, 'if%s' % index)

    def current_view(self, link):
        view = dict(link)
        vxlan = link.get('vxlan')
        if vxlan:
            view.update({'vni': vxlan['vni'], 'local': vxlan['local'], 'port': vxlan['port'],
                         'learning': vxlan['learning'],
                         'underlay_device': self._name_of(vxlan['link']) if vxlan['link'] else None})
        return view

    def desired_link(self):
        return {'name': self.name, 'kind': 'vxlan', 'mtu': self.mtu, 'mac': self.mac, 'up': True, 'vni': self.vni,
                'local': str(self.local), 'underlay_device': self.underlay_device, 'port': self.port,
                'learning': self.learning}

    def desired_addresses(self):
        return [ipaddress.ip_interface('%s/%d' % (one, one.max_prefixlen)) for one in self.addresses]

    def immutable_differences(self, link):
        vxlan = link['vxlan']
        current = {'vni': vxlan['vni'], 'port': vxlan['port'],
                   'local': str(ipaddress.ip_address(vxlan['local'])) if vxlan['local'] else None,
                   'underlay_device': vxlan['link']}
        wanted = {'vni': self.vni, 'port': self.port, 'local': str(self.local), 'underlay_device': self.underlay_index}
        diffs = []
        for key in VXLAN_IMMUTABLE:
            if current[key] == wanted[key]:
                continue
            if key == 'underlay_device':
                diffs.append((key, 'underlay_device is %s in the kernel, %s requested'
                              % (self._name_of(current[key]) if current[key] else 'unset', self.underlay_device)))
            else:
                diffs.append((key, '%s is %s in the kernel, %s requested' % (key, current[key], wanted[key])))
        return diffs

    def needs_recreate(self, link):
        found = self.immutable_differences(link)
        # A host that moved (new underlay address or interface) gets its VTEP recreated when
        # recreate_moves is set (the node apply reprograms its peers in the same run).
        diffs = [text for key, text in found if not (self.recreate_moves and key in ('local', 'underlay_device'))]
        if diffs and not self.recreate:
            raise EngineError('VTEP %s: %s; the kernel cannot change these attributes of a VXLAN device in place'
                              ' (EOPNOTSUPP). Allow deleting and recreating it (option recreate of overlay.mesh.vxlan,'
                              ' backend.recreate of overlay.mesh.node, role variable mesh_node_vxlan_recreate); its'
                              ' neighbour, FDB entries and routes are dropped until the peers are programmed again'
                              % (self.name, '; '.join(diffs)))
        return bool(found)

    def create(self):
        kwargs = {'ifname': self.name, 'kind': 'vxlan', 'vxlan_id': self.vni, 'vxlan_link': self.underlay_index,
                  'vxlan_port': self.port, 'vxlan_learning': 1 if self.learning else 0, 'address': self.mac,
                  'mtu': self.mtu}
        kwargs['vxlan_local6' if self.local.version == 6 else 'vxlan_local'] = str(self.local)
        what = 'creating VXLAN device %s (VNI %s, local %s, dev %s, MTU %s)' % (
            self.name, self.vni, self.local, self.underlay_device, self.mtu)
        try:
            links.call(what, self.ipr.link, 'add', **kwargs)
        except links.ObjectAppeared:
            if links.read_link(self.ipr, self.name) is not None:
                raise  # another run created it: read again and reconcile
            # EEXIST for a device that does not exist: another VXLAN device has this VNI and port
            users = [link['name'] for link in (links.link_from_message(msg) for msg in self.ipr.get_links())
                     if link.get('vxlan') and link['vxlan']['vni'] == self.vni and link['vxlan']['port'] == self.port]
            raise EngineError('%s failed: VNI %s on port %s is already used by %s; one VNI and port per host'
                              % (what, self.vni, self.port, ', '.join(users) or 'another VXLAN device'))
        self._set('bringing up', state='up')

    def compare(self, link, desired, changes):
        diffs, steps = self.compare_common(link, desired)
        if link['vxlan']['learning'] != self.learning:
            diffs['learning'] = self.learning
            # VXLAN data goes alone in its own request: no MTU or MAC beside it
            steps.insert(0, lambda: self._set('setting learning %s' % ('on' if self.learning else 'off'), kind='vxlan',
                                              vxlan_learning=1 if self.learning else 0))
        self.add_update(link, diffs, steps, changes)


def reconcile_vtep(params, check_mode=False):
    """Reconcile one VTEP (the vxlan module's parameters); returns its ChangeSet."""
    ipr = open_iproute()
    try:
        vtep = VxlanReconciler(ipr, params['name'], vni=params.get('vni'), local=params.get('local'),
                               underlay_device=params.get('underlay_device'), port=params.get('port', DEFAULT_PORT),
                               learning=params.get('learning', False), mac=params.get('mac'), mtu=params.get('mtu'),
                               address=params.get('address'), recreate=params.get('recreate', False), state=params['state'])
        return vtep.reconcile(params['state'], check_mode=check_mode)
    finally:
        ipr.close()


# ---- the backend of the node contract ----------------------------------------------------------
class Backend(BaseBackend):
    name = NAME
    PEER_ROUTE_KINDS = ('vxlan',)  # the VTEP's onlink routes to the peers' VTEP addresses
    OPTIONS = {
        'vni': {'type': 'int', 'default': DEFAULT_VNI, 'check': validate.vni},
        'port': {'type': 'int', 'default': DEFAULT_PORT, 'check': validate.port},
        'device': {'type': 'str', 'check': validate.ifname},
        'mac': {'type': 'str', 'check': validate.mac},
        'recreate': {'type': 'bool', 'default': False},
        # peers on this host's L2 segment get a direct route, no encapsulation (flannel's DirectRouting)
        'direct_routing': {'type': 'bool', 'default': False},
    }
    PEER_OPTIONS = {'vtep_mac': {'type': 'str', 'required': True, 'check': validate.mac}}
    UNIQUE_PEER_OPTIONS = {'vtep_mac': 'VTEP MAC (a cloned /etc/machine-id? give each host its own: systemd-machine-id-setup)'}
    OVERHEAD = OVERHEAD
    DUAL_STACK = True
    GROUP_OPTIONS = ('vni', 'port', 'direct_routing')

    @classmethod
    def normalize(cls, params, machine_id=None):
        if params.get('vni') is not None and not params.get('device'):
            params['device'] = default_device(params['vni'])
        if not params.get('mac') and machine_id and params.get('device'):
            params['mac'] = _identity.device_mac(machine_id, params['device'])
        return params

    @classmethod
    def release_0_1_device(cls, state):
        return (state.get('vxlan') or {}).get('name')

    def ports(self):
        return [('udp', self.params['port'])]

    def publish(self):
        return {'vtep_mac': self.params['mac']}

    @classmethod
    def flannel_config(cls, params):
        def number(value):  # -e mesh_node_vxlan_vni=42 arrives as a string; flannel reads numbers
            return None if value in (None, '') else int(value)
        return {'vni': number(params.get('vni')), 'port': number(params.get('port')), 'direct_routing': bool(params.get('direct_routing'))}

    @classmethod
    def flannel_data(cls, record, settings):
        data = {'VNI': settings.get('vni') or DEFAULT_VNI}
        if record.get('vtep_mac'):
            data['VtepMAC'] = record['vtep_mac']
        return data

    def apply(self, node, host):
        ipr = open_iproute()
        try:
            vtep = VxlanReconciler(ipr, self.device, vni=self.params['vni'], local=node.underlay_address,
                                   underlay_device=node.underlay.get('interface'), port=self.params['port'],
                                   learning=False, mac=self.params['mac'], mtu=node.mtu,
                                   address=['%s/%d' % (one, one.max_prefixlen) for one in (node.vtep_address, node.vtep_address6) if one],
                                   # at boot the device is ours to recreate if anything about it is off
                                   recreate=self.params['recreate'] or host.boot, recreate_moves=True)
            host.report.changeset(vtep.reconcile('present', check_mode=host.check_mode))
            link = links.read_link(ipr, self.device)
            names = links.link_names(ipr)
        finally:
            ipr.close()
        direct = self.direct_peers(node, host)
        # Direct routes first: a pair that stops going through the VTEP has its route replaced in
        # place (no moment without one); the VTEP's peers then drop its neighbour and FDB entry; last,
        # the direct routes no peer wants any more go (also when direct routing is off).
        if direct:
            routes.reconcile_direct(node, host, direct, exclusive=False, skip_kinds=self.PEER_ROUTE_KINDS)
        # a dual-stack overlay: a peer's IPv6 subnet behind the same VTEP (its MAC, one FDB entry), unless
        # it goes direct (an IPv6 underlay); over an IPv4 underlay it has no direct route and stays here
        routed_directly = set(subnet for peer in direct for subnet in routes.direct_subnets(node, peer))
        wanted = self._vtep_peers(node, node.peers, routed_directly)
        if link is None or link.get('kind') != 'vxlan':
            # check mode on a host where the VTEP is still to be created
            host.report.changeset(peers_engine.plan_without_vtep(self.device, wanted, node.route_protocol))
        else:
            with wire.NetlinkRoute() as nl:
                reconciler = peers_engine.PeerReconciler(nl, link, node.route_protocol, names)
                host.report.changeset(reconciler.reconcile(wanted, 'present', exclusive=True, check_mode=host.check_mode,
                                                           with_current=True))
        routes.reconcile_direct(node, host, direct, exclusive=True, skip_kinds=self.PEER_ROUTE_KINDS)

    def apply_peers(self, node, host, changed, removed):
        """Only the neighbour, FDB entry and route of each peer that changed (no dump of the VTEP's peers).
        Direct routing and a VTEP still to be made go the whole way (apply)."""
        ipr = open_iproute()
        try:
            link = links.read_link(ipr, self.device)
            names = links.link_names(ipr)
        finally:
            ipr.close()
        if self.params.get('direct_routing') or link is None or link.get('kind') != 'vxlan' or not link.get('up'):
            self.apply(node, host)
            return
        with wire.NetlinkRoute() as nl:
            reconciler = peers_engine.PeerReconciler(nl, link, node.route_protocol, names)
            host.report.changeset(reconciler.reconcile_targeted(self._vtep_peers(node, changed), self._vtep_peers(node, removed),
                                                                check_mode=host.check_mode))

    @staticmethod
    def _vtep_peers(node, peers, routed_directly=()):
        """Contract peers as the VTEP's (subnet, MAC, underlay) entries: a dual-stack peer's IPv6 subnet behind the
        same VTEP, unless it is routed directly."""
        return peers_engine.normalise_peers(
            [{'subnet': subnet, 'vtep_mac': p['vtep_mac'], 'underlay': p['underlay']}
             for p in peers for subnet in (p['subnet'], p.get('ipv6_subnet') if node.ipv6_subnet else None)
             if subnet and subnet not in routed_directly])

    def direct_peers(self, node, host):
        """The peers routed directly: with direct_routing, those on this host's underlay segment."""
        if not self.params.get('direct_routing'):
            return []
        try:
            network = routes.underlay_network(node)
        except EngineError as exc:
            if not host.boot:
                raise
            # at boot the underlay address may never come (the host moved): everything through the VTEP
            host.report.warnings.append('direct routing off for now, every peer through the VTEP: %s' % exc)
            return []
        return [peer for peer in node.peers if ipaddress.ip_address(peer['underlay']) in network]

    def teardown(self, host, record, strict=False):
        """Delete the VTEP (its neighbours, FDB entries and routes go with it) and the direct routes of
        direct routing. strict: only when the VTEP's MAC is the one this host has for it (a flannel.1
        of another tool is left alone)."""
        if not strict:
            routes.purge_direct(host, record, skip_kinds=self.PEER_ROUTE_KINDS)
        ipr = open_iproute()
        try:
            link = links.read_link(ipr, self.device)
            if link is None or link['kind'] != 'vxlan' or (strict and link['mac'] != self.params.get('mac')):
                return
            vtep = VxlanReconciler(ipr, self.device, state='absent')
            host.report.changeset(vtep.reconcile('absent', check_mode=host.check_mode))
        finally:
            ipr.close()
