# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The overlay.mesh.subnet_env filter."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.overlay.mesh.plugins.filter.subnet_env import FilterModule


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
