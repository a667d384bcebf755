# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Without pyroute2 anywhere, the modules fail with missing_required_lib (after trying a respawn)."""

from __future__ import annotations

import subprocess
import sys

import pytest

SYSTEM_PYTHON = '/usr/bin/python3'


def system_python_has_pyroute2():
    try:
        return subprocess.run([SYSTEM_PYTHON, '-c', 'import pyroute2'], capture_output=True, check=False).returncode == 0
    except OSError:
        return None


@pytest.mark.parametrize('module, args', [('bridge', {'name': 'cni0', 'mac': '02:6a:00:00:20:01'}),
                                          ('peers', {'vtep': 'flannel.1', 'rt_protos_file': ''}),
                                          ('vxlan', {'name': 'flannel.1', 'state': 'absent'})])
def test_missing_pyroute2_is_reported(make_netns, python, module, args):
    if python != sys.executable:
        pytest.skip('the interpreter is fixed to %s: one run is enough' % SYSTEM_PYTHON)
    if system_python_has_pyroute2() is not False:
        pytest.skip('%s is missing or has pyroute2 (the module would respawn there)' % SYSTEM_PYTHON)
    ns = make_netns()
    ns.python = SYSTEM_PYTHON
    result = ns.module(module, args)
    assert result.get('failed') and 'Failed to import the required Python library (pyroute2)' in result['msg'], result
