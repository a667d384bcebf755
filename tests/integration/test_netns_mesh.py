# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Two "hosts" (namespaces) whose VTEPs and peers are built by the modules carry ping."""

from __future__ import annotations

import os
import sys

import pytest

from conftest import link_pair

PING = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'icmp_ping.py')
HOSTS = {
    4: [dict(local='198.18.1.1', subnet='10.244.1.0/24', mac='02:6a:00:00:00:01'),
        dict(local='198.18.1.2', subnet='10.244.2.0/24', mac='02:6a:00:00:00:02')],
    6: [dict(local='2001:db8:18::1', subnet='fd00:244:1::/64', mac='02:6a:00:00:60:01'),
        dict(local='2001:db8:18::2', subnet='fd00:244:2::/64', mac='02:6a:00:00:60:02')],
}


@pytest.mark.parametrize('family', [4, 6])
def test_two_vteps_carry_ping(make_netns, tmp_path, family):
    a, b = make_netns(), make_netns()
    link_pair(a, b, extra=[(a, 'u0', '2001:db8:18::1/64'), (b, 'u0', '2001:db8:18::2/64')])
    nodes = HOSTS[family]
    for ns, me in zip((a, b), nodes):
        other = nodes[1] if me is nodes[0] else nodes[0]
        result = ns.module('vxlan', {'name': 'flannel.1', 'vni': 1, 'local': me['local'], 'mac': me['mac'],
                                     'address': me['subnet'].split('/')[0]})
        assert result['changed'] and not result.get('failed'), result
        assert result['device']['mtu'] == (1450 if family == 4 else 1430)
        result = ns.module('peers', {'vtep': 'flannel.1', 'exclusive': True, 'rt_protos_file': str(tmp_path / 'rt.conf'),
                                     'peers': [{'subnet': other['subnet'], 'vtep_mac': other['mac'], 'underlay': other['local']}]})
        assert result['changed'] and not result.get('failed'), result
    target = nodes[1]['subnet'].split('/')[0]
    out = a.run('%s %s %s 3' % (sys.executable, PING, target))
    assert '3/3 replies' in out, out
    # and the traffic really went through the tunnel: UDP 8472 packets counted on the VTEP
    stats = a.json('-s link show dev flannel.1')[0]['stats64']
    assert stats['tx']['packets'] >= 3 and stats['rx']['packets'] >= 3
