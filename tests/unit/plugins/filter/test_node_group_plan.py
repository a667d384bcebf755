# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The overlay.mesh.node_group_plan filter: the mesh_node role's group decisions, once per run, with the messages the
role's group checks print (tests/integration/test_bad_input.py greps them on real runs)."""

from __future__ import annotations

from ansible_collections.overlay.mesh.plugins.filter import node_contract as module
from ansible_collections.overlay.mesh.plugins.plugin_utils import _node_plan

from test_node_contracts import hostvars, info

PLAN = module.FilterModule().filters()['node_group_plan']
HOSTS = ['node1', 'node2', 'node3']
GROUPS = {'overlay': HOSTS, 'other': ['node9']}


def plan(facts=None, play=None, play_all=None, **options):
    options.setdefault('groups', GROUPS)
    return PLAN(HOSTS, facts or hostvars(), 'overlay', play or HOSTS, play_all or play or HOSTS, **options)


def test_a_host_leaves_when_removed_or_absent_and_members_keep_their_pins():
    facts = hostvars(node2={'mesh_node_subnet': '10.244.9.0/24'}, node3={'mesh_node_state': 'absent', 'mesh_node_subnet': '10.244.7.0/24'})
    got = plan(facts, remove='node1, ')
    assert (got['members'], got['leaving'], got['remove']) == (['node2'], ['node1', 'node3'], ['node1'])
    assert got['pinned'] == {'node2': '10.244.9.0/24'}
    assert got['group_pinned'] == {'node2': '10.244.9.0/24', 'node3': '10.244.7.0/24'}
    assert got['problems'] == []


def test_hosts_outside_the_play_are_read_from_the_inventory():
    facts = hostvars()
    facts['node3'] = {'mesh_node_state': 'absent'}  # outside a --limit: no mesh_node__inputs fact
    got = plan(facts, play=['node1', 'node2'])
    assert got['leaving'] == ['node3']
    # ... but its lease is not released by a run it is not in: it still uses its subnet (a new host would get it)
    assert (got['release'], got['absent_kept'], got['problems']) == ([], ['node3'], [])
    # in the play, or named in mesh_node_remove (a host that is gone: the remove playbook), it is released
    assert plan(facts)['release'] == ['node3']
    assert plan(facts, play=['node1', 'node2'], remove='node3')['release'] == ['node3']


def test_a_setting_from_the_playbook_is_the_one_hosts_outside_a_limit_would_have():
    # the playbook sets mesh_node_backend: udp in its vars: node1 (in the play) has it in its inputs, not in the
    # inventory; node3 (outside the --limit) sets nothing in the inventory, so a run with it would give it udp too
    facts = hostvars(node1={'mesh_node_backend': 'udp'})
    facts['node3'] = {}
    assert plan(facts, play=['node1'])['problems'] == []
    # a value node3 sets in the inventory is its own, and still compared
    facts['node3'] = {'mesh_node_backend': 'vxlan'}
    assert plan(facts, play=['node1'])['problems'] == [
        'mesh_node_backend differs across the group (udp on node1, node2; vxlan on node3); every host of the overlay needs the same'
        ' value (set it in group_vars)']


def test_every_group_problem_names_the_host_and_the_role_variable():
    assert plan(remove=['node9'])['problems'] == ['%s: mesh_node_remove: node9 not in group overlay' % host for host in HOSTS]
    assert plan(rotate='node8,node9')['problems'] == ['%s: mesh_node_rotate_keys: node8, node9 not in group overlay' % host
                                                      for host in HOSTS]
    assert PLAN(['node9'], hostvars(), 'other', ['node1'], ['node1'], groups=GROUPS)['problems'] == [
        'node1: mesh_node_group: host is not in group other']
    assert PLAN([], hostvars(), 'nosuch', ['node1'], ['node1'], groups=GROUPS)['problems'] == [
        'node1: mesh_node_group: no inventory group nosuch']
    assert plan(play=['node1'], play_all=['node1', 'node2'])['problems'] == ['not changing anything: node2 failed before']
    assert plan(play=['node1', 'node2'], rotate=['node1'])['problems'] == [
        'mesh_node_rotate_keys: run the rotation of node1 on the whole group overlay (not with --limit): node3 would keep the old key']
    assert plan(hostvars(node3={'mesh_node_vxlan_vni': 7}))['problems'] == [
        'mesh_node_vxlan_vni differs across the group (1 on node1, node2; 7 on node3); every host of the overlay needs the same value'
        ' (set it in group_vars)']


def test_after_the_hosts_are_read_it_gives_their_records_reports_and_why_not_to_go_on():
    facts = hostvars()
    facts['node1']['mesh_node__host'] = dict(info(1), record={'subnet': '10.244.1.0/24', 'underlay': '198.18.0.11'})
    got = plan(facts, info_key='mesh_node__host')
    assert 'problems' not in got and got['stop'] == []
    assert got['records'] == {'node1': {'subnet': '10.244.1.0/24', 'underlay': '198.18.0.11'}}
    assert got['reports'] == module.node_reports(HOSTS, facts)
    assert sorted(got['reports']) == ['node1', 'node2']  # node3 leaves
    facts['node2']['mesh_node__host'] = {'unreachable': True}
    facts['node3']['mesh_node__host'] = dict(info(3), prerequisites={'message': 'missing nft: apt install nftables'})
    assert plan(facts, play_all=HOSTS + ['node4'], info_key='mesh_node__host')['stop'] == [
        'not changing anything on %s: node4, node2 could not be read (unreachable or failed); fix it, or leave it out with --limit'
        ' (its lease and peer entries are kept); node3: missing nft: apt install nftables' % 'node1, node3']


def test_a_large_play_is_told_why_not_to_go_on_once_naming_a_few_hosts():
    play = ['node%d' % n for n in range(1, 101)]
    infos = dict((host, {'unreachable': True} if host == 'node7' else {}) for host in play)
    stop = _node_plan.read_plan([h for h in play if h != 'node7'], play, infos.get)['stop']
    assert stop == ['not changing anything on node1, node2, node3, node4, node5, node6, node8, node9 and 91 more: node7 could not'
                    ' be read (unreachable or failed); fix it, or leave it out with --limit (its lease and peer entries are kept)']
    # none could be read: nobody to name before the colon
    assert _node_plan.read_plan([], ['node1'], {}.get)['stop'] == [
        'not changing anything: node1 could not be read (unreachable or failed); fix it, or leave it out with --limit (its lease'
        ' and peer entries are kept)']


def test_a_file_a_host_would_not_write_over_stops_every_host():
    refused = 'not writing over ...: subnet.env /etc/x (role variable mesh_node_subnet_env_file): holds what overlay.mesh did not write'
    infos = {'node1': {}, 'node2': {'files_refused': refused}, 'node3': {'files_refused': ''}}
    assert _node_plan.read_plan(HOSTS, HOSTS, infos.get)['stop'] == [
        'not changing anything on node1, node2, node3: node2: not writing over ...: subnet.env /etc/x (role variable'
        ' mesh_node_subnet_env_file): holds what overlay.mesh did not write']
