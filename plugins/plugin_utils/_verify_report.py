# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The verify playbook's report: every pair's probe results as one JSON document, a picture of the
mesh (a self-contained SVG: hosts as nodes, each direction of each pair an arrow coloured by its
state) and node_exporter textfile metrics. Pure functions of the probe results, on the controller.
"""

from __future__ import annotations

import json
import math
from xml.sax.saxutils import escape

FORMAT = 1
COLOURS = {'ok': '#2e7d32', 'degraded': '#f9a825', 'failed': '#c62828'}


def pair_state(result):
    """'ok', 'degraded' (reachable, but loss, the MTU or the path is off) or 'failed' (unreachable), over
    both families of a dual-stack overlay (the IPv6 keys end in 6)."""
    suffixes = ('', '6') if 'container6' in result else ('',)
    if not all(result.get('gateway' + suffix) and result.get('container' + suffix) for suffix in suffixes):
        return 'failed'
    if not all(result.get('mtu_fits' + suffix) and result.get('mtu_too_big_refused' + suffix) for suffix in suffixes) \
            or result.get('path_proven') is False or any((result.get('loss_percent' + suffix) or 0) > 0 for suffix in suffixes):
        return 'degraded'
    return 'ok'


def build(hosts, probes, mtu, generated, epoch=0, last_apply=None):
    """The report: hosts, pairs (from, to, state, path, rtt_ms, loss_percent, path_mtu, ...), each host's
    last apply (last_apply: {host: node_info's last_apply}), a summary. probes: {host: the probe's JSON output}."""
    pairs = []
    for source in hosts:
        for result in (probes.get(source) or {}).get('results', []):
            pair = {'from': source, 'to': result['host'], 'state': pair_state(result)}
            for key in ('path', 'rtt_ms', 'loss_percent', 'path_mtu', 'gateway', 'container', 'mtu_fits',
                        'mtu_too_big_refused', 'path_proven'):
                pair[key] = result.get(key)
            for key in ('path6', 'rtt_ms6', 'loss_percent6', 'gateway6', 'container6', 'mtu_fits6', 'mtu_too_big_refused6'):
                if key in result:  # a dual-stack overlay
                    pair[key] = result[key]
            pairs.append(pair)
    counts = dict((state, sum(1 for pair in pairs if pair['state'] == state)) for state in COLOURS)
    return {'format': FORMAT, 'generated': generated, 'generated_epoch': epoch, 'overlay_mtu': mtu, 'hosts': list(hosts), 'pairs': pairs,
            'last_apply': dict((host, (last_apply or {}).get(host) or None) for host in hosts),
            'summary': dict(counts, pairs=len(pairs),
                            failures=[failure for host in hosts for failure in (probes.get(host) or {}).get('failures', [])])}


def to_json(report):
    return json.dumps(report, indent=2, sort_keys=True) + '\n'


def svg(report, size=640):
    """The mesh as an SVG: hosts on a circle, one arrow per direction (offset so both show), coloured by
    state, each with a <title> giving its figures. Elements carry data-* attributes (hosts and pair
    states) so that tools and tests can read the picture back."""
    hosts = report['hosts']
    centre, radius = size / 2.0, size / 2.0 - 90
    places = {}
    for index, host in enumerate(hosts):
        angle = 2 * math.pi * index / max(1, len(hosts)) - math.pi / 2
        places[host] = (centre + radius * math.cos(angle), centre + radius * math.sin(angle))
    summary = report['summary']
    lines = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif">'
             % (size, size + 40, size, size + 40),
             '<defs>%s</defs>' % ''.join(
                 '<marker id="arrow-%s" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto">'
                 '<path d="M0,0 L10,5 L0,10 z" fill="%s"/></marker>' % (state, colour) for state, colour in COLOURS.items()),
             '<title>overlay.mesh verify: %d pairs, %d ok, %d degraded, %d failed</title>'
             % (summary['pairs'], summary['ok'], summary['degraded'], summary['failed'])]
    for pair in report['pairs']:
        if pair['from'] not in places or pair['to'] not in places:
            continue
        (x1, y1), (x2, y2) = places[pair['from']], places[pair['to']]
        length = math.hypot(x2 - x1, y2 - y1) or 1.0
        ux, uy = (x2 - x1) / length, (y2 - y1) / length
        ox, oy = -uy * 6, ux * 6  # each direction on its own side of the line between the hosts
        start = (x1 + ux * 30 + ox, y1 + uy * 30 + oy)
        end = (x2 - ux * 30 + ox, y2 - uy * 30 + oy)
        title = '%s -> %s: %s, path %s, rtt %s ms, loss %s %%, path MTU %s' % (
            pair['from'], pair['to'], pair['state'], pair.get('path'), _figure(pair.get('rtt_ms')),
            _figure(pair.get('loss_percent')), pair.get('path_mtu'))
        lines.append('<line class="pair" data-from="%s" data-to="%s" data-state="%s" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" '
                     'stroke="%s" stroke-width="3" marker-end="url(#arrow-%s)"><title>%s</title></line>'
                     % (escape(pair['from']), escape(pair['to']), pair['state'], start[0], start[1], end[0], end[1],
                        COLOURS[pair['state']], pair['state'], escape(title)))
    for host in hosts:
        x, y = places[host]
        lines.append('<g class="host" data-host="%s"><circle cx="%.1f" cy="%.1f" r="26" fill="#eceff1" stroke="#37474f" '
                     'stroke-width="2"/><text x="%.1f" y="%.1f" text-anchor="middle" font-size="13">%s</text></g>'
                     % (escape(host), x, y, x, y + 4, escape(host)))
    lines.append('<text x="10" y="%d" font-size="13">%s</text>' % (size + 25, escape(
        '%d pairs: %d ok, %d degraded, %d failed; overlay MTU %s; %s' % (
            summary['pairs'], summary['ok'], summary['degraded'], summary['failed'], report.get('overlay_mtu'),
            report.get('generated')))))
    lines.append('</svg>')
    return '\n'.join(lines) + '\n'


def _figure(value):
    return '-' if value is None else ('%.2f' % value if isinstance(value, float) else str(value))


def textfile(report, host, peers_programmed, last_apply=None):
    """node_exporter textfile-collector metrics of one host: the last apply of its node (by a site run or
    at boot; last_apply as overlay.mesh.node_info returns it), its peers and how each answered."""
    lines = []
    if last_apply:
        by = str(last_apply.get('by') or 'unknown').replace('"', '').replace('\\', '')
        lines += ['# HELP overlay_mesh_last_apply_success 1 when the last apply of the node (a site run or the boot-time'
                  ' reapply) succeeded.',
                  '# TYPE overlay_mesh_last_apply_success gauge',
                  'overlay_mesh_last_apply_success{by="%s"} %d' % (by, last_apply.get('result') == 'ok'),
                  '# HELP overlay_mesh_last_apply_timestamp_seconds When the node was last applied.',
                  '# TYPE overlay_mesh_last_apply_timestamp_seconds gauge',
                  'overlay_mesh_last_apply_timestamp_seconds{by="%s"} %d' % (by, int(last_apply.get('time') or 0)),
                  '# HELP overlay_mesh_last_apply_changes Objects the last apply added, updated or removed.',
                  '# TYPE overlay_mesh_last_apply_changes gauge',
                  'overlay_mesh_last_apply_changes{by="%s"} %d' % (by, int(last_apply.get('changes') or 0))]
    agent = (last_apply or {}).get('agent')
    if isinstance(agent, dict):
        lines += ['# HELP overlay_mesh_agent_synced 1 when the node agent follows etcd, 0 when it is degraded (etcd unreachable'
                  ' or without quorum: the last applied peers stand).',
                  '# TYPE overlay_mesh_agent_synced gauge',
                  'overlay_mesh_agent_synced %d' % (agent.get('state') == 'synced')]
    lines += ['# HELP overlay_mesh_peers_programmed Peers in the node contract the host applied.',
              '# TYPE overlay_mesh_peers_programmed gauge',
              'overlay_mesh_peers_programmed %d' % peers_programmed,
              '# HELP overlay_mesh_peer_reachable 1 when the peer\'s gateway and a container on it answered across the overlay.',
              '# TYPE overlay_mesh_peer_reachable gauge']
    mine = [pair for pair in report['pairs'] if pair['from'] == host]
    lines += ['overlay_mesh_peer_reachable{peer="%s"} %d' % (pair['to'], pair['state'] != 'failed') for pair in mine]
    lines += ['# HELP overlay_mesh_peer_ok 1 when every probe to the peer passed (reachable, no loss, MTU, path).',
              '# TYPE overlay_mesh_peer_ok gauge']
    lines += ['overlay_mesh_peer_ok{peer="%s"} %d' % (pair['to'], pair['state'] == 'ok') for pair in mine]
    lines += ['# HELP overlay_mesh_peer_rtt_seconds Round-trip time to a container on the peer.',
              '# TYPE overlay_mesh_peer_rtt_seconds gauge']
    lines += ['overlay_mesh_peer_rtt_seconds{peer="%s"} %.6f' % (pair['to'], pair['rtt_ms'] / 1000.0)
              for pair in mine if pair.get('rtt_ms') is not None]
    lines += ['# HELP overlay_mesh_verify_timestamp_seconds When overlay.mesh.verify measured these.',
              '# TYPE overlay_mesh_verify_timestamp_seconds gauge',
              'overlay_mesh_verify_timestamp_seconds %s' % report.get('generated_epoch', 0)]
    return '\n'.join(lines) + '\n'
