# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backend interface on a real kernel: every registered backend that lives in the kernel alone is applied
through the calls the node apply makes (normalize, apply, teardown with the saved record), reapplied without a
change, and torn down to the namespace exactly as it was. (The udp backend needs its daemon under systemd and
the wireguard one the kernel module or wireguard-go: molecule scenarios udp and wireguard.)"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import SETTLE, collections_path, link_pair

if collections_path() not in sys.path:
    sys.path.insert(0, collections_path())
from ansible_collections.overlay.mesh.plugins.module_utils._backends import registry  # noqa: E402 pylint: disable=wrong-import-position

NEEDS_MORE_THAN_A_NETNS = {'udp': 'its daemon runs under systemd', 'wireguard': 'the wireguard module or wireguard-go'}
SNAPSHOT = ('ip -d link show | grep -v "^ *link/" ; ip -o addr show; ip route show table all; ip neigh show nud permanent; '
            'bridge fdb show | grep permanent || true')
SCRIPT = r'''
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.overlay.mesh.plugins.module_utils import _host, _node_spec
contract, action = json.loads(sys.argv[2]), sys.argv[3]
node = _node_spec.normalize(contract, machine_id='0123456789abcdef0123456789abcdef')
host = _host.Host(check_mode=action == 'check')
if action == 'teardown':
    _node_spec.saved_backend(_node_spec.removal_record(node.data)).teardown(host, _node_spec.removal_record(node.data))
else:
    node.backend.apply(node, host)
print(json.dumps(host.report.changes))
'''


def contract(name):
    return {'underlay': {'address': '198.18.1.1', 'interface': 'u0', 'mtu': 1500, 'network': '198.18.1.0/24'},
            'network': '10.244.0.0/16', 'subnet': '10.244.1.0/24', 'backend': {'type': name},
            'peers': [{'name': 'node2', 'subnet': '10.244.2.0/24', 'underlay': '198.18.1.2', 'vtep_mac': '02:00:00:00:00:02',
                       'public_key': 'AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI='}]}


@pytest.mark.parametrize('name', registry.names())
def test_a_backend_is_applied_reapplied_without_change_and_torn_down_to_nothing(make_netns, tmp_path, name):
    if name in NEEDS_MORE_THAN_A_NETNS:
        pytest.skip('%s: %s (molecule)' % (name, NEEDS_MORE_THAN_A_NETNS[name]))
    a, b = make_netns(), make_netns()
    link_pair(a, b)
    script = tmp_path / 'backend.py'
    script.write_text(SCRIPT)

    def run(action):
        out = a.run("%s %s %s '%s' %s" % (a.python, script, collections_path(), json.dumps(contract(name)), action))
        return json.loads(out.strip().splitlines()[-1])

    a.run("sh -c '%s'" % SETTLE)
    before = a.run("sh -c '%s'" % SNAPSHOT)
    planned = run('check')
    assert planned and a.run("sh -c '%s'" % SNAPSHOT) == before  # check mode changes nothing
    applied = run('apply')
    assert applied == planned, (planned, applied)  # check mode was truthful
    route = a.run('ip route show 10.244.2.0/24')
    assert 'proto 217' in route, route  # the peer's subnet is routed, with the collection's route protocol
    assert run('apply') == []  # nothing changed: nothing reported
    removed = run('teardown')
    assert removed and all(line.startswith('removed ') for line in removed), removed
    assert a.run("sh -c '%s'" % SNAPSHOT) == before  # nothing of the backend is left


TEST_ONLY_DIR = Path(__file__).resolve().parents[1] / 'unit' / 'plugins' / 'module_utils'
ENGINE_SCRIPT = r'''
import json, sys
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[4])
import backend_ipip_testonly
backend_ipip_testonly.register()  # the one registry line
from ansible_collections.overlay.mesh.plugins.module_utils import _host, _nftables, _node_apply, _node_spec
# the firewall's records of what it loaded: in the test's directory, not the machine's /run
_nftables.LOADED_FILE, _nftables.LISTING_SUM_FILE = sys.argv[5] + '/nftables.nft', sys.argv[5] + '/nftables.sum'
contract, action = json.loads(sys.argv[2]), sys.argv[3]
node = _node_spec.normalize(contract, machine_id='0123456789abcdef0123456789abcdef')
host = _host.Host(check_mode=action == 'check')
if action == 'teardown':
    record = _node_spec.removal_record(node.data)
    _node_spec.saved_backend(record).teardown(host, record)
    _nftables.remove(host)
else:
    _node_apply.apply(node, host, only=('backend', 'nftables'))
print(json.dumps(host.report.changes))
'''


def test_the_test_only_backend_is_applied_through_the_node_engine_and_torn_down_to_nothing(make_netns, tmp_path):
    """tests/unit/plugins/module_utils/backend_ipip_testonly.py, registered by the script (one line): its device,
    the overlay network's route into it and the nftables table with its IP protocol's rules, through the node
    engine's parts; check mode truthful, a second run changes nothing, teardown leaves the namespace as it was."""
    a, b = make_netns(), make_netns()
    link_pair(a, b)
    script = tmp_path / 'engine.py'
    script.write_text(ENGINE_SCRIPT)
    state = tmp_path / 'state'
    state.mkdir()
    data = dict(contract('test-ipip'), firewall={'peers_only': True})
    data['peers'][0]['tunnel_id'] = '00000000000000b2'

    def run(action):
        out = a.run("%s %s %s '%s' %s %s %s" % (a.python, script, collections_path(), json.dumps(data), action,
                                                TEST_ONLY_DIR, state))
        return json.loads(out.strip().splitlines()[-1])

    snapshot = "sh -c '%s; nft list ruleset'" % SNAPSHOT
    a.run("sh -c '%s'" % SETTLE)
    before = a.run(snapshot)
    planned = run('check')
    assert planned and a.run(snapshot) == before  # check mode changes nothing
    applied = run('apply')
    assert applied == planned, (planned, applied)
    assert 'dev mesh-tip proto 217' in a.run('ip route show 10.244.0.0/16')
    assert 'ifb' in a.run('ip -d link show mesh-tip')
    table = a.run('nft list table inet overlay_mesh')
    assert 'l4proto' in table and 'saddr != @peers counter' in table and 'notrack' in table, table
    assert 'dport' not in table  # an IP protocol, no port
    assert run('apply') == []
    removed = run('teardown')
    assert removed and all(line.startswith('removed ') for line in removed), removed
    assert a.run(snapshot) == before
