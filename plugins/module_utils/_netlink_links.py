# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Links and their addresses with pyroute2: the VXLAN VTEP and the container bridge.

read the link -> compare only the attributes the user set -> a ChangeSet whose changes
carry callables -> apply in order -> read back.  Works with pyroute2 0.7.2 and 0.9.x.
"""

from __future__ import annotations

import ipaddress
import socket

from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_validate as validate
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_changes import ChangeSet, EngineError
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_compat import (
    IFF_UP, NetlinkError, first, nested, netlink_error_text, open_iproute,
)

# Attributes of a VXLAN device the kernel refuses to change in place (EOPNOTSUPP) or that
# this engine treats as identity: changing them means deleting and recreating the device.
VXLAN_IMMUTABLE = ('vni', 'port', 'local', 'underlay_device')
_EBUSY = 16
IFA_F_NODAD = 0x02


# ---- reading ------------------------------------------------------------------------------
def _link_from_message(msg):
    kind = nested(msg, 'IFLA_LINKINFO', 'IFLA_INFO_KIND')
    link = {
        'index': msg['index'],
        'name': msg.get_attr('IFLA_IFNAME'),
        'kind': kind,
        'mtu': msg.get_attr('IFLA_MTU'),
        'mac': (msg.get_attr('IFLA_ADDRESS') or '').lower() or None,
        'up': bool(msg['flags'] & IFF_UP),
        'master': msg.get_attr('IFLA_MASTER'),
    }
    if kind == 'vxlan':
        data = nested(msg, 'IFLA_LINKINFO', 'IFLA_INFO_DATA')
        link['vxlan'] = {
            'vni': data.get_attr('IFLA_VXLAN_ID'),
            'local': data.get_attr('IFLA_VXLAN_LOCAL') or data.get_attr('IFLA_VXLAN_LOCAL6'),
            'link': data.get_attr('IFLA_VXLAN_LINK'),
            'port': data.get_attr('IFLA_VXLAN_PORT'),
            'learning': bool(data.get_attr('IFLA_VXLAN_LEARNING')),
        }
    return link


def read_link(ipr, name):
    """The link called name as a dict (index, name, kind, mtu, mac, up, master, vxlan), or None."""
    indexes = ipr.link_lookup(ifname=name)
    if not indexes:
        return None
    try:
        return _link_from_message(first(ipr.link('get', index=indexes[0])))
    except NetlinkError as exc:
        if getattr(exc, 'code', None) == 19:  # vanished in between
            return None
        raise


def link_names(ipr):
    """ifindex -> name for every link of the namespace."""
    return dict((msg['index'], msg.get_attr('IFLA_IFNAME')) for msg in ipr.get_links())


def read_addresses(ipr, index=None):
    """[(ifindex, ip_interface, scope)] for every address (of one link when index is given)."""
    result = []
    for family in (socket.AF_INET, socket.AF_INET6):
        for msg in ipr.get_addr(family=family):
            if index is not None and msg['index'] != index:
                continue
            text = msg.get_attr('IFA_LOCAL') or msg.get_attr('IFA_ADDRESS')
            if text:
                result.append((msg['index'], ipaddress.ip_interface('%s/%d' % (text, msg['prefixlen'])), msg['scope']))
    return result


def _fail(what, exc):
    raise EngineError('%s failed: %s' % (what, netlink_error_text(exc)))


def _call(what, func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except NetlinkError as exc:
        _fail(what, exc)
    except OSError as exc:
        _fail(what, exc)
    return None


def link_obj(link, extra_keys=()):
    obj = {'type': 'link', 'name': link['name'], 'kind': link['kind'], 'mtu': link['mtu'], 'mac': link['mac'],
           'up': link['up']}
    for key in extra_keys:
        obj[key] = link.get(key)
    return obj


def addr_obj(dev, interface):
    return {'type': 'address', 'dev': dev, 'address': str(interface)}


# ---- shared link logic ----------------------------------------------------------------------
class LinkReconciler(object):
    """Base for one named link of one kind: attributes, addresses, up, absent."""

    kind = None
    extra_keys = ()
    nodad = False  # add IPv6 addresses without duplicate address detection

    def __init__(self, ipr, name):
        self.ipr = ipr
        self.name = validate.ifname(name, '%s device name' % self.kind)

    # subclasses provide desired_link(), create() and compare(link, desired, changes)

    def current_view(self, link):
        return dict(link)

    def plan(self, state='present', with_current=True):
        changes = ChangeSet()
        link = read_link(self.ipr, self.name)
        if link is not None and link['kind'] != self.kind:
            raise EngineError('device %s exists and is a %s device, not %s; refusing to touch it'
                              % (self.name, link['kind'] or 'physical', self.kind))
        addresses = read_addresses(self.ipr, link['index']) if link else []
        if link is not None and with_current:
            view = self.current_view(link)
            changes.current[('link', self.name)] = link_obj(view, self.extra_keys)
            for _index, interface, scope in addresses:
                if scope != 253:
                    changes.current[('address', str(interface))] = addr_obj(self.name, interface)
        if state == 'absent':
            if link is not None:
                self._plan_delete(link, addresses, changes)
            return changes
        desired = self.desired_link()
        if link is None or self.needs_recreate(link):
            if link is not None:
                self._plan_delete(link, addresses, changes)
            changes.add('added', ('link', self.name), link_obj(desired, self.extra_keys), None, self.create)
            addresses = []
        else:
            self.compare(link, desired, changes)
        self._plan_addresses(addresses, changes)
        return changes

    def _plan_delete(self, link, addresses, changes):
        """Delete the link; its addresses go with it (listed for the report, nothing to run)."""
        changes.add('removed', ('link', self.name), link_obj(self.current_view(link), self.extra_keys), None,
                    lambda: self._delete(self.name))
        for _index, interface, scope in addresses:
            if scope != 253:
                changes.add('removed', ('address', str(interface)), addr_obj(self.name, interface))

    def needs_recreate(self, link):
        return False

    def compare(self, link, desired, changes):
        diffs, steps = self.compare_common(link, desired)
        self.add_update(link, diffs, steps, changes)

    def _delete(self, name):
        link = read_link(self.ipr, name)
        if link is not None:
            _call('deleting device %s' % name, self.ipr.link, 'del', index=link['index'])

    def _index(self):
        link = read_link(self.ipr, self.name)
        if link is None:
            raise EngineError('device %s vanished while being configured' % self.name)
        return link['index']

    def _set(self, what, **kwargs):
        _call('%s on %s' % (what, self.name), self.ipr.link, 'set', index=self._index(), **kwargs)

    def _set_mac(self, mac):
        index = self._index()
        try:
            self.ipr.link('set', index=index, address=mac)
        except NetlinkError as exc:
            if getattr(exc, 'code', None) != _EBUSY:
                _fail('setting MAC %s on %s' % (mac, self.name), exc)
            # some drivers only take a new MAC while down (this flushes neighbours and routes)
            _call('taking %s down to change its MAC' % self.name, self.ipr.link, 'set', index=index, state='down')
            _call('setting MAC %s on %s' % (mac, self.name), self.ipr.link, 'set', index=index, address=mac)

    def compare_common(self, link, desired):
        """MAC, MTU and up: each a separate link('set') (never mixed with kind data)."""
        diffs = {}
        steps = []
        if desired.get('mac') and link['mac'] != desired['mac']:
            diffs['mac'] = desired['mac']
            steps.append(lambda: self._set_mac(desired['mac']))
        if desired.get('mtu') and link['mtu'] != desired['mtu']:
            diffs['mtu'] = desired['mtu']
            steps.append(lambda: self._set('setting MTU %s' % desired['mtu'], mtu=desired['mtu']))
        if not link['up']:
            diffs['up'] = True
        # always last: up (also after a MAC change that needed the device down)
        steps.append(lambda: self._set('bringing up', state='up'))
        return diffs, steps

    def add_update(self, link, diffs, steps, changes):
        """One 'updated' change for the link attributes in diffs, applied by steps in order."""
        if not diffs:
            return
        view = self.current_view(link)
        after = dict(view)
        after.update(diffs)
        changes.add('updated', ('link', self.name), link_obj(after, self.extra_keys), link_obj(view, self.extra_keys),
                    _sequence(steps))

    def desired_addresses(self):
        return []

    def _plan_addresses(self, addresses, changes):
        wanted = self.desired_addresses()
        have = [(interface, scope) for _index, interface, scope in addresses]
        for interface in wanted:
            if not any(interface == cur for cur, _scope in have):
                changes.add('added', ('address', str(interface)), addr_obj(self.name, interface), None,
                            self._address_step('add', interface))
        for interface, scope in have:
            if scope == 253 or interface in wanted:  # link-local addresses are the kernel's
                continue
            changes.add('removed', ('address', str(interface)), addr_obj(self.name, interface), None,
                        self._address_step('del', interface))

    def _address_step(self, command, interface):
        kwargs = {'address': str(interface.ip), 'prefixlen': interface.network.prefixlen}
        if command == 'add' and self.nodad and interface.version == 6:
            kwargs['flags'] = IFA_F_NODAD

        def run():
            _call('%s address %s on %s' % ('adding' if command == 'add' else 'removing', interface, self.name),
                  self.ipr.addr, command, index=self._index(), **kwargs)
        return run

    @staticmethod
    def apply(changes):
        for change in changes.changes:
            if change.run is not None:
                change.run()

    def reconcile(self, state='present', check_mode=False, with_current=True, verify=True):
        """Plan, apply (unless check_mode) and read back.  Returns the ChangeSet."""
        changes = self.plan(state, with_current)
        if check_mode or not changes.changed:
            return changes
        self.apply(changes)
        if verify:
            left = self.plan(state, with_current=False)
            if left.changed:
                change = left.changes[0]
                raise EngineError('device %s: the kernel did not keep the change (%s %s)'
                                  % (self.name, change.action, change.obj))
        return changes


def _sequence(steps):
    def run():
        for step in steps:
            step()
    return run


# ---- the VXLAN VTEP -------------------------------------------------------------------------------
class VxlanReconciler(LinkReconciler):
    """A flannel-style VTEP: learning off, explicit MAC, local address, underlay device."""

    kind = 'vxlan'
    extra_keys = ('vni', 'local', 'underlay_device', 'port', 'learning')
    # The VTEP's /128 is unique by construction (the node's own subnet): no DAD, usable at once.
    nodad = True

    def __init__(self, ipr, name, vni=None, local=None, underlay_device=None, port=validate.DEFAULT_VXLAN_PORT,
                 learning=False, mac=None, mtu=None, address=None, recreate=False, state='present'):
        super(VxlanReconciler, self).__init__(ipr, name)
        self.recreate = recreate
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
        self.address = validate.host_address(address, 'VTEP %s overlay address' % name) if address else None
        self.underlay_device, underlay_mtu = self._resolve_underlay(underlay_device)
        if mtu is None:
            self.mtu = underlay_mtu - validate.VXLAN_OVERHEAD[self.local.version]
        else:
            self.mtu = validate.mtu(mtu, 'VTEP %s MTU' % name)

    def _resolve_underlay(self, underlay_device):
        holders = [index for index, interface, _scope in read_addresses(self.ipr) if interface.ip == self.local]
        if not holders:
            raise EngineError('VTEP %s: local address %s is not configured on any interface of this host'
                              % (self.name, self.local))
        if underlay_device:
            validate.ifname(underlay_device, 'VTEP %s underlay device' % self.name)
            link = read_link(self.ipr, underlay_device)
            if link is None:
                raise EngineError('VTEP %s: underlay device %s does not exist' % (self.name, underlay_device))
        else:
            link = _link_from_message(first(self.ipr.link('get', index=holders[0])))
        self.underlay_index = link['index']
        return link['name'], link['mtu']

    def _name_of(self, index):
        if self._names is None:
            self._names = link_names(self.ipr)
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
        if self.address is None:
            return []
        return [ipaddress.ip_interface('%s/%d' % (self.address, self.address.max_prefixlen))]

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
                diffs.append('underlay_device is %s in the kernel, %s requested'
                             % (self._name_of(current[key]) if current[key] else 'unset', self.underlay_device))
            else:
                diffs.append('%s is %s in the kernel, %s requested' % (key, current[key], wanted[key]))
        return diffs

    def needs_recreate(self, link):
        diffs = self.immutable_differences(link)
        if diffs and not self.recreate:
            raise EngineError('VTEP %s: %s; the kernel cannot change these attributes of a VXLAN device in place'
                              ' (EOPNOTSUPP). Set recreate=true to delete and recreate the device (its neighbour,'
                              ' FDB entries and routes are dropped until overlay.mesh.peers runs again)'
                              % (self.name, '; '.join(diffs)))
        return bool(diffs)

    def create(self):
        kwargs = {'ifname': self.name, 'kind': 'vxlan', 'vxlan_id': self.vni, 'vxlan_link': self.underlay_index,
                  'vxlan_port': self.port, 'vxlan_learning': 1 if self.learning else 0, 'address': self.mac,
                  'mtu': self.mtu}
        kwargs['vxlan_local6' if self.local.version == 6 else 'vxlan_local'] = str(self.local)
        _call('creating VXLAN device %s (VNI %s, local %s, dev %s, MTU %s)'
              % (self.name, self.vni, self.local, self.underlay_device, self.mtu), self.ipr.link, 'add', **kwargs)
        self._set('bringing up', state='up')

    def compare(self, link, desired, changes):
        diffs, steps = self.compare_common(link, desired)
        if link['vxlan']['learning'] != self.learning:
            diffs['learning'] = self.learning
            # VXLAN data goes alone in its own request: no MTU or MAC beside it
            steps.insert(0, lambda: self._set('setting learning %s' % ('on' if self.learning else 'off'), kind='vxlan',
                                              vxlan_learning=1 if self.learning else 0))
        self.add_update(link, diffs, steps, changes)


# ---- the container bridge ---------------------------------------------------------------------
class BridgeReconciler(LinkReconciler):
    """A cni0/docker0-style bridge: explicit MAC, MTU, gateway addresses, up."""

    kind = 'bridge'

    def __init__(self, ipr, name, addresses=None, mac=None, mtu=None, state='present'):
        super(BridgeReconciler, self).__init__(ipr, name)
        if state != 'present':
            return
        if mac is None:
            raise validate.ValidationError('bridge %s: mac is required with state=present' % name)
        self.mac = validate.mac(mac, 'bridge %s MAC' % name)
        self.mtu = validate.mtu(mtu, 'bridge %s MTU' % name) if mtu is not None else None
        self.addresses = [validate.interface_address(a, 'bridge %s address' % name) for a in (addresses or [])]

    def desired_link(self):
        return {'name': self.name, 'kind': 'bridge', 'mtu': self.mtu, 'mac': self.mac, 'up': True}

    def desired_addresses(self):
        return list(self.addresses)

    def create(self):
        _call('creating bridge %s' % self.name, self.ipr.link, 'add', ifname=self.name, kind='bridge', address=self.mac)
        if self.mtu:
            # A separate 'set' marks the MTU as chosen by the user: an MTU given at creation is
            # forgotten as soon as ports come and go (the bridge falls back to its ports' or 1500).
            self._set('setting MTU %s' % self.mtu, mtu=self.mtu)
        self._set('bringing up', state='up')


# ---- entry points for modules and the boot-time unit: both pass the modules' parameters --------
def reconcile_vxlan(params, check_mode=False):
    """Reconcile one VTEP (the vxlan module's parameters); returns its ChangeSet."""
    ipr = open_iproute()
    try:
        vtep = VxlanReconciler(ipr, params['name'], vni=params.get('vni'), local=params.get('local'),
                               underlay_device=params.get('underlay_device'), port=params.get('port', 8472),
                               learning=params.get('learning', False), mac=params.get('mac'), mtu=params.get('mtu'),
                               address=params.get('address'), recreate=params.get('recreate', False), state=params['state'])
        return vtep.reconcile(params['state'], check_mode=check_mode)
    finally:
        ipr.close()


def reconcile_bridge(params, check_mode=False):
    """Reconcile one bridge (the bridge module's parameters); returns its ChangeSet."""
    ipr = open_iproute()
    try:
        bridge = BridgeReconciler(ipr, params['name'], addresses=params.get('addresses'), mac=params.get('mac'),
                                  mtu=params.get('mtu'), state=params['state'])
        return bridge.reconcile(params['state'], check_mode=check_mode)
    finally:
        ipr.close()
