# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The overlay's nftables table, rendered from the contract (loaded and checked by nft on lab hosts)."""

from __future__ import annotations

from ansible_collections.overlay.mesh.plugins.module_utils import _nftables
from ansible_collections.overlay.mesh.plugins.module_utils import _node_spec as spec

MACHINE_ID = '0123456789abcdef0123456789abcdef'


def node(**changes):
    raw = {'underlay': {'address': '198.18.0.11', 'mtu': 1500}, 'network': '10.244.0.0/16', 'subnet': '10.244.1.0/24',
           'peers': [{'subnet': '10.244.3.0/24', 'underlay': '198.18.0.13', 'vtep_mac': '02:00:00:00:00:03'},
                     {'subnet': '10.244.2.0/24', 'underlay': '198.18.0.12', 'vtep_mac': '02:00:00:00:00:02'}]}
    raw.update(changes)
    result = spec.normalize(raw, machine_id=MACHINE_ID)
    return _nftables.render(result, result.backend.ports())


def test_the_backend_port_is_open_to_peers_only():
    text = node()
    assert text.startswith('# overlay.mesh') and 'table inet overlay_mesh\ndelete table inet overlay_mesh\n' in text
    assert 'elements = { 198.18.0.12, 198.18.0.13 }' in text
    assert 'udp dport 8472 ip saddr != @peers counter drop' in text
    assert 'udp dport 8285 ip saddr != @peers counter drop' in node(backend={'type': 'udp'}, peers=[])
    assert 'elements' not in node(peers=[])


def test_switches_leave_out_their_chains():
    assert 'chain input' not in node(firewall={'peers_only': False})
    masquerade_off = node(firewall={'masquerade': False})
    assert 'postrouting' not in masquerade_off and 'ip saddr 10.244.0.0/16 accept' in masquerade_off
    assert 'ip saddr 10.244.1.0/24 ip daddr 10.244.0.0/16 return' in node()
