# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""README.md's "Using it" commands, taken from README.md itself, run as printed against a lab.

The block is run by bash in a new shell's environment (no ANSIBLE_* variables, no virtualenv,
.venv/bin not on PATH) from the checkout's root, as a user does after `make demo`; only the
inventory path of its `INVENTORY=` line is replaced by this test's lab's. Boots lab "ovlreadme"
(3 hosts: the block removes node3) and always takes it down again.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import lab

REPO = Path(__file__).resolve().parents[2]
LAB = os.environ.get('OVERLAY_MESH_LAB_PREFIX', '') + 'ovlreadme'  # a prefix lets two checkouts test at once

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='needs root: boots systemd-nspawn lab hosts')


def using_it_block():
    """The first fenced block under README.md's "## Using it"."""
    text = (REPO / 'README.md').read_text()
    section = re.search(r'^## Using it\n(.*?)(?=^## )', text, re.M | re.S)
    assert section, 'README.md has no "## Using it" section'
    block = re.search(r'^```[a-z]*\n(.*?)^```', section.group(1), re.M | re.S)
    assert block, 'README.md\'s "Using it" has no fenced block'
    return block.group(1)


def new_shell_env():
    """The environment of a new login shell: what the Makefile or this test's venv set is gone."""
    venv_bin = os.path.dirname(sys.executable)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(('ANSIBLE_', 'OVERLAY_MESH_')) and key not in ('VIRTUAL_ENV', 'PYTHONPATH')}
    env['PATH'] = os.pathsep.join(part for part in os.environ.get('PATH', '').split(os.pathsep)
                                  if part and os.path.realpath(part) != os.path.realpath(venv_bin)) or '/usr/bin:/bin'
    env['ANSIBLE_NOCOLOR'] = '1'  # output only; changes nothing a command does
    return env


def test_the_block_is_what_this_test_runs():
    block = using_it_block()
    assert re.search(r'^INVENTORY=\S+', block, re.M), 'the block sets no INVENTORY= line to substitute'
    commands = re.findall(r'^ansible-playbook -i \$INVENTORY (overlay\.mesh\.\w+)', block, re.M)
    assert commands == ['overlay.mesh.site', 'overlay.mesh.site', 'overlay.mesh.verify', 'overlay.mesh.remove',
                        'overlay.mesh.site'], commands


def test_using_it_runs_as_printed(tmp_path):
    block = using_it_block()
    lab('down', '--name', LAB, check=False)
    try:
        out = lab('up', '--name', LAB, '--hosts', '3').stdout
        inventory = re.search(r'inventory: (\S+)', out).group(1)
        script = re.sub(r'^INVENTORY=\S+', 'INVENTORY=' + inventory, block, count=1, flags=re.M)
        (tmp_path / 'using-it.sh').write_text('set -euxo pipefail\n' + script)
        proc = subprocess.run(['bash', str(tmp_path / 'using-it.sh')], cwd=str(REPO), env=new_shell_env(),
                              capture_output=True, text=True, check=False, timeout=1500)
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-4000:]
        # each playbook ran, on every host it names, without a failure
        recaps = re.findall(r'^(node\d+)\s+: ok=\d+\s+changed=\d+\s+unreachable=(\d+)\s+failed=(\d+)', proc.stdout, re.M)
        assert recaps and all(unreachable == failed == '0' for dummy, unreachable, failed in recaps), recaps
        assert proc.stdout.count('PLAY RECAP') == 5, proc.stdout[-4000:]
        # the lease file is beside the inventory, and the last site joined node3 again
        leases = (Path(inventory).parent / '.overlay-mesh-leases.yml').read_text()
        assert all(host in leases for host in ('node1', 'node2', 'node3')), leases
        assert 'mesh.1' in lab('exec', '--name', LAB, 'node3', 'ip', '-br', 'link').stdout
    finally:
        lab('down', '--name', LAB, check=False)
