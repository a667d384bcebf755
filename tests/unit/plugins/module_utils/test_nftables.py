# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The overlay's nftables table, rendered from the contract (loaded and checked by nft on lab hosts), and its diff."""

from __future__ import annotations

import base64
import subprocess

from ansible_collections.overlay.mesh.plugins.module_utils import _host
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


def test_tunnel_packets_between_peers_are_untracked_in_both_directions_before_conntrack():
    lines = _nftables.rule_lines(node()).splitlines()
    assert lines[3:7] == ['chain prerouting: type filter hook prerouting priority raw; policy accept;',
                          'chain prerouting: udp dport 8472 ip saddr @peers notrack',
                          'chain output: type filter hook output priority raw; policy accept;',
                          'chain output: udp dport 8472 ip daddr @peers notrack']
    # the peers-only drop stays (an untracked packet still passes the input hook)
    assert 'udp dport 8472 ip saddr != @peers counter drop' in lines[8]
    # every backend's port: udp, WireGuard; without the peers-only drop the set is still there for notrack
    assert 'udp dport 8285 ip saddr @peers notrack' in node(backend={'type': 'udp'})
    wireguard = node(backend={'type': 'wireguard', 'public_key': base64.b64encode(b'k' * 32).decode()},
                     peers=[{'subnet': '10.244.2.0/24', 'underlay': '198.18.0.12', 'public_key': base64.b64encode(b'p' * 32).decode()}])
    assert 'udp dport 51820 ip daddr @peers notrack' in wireguard
    open_port = node(firewall={'peers_only': False})
    assert 'chain input' not in open_port and 'elements = { 198.18.0.12, 198.18.0.13 }' in open_port
    assert 'udp dport 8472 ip saddr @peers notrack' in open_port
    # host-gw has no tunnel: no set, nothing untracked
    hostgw = node(backend={'type': 'host-gw'})
    assert 'notrack' not in hostgw and 'set peers' not in hostgw and 'priority raw' not in hostgw


def test_an_ipv6_underlay_untracks_by_ipv6_peers():
    v6 = node(underlay={'address': '2001:db8::11', 'mtu': 1500},
              peers=[{'subnet': '10.244.2.0/24', 'underlay': '2001:db8::12', 'vtep_mac': '02:00:00:00:00:02'}])
    assert 'type ipv6_addr' in v6 and 'elements = { 2001:db8::12 }' in v6
    assert 'udp dport 8472 ip6 saddr @peers notrack' in v6 and 'udp dport 8472 ip6 daddr @peers notrack' in v6


# nft -s list table inet overlay_mesh, as nft 1.0 prints a set too long for one line
LISTING = ('table inet overlay_mesh {\n'
           '\tset peers {\n\t\ttype ipv4_addr\n\t\telements = { 198.18.0.12,\n\t\t\t     198.18.0.13 }\n\t}\n\n'
           '\tchain input {\n\t\ttype filter hook input priority filter - 5; policy accept;\n'
           '\t\tudp dport 8472 ip saddr != @peers counter drop\n\t}\n'
           '}\n')


def test_a_table_is_one_line_per_rule_and_set_element_named_by_its_chain_or_set():
    lines = _nftables.rule_lines(node()).splitlines()
    assert lines[:3] + lines[7:9] == ['set peers: type ipv4_addr', 'set peers: element 198.18.0.12', 'set peers: element 198.18.0.13',
                                      'chain input: type filter hook input priority filter - 5; policy accept;',
                                      'chain input: udp dport 8472 ip saddr != @peers counter drop']
    assert 'chain postrouting: ip saddr 10.244.1.0/24 ip daddr 10.244.0.0/16 return' in lines
    assert not [line for line in lines if 'table' in line or '#' in line or not line.strip()]
    # nft's own listing reads the same, so a drift shows as the rules that differ
    assert _nftables.rule_lines(LISTING).splitlines() == lines[:3] + lines[7:9]
    assert _nftables.rule_lines(None) == ''


class FakeNft(_host.Host):
    """A host whose nft lists ``running`` (None: no table) and accepts every ruleset."""

    def __init__(self, running, **kwargs):
        super().__init__(**kwargs)
        self.running = running

    def run(self, argv, check=True, stdin=None):
        if argv[:2] == ['nft', '-s']:
            return subprocess.CompletedProcess(argv, 0 if self.running is not None else 1, self.running or '', '')
        return subprocess.CompletedProcess(argv, 0, '', '')


def test_the_diff_of_the_table_is_its_rule_lines_that_change(tmp_path, monkeypatch):
    monkeypatch.setattr(_nftables, 'LOADED_FILE', str(tmp_path / 'nftables.nft'))
    monkeypatch.setattr(_nftables, 'LISTING_SUM_FILE', str(tmp_path / 'nftables.sum'))
    fresh = FakeNft(None, check_mode=True)
    assert _nftables.ensure(fresh, node())
    assert fresh.report.changes == ['added nftables inet overlay_mesh (missing)']
    table = fresh.report.diff()[1]
    assert table['before_header'] == 'nftables table inet overlay_mesh' and table['before'] == ''
    assert table['after'] == _nftables.rule_lines(node())
    # a peer fewer: before is the table last loaded
    (tmp_path / 'nftables.nft').write_text(node())
    (tmp_path / 'nftables.sum').write_text(_nftables._digest(LISTING) + '\n')
    one_peer = node(peers=[{'subnet': '10.244.2.0/24', 'underlay': '198.18.0.12', 'vtep_mac': '02:00:00:00:00:02'}])
    changed = FakeNft(LISTING, check_mode=True)
    assert _nftables.ensure(changed, one_peer)
    table = changed.report.diff()[1]
    assert table['before'] == _nftables.rule_lines(node()) and table['after'] == _nftables.rule_lines(one_peer)
    # the same rules, the running table edited by hand: before is what runs
    drifted = FakeNft(LISTING.replace('\t\tudp dport 8472 ip saddr != @peers counter drop\n', ''), check_mode=True)
    assert _nftables.ensure(drifted, node())
    assert drifted.report.changes == ['updated nftables inet overlay_mesh (changed outside overlay.mesh)']
    assert 'udp dport' not in drifted.report.diff()[1]['before'] and 'udp dport' in drifted.report.diff()[1]['after']
