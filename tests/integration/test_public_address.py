# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""mesh_node_public_address (flannel's --public-ip) on lab hosts: peers reach a host at its public address.

Lab "ovlpub" (2 hosts, always taken down again). node2 gets a second address on its underlay
interface that its own underlay lookup does not pick, and a rule of its own that sends its VXLAN from
it (a NAT's half), and names it as its public address, as a host behind a 1:1 NAT names the address
the NAT gives it: node2's lease publishes it, node1's VTEP sends
to it, containers' traffic crosses. host-gw refuses it before anything changes on any host or in
the lease file. (molecule `nat` runs hosts behind the lab's 1:1 NAT router: `overlay_lab.py up --nat-hosts`.)
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import HOST_SNAPSHOT, SETTLE, collections_path, lab, lab_shell

REPO = Path(__file__).resolve().parents[2]
LAB = os.environ.get('OVERLAY_MESH_LAB_PREFIX', '') + 'ovlpub'  # a prefix lets two checkouts test at once

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='needs root: boots systemd-nspawn lab hosts')


def playbook(inventory, *extra):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(), ANSIBLE_CONFIG=str(REPO / 'tests' / 'ansible.cfg'),
               ANSIBLE_NOCOLOR='1')
    return subprocess.run([str(Path(sys.executable).parent / 'ansible-playbook'), '-i', inventory, 'overlay.mesh.site'] + list(extra),
                          capture_output=True, text=True, env=env, cwd=str(REPO), check=False, timeout=900)


def test_peers_reach_a_host_at_its_public_address_and_host_gw_refuses_it():
    lab('down', '--name', LAB, check=False)
    try:
        inventory = re.search(r'inventory: (\S+)', lab('up', '--name', LAB, '--hosts', '2').stdout).group(1)
        hosts = yaml.safe_load(Path(inventory).read_text())['all']['children']['lab']['hosts']
        real = hosts['node2']['overlay_lab_underlay_address']
        subnet = ipaddress.ip_network(yaml.safe_load(Path(inventory).read_text())['all']['vars']['overlay_lab_underlay_subnet'])
        public = str(subnet.network_address + 200)
        # node2 as behind a 1:1 NAT: reachable at the public address, its VXLAN leaving from it. The source is rewritten
        # statelessly: the overlay's tunnel packets are untracked (notrack), so a conntrack NAT rule on the host itself
        # never sees them - a real NAT is another box, which tracks them on its own.
        lab_shell(LAB, 'node2', 'ip addr add %s/32 dev eth0' % public)
        lab_shell(LAB, 'node2', "nft 'add table ip test_nat; add chain ip test_nat post { type filter hook postrouting priority 0;"
                                " policy accept; }; add rule ip test_nat post ip saddr %s udp dport 8472 ip saddr set %s'" % (real, public))
        (Path(inventory).parent / 'host_vars').mkdir()
        (Path(inventory).parent / 'host_vars' / 'node2.yml').write_text('mesh_node_public_address: %s\n' % public)

        run = playbook(inventory)
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
        leases = (Path(inventory).parent / '.overlay-mesh-leases.yml').read_text()
        assert re.search(r'node2: \{[^}]*underlay: "%s"' % re.escape(public), leases), leases
        fdb = lab_shell(LAB, 'node1', 'bridge fdb show dev mesh.1 | grep permanent').stdout
        assert 'dst %s ' % public in fdb and 'dst %s ' % real not in fdb, fdb
        # node2 itself still sends from its underlay address
        assert 'local %s ' % real in lab_shell(LAB, 'node2', 'ip -d link show dev mesh.1').stdout
        gateway2 = re.search(r'node2: \{subnet: "([0-9.]+)\.0/', leases).group(1) + '.1'
        assert ' 0% packet loss' in lab_shell(LAB, 'node1', 'ping -c 3 -i 0.2 -W 2 %s' % gateway2).stdout
        again = playbook(inventory)
        assert again.returncode == 0 and not re.search(r'changed=[1-9]', again.stdout), again.stdout[-3000:]

        # host-gw refuses it: nothing changes on any host, nor in the lease file
        before = dict((host, lab_shell(LAB, host, SETTLE + '; ' + HOST_SNAPSHOT, check=False).stdout) for host in ('node1', 'node2'))
        refused = playbook(inventory, '-e', 'mesh_node_backend=host-gw')
        assert refused.returncode != 0
        assert 'node2: mesh_node_public_address: the host-gw backend routes' in refused.stdout, refused.stdout[-3000:]
        assert (Path(inventory).parent / '.overlay-mesh-leases.yml').read_text() == leases
        for host, snapshot in before.items():
            assert lab_shell(LAB, host, SETTLE + '; ' + HOST_SNAPSHOT, check=False).stdout == snapshot, host
    finally:
        lab('down', '--name', LAB, check=False)
