# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The overlay's own nftables table: rendered from the node contract, replaced atomically.

Nothing else in the ruleset is touched. One ``nft -f`` transaction creates, empties and refills
the table, so a reload never leaves a moment without rules. Drift (nftables.service flushing
the ruleset, a hand edit) is found by comparing the running table's stateless listing with the
one recorded after the last load.
"""

from __future__ import annotations

import hashlib
import os

from ansible_collections.overlay.mesh.plugins.module_utils import _host
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_changes import EngineError

FAMILY = 'inet'
TABLE = 'overlay_mesh'
LOADED_FILE = os.path.join(_host.RUN_DIR, 'nftables.nft')
LISTING_SUM_FILE = os.path.join(_host.RUN_DIR, 'nftables.sum')


def _match(protocol, value):
    """nft's match for one firewall need (Backend.firewall): a port (udp/tcp and its number), or a whole IP
    protocol (('ip', number): ipip 4, gre 47, esp 50), which has no port."""
    return 'meta l4proto %d' % value if protocol == 'ip' else '%s dport %d' % (protocol, value)


def render(node, ports):
    """The table for a normalised node contract; ports: what only peers may send to (Backend.firewall():
    [(protocol, port)], and ('ip', number) for an IP protocol)."""
    net, pod = node['network'], node['subnet']
    family = 'ip' if node.underlay_version == 4 else 'ip6'
    lines = [
        '# overlay.mesh: masquerade for traffic leaving the overlay, forwarding for the overlay network',
        '# (flannel\'s rules), the %s backend\'s port(s) open to peers only and its tunnel packets untracked.'
        % node['backend']['type'],
        'table %s %s' % (FAMILY, TABLE),
        'delete table %s %s' % (FAMILY, TABLE),
        'table %s %s {' % (FAMILY, TABLE),
    ]
    if ports:
        addresses = sorted(set(peer['underlay'] for peer in node['peers']))
        lines += ['\tset peers {', '\t\ttype %s' % ('ipv4_addr' if family == 'ip' else 'ipv6_addr')]
        if addresses:
            lines.append('\t\telements = { %s }' % ', '.join(addresses))
        lines += ['\t}', '',
                  '\t# Tunnel packets between peers are not tracked: conntrack of the outer packets costs ~9 %',
                  '\t# of the throughput and nothing needs it (docs/role.md: what a host firewall must allow).']
        for chain, direction in (('prerouting', 'saddr'), ('output', 'daddr')):
            lines += ['\tchain %s {' % chain, '\t\ttype filter hook %s priority raw; policy accept;' % chain]
            for protocol, port in ports:
                lines.append('\t\t%s %s %s @peers notrack' % (_match(protocol, port), family, direction))
            lines += ['\t}', '']
    if node['firewall']['peers_only'] and ports:
        lines += ['\t# The encapsulation carries no authentication: only peers may send to the backend.',
                  '\tchain input {', '\t\ttype filter hook input priority filter - 5; policy accept;']
        for protocol, port in ports:
            lines.append('\t\t%s %s saddr != @peers counter drop' % (_match(protocol, port), family))
        lines += ['\t}', '']
    # a dual-stack overlay: the same rules for its IPv6 network (masquerade only with ipv6_masquerade)
    families = [('ip', net, pod, '224.0.0.0/4', node['firewall']['masquerade'])]
    if node.ipv6_subnet:
        families.append(('ip6', node['ipv6_network'], node['ipv6_subnet'], 'ff00::/8', node['firewall']['ipv6_masquerade']))
    lines += ['\tchain forward {', '\t\ttype filter hook forward priority filter - 5; policy accept;']
    for ip, network, _subnet, _multicast, _masquerade in families:
        lines += ['\t\t%s saddr %s accept' % (ip, network), '\t\t%s daddr %s accept' % (ip, network)]
    lines.append('\t}')
    if any(masquerade for _ip, _network, _subnet, _multicast, masquerade in families):
        lines += ['', '\tchain postrouting {', '\t\ttype nat hook postrouting priority srcnat - 5; policy accept;']
        for ip, network, subnet, multicast, masquerade in families:
            if masquerade:
                lines += ['\t\t%s saddr %s %s daddr %s return' % (ip, subnet, ip, network),
                          '\t\t%s saddr %s %s daddr %s return' % (ip, network, ip, subnet),
                          '\t\t%s saddr != %s %s daddr %s return' % (ip, network, ip, subnet),
                          '\t\t%s saddr %s %s daddr != %s masquerade fully-random' % (ip, network, ip, multicast),
                          '\t\t%s saddr != %s %s daddr %s masquerade fully-random' % (ip, network, ip, network)]
        lines.append('\t}')
    lines.append('}')
    return '\n'.join(lines) + '\n'


def rule_lines(text):
    """A table (as rendered, or as nft lists it) as one line per rule, set element or chain property, each
    named by its chain or set: a diff of two tables shows the lines that change. Comments, blank lines and
    the transaction's own table lines are left out."""
    lines, blocks, elements = [], [], None
    for line in (text or '').splitlines():
        line = line.strip()
        if elements is not None or line.startswith('elements = {'):
            elements = (elements or '') + ' ' + line  # nft lists a long set over several lines
            if '}' in line:
                lines += ['%s: element %s' % (blocks[-1], item.strip())
                          for item in elements.split('{', 1)[1].rsplit('}', 1)[0].split(',') if item.strip()]
                elements = None
        elif line.endswith('{'):
            blocks.append(line[:-1].strip())
        elif line == '}' and blocks:
            blocks.pop()
        elif line and not line.startswith('#') and len(blocks) > 1:
            lines.append('%s: %s' % (blocks[-1], line))
    return ''.join(line + '\n' for line in lines)


def _listing(host, required=True):
    """The running table's stateless listing, or None when there is none (or no nft, unless required)."""
    try:
        proc = host.run(['nft', '-s', 'list', 'table', FAMILY, TABLE], check=False)
    except EngineError:
        if required:
            raise
        return None  # nft is not installed: there is no table of ours to remove either
    return proc.stdout if proc.returncode == 0 else None


def _digest(text):
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def ensure(host, text):
    """Load the table when it is missing, drifted or different from ``text``."""
    obj = {'type': 'nftables', 'name': '%s %s' % (FAMILY, TABLE)}
    running = _listing(host)
    loaded = host.read(LOADED_FILE)
    recorded = host.read(LISTING_SUM_FILE)
    if running is not None and loaded == text and recorded and recorded.strip() == _digest(running):
        host.report.unchanged(obj)
        return False
    if running is None:
        reason = 'missing'
    elif loaded != text:
        reason = 'rules changed'
    else:
        reason = 'changed outside overlay.mesh'
    host.report.object('added' if running is None else 'updated', dict(obj, detail=reason),
                       None if running is None else obj)
    # our last load when it is what runs, else what runs (nft's listing of it)
    host.report.text_diff('nftables table %s %s' % (FAMILY, TABLE),
                          rule_lines(loaded if loaded and reason == 'rules changed' else running), rule_lines(text))
    # Check mode still asks nft whether it would accept the rules.
    host.run(['nft', '-c', '-f', '-'], stdin=text)
    if host.check_mode:
        return True
    host.run(['nft', '-f', '-'], stdin=text)
    _host.write_atomic(LOADED_FILE, text)
    _host.write_atomic(LISTING_SUM_FILE, _digest(_listing(host) or '') + '\n')
    return True


def remove(host):
    running = _listing(host, required=False)
    for path in (LOADED_FILE, LISTING_SUM_FILE):
        if os.path.exists(path) and not host.check_mode:
            os.unlink(path)
    if running is None:
        return False
    host.report.object('removed', {'type': 'nftables', 'name': '%s %s' % (FAMILY, TABLE)},
                       {'type': 'nftables', 'name': '%s %s' % (FAMILY, TABLE)})
    if not host.check_mode:
        host.run(['nft', 'delete', 'table', FAMILY, TABLE])
    return True
