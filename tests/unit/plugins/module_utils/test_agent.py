# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node agent's bookkeeping: which peers a watch response changes, and that it never asks for more than them.

What it does to a kernel is tested on lab hosts (molecule agent), against a real etcd with TLS; here the applying
step is recorded instead, so that every case of the diff (join, MAC change, move, leave, a transaction that
replaces a key, a damaged lease, flanneld's leases, our own lease) is checked exactly. The installed engine (no
Ansible) must start the agent and say clearly why it cannot run without its settings.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import struct
import subprocess
import sys
import threading
import time

import pytest

from ansible_collections.overlay.mesh.plugins.module_utils import _agent
from ansible_collections.overlay.mesh.plugins.module_utils import _agent_address
from ansible_collections.overlay.mesh.plugins.module_utils import _agent_etcd
from ansible_collections.overlay.mesh.plugins.module_utils import _host
from ansible_collections.overlay.mesh.plugins.module_utils import _lease_schema as schema
from ansible_collections.overlay.mesh.plugins.module_utils import _node_apply

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'plugin_utils'))
import etcd_lab  # noqa: E402  pylint: disable=wrong-import-position,wrong-import-order  # the unit tests' real etcd

PREFIX = '/coreos.com/network'
SUBNETS = PREFIX + '/subnets/'
BACKEND = schema.backend_settings({'type': 'vxlan', 'vni': 1, 'port': 8472})
NODE = {'version': 1, 'underlay': {'address': '198.18.0.11', 'interface': 'eth0', 'mtu': 1500},
        'network': '10.244.0.0/16', 'subnet': '10.244.1.0/24', 'mtu': 1450,
        'bridge': {'name': 'cni0', 'mac': '02:00:00:00:01:01'},
        'backend': {'type': 'vxlan', 'vni': 1, 'port': 8472, 'device': 'mesh.1', 'mac': '02:00:00:00:02:01'},
        'peers': [], 'agent': {'enabled': True, 'name': 'node1', 'endpoints': ['http://198.18.0.11:2379'], 'flannel_peers': True}}


def lease(host, subnet, underlay, mac):
    record = {'subnet': subnet, 'underlay': underlay, 'vtep_mac': mac}
    return schema.subnet_key(PREFIX, record), schema.lease_value(host, record, BACKEND)


def flanneld(subnet, underlay, mac):
    key = '%s/subnets/%s' % (PREFIX, subnet.replace('/', '-'))
    return key, json.dumps({'PublicIP': underlay, 'BackendType': 'vxlan', 'BackendData': {'VNI': 1, 'VtepMAC': mac}})


@pytest.fixture
def agent(tmp_path, monkeypatch):
    path = tmp_path / 'node.json'
    path.write_text(json.dumps(NODE))
    lines = []
    made = _agent.Agent(str(path), out=lines.append)
    made.lines, made.applied = lines, []

    def record(peers, what, changed=None, removed=None, underlay=None):
        made.applied.append((what, changed, removed))
        made.raw = dict(made.raw, peers=peers)
        return True

    monkeypatch.setattr(made, '_apply', record)
    monkeypatch.setattr(made, '_write_status', lambda: None)
    kvs = [lease('node1', '10.244.1.0/24', '198.18.0.11', '02:00:00:00:02:01'),
           lease('node2', '10.244.2.0/24', '198.18.0.12', '02:00:00:00:02:02')]
    for index, (key, value) in enumerate(kvs):
        made._take(key, value, index + 1)  # pylint: disable=protected-access
    made.raw = dict(made.raw, peers=made.peers())
    return made


def names(peers):
    return [peer['name'] for peer in peers or []]


def test_the_peers_are_the_controllers(agent):
    assert agent.raw['peers'] == [{'name': 'node2', 'subnet': '10.244.2.0/24', 'underlay': '198.18.0.12', 'vtep_mac': '02:00:00:00:02:02'}]


def test_a_join_applies_the_new_peer_only(agent):
    agent.on_events([('PUT',) + lease('node3', '10.244.3.0/24', '198.18.0.13', '02:00:00:00:02:03') + (7,)])
    (what, changed, removed), = agent.applied
    assert names(changed) == ['node3'] and removed == [] and 'added node3 (10.244.3.0/24 at 198.18.0.13' in what
    assert agent.revision == 7 and names(agent.raw['peers']) == ['node2', 'node3']


def test_a_new_mac_changes_that_peer_and_hands_over_its_old_entry(agent):
    agent.on_events([('PUT',) + lease('node2', '10.244.2.0/24', '198.18.0.12', '02:00:00:00:0f:02') + (8,)])
    (what, changed, removed), = agent.applied
    assert [p['vtep_mac'] for p in changed] == ['02:00:00:00:0f:02'] and [p['vtep_mac'] for p in removed] == ['02:00:00:00:02:02']
    assert what.startswith('revision 8: moved node2')


def test_a_transaction_that_moves_a_host_to_another_key_is_one_change(agent):
    old_key = lease('node2', '10.244.2.0/24', '198.18.0.12', '02:00:00:00:02:02')[0]
    agent.on_events([('DELETE', old_key, '', 9), ('PUT',) + lease('node2', '10.244.9.0/24', '198.18.0.12', '02:00:00:00:02:02') + (9,)])
    (_what, changed, removed), = agent.applied
    assert [p['subnet'] for p in changed] == ['10.244.9.0/24'] and [p['subnet'] for p in removed] == ['10.244.2.0/24']


def test_a_leave_removes_the_peer(agent):
    key = lease('node2', '10.244.2.0/24', '198.18.0.12', '02:00:00:00:02:02')[0]
    agent.on_events([('DELETE', key, '', 10)])
    (what, changed, removed), = agent.applied
    assert changed == [] and names(removed) == ['node2'] and 'removed node2' in what and agent.raw['peers'] == []


def test_our_own_lease_and_unchanged_values_apply_nothing(agent):
    agent.on_events([('PUT',) + lease('node1', '10.244.1.0/24', '198.18.0.11', '02:00:00:00:02:01') + (11,)])
    agent.on_events([('PUT',) + lease('node2', '10.244.2.0/24', '198.18.0.12', '02:00:00:00:02:02') + (12,)])
    assert agent.applied == [] and agent.revision == 12


def test_a_damaged_lease_is_skipped_and_the_others_still_apply(agent):
    key, value = lease('node3', '10.244.3.0/24', '198.18.0.13', 'not-a-mac')
    agent.on_events([('PUT', key, value, 13), ('PUT', SUBNETS + 'garbage', '{}', 13),
                     ('PUT',) + lease('node4', '10.244.4.0/24', '198.18.0.14', '02:00:00:00:02:04') + (13,)])
    (_what, changed, _removed), = agent.applied
    assert names(changed) == ['node4']
    assert any('skipped the lease of node3' in line for line in agent.lines)
    assert any('skipped etcd key %sgarbage' % SUBNETS in line for line in agent.lines)


def test_flanneld_neighbours_are_followed(agent):
    agent.on_events([('PUT',) + flanneld('10.244.50.0/24', '198.18.0.50', '0a:58:0a:f4:32:01') + (14,)])
    agent.on_events([('PUT',) + flanneld('10.244.50.0/24', '198.18.0.50', '0a:58:0a:f4:32:02') + (15,)])
    agent.on_events([('DELETE', flanneld('10.244.50.0/24', '198.18.0.50', '')[0], '', 16)])
    (_w1, added, _r1), (_w2, moved, old), (_w3, none, gone) = agent.applied
    assert names(added) == ['flanneld@198.18.0.50'] and moved[0]['vtep_mac'] == '0a:58:0a:f4:32:02'
    assert old[0]['vtep_mac'] == '0a:58:0a:f4:32:01' and none == [] and names(gone) == ['flanneld@198.18.0.50']


def test_the_installed_engine_starts_the_agent_without_ansible(tmp_path):
    root = tmp_path / 'lib'
    for relative, source in _node_apply.engine_sources().items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    state = tmp_path / 'node.json'
    state.write_text(json.dumps(dict(NODE, agent={'enabled': False})))
    code = ('import sys; sys.path.insert(0, %r)\n'
            'from ansible_collections.overlay.mesh.plugins.module_utils._agent import main\n'
            'assert not [m for m in sys.modules if m == "ansible" or m.startswith("ansible.")]\n'
            'sys.exit(main([%r]))\n') % (str(root), str(state))
    proc = subprocess.run([sys.executable, '-I', '-S', '-c', code], capture_output=True, text=True, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert 'does not turn the agent on (mesh_node_agent)' in proc.stdout


def test_a_host_renamed_or_impersonated_blocks_nobody(agent):
    """Two leases naming one host, or a second host with the same address or MAC (a host renamed in the inventory
    keeps its machine): the contract would refuse the whole list, so those are left out (of two claims, the newer
    lease keeps it), the others applied."""
    agent.on_events([('PUT',) + lease('node2', '10.244.7.0/24', '198.18.0.17', '02:00:00:00:02:07') + (20,),
                     ('PUT',) + lease('node2-renamed', '10.244.8.0/24', '198.18.0.12', '02:00:00:00:02:02') + (20,),
                     ('PUT',) + lease('node9', '10.244.9.0/24', '198.18.0.19', '02:00:00:00:02:09') + (20,)])
    (_what, changed, removed), = agent.applied
    # node2's two keys: neither taken (its twin, alone with its address now, is)
    assert names(changed) == ['node2-renamed', 'node9'] and names(removed) == ['node2']
    assert any('node2 has 2 leases' in line for line in agent.lines)
    agent.on_events([('DELETE', lease('node2', '10.244.7.0/24', '198.18.0.17', '')[0], '', 21)])
    # one key again, but node2's lease is older than its twin's, which has its address and MAC (node2 renamed): the
    # newest lease keeps the claim, as site gives it to the host in the inventory
    assert names(agent.raw['peers']) == ['node2-renamed', 'node9']
    assert any("the lease of node2: address 198.18.0.12 is also node2-renamed's" in line for line in agent.lines)


def test_only_global_address_events_wake_the_agent():
    def message(kind, scope):
        body = struct.pack('=BBBBI', 2, 24, 0, scope, 3) + b'\0' * 8
        return struct.pack('=IHHII', 16 + len(body), kind, 0, 0, 0) + body
    assert _agent_address.global_address_event(message(20, 0))
    assert _agent_address.global_address_event(message(21, 253) + message(21, 0))
    assert not _agent_address.global_address_event(message(20, 253))  # a link-local address


def test_a_site_run_keeps_the_agents_state_in_last_apply(tmp_path, monkeypatch):
    monkeypatch.setattr(_host, 'LAST_APPLY_FILE', str(tmp_path / 'last-apply.json'))
    _host.Host().record_apply('agent', None, agent={'state': 'degraded'})
    _host.Host().record_apply('ansible', None)
    record = json.loads((tmp_path / 'last-apply.json').read_text())
    assert record['by'] == 'ansible' and record['agent'] == {'state': 'degraded'}


class Listing(object):
    """What etcd lists: its revision and the leases."""

    def __init__(self, revision, leases):
        self.revision, self.leases = revision, leases

    def range_prefix(self, _prefix):
        return self.revision, [(key, value, index + 1, 0) for index, (key, value) in enumerate(self.leases)]


def test_etcd_gone_back_in_time_keeps_the_peers_it_lost(agent, monkeypatch):
    """A restore from an older snapshot lists a revision below the one applied: the hosts that joined since are still
    there, so their peers stay (degraded, saying why) until their leases are back; then a real leave applies again."""
    monkeypatch.setattr(agent, 'check_address', lambda: None)
    node1, node2 = lease('node1', '10.244.1.0/24', '198.18.0.11', '02:00:00:00:02:01'), lease('node2', '10.244.2.0/24', '198.18.0.12', '02:00:00:00:02:02')
    node3 = lease('node3', '10.244.3.0/24', '198.18.0.13', '02:00:00:00:02:03')
    agent.client = Listing(50, [node1, node2, node3])
    agent.resync()
    assert names(agent.raw['peers']) == ['node2', 'node3'] and agent.state['state'] == 'synced' and agent.mark == 50
    assert _agent.Agent(agent.path, out=list().append).mark == 50  # kept across restarts, beside node.json

    agent.client = Listing(30, [node1, node2])  # the snapshot was taken before node3 joined
    agent.resync()
    assert names(agent.raw['peers']) == ['node2', 'node3'] and agent.state['state'] == 'degraded'
    assert 'etcd went back in time (it lists revision 30, this host had applied 50' in agent.state['message']
    assert 'keeping 1 peer(s) it no longer has (node3)' in agent.state['message'] and agent.mark == 50
    agent.on_events([('DELETE', node2[0], '', 31)])  # a leave etcd tells of is still applied
    assert names(agent.raw['peers']) == ['node3'] and agent.state['state'] == 'degraded'

    agent.on_events([('PUT',) + node3 + (32,)])  # site registered node3 again: synced, nothing moved
    assert names(agent.raw['peers']) == ['node3'] and agent.state['state'] == 'synced' and agent.mark == 32
    assert any('node3 is in etcd again' in line for line in agent.lines)
    agent.on_events([('DELETE', node3[0], '', 33)])
    assert agent.raw['peers'] == []


def test_a_first_start_or_a_later_revision_keeps_nothing(agent, monkeypatch):
    monkeypatch.setattr(agent, 'check_address', lambda: None)
    agent.client = Listing(5, [lease('node1', '10.244.1.0/24', '198.18.0.11', '02:00:00:00:02:01')])
    agent.resync()  # no mark yet: etcd is the truth
    assert agent.raw['peers'] == [] and agent.state['state'] == 'synced' and agent.kept == {} and agent.mark == 5


def test_a_real_etcd_restored_from_an_older_backup_removes_no_peer(agent, tmp_path, monkeypatch):
    """The premise, on a real etcd: a member restored from a copy of its data taken before node3 joined lists a lower
    revision without node3, and the agent keeps node3 (a fresh cluster in its place looks the same)."""
    monkeypatch.setattr(agent, 'check_address', lambda: None)
    cluster = etcd_lab.Cluster(tmp_path / 'etcd').start()
    try:
        agent.client = client = cluster.client()
        for key, value in (lease('node1', '10.244.1.0/24', '198.18.0.11', '02:00:00:00:02:01'),
                           lease('node2', '10.244.2.0/24', '198.18.0.12', '02:00:00:00:02:02')):
            client.put(key, value)
        cluster.stop()
        shutil.copytree(str(tmp_path / 'etcd' / 'm0'), str(tmp_path / 'backup'))
        cluster.start()
        client.put(*lease('node3', '10.244.3.0/24', '198.18.0.13', '02:00:00:00:02:03'))
        for dummy in range(5):  # more writes after the backup: the revision the agent applies is well above it
            client.put(*lease('node2', '10.244.2.0/24', '198.18.0.12', '02:00:00:00:02:02'))
        agent.resync()
        assert names(agent.raw['peers']) == ['node2', 'node3'] and agent.state['state'] == 'synced'
        cluster.stop()
        shutil.rmtree(str(tmp_path / 'etcd' / 'm0'))
        shutil.copytree(str(tmp_path / 'backup'), str(tmp_path / 'etcd' / 'm0'))
        cluster.start()
        agent.resync()
        assert agent.revision < agent.mark
        assert names(agent.raw['peers']) == ['node2', 'node3'] and agent.state['state'] == 'degraded'
        assert 'keeping 1 peer(s) it no longer has (node3)' in agent.state['message']
    finally:
        cluster.stop()


def test_a_watch_stopped_while_it_connected_ends_instead_of_streaming(agent, tmp_path):
    """etcd failing over: the agent gives up on a watch that is still connecting and starts another. When the first
    connects after all, on a real etcd, its stream is closed at once and its thread ends (no leaked thread, no
    events piling up in a queue nobody reads); the watch started afterwards is the one kept."""
    cluster = etcd_lab.Cluster(tmp_path / 'etcd').start()
    try:
        agent.client = cluster.client()
        started = threading.Event()
        agent.client.watch = _delayed(agent.client.watch, started)  # connects only when the test says so
        old_events = queue.Queue()
        agent._start_watch(old_events)  # pylint: disable=protected-access
        agent._stop_watch()  # given up while connecting  # pylint: disable=protected-access
        new_events = queue.Queue()
        agent.client.watch = cluster.client().watch
        agent._start_watch(new_events)  # pylint: disable=protected-access
        started.set()
        kind, error = old_events.get(timeout=10)
        assert kind == 'watch ended' and 'the watch on' in str(error)
        cluster.client().put(*lease('node3', '10.244.3.0/24', '198.18.0.13', '02:00:00:00:02:03'))
        kind, changes = new_events.get(timeout=10)
        assert kind == 'leases' and changes[0][1].endswith('10.244.3.0-24') and old_events.empty()
        agent._stop_watch()  # pylint: disable=protected-access
    finally:
        cluster.stop()


def _delayed(watch, go):
    def delayed(*args, **kwargs):
        go.wait(10)
        yield from watch(*args, **kwargs)
    return delayed


def test_rotated_credentials_are_used_without_a_restart(agent, tmp_path, monkeypatch):
    """site copies a new password to the same file (no restart): the agent's next health check connects with it.
    etcd restarted meanwhile, so the old token is gone and the old password would be refused."""
    monkeypatch.setattr(agent, 'check_address', lambda: None)
    cluster = etcd_lab.Cluster(tmp_path / 'etcd').start()
    try:
        admin = cluster.client()
        for name, password in (('root', 'rootpw'), ('node1', 'old')):
            admin.call('/v3/auth/user/add', {'name': name, 'password': password})
            admin.call('/v3/auth/user/grant', {'user': name, 'role': 'root'})
        admin.call('/v3/auth/enable', {})
        secret = tmp_path / 'password'
        secret.write_text('old\n')
        agent.raw['agent'] = dict(agent.raw['agent'], endpoints=cluster.endpoints, user='node1', password_file=str(secret))
        agent.client = _agent_etcd.client(agent.raw['agent'])
        agent._made_from = agent._rotation_seen = _agent_etcd.credential_files(agent.raw['agent'])  # pylint: disable=protected-access
        agent.resync()
        assert not agent.reconnect_if_rotated()

        cluster.client(user='root', password='rootpw').user_changepw('node1', 'new')
        secret.write_text('brand new\n')  # another size: the check does not rely on the clock's resolution
        cluster.client(user='root', password='rootpw').user_changepw('node1', 'brand new')
        cluster.stop()
        monkeypatch.setattr(cluster, 'wait_ready', lambda: None)  # it reads without a user: auth is on now
        cluster.start()
        root = cluster.client(user='root', password='rootpw', timeout=1.0)
        for dummy in range(100):
            try:
                root.range_prefix(SUBNETS)
                break
            except _agent._etcd.EtcdError:  # pylint: disable=protected-access
                time.sleep(0.1)
        with pytest.raises(_agent._etcd.EtcdError):  # the old client: its password is refused  # pylint: disable=protected-access
            agent.client.range_prefix(SUBNETS)
        assert not agent.reconnect_if_rotated()  # changed since the last look: until they stay as they are
        assert agent.reconnect_if_rotated() and any('credentials changed' in line for line in agent.lines)
        agent.resync()
        assert agent.state['state'] == 'synced'
    finally:
        cluster.stop()


def site_contract(agent, members, orphaned, agent_on=True):
    """node1's contract as site builds it on the controller, from the leases the agent holds."""
    from ansible_collections.overlay.mesh.plugins.plugin_utils import _node_inputs  # pylint: disable=import-outside-toplevel
    records = dict((host, record) for host, record, _data, _mod in agent.kvs.values())
    variables = {'mesh_node_registry': 'etcd', 'mesh_node_agent': agent_on, 'mesh_node_etcd_endpoints': ['http://198.18.0.11:2379'],
                 'mesh_node_network': '10.244.0.0/16'}
    info = {'underlay': {'address': '198.18.0.11', 'interface': 'eth0', 'mtu': 1500, 'network': '198.18.0.0/24'},
            'identity': {'backend': {'type': 'vxlan', 'mac': '02:00:00:00:02:01'}}}
    revisions = dict((host, mod) for host, _record, _data, mod in agent.kvs.values() if host in orphaned)  # subnet_leases' RV
    leases = {'network': '10.244.0.0/16', 'leases': records, 'orphaned': orphaned, 'orphaned_revisions': revisions}
    return _node_inputs.node_contract(variables, 'node1', info=info, leases=leases, members=members)[0]


def test_site_gives_the_peers_the_agent_has_with_a_host_gone_from_the_inventory(agent):
    """A host dropped from the inventory without remove keeps its lease (it may be back): the agents keep it as a
    peer, so site must too, or each site run would take it away and the agents put it back (never changed=0)."""
    agent.on_events([('PUT',) + lease('ghost', '10.244.9.0/24', '198.18.0.19', '02:00:00:00:02:09') + (30,)])
    contract = site_contract(agent, ['node1', 'node2'], ['ghost'])
    assert contract['peers'] == agent.raw['peers'] and names(contract['peers']) == ['ghost', 'node2']
    without_agent = site_contract(agent, ['node1', 'node2'], ['ghost'], agent_on=False)
    assert names(without_agent['peers']) == ['node2']  # site alone: the inventory decides, the lease is kept unused


def test_a_host_renamed_in_the_inventory_keeps_its_peers_on_both_sides(agent):
    """node2 renamed node2b (same machine: same address and MAC, a new lease): site gives node2b, the host in the
    group, the claim, and leaves node2's stale lease out, as the agents do (newest lease); no contract is refused."""
    agent.on_events([('PUT',) + lease('node2b', '10.244.12.0/24', '198.18.0.12', '02:00:00:00:02:02') + (40,)])
    contract = site_contract(agent, ['node1', 'node2b'], ['node2'])
    assert names(contract['peers']) == ['node2b'] and contract['peers'] == agent.raw['peers']


def test_kept_peers_survive_a_restart_after_etcd_moved_on(agent, monkeypatch):
    """After a rewind the kept peers are saved by name: an agent restarted (or rebooted) later, when etcd's revision
    has passed the old mark again, still keeps them until their leases are back or a site run decides."""
    monkeypatch.setattr(agent, 'check_address', lambda: None)
    node1, node2 = lease('node1', '10.244.1.0/24', '198.18.0.11', '02:00:00:00:02:01'), lease('node2', '10.244.2.0/24', '198.18.0.12', '02:00:00:00:02:02')
    node3 = lease('node3', '10.244.3.0/24', '198.18.0.13', '02:00:00:00:02:03')
    agent.client = Listing(50, [node1, node2, node3])
    agent.resync()
    agent.client = Listing(30, [node1, node2])
    agent.resync()
    assert sorted(agent.kept) == ['node3']
    with open(agent.path, 'w') as handle:  # what _apply saved (stubbed here)
        json.dump(agent.raw, handle)

    restarted = _agent.Agent(agent.path, out=list().append)
    assert sorted(restarted.kept) == ['node3'] and restarted.mark == 50
    monkeypatch.setattr(restarted, 'check_address', lambda: None)
    monkeypatch.setattr(restarted, '_apply', lambda peers, what, **_kw: setattr(restarted, 'raw', dict(restarted.raw, peers=peers)))
    monkeypatch.setattr(restarted, '_write_status', lambda: None)
    restarted.client = Listing(80, [node1, node2])  # many writes since the restore: above the old mark
    restarted.resync()
    assert names(restarted.raw['peers']) == ['node2', 'node3'] and restarted.state['state'] == 'degraded'


NESTED = '[' * 3000 + ']' * 3000  # 6 KB of valid JSON that Python's parser cannot read (RecursionError)


def test_a_deeply_nested_value_is_a_damaged_lease_skipped(agent):
    """Under a valid key (flanneld's or ours): skipped and logged like any damaged lease, the others still apply."""
    agent.on_events([('PUT', SUBNETS + '10.244.60.0-24', NESTED, 40),
                     ('PUT',) + lease('node4', '10.244.4.0/24', '198.18.0.14', '02:00:00:00:02:04') + (40,)])
    (_what, changed, _removed), = agent.applied
    assert names(changed) == ['node4']
    assert any('skipped etcd key %s10.244.60.0-24: its value is JSON nested too deeply' % SUBNETS in line for line in agent.lines)


def test_a_host_name_that_is_not_text_is_refused_and_logged_safely(agent, tmp_path):
    """A lone surrogate has no UTF-8: the lease is refused (it names no host), and a log line carrying it is written
    escaped instead of raising UnicodeEncodeError."""
    key, value = lease('node5\ud800', '10.244.5.0/24', '198.18.0.15', '02:00:00:00:02:05')
    agent.on_events([('PUT', key, value, 41)])
    assert agent.applied == [] and any("skipped etcd key %s: the host name 'node5\\ud800' is not printable" % key in line for line in agent.lines)
    with open(str(tmp_path / 'journal'), 'w', encoding='utf-8') as stream:  # strict, as the service's stdout
        _agent.log('skipped the lease of node5\ud800', stream)
    assert (tmp_path / 'journal').read_text() == 'overlay-mesh-agent: skipped the lease of node5\\ud800\n'


def test_an_unexpected_error_degrades_and_backs_off_instead_of_dying(agent, monkeypatch):
    """A bug or data nobody foresaw must not kill the process (systemd would restart it onto the same data)."""
    calls = []

    def run_once():
        calls.append(1)
        if len(calls) == 1:
            raise TypeError('boom')
        raise KeyboardInterrupt  # ends the test's loop

    monkeypatch.setattr(agent, 'run_once', run_once)
    monkeypatch.setattr(agent, 'reconnect_if_rotated', lambda: False)
    monkeypatch.setattr(_agent_address, 'follow_addresses', lambda wake: None)
    slept = []
    monkeypatch.setattr(_agent.time, 'sleep', slept.append)
    with pytest.raises(KeyboardInterrupt):
        agent.run()
    assert len(calls) == 2 and slept == [_agent.BACKOFF[0]]
    assert agent.state['state'] == 'degraded' and agent.state['message'].startswith('unexpected error: TypeError: boom')
    assert any(line.startswith('unexpected error at ') and line.endswith('TypeError: boom') for line in agent.lines)


@pytest.mark.parametrize('subnet, mac', [('10.250.0.0/24', '0a:58:0a:fa:00:01'),   # outside the network
                                         ('10.244.50.0/24', '01:00:5e:00:00:01'),  # a multicast MAC
                                         ('10.244.1.0/24', '0a:58:0a:f4:01:01')])  # this host's subnet
def test_a_bad_flanneld_lease_is_skipped_and_later_joins_apply(agent, subnet, mac):
    """flanneld's leases pass the same per-lease checks as ours: a bad one is left out and logged, the peer list stays
    one the contract accepts, and a host joining afterwards is applied."""
    from ansible_collections.overlay.mesh.plugins.module_utils import _node_boot  # pylint: disable=import-outside-toplevel
    agent.on_events([('PUT',) + flanneld(subnet, '198.18.0.50', mac) + (50,)])
    agent.on_events([('PUT',) + lease('node3', '10.244.3.0/24', '198.18.0.13', '02:00:00:00:02:03') + (51,)])
    assert names(agent.raw['peers']) == ['node2', 'node3']
    assert any(line.startswith('skipped the lease of flanneld@198.18.0.50') for line in agent.lines)
    _node_boot.normalize(dict(agent.raw), 'etcd')  # what _apply does with them: accepted


def test_a_lease_refused_under_the_old_contract_is_taken_under_a_grown_network(agent):
    """docs/leases.md: the network grows (/16 -> /15), site writes the new host's lease first, then saves the contract.
    The lease the old contract refused is checked again under the new one (not remembered as refused)."""
    agent.on_events([('PUT',) + lease('node5', '10.245.0.0/24', '198.18.0.15', '02:00:00:00:02:05') + (60,)])
    assert names(agent.raw['peers']) == ['node2'] and any('skipped the lease of node5' in line for line in agent.lines)
    with open(agent.path, 'w') as handle:  # site saved the contract of the grown network
        json.dump(dict(agent.raw, network='10.244.0.0/15'), handle)
    assert agent._load()  # pylint: disable=protected-access  # as _apply does under the lock
    assert names(agent.peers()) == ['node2', 'node5']


def test_the_check_cache_keeps_only_the_current_leases(agent):
    """Every lease text ever checked must not be kept: a host whose lease changes a thousand times leaves one entry."""
    for number in range(300):
        agent.on_events([('PUT',) + lease('node3', '10.244.3.0/24', '198.18.0.13', '02:00:00:00:%02x:%02x' % divmod(number, 256)) + (100 + number,)])
    assert len(agent._checked) == 2  # pylint: disable=protected-access  # node2's and node3's


class _EndRun(BaseException):
    """Ends a test's Agent.run() loop (it survives every Exception)."""


def _run_until_ended(agent):
    try:
        agent.run()
    except _EndRun:
        pass


def test_a_hung_watched_member_is_left_for_a_serving_one(agent, tmp_path, monkeypatch):
    """Three members; the one the watch streams from hangs (SIGSTOP: its sockets stay open, the watch just goes silent)
    while the other two keep quorum. The health check must get its answer from the watched member, so the agent lists
    and watches again on a serving one: a join written meanwhile arrives."""
    import signal  # pylint: disable=import-outside-toplevel
    monkeypatch.setattr(agent, 'check_address', lambda: None)
    monkeypatch.setattr(_agent_address, 'follow_addresses', lambda wake: None)
    cluster = etcd_lab.Cluster(tmp_path / 'etcd', size=3).start()
    stopped = None
    thread = None
    try:
        writer = cluster.client(timeout=2)
        for key, value in (lease('node1', '10.244.1.0/24', '198.18.0.11', '02:00:00:00:02:01'),
                           lease('node2', '10.244.2.0/24', '198.18.0.12', '02:00:00:00:02:02')):
            writer.put(key, value)
        agent.client = cluster.client(timeout=2)
        thread = threading.Thread(target=_run_until_ended, args=(agent,), daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while (agent.watch_connection is None or agent.state['state'] != 'synced') and time.monotonic() < deadline:
            time.sleep(0.1)
        watched = cluster.client_ports.index(agent.watch_connection.port)
        stopped = cluster.procs[watched].pid  # the member this test started
        os.kill(stopped, signal.SIGSTOP)
        others = _agent._etcd.EtcdClient([e for i, e in enumerate(cluster.endpoints) if i != watched], timeout=2)  # pylint: disable=protected-access
        others.put(*lease('node3', '10.244.3.0/24', '198.18.0.13', '02:00:00:00:02:03'))
        deadline = time.monotonic() + 12
        while 'node3' not in names(agent.raw['peers']) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert names(agent.raw['peers']) == ['node2', 'node3'], agent.lines
        assert any('the watched member %s does not serve' % cluster.endpoints[watched] in line for line in agent.lines)
    finally:
        if thread is not None:
            agent.events.put(('stop', _EndRun()))
            thread.join(10)
        if stopped is not None:
            os.kill(stopped, signal.SIGCONT)
        cluster.stop()


def test_a_move_onto_an_address_a_stale_lease_claims_leaves_that_lease_out(agent, monkeypatch):
    """node2 is powered off and DHCP hands its address to this host: the move is applied with node2's lease left out
    (logged), not refused with every peer (the host was cut off)."""
    from ansible_collections.overlay.mesh.plugins.module_utils import _node_boot  # pylint: disable=import-outside-toplevel
    agent.on_events([('PUT',) + lease('node3', '10.244.3.0/24', '198.18.0.13', '02:00:00:00:02:03') + (70,)])
    monkeypatch.setattr(_agent_address, 'current_underlay', lambda underlay: dict(underlay, address='198.18.0.12'))
    applied = []

    def apply(peers, what, changed=None, removed=None, underlay=None):
        applied.append(_node_boot.normalize(dict(agent.raw, peers=peers, underlay=dict(agent.raw['underlay'], **underlay)), 'etcd'))
        agent.raw = applied[-1].data

    monkeypatch.setattr(agent, '_apply', apply)
    agent.raw['agent'] = dict(agent.raw['agent'], public_address='198.18.0.11')  # the lease stays as it is: no etcd here
    agent.check_address()
    (node,) = applied
    assert node.data['underlay']['address'] == '198.18.0.12' and names(node.data['peers']) == ['node3']
    assert any("skipped the lease of node2: address 198.18.0.12 is also this host's" in line for line in agent.lines)


@pytest.mark.parametrize('first, second', [('node3', 'node3b'), ('node3b', 'node3')])
def test_two_stale_leases_of_one_machine_give_the_claim_to_the_newer_on_both_sides(agent, first, second):
    """node3 renamed node3b (same address and MAC), then dropped from the inventory without remove: two orphaned
    leases claim one machine. site and the agents both give it to the newer lease (else they flip it for ever)."""
    agent.on_events([('PUT',) + lease(first, '10.244.3.0/24', '198.18.0.13', '02:00:00:00:02:03') + (30,)])
    agent.on_events([('PUT',) + lease(second, '10.244.13.0/24', '198.18.0.13', '02:00:00:00:02:03') + (31,)])
    contract = site_contract(agent, ['node1', 'node2'], ['node3', 'node3b'])
    assert names(agent.raw['peers']) == sorted(['node2', second]) and contract['peers'] == agent.raw['peers']
