# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The verify report, its picture (parsed back) and its textfile metrics."""

from __future__ import annotations

import json
from xml.etree import ElementTree

from ansible_collections.overlay.mesh.plugins.plugin_utils import _verify_report as report_lib

GOOD = {'gateway': True, 'container': True, 'mtu_fits': True, 'mtu_too_big_refused': True, 'path': 'vxlan',
        'path_proven': True, 'rtt_ms': 0.21, 'loss_percent': 0.0, 'path_mtu': 1450}


def probes():
    return {
        'node1': {'results': [dict(GOOD, host='node2'), dict(GOOD, host='node3', loss_percent=33.3)], 'failures': []},
        'node2': {'results': [dict(GOOD, host='node1'), dict(GOOD, host='node3', gateway=False, container=False)],
                  'failures': ['node2 -> gateway of node3']},
        'node3': {'results': [dict(GOOD, host='node1'), dict(GOOD, host='node2', mtu_fits=False, path_mtu=1400)], 'failures': []},
    }


def test_pairs_states_and_summary():
    report = report_lib.build(['node1', 'node2', 'node3'], probes(), 1450, '2026-12-01T09:00:00Z', 1796115600)
    states = dict(((pair['from'], pair['to']), pair['state']) for pair in report['pairs'])
    assert states == {('node1', 'node2'): 'ok', ('node1', 'node3'): 'degraded', ('node2', 'node1'): 'ok',
                      ('node2', 'node3'): 'failed', ('node3', 'node1'): 'ok', ('node3', 'node2'): 'degraded'}
    assert report['summary'] == {'ok': 3, 'degraded': 2, 'failed': 1, 'pairs': 6, 'failures': ['node2 -> gateway of node3']}
    assert json.loads(report_lib.to_json(report)) == report


def test_the_picture_holds_every_host_and_every_pair_with_its_state():
    report = report_lib.build(['node1', 'node2', 'node3'], probes(), 1450, 'now')
    root = ElementTree.fromstring(report_lib.svg(report))
    ns = '{http://www.w3.org/2000/svg}'
    hosts = sorted(group.get('data-host') for group in root.iter(ns + 'g') if group.get('class') == 'host')
    assert hosts == ['node1', 'node2', 'node3']
    arrows = dict(((line.get('data-from'), line.get('data-to')), (line.get('data-state'), line.get('stroke')))
                  for line in root.iter(ns + 'line'))
    assert arrows[('node2', 'node3')] == ('failed', report_lib.COLOURS['failed'])
    assert arrows[('node1', 'node2')] == ('ok', report_lib.COLOURS['ok']) and len(arrows) == 6
    titles = [line.find(ns + 'title').text for line in root.iter(ns + 'line')]
    assert 'node1 -> node3: degraded, path vxlan, rtt 0.21 ms, loss 33.30 %, path MTU 1450' in titles


def test_textfile_metrics_of_one_host():
    report = report_lib.build(['node1', 'node2', 'node3'], probes(), 1450, 'now', 1796115600)
    text = report_lib.textfile(report, 'node2', 2)
    assert 'overlay_mesh_peers_programmed 2\n' in text
    assert 'overlay_mesh_peer_reachable{peer="node3"} 0\n' in text and 'overlay_mesh_peer_reachable{peer="node1"} 1\n' in text
    assert 'overlay_mesh_peer_rtt_seconds{peer="node1"} 0.000210\n' in text
    assert text.endswith('overlay_mesh_verify_timestamp_seconds 1796115600\n')


def test_textfile_metrics_of_the_last_apply():
    last = {'node1': {'result': 'ok', 'time': 1796115000.5, 'by': 'ansible', 'changes': 12, 'message': ''},
            'node2': {'result': 'failed', 'time': 1796115100, 'by': 'boot', 'changes': 0, 'message': 'lock not had'}}
    report = report_lib.build(['node1', 'node2', 'node3'], probes(), 1450, 'now', 1796115600, last)
    assert report['last_apply']['node2']['result'] == 'failed' and report['last_apply']['node3'] is None
    one = report_lib.textfile(report, 'node1', 2, report['last_apply']['node1'])
    assert 'overlay_mesh_last_apply_success{by="ansible"} 1\n' in one
    assert 'overlay_mesh_last_apply_timestamp_seconds{by="ansible"} 1796115000\n' in one
    assert 'overlay_mesh_last_apply_changes{by="ansible"} 12\n' in one
    two = report_lib.textfile(report, 'node2', 2, report['last_apply']['node2'])
    assert 'overlay_mesh_last_apply_success{by="boot"} 0\n' in two
    # a host that never applied (or an older engine) has no last-apply metrics, not made-up ones
    assert 'last_apply' not in report_lib.textfile(report, 'node3', 2, None)
    # the node agent's state, where it runs (docs/agent.md)
    assert 'overlay_mesh_agent_synced' not in one
    degraded = dict(last['node1'], by='agent', agent={'state': 'degraded', 'message': 'no etcd endpoint answered'})
    assert 'overlay_mesh_agent_synced 0\n' in report_lib.textfile(report, 'node1', 2, degraded)
    assert 'overlay_mesh_agent_synced 1\n' in report_lib.textfile(report, 'node1', 2, dict(degraded, agent={'state': 'synced'}))


def test_a_dual_stack_pair_is_ok_only_when_both_families_are():
    both = dict(GOOD, gateway6=True, container6=True, mtu_fits6=True, mtu_too_big_refused6=True, loss_percent6=0.0, rtt_ms6=0.3)
    assert report_lib.pair_state(both) == 'ok'
    assert report_lib.pair_state(dict(both, container6=False)) == 'failed'
    assert report_lib.pair_state(dict(both, mtu_fits6=False)) == 'degraded'
    report = report_lib.build(['node1', 'node2'], {'node1': {'results': [dict(both, host='node2')]}}, 1430, 'now')
    assert report['pairs'][0]['rtt_ms6'] == 0.3 and report['pairs'][0]['state'] == 'ok'
