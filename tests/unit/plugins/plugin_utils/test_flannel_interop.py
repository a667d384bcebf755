# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""flanneld's leases as peers of the mesh (mesh_node_etcd_flannel_peers): what is taken, what is refused and why.
(Packets between a flannel-style host and ours: tests/integration/test_flannel_interop.py.)"""

from __future__ import annotations

import json

import pytest

from ansible_collections.overlay.mesh.plugins.module_utils import _flannel_interop as interop
from ansible_collections.overlay.mesh.plugins.plugin_utils import _leases as L
from ansible_collections.overlay.mesh.plugins.plugin_utils import _node_inputs as inputs
from ansible_collections.overlay.mesh.plugins.plugin_utils import _registry as R

from test_node_inputs import INFO, LEASES, variables

import etcd_lab  # pylint: disable=wrong-import-order

KEY = '/coreos.com/network/subnets/10.244.9.0-24'
SUBNET = {'subnet': '10.244.9.0/24'}


def lease(**changes):
    value = {'PublicIP': '198.18.0.19', 'BackendType': 'vxlan', 'BackendData': {'VNI': 1, 'VtepMAC': '7A:1B:2C:3D:4E:5F'}}
    value.update(changes)
    return value


def test_a_flanneld_vxlan_lease_is_a_peer_named_by_its_address():
    found, problems = interop.peers([(KEY, SUBNET, lease())], vni=1)
    assert problems == []
    assert found == {'flanneld@198.18.0.19': {'subnet': '10.244.9.0/24', 'underlay': '198.18.0.19', 'vtep_mac': '7a:1b:2c:3d:4e:5f'}}
    # flanneld before 0.21 wrote no VNI: its default, 1
    assert interop.peers([(KEY, SUBNET, lease(BackendData={'VtepMAC': '7a:1b:2c:3d:4e:5f'}))], vni=1)[1] == []


def test_leases_that_cannot_be_peers_are_problems_naming_key_and_setting():
    cases = [
        (lease(BackendType='host-gw'), 'a lease of the host-gw backend, not vxlan'),
        (lease(BackendData={'VNI': 4, 'VtepMAC': '7a:1b:2c:3d:4e:5f'}), 'VNI 4, but the mesh uses VNI 1 (mesh_node_vxlan_vni)'),
        (lease(BackendData={'VNI': 1}), 'no VtepMAC'),
        (lease(PublicIP='nowhere'), 'no PublicIP'),
        (None, 'not flannel\'s lease JSON'),
    ]
    for value, text in cases:
        found, problems = interop.peers([(KEY, SUBNET, value)], vni=1)
        assert found == {} and len(problems) == 1
        assert problems[0].startswith('etcd key %s: %s' % (KEY, text)) and interop.SETTING in problems[0]
    # our backend is not vxlan: no flanneld host can be a peer
    assert 'not vxlan' in interop.peers([(KEY, SUBNET, lease())], vni=1, backend_type='wireguard')[1][0]
    # an IPv6-only lease: one VTEP reaches only the IPv4 subnet of a flanneld host
    assert 'no IPv4 subnet' in interop.peers([(KEY, {'ipv6_subnet': 'fd00::/64'}, lease())], vni=1)[1][0]


def test_flanneld_peers_join_the_contract_beside_the_members():
    leases = dict(LEASES, flannel_peers={'flanneld@198.18.0.19': {'subnet': '10.244.9.0/24', 'underlay': '198.18.0.19',
                                                                  'vtep_mac': '7a:1b:2c:3d:4e:5f'}})
    contract, _warnings = inputs.node_contract(variables(), 'node1', INFO, leases, ['node1', 'node2'])
    assert [peer['name'] for peer in contract['peers']] == ['flanneld@198.18.0.19', 'node2']
    assert contract['peers'][0] == {'name': 'flanneld@198.18.0.19', 'subnet': '10.244.9.0/24', 'underlay': '198.18.0.19',
                                    'vtep_mac': '7a:1b:2c:3d:4e:5f'}


def test_through_a_real_etcd_flanneld_hosts_are_peers_and_a_bad_lease_stops_before_any_write(tmp_path):
    cluster = etcd_lab.Cluster(tmp_path / 'etcd').start()
    try:
        client, prefix = cluster.client(), '/test/interop'
        backend = {'type': 'vxlan', 'vni': 1, 'port': 8472}
        # a fleet running flanneld: its config, and a lease with a TTL, as flanneld writes them
        client.put(prefix + '/config', json.dumps({'Network': '10.244.0.0/16', 'Backend': {'Type': 'vxlan'}}))
        client.put(prefix + '/subnets/10.244.1.0-24', json.dumps(lease()), lease=client.grant(3600))
        run = R.update_etcd(client, L.make_config('10.244.0.0/16'), ['a'], prefix=prefix, backend=backend, flannel_peers=True)
        assert run.alloc.leases == {'a': {'subnet': '10.244.2.0/24'}}  # its subnet is taken
        assert run.flannel_peers == {'flanneld@198.18.0.19': {'subnet': '10.244.1.0/24', 'underlay': '198.18.0.19',
                                                              'vtep_mac': '7a:1b:2c:3d:4e:5f'}}
        # off (the default): only a taken subnet
        assert R.update_etcd(client, L.make_config('10.244.0.0/16'), ['a'], prefix=prefix, backend=backend).flannel_peers == {}
        # a flanneld on another VNI, and a flannel config on another port: both reported, nothing written
        client.put(prefix + '/subnets/10.244.3.0-24', json.dumps(lease(PublicIP='198.18.0.20', BackendData={
            'VNI': 4, 'VtepMAC': '7a:1b:2c:3d:4e:60'})), lease=client.grant(3600))
        client.put(prefix + '/config', json.dumps({'Network': '10.244.0.0/16', 'Backend': {'Type': 'vxlan', 'Port': 4789}}))
        revision = client.range_prefix(prefix + '/')[0]
        with pytest.raises(L.LeaseError) as err:
            R.update_etcd(client, L.make_config('10.244.0.0/16'), ['a', 'b'], prefix=prefix, backend=backend, flannel_peers=True)
        text = str(err.value)
        assert 'etcd key %s/subnets/10.244.3.0-24: VNI 4, but the mesh uses VNI 1' % prefix in text
        assert "etcd key %s/config (flannel's): vxlan port 4789, but the mesh uses 8472" % prefix in text
        assert client.range_prefix(prefix + '/')[0] == revision
    finally:
        cluster.stop()
