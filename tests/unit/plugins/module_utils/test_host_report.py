# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report of a node apply and its diff: one screen per host (issue 16). A new or removed file is
one line, an updated one a diff of its lines (node.json one line per key), the installed engine one
line, and a kind's many unchanged objects one count line; changes still names every change."""

from __future__ import annotations

import json
import os

from ansible_collections.overlay.mesh.plugins.module_utils import _host
from ansible_collections.overlay.mesh.plugins.module_utils import _node_apply
from ansible_collections.overlay.mesh.plugins.module_utils import _node_files


def neighbour(index):
    return {'type': 'neighbour', 'address': '10.244.%d.0' % index, 'lladdr': '02:00:00:00:00:%02x' % index, 'dev': 'mesh.1',
            'state': 'permanent'}


def test_many_unchanged_objects_of_a_kind_are_one_count_line_and_every_change_stays_a_line():
    report = _host.Report()
    for index in range(2, 101):
        report.unchanged(neighbour(index))
    report.object('added', neighbour(101))
    report.unchanged({'type': 'sysctl', 'key': 'net/ipv4/ip_forward', 'value': 1})
    report.unchanged({'type': 'nftables', 'name': 'inet overlay_mesh'})
    objects = report.diff()[0]
    assert objects['before'].splitlines() == ['neighbour: 99 unchanged', 'sysctl net.ipv4.ip_forward = 1',
                                              'nftables inet overlay_mesh']
    assert objects['after'].splitlines() == ['neighbour: 99 unchanged', 'neighbour 10.244.101.0 lladdr 02:00:00:00:00:65 dev mesh.1 permanent',
                                             'sysctl net.ipv4.ip_forward = 1', 'nftables inet overlay_mesh']
    assert report.changes == ['added neighbour 10.244.101.0 lladdr 02:00:00:00:00:65 dev mesh.1 permanent']
    # up to UNCHANGED_SHOWN unchanged objects of a kind are shown as they are
    few = _host.Report()
    for index in range(2, 2 + _host.UNCHANGED_SHOWN):
        few.unchanged(neighbour(index))
    assert len(few.diff()[0]['after'].splitlines()) == _host.UNCHANGED_SHOWN and 'unchanged' not in few.diff()[0]['after']


def test_files_new_and_removed_are_one_line_updated_ones_a_diff_of_their_lines(tmp_path):
    host = _host.Host()
    new, gone, edited = str(tmp_path / 'new.conf'), str(tmp_path / 'gone.conf'), str(tmp_path / 'node.json')
    (tmp_path / 'gone.conf').write_text('secret-looking content\n')
    (tmp_path / 'node.json').write_text(json.dumps({'mtu': 1450, 'peers': [{'name': 'a'}], 'bridge': {'name': 'cni0'}}, indent=2))
    assert host.ensure_file(new, 'line 1\nline 2\n')
    assert host.remove(gone)
    assert host.ensure_file(edited, json.dumps({'mtu': 1400, 'peers': [{'name': 'a'}, {'name': 'b'}], 'bridge': {'name': 'cni0'}}),
                            view=_host.json_lines)
    objects, node_json = host.report.diff()
    assert objects['before'] == 'file %s\n' % gone and objects['after'] == 'file %s\n' % new
    assert node_json == {'before_header': edited, 'after_header': edited,
                         'before': 'bridge: {"name": "cni0"}\nmtu: 1450\npeers: {"name": "a"}\n',
                         'after': 'bridge: {"name": "cni0"}\nmtu: 1400\npeers: {"name": "a"}\npeers: {"name": "b"}\n'}
    assert 'secret-looking' not in repr(host.report.diff()) and 'line 1' not in repr(host.report.diff())
    assert host.report.changes == ['added file %s' % new, 'removed file %s' % gone, 'updated file %s' % edited]
    # a mode alone: one line before and after
    mode = _host.Host()
    assert mode.ensure_file(new, 'line 1\nline 2\n', mode=0o755)
    assert mode.report.diff()[0]['after'] == 'file %s (mode 0755)\n' % new and mode.report.changes == [
        'updated file %s (mode 0755)' % new]


def test_json_lines_leaves_what_is_not_a_json_object_as_it_is():
    assert _host.json_lines('{"peers": [], "docker": {"mtu": 1450, "bip": "10.244.1.1/24"}}') == (
        'docker: {"bip": "10.244.1.1/24", "mtu": 1450}\npeers: []\n')
    assert _host.json_lines('not json\n') == 'not json\n' and _host.json_lines('[1, 2]') == '[1, 2]'


def test_the_engine_is_one_line_and_changes_names_every_file(tmp_path, monkeypatch):
    lib = str(tmp_path / 'lib')
    monkeypatch.setattr(_host, 'LIB_DIR', lib)
    monkeypatch.setattr(_node_apply, 'ENGINE_ROOT', os.path.join(lib, 'ansible_collections'))
    monkeypatch.setattr(_node_files, 'APPLY_COMMAND', os.path.join(lib, 'overlay-mesh-apply'))
    monkeypatch.setattr(_node_files, 'AGENT_COMMAND', os.path.join(lib, 'overlay-mesh-agent'))
    count = len(_node_apply.engine_sources()) + 2  # and the two launchers

    check = _host.Host(check_mode=True)
    _node_apply.install_engine(check)
    objects = check.report.diff()
    assert len(objects) == 1 and objects[0]['before'] == ''
    line = objects[0]['after'].strip()
    assert line.startswith('engine %s: %d files, sha256 ' % (lib, count)) and '\n' not in line
    assert len(check.report.changes) == count and all(change.startswith('added file %s/' % lib) for change in check.report.changes)
    assert not os.path.exists(lib)

    _node_apply.install_engine(_host.Host())
    again = _host.Host()
    _node_apply.install_engine(again)
    assert not again.report.changed and again.report.diff()[0]['after'].strip() == line

    # one file edited, one stale file: the engine's line before and after, each file in changes
    edited = os.path.join(lib, sorted(_node_apply.engine_sources())[-1])
    with open(edited, 'a') as handle:
        handle.write('# edited\n')
    stale = os.path.join(lib, 'ansible_collections', 'stale.py')
    with open(stale, 'w') as handle:
        handle.write('')
    upgrade = _host.Host(check_mode=True)
    _node_apply.install_engine(upgrade)
    objects = upgrade.report.diff()[0]
    assert objects['after'].strip() == line and objects['before'].startswith('engine %s: %d files, sha256 ' % (lib, count + 1))
    assert objects['before'] != objects['after']
    assert upgrade.report.changes == ['updated file %s' % edited, 'removed file %s' % stale]
