# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fake pyroute2 IPRoute holding links and addresses in memory (the subset the engine uses)."""

from __future__ import annotations

import socket

from ansible_collections.overlay.mesh.plugins.module_utils._netlink_compat import NetlinkError


class Msg(object):
    def __init__(self, fields, attrs):
        self.fields = fields
        self.attrs = attrs

    def __getitem__(self, key):
        return self.fields[key]

    def get_attr(self, name):
        return self.attrs.get(name)


_VXLAN_ATTRS = {'vxlan_id': 'IFLA_VXLAN_ID', 'vxlan_local': 'IFLA_VXLAN_LOCAL', 'vxlan_local6': 'IFLA_VXLAN_LOCAL6',
                'vxlan_link': 'IFLA_VXLAN_LINK', 'vxlan_port': 'IFLA_VXLAN_PORT', 'vxlan_learning': 'IFLA_VXLAN_LEARNING'}
_IMMUTABLE = ('vxlan_id', 'vxlan_port')


class FakeIPRoute(object):
    def __init__(self):
        self.links = {}      # index -> dict
        self.addrs = []      # (index, family, address, prefixlen, scope)
        self.calls = []
        self.next_index = 1

    def add_physical(self, name, mtu=1500, addresses=()):
        index = self._new(name, None, mtu, '52:54:00:00:00:%02x' % self.next_index, up=True)
        for address, plen in addresses:
            self.addrs.append((index, socket.AF_INET6 if ':' in address else socket.AF_INET, address, plen, 0))
        return index

    def _new(self, name, kind, mtu, mac, up=False, data=None):
        index = self.next_index
        self.next_index += 1
        self.links[index] = {'name': name, 'kind': kind, 'mtu': mtu, 'mac': mac, 'up': up, 'data': data or {}}
        return index

    # ---- IPRoute API subset -----------------------------------------------------------------
    def link_lookup(self, ifname):
        return [i for i, link in self.links.items() if link['name'] == ifname]

    def get_links(self):
        return tuple(self._msg(i) for i in self.links)

    def _msg(self, index):
        link = self.links[index]
        attrs = {'IFLA_IFNAME': link['name'], 'IFLA_MTU': link['mtu'], 'IFLA_ADDRESS': link['mac']}
        if link['kind']:
            info = {'IFLA_INFO_KIND': link['kind']}
            if link['kind'] == 'vxlan':
                info['IFLA_INFO_DATA'] = Msg({}, dict((_VXLAN_ATTRS[k], v) for k, v in link['data'].items()))
            attrs['IFLA_LINKINFO'] = Msg({}, info)
        return Msg({'index': index, 'flags': 0x1002 | (1 if link['up'] else 0)}, attrs)

    def link(self, command, **kwargs):
        self.calls.append(('link', command, kwargs))
        if command == 'get':
            if kwargs['index'] not in self.links:
                raise NetlinkError(19, 'No such device')
            return [self._msg(kwargs['index'])]
        if command == 'add':
            if self.link_lookup(kwargs['ifname']):
                raise NetlinkError(17, 'File exists')
            data = dict((k, v) for k, v in kwargs.items() if k.startswith('vxlan_'))
            self._new(kwargs['ifname'], kwargs['kind'], kwargs.get('mtu', 1500), kwargs.get('address'), data=data)
            return []
        if command == 'del':
            del self.links[kwargs['index']]
            self.addrs = [a for a in self.addrs if a[0] != kwargs['index']]
            return []
        link = self.links[kwargs['index']]
        if 'kind' in kwargs:
            if any(k in _IMMUTABLE and link['data'].get(k) != v for k, v in kwargs.items()):
                raise NetlinkError(95, 'Operation not supported')
            if 'mtu' in kwargs or 'address' in kwargs:
                raise AssertionError('MTU/MAC sent together with VXLAN data')
            link['data'].update((k, v) for k, v in kwargs.items() if k.startswith('vxlan_'))
        if 'mtu' in kwargs:
            link['mtu'] = kwargs['mtu']
        if 'address' in kwargs:
            link['mac'] = kwargs['address']
        if 'state' in kwargs:
            link['up'] = kwargs['state'] == 'up'
        return []

    def get_addr(self, family):
        return tuple(Msg({'index': i, 'prefixlen': plen, 'scope': scope}, {'IFA_ADDRESS': address})
                     for i, fam, address, plen, scope in self.addrs if fam == family)

    def addr(self, command, index, address, prefixlen, flags=0):
        self.calls.append(('addr', command, (index, address, prefixlen, flags)))
        family = socket.AF_INET6 if ':' in address else socket.AF_INET
        if command == 'add':
            self.addrs.append((index, family, address, prefixlen, 0))
        else:
            self.addrs.remove((index, family, address, prefixlen, 0))

    def close(self):
        pass
