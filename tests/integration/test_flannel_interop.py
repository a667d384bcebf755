# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A host of a fleet running flanneld and our mesh, on one etcd (mesh_node_etcd_flannel_peers).

Lab "ovln-flannel": node1 and node2 run site with the etcd registry and the opt-in; node3 stands
for a flanneld host. flanneld itself is not packaged for Debian, so node3 is set up the way
flanneld's vxlan backend sets a host up (pkg/backend/vxlan: flannel.1 with VNI 1 on port 8472 and
learning off, the subnet's network address on it, per remote lease a permanent neighbour, an FDB
entry and an on-link route), from the leases it reads in etcd - ours, read back the way flanneld
reads them. Its own lease is written as flanneld writes it, with a TTL. Packets then cross both
ways between a container on node3 and the bridges of node1 and node2, through the kernel objects
each side made.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import collections_path, lab, lab_shell

REPO = Path(__file__).resolve().parents[2]
LAB = os.environ.get('OVERLAY_MESH_LAB_PREFIX', '') + 'ovln-flannel'  # a prefix lets two checkouts test at once
PREFIX = '/coreos.com/network'
FLANNEL_MAC = '7a:0f:1a:00:00:03'
FLANNEL_SUBNET = '10.244.100.0/24'

# the unit tests' real etcd (Debian's etcd-server, unpacked by make deps), and the collection it imports
sys.path[:0] = [str(REPO / 'tests' / 'unit' / 'plugins' / 'plugin_utils'), collections_path()]
import etcd_lab  # noqa: E402  pylint: disable=wrong-import-position,wrong-import-order

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason='needs root: boots systemd-nspawn lab hosts')]


def on(host, command, check=True):
    return lab_shell(LAB, host, command, check)


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    """(lab inventory, our group's inventory, etcd cluster, node3's underlay address)."""
    tmp = tmp_path_factory.mktemp('flannel')
    lab('down', '--name', LAB, check=False)
    cluster = None
    try:
        out = lab('up', '--name', LAB, '--hosts', '3').stdout
        inventory = re.search(r'inventory: (\S+)', out).group(1)
        ours = tmp / 'ours.yml'
        ours.write_text('all:\n  children:\n    ours:\n      hosts:\n        node1:\n        node2:\n')
        cluster = etcd_lab.Cluster(tmp / 'etcd').start()
        underlay = on('node3', "ip -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1").stdout.strip()
        yield inventory, str(ours), cluster, underlay
    finally:
        if cluster is not None:
            cluster.stop()
        lab('down', '--name', LAB, check=False)


def site(world, *extra):
    inventory, ours, cluster, _underlay = world
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(), ANSIBLE_CONFIG=str(REPO / 'tests' / 'ansible.cfg'),
               ANSIBLE_NOCOLOR='1')
    argv = [str(Path(sys.executable).parent / 'ansible-playbook'), '-i', inventory, '-i', ours, 'overlay.mesh.site',
            '-e', 'mesh_node_group=ours', '-e', 'mesh_node_registry=etcd',
            '-e', json.dumps({'mesh_node_etcd_endpoints': cluster.endpoints})] + list(extra)
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=str(REPO), check=False)


def be_flanneld(world):
    """node3 as flanneld's vxlan backend makes a host: its VTEP, bridge and a container; its lease and config in etcd."""
    _inventory, _ours, cluster, underlay = world
    on('node3', ' && '.join([
        'ip link add flannel.1 type vxlan id 1 local %s dev eth0 dstport 8472 nolearning' % underlay,
        'ip link set flannel.1 address %s mtu 1450 up' % FLANNEL_MAC,
        'ip addr add 10.244.100.0/32 dev flannel.1',
        'ip link add cni0 type bridge && ip addr add 10.244.100.1/24 dev cni0 && ip link set cni0 up',
        'ip netns add c1 && ip link add veth0 type veth peer name eth0 netns c1 && ip link set veth0 master cni0 up',
        'ip -n c1 addr add 10.244.100.2/24 dev eth0 && ip -n c1 link set eth0 up && ip -n c1 link set lo up',
        'ip -n c1 route add default via 10.244.100.1',
        'sysctl -qw net.ipv4.ip_forward=1']))
    client = cluster.client()
    client.put(PREFIX + '/config', json.dumps({'Network': '10.244.0.0/16', 'Backend': {'Type': 'vxlan'}}))
    client.put(PREFIX + '/subnets/10.244.100.0-24', json.dumps(
        {'PublicIP': underlay, 'PublicIPv6': None, 'BackendType': 'vxlan',
         'BackendData': {'VNI': 1, 'VtepMAC': FLANNEL_MAC}}), lease=client.grant(3600))


def flanneld_learns(world):
    """What flanneld does for each lease it watches: neighbour, FDB entry, on-link route on flannel.1."""
    _inventory, _ours, cluster, underlay = world
    steps = []
    for key, value, _mod, _lease in cluster.client().range_prefix(PREFIX + '/subnets/')[1]:
        lease = json.loads(value)
        if lease['PublicIP'] == underlay:
            continue
        subnet = key.rsplit('/', 1)[1].replace('-', '/')
        vtep, mac = subnet.split('/')[0], lease['BackendData']['VtepMAC']
        steps += ['ip neigh replace %s lladdr %s dev flannel.1 nud permanent' % (vtep, mac),
                  'bridge fdb append %s dev flannel.1 dst %s self permanent' % (mac, lease['PublicIP']),
                  'ip route replace %s via %s dev flannel.1 onlink' % (subnet, vtep)]
    assert len(steps) == 6, steps  # node1's and node2's leases, as flanneld reads them
    on('node3', ' && '.join(steps))


def test_a_flanneld_host_and_our_mesh_reach_each_other(world):
    be_flanneld(world)
    first = site(world, '-e', 'mesh_node_etcd_flannel_peers=true')
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    flanneld_learns(world)
    for host in ('node1', 'node2'):
        node = json.loads(on(host, 'cat /etc/overlay-mesh/node.json').stdout)
        peer = [p for p in node['peers'] if p['name'].startswith('flanneld@')]
        assert peer == [{'name': 'flanneld@%s' % world[3], 'subnet': FLANNEL_SUBNET, 'underlay': world[3], 'vtep_mac': FLANNEL_MAC}]
        gateway = str(node['subnet']).rsplit('.', 1)[0] + '.1'
        # node3's container -> our bridge, and our host -> node3's container, both through the two VTEPs
        on('node3', 'ip netns exec c1 ping -c 2 -W 2 %s' % gateway)
        on(host, 'ping -c 2 -W 2 10.244.100.2')
        assert FLANNEL_MAC in on(host, 'bridge fdb show dev mesh.1').stdout
    again = site(world, '-e', 'mesh_node_etcd_flannel_peers=true')
    assert again.returncode == 0 and not re.search(r'changed=[1-9]', again.stdout), again.stdout[-2000:]
    # the opt-in off: node3 is only a taken subnet again, and no longer our peer
    off = site(world)
    assert off.returncode == 0, off.stdout[-2000:]
    assert on('node1', 'ping -c 1 -W 1 10.244.100.2', check=False).returncode != 0
    assert 'flanneld@' not in on('node1', 'cat /etc/overlay-mesh/node.json').stdout
