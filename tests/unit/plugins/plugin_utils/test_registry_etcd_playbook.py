# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""subnet_leases with registry etcd through real ansible-playbook runs, in the role's pattern: a check-mode
leases task, the real one, then a change on every host. An etcd that cannot be used stops the play at the
first task, before any host is changed; --diff and changed are those of the lease file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from ansible_collections.overlay.mesh.plugins.plugin_utils import _leases as L
from ansible_collections.overlay.mesh.plugins.plugin_utils import _registry as R

import etcd_lab  # pylint: disable=wrong-import-order

PLAYBOOK = """
- name: Leases in etcd, then a change on every host
  hosts: overlay
  gather_facts: false
  tasks:
    - name: Work out the leases without writing them
      overlay.mesh.subnet_leases: &leases
        hosts: "{{ groups['overlay'] }}"
        registry: etcd
        etcd_endpoints: "{{ endpoints }}"
        etcd_timeout: 2
        etcd_prefix: /test/playbook
        underlay: "{{ test_underlay | default({}) }}"
        release: "{{ test_release | default([]) }}"
        backend: {type: vxlan, vni: 1, port: 8472}
      check_mode: true
      diff: false
      run_once: true
      delegate_to: localhost
      register: checked

    - name: Allocate, keep and release
      overlay.mesh.subnet_leases: *leases
      run_once: true
      delegate_to: localhost
      register: leases

    - name: Change every host (stands for the node contract)
      ansible.builtin.copy:
        content: "{{ leases.leases[inventory_hostname].subnet }}"
        dest: "{{ out_dir }}/{{ inventory_hostname }}.changed"
        mode: "0644"
      diff: false

    - name: Save the result for the test
      ansible.builtin.copy:
        content: "{{ leases | to_json }}"
        dest: "{{ out_dir }}/result.json"
        mode: "0644"
      run_once: true
      check_mode: false
      diff: false
"""

ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name('ansible-playbook'))


def run(root, endpoints, *args, **extra):
    out = root / 'out'
    for old in out.glob('*'):
        old.unlink()
    extra.update(endpoints=endpoints, out_dir=str(out))
    collections = Path(sys.modules['ansible_collections'].__path__[0]).parent
    env = dict(os.environ, ANSIBLE_CONFIG=str(root / 'ansible.cfg'), ANSIBLE_COLLECTIONS_PATH=str(collections),
               ANSIBLE_NOCOLOR='1', ANSIBLE_LOCAL_TEMP=str(root / 'tmp'), ANSIBLE_DEPRECATION_WARNINGS='0')
    proc = subprocess.run([ANSIBLE_PLAYBOOK, '-i', str(root / 'hosts.yml'), 'play.yml', '-e', json.dumps(extra)] + list(args),
                          cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False)
    result = json.loads((out / 'result.json').read_text()) if (out / 'result.json').exists() else None
    return proc, result, sorted(p.name for p in out.glob('*.changed'))


def test_playbook_with_etcd(tmp_path):
    (tmp_path / 'out').mkdir()
    (tmp_path / 'play.yml').write_text(PLAYBOOK)
    (tmp_path / 'ansible.cfg').write_text('[defaults]\nretry_files_enabled = False\n')
    inventory = {'overlay': {'hosts': {h: None for h in ('n1', 'n2', 'n3')},
                             'vars': {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}}}
    (tmp_path / 'hosts.yml').write_text(yaml.safe_dump(inventory))

    # Nothing listens there: the first (check-mode) task fails for the whole group; no host is changed.
    dead = ['http://127.0.0.1:%d' % etcd_lab.free_ports(1)[0]]
    proc, result, changed = run(tmp_path, dead)
    assert proc.returncode != 0 and result is None and changed == []
    assert 'registry etcd: no etcd endpoint answered' in proc.stdout and 'mesh_node_etcd_endpoints' in proc.stdout
    assert 'TASK [Allocate, keep and release]' not in proc.stdout

    # No endpoint at all: the option and its role variable are named.
    proc, result, changed = run(tmp_path, [])
    assert proc.returncode != 0 and changed == []
    assert 'etcd_endpoints (role variable mesh_node_etcd_endpoints): required with registry etcd' in proc.stdout

    cluster = etcd_lab.Cluster(tmp_path / 'etcd').start()
    try:
        underlay = {'n1': {'address': '192.168.64.3', 'vtep_mac': 'c6:d2:32:6f:8f:44'}}
        proc, result, changed = run(tmp_path, cluster.endpoints, '--diff', test_underlay=underlay)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert result['changed'] and result['added'] == ['n1', 'n2', 'n3'] and result['etcd_requests'] == 2
        assert 'lease_file' not in result
        assert changed == ['n1.changed', 'n2.changed', 'n3.changed']
        assert '+  n1: {subnet: "10.244.1.0/24", underlay: "192.168.64.3", vtep_mac: "c6:d2:32:6f:8f:44"}' in proc.stdout
        assert '+++ after: etcd %s /test/playbook' % cluster.endpoints[0] in proc.stdout

        # A rerun reads once and writes nothing; check mode too.
        for args in ((), ('--check',)):
            proc, result, changed = run(tmp_path, cluster.endpoints, *args, test_underlay=underlay)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            assert result['changed'] is False and result['etcd_requests'] == 1

        # Release n3 in check mode: reported, not written.
        proc, result, changed = run(tmp_path, cluster.endpoints, '--check', '--diff', test_underlay=underlay, test_release=['n3'])
        assert result['changed'] is True and result['released'] == ['n3']
        assert '-  n3: {subnet: "10.244.3.0/24"}' in proc.stdout
        state = [k for k, v, m, lease in cluster.client().range_prefix('/test/playbook/')[1]]
        assert '/test/playbook/subnets/10.244.3.0-24' in state
    finally:
        cluster.stop()


def test_registry_playbook_import_export_round_trip(tmp_path):
    """playbooks/registry.yml: the lease file into etcd and back, nothing lost, a second import changes nothing."""
    lease_file = tmp_path / 'leases.yml'
    config = L.make_config('10.244.0.0/16')
    L.update_lease_file(str(lease_file), config, ['n1', 'n2', 'n3', 'gone'],
                        underlay={'n1': {'address': '192.168.64.3', 'vtep_mac': 'c6:d2:32:6f:8f:44'}})
    L.update_lease_file(str(lease_file), config, ['n1', 'n2', 'n3'], pinned={'n3': '10.244.9.0/24'})
    original = L.read_lease_file(str(lease_file))[1]
    cluster = etcd_lab.Cluster(tmp_path / 'etcd').start()
    try:
        group_vars = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                      'mesh_node_etcd_endpoints': cluster.endpoints, 'mesh_node_lease_file': str(lease_file)}
        (tmp_path / 'hosts.yml').write_text(yaml.safe_dump({'overlay': {'hosts': {'n1': None, 'n2': None, 'n3': None},
                                                                        'vars': group_vars}}))
        playbook = Path(sys.modules['ansible_collections'].__path__[0]) / 'overlay/mesh/playbooks/registry.yml'
        collections = Path(sys.modules['ansible_collections'].__path__[0]).parent
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_NOCOLOR='1',
                   ANSIBLE_LOCAL_TEMP=str(tmp_path / 'tmp'), ANSIBLE_DEPRECATION_WARNINGS='0', ANSIBLE_RETRY_FILES_ENABLED='0')

        def migrate(direction, *args):
            proc = subprocess.run([ANSIBLE_PLAYBOOK, '-i', str(tmp_path / 'hosts.yml'), str(playbook),
                                   '-e', 'registry_migrate=' + direction] + list(args),
                                  cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            return proc.stdout

        assert '4 leases in etcd (changed)' in migrate('import')
        assert R.State('/coreos.com/network', *cluster.client().range_prefix('/coreos.com/network/')).leases == original
        assert '4 leases in etcd (already there)' in migrate('import')
        lease_file.unlink()
        assert '(changed)' in migrate('export')
        assert L.read_lease_file(str(lease_file))[1] == original
        before = lease_file.read_text()
        assert '(already there)' in migrate('export')
        assert lease_file.read_text() == before
    finally:
        cluster.stop()
