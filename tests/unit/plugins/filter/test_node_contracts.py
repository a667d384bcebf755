# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The overlay.mesh.node_contracts and node_reports filters: every host of the play's contract and record, once."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.overlay.mesh.plugins.filter import node_contract as module

FILTERS = module.FilterModule().filters()
BASE = {'mesh_node_network': '10.244.0.0/16'}


def info(number):
    mac = '02:00:00:00:02:%02x' % number
    return {'underlay': {'address': '198.18.0.%d' % (10 + number), 'interface': 'eth0', 'mtu': 1500, 'network': '198.18.0.0/24'},
            'identity': {'bridge': {'name': 'cni0', 'mac': '02:00:00:00:01:%02x' % number},
                         'backend': {'type': 'vxlan', 'device': 'mesh.1', 'mac': mac}, 'publish': {'vtep_mac': mac}}}


def hostvars(**inputs):
    """The facts the role sets: node1 and node2 join, node3 leaves."""
    return {host: {'mesh_node__inputs': dict(BASE, **inputs.get(host, {})), 'mesh_node__host': info(number),
                   'mesh_node__present': host != 'node3'}
            for number, host in enumerate(('node1', 'node2', 'node3'), 1)}


LEASES = {'network': '10.244.0.0/16', 'leases': {
    'node1': {'subnet': '10.244.1.0/24', 'underlay': '198.18.0.11', 'vtep_mac': '02:00:00:00:02:01'},
    'node2': {'subnet': '10.244.2.0/24', 'underlay': '198.18.0.12', 'vtep_mac': '02:00:00:00:02:02'}}}


def test_the_filters_are_registered_beside_the_one_host_filter():
    assert {'node_contract', 'node_contracts', 'node_reports', 'node_group_problems'} <= set(FILTERS)


def test_every_host_gets_what_the_one_host_filter_gives_it():
    facts = hostvars()
    hosts = ['node1', 'node2', 'node3']
    drafts = FILTERS['node_contracts'](hosts, facts, info_key='')
    checked = FILTERS['node_contracts'](hosts, facts)
    whole = FILTERS['node_contracts'](hosts, facts, LEASES, ['node1', 'node2'])
    one = FILTERS['node_contract']
    for host in hosts:
        variables, found = facts[host]['mesh_node__inputs'], facts[host]['mesh_node__host']
        assert drafts[host] == one(variables, host)
        assert checked[host] == one(variables, host, found)
        joined = facts[host]['mesh_node__present']
        assert whole[host] == (one(variables, host, found, LEASES, ['node1', 'node2']) if joined else checked[host])
    assert whole['node1']['subnet'] == '10.244.1.0/24' and [peer['name'] for peer in whole['node1']['peers']] == ['node2']


def test_a_refused_contract_names_every_host_and_variable(monkeypatch):
    with pytest.raises(AnsibleFilterError) as caught:
        FILTERS['node_contracts'](['node1', 'node2', 'node3'], hostvars(node1={'mesh_node_vxlan_vni': 0}, node3={'mesh_node_vxlan_vni': 0}))
    assert str(caught.value).splitlines() == ['node1: mesh_node_vxlan_vni: 0 is outside 1-16777215',
                                              'node3: mesh_node_vxlan_vni: 0 is outside 1-16777215']
    warnings = []
    monkeypatch.setattr(module.display, 'warning', warnings.append)
    FILTERS['node_contracts'](['node1', 'node2'], hostvars(node2={'mesh_node_vxaln_vni': 1}), info_key='', warn_unknown=True)
    assert warnings == ['node2: mesh_node_vxaln_vni is not a variable of the overlay.mesh.mesh_node role (ignored)']


def test_joining_hosts_report_their_underlay_and_published_keys():
    assert FILTERS['node_reports'](['node1', 'node3'], hostvars()) == {
        'node1': {'address': '198.18.0.11', 'network': '198.18.0.0/24', 'vtep_mac': '02:00:00:00:02:01'}}
