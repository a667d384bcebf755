# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The source of truth holds under damage (issue 24): real `site` and `verify` runs on lab hosts.

Lab "ovln-truth" (3 hosts); node2 joins after node3, so its subnet is not the one sorted order
would give it. Then the lease file is damaged in each way a crash or a hand can damage it - cut
exactly at a line end (with `--limit node1`), cut mid-line, 0 bytes, two hosts on one subnet, a
subnet outside the network, a lock left by a killed run, lost - and every run either refuses
naming the file and the problem, or (hosts in the play only) rebuilds with a warning listing the
hosts; snapshots of every host and of the lease file before and after prove that no host moved.
A host marked absent outside a --limit keeps its lease and is not touched.
Last, verify on a host with its bridge down, forwarding off, the VTEP deleted and the nftables
table flushed fails naming the host and each object and changes nothing; one site repairs it all.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import HOST_SNAPSHOT, SETTLE, collections_path, lab_inventory_of, lab_shell

REPO = Path(__file__).resolve().parents[2]
LAB = os.environ.get('OVERLAY_MESH_LAB_PREFIX', '') + 'ovln-truth'  # a prefix lets two checkouts test at once
HOSTS = ('node1', 'node2', 'node3')
# node1 and node3 first, node2 later: node2 is not where sorted order would put it
SUBNETS = {'node1': '10.244.1.0/24', 'node3': '10.244.2.0/24', 'node2': '10.244.3.0/24'}

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='needs root: boots systemd-nspawn lab hosts')


def on(host, command):
    return lab_shell(LAB, host, command, check=False).stdout


@pytest.fixture(scope='module')
def lab_inventory():
    yield from lab_inventory_of(LAB, len(HOSTS))


class Run(object):
    def __init__(self, lab_inventory, workdir):
        self.inventory = lab_inventory
        self.workdir = workdir
        self.lease_file = workdir / 'leases.yml'

    def play(self, playbook, *args, without=(), host_vars=None):
        inventory = yaml.safe_load(yaml.safe_dump(self.inventory))
        for host in without:
            del inventory['all']['children']['lab']['hosts'][host]
        for host, variables in (host_vars or {}).items():
            inventory['all']['children']['lab']['hosts'][host].update(variables)
        (self.workdir / 'inventory.yml').write_text(yaml.safe_dump(inventory))
        argv = [str(Path(sys.executable).parent / 'ansible-playbook'), '-i', str(self.workdir / 'inventory.yml'), playbook,
                '-e', 'mesh_node_lease_file=%s' % self.lease_file, '-e', 'verify_report_dir=%s' % self.workdir,
                '-e', 'mesh_node_lease_lock_timeout=5'] + list(args)
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(), ANSIBLE_CONFIG=str(REPO / 'tests' / 'ansible.cfg'),
                   ANSIBLE_NOCOLOR='1', ANSIBLE_CONNECTION_PLUGINS=str(REPO / 'tests' / 'lab' / 'connection_plugins'))
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=str(self.workdir), check=False)
        return proc.returncode, proc.stdout + proc.stderr

    def snapshot(self):
        for host in HOSTS:
            on(host, SETTLE)
        state = {'lease file': hashlib.sha256(self.lease_file.read_bytes()).hexdigest() if self.lease_file.exists() else None}
        for host in HOSTS:
            state[host] = on(host, HOST_SNAPSHOT)
        return state

    def subnets(self):
        """Each host's subnet as the host itself has it (its bridge's address)."""
        found = {}
        for host in HOSTS:
            match = re.search(r'inet (10\.244\.\d+)\.1/24', on(host, 'ip -4 -o addr show dev cni0'))
            found[host] = match and match.group(1) + '.0/24'
        return found


def differences(before, after):
    out = []
    for key in sorted(before):
        if before[key] != after[key]:
            lines = difflib.unified_diff(str(before[key]).splitlines(), str(after[key]).splitlines(), lineterm='', n=0)
            out.append('%s:\n%s' % (key, '\n'.join(lines)))
    return out


def tail(output):
    return '\n'.join(line for line in output.splitlines() if 'ERROR' in line or 'fatal' in line or 'msg' in line
                     or 'WARNING' in line)[-4000:]


def cut_at_line_end(text):
    return ''.join(text.splitlines(True)[:-2])  # the last lease and the end line: a whole line is missing


def cut_mid_line(text):
    lines = text.splitlines(True)
    return ''.join(lines[:-2]) + lines[-2][:15]


def same_subnet(text):
    return text.replace(SUBNETS['node2'], SUBNETS['node3'])


def outside(text):
    return text.replace(SUBNETS['node2'], '10.99.3.0/24')


# (name, how the file is damaged, extra arguments, what the message says)
REFUSED = [
    ('cut at a line end, --limit node1', cut_at_line_end, ['--limit', 'node1'],
     ['damaged: it does not end with its "# end of leases: 2" line', 'cp ']),
    ('cut mid-line', cut_mid_line, [], ['damaged (cut short? it does not end with its end line): not valid YAML', 'cp ']),
    ('0 bytes', lambda text: '', [], ['damaged: the file is empty (0 bytes)', 'cp ']),
    ('two hosts on one subnet', same_subnet, [], ['subnet 10.244.2.0/24 claimed by two hosts: node2 (lease file', 'node3 (lease file']),
    ('a subnet outside the network', outside, [], ['host node2: lease file', '10.99.3.0/24 lies outside network 10.244.0.0/16']),
]


def test_a_damaged_lease_file_never_moves_a_host_and_verify_never_changes_one(lab_inventory, tmp_path):
    run = Run(lab_inventory, tmp_path)
    status, output = run.play('overlay.mesh.site', without=('node2',))
    assert status == 0, output[-5000:]
    status, output = run.play('overlay.mesh.site')
    assert status == 0, output[-5000:]
    assert run.subnets() == SUBNETS
    good = run.lease_file.read_text()
    prev = tmp_path / '.leases.yml.prev'
    assert 'node2' not in prev.read_text() and good.endswith('# end of leases: 3\n')

    failures = []
    for name, damage, args, expect in REFUSED:
        run.lease_file.write_text(damage(good))
        before = run.snapshot()
        status, output = run.play('overlay.mesh.site', *args)
        after = run.snapshot()
        missing = [text for text in expect + [str(run.lease_file)] if text not in output]
        changed = differences(before, after)
        if status == 0 or missing or changed:
            failures.append('%s: exit status %d, missing %r, changed %s\n%s' % (name, status, missing, changed, tail(output)))
        run.lease_file.write_text(good)

    # a lock left by a run that was killed holding it: no lock at all
    holder = subprocess.Popen([sys.executable, '-c', 'import fcntl, os, sys, time\n'
                               'fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n'
                               'fcntl.flock(fd, fcntl.LOCK_EX)\nprint("held", flush=True)\ntime.sleep(600)\n',
                               str(tmp_path / '.leases.yml.lock')], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == 'held\n'
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    before = run.snapshot()
    status, output = run.play('overlay.mesh.site')
    changed = differences(before, run.snapshot())
    if status != 0 or changed or re.search(r'changed=[1-9]', output):
        failures.append('stale lock: exit status %d, changed %s\n%s' % (status, changed, tail(output)))

    # the file lost: with --limit the hosts outside the play are named and nothing changes ...
    run.lease_file.unlink()
    before = run.snapshot()
    status, output = run.play('overlay.mesh.site', '--limit', 'node1')
    changed = differences(before, run.snapshot())
    expect = 'has no lease for node2, node3 (not in this play)'
    if status == 0 or expect not in output or changed:
        failures.append('lost, --limit node1: exit status %d, %r missing: %s, changed %s\n%s'
                        % (status, expect, expect not in output, changed, tail(output)))
    # ... and with every host in the play their own records rebuild it, said out loud, nobody moves
    status, output = run.play('overlay.mesh.site')
    expect = 'had no entry for 3 host(s): rebuilt from their own records: node1 10.244.1.0/24, node2 10.244.3.0/24, node3 10.244.2.0/24'
    if status != 0 or expect not in ' '.join(output.split()) or run.subnets() != SUBNETS:
        failures.append('lost, whole group: exit status %d, warning found %s, subnets %s\n%s'
                        % (status, expect in ' '.join(output.split()), run.subnets(), tail(output)))
    if run.lease_file.exists() and yaml.safe_load(run.lease_file.read_text())['leases'] != yaml.safe_load(good)['leases']:
        failures.append('rebuilt lease file differs:\n%s\n%s' % (good, run.lease_file.read_text()))

    # node3 marked absent, but outside a --limit: it still uses its subnet, so its lease stays (a new host would
    # otherwise be given that subnet) and node3 is not touched; a warning says so
    before = run.snapshot()
    status, output = run.play('overlay.mesh.site', '--limit', 'node1', host_vars={'node3': {'mesh_node_state': 'absent'}})
    after = run.snapshot()
    expect = 'node3: mesh_node_state: absent, but not in this play (--limit): its lease is kept'
    kept = [key for key in ('lease file', 'node3') if before[key] != after[key]]
    if status != 0 or expect not in ' '.join(output.split()) or kept:
        failures.append('absent outside --limit: exit status %d, warning found %s, changed %s\n%s'
                        % (status, expect in ' '.join(output.split()), kept, tail(output)))
    status, output = run.play('overlay.mesh.site')  # node1 has node3 as a peer again
    assert status == 0, output[-5000:]
    assert not failures, '\n\n'.join(failures)


def test_verify_reads_only_and_names_each_broken_object(lab_inventory, tmp_path):
    run = Run(lab_inventory, tmp_path)
    if not (tmp_path / 'leases.yml').exists():
        status, output = run.play('overlay.mesh.site')
        assert status == 0, output[-5000:]
    status, output = run.play('overlay.mesh.verify')
    assert status == 0, output[-5000:]
    on('node2', 'ip link set cni0 down; sysctl -qw net.ipv4.ip_forward=0; ip link del mesh.1; nft flush table inet overlay_mesh')
    before = run.snapshot()
    status, output = run.play('overlay.mesh.verify')
    after = run.snapshot()
    assert not differences(before, after), differences(before, after)
    assert status != 0, output[-5000:]
    message = next((line for line in output.splitlines() if 'overlay broken, nothing probed' in line), '')
    assert 'node2: ' in message, output[-5000:]
    for broken in ('link cni0 bridge', 'up (differs', 'sysctl net.ipv4.ip_forward = 1 (differs', 'link mesh.1 vxlan',
                   'fdb ', 'route 10.244.1.0/24', 'nftables '):
        assert broken in message, (broken, message)
    for healthy in ('node1: ', 'node3: '):
        assert healthy not in message, message
    status, output = run.play('overlay.mesh.site')
    assert status == 0, output[-5000:]
    status, output = run.play('overlay.mesh.verify')
    assert status == 0, output[-5000:]


def test_a_probe_an_interrupted_verify_left_is_cleaned_up_by_the_next(lab_inventory, tmp_path):
    """A verify killed between attaching its probe and detaching it leaves a container on node1; the next verify
    must not fail on it ("veth name already exists") and must leave no probe behind."""
    run = Run(lab_inventory, tmp_path)
    if not (tmp_path / 'leases.yml').exists():
        status, output = run.play('overlay.mesh.site')
        assert status == 0, output[-5000:]
    ports = on('node1', 'ip -br link show master cni0')
    script = (REPO / 'playbooks' / 'files' / 'overlay_probe.py').read_text()
    left = on('node1', "cat > /tmp/probe.py <<'EOF'\n%s\nEOF\npython3 /tmp/probe.py attach "
                       "$(ls /etc/cni/net.d/*.conflist | head -1) && ip netns list" % script)
    assert 'overlay-mesh-probe' in left, left
    status, output = run.play('overlay.mesh.verify')
    assert status == 0, output[-5000:]
    assert 'overlay-mesh-probe' not in on('node1', 'ip netns list')
    assert on('node1', 'ip -br link show master cni0') == ports
