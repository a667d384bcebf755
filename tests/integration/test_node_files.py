# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node's files on a real Debian 12 lab host: a file overlay.mesh does not own is never written over nor removed,
a path whose directory cannot be made is refused, each before anything changes (check mode says the same), and a run
that fails after changing something says changed.

Boots lab "ovln-files" (1 host) with tests/lab/overlay_lab.py and always takes it down again.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import HOST_SNAPSHOT, SETTLE, collections_path, lab_inventory_path_of, lab_shell

REPO = Path(__file__).resolve().parents[2]

LAB = os.environ.get('OVERLAY_MESH_LAB_PREFIX', '') + 'ovln-files'
FOREIGN_ENV = "# the user's own\nPATH=/opt/bin:/usr/bin\n"
FLANNELD_ENV = 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.9.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n'
# podman's default network, as podman 3 (CNI) writes it
FOREIGN_CONFLIST = ('{"cniVersion": "0.4.0", "name": "podman", "plugins": [{"type": "bridge", "bridge": "cni-podman0", '
                    '"isGateway": true, "ipMasq": true, "hairpinMode": true, "ipam": {"type": "host-local", "ranges": '
                    '[[{"subnet": "10.88.0.0/16", "gateway": "10.88.0.1"}]]}}, {"type": "portmap", "capabilities": '
                    '{"portMappings": true}}, {"type": "firewall"}, {"type": "tuning"}]}\n')

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='needs root: boots systemd-nspawn lab hosts')


def on(command, check=True):
    return lab_shell(LAB, 'node1', command, check).stdout


@pytest.fixture(scope='module')
def inventory():
    yield from lab_inventory_path_of(LAB, 1)


def lab_module(inventory, host, name, args, check=False, diff=False, tree=None):
    """Run overlay.mesh.<name> on a lab host: the result dict ('failed' set when it failed), with 'output', what
    ansible printed, whitespace folded (the tree drops the warnings)."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(), ANSIBLE_CONFIG=str(REPO / 'tests' / 'ansible.cfg'),
               ANSIBLE_NOCOLOR='1')
    argv = [str(Path(sys.executable).parent / 'ansible'), '-i', inventory, host, '-m', 'overlay.mesh.%s' % name,
            '-a', json.dumps(args), '--tree', str(tree), '-vvv'] + (['--check'] if check else []) + (['--diff'] if diff else [])
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=str(REPO), check=False)
    path = tree / host
    assert path.exists(), proc.stdout + proc.stderr
    result = json.loads(path.read_text())
    path.unlink()
    result['output'] = ' '.join((proc.stdout + proc.stderr).split())  # ansible wraps long warnings
    if proc.returncode:
        result['failed'] = True
    return result


def put(path, text):
    on('mkdir -p %s && echo %s | base64 -d > %s' % (os.path.dirname(path), base64.b64encode(text.encode()).decode(), path))


def snapshot():
    """The host as a run could change it, the files of these tests included."""
    on(SETTLE)
    return on(HOST_SNAPSHOT + '; ls -lR /etc/overlay-mesh /usr/lib/overlay-mesh 2>&1; '
              'sha256sum /etc/environment.local /run/flannel/* /etc/cni/net.d/* 2>&1', check=False)


def test_foreign_files_are_never_overwritten_nor_removed(inventory, tmp_path):
    def node(contract, check=False, state=None):
        args = dict(contract, state=state) if state else contract
        return lab_module(inventory, 'node1', 'node', args, check=check, diff=True, tree=tmp_path)

    info = lab_module(inventory, 'node1', 'node_info', {'underlay': {}}, tree=tmp_path)
    contract = {'underlay': {'address': info['underlay']['address'], 'interface': info['underlay']['interface']},
                'network': '10.244.0.0/16', 'subnet': '10.244.1.0/24', 'backend': {'type': 'vxlan'}}

    # a fresh host: a subnet.env whose directory is a file, a foreign file where subnet.env or the conflist goes
    put('/etc/environment.local', FOREIGN_ENV)
    put('/etc/cni/net.d/10-podman.conflist', FOREIGN_CONFLIST)
    cases = [
        (dict(contract, subnet_env='/etc/hostname/subnet.env'),
         'subnet.env /etc/hostname/subnet.env (role variable mesh_node_subnet_env_file): /etc/hostname is not a directory'),
        (dict(contract, subnet_env='/etc/environment.local'),
         'subnet.env /etc/environment.local (role variable mesh_node_subnet_env_file): holds what overlay.mesh did not write'),
        (dict(contract, cni={'network_name': 'podman'}),
         'CNI conflist /etc/cni/net.d/10-podman.conflist (role variable mesh_node_cni_conf_dir, mesh_node_cni_network_name):'
         ' holds what overlay.mesh did not write (ours: the conflist of network podman'),
    ]
    before = snapshot()
    for wanted, message in cases:
        for check in (True, False):
            result = node(wanted, check=check)
            assert result.get('failed') and message in result['msg'], (check, result)
            assert not result['changed'] and 'changes' not in result, result
            assert snapshot() == before

    # flanneld's own subnet.env is taken over; then a converged host refuses the same, still changing nothing
    put('/run/flannel/subnet.env', FLANNELD_ENV)
    result = node(contract)
    assert result['changed'] and not result.get('failed'), result
    assert 'FLANNEL_SUBNET=10.244.1.1/24' in on('cat /run/flannel/subnet.env')
    before = snapshot()
    for wanted, message in cases:
        for check in (True, False):
            result = node(wanted, check=check)
            assert result.get('failed') and message in result['msg'] and not result['changed'], (check, result)
            assert snapshot() == before

    # subnet.env moved, then its old place changed hands: the next move leaves the user's file, with a warning
    assert not node(dict(contract, subnet_env='/run/flannel/moved.env')).get('failed')
    assert not on('ls /run/flannel/subnet.env', check=False) and on('cat /run/flannel/moved.env')
    put('/run/flannel/moved.env', 'LANG=C\n')
    result = node(contract)
    assert not result.get('failed') and 'removed file /run/flannel/moved.env' not in result['changes'], result
    assert on('cat /run/flannel/moved.env') == 'LANG=C\n' and 'FLANNEL_MTU=1450' in on('cat /run/flannel/subnet.env')
    assert 'left subnet.env /run/flannel/moved.env (role variable mesh_node_subnet_env_file) in place' in result['output']

    # a run that fails after changing something says changed (here the sysctl file's directory is a file)
    on('mv /etc/sysctl.d /etc/sysctl.d.saved && touch /etc/sysctl.d')
    try:
        result = node(dict(contract, mtu=1400))
    finally:
        on('rm /etc/sysctl.d && mv /etc/sysctl.d.saved /etc/sysctl.d')
    assert result.get('failed') and result['changed'] and result['changes'], result
    assert 'changes made before the failure: %d' % len(result['changes']) in result['msg'], result
    assert not node(contract).get('failed')

    # removal: our files go, the conflist the user replaced stays (a warning), and so do the user's files
    put('/etc/cni/net.d/10-overlay-mesh.conflist', '{"name": "mine"}\n')
    result = node({}, state='absent')
    assert result['changed'] and not result.get('failed'), result
    assert not on('ls /run/flannel/subnet.env', check=False)
    assert on('cat /etc/cni/net.d/10-overlay-mesh.conflist') == '{"name": "mine"}\n'
    assert on('cat /etc/environment.local') == FOREIGN_ENV and on('cat /run/flannel/moved.env') == 'LANG=C\n'
    assert 'podman' in on('cat /etc/cni/net.d/10-podman.conflist')
    assert 'left CNI conflist /etc/cni/net.d/10-overlay-mesh.conflist' in result['output']
