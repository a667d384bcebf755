# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""overlay.mesh.subnet_leases through a real ansible-playbook run on the controller (no host is contacted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ansible_collections.overlay.mesh.plugins.action import subnet_leases as action
from ansible_collections.overlay.mesh.plugins.modules import subnet_leases as module
from ansible_collections.overlay.mesh.plugins.plugin_utils import _leases as L

PLAYBOOK = """
- name: Subnet leases
  hosts: overlay
  gather_facts: false
  tasks:
    - name: Allocate the overlay subnets
      overlay.mesh.subnet_leases:
        hosts: "{{ groups['overlay'] }}"
        pinned: "{{ test_pinned | default({}) }}"
        underlay: "{{ test_underlay | default({}) }}"
        release: "{{ test_release | default([]) }}"
      run_once: true
      register: leases

    - name: Save the result for the test
      ansible.builtin.copy:
        content: "{{ leases | to_json }}"
        dest: "{{ result_file }}"
        mode: "0644"
      run_once: true
      check_mode: false
      diff: false

    - name: Render subnet.env
      ansible.builtin.copy:
        content: "{{ leases.leases[inventory_hostname] | overlay.mesh.subnet_env(leases.network, 1450) }}"
        dest: "{{ env_dir }}/{{ inventory_hostname }}.env"
        mode: "0644"
      check_mode: false
      diff: false
"""

ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name('ansible-playbook'))


def test_documented_options_match_the_argument_spec():
    doc = yaml.safe_load(module.DOCUMENTATION)['options']
    assert set(doc) == set(action.ARGUMENT_SPEC)
    for name, spec in action.ARGUMENT_SPEC.items():
        for key in ('type', 'elements', 'default', 'required'):
            assert doc[name].get(key, False if key == 'required' else None) == spec.get(key, False if key == 'required' else None), (name, key)
    yaml.safe_load(module.EXAMPLES)
    yaml.safe_load(module.RETURN)


def test_default_lease_file_is_hidden_beside_the_inventory():
    assert action.default_lease_file({'inventory_dir': '/inv'}) == '/inv/.overlay-mesh-leases.yml'
    assert action.default_lease_file({'inventory_dir': None}) is None


class Lab:
    """A throwaway inventory directory and playbook; every host uses the local connection."""

    def __init__(self, root):
        self.root = root
        self.inventory = root / 'inventory'
        self.inventory.mkdir()
        (root / 'env').mkdir()
        (root / 'play.yml').write_text(PLAYBOOK)
        (root / 'ansible.cfg').write_text('[defaults]\nretry_files_enabled = False\n')
        self.lease_file = self.inventory / L.LEASE_FILE_NAME
        self.set_hosts(['n1', 'n2', 'n3'])

    def set_hosts(self, hosts):
        data = {'overlay': {'hosts': {h: None for h in hosts}, 'vars': {'ansible_connection': 'local',
                                                                        'ansible_python_interpreter': sys.executable}}}
        (self.inventory / 'hosts.yml').write_text(yaml.safe_dump(data))

    def run(self, *args, **extra_vars):
        result_file = self.root / 'result.json'
        if result_file.exists():
            result_file.unlink()
        extra_vars.update(result_file=str(result_file), env_dir=str(self.root / 'env'))
        collections = Path(sys.modules['ansible_collections'].__path__[0]).parent
        env = dict(os.environ, ANSIBLE_CONFIG=str(self.root / 'ansible.cfg'), ANSIBLE_COLLECTIONS_PATH=str(collections),
                   ANSIBLE_NOCOLOR='1', ANSIBLE_LOCAL_TEMP=str(self.root / 'tmp'), ANSIBLE_DEPRECATION_WARNINGS='0')
        proc = subprocess.run([ANSIBLE_PLAYBOOK, '-i', str(self.inventory), 'play.yml', '-e', json.dumps(extra_vars)] + list(args),
                              cwd=self.root, env=env, capture_output=True, text=True, timeout=120, check=False)
        result = json.loads(result_file.read_text()) if result_file.exists() else None
        return proc, result

    def lease_file_entries(self):
        return L.read_lease_file(str(self.lease_file))[1]


def test_playbook_lifecycle(tmp_path):
    """check mode -> apply -> idempotence -> --limit with a new host -> validation error -> release.

    One test, not several: the steps build on each other (and must not be spread over xdist workers).
    """
    lab = Lab(tmp_path)

    # Check mode computes and reports the change, but writes nothing: no lease file, no lock file.
    proc, result = lab.run('--check')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert result['changed'] is True
    assert result['leases'] == {'n1': {'subnet': '10.244.1.0/24'}, 'n2': {'subnet': '10.244.2.0/24'},
                                'n3': {'subnet': '10.244.3.0/24'}}
    assert sorted(os.listdir(lab.inventory)) == ['hosts.yml']

    # Apply: the lease file appears beside the inventory; subnet.env renders from the result.
    underlay = {'n1': {'address': '192.168.64.3', 'network': '192.168.64.0/24', 'vtep_mac': 'C6:D2:32:6F:8F:44'}}
    proc, result = lab.run(test_underlay=underlay)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert result['changed'] is True and result['added'] == ['n1', 'n2', 'n3']
    assert result['lease_file'] == str(lab.lease_file)
    assert lab.lease_file_entries() == {
        'n1': {'subnet': '10.244.1.0/24', 'underlay': '192.168.64.3', 'vtep_mac': 'c6:d2:32:6f:8f:44'},
        'n2': {'subnet': '10.244.2.0/24'}, 'n3': {'subnet': '10.244.3.0/24'}}
    assert (lab.root / 'env' / 'n2.env').read_text() == (
        'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.2.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n')

    # Idempotence, also in check mode.
    before = lab.lease_file.read_text()
    proc, result = lab.run()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert result['changed'] is False and result['added'] == []
    assert lab.lease_file.read_text() == before
    proc, result = lab.run('--check')
    assert result['changed'] is False

    # --limit to one old host: the new host n0 still gets its lease, nobody moves; --diff shows it.
    lab.set_hosts(['n0', 'n1', 'n2', 'n3'])
    proc, result = lab.run('--limit', 'n2', '--diff')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert result['added'] == ['n0']
    assert {h: r['subnet'] for h, r in lab.lease_file_entries().items()} == {
        'n0': '10.244.4.0/24', 'n1': '10.244.1.0/24', 'n2': '10.244.2.0/24', 'n3': '10.244.3.0/24'}
    assert '+  n0: {subnet: "10.244.4.0/24"}' in proc.stdout

    # Bad input: one failure naming every host and field; the file is untouched.
    before = lab.lease_file.read_text()
    proc, result = lab.run(test_pinned={'n3': '10.245.0.0/24'}, test_underlay={'n1': {'network': '10.0.0.0/8'}})
    assert proc.returncode != 0
    assert result is None
    assert 'host n1: underlay: underlay network 10.0.0.0/8 overlaps the overlay network 10.244.0.0/16' in proc.stdout
    assert 'host n3: pinned: 10.245.0.0/24 lies outside network 10.244.0.0/16' in proc.stdout
    assert lab.lease_file.read_text() == before

    # Release.
    lab.set_hosts(['n0', 'n1', 'n2'])
    proc, result = lab.run(test_release=['n3'])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert result['released'] == ['n3'] and result['changed'] is True
    assert sorted(lab.lease_file_entries()) == ['n0', 'n1', 'n2']


def test_a_bad_pool_setting_names_the_role_variable():
    with pytest.raises(L.LeaseError) as refused:
        action._pool_config(dict((option, None) for option in action.POOL_OPTIONS)
                            | {'network': '10.244.0.0/16', 'subnet_len': 8, 'ipv6_subnet_min': 'fd00::/64'})
    assert refused.value.problems == [
        'subnet_len (role variable mesh_node_subnet_len): /8 is out of range: with network 10.244.0.0/16 it must be /18 to /30',
        'ipv6_subnet_len, ipv6_subnet_min and ipv6_subnet_max need ipv6_network']
