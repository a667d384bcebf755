# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node agents' etcd identities made by a real site run (mesh_node_etcd_admin_user), issue 22.

Lab "ovln-ident": node1 and node2 run site with the etcd registry on an etcd with auth enabled (the unit
tests' real etcd on the controller's 127.0.0.1, the controller writing the leases as root). After the run
each host has a user and a role of its own: node1's reads the prefix, writes its own lease key and is
refused writing node2's. --check changes nothing (the whole auth state compared), a second run reports
changed=0 everywhere, and a host taken out with overlay.mesh.remove loses its user and role.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import collections_path, lab

REPO = Path(__file__).resolve().parents[2]
LAB = os.environ.get('OVERLAY_MESH_LAB_PREFIX', '') + 'ovln-ident'
PREFIX = '/coreos.com/network'

sys.path[:0] = [str(REPO / 'tests' / 'unit' / 'plugins' / 'plugin_utils'), collections_path()]
import etcd_lab  # noqa: E402  pylint: disable=wrong-import-position,wrong-import-order
from ansible_collections.overlay.mesh.plugins.module_utils import _etcd  # noqa: E402  pylint: disable=wrong-import-position
from test_etcd_identities import auth_state  # noqa: E402  pylint: disable=wrong-import-position,wrong-import-order

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason='needs root: boots systemd-nspawn lab hosts')]


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    """(lab inventory, our group's inventory, etcd cluster, its root client)."""
    tmp = tmp_path_factory.mktemp('ident')
    lab('down', '--name', LAB, check=False)
    cluster = None
    try:
        out = lab('up', '--name', LAB, '--hosts', '2').stdout
        inventory = re.search(r'inventory: (\S+)', out).group(1)
        ours = tmp / 'ours.yml'
        ours.write_text(json.dumps({'all': {'children': {'ours': {'hosts': {
            'node1': {'mesh_node_agent_etcd_password': 'node1-secret'},
            'node2': {'mesh_node_agent_etcd_password': 'node2-secret'}}}}}}))
        cluster = etcd_lab.Cluster(tmp / 'etcd').start()
        admin = cluster.client()
        admin.user_add('root', 'root-secret')
        admin.user_grant('root', 'root')
        admin.call('/v3/auth/enable', {})
        yield inventory, str(ours), cluster, cluster.client(user='root', password='root-secret')
    finally:
        if cluster is not None:
            cluster.stop()
        lab('down', '--name', LAB, check=False)


def play(world, playbook, *extra):
    inventory, ours, cluster, dummy = world
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(), ANSIBLE_CONFIG=str(REPO / 'tests' / 'ansible.cfg'),
               ANSIBLE_NOCOLOR='1')
    variables = {'mesh_node_group': 'ours', 'mesh_node_registry': 'etcd', 'mesh_node_etcd_endpoints': cluster.endpoints,
                 'mesh_node_etcd_user': 'root', 'mesh_node_etcd_password': 'root-secret',
                 'mesh_node_etcd_admin_user': 'root', 'mesh_node_etcd_admin_password': 'root-secret'}
    argv = [str(Path(sys.executable).parent / 'ansible-playbook'), '-i', inventory, '-i', ours, playbook,
            '-e', json.dumps(variables)] + list(extra)
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=str(REPO), check=False)


def lease_keys(admin):
    return {json.loads(value)['OverlayMesh']['host']: key for key, value, *dummy in admin.range_prefix(PREFIX + '/subnets/')[1]}


def test_site_gives_each_agent_its_own_identity(world):
    cluster, admin = world[2], world[3]
    before = auth_state(admin)
    checked = play(world, 'overlay.mesh.site', '--check', '--diff')
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-2000:]
    assert '+role overlay-mesh-node1:' in checked.stdout
    assert auth_state(admin) == before  # nothing written in check mode

    first = play(world, 'overlay.mesh.site')
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    assert 'node1-secret' not in first.stdout and 'root-secret' not in first.stdout
    keys = lease_keys(admin)
    assert admin.role_get('overlay-mesh-node1') == sorted([('READ', PREFIX + '/', PREFIX + '0'), ('READWRITE', keys['node1'], '')])
    node1 = cluster.client(user='overlay-mesh-node1', password='node1-secret')
    assert len(node1.range_prefix(PREFIX + '/subnets/')[1]) == 2
    own = dict((k, v) for k, v, *dummy in node1.range_prefix(keys['node1'])[1])[keys['node1']]
    node1.put(keys['node1'], own)  # its own lease, unchanged
    with pytest.raises(_etcd.EtcdError) as err:
        node1.put(keys['node2'], own)
    assert err.value.kind == 'auth' and 'permission denied' in str(err.value)

    state = auth_state(admin)
    again = play(world, 'overlay.mesh.site')
    assert again.returncode == 0 and not re.search(r'changed=[1-9]', again.stdout), again.stdout[-3000:]
    assert auth_state(admin) == state

    removed = play(world, 'overlay.mesh.remove', '-e', 'remove=node2')
    assert removed.returncode == 0, removed.stdout[-3000:] + removed.stderr[-2000:]
    assert admin.user_get('overlay-mesh-node2') is None and admin.role_get('overlay-mesh-node2') is None
    assert admin.user_get('overlay-mesh-node1') == ['overlay-mesh-node1']
