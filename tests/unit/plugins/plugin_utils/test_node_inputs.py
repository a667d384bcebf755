# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role's variables -> a host's node contract, with errors naming the host and the variable."""

from __future__ import annotations

import pathlib

import pytest
import yaml

from ansible_collections.overlay.mesh.plugins.plugin_utils import _node_inputs as inputs

VARIABLES = {'mesh_node_group': 'overlay', 'mesh_node_state': 'present', 'mesh_node_remove': [],
             'mesh_node_network': '10.244.0.0/16'}
INFO = {'underlay': {'address': '198.18.0.11', 'interface': 'eth0', 'mtu': 1500, 'network': '198.18.0.0/24'},
        'identity': {'bridge': {'name': 'cni0', 'mac': '02:00:00:00:01:01'},
                     'backend': {'type': 'vxlan', 'device': 'mesh.1', 'mac': '02:00:00:00:02:01'},
                     'publish': {'vtep_mac': '02:00:00:00:02:01'}}}
LEASES = {'network': '10.244.0.0/16', 'leases': {
    'node1': {'subnet': '10.244.1.0/24', 'underlay': '198.18.0.11', 'vtep_mac': '02:00:00:00:02:01'},
    'node2': {'subnet': '10.244.2.0/24', 'underlay': '198.18.0.12', 'vtep_mac': '02:00:00:00:02:02'},
    'node3': {'subnet': '10.244.3.0/24'},  # never converged: no underlay yet
    'gone': {'subnet': '10.244.4.0/24', 'underlay': '198.18.0.14', 'vtep_mac': '02:00:00:00:02:04'}}}


def variables(**extra):
    return dict(VARIABLES, **extra)


def test_the_whole_contract_of_a_host():
    contract, warnings = inputs.node_contract(variables(mesh_node_vxlan_vni='1', mesh_node_ipmasq=False), 'node1',
                                              INFO, LEASES, ['node1', 'node2', 'node3'])
    assert warnings == []
    assert contract['subnet'] == '10.244.1.0/24' and contract['mtu'] == 1450
    assert contract['underlay'] == {'address': '198.18.0.11', 'interface': 'eth0', 'mtu': 1500, 'network': '198.18.0.0/24'}
    assert contract['bridge'] == {'name': 'cni0', 'mac': '02:00:00:00:01:01'}
    assert contract['backend'] == {'type': 'vxlan', 'vni': 1, 'port': 8472, 'device': 'mesh.1', 'mac': '02:00:00:00:02:01',
                                   'recreate': False, 'direct_routing': False}
    assert contract['firewall']['masquerade'] is False
    # node3 has not converged yet, 'gone' is not a member
    assert contract['peers'] == [{'name': 'node2', 'subnet': '10.244.2.0/24', 'underlay': '198.18.0.12',
                                  'vtep_mac': '02:00:00:00:02:02'}]


def test_backend_options_follow_the_naming_convention():
    contract, _warnings = inputs.node_contract(variables(mesh_node_backend='udp', mesh_node_udp_port=9000,
                                                         mesh_node_vxlan_vni=5), 'node1')
    assert contract['backend'] == {'type': 'udp', 'port': 9000, 'device': 'mesh-udp'}


def test_errors_name_the_host_and_the_variable():
    with pytest.raises(inputs.InputError) as info:
        inputs.node_contract(variables(mesh_node_vxlan_vni=0, mesh_node_bridge='x' * 16, mesh_node_mtu=1460,
                                       mesh_node_route_protocol='static'), 'node7', INFO)
    message = str(info.value)
    assert message.startswith('node7: ')
    for expected in ('mesh_node_vxlan_vni: 0 is outside 1-16777215', 'mesh_node_bridge: ', 'mesh_node_route_protocol: must be an integer'):
        assert expected in message


def test_mtu_against_the_underlay_before_any_lease():
    with pytest.raises(inputs.InputError, match='node1: mesh_node_mtu: 1460 is larger than the underlay MTU 1500'):
        inputs.node_contract(variables(mesh_node_mtu=1460), 'node1', INFO)
    contract, warnings = inputs.node_contract(variables(mesh_node_mtu=1200), 'node1', INFO)
    assert contract['mtu'] == 1200 and 'IPv6' in warnings[0]


def test_unknown_variables_are_found():
    names = dict(variables(mesh_node_vxaln_vni=1, mesh_node_vxlan_vni=1, mesh_node_udp_port=1, mesh_node__internal=1,
                           mesh_node_udp_vni=1))
    assert inputs.unknown_variables(names) == ['mesh_node_udp_vni', 'mesh_node_vxaln_vni']


def test_group_wide_settings_must_agree():
    values = {'node1': {}, 'node2': {'mesh_node_network': '10.245.0.0/16', 'mesh_node_vxlan_vni': '1'},
              'node3': {'mesh_node_vxlan_vni': 7, 'mesh_node_network': '10.244.0.0/16'}}
    problems = inputs.group_problems(list(values), lambda host, name: values[host].get(name))
    assert problems == [
        'mesh_node_network differs across the group (10.244.0.0/16 on node1, node3; 10.245.0.0/16 on node2); '
        'every host of the overlay needs the same value (set it in group_vars)',
        'mesh_node_vxlan_vni differs across the group (1 on node1, node2; 7 on node3); '
        'every host of the overlay needs the same value (set it in group_vars)']


def test_backends_that_differ_are_reported_once_and_their_options_not_compared():
    values = {'a': {'mesh_node_backend': 'udp', 'mesh_node_udp_port': 1}, 'b': {'mesh_node_vxlan_vni': 3}}
    problems = inputs.group_problems(list(values), lambda host, name: values[host].get(name))
    assert len(problems) == 1 and problems[0].startswith('mesh_node_backend differs across the group (udp on a; vxlan on b)')
    values = {'a': {'mesh_node_backend': 'udp'}, 'b': {'mesh_node_backend': 'udp', 'mesh_node_udp_port': 8285}}
    assert inputs.group_problems(list(values), lambda host, name: values[host].get(name)) == []


def test_the_role_default_network_is_the_one_the_check_assumes():
    from pathlib import Path
    import yaml
    defaults = yaml.safe_load((Path(__file__).resolve().parents[4] / 'roles' / 'mesh_node' / 'defaults' / 'main.yml').read_text())
    assert defaults['mesh_node_network'] == inputs.GROUP_VARIABLES['mesh_node_network']


def test_an_unset_subnet_length_is_flannels_default_and_play_vars_count():
    values = {'a': {'mesh_node_subnet_len': 24}, 'b': {}, 'c': {'mesh_node_subnet_len': '24'}}
    assert inputs.group_problems(list(values), lambda host, name: values[host].get(name)) == []
    values['b']['mesh_node_vxlan_direct_routing'] = True
    assert inputs.group_problems(list(values), lambda host, name: values[host].get(name))[0].startswith(
        'mesh_node_vxlan_direct_routing differs across the group (false on a, c; true on b)')


def test_wireguard_public_keys_come_from_the_hosts_never_from_role_variables():
    own, peer = 'AQEB' * 10 + 'AQE=', 'AgIC' * 10 + 'AgI='
    info = dict(INFO, identity={'bridge': INFO['identity']['bridge'],
                                'backend': {'type': 'wireguard', 'device': 'mesh-wg', 'public_key': own},
                                'publish': {'public_key': own}})
    leases = {'network': '10.244.0.0/16', 'leases': {
        'node1': {'subnet': '10.244.1.0/24', 'underlay': '198.18.0.11', 'public_key': own},
        'node2': {'subnet': '10.244.2.0/24', 'underlay': '198.18.0.12', 'public_key': peer, 'vtep_mac': '02:00:00:00:02:02'},
        'node3': {'subnet': '10.244.3.0/24', 'underlay': '198.18.0.13'}}}  # its key is still to be made: not a peer yet
    contract, _warnings = inputs.node_contract(variables(mesh_node_backend='wireguard', mesh_node_wireguard_public_key=peer),
                                               'node1', info, leases, ['node1', 'node2', 'node3'])
    assert contract['backend']['public_key'] == own and contract['mtu'] == 1440
    assert contract['peers'] == [{'name': 'node2', 'subnet': '10.244.2.0/24', 'underlay': '198.18.0.12', 'public_key': peer}]
    assert inputs.unknown_variables(['mesh_node_wireguard_public_key', 'mesh_node_wireguard_keepalive',
                                     'mesh_node_rotate_keys']) == ['mesh_node_wireguard_public_key']


def test_every_variable_of_the_argument_spec_is_known():
    # a variable the role documents must never be warned about as unknown (the registry's came without it)
    spec = yaml.safe_load((pathlib.Path(__file__).resolve().parents[4] / 'roles/mesh_node/meta/argument_specs.yml').read_text())
    options = spec['argument_specs']['main']['options']
    assert 'mesh_node_etcd_endpoints' in options
    assert inputs.unknown_variables(options) == []
    assert inputs.unknown_variables(['mesh_node_etcd_endpont']) == ['mesh_node_etcd_endpont']


def test_a_public_address_is_what_peers_reach_the_host_at_and_bad_ones_are_refused_naming_host_and_variable():
    assert inputs.public_address(variables(), 'node1', INFO) == '198.18.0.11'  # none set: the underlay address
    assert inputs.public_address(variables(), 'node1') is None  # before node_info
    assert inputs.public_address(variables(mesh_node_public_address=' 203.0.113.7 '), 'node1', INFO) == '203.0.113.7'
    assert inputs.public_address(variables(mesh_node_public_address='2001:DB8::7'), 'node1') == '2001:db8::7'
    for extra, message in (
            ({'mesh_node_public_address': 'gateway'}, "'gateway' is not an IP address"),
            ({'mesh_node_public_address': '2001:db8::7'}, '2001:db8::7 is IPv6 but the underlay address 198.18.0.11 is IPv4'),
            ({'mesh_node_public_address': '10.244.9.9'}, 'inside the overlay network 10.244.0.0/16 (mesh_node_network)'),
            ({'mesh_node_public_address': '203.0.113.7', 'mesh_node_backend': 'host-gw'}, 'the host-gw backend routes')):
        with pytest.raises(inputs.InputError) as info:
            inputs.public_address(variables(**extra), 'node5', INFO)
        assert str(info.value).startswith('node5: mesh_node_public_address: ') and message in str(info.value), str(info.value)
        # the contract check, which runs before any change, refuses it too
        with pytest.raises(inputs.InputError, match='node5: mesh_node_public_address: '):
            inputs.node_contract(variables(**extra), 'node5', INFO)
    # with vxlan, udp and wireguard the contract takes it; a peer's endpoint is what its lease record publishes
    for backend in ('vxlan', 'udp', 'wireguard'):
        inputs.node_contract(variables(mesh_node_public_address='203.0.113.7', mesh_node_backend=backend), 'node1')
    leases = {'network': '10.244.0.0/16', 'leases': dict(LEASES['leases'], node2=dict(LEASES['leases']['node2'], underlay='203.0.113.7'))}
    contract, _warnings = inputs.node_contract(variables(), 'node1', INFO, leases, ['node1', 'node2'])
    assert [peer['underlay'] for peer in contract['peers']] == ['203.0.113.7']


def info_of(number):
    """node_info's result for host number `number` (its own underlay address and VTEP MAC)."""
    mac = '02:00:00:00:02:%02x' % number
    return {'underlay': dict(INFO['underlay'], address='198.18.0.%d' % (10 + number)),
            'identity': {'bridge': INFO['identity']['bridge'], 'backend': {'type': 'vxlan', 'device': 'mesh.1', 'mac': mac},
                         'publish': {'vtep_mac': mac}}}


def test_the_contracts_of_the_play_at_once_are_each_hosts_own():
    # node_contracts (the role's run_once) gives every host what node_contract gives it alone
    hosts = {'node1': (variables(), info_of(1), True), 'node2': (variables(), info_of(2), True),
             'node3': (variables(mesh_node_state='absent'), info_of(3), False)}
    leases = {'network': '10.244.0.0/16', 'leases': {
        'node1': {'subnet': '10.244.1.0/24', 'underlay': '198.18.0.11', 'vtep_mac': '02:00:00:00:02:01'},
        'node2': {'subnet': '10.244.2.0/24', 'underlay': '198.18.0.12', 'vtep_mac': '02:00:00:00:02:02'}}}
    members = ['node1', 'node2']
    for given in (None, leases):
        built = inputs.node_contracts(list(hosts), lambda h: hosts[h][0], lambda h: hosts[h][1], lambda h: hosts[h][2],
                                      leases=given, members=members)
        assert sorted(built) == ['node1', 'node2', 'node3']
        for host, (variables_, info, present) in hosts.items():
            alone = inputs.node_contract(variables_, host, info, given if present else None, members)
            assert built[host] == alone
    assert [peer['name'] for peer in built['node1'][0]['peers']] == ['node2']
    assert not built['node3'][0].get('subnet') and not built['node3'][0].get('peers')  # a leaving host: no lease, no peers


def test_the_contracts_of_the_play_name_every_host_refused():
    hosts = {'node1': info_of(1), 'node2': info_of(2), 'node3': info_of(3)}
    with pytest.raises(inputs.InputError) as info:
        inputs.node_contracts(sorted(hosts), lambda h: variables(mesh_node_mtu=1460 if h != 'node2' else 1400),
                              hosts.get, lambda h: True)
    lines = str(info.value).splitlines()
    assert [line.split(':')[0] for line in lines] == ['node1', 'node3']
    assert all('mesh_node_mtu: 1460 is larger than the underlay MTU 1500' in line for line in lines)


def test_a_joining_host_reports_its_underlay_and_what_its_backend_publishes():
    from ansible_collections.overlay.mesh.plugins.plugin_utils._node_report import node_report
    assert node_report(info_of(4)) == {'address': '198.18.0.14', 'network': '198.18.0.0/24', 'vtep_mac': '02:00:00:00:02:04'}
    assert node_report(info_of(4), present=False) == {}


def test_the_reports_publish_the_public_address_where_one_is_set():
    from ansible_collections.overlay.mesh.plugins.filter.node_contract import node_reports
    hostvars = {'node1': {'mesh_node__host': info_of(1), 'mesh_node__present': True, 'mesh_node__inputs': variables()},
                'node2': {'mesh_node__host': info_of(2), 'mesh_node__present': True,
                          'mesh_node__inputs': variables(mesh_node_public_address='203.0.113.7')}}
    reports = node_reports(['node1', 'node2'], hostvars)
    assert reports['node1']['address'] == '198.18.0.11' and reports['node2']['address'] == '203.0.113.7'
    assert reports['node2']['network'] == '198.18.0.0/24'
