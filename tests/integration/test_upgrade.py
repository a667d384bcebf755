# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Upgrading from the last release: hosts made by 0.1.0 (its role, its state files) converge with this checkout.

The release is taken from this checkout's own history (the commit before galaxy.yml said 0.2.0), installed in a
collections path of its own, and run against lab hosts, as a user's controller would have it. Then this
checkout's site runs on the same hosts and lease file: no host moves (same subnets, same VTEP MACs), 0.1.0's files
go, a second site changes nothing, verify passes, and a host rebooted afterwards comes back from what this release
saved.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from io import BytesIO
from pathlib import Path

import pytest
import yaml

from conftest import collections_path, lab, lab_inventory_of, lab_shell

REPO = Path(__file__).resolve().parents[2]
LAB = os.environ.get('OVERLAY_MESH_LAB_PREFIX', '') + 'ovln-upgrade'  # a prefix lets two checkouts test at once
HOSTS = ('node1', 'node2', 'node3')
RELEASE_FILES = ('/etc/overlay-mesh/state.json', '/etc/overlay-mesh/identity.json', '/etc/overlay-mesh/lease.json',
                 '/etc/overlay-mesh/nftables.nft', '/etc/overlay-mesh/subnet.env')


def git(*args):
    return subprocess.run(['git', '-C', str(REPO)] + list(args), capture_output=True, check=True).stdout


def release_commit():
    """The last commit of 0.1.0: the parent of the one that moved galaxy.yml to 0.2.0."""
    if not (REPO / '.git').exists():
        pytest.skip('the release comes from git history: run from a clone, not an installed collection')
    bumps = git('log', '--format=%H', '-G^version: 0.2.0', '--', 'galaxy.yml').decode().split()
    commit = git('rev-parse', bumps[-1] + '^').decode().strip()
    assert b'version: 0.1.0' in git('show', commit + ':galaxy.yml')
    return commit


@pytest.fixture(scope='module')
def release(tmp_path_factory):
    """0.1.0 as a collections path of its own (what a user's controller had installed)."""
    root = tmp_path_factory.mktemp('release')
    target = root / 'ansible_collections' / 'overlay' / 'mesh'
    target.mkdir(parents=True)
    with tarfile.open(fileobj=BytesIO(git('archive', '--format=tar', release_commit()))) as archive:
        archive.extractall(str(target))
    return str(root)


@pytest.fixture(scope='module')
def lab_inventory():
    yield from lab_inventory_of(LAB, len(HOSTS))


def play(inventory, workdir, playbook, collections, *args):
    (workdir / 'inventory.yml').write_text(yaml.safe_dump(inventory))
    argv = [str(Path(sys.executable).parent / 'ansible-playbook'), '-i', str(workdir / 'inventory.yml'), playbook,
            '-e', 'mesh_node_lease_file=%s' % (workdir / 'leases.yml'), '-e', 'verify_report_dir=%s' % workdir] + list(args)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_CONFIG=str(REPO / 'tests' / 'ansible.cfg'),
               ANSIBLE_NOCOLOR='1', ANSIBLE_CONNECTION_PLUGINS=str(REPO / 'tests' / 'lab' / 'connection_plugins'))
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=str(workdir), check=False)
    assert proc.returncode == 0, (playbook, collections, (proc.stdout + proc.stderr)[-5000:])
    return proc.stdout


def changed(output):
    return dict((host, int(count)) for host, count in re.findall(r'^(node\d)\s+: ok=\d+\s+changed=(\d+)', output, re.M))


def overlay_of(host):
    """What peers know a host by: its subnet (the bridge's address) and its VTEP's MAC."""
    return lab_shell(LAB, host, "ip -o -4 addr show dev cni0 | awk '{print $4}'; cat /sys/class/net/mesh.1/address").stdout.split()


def test_hosts_made_by_the_last_release_upgrade_in_place(lab_inventory, release, tmp_path):
    play(lab_inventory, tmp_path, 'overlay.mesh.site', release)
    made = dict((host, overlay_of(host)) for host in HOSTS)
    assert all(lab_shell(LAB, host, 'test -e /etc/overlay-mesh/state.json', check=False).returncode == 0 for host in HOSTS)

    upgrade = play(lab_inventory, tmp_path, 'overlay.mesh.site', collections_path())
    assert sorted(changed(upgrade)) == list(HOSTS) and min(changed(upgrade).values()) >= 1, upgrade[-3000:]  # every node converted
    assert dict((host, overlay_of(host)) for host in HOSTS) == made  # no host moved, no VTEP made again
    leases = yaml.safe_load((tmp_path / 'leases.yml').read_text())['leases']
    assert sorted(lease['subnet'] for lease in leases.values()) == ['10.244.1.0/24', '10.244.2.0/24', '10.244.3.0/24']
    for host in HOSTS:
        left = lab_shell(LAB, host, 'ls %s 2>/dev/null; true' % ' '.join(RELEASE_FILES)).stdout.split()
        assert left == [], (host, left)

    again = play(lab_inventory, tmp_path, 'overlay.mesh.site', collections_path())
    assert set(changed(again).values()) == {0}, again[-3000:]
    assert 'all 6 pairs reach each other' in play(lab_inventory, tmp_path, 'overlay.mesh.verify', collections_path())

    lab('reboot', '--name', LAB, 'node2')  # all kernel state gone: the boot unit reapplies what this release saved
    assert overlay_of('node2') == made['node2']
    assert 'all 6 pairs reach each other' in play(lab_inventory, tmp_path, 'overlay.mesh.verify', collections_path())
