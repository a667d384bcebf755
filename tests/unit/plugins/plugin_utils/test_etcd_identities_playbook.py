# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mesh_node role's etcd identities task file (roles/mesh_node/tasks/etcd_identities.yml) through real
ansible-playbook runs against a real etcd with auth: check mode and --diff change nothing and show the roles,
the real run makes them, the next one reports changed=0; a host without its password stops the run naming the
host and the variable, before anything is written; without admin credentials nothing is done; no password
is ever printed, even with -v."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from test_etcd_identities import KEY1, LEASES, PREFIX, auth_state, enable_auth, refused

import etcd_lab  # pylint: disable=wrong-import-order

PLAYBOOK = """
- name: The role's leases as they are after the leases task, then the identities
  hosts: overlay
  gather_facts: false
  tasks:
    - name: Stand for the role's leases (once)
      ansible.builtin.set_fact:
        mesh_node__plan: {members: "{{ groups['overlay'] | reject('in', leaving) | list }}", leaving: "{{ leaving }}", release: "{{ leaving }}"}
        mesh_node__leases: {leases: "{{ leases }}"}
      run_once: true

    - name: The role's identities
      ansible.builtin.include_role:
        name: overlay.mesh.mesh_node
        tasks_from: etcd_identities.yml
"""

ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name('ansible-playbook'))


def run(root, *args, **extra):
    extra.setdefault('leaving', [])
    extra.setdefault('leases', {'node1': LEASES['node1'], 'node2': LEASES['node2']})
    collections = Path(sys.modules['ansible_collections'].__path__[0]).parent
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_NOCOLOR='1', ANSIBLE_RETRY_FILES_ENABLED='0',
               ANSIBLE_LOCAL_TEMP=str(root / 'tmp'), ANSIBLE_DEPRECATION_WARNINGS='0', ANSIBLE_CONFIG=str(root / 'ansible.cfg'))
    return subprocess.run([ANSIBLE_PLAYBOOK, '-i', str(root / 'hosts.yml'), 'play.yml', '-e', yaml.safe_dump(extra, default_flow_style=True)]
                          + list(args), cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False)


def inventory(root, cluster, passwords, **group):
    group_vars = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable, 'mesh_node_registry': 'etcd',
                  'mesh_node_etcd_endpoints': cluster.endpoints, 'mesh_node_etcd_prefix': PREFIX,
                  'mesh_node_etcd_admin_user': 'root', 'mesh_node_etcd_admin_password': 'rootpw-secret'}
    group_vars.update(group)
    hosts = {host: ({'mesh_node_agent_etcd_password': passwords[host]} if host in passwords else None) for host in ('node1', 'node2')}
    (root / 'hosts.yml').write_text(yaml.safe_dump({'overlay': {'hosts': hosts, 'vars': group_vars}}))


def test_role_identities_playbook(tmp_path):
    (tmp_path / 'play.yml').write_text(PLAYBOOK)
    (tmp_path / 'ansible.cfg').write_text('[defaults]\nretry_files_enabled = False\n')
    cluster = etcd_lab.Cluster(tmp_path / 'etcd').start()
    try:
        admin = enable_auth(cluster)
        admin.user_changepw('root', 'rootpw-secret')
        admin = cluster.client(user='root', password='rootpw-secret')
        secrets = {'node1': 'node1-secret', 'node2': 'node2-secret'}

        # Without admin credentials: nothing is done.
        inventory(tmp_path, cluster, secrets, mesh_node_etcd_admin_user='')
        before = auth_state(admin)
        proc = run(tmp_path)
        assert proc.returncode == 0 and 'skipping' in proc.stdout, proc.stdout + proc.stderr
        assert auth_state(admin) == before

        # A host without its password: refused, naming it and the variable; nothing written.
        inventory(tmp_path, cluster, {'node1': 'node1-secret'})
        proc = run(tmp_path)
        assert proc.returncode != 0
        assert 'node2: mesh_node_agent_etcd_password: required' in proc.stdout, proc.stdout
        assert auth_state(admin) == before

        # The role's preview (before the leases are written): the same refusal; a good input writes nothing, changes nothing.
        proc = run(tmp_path, mesh_node__identities_preview=True)
        assert proc.returncode != 0 and 'node2: mesh_node_agent_etcd_password: required' in proc.stdout, proc.stdout
        inventory(tmp_path, cluster, secrets)
        proc = run(tmp_path, mesh_node__identities_preview=True)
        assert proc.returncode == 0 and 'changed=0' in proc.stdout, proc.stdout + proc.stderr
        assert auth_state(admin) == before

        proc = run(tmp_path, '--check', '--diff', '-v')
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert 'changed=1' in proc.stdout and '+role overlay-mesh-node1:' in proc.stdout
        assert '+  readwrite %s' % KEY1 in proc.stdout
        assert auth_state(admin) == before  # check mode wrote nothing

        proc = run(tmp_path, '--diff', '-v')
        assert proc.returncode == 0 and 'changed=1' in proc.stdout, proc.stdout + proc.stderr
        assert admin.user_get('overlay-mesh-node1') == ['overlay-mesh-node1']
        node1 = cluster.client(user='overlay-mesh-node1', password='node1-secret')
        node1.put(KEY1, '{}')
        assert refused(node1, PREFIX + '/subnets/10.244.2.0-24&fd00:1::-64')
        for out in (proc.stdout, proc.stderr):
            assert not any(secret in out for secret in ('node1-secret', 'node2-secret', 'rootpw-secret'))

        after = auth_state(admin)
        for args in ((), ('--check',)):
            proc = run(tmp_path, *args)
            assert proc.returncode == 0 and 'changed=0' in proc.stdout and 'changed=1' not in proc.stdout, proc.stdout
        assert auth_state(admin) == after

        # node2 leaves: its user and role go.
        proc = run(tmp_path, leaving=['node2'], leases={'node1': LEASES['node1']})
        assert proc.returncode == 0 and 'changed=1' in proc.stdout, proc.stdout + proc.stderr
        assert admin.user_get('overlay-mesh-node2') is None and admin.role_get('overlay-mesh-node2') is None
    finally:
        cluster.stop()
