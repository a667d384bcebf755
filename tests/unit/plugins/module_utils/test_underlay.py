# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The underlay's refusals name the option, or from the role the role variable and the host (issue 24)."""

from __future__ import annotations

import pytest

from ansible_collections.overlay.mesh.plugins.module_utils import _underlay

LINKS = [{'ifname': 'lo', 'mtu': 65536, 'addr_info': [{'family': 'inet', 'local': '127.0.0.1', 'prefixlen': 8, 'scope': 'host'}]},
         {'ifname': 'eth0', 'mtu': 1500, 'addr_info': [{'family': 'inet', 'local': '198.18.0.11', 'prefixlen': 24, 'scope': 'global'}]}]
ROLE = {'host': 'node1', 'variables': {'address': 'mesh_node_underlay_address', 'interface': 'mesh_node_underlay_interface',
                                       'reach': 'mesh_node_underlay_reach'}}


@pytest.mark.parametrize('params, plain, role', [
    ({'interface': 'eth9'}, 'underlay interface eth9 (option interface) does not exist on this host',
     'underlay interface eth9 (role variable mesh_node_underlay_interface) does not exist on host node1'),
    ({'interface': 'lo'}, 'underlay interface lo (option interface) has no global ipv4 address on this host',
     'underlay interface lo (role variable mesh_node_underlay_interface) has no global ipv4 address on host node1'),
    ({'address': '198.18.0.99'}, 'underlay address 198.18.0.99 (option address) is not configured on any interface of this host',
     'underlay address 198.18.0.99 (role variable mesh_node_underlay_address) is not configured on any interface of host node1'),
    ({'reach': 'nowhere'}, "reach: 'nowhere' is not an IP address (this host)",
     "mesh_node_underlay_reach: 'nowhere' is not an IP address (host node1)"),
])
def test_refusals_name_the_option_or_the_role_variable_and_the_host(params, plain, role):
    with pytest.raises(_underlay.UnderlayError) as info:
        _underlay.choose(LINKS, params, None)
    assert str(info.value) == plain
    with pytest.raises(_underlay.UnderlayError) as info:
        _underlay.choose(LINKS, dict(params, **ROLE), None)
    assert str(info.value) == role


def test_a_configured_address_or_interface_is_chosen():
    assert _underlay.choose(LINKS, dict(ROLE, address='198.18.0.11'), None) == (('eth0', '198.18.0.11', 24, 1500), 'address')
    assert _underlay.choose(LINKS, dict(ROLE, interface='eth0'), None) == (('eth0', '198.18.0.11', 24, 1500), 'interface')
