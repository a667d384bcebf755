# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""overlay.mesh.vxlan through Ansible in a throwaway namespace (pyroute2 0.9.x and 0.7.2)."""

from __future__ import annotations

import pytest

VTEP = dict(name='flannel.1', vni=1, local='198.18.0.1', underlay_device='u0', mac='02:6a:00:00:00:01',
            address='10.244.1.0/32')


def vtep_args(**changes):
    args = dict(VTEP)
    args.update(changes)
    return args


def details(ns, name='flannel.1'):
    link = ns.json('-d link show dev %s' % name)[0]
    data = link['linkinfo']['info_data']
    return {'mtu': link['mtu'], 'mac': link['address'], 'up': 'UP' in link['flags'], 'vni': data['id'],
            'port': data['port'], 'learning': data.get('learning'), 'local': data.get('local') or data.get('local6'),
            'addresses': sorted('%s/%d' % (a['local'], a['prefixlen'])
                                for a in ns.json('addr show dev %s' % name)[0]['addr_info'] if a['scope'] != 'link')}


def converge(ns, module, args):
    """check mode -> apply -> check-mode idempotence -> idempotence; returns the apply result."""
    checked = ns.module(module, args, check=True)
    assert checked['changed'] and not checked.get('failed'), checked
    applied = ns.module(module, args)
    assert applied['changed'] and not applied.get('failed'), applied
    assert checked['added'] == applied['added'] and checked['updated'] == applied['updated']
    assert checked['removed'] == applied['removed']
    again = ns.module(module, args, check=True)
    assert not again['changed'], again
    again = ns.module(module, args)
    assert not again['changed'] and again['added'] == again['updated'] == again['removed'] == [], again
    return applied


def test_create_check_idempotence_and_attributes(host):
    checked = host.module('vxlan', VTEP, check=True)
    assert host.ip('link show dev flannel.1', check=False) == ''  # check mode created nothing
    assert checked['diff']['before'] == {} and checked['diff']['after']['link'][0]['vni'] == 1
    result = converge(host, 'vxlan', VTEP)
    assert result['device']['mtu'] == 1450
    assert details(host) == {'mtu': 1450, 'mac': '02:6a:00:00:00:01', 'up': True, 'vni': 1, 'port': 8472,
                             'learning': False, 'local': '198.18.0.1', 'addresses': ['10.244.1.0/32']}


def test_ipv6_underlay_mtu_minus_70(host):
    args = dict(name='flannel-v6.1', vni=1, local='2001:db8:18::1', mac='02:6a:00:00:60:01', address='fd00:244:1::')
    result = converge(host, 'vxlan', args)
    assert result['device']['underlay_device'] == 'u0'
    assert details(host, 'flannel-v6.1')['mtu'] == 1430
    assert details(host, 'flannel-v6.1')['addresses'] == ['fd00:244:1::/128']


def test_drift_is_restored(host):
    host.module('vxlan', VTEP)
    host.ip('link set flannel.1 mtu 1300')
    host.ip('link set flannel.1 type vxlan learning')
    host.ip('addr add 10.244.9.9/32 dev flannel.1')
    host.ip('link set flannel.1 down')
    result = host.module('vxlan', VTEP)
    assert result['changed']
    assert [o['address'] for o in result['removed']] == ['10.244.9.9/32']
    updated = result['updated'][0]
    assert (updated['mtu'], updated['learning'], updated['up']) == (1450, False, True)
    assert result['diff']['before']['link'][0]['mtu'] == 1300
    assert details(host)['learning'] is False and details(host)['up']
    # deleted by hand: recreated with the same MAC
    host.ip('link del flannel.1')
    result = host.module('vxlan', VTEP)
    assert result['changed'] and [o['type'] for o in result['added']] == ['link', 'address']
    assert details(host)['mac'] == '02:6a:00:00:00:01'
    assert not host.module('vxlan', VTEP)['changed']


def test_immutable_change_needs_recreate(host):
    host.module('vxlan', VTEP)
    result = host.module('vxlan', vtep_args(vni=2))
    assert result.get('failed') and 'vni is 1 in the kernel, 2 requested' in result['msg'] and 'recreate' in result['msg']
    assert details(host)['vni'] == 1
    checked = host.module('vxlan', vtep_args(vni=2, port=4789, recreate=True), check=True)
    assert checked['changed'] and details(host)['vni'] == 1
    result = host.module('vxlan', vtep_args(vni=2, port=4789, recreate=True))
    assert result['changed'] and details(host)['vni'] == 2 and details(host)['port'] == 4789
    assert details(host)['addresses'] == ['10.244.1.0/32']


def test_absent(host):
    host.module('vxlan', VTEP)
    checked = host.module('vxlan', {'name': 'flannel.1', 'state': 'absent'}, check=True)
    assert checked['changed'] and details(host)
    result = host.module('vxlan', {'name': 'flannel.1', 'state': 'absent'})
    assert result['changed'] and [o['type'] for o in result['removed']] == ['link', 'address']
    assert host.ip('link show dev flannel.1', check=False) == ''
    assert not host.module('vxlan', {'name': 'flannel.1', 'state': 'absent'})['changed']
    refused = host.module('vxlan', {'name': 'u0', 'state': 'absent'})
    assert refused.get('failed') and 'u0 exists and is a veth device, not vxlan' in refused['msg']


@pytest.mark.parametrize('changes, message', [
    (dict(underlay_device='eth7'), 'underlay device eth7 does not exist'),
    (dict(local='198.18.0.99'), 'local address 198.18.0.99 is not configured on any interface'),
    (dict(name='flannel.1234567890'), "'flannel.1234567890' is 18 characters long"),
    (dict(vni=16777216), 'VNI 16777216 is outside 1-16777215'),
    (dict(mac='01:00:5e:00:00:01'), 'MAC 01:00:5e:00:00:01 is a multicast'),
    (dict(mac='00:16:3e:00:00:01'), 'MAC 00:16:3e:00:00:01 is not locally administered'),
    (dict(address='10.244.1.0/24'), "'10.244.1.0/24': prefix /24 does not match an IPv4 host address"),
])
def test_errors_name_object_and_value(host, changes, message):
    result = host.module('vxlan', vtep_args(**changes))
    assert result.get('failed') and message in result['msg'], result
