# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""overlay.mesh.node and node_info on real Debian 12 lab hosts (python3-pyroute2 0.7.2, systemd).

Boots lab "ovln-node" (2 hosts) with tests/lab/overlay_lab.py and always takes it down again.
Covers what molecule does not look at closely: check mode on a fresh and a converged host, the
size of the diff, two runs at once on one host, the boot-time reapply refusing a bad state file
without touching anything and healing a deleted device, nftables.service restarts, and removal
leaving foreign objects alone.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import HOST_SNAPSHOT, SETTLE, collections_path, lab, lab_inventory_path_of, lab_shell

REPO = Path(__file__).resolve().parents[2]
LAB = os.environ.get('OVERLAY_MESH_LAB_PREFIX', '') + 'ovln-node'  # a prefix lets two checkouts test at once

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root: boots systemd-nspawn lab hosts'),
]


def on(host, command, check=True):
    return lab_shell(LAB, host, command, check).stdout


@pytest.fixture(scope='module')
def inventory():
    yield from lab_inventory_path_of(LAB, 2)


def module(inventory, host, name, args=None, check=False, diff=False, tree=None):
    """Run overlay.mesh.<name> on a lab host; the result dict ('failed' set when it failed)."""
    tree = tree or Path(os.environ.get('TMPDIR', '/tmp')) / ('ovln-node-tree-%d' % os.getpid())
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(), ANSIBLE_CONFIG=str(REPO / 'tests' / 'ansible.cfg'),
               ANSIBLE_NOCOLOR='1')
    argv = [str(Path(sys.executable).parent / 'ansible'), '-i', inventory, host, '-m', 'overlay.mesh.%s' % name,
            '--tree', str(tree), '-vvv']  # -vvv: the tree keeps 'diff'
    if args is not None:
        argv += ['-a', json.dumps(args)]
    argv += ['--check'] if check else []
    argv += ['--diff'] if diff else []
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=str(REPO), check=False)
    path = tree / host
    assert path.exists(), proc.stdout + proc.stderr
    result = json.loads(path.read_text())
    path.unlink()
    if proc.returncode:
        result['failed'] = True
    return result


def contract(host, info, other, other_info):
    index = int(host[-1])
    return {
        'underlay': {'address': info['underlay']['address'], 'interface': info['underlay']['interface']},
        'network': '10.244.0.0/16', 'subnet': '10.244.%d.0/24' % index,
        'backend': {'type': 'vxlan'},
        'peers': [{'name': other, 'subnet': '10.244.%d.0/24' % int(other[-1]), 'underlay': other_info['underlay']['address'],
                   'vtep_mac': other_info['identity']['publish']['vtep_mac']}],
    }


def kernel_snapshot(host):
    on(host, SETTLE)
    return on(host, HOST_SNAPSHOT + '; ls -lR /etc/overlay-mesh /usr/lib/overlay-mesh 2>&1; cat /run/flannel/subnet.env',
              check=False)


def test_node_on_fresh_and_converged_hosts(inventory, tmp_path):
    infos = dict((host, module(inventory, host, 'node_info', {'underlay': {}})) for host in ('node1', 'node2'))
    assert infos['node1']['node'] == {} and infos['node1']['identity']['source'] == 'derived'
    contracts = {'node1': contract('node1', infos['node1'], 'node2', infos['node2']),
                 'node2': contract('node2', infos['node2'], 'node1', infos['node1'])}

    # check mode on a fresh host: reports everything, changes nothing, one readable diff
    before = kernel_snapshot('node1')
    result = module(inventory, 'node1', 'node', contracts['node1'], check=True, diff=True, tree=tmp_path)
    assert result['changed'] and not result.get('failed'), result
    assert kernel_snapshot('node1') == before
    objects = result['diff'][0]
    assert objects['before_header'] == 'kernel and host objects'
    for line in ('link mesh.1 vxlan vni 1 port 8472', 'route 10.244.2.0/24 via 10.244.2.0 dev mesh.1 onlink proto overlay-mesh',
                 'nftables inet overlay_mesh', 'engine /usr/lib/overlay-mesh: ', '\nfile /etc/overlay-mesh/node.json\n'):
        assert line in objects['after']
    assert [d['before_header'] for d in result['diff']] == ['kernel and host objects', 'nftables table inet overlay_mesh']
    diff_lines = sum(len((d['before'] + d['after']).splitlines()) for d in result['diff'])
    assert diff_lines < 60, diff_lines  # one screen per host: the engine and each new file one line, the table one line per rule

    for host in ('node1', 'node2'):
        result = module(inventory, host, 'node', contracts[host], tree=tmp_path)
        assert result['changed'] and not result.get('failed'), result
        # the MACs node_info announced before the first run are the ones used
        assert result['publish'] == infos[host]['identity']['publish']
    assert ' 0% packet loss' in on('node1', 'ping -c 3 -i 0.2 -W 2 10.244.2.1')
    for check in (True, False):
        result = module(inventory, 'node1', 'node', contracts['node1'], check=check, diff=True, tree=tmp_path)
        assert not result['changed'] and result['changes'] == [], result
    # Docker beside the node: docker0 on the upper half of the subnet (bip), the bridge on the lower half,
    # the user's other daemon.json settings kept, the overlay accepted in Docker's DOCKER-USER chain
    on('node1', 'mkdir -p /etc/docker && echo \'{"log-driver": "journald", "mtu": 1500}\' > /etc/docker/daemon.json')
    with_docker = dict(contracts['node1'], docker={'enabled': True})
    result = module(inventory, 'node1', 'node', with_docker, diff=True, tree=tmp_path)
    for change in ('updated file /etc/docker/daemon.json', 'updated file /etc/overlay-mesh/node.json',
                   'updated file /etc/cni/net.d/10-overlay-mesh.conflist', 'added address 10.244.1.1/25 dev cni0',
                   'added iptables DOCKER-USER -s 10.244.0.0/16 -j ACCEPT', 'added iptables DOCKER-USER -d 10.244.0.0/16 -j ACCEPT'):
        assert change in result['changes'], result['changes']
    # JSON files: one line per key in the diff
    diffs = dict((diff['before_header'], diff) for diff in result['diff'][1:])
    daemon_json, node_json = diffs['/etc/docker/daemon.json'], diffs['/etc/overlay-mesh/node.json']
    assert (daemon_json['before'], daemon_json['after']) == (
        'log-driver: "journald"\nmtu: 1500\n', 'bip: "10.244.1.129/25"\nip-masq: false\nlog-driver: "journald"\nmtu: 1450\n')
    assert 'docker: {"enabled": false, "restart": false}\n' in node_json['before']
    assert 'docker: {"enabled": true, "restart": false}\n' in node_json['after']
    daemon = {'log-driver': 'journald', 'mtu': 1450, 'bip': '10.244.1.129/25', 'ip-masq': False}
    assert json.loads(on('node1', 'cat /etc/docker/daemon.json')) == daemon
    assert '10.244.1.1/25' in on('node1', 'ip -o -4 addr show dev cni0')
    assert on('node1', 'iptables -S DOCKER-USER').count('overlay.mesh') == 2
    assert not module(inventory, 'node1', 'node', with_docker, tree=tmp_path)['changed']
    info = module(inventory, 'node1', 'node_info', tree=tmp_path)
    assert info['overlay']['gateway'] == '10.244.1.1' and info['overlay']['mtu'] == 1450 and info['overlay']['peers'] == 1
    assert info['record'] == {'network': '10.244.0.0/16', 'subnet': '10.244.1.0/24', 'underlay': infos['node1']['underlay']['address'],
                              'vtep_mac': infos['node1']['identity']['publish']['vtep_mac']}


def test_two_runs_at_once_give_one_device_and_one_mac(inventory, tmp_path):
    infos = dict((host, module(inventory, host, 'node_info', {'underlay': {}}, tree=tmp_path)) for host in ('node1', 'node2'))
    wanted = contract('node1', infos['node1'], 'node2', infos['node2'])
    assert not module(inventory, 'node1', 'node', {'state': 'absent'}, tree=tmp_path).get('failed')
    assert 'mesh.1' not in on('node1', 'ip -br link')
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda index: module(inventory, 'node1', 'node', wanted, tree=tmp_path / str(index)), (1, 2)))
    assert [run.get('failed') for run in runs] == [None, None], runs
    assert sorted(run['changed'] for run in runs) == [False, True]  # the lock serialised them
    link = json.loads(on('node1', 'ip -j link show dev mesh.1'))[0]
    assert link['address'] == infos['node1']['identity']['publish']['vtep_mac']
    assert not module(inventory, 'node1', 'node', wanted, tree=tmp_path)['changed']


def test_boot_path_refuses_a_bad_state_and_heals_a_converged_host(inventory, tmp_path):
    on('node1', "python3 -c \"import json; d = json.load(open('/etc/overlay-mesh/node.json')); "
                "d['backend']['vni'] = 0; d['mtu'] = 9000; json.dump(d, open('/tmp/bad.json', 'w'))\"")
    before = kernel_snapshot('node1')
    proc = lab('exec', '--name', LAB, 'node1', '/usr/lib/overlay-mesh/overlay-mesh-apply', '/tmp/bad.json', check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert 'the node state /tmp/bad.json is not valid, nothing applied: backend.vni: 0 is outside 1-16777215' in proc.stdout
    assert kernel_snapshot('node1') == before

    # the same code path from the unit: a deleted VTEP comes back with its MAC
    mac = json.loads(on('node1', 'ip -j link show dev mesh.1'))[0]['address']
    on('node1', 'ip link del mesh.1')
    on('node1', 'systemctl restart overlay-mesh.service')
    assert json.loads(on('node1', 'ip -j link show dev mesh.1'))[0]['address'] == mac
    assert ' 0% packet loss' in on('node1', 'ping -c 3 -i 0.2 -W 2 10.244.2.1')

    # the underlay address does not come (a move while the host was down): every other part is applied
    on('node1', "python3 -c \"import json; d = json.load(open('/etc/overlay-mesh/node.json')); "
                "d['underlay']['address'] = '198.18.99.99'; json.dump(d, open('/tmp/moved.json', 'w'))\"")
    on('node1', 'nft delete table inet overlay_mesh && rm /run/flannel/subnet.env')
    proc = lab('exec', '--name', LAB, 'node1', '/usr/lib/overlay-mesh/overlay-mesh-apply', '--wait', '1', '/tmp/moved.json',
               check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert 'underlay address 198.18.99.99 not up after 1 s' in proc.stdout and 'failed: 1 part(s) of the node failed' in proc.stdout
    assert 'backend: ' in proc.stdout.splitlines()[-1]
    assert 'udp dport 8472' in on('node1', 'nft list table inet overlay_mesh') and on('node1', 'cat /run/flannel/subnet.env')

    # nftables.service flushes the whole ruleset when it restarts: the overlay's table comes back
    # (its drop-in runs overlay-mesh-apply --only nftables after start, reload and stop)
    on('node1', 'systemctl restart nftables.service')
    on('node1', 'for i in $(seq 50); do nft list table inet overlay_mesh >/dev/null 2>&1 && break; sleep 0.2; done')
    assert 'udp dport 8472' in on('node1', 'nft list table inet overlay_mesh')


def test_a_new_vni_replaces_the_vtep(inventory, tmp_path):
    infos = dict((host, module(inventory, host, 'node_info', {'underlay': {}}, tree=tmp_path)) for host in ('node1', 'node2'))
    for vni in (2, 1):
        for host, other in (('node1', 'node2'), ('node2', 'node1')):
            peer_info = module(inventory, other, 'node_info', {'underlay': {}, 'backend': {'type': 'vxlan', 'vni': vni}},
                               tree=tmp_path)
            wanted = contract(host, infos[host], other, peer_info)
            wanted['backend']['vni'] = vni
            result = module(inventory, host, 'node', wanted, tree=tmp_path)
            assert result['changed'] and not result.get('failed'), result
        links = on('node1', 'ip -br link')
        assert 'mesh.%d' % vni in links and 'mesh.%d' % (3 - vni) not in links, links
        assert ' 0% packet loss' in on('node1', 'ping -c 3 -i 0.2 -W 2 10.244.2.1')


def test_direct_routes_go_with_the_backend(inventory, tmp_path):
    """Direct routing on one segment: every pair direct; a switch to udp, or a removal, leaves none."""
    infos = dict((host, module(inventory, host, 'node_info', {'underlay': {}}, tree=tmp_path)) for host in ('node1', 'node2'))
    contracts = {'node1': contract('node1', infos['node1'], 'node2', infos['node2']),
                 'node2': contract('node2', infos['node2'], 'node1', infos['node1'])}
    for host in ('node1', 'node2'):
        contracts[host]['backend']['direct_routing'] = True
        assert not module(inventory, host, 'node', contracts[host], tree=tmp_path).get('failed')
    direct = on('node1', 'ip route show proto 217')
    assert '10.244.2.0/24 via %s dev eth0' % infos['node2']['underlay']['address'] in direct, direct
    assert ' 0% packet loss' in on('node1', 'ping -c 3 -i 0.2 -W 2 10.244.2.1')
    result = module(inventory, 'node1', 'node', dict(contracts['node1'], backend={'type': 'udp'}), tree=tmp_path)
    assert not result.get('failed') and 'dev eth0' not in on('node1', 'ip route show proto 217'), result
    assert not module(inventory, 'node1', 'node', contracts['node1'], tree=tmp_path).get('failed')
    assert 'dev eth0' in on('node1', 'ip route show proto 217')
    assert not module(inventory, 'node1', 'node', {'state': 'absent'}, tree=tmp_path).get('failed')
    assert on('node1', 'ip route show proto 217') == ''
    for host in ('node1', 'node2'):  # back as the next tests expect
        contracts[host]['backend']['direct_routing'] = False
        assert not module(inventory, host, 'node', contracts[host], tree=tmp_path).get('failed')


def test_removal_leaves_foreign_objects(inventory, tmp_path):
    on('node1', 'nft add table inet someone_else && ip route add 10.99.0.0/16 via 198.18.0.1 dev eth0 proto static onlink '
                '&& mkdir -p /etc/cni/net.d && echo {} > /etc/cni/net.d/99-other.conflist')
    result = module(inventory, 'node1', 'node', {'state': 'absent'}, check=True, tree=tmp_path)
    assert result['changed'] and 'mesh.1' in on('node1', 'ip -br link')
    result = module(inventory, 'node1', 'node', {'state': 'absent'}, tree=tmp_path)
    assert result['changed'] and not result.get('failed'), result
    links = on('node1', 'ip -br link')
    assert 'mesh.1' not in links and 'cni0' not in links
    assert on('node1', 'ls /etc/overlay-mesh /usr/lib/overlay-mesh /etc/systemd/system/overlay-mesh.service 2>&1; true').count(
        'No such file') == 3
    tables = on('node1', 'nft list tables')
    assert 'someone_else' in tables and 'overlay_mesh' not in tables
    assert '10.99.0.0/16' in on('node1', 'ip route') and 'other' in on('node1', 'ls /etc/cni/net.d')
    assert not module(inventory, 'node1', 'node', {'state': 'absent'}, tree=tmp_path)['changed']


def test_a_host_converged_by_release_0_1_keeps_its_macs(inventory, tmp_path):
    """0.1 kept random MACs in identity.json and the desired state in state.json: both are read once."""
    on('node1', 'mkdir -p /etc/overlay-mesh && echo \'{"vtep_mac": "02:11:22:33:44:55", "bridge_mac": "02:11:22:33:44:66"}\' '
                '> /etc/overlay-mesh/identity.json && echo \'{"backend": "vxlan", "bridge": {"name": "cni0"}, '
                '"vxlan": {"name": "mesh.1"}}\' > /etc/overlay-mesh/state.json')
    infos = dict((host, module(inventory, host, 'node_info', {'underlay': {}}, tree=tmp_path)) for host in ('node1', 'node2'))
    assert infos['node1']['identity']['source'] == 'first release'
    assert infos['node1']['identity']['publish'] == {'vtep_mac': '02:11:22:33:44:55'}
    wanted = contract('node1', infos['node1'], 'node2', infos['node2'])
    wanted['backend']['mac'] = infos['node1']['identity']['backend']['mac']
    wanted['bridge'] = infos['node1']['identity']['bridge']
    result = module(inventory, 'node1', 'node', wanted, tree=tmp_path)
    assert result['changed'] and not result.get('failed'), result
    assert json.loads(on('node1', 'ip -j link show dev mesh.1'))[0]['address'] == '02:11:22:33:44:55'
    assert json.loads(on('node1', 'ip -j link show dev cni0'))[0]['address'] == '02:11:22:33:44:66'
    assert on('node1', 'ls /etc/overlay-mesh') == 'node.json\n'
    again = module(inventory, 'node1', 'node_info', {'underlay': {}}, tree=tmp_path)
    assert again['identity']['source'] == 'saved' and again['identity']['publish'] == {'vtep_mac': '02:11:22:33:44:55'}


def test_udp_backend_port_change_restarts_the_daemon_and_a_switch_leaves_nothing(inventory, tmp_path):
    infos = dict((host, module(inventory, host, 'node_info', {'underlay': {}}, tree=tmp_path)) for host in ('node1', 'node2'))
    contracts = {'node1': contract('node1', infos['node1'], 'node2', infos['node2']),
                 'node2': contract('node2', infos['node2'], 'node1', infos['node1'])}
    for port in (8285, 8300):
        for host in ('node1', 'node2'):
            wanted = dict(contracts[host], backend={'type': 'udp', 'port': port})
            result = module(inventory, host, 'node', wanted, tree=tmp_path)
            assert result['changed'] and not result.get('failed'), result
        # a new port is not something a reload (SIGHUP) can change: the daemon was restarted on it
        assert ':%d ' % port in on('node1', 'ss -uln')
        assert ' 0% packet loss' in on('node1', 'ping -c 3 -i 0.2 -W 2 10.244.2.1')
    # back to vxlan: the VTEP MACs are what node_info says now (as the role asks it on every run)
    infos = dict((host, module(inventory, host, 'node_info', {'underlay': {}}, tree=tmp_path)) for host in ('node1', 'node2'))
    contracts = {'node1': contract('node1', infos['node1'], 'node2', infos['node2']),
                 'node2': contract('node2', infos['node2'], 'node1', infos['node1'])}
    for host in ('node1', 'node2'):
        result = module(inventory, host, 'node', contracts[host], tree=tmp_path)
        assert result['changed'] and not result.get('failed'), result
    left = on('node1', 'ls /etc/systemd/system/overlay-mesh-udp.service /etc/overlay-mesh/udp.json /usr/lib/overlay-mesh/overlay-mesh-udp'
                       ' 2>&1; ip link show mesh-udp 2>&1; ss -uln')
    assert left.count('No such file') == 3 and 'does not exist' in left and ':8300 ' not in left, left
    assert ' 0% packet loss' in on('node1', 'ping -c 3 -i 0.2 -W 2 10.244.2.1')
