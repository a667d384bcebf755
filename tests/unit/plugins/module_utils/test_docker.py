# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Docker beside the overlay: one subnet, two bridges that never share addresses, the rules for DOCKER-USER.
(The rules in a real Docker's chain, a Docker restart and containers across hosts: molecule runtimes.)"""

from __future__ import annotations

import json

import pytest

from ansible_collections.overlay.mesh.plugins.module_utils import _docker
from ansible_collections.overlay.mesh.plugins.module_utils import _node_files as files
from ansible_collections.overlay.mesh.plugins.module_utils import _node_spec as spec
from ansible_collections.overlay.mesh.plugins.module_utils._spec import SpecError

from test_node_spec import MACHINE_ID, contract


def test_docker_gets_the_upper_half_and_the_cni_bridge_the_lower_half():
    node = spec.normalize(contract(docker={'enabled': True}), machine_id=MACHINE_ID)
    assert str(node.bridge_subnet) == '10.244.1.0/25' and str(node.gateway) == '10.244.1.1'
    assert _docker.settings(node) == {'bip': '10.244.1.129/25', 'mtu': 1450, 'ip-masq': False}
    ranges = json.loads(files.cni_conflist(node))['plugins'][0]['ipam']['ranges']
    assert ranges == [[{'subnet': '10.244.1.0/25', 'gateway': '10.244.1.1'}]]
    # the whole subnet is still this host's: flannel's subnet.env and the peers' routes
    assert 'FLANNEL_SUBNET=10.244.1.1/24\n' in files.subnet_env(node.network, node.subnet, node.mtu)


def test_without_docker_the_bridge_has_the_whole_subnet():
    node = spec.normalize(contract(), machine_id=MACHINE_ID)
    assert node.bridge_subnet == node.subnet
    assert json.loads(files.cni_conflist(node))['plugins'][0]['ipam']['ranges'][0][0]['subnet'] == '10.244.1.0/24'


def test_the_cni_network_publishes_ports_with_portmap_after_the_bridge():
    """flannel's conflist chains portmap with the portMappings capability: a runtime's -p works."""
    plugins = json.loads(files.cni_conflist(spec.normalize(contract(), machine_id=MACHINE_ID)))['plugins']
    assert [plugin['type'] for plugin in plugins] == ['bridge', 'portmap']
    assert plugins[1] == {'type': 'portmap', 'capabilities': {'portMappings': True}, 'snat': True}


def test_docker_does_not_masquerade_the_overlay_only_when_the_node_masquerades():
    node = spec.normalize(contract(docker={'enabled': True}, firewall={'masquerade': False}), machine_id=MACHINE_ID)
    assert 'ip-masq' not in _docker.settings(node)


def test_a_subnet_too_small_to_split_is_refused_naming_the_setting():
    raw = contract(docker={'enabled': True}, network='10.244.0.0/16', subnet='10.244.1.0/29',
                   peers=[{'name': 'node2', 'subnet': '10.244.1.8/29', 'underlay': '198.18.0.12', 'vtep_mac': '02:00:00:00:00:02'}])
    with pytest.raises(SpecError) as info:
        spec.normalize(raw, machine_id=MACHINE_ID)
    assert 'docker.enabled' in dict(info.value.problems)
    assert '16 addresses' in dict(info.value.problems)['docker.enabled']


def test_rules_accept_the_overlay_network_both_ways_as_iptables_prints_them():
    assert _docker.wanted_rules('10.244.0.0/16') == ['-s 10.244.0.0/16 -m comment --comment overlay.mesh -j ACCEPT',
                                                     '-d 10.244.0.0/16 -m comment --comment overlay.mesh -j ACCEPT']
