# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A dual-stack overlay in the contract and in what a node writes; an IPv6 underlay found without a setting.
(Packets of both families across hosts, over an IPv6-only underlay: molecule ipv6.)"""

from __future__ import annotations

import json

import pytest

from ansible_collections.overlay.mesh.plugins.module_utils import _nftables
from ansible_collections.overlay.mesh.plugins.module_utils import _node_apply
from ansible_collections.overlay.mesh.plugins.module_utils import _node_files as files
from ansible_collections.overlay.mesh.plugins.module_utils import _node_spec as spec
from ansible_collections.overlay.mesh.plugins.module_utils import _underlay
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_validate as validate
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_peers import normalise_peers
from ansible_collections.overlay.mesh.plugins.module_utils._spec import SpecError

from test_node_spec import MACHINE_ID, contract


def dual(**changes):
    raw = contract(ipv6_network='fd00:244::/48', ipv6_subnet='fd00:244:0:1::/64',
                   underlay={'address': '2001:db8:1::b', 'interface': 'eth0', 'mtu': 1500},
                   peers=[{'name': 'node2', 'subnet': '10.244.2.0/24', 'ipv6_subnet': 'fd00:244:0:2::/64', 'underlay': '2001:db8:1::c',
                           'vtep_mac': '02:00:00:00:00:02'}])
    raw.update(changes)
    return spec.normalize(raw, machine_id=MACHINE_ID)


def problems(**changes):
    with pytest.raises(SpecError) as info:
        dual(**changes)
    return dict(info.value.problems)


def test_derived_values_of_a_dual_stack_node_over_an_ipv6_underlay():
    node = dual()
    assert node.mtu == 1430  # vxlan over IPv6: 70 bytes
    assert str(node.gateway6) == 'fd00:244:0:1::1' and str(node.vtep_address6) == 'fd00:244:0:1::'
    assert node.peers[0]['ipv6_subnet'] == 'fd00:244:0:2::/64'
    assert ('net/ipv6/conf/all/forwarding', 1) in _node_apply.sysctls(node)
    assert ('net/ipv6/conf/cni0/accept_ra', 0) in _node_apply.sysctls(node)


def test_an_ipv4_only_contract_is_saved_as_before():
    node = spec.normalize(contract(), machine_id=MACHINE_ID)
    assert 'ipv6_network' not in node.data and 'ipv6_subnet' not in node.data and 'ipv6_masquerade' not in node.data['firewall']
    assert all('ipv6_subnet' not in peer for peer in node.peers)
    assert node.ipv6_subnet is None and ('net/ipv6/conf/all/forwarding', 1) not in _node_apply.sysctls(node)


def test_dual_stack_problems_name_the_setting():
    assert 'not inside the IPv6 overlay network' in problems(ipv6_subnet='fd00:999::/64')['ipv6_subnet']
    assert 'missing' in problems(ipv6_subnet=None)['ipv6_subnet']
    assert 'not an IPv6 network' in problems(ipv6_network='10.99.0.0/16')['ipv6_network']
    assert problems(backend={'type': 'udp'})['ipv6_network'] == (
        'the udp backend carries IPv4 only; a dual-stack overlay needs host-gw, vxlan or wireguard')
    # host-gw: an IPv6 subnet cannot go via an IPv4 next hop
    assert dual(backend={'type': 'host-gw'}).backend.name == 'host-gw'  # over an IPv6 underlay
    found = problems(backend={'type': 'host-gw'}, underlay={'address': '198.18.0.11', 'interface': 'eth0', 'mtu': 1500},
                     peers=[])
    assert 'needs an IPv6 underlay' in found['ipv6_network']
    found = problems(peers=[{'name': 'node2', 'subnet': '10.244.2.0/24', 'ipv6_subnet': 'fd00:244:0:1::/64', 'underlay': '2001:db8:1::c',
                             'vtep_mac': '02:00:00:00:00:02'}])
    assert 'overlaps this host\'s IPv6 subnet' in found['peers[0].ipv6_subnet']


def test_subnet_env_and_cni_carry_both_families():
    node = dual()
    env = files.subnet_env(node.network, node.subnet, node.mtu, True, node.ipv6_network, node.ipv6_subnet)
    assert env.splitlines() == ['FLANNEL_NETWORK=10.244.0.0/16', 'FLANNEL_SUBNET=10.244.1.1/24', 'FLANNEL_IPV6_NETWORK=fd00:244::/48',
                                'FLANNEL_IPV6_SUBNET=fd00:244:0:1::1/64', 'FLANNEL_MTU=1430', 'FLANNEL_IPMASQ=true']
    ipam = json.loads(files.cni_conflist(node))['plugins'][0]['ipam']
    assert ipam['ranges'] == [[{'subnet': '10.244.1.0/24', 'gateway': '10.244.1.1'}],
                              [{'subnet': 'fd00:244:0:1::/64', 'gateway': 'fd00:244:0:1::1'}]]
    assert ipam['routes'] == [{'dst': '0.0.0.0/0'}, {'dst': '::/0'}]


def test_nftables_forward_both_families_and_masquerade_ipv6_only_when_asked():
    node = dual()
    table = _nftables.render(node, node.backend.ports())
    assert 'ip6 saddr fd00:244::/48 accept' in table and 'ip6 daddr fd00:244::/48 accept' in table
    assert 'ip6 saddr' not in table.split('chain postrouting')[1]
    assert 'set peers {\n\t\ttype ipv6_addr' in table  # the underlay is IPv6
    masq = dual(firewall={'ipv6_masquerade': True})
    assert 'ip6 saddr fd00:244::/48 ip6 daddr != ff00::/8 masquerade fully-random' in _nftables.render(masq, masq.backend.ports())


def test_one_mac_for_a_peer_in_both_families_not_for_two_peers():
    peers = normalise_peers([{'subnet': '10.244.2.0/24', 'vtep_mac': '02:00:00:00:00:02', 'underlay': '2001:db8:1::c'},
                             {'subnet': 'fd00:244:0:2::/64', 'vtep_mac': '02:00:00:00:00:02', 'underlay': '2001:db8:1::c'}])
    assert [str(peer.vtep_address) for peer in peers] == ['10.244.2.0', 'fd00:244:0:2::']
    with pytest.raises(validate.ValidationError, match='also used'):
        normalise_peers([{'subnet': '10.244.2.0/24', 'vtep_mac': '02:00:00:00:00:02', 'underlay': '2001:db8:1::c'},
                         {'subnet': 'fd00:244:0:2::/64', 'vtep_mac': '02:00:00:00:00:02', 'underlay': '2001:db8:1::d'}])


LINKS = [
    {'ifname': 'lo', 'mtu': 65536, 'addr_info': [{'family': 'inet', 'local': '127.0.0.1', 'prefixlen': 8, 'scope': 'host'}]},
    {'ifname': 'eth0', 'mtu': 1500, 'addr_info': [{'family': 'inet6', 'local': '2001:db8:1::b', 'prefixlen': 64, 'scope': 'global'},
                                                  {'family': 'inet6', 'local': 'fe80::1', 'prefixlen': 64, 'scope': 'link'}]},
]


def test_a_host_without_an_ipv4_underlay_uses_its_ipv6_one(monkeypatch):
    monkeypatch.setattr(_underlay, 'ip_json', lambda *args: LINKS)

    def lookup(destination, family='ipv4'):
        if family == 'ipv4':
            raise _underlay.UnderlayError('this host has no ipv4 default route; set interface, address or reach')
        return 'eth0', '2001:db8:1::b'
    monkeypatch.setattr(_underlay, 'route_lookup', lookup)
    found = _underlay.find({})
    assert (found['address'], found['family'], found['chosen_by']) == ('2001:db8:1::b', 'ipv6', 'default_route')
    with pytest.raises(_underlay.UnderlayError, match='no ipv4 default route'):
        _underlay.find({'family': 'ipv4'})
