# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Input validation: every error names the object and the offending value."""

from __future__ import annotations

import ipaddress

import pytest

from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_validate as validate
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_peers import normalise_peers


@pytest.mark.parametrize('name', ['flannel.1', 'a' * 15, 'cni0', 'vx-1_2'])
def test_ifname_accepts(name):
    assert validate.ifname(name) == name


@pytest.mark.parametrize('name, fragment', [
    ('a' * 16, 'at most 15'),
    ('', 'non-empty'),
    ('bad/name', 'does not allow'),
    ('with space', 'does not allow'),
])
def test_ifname_rejects(name, fragment):
    with pytest.raises(validate.ValidationError, match=fragment):
        validate.ifname(name, 'VTEP name')


@pytest.mark.parametrize('value', [1, 16777215, '42'])
def test_vni_accepts(value):
    assert validate.vni(value) == int(value)


@pytest.mark.parametrize('value', [0, 16777216, -1, 'x'])
def test_vni_rejects_and_names_value(value):
    with pytest.raises(validate.ValidationError) as err:
        validate.vni(value, 'VTEP flannel.1 VNI')
    assert 'flannel.1' in str(err.value) and str(value) in str(err.value)


def test_mac_normalised():
    assert validate.mac('02-AA-bb-CC-dd-EE') == '02:aa:bb:cc:dd:ee'


@pytest.mark.parametrize('mac, fragment', [
    ('03:00:00:00:00:01', 'multicast'),
    ('ff:ff:ff:ff:ff:ff', 'multicast'),
    ('00:16:3e:00:00:01', 'not locally administered'),
    ('02:00:00:00:01', 'not a MAC'),
    ('02:00:00:00:00:zz', 'not a MAC'),
])
def test_mac_rejects(mac, fragment):
    with pytest.raises(validate.ValidationError, match=fragment) as err:
        validate.mac(mac, 'VTEP vx0 MAC')
    assert 'vx0' in str(err.value)


def test_host_address():
    assert validate.host_address('10.244.1.0') == ipaddress.ip_address('10.244.1.0')
    assert validate.host_address('10.244.1.0/32') == ipaddress.ip_address('10.244.1.0')
    assert validate.host_address('fd00::/128') == ipaddress.ip_address('fd00::')


@pytest.mark.parametrize('value', ['10.244.1.0/24', 'fd00::1/64', '10.244.1.0/128'])
def test_host_address_prefix_family_mismatch(value):
    with pytest.raises(validate.ValidationError, match='does not match an IPv'):
        validate.host_address(value, 'overlay address')


def test_interface_address():
    assert str(validate.interface_address('10.244.1.1/24')) == '10.244.1.1/24'
    with pytest.raises(validate.ValidationError, match='needs a prefix'):
        validate.interface_address('10.244.1.1')
    with pytest.raises(validate.ValidationError, match='does not fit an IPv4'):
        validate.interface_address('10.244.1.1/64')


def test_network_host_bits():
    with pytest.raises(validate.ValidationError, match='did you mean 10.244.2.0/24'):
        validate.network('10.244.2.1/24', 'peer subnet')
    with pytest.raises(validate.ValidationError, match='does not fit an IPv6'):
        validate.network('fd00::/129')


def test_route_protocol():
    assert validate.route_protocol(217) == 217
    with pytest.raises(validate.ValidationError, match='0-4'):
        validate.route_protocol(4)


def test_mtu_and_port():
    assert validate.mtu(1450) == 1450
    with pytest.raises(validate.ValidationError, match='70000'):
        validate.mtu(70000)
    with pytest.raises(validate.ValidationError, match='0 is outside'):
        validate.port(0)


def _peer(subnet='10.244.2.0/24', mac='02:00:00:00:00:02', underlay='198.18.0.2'):
    return {'subnet': subnet, 'vtep_mac': mac, 'underlay': underlay}


def test_peers_normalised():
    peers = normalise_peers([_peer(), _peer('fd00:2::/64', '02:00:00:00:00:03', '198.18.0.3')])
    assert [str(p.vtep_address) for p in peers] == ['10.244.2.0', 'fd00:2::']
    assert peers[0].mac == '02:00:00:00:00:02'


@pytest.mark.parametrize('peers, fragment', [
    ([_peer(), _peer(mac='02:00:00:00:00:09')], '10.244.2.0/24 is also used'),
    ([_peer(), _peer(subnet='10.244.3.0/24')], '02:00:00:00:00:02 is also used'),
    ([_peer(subnet='10.244.2.0')], 'needs a prefix'),
    ([_peer(mac='01:00:5e:00:00:01')], 'multicast'),
    ([_peer(underlay='not-an-ip')], 'underlay'),
    ([{'subnet': '10.244.2.0/24'}], 'lacks vtep_mac, underlay'),
    (['10.244.2.0/24'], 'must be a dict'),
])
def test_peers_rejected(peers, fragment):
    with pytest.raises(validate.ValidationError, match=fragment):
        normalise_peers(peers)
