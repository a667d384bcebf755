# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""overlay.mesh.bridge through Ansible in a throwaway namespace (pyroute2 0.9.x and 0.7.2)."""

from __future__ import annotations

from test_netns_vxlan import converge

BRIDGE = {'name': 'cni0', 'addresses': ['10.244.1.1/24', 'fd00:244:1::1/64'], 'mac': '02:6a:00:00:20:01', 'mtu': 1450}


def state(ns):
    link = ns.json('-d link show dev cni0')[0]
    addresses = sorted('%s/%d' % (a['local'], a['prefixlen']) for a in ns.json('addr show dev cni0')[0]['addr_info']
                       if a['scope'] != 'link')
    return link['linkinfo']['info_kind'], link['address'], link['mtu'], 'UP' in link['flags'], addresses


def test_converge_drift_absent(host):
    result = converge(host, 'bridge', BRIDGE)
    assert [o['type'] for o in result['added']] == ['link', 'address', 'address']
    assert state(host) == ('bridge', '02:6a:00:00:20:01', 1450, True, ['10.244.1.1/24', 'fd00:244:1::1/64'])
    # drift: MAC, MTU, an address gone, a stray address, down
    host.ip('link set cni0 down')
    host.ip('link set cni0 address 02:6a:00:00:20:99 mtu 1400')
    host.ip('addr del 10.244.1.1/24 dev cni0')
    host.ip('addr add 10.244.9.1/24 dev cni0')
    result = host.module('bridge', BRIDGE)
    assert result['changed']
    # (taking a link down also drops its IPv6 addresses)
    assert sorted(o['address'] for o in result['added']) == ['10.244.1.1/24', 'fd00:244:1::1/64']
    assert [o['address'] for o in result['removed']] == ['10.244.9.1/24']
    assert result['updated'][0]['mac'] == '02:6a:00:00:20:01'
    assert state(host) == ('bridge', '02:6a:00:00:20:01', 1450, True, ['10.244.1.1/24', 'fd00:244:1::1/64'])
    assert not host.module('bridge', BRIDGE)['changed']
    # absent
    assert host.module('bridge', {'name': 'cni0', 'state': 'absent'}, check=True)['changed']
    assert state(host)[0] == 'bridge'
    result = host.module('bridge', {'name': 'cni0', 'state': 'absent'})
    assert result['changed'] and host.ip('link show dev cni0', check=False) == ''
    assert not host.module('bridge', {'name': 'cni0', 'state': 'absent'})['changed']


def test_errors(host):
    result = host.module('bridge', dict(BRIDGE, addresses=['10.244.1.1/64']))
    assert result.get('failed') and "'10.244.1.1/64': prefix /64 does not fit an IPv4 address" in result['msg']
    result = host.module('bridge', dict(BRIDGE, mac='ff:ff:ff:ff:ff:ff'))
    assert result.get('failed') and 'ff:ff:ff:ff:ff:ff is a multicast/broadcast address' in result['msg']
    result = host.module('bridge', dict(BRIDGE, name='u0'))
    assert result.get('failed') and 'u0 exists and is a veth device, not bridge' in result['msg']
