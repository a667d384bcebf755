# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The modules on real Debian 12 lab hosts (system python3 with python3-pyroute2 0.7.2).

Boots lab "ovln" (2 hosts) with tests/lab/overlay_lab.py, builds the mesh with a playbook,
and always takes the lab down again.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import collections_path

REPO = Path(__file__).resolve().parents[2]
LAB_TOOL = REPO / 'tests' / 'lab' / 'overlay_lab.py'
LAB = os.environ.get('OVERLAY_MESH_LAB_PREFIX', '') + 'ovln'  # a prefix lets two checkouts test at once

PLAYBOOK = r'''
- name: Build a two-host VXLAN mesh with overlay.mesh modules
  hosts: lab
  gather_facts: false
  tasks:
    - name: Describe this host as a peer
      ansible.builtin.set_fact:
        mesh_index: "{{ groups['lab'].index(inventory_hostname) + 1 }}"
        mesh_peer:
          subnet: "10.244.{{ groups['lab'].index(inventory_hostname) + 1 }}.0/24"
          vtep_mac: "02:6a:4f:10:00:0{{ groups['lab'].index(inventory_hostname) + 1 }}"
          underlay: "{{ overlay_lab_underlay_address }}"
      changed_when: false

    - name: VTEP
      overlay.mesh.vxlan:
        name: flannel.1
        vni: 1
        local: "{{ overlay_lab_underlay_address }}"
        underlay_device: eth0
        mac: "{{ mesh_peer.vtep_mac }}"
        address: "10.244.{{ mesh_index }}.0/32"

    - name: Peers from the group
      overlay.mesh.peers:
        vtep: flannel.1
        exclusive: true
        peers: "{{ groups['lab'] | difference([inventory_hostname]) | map('extract', hostvars, 'mesh_peer') | list }}"

    - name: Container bridge
      overlay.mesh.bridge:
        name: cni0
        addresses: ["10.244.{{ mesh_index }}.1/24"]
        mac: "02:6a:4f:20:00:0{{ mesh_index }}"
        mtu: 1450
'''

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root: boots systemd-nspawn lab hosts'),
    pytest.mark.skipif(not LAB_TOOL.exists(), reason='tests/lab/overlay_lab.py is not there'),
]


def lab(*args, check=True):
    proc = subprocess.run([sys.executable, str(LAB_TOOL)] + list(args), capture_output=True, text=True, check=False)
    if check and proc.returncode:
        raise AssertionError('overlay_lab.py %s failed: %s %s' % (' '.join(args), proc.stdout, proc.stderr))
    return proc.stdout


def on(host, command, check=True):
    return lab('exec', '--name', LAB, host, *command.split(), check=check)


@pytest.fixture(scope='module')
def inventory():
    lab('down', '--name', LAB, check=False)
    try:
        out = lab('up', '--name', LAB, '--hosts', '2')
        yield re.search(r'inventory: (\S+)', out).group(1)
    finally:
        lab('down', '--name', LAB, check=False)


def play(inventory, tmp_path, *extra):
    book = tmp_path / 'mesh.yml'
    book.write_text(PLAYBOOK)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(), ANSIBLE_CONFIG=str(REPO / 'tests' / 'ansible.cfg'),
               ANSIBLE_NOCOLOR='1')
    proc = subprocess.run([str(Path(sys.executable).parent / 'ansible-playbook'), '-i', inventory, str(book)] + list(extra),
                          capture_output=True, text=True, env=env, cwd=str(REPO), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dict((host, int(changed)) for host, changed in re.findall(r'^(node\d+)\s+: ok=\d+\s+changed=(\d+)', proc.stdout, re.M))


def test_mesh_on_lab_hosts(inventory, tmp_path):
    version = on('node1', 'dpkg-query -W -f ${Version} python3-pyroute2')
    assert version.startswith('0.7.2'), version
    # check mode -> apply -> check-mode idempotence -> idempotence
    assert play(inventory, tmp_path, '--check') == {'node1': 3, 'node2': 3}
    assert on('node1', 'ip link show dev flannel.1', check=False) == ''
    assert play(inventory, tmp_path) == {'node1': 3, 'node2': 3}
    assert play(inventory, tmp_path, '--check') == {'node1': 0, 'node2': 0}
    assert play(inventory, tmp_path) == {'node1': 0, 'node2': 0}
    # the module named protocol 217 in /etc/iproute2/rt_protos.d/overlay-mesh.conf
    assert 'proto overlay-mesh onlink' in on('node1', 'ip route show dev flannel.1')
    assert ' 0% packet loss' in on('node1', 'ping -c 3 -i 0.2 -W 2 10.244.2.0')
    assert ' 0% packet loss' in on('node2', 'ping -c 3 -i 0.2 -W 2 10.244.1.0')
    # drift by hand, and a foreign route that must survive
    on('node1', 'ip neigh del 10.244.2.0 dev flannel.1')
    on('node1', 'ip route del 10.244.2.0/24 proto 217')
    on('node1', 'ip route add 10.99.0.0/16 via 10.244.2.0 dev flannel.1 onlink proto static')
    on('node2', 'ip link del flannel.1')
    assert play(inventory, tmp_path) == {'node1': 1, 'node2': 2}
    assert '10.99.0.0/16 via 10.244.2.0' in on('node1', 'ip route show dev flannel.1')
    assert ' 0% packet loss' in on('node1', 'ping -c 3 -i 0.2 -W 2 10.244.2.0')
    assert play(inventory, tmp_path) == {'node1': 0, 'node2': 0}
    # a real reboot loses all kernel state of node2; its VTEP comes back with the same MAC,
    # so node1's entries stay valid and only node2 changes
    lab('reboot', '--name', LAB, 'node2')
    assert play(inventory, tmp_path) == {'node1': 0, 'node2': 3}
    assert ' 0% packet loss' in on('node2', 'ping -c 3 -i 0.2 -W 2 10.244.1.0')


def test_respawn_under_the_system_python(inventory):
    """Run with an interpreter that lacks pyroute2: the module re-runs under /usr/bin/python3."""
    on('node1', 'python3 -m venv --without-pip /tmp/no-pyroute2')
    assert on('node1', '/tmp/no-pyroute2/bin/python -c import\tpyroute2', check=False) == ''
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(), ANSIBLE_CONFIG=str(REPO / 'tests' / 'ansible.cfg'),
               ANSIBLE_NOCOLOR='1')
    proc = subprocess.run([str(Path(sys.executable).parent / 'ansible'), '-i', inventory, 'node1', '-m', 'overlay.mesh.bridge',
                           '-e', 'ansible_python_interpreter=/tmp/no-pyroute2/bin/python',
                           '-a', '{"name": "cni9", "mac": "02:6a:4f:20:00:99"}'],
                          capture_output=True, text=True, env=env, cwd=str(REPO), check=False)
    assert proc.returncode == 0 and 'CHANGED' in proc.stdout, proc.stdout + proc.stderr
    assert 'cni9' in on('node1', 'ip link show dev cni9')
