# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node contract: one spec, typed, every problem at once, derived values in one place."""

from __future__ import annotations

import pytest

from ansible_collections.overlay.mesh.plugins.module_utils import _identity
from ansible_collections.overlay.mesh.plugins.module_utils import _node_spec as spec
from ansible_collections.overlay.mesh.plugins.module_utils._backends import registry
from ansible_collections.overlay.mesh.plugins.module_utils._spec import SpecError

MACHINE_ID = '0123456789abcdef0123456789abcdef'


def contract(**changes):
    base = {
        'underlay': {'address': '198.18.0.11', 'interface': 'eth0', 'mtu': 1500},
        'network': '10.244.0.0/16',
        'subnet': '10.244.1.0/24',
        'backend': {'type': 'vxlan'},
        'peers': [{'name': 'node2', 'subnet': '10.244.2.0/24', 'underlay': '198.18.0.12', 'vtep_mac': '02:00:00:00:00:02',
                   'public_key': 'AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI='},
                  {'name': 'node3', 'subnet': '10.244.3.0/24', 'underlay': '198.18.0.13', 'vtep_mac': '02:00:00:00:00:03',
                   'public_key': 'AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM='}],
    }
    base.update(changes)
    return base


def problems(raw, **kwargs):
    with pytest.raises(SpecError) as info:
        spec.normalize(raw, **kwargs)
    return dict(info.value.problems)


def test_defaults_and_derived_values():
    node = spec.normalize(contract(), machine_id=MACHINE_ID)
    assert node.mtu == 1450 and node.data['mtu'] == 1450
    assert node.backend.name == 'vxlan' and node.backend.device == 'mesh.1' and node.backend.ports() == [('udp', 8472)]
    assert str(node.gateway) == '10.244.1.1' and str(node.vtep_address) == '10.244.1.0'
    assert node.bridge == {'name': 'cni0', 'mac': _identity.device_mac(MACHINE_ID, 'cni0')}
    assert node.backend.publish() == {'vtep_mac': _identity.device_mac(MACHINE_ID, 'mesh.1')}
    assert node['route_protocol'] == 217 and node['firewall'] == {'peers_only': True, 'masquerade': True}


def test_values_keep_their_types_whatever_rendered_them():
    # ansible-core versions that render templates to text hand the module "1450", "3", "yes"
    node = spec.normalize(contract(mtu='1400', backend={'type': 'vxlan', 'vni': '3', 'port': 4789.0},
                                   firewall={'masquerade': 'no'}), machine_id=MACHINE_ID)
    assert node.mtu == 1400 and isinstance(node.mtu, int)
    assert node['backend']['vni'] == 3 and node['backend']['port'] == 4789 and node.backend.device == 'mesh.3'
    assert node['firewall']['masquerade'] is False
    assert 'must be an integer' in problems(contract(mtu=True))['mtu']


def test_every_problem_is_reported_at_once_with_its_option():
    found = problems(contract(network='10.244.0.1/16', route_protocol=3, bridge={'name': 'a-very-long-bridge-name'},
                              kernel={'rp_filter': 5}, surprise=1))
    assert set(found) == {'network', 'route_protocol', 'bridge.name', 'kernel.rp_filter', 'surprise'}
    assert 'host bits set' in found['network']
    assert '3 is outside 5-255' in found['route_protocol']
    assert 'at most 15' in found['bridge.name']
    assert 'unknown option' in found['surprise']


def test_backend_options_are_the_backends_own():
    found = problems(contract(backend={'type': 'vxlan', 'vni': 0, 'port': 70000, 'tunnel': 'x'}))
    assert set(found) == {'backend.vni', 'backend.port', 'backend.tunnel'}
    assert '0 is outside 1-16777215' in found['backend.vni']
    assert problems(contract(backend={'type': 'gre'}))['backend.type'] == "'gre' is not one of host-gw, udp, vxlan, wireguard"
    # udp has no vni
    assert 'unknown option' in problems(contract(backend={'type': 'udp', 'vni': 1}))['backend.vni']


def test_mtu_is_checked_against_the_underlay_minus_the_backend_overhead():
    assert problems(contract(mtu=1451))['mtu'] == '1451 is larger than the underlay MTU 1500 minus the vxlan overhead 50 (1450 at most)'
    node = spec.normalize(contract(backend={'type': 'udp'}), machine_id=MACHINE_ID)
    assert node.mtu == 1472
    ipv6 = contract(underlay={'address': '2001:db8::11', 'mtu': 1500}, peers=[])
    assert spec.normalize(ipv6, machine_id=MACHINE_ID).mtu == 1430
    small = spec.normalize(contract(underlay={'address': '198.18.0.11', 'mtu': 1300}), machine_id=MACHINE_ID)
    assert small.mtu == 1250 and 'IPv6' in small.warnings[0]


def test_the_underlay_mtu_is_read_from_the_host_when_not_given():
    asked = []

    def lookup(underlay):
        asked.append(underlay['address'])
        return 9000
    node = spec.normalize(contract(underlay={'address': '198.18.0.11'}), machine_id=MACHINE_ID, underlay_mtu=lookup)
    assert asked == ['198.18.0.11'] and node.mtu == 8950 and node.underlay['mtu'] == 9000


def test_peers_keep_what_the_backend_uses_and_must_not_collide():
    node = spec.normalize(contract(backend={'type': 'udp'}), machine_id=MACHINE_ID)
    assert node.peers[0] == {'name': 'node2', 'subnet': '10.244.2.0/24', 'underlay': '198.18.0.12'}
    peers = contract()['peers']
    peers[1]['vtep_mac'] = peers[0]['vtep_mac']
    peers[1]['subnet'] = '10.244.1.0/24'
    found = problems(contract(peers=peers + [{'subnet': '10.245.0.0/24', 'underlay': '198.18.0.11', 'vtep_mac': '02:00:00:00:00:09'},
                                             {'subnet': '10.244.9.0/24', 'underlay': '2001:db8::9'}]))
    assert 'also used by peer node2' in found['peers[1].vtep_mac']
    assert "overlaps this host's subnet" in found['peers[1].subnet']
    assert 'not inside the overlay network' in found['peers[2].subnet']
    assert 'is required' in found['peers[3].vtep_mac']
    assert 'also the underlay of' in found['underlay.address']


def test_two_hosts_cloned_with_one_machine_id_are_refused():
    own = _identity.device_mac(MACHINE_ID, 'mesh.1')
    peers = [{'name': 'clone', 'subnet': '10.244.2.0/24', 'underlay': '198.18.0.12', 'vtep_mac': own}]
    assert problems(contract(peers=peers), machine_id=MACHINE_ID)['peers[0].vtep_mac'] == (
        'vtep_mac %s is also used by this host' % own)


def test_partial_contract_before_the_lease():
    node = spec.normalize({'network': '10.244.0.0/16', 'backend': {'type': 'vxlan', 'vni': 7}}, partial=True)
    assert node.data['subnet'] is None and node.data['underlay'] is None and node.backend.device == 'mesh.7'
    with_underlay = {'network': '10.244.0.0/16', 'mtu': 9000, 'underlay': {'address': '198.18.0.11', 'mtu': 1500}}
    assert 'larger than the underlay MTU 1500' in problems(with_underlay, partial=True)['mtu']
    assert 'is required' in problems({'network': '10.244.0.0/16'})['subnet']


def test_removal_record_names_what_a_node_makes():
    record = spec.removal_record({'backend': {'type': 'vxlan', 'vni': 4}, 'bridge': {'name': 'br9'}})
    assert record['backend']['device'] == 'mesh.4' and record['bridge']['name'] == 'br9'
    assert spec.saved_backend(record).device == 'mesh.4'
    assert spec.saved_backend({'backend': {'type': 'nope', 'device': 'x'}}) is None
    assert spec.saved_backend({'backend': {'type': 'vxlan'}}) is None  # a damaged record names no device
    # host-gw has no device, and its direct routes must still go when the node leaves or switches backend
    assert spec.saved_backend({'backend': {'type': 'host-gw'}}).name == 'host-gw'


@pytest.mark.parametrize('name', registry.names())
def test_every_backend_provides_the_interface(name):
    backend = registry.get(name)
    assert backend.name == name
    assert set(backend.OVERHEAD) == {4, 6} and backend.OVERHEAD[6] >= backend.OVERHEAD[4] >= 0
    node = spec.normalize(contract(backend={'type': name}), machine_id=MACHINE_ID)
    assert node.backend.device is None or len(node.backend.device) <= 15
    assert all(protocol in ('udp', 'tcp') and 0 < port < 65536 for protocol, port in node.backend.ports())
    assert set(node.backend.publish()) <= set(backend.PEER_OPTIONS)
    assert node.backend.same_instance(dict(node.data['backend']))


def test_an_ipv6_overlay_network_is_refused_before_anything():
    found = problems({'network': 'fd00:244::/48'}, partial=True)
    assert found['network'] == ('fd00:244::/48 is IPv6: the overlay network is IPv4; an IPv6 overlay goes beside it (ipv6_network, a'
                                ' dual-stack overlay; an IPv6-only overlay is not supported)')


def test_host_gw_needs_every_peer_on_link():
    raw = contract(backend={'type': 'host-gw'}, underlay={'address': '198.18.0.11', 'mtu': 1500, 'network': '198.18.0.0/24'})
    raw['peers'][1]['underlay'] = '198.18.1.13'
    found = problems(raw, machine_id=MACHINE_ID)
    assert found['backend.type'].startswith('peer node3 (198.18.1.13) is not on-link from this host (underlay network '
                                            '198.18.0.0/24): host-gw routes peers over one L2 segment')
    raw['peers'].pop()
    node = spec.normalize(raw, machine_id=MACHINE_ID)
    assert node.mtu == 1500 and node.backend.device is None and node.backend.ports() == []
    # vxlan with direct routing takes any peer: the on-link ones go direct
    raw = contract(backend={'type': 'vxlan', 'direct_routing': True})
    assert spec.normalize(raw, machine_id=MACHINE_ID).mtu == 1450
    # an IPv6 underlay: IPv4 subnets via IPv6 next hops (RFC 5549), the on-link check in IPv6
    ipv6 = {'underlay': {'address': '2001:db8::11', 'network': '2001:db8::/64', 'mtu': 1500},
            'peers': [{'name': 'node2', 'subnet': '10.244.2.0/24', 'underlay': '2001:db8::12'}]}
    assert spec.normalize(contract(backend={'type': 'host-gw'}, **ipv6), machine_id=MACHINE_ID).mtu == 1500
    ipv6['peers'][0]['underlay'] = '2001:db8:1::12'
    assert 'is not on-link' in problems(contract(backend={'type': 'host-gw'}, **ipv6))['backend.type']
    ipv6['peers'] = []
    assert spec.normalize(contract(backend={'type': 'vxlan', 'direct_routing': True}, **ipv6), machine_id=MACHINE_ID).mtu == 1430


def test_wireguard_contract():
    node = spec.normalize(contract(backend={'type': 'wireguard'}), machine_id=MACHINE_ID)
    assert node.mtu == 1440 and node.backend.device == 'mesh-wg' and node.backend.ports() == [('udp', 51820)]
    assert node.backend.publish() == {}  # no key yet: the host fills it in
    assert [peer['public_key'] for peer in node.peers] == ['AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=', 'AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=']
    ipv6 = spec.normalize(contract(backend={'type': 'wireguard'}, underlay={'address': '2001:db8::11', 'mtu': 1500},
                                   peers=[]), machine_id=MACHINE_ID)
    assert ipv6.mtu == 1420
    found = problems(contract(backend={'type': 'wireguard', 'public_key': 'not-a-key', 'keepalive': 70000}))
    assert 'backend.public_key' in found and 'backend.keepalive' in found
    assert 'not-a-key' in found['backend.public_key']  # a public key may be shown; a private one never is
    raw = contract(backend={'type': 'wireguard'})
    raw['peers'][1]['public_key'] = raw['peers'][0]['public_key']
    found = problems(raw, machine_id=MACHINE_ID)
    assert found['peers[1].public_key'] == 'public_key AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI= is also used by peer node2'
