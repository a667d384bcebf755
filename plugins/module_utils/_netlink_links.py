# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Links and their addresses with pyroute2: the base of every link reconciler, and the container bridge.

The VXLAN VTEP's reconciler lives with its backend (_backends/vxlan.py).

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

_EBUSY = 16
_EEXIST = 17
# Plan-and-apply rounds when another run creates the device between our read and our create.
RECONCILE_ATTEMPTS = 3
IFA_F_NODAD = 0x02


# ---- reading ------------------------------------------------------------------------------
def link_from_message(msg):
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
        return link_from_message(first(ipr.link('get', index=indexes[0])))
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


class ObjectAppeared(EngineError):
    """A link or address did not exist when planned and exists now (another run created it)."""


def call(what, func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except NetlinkError as exc:
        if getattr(exc, 'code', None) == _EEXIST and args[:1] == ('add',):
            raise ObjectAppeared('%s: it appeared meanwhile' % what)
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
            call('deleting device %s' % name, self.ipr.link, 'del', index=link['index'])

    def _index(self):
        link = read_link(self.ipr, self.name)
        if link is None:
            raise EngineError('device %s vanished while being configured' % self.name)
        return link['index']

    def _set(self, what, **kwargs):
        call('%s on %s' % (what, self.name), self.ipr.link, 'set', index=self._index(), **kwargs)

    def _set_mac(self, mac):
        index = self._index()
        try:
            self.ipr.link('set', index=index, address=mac)
        except NetlinkError as exc:
            if getattr(exc, 'code', None) != _EBUSY:
                _fail('setting MAC %s on %s' % (mac, self.name), exc)
            # some drivers only take a new MAC while down (this flushes neighbours and routes)
            call('taking %s down to change its MAC' % self.name, self.ipr.link, 'set', index=index, state='down')
            call('setting MAC %s on %s' % (mac, self.name), self.ipr.link, 'set', index=index, address=mac)

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
            call('%s address %s on %s' % ('adding' if command == 'add' else 'removing', interface, self.name),
                 self.ipr.addr, command, index=self._index(), **kwargs)
        return run

    @staticmethod
    def apply(changes):
        for change in changes.changes:
            if change.run is not None:
                change.run()

    def reconcile(self, state='present', check_mode=False, with_current=True, verify=True):
        """Plan, apply (unless check_mode) and read back.  Returns the ChangeSet."""
        for attempt in range(RECONCILE_ATTEMPTS):
            changes = self.plan(state, with_current)
            if check_mode or not changes.changed:
                return changes
            try:
                self.apply(changes)
                break
            except ObjectAppeared:
                # Another run created it between our read and our create: read it again and
                # reconcile what it made (its MAC is derived, so normally nothing is left to do).
                if attempt + 1 == RECONCILE_ATTEMPTS:
                    raise
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

    # the gateway's IPv6 address is unique by construction (the host's own subnet): usable at once
    nodad = True

    def desired_link(self):
        return {'name': self.name, 'kind': 'bridge', 'mtu': self.mtu, 'mac': self.mac, 'up': True}

    def desired_addresses(self):
        return list(self.addresses)

    def create(self):
        call('creating bridge %s' % self.name, self.ipr.link, 'add', ifname=self.name, kind='bridge', address=self.mac)
        if self.mtu:
            # A separate 'set' marks the MTU as chosen by the user: an MTU given at creation is
            # forgotten as soon as ports come and go (the bridge falls back to its ports' or 1500).
            self._set('setting MTU %s' % self.mtu, mtu=self.mtu)
        self._set('bringing up', state='up')


# ---- entry point for the bridge module and the node apply ------------------------------------
def reconcile_bridge(params, check_mode=False):
    """Reconcile one bridge (the bridge module's parameters); returns its ChangeSet."""
    ipr = open_iproute()
    try:
        bridge = BridgeReconciler(ipr, params['name'], addresses=params.get('addresses'), mac=params.get('mac'),
                                  mtu=params.get('mtu'), state=params['state'])
        return bridge.reconcile(params['state'], check_mode=check_mode)
    finally:
        ipr.close()
