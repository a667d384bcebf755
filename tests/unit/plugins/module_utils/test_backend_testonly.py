# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The test-only backend (backend_ipip_testonly.py: registered here, one line) end to end on the controller: its
new published field goes through the lease file on disk and a real etcd 3.4 server and back into the peers of a
node contract, a bad or shared value is refused naming the host, and its IP protocol gets the firewall's rules.
(On a kernel, through the node engine: tests/integration/test_netns_backends.py.)"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ansible_collections.overlay.mesh.plugins.module_utils import _lease_schema, _nftables, _node_module
from ansible_collections.overlay.mesh.plugins.module_utils import _node_spec as spec
from ansible_collections.overlay.mesh.plugins.module_utils._backends import registry
from ansible_collections.overlay.mesh.plugins.plugin_utils import _leases as L
from ansible_collections.overlay.mesh.plugins.plugin_utils import _registry as R

import backend_ipip_testonly as testonly

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'plugin_utils'))
import etcd_lab  # noqa: E402 pylint: disable=wrong-import-position,wrong-import-order

MACHINE = '0123456789abcdef0123456789abcdef'
IDS = {'a': '00000000000000a1', 'b': '00000000000000b2', 'c': '00000000000000c3'}
UNDERLAY = dict((host, {'address': '198.18.0.%d' % (number + 11), 'tunnel_id': IDS[host]}) for number, host in enumerate(sorted(IDS)))


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    testonly.register(monkeypatch)


def contract_of(host, leases):
    """A's node contract with its peers from the leases, as the controller and the node agent build them."""
    record = leases[host]
    return {'underlay': {'address': record['underlay'], 'interface': 'eth0', 'mtu': 1500}, 'network': '10.244.0.0/16',
            'subnet': record['subnet'], 'backend': {'type': testonly.NAME},
            'peers': _lease_schema.contract_peers(host, leases, sorted(leases), testonly.Backend)}


def test_the_new_field_round_trips_through_the_lease_file_into_the_peers(tmp_path):
    path = str(tmp_path / 'leases.yml')
    config = L.make_config()
    alloc, dummy, text = L.update_lease_file(path, config, sorted(IDS), underlay=UNDERLAY)
    assert 'tunnel_id: "00000000000000a1"' in text  # readable, one line per host
    assert L.read_lease_file(path)[1] == alloc.leases
    # hosts that report nothing this time keep their published data from the file
    again, dummy, same = L.update_lease_file(path, config, sorted(IDS), underlay={})
    assert same == text and again.leases == alloc.leases
    node = spec.normalize(contract_of('a', again.leases), machine_id=MACHINE)
    assert [(peer['name'], peer['tunnel_id']) for peer in node.peers] == [('b', IDS['b']), ('c', IDS['c'])]


def test_a_lease_file_of_before_loads_and_gains_the_field_in_the_same_format(tmp_path):
    path = tmp_path / 'leases.yml'
    config = L.make_config()
    old = L.render_lease_file(config, {'a': {'subnet': '10.244.1.0/24', 'underlay': '198.18.0.11',
                                             'vtep_mac': '02:00:00:00:00:01'}})
    path.write_text(old)
    alloc, before, after = L.update_lease_file(str(path), config, ['a'], underlay={'a': UNDERLAY['a']})
    assert before == old and alloc.leases['a'] == {'subnet': '10.244.1.0/24', 'underlay': '198.18.0.11',
                                                   'vtep_mac': '02:00:00:00:00:01', 'tunnel_id': IDS['a']}
    assert after == old.replace('vtep_mac: "02:00:00:00:00:01"}', 'vtep_mac: "02:00:00:00:00:01", tunnel_id: "%s"}' % IDS['a'])


def test_a_bad_or_shared_value_is_refused_by_its_backend_naming_the_host_before_the_file_changes(tmp_path):
    path = tmp_path / 'leases.yml'
    config = L.make_config()
    L.update_lease_file(str(path), config, ['a'], underlay={'a': UNDERLAY['a']})
    before = path.read_bytes()
    with pytest.raises(L.LeaseError) as info:
        L.update_lease_file(str(path), config, ['a', 'b'], underlay={'b': {'address': '198.18.0.12', 'tunnel_id': 'nope'}})
    assert info.value.problems == ["host b: underlay tunnel_id: 'nope' is not a tunnel id (16 hexadecimal digits)"]
    with pytest.raises(L.LeaseError) as info:
        L.update_lease_file(str(path), config, ['a', 'b'], underlay={'b': {'address': '198.18.0.12', 'tunnel_id': IDS['a']}})
    assert info.value.problems == ['hosts a and b have the same tunnel id (a cloned /etc/machine-id?) %s' % IDS['a']]
    assert path.read_bytes() == before


def test_the_new_field_round_trips_through_etcd_in_flannels_schema(tmp_path):
    cluster = etcd_lab.Cluster(tmp_path / 'etcd').start()
    try:
        client = cluster.client()
        run = R.update_etcd(client, L.make_config(), sorted(IDS), prefix='/hs2', underlay=UNDERLAY,
                            backend={'type': testonly.NAME})
        assert run.changed
        values = dict((key, json.loads(value)) for key, value, _mod, _lease in client.range_prefix('/hs2/subnets/')[1])
        value = values['/hs2/subnets/10.244.1.0-24']
        assert value['BackendType'] == testonly.NAME and value['BackendData'] == {'TunnelID': IDS['a']}
        assert value['OverlayMesh'] == {'host': 'a', 'tunnel_id': IDS['a'], 'underlay': '198.18.0.11'}
        # read back with nothing reported: the published field comes from etcd
        again = R.update_etcd(client, L.make_config(), sorted(IDS), prefix='/hs2', underlay={}, backend={'type': testonly.NAME})
        assert not again.changed and again.alloc.leases == run.alloc.leases
        node = spec.normalize(contract_of('b', again.alloc.leases), machine_id=MACHINE)
        assert [(peer['name'], peer['tunnel_id']) for peer in node.peers] == [('a', IDS['a']), ('c', IDS['c'])]
    finally:
        cluster.stop()


def test_its_ip_protocol_gets_the_peers_only_drop_and_notrack_rules():
    leases = L.allocate(L.make_config(), sorted(IDS), underlay=UNDERLAY).leases
    node = spec.normalize(dict(contract_of('a', leases), firewall={'peers_only': True}), machine_id=MACHINE)
    assert node.backend.firewall() == [('ip', 4)] and node.backend.ports() == []
    table = _nftables.render(node, node.backend.firewall())
    assert 'elements = { 198.18.0.12, 198.18.0.13 }' in table
    for rule in ('meta l4proto 4 ip saddr @peers notrack', 'meta l4proto 4 ip daddr @peers notrack',
                 'meta l4proto 4 ip saddr != @peers counter drop'):
        assert '\t\t%s\n' % rule in table, table
    assert 'dport' not in table
    # node_info reports it beside the ports (verify and tests read these)
    facts = _node_module.overlay_facts(node)
    assert (facts['ports'], facts['ip_protocols']) == ([], [4])


def test_registering_it_is_one_line_and_unregistering_leaves_the_registry_as_it_was(monkeypatch):
    assert registry.get(testonly.NAME) is testonly.Backend and 'tunnel_id' in registry.published_fields()
    monkeypatch.undo()
    assert registry.get(testonly.NAME) is None and 'tunnel_id' not in registry.published_fields()
