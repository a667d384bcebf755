# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection as a user gets it: the Galaxy tarball built from this checkout, installed into an
empty collections path, run by an ansible-core from a venv that holds only requirements.txt, over
SSH as a non-root user that becomes root with sudo (and its password).

Boots lab "ovlgal" (2 hosts; sshd, user ops in group sudo); the controller runs in the lab
switch's network namespace, so it reaches the hosts over their underlay and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAB_TOOL = REPO / 'tests' / 'lab' / 'overlay_lab.py'
LAB = os.environ.get('OVERLAY_MESH_LAB_PREFIX', '') + 'ovlgal'  # a prefix lets two checkouts test at once

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root: boots systemd-nspawn lab hosts'),
    pytest.mark.skipif(not LAB_TOOL.exists(), reason='tests/lab/overlay_lab.py is not there'),
]


def run(argv, env=None, cwd=None, check=True):
    proc = subprocess.run([str(arg) for arg in argv], capture_output=True, text=True, env=env, cwd=cwd, check=False)
    if check and proc.returncode:
        command = ' '.join(map(str, argv))
        raise AssertionError('%s failed (%d):\n%s\n%s' % (command, proc.returncode, proc.stdout[-6000:], proc.stderr[-3000:]))
    return proc


def lab(*args, check=True):
    return run([sys.executable, LAB_TOOL] + list(args), check=check).stdout


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """The tarball installed into an empty collections path; a venv with the runtime requirements only."""
    tmp = tmp_path_factory.mktemp('galaxy')
    run([Path(sys.executable).parent / 'ansible-galaxy', 'collection', 'build', '--output-path', tmp, REPO])
    tarball = next(tmp.glob('overlay-mesh-*.tar.gz'))
    venv = tmp / 'venv'
    run(['python3', '-m', 'venv', venv])
    run([venv / 'bin' / 'pip', 'install', '-q', '-r', REPO / 'requirements.txt'])
    # Nothing from the checkout or from make's environment: the installed collection only.
    env = dict((key, value) for key, value in os.environ.items() if not key.startswith(('ANSIBLE_', 'OVERLAY_', 'VIRTUAL_ENV')))
    env.update(ANSIBLE_COLLECTIONS_PATH=str(tmp / 'collections'), ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0',
               PATH='%s:/usr/sbin:/usr/bin:/sbin:/bin' % (venv / 'bin'), HOME=str(tmp))
    run([venv / 'bin' / 'ansible-galaxy', 'collection', 'install', '-p', tmp / 'collections', tarball], env=env)
    listed = run([venv / 'bin' / 'ansible-galaxy', 'collection', 'list', 'overlay.mesh', '--format', 'json'], env=env).stdout
    assert list(json.loads(listed)) == [str(tmp / 'collections' / 'ansible_collections')], listed
    pip_list = run([venv / 'bin' / 'pip', 'list', '--format', 'json'], env=env).stdout
    for dev_only in ('molecule', 'pytest', 'ansible-lint', 'pyroute2', 'hypothesis'):
        assert dev_only not in [package['name'] for package in json.loads(pip_list)], dev_only
    return {'venv': venv, 'env': env, 'cwd': tmp}


@pytest.fixture(scope='module')
def inventory():
    lab('down', '--name', LAB, check=False)
    try:
        lab('up', '--name', LAB, '--hosts', '2')
        yield '/var/lib/overlay-mesh-lab/%s/inventory-ssh.yml' % LAB
    finally:
        lab('down', '--name', LAB, check=False)


def controller(installed, inventory, command, *args, check=True):
    """An ansible-* command of the runtime venv, run from the lab's switch namespace."""
    return run([sys.executable, LAB_TOOL, 'controller', '--name', LAB, '--', installed['venv'] / 'bin' / command,
                '-i', inventory] + list(args), env=installed['env'], cwd=installed['cwd'], check=check).stdout


def recap(output):
    return dict((host, (int(changed), int(failed))) for host, changed, failed in
                re.findall(r'^(node\d+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)', output, re.M))


def test_site_and_verify_from_the_tarball_over_ssh_with_become(installed, inventory):
    # the connection is ssh as ops, and ops is no root: without become a change is refused
    whoami = controller(installed, inventory, 'ansible', 'overlay', '-m', 'ansible.builtin.command', '-a', 'id -un')
    assert whoami.count('ops') == 2 and 'root' not in whoami, whoami
    # without become: refused before anything changed, with a message that says why
    leases = Path('/var/lib/overlay-mesh-lab/%s/.overlay-mesh-leases.yml' % LAB)
    refused = controller(installed, inventory, 'ansible-playbook', 'overlay.mesh.site', '-e', 'ansible_become=false', check=False)
    assert 'node1: runs as ops, not root' in refused and 'become: true' in refused, refused
    assert not leases.exists()
    assert lab('exec', '--name', LAB, 'node1', 'ls', '/etc/overlay-mesh', check=False) == ''
    site = controller(installed, inventory, 'ansible-playbook', 'overlay.mesh.site')
    assert recap(site)['node1'][1] == 0 and recap(site)['node1'][0] > 0, site
    # the hosts run the engine the tarball carried
    assert 'overlay-mesh-apply' in lab('exec', '--name', LAB, 'node1', 'ls', '/usr/lib/overlay-mesh')
    rerun = controller(installed, inventory, 'ansible-playbook', 'overlay.mesh.site')
    assert recap(rerun) == {'node1': (0, 0), 'node2': (0, 0)}, rerun
    verify = controller(installed, inventory, 'ansible-playbook', 'overlay.mesh.verify')
    assert recap(verify) == {'node1': (0, 0), 'node2': (0, 0)}, verify
    report = json.loads(Path('/var/lib/overlay-mesh-lab/%s/overlay-mesh-verify.json' % LAB).read_text())
    assert sorted((pair['from'], pair['to'], pair['state']) for pair in report['pairs']) == [
        ('node1', 'node2', 'ok'), ('node2', 'node1', 'ok')], report


# A host that lacks nftables, with a package repository of its own (a directory: no mirror is
# reachable from a lab), and python3-apt there too: Ansible's apt module installs it first, as on
# a minimal host.
REPO_PACKAGES = ('nftables', 'python3-apt', 'python-apt-common', 'distro-info-data')


def flat_repository(directory):
    """Packages and Release of a flat apt repository (deb [trusted=yes] file:DIR ./) of the .debs in directory."""
    stanzas = []
    for deb in sorted(directory.glob('*.deb')):
        control = run(['dpkg-deb', '-f', deb]).stdout.strip()
        data = deb.read_bytes()
        stanzas.append('%s\nFilename: ./%s\nSize: %d\nSHA256: %s\n' % (control, deb.name, len(data), hashlib.sha256(data).hexdigest()))
    packages = '\n'.join(stanzas).encode()
    (directory / 'Packages').write_bytes(packages)
    (directory / 'Release').write_text('Origin: overlay-lab\nLabel: overlay-lab\nSHA256:\n %s %d Packages\n'
                                       % (hashlib.sha256(packages).hexdigest(), len(packages)))


def test_install_packages_gives_a_host_what_it_lacks(installed, inventory, tmp_path):
    debs = tmp_path / 'repo'
    debs.mkdir()
    run(['apt-get', 'download'] + list(REPO_PACKAGES), cwd=debs)
    flat_repository(debs)
    adhoc = ('ansible', 'node2', '--become')
    controller(installed, inventory, *adhoc, '-m', 'ansible.builtin.copy', '-a', 'src=%s/ dest=/srv/lab-repo/' % debs)
    controller(installed, inventory, *adhoc, '-m', 'ansible.builtin.shell', '-a',
               'mv /etc/apt/sources.list /etc/apt/sources.list.lab && '
               'echo "deb [trusted=yes] file:/srv/lab-repo ./" > /etc/apt/sources.list.d/lab-repo.list && '
               'dpkg --remove nftables && ! command -v nft')
    # without the option: stopped before any change, naming the package
    stopped = controller(installed, inventory, 'ansible-playbook', 'overlay.mesh.site', check=False)
    assert 'node2: missing nft: apt install nftables' in stopped, stopped
    site = controller(installed, inventory, 'ansible-playbook', 'overlay.mesh.site', '-e', 'mesh_node_install_packages=true')
    # the last task of that name: the one included for the hosts that lack packages (tasks/packages.yml)
    assert re.search(r'changed: \[node2\]', site.split('Install the packages this host lacks')[-1].split('TASK')[0]), site
    assert '/usr/sbin/nft' in lab('exec', '--name', LAB, 'node2', 'sh', '-c', 'command -v nft')
    rerun = controller(installed, inventory, 'ansible-playbook', 'overlay.mesh.site', '-e', 'mesh_node_install_packages=true')
    assert recap(rerun) == {'node1': (0, 0), 'node2': (0, 0)}, rerun
