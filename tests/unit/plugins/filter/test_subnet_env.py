# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The overlay.mesh.subnet_env filter, and the 0.1 filters' deprecation."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.overlay.mesh.plugins.filter.release_0_1 import FilterModule


def test_filter_is_registered_and_renders_flannel_format():
    subnet_env = FilterModule().filters()['subnet_env']
    assert subnet_env({'subnet': '10.244.3.0/24'}) == (
        'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n')
    text = subnet_env({'subnet': '10.244.3.0/24', 'ipv6_subnet': 'fd00::3:0:0:0:0/64'}, '10.244.0.0/16', 1400, False, 'fd00::/48')
    assert text.splitlines()[2:] == ['FLANNEL_IPV6_NETWORK=fd00::/48', 'FLANNEL_IPV6_SUBNET=fd00:0:0:3::1/64',
                                     'FLANNEL_MTU=1400', 'FLANNEL_IPMASQ=false']


def test_filter_errors_say_what_is_wrong():
    subnet_env = FilterModule().filters()['subnet_env']
    with pytest.raises(AnsibleFilterError, match=r'overlay.mesh.subnet_env: lease subnet: 10.9.0.0/24 lies outside network 10.244.0.0/16'):
        subnet_env({'subnet': '10.9.0.0/24'})


def test_filter_takes_inventory_text_for_mtu_and_ipmasq():
    subnet_env = FilterModule().filters()['subnet_env']
    assert subnet_env({'subnet': '10.244.3.0/24'}, mtu='1400', ipmasq='no').splitlines()[2:] == ['FLANNEL_MTU=1400', 'FLANNEL_IPMASQ=false']
    with pytest.raises(AnsibleFilterError, match="ipmasq: 'perhaps' is not a boolean"):
        subnet_env({'subnet': '10.244.3.0/24'}, ipmasq='perhaps')


@pytest.mark.parametrize('expression, deprecated', [
    ("['a'] | overlay.mesh.node_group_problems({})", None),  # what the role uses: no warning about the 0.1 filters
    ("'10.244.1.0/24' | overlay.mesh.subnet_address(1)", 'subnet_address'),
    ("{'subnet': '10.244.1.0/24'} | overlay.mesh.subnet_env", 'subnet_env'),
])
def test_only_a_0_1_filter_in_use_is_reported_deprecated(tmp_path, expression, deprecated):
    (tmp_path / 'play.yml').write_text('- hosts: localhost\n  gather_facts: false\n  tasks:\n'
                                       '    - ansible.builtin.debug:\n        msg: "{{ %s }}"\n' % expression)
    collections = Path(sys.modules['ansible_collections'].__path__[0]).parent
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_NOCOLOR='1', ANSIBLE_LOCAL_TEMP=str(tmp_path / 'tmp'),
               ANSIBLE_CONFIG=str(tmp_path / 'none.cfg'))
    proc = subprocess.run([str(Path(sys.executable).with_name('ansible-playbook')), 'play.yml'], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    warned = re.findall(r'overlay\.mesh\.(\w+)"? has been deprecated', proc.stdout + proc.stderr)
    assert warned == ([deprecated] if deprecated else []), proc.stderr
