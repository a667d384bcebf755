# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The boot-time reapply is the node module's code path, installed from the module's payload.

The engine is installed into a temporary directory exactly as the node module installs it under
/usr/lib/overlay-mesh, then run with a Python that sees nothing but the standard library and
that directory (no Ansible, no pyroute2): it must import, and refuse an invalid state file with a
message naming the file and every problem, before touching anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.overlay.mesh.plugins.module_utils import _node_apply
from ansible_collections.overlay.mesh.plugins.module_utils import _node_boot

GOOD = {'version': 1, 'underlay': {'address': '198.18.0.11', 'interface': 'eth0', 'mtu': 1500},
        'network': '10.244.0.0/16', 'subnet': '10.244.1.0/24', 'mtu': 1450,
        'bridge': {'name': 'cni0', 'mac': '02:00:00:00:01:01'},
        'backend': {'type': 'vxlan', 'vni': 1, 'port': 8472, 'device': 'mesh.1', 'mac': '02:00:00:00:02:01', 'recreate': False},
        'peers': []}


@pytest.fixture(scope='module')
def engine(tmp_path_factory):
    root = tmp_path_factory.mktemp('lib')
    for relative, source in _node_apply.engine_sources().items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return root


def boot(engine, state_path):
    code = ('import sys; sys.path.insert(0, %r)\n'
            'from ansible_collections.overlay.mesh.plugins.module_utils import _host\n'
            '_host.LOCK_FILE = %r  # not the machine\'s /run\n'
            'from ansible_collections.overlay.mesh.plugins.module_utils._node_boot import main\n'
            'assert not [m for m in sys.modules if m == "ansible" or m.startswith("ansible.")]\n'
            'sys.exit(main([%r]))\n') % (str(engine), str(state_path.parent / 'lock'), str(state_path))
    # -I -S: the standard library and the installed engine only
    return subprocess.run([sys.executable, '-I', '-S', '-c', code], capture_output=True, text=True, check=False)


def test_the_installed_engine_is_complete_and_needs_no_ansible(engine, tmp_path):
    assert set(_node_apply.ENGINE_MODULES) <= set(p[len('ansible_collections/overlay/mesh/plugins/module_utils/'):-3]
                                                  .replace('/__init__', '').replace('/', '.')
                                                  for p in _node_apply.engine_sources())
    state = tmp_path / 'node.json'
    state.write_text(json.dumps(dict(GOOD, backend=dict(GOOD['backend'], vni=0), mtu=1490, kernel={'rp_filter': 7})))
    proc = boot(engine, state)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = proc.stdout.strip()
    assert line.startswith('overlay-mesh-apply: the node state %s is not valid, nothing applied: ' % state)
    for problem in ('backend.vni: 0 is outside 1-16777215', 'kernel.rp_filter: 7 is not one of 0, 1, 2'):
        assert problem in line


def test_the_installed_engine_carries_every_registered_backend(engine):
    """The engine's module list comes from the registry: each backend's module and the ones it declares."""
    from ansible_collections.overlay.mesh.plugins.module_utils._backends import registry
    assert {'_backends.udp_daemon', '_backends.wireguard_genl'} <= set(_node_apply.ENGINE_MODULES)
    code = ('import sys; sys.path.insert(0, %r)\n'
            'from ansible_collections.overlay.mesh.plugins.module_utils._backends import registry\n'
            'for name in registry.names():\n'
            '    assert registry.get(name).__module__ in sys.modules\n'
            'print(" ".join(sorted(m.rpartition(".")[2] for m in sys.modules if "._backends." in m)))\n') % str(engine)
    proc = subprocess.run([sys.executable, '-I', '-S', '-c', code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    installed = set(proc.stdout.split())
    assert set(name.rpartition('.')[2] for name in _node_apply.ENGINE_MODULES if name.startswith('_backends.')) == installed
    assert len(installed) > len(registry.names()) + 2  # base, registry and the backends' own extra modules


def test_unreadable_state_files_are_refused(engine, tmp_path):
    state = tmp_path / 'node.json'
    state.write_text('{"version": 1,')
    proc = boot(engine, state)
    assert proc.returncode == 2 and 'is not JSON' in proc.stdout
    proc = boot(engine, tmp_path / 'missing.json')
    assert proc.returncode == 2 and 'cannot read the node state' in proc.stdout


def test_a_fresh_skip_marker_skips_once_and_a_stale_one_does_not(tmp_path, capsys):
    marker = tmp_path / 'wireguard-mesh-wg.starting'
    marker.write_text('1\n')
    assert _node_boot.main(['--skip-if', str(marker), '--only', 'backend', str(tmp_path / 'node.json')]) == 0
    assert 'started by an overlay.mesh.node run' in capsys.readouterr().out and not marker.exists()
    marker.write_text('1\n')
    os.utime(str(marker), (1, 1))
    assert _node_boot._fresh_marker(str(marker)) is False and not marker.exists()
