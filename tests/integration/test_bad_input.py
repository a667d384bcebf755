# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad input stops everyone before anything changes: a matrix of real `site` runs on lab hosts.

Lab "ovln-bad" (3 hosts). Every case runs `overlay.mesh.site` with one kind of bad input, first on
fresh hosts, then on hosts converged by a good run, and asserts: the run fails, its output names
the host(s) and the role variable (or the setting) at fault, and nothing changed - a snapshot of
every host (links, addresses, routes, neighbours, FDB, the whole nftables ruleset, sysctls, every
file the collection writes) and of the lease file, taken before and after, are identical.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import HOST_SNAPSHOT, SETTLE, collections_path, lab_inventory_of, lab_shell

REPO = Path(__file__).resolve().parents[2]
LAB = os.environ.get('OVERLAY_MESH_LAB_PREFIX', '') + 'ovln-bad'  # a prefix lets two checkouts test at once
HOSTS = ('node1', 'node2', 'node3')
EXTRA_ADDRESS = 250  # a second underlay address some cases put on two hosts

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='needs root: boots systemd-nspawn lab hosts')


class Case(object):
    """One bad input: group vars, host vars, extra vars, a setup on the hosts, the expected message."""

    def __init__(self, name, expect, group=None, hosts=None, extra=None, setup=None, phases=('fresh', 'converged'), args=()):
        self.name = name
        self.args = list(args)  # more ansible-playbook arguments (--limit)
        self.expect = expect if isinstance(expect, (list, tuple)) else [expect]
        self.group = group or {}
        self.hosts = hosts or {}
        self.extra = extra or {}
        self.setup = setup      # 'shared-address', 'cloned-machine-id', 'missing-nft' or 'foreign-file'
        self.phases = phases


def every(message):
    """The message, as the filter prints it for each host."""
    return ['%s: %s' % (host, message) for host in HOSTS]


CASES = [
    # values any host would refuse, caught on the controller before any change
    Case('vni-zero', every('mesh_node_vxlan_vni: 0 is outside 1-16777215'), group={'mesh_node_vxlan_vni': 0}),
    Case('vni-too-big', every('mesh_node_vxlan_vni: 16777216 is outside 1-16777215'), group={'mesh_node_vxlan_vni': 16777216}),
    Case('vxlan-port-zero', every('mesh_node_vxlan_port: 0 is outside 1-65535'), group={'mesh_node_vxlan_port': 0}),
    Case('vxlan-port-too-big', every('mesh_node_vxlan_port: 70000 is outside 1-65535'), group={'mesh_node_vxlan_port': 70000}),
    Case('udp-port-too-big', every('mesh_node_udp_port: 65536 is outside 1-65535'),
         group={'mesh_node_backend': 'udp', 'mesh_node_udp_port': 65536}),
    Case('bridge-too-long', every("mesh_node_bridge: 'bridge-name-16ch' is 16 characters long; Linux allows at most 15"),
         group={'mesh_node_bridge': 'bridge-name-16ch'}),
    Case('bridge-bad-character', every("mesh_node_bridge: 'br/0' contains a character Linux does not allow"),
         group={'mesh_node_bridge': 'br/0'}),
    Case('vxlan-device-too-long', every("mesh_node_vxlan_device: 'overlay-mesh-vtep' is 17 characters long"),
         group={'mesh_node_vxlan_device': 'overlay-mesh-vtep'}),
    Case('route-protocol-reserved', every('mesh_node_route_protocol: 3 is outside 5-255'), group={'mesh_node_route_protocol': 3}),
    Case('route-protocol-too-big', every('mesh_node_route_protocol: 300 is outside 5-255'), group={'mesh_node_route_protocol': 300}),
    Case('mtu-too-small', every('mesh_node_mtu: 67 is outside 68-65535'), group={'mesh_node_mtu': 67}),
    Case('mtu-too-big', every('mesh_node_mtu: 70000 is outside 68-65535'), group={'mesh_node_mtu': 70000}),
    Case('mtu-above-underlay-vxlan', every('mesh_node_mtu: 1460 is larger than the underlay MTU 1500 minus the vxlan overhead 50'
                                           ' (1450 at most)'), group={'mesh_node_mtu': 1460}),
    Case('mtu-above-underlay-udp', every('mesh_node_mtu: 1480 is larger than the underlay MTU 1500 minus the udp overhead 28'),
         group={'mesh_node_backend': 'udp', 'mesh_node_mtu': 1480}),
    Case('wireguard-keepalive-too-big', every('mesh_node_wireguard_keepalive: 70000 is outside 0-65535'),
         group={'mesh_node_backend': 'wireguard', 'mesh_node_wireguard_keepalive': 70000}),
    Case('wireguard-mtu-too-big', every('mesh_node_mtu: 1450 is larger than the underlay MTU 1500 minus the wireguard overhead 60'
                                        ' (1440 at most)'),
         group={'mesh_node_backend': 'wireguard', 'mesh_node_mtu': 1450}),
    Case('unknown-backend', every("mesh_node_backend: 'gre' is not one of host-gw, udp, vxlan, wireguard"), group={'mesh_node_backend': 'gre'}),
    Case('ipv6-overlay', every('mesh_node_network: fd00:244::/48 is IPv6: the overlay network is IPv4; an IPv6 overlay goes beside it'),
         group={'mesh_node_network': 'fd00:244::/48'}),
    Case('mtu-not-a-number', ['mesh_node_mtu', "'abc'"], group={'mesh_node_mtu': 'abc'}),
    Case('subnet-env-relative', every("mesh_node_subnet_env_file: 'run/subnet.env' is not an absolute path"),
         group={'mesh_node_subnet_env_file': 'run/subnet.env'}),
    Case('subnet-env-dotdot', every("mesh_node_subnet_env_file: '/run/flannel/../../etc/environment' has a '..' component"),
         group={'mesh_node_subnet_env_file': '/run/flannel/../../etc/environment'}),
    Case('cni-conf-dir-relative', every("mesh_node_cni_conf_dir: 'etc/cni/net.d' is not an absolute path"),
         group={'mesh_node_cni_conf_dir': 'etc/cni/net.d'}),
    Case('cni-network-name', every("mesh_node_cni_network_name: '../mesh' is not a CNI network name"),
         group={'mesh_node_cni_network_name': '../mesh'}),
    # what only the host knows (node_info reads it): every host stops before the leases or any host change
    Case('subnet-env-parent-is-a-file', ['not changing anything on node1, node2, node3: '] + [
        "%s: not writing over what is not overlay.mesh's, nothing changed: subnet.env /etc/hostname/subnet.env (role variable"
        ' mesh_node_subnet_env_file): /etc/hostname is not a directory' % host for host in HOSTS],
        extra={'mesh_node_subnet_env_file': '/etc/hostname/subnet.env'}),
    Case('subnet-env-foreign-file', ['not changing anything on node1, node2, node3: '] + [
        "%s: not writing over what is not overlay.mesh's, nothing changed: subnet.env /run/flannel/user.env (role variable"
        ' mesh_node_subnet_env_file): holds what overlay.mesh did not write' % host for host in HOSTS],
        extra={'mesh_node_subnet_env_file': '/run/flannel/user.env'}, setup='foreign-file'),
    Case('rp-filter-choice', ['mesh_node_rp_filter', 'value of mesh_node_rp_filter must be one of: 0, 1, 2'],
         group={'mesh_node_rp_filter': 5}),
    # settings the whole group must share, set differently on some hosts
    Case('host-network', 'mesh_node_network differs across the group (10.244.0.0/16 on node1, node3; 10.245.0.0/16 on node2)',
         hosts={'node2': {'mesh_node_network': '10.245.0.0/16'}}),
    Case('host-vni', 'mesh_node_vxlan_vni differs across the group (1 on node1, node2; 7 on node3)',
         hosts={'node3': {'mesh_node_vxlan_vni': 7}}),
    Case('host-vxlan-port', 'mesh_node_vxlan_port differs across the group (4789 on node1; 8472 on node2, node3)',
         hosts={'node1': {'mesh_node_vxlan_port': 4789}}),
    Case('host-backend', 'mesh_node_backend differs across the group (udp on node2; vxlan on node1, node3)',
         hosts={'node2': {'mesh_node_backend': 'udp'}}),
    Case('host-subnet-len', 'mesh_node_subnet_len differs across the group (24 on node2, node3; 26 on node1)',
         hosts={'node1': {'mesh_node_subnet_len': 26}}),
    Case('host-udp-port', 'mesh_node_udp_port differs across the group (8285 on node1, node2; 9000 on node3)',
         group={'mesh_node_backend': 'udp'}, hosts={'node3': {'mesh_node_udp_port': 9000}}),
    # the group, the hosts, the leases
    Case('no-such-group', 'mesh_node_group: the inventory has no group nosuch, or it has no hosts',
         extra={'mesh_node_group': 'nosuch'}),
    Case('empty-group', 'mesh_node_group: the inventory has no group empty, or it has no hosts', extra={'mesh_node_group': 'empty'}),
    # a --limit leaves localhost out of the play: the check must still run
    Case('no-such-group-limit', 'mesh_node_group: the inventory has no group nosuch, or it has no hosts',
         extra={'mesh_node_group': 'nosuch'}, args=['--limit', 'node1']),
    Case('remove-unknown-host', 'mesh_node_remove: node9 not in group overlay', extra={'mesh_node_remove': 'node9'}),
    Case('unreachable-host', 'not changing anything on node1, node2: node3 could not be read',
         hosts={'node3': {'overlay_lab_name': 'ovln-nosuch'}}),
    Case('two-hosts-one-underlay-address', 'hosts node1 and node2 have the same underlay address',
         hosts={'node1': {'mesh_node_underlay_address': 'EXTRA'}, 'node2': {'mesh_node_underlay_address': 'EXTRA'}},
         setup='shared-address'),
    Case('missing-nft', 'not changing anything on node1, node2, node3: node2: missing nft: apt install nftables', setup='missing-nft'),
    Case('cloned-machine-id', 'hosts node1 and node2 have the same VTEP MAC (a cloned /etc/machine-id?',
         setup='cloned-machine-id', phases=('fresh',)),  # a converged host keeps the MAC it has
    Case('underlay-interface-missing', ['underlay interface eth9 (role variable mesh_node_underlay_interface) does not exist on '
                                        'host %s' % host for host in HOSTS],
         group={'mesh_node_underlay_interface': 'eth9'}),
    Case('underlay-address-not-on-host', 'underlay address 198.19.255.1 (role variable mesh_node_underlay_address) is not '
         'configured on any interface of host node2', hosts={'node2': {'mesh_node_underlay_address': '198.19.255.1'}}),
    Case('underlay-reach-not-an-address', "reach: 'nowhere' is not an IP address", group={'mesh_node_underlay_reach': 'nowhere'}),
    Case('network-too-small', 'network 10.244.0.0/28 too small: 1 subnets of /30 fit',
         group={'mesh_node_network': '10.244.0.0/28', 'mesh_node_subnet_len': 30, 'mesh_node_subnet_min': '10.244.0.12/30'}),
    Case('pinned-subnet-outside', 'host node1: pinned', hosts={'node1': {'mesh_node_subnet': '10.99.1.0/24'}}),
    Case('pinned-subnet-twice', ['node1', 'node2', '10.244.9.0/24'],
         hosts={'node1': {'mesh_node_subnet': '10.244.9.0/24'}, 'node2': {'mesh_node_subnet': '10.244.9.0/24'}}),
]


def on(host, command):
    return lab_shell(LAB, host, command, check=False).stdout


@pytest.fixture(scope='module')
def lab_inventory():
    yield from lab_inventory_of(LAB, len(HOSTS))


def site(lab_inventory, workdir, case=None):
    """Run overlay.mesh.site with the case's inventory; (exit status, output)."""
    case = case or Case('good', [])
    inventory = yaml.safe_load(yaml.safe_dump(lab_inventory))
    extra_address = str(lab_inventory['all']['vars']['overlay_lab_underlay_subnet']).rsplit('.', 1)[0] + '.%d' % EXTRA_ADDRESS
    inventory['all']['vars'].update(case.group)
    for host, values in case.hosts.items():
        values = dict((k, extra_address if v == 'EXTRA' else v) for k, v in values.items())
        inventory['all']['children']['lab']['hosts'][host].update(values)
    inventory['all']['children']['empty'] = {'hosts': {}}
    (workdir / 'inventory.yml').write_text(yaml.safe_dump(inventory))
    argv = [str(Path(sys.executable).parent / 'ansible-playbook'), '-i', str(workdir / 'inventory.yml'), 'overlay.mesh.site',
            '-e', 'mesh_node_lease_file=%s' % (workdir / 'leases.yml')]
    for key, value in case.extra.items():
        argv += ['-e', '%s=%s' % (key, value)]
    argv += case.args
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(), ANSIBLE_CONFIG=str(REPO / 'tests' / 'ansible.cfg'),
               ANSIBLE_NOCOLOR='1', ANSIBLE_CONNECTION_PLUGINS=str(REPO / 'tests' / 'lab' / 'connection_plugins'))
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=str(workdir), check=False)
    return proc.returncode, proc.stdout + proc.stderr


def settle():
    """Wait for what the kernel finishes by itself after a device appears (IPv6 duplicate address
    detection, then the link-local address's local route), so that a snapshot holds still."""
    for host in HOSTS:
        on(host, SETTLE)


def snapshot(workdir):
    lease_file = workdir / 'leases.yml'
    state = {'lease file': hashlib.sha256(lease_file.read_bytes()).hexdigest() if lease_file.exists() else None}
    for host in HOSTS:
        state[host] = on(host, HOST_SNAPSHOT)
    return state


def setup(case, lab_inventory):
    """Put the case's situation on the hosts (before the snapshot); returns how to undo it."""
    prefix = str(lab_inventory['all']['vars']['overlay_lab_underlay_subnet']).rsplit('.', 1)[0]
    if case.setup == 'shared-address':
        for host in ('node1', 'node2'):
            on(host, 'ip addr add %s.%d/32 dev eth0' % (prefix, EXTRA_ADDRESS))
        return lambda: [on(host, 'ip addr del %s.%d/32 dev eth0' % (prefix, EXTRA_ADDRESS)) for host in ('node1', 'node2')]
    if case.setup == 'missing-nft':  # a prerequisite missing on one host: found before anything changes anywhere
        on('node2', 'mv /usr/sbin/nft /usr/sbin/nft.hidden')
        return lambda: on('node2', 'mv /usr/sbin/nft.hidden /usr/sbin/nft')
    if case.setup == 'foreign-file':  # the user's file where the case puts subnet.env (in the snapshot: /run/flannel)
        for host in HOSTS:
            on(host, "mkdir -p /run/flannel && printf 'PATH=/opt/bin:/usr/bin\\n' > /run/flannel/user.env")
        return lambda: [on(host, 'rm -f /run/flannel/user.env') for host in HOSTS]
    if case.setup == 'cloned-machine-id':
        saved = on('node2', 'cat /etc/machine-id')
        on('node2', 'cp /etc/machine-id /etc/machine-id.saved && echo %s > /etc/machine-id' % on('node1', 'cat /etc/machine-id').strip())
        return lambda: on('node2', 'echo %s > /etc/machine-id && rm /etc/machine-id.saved' % saved.strip())
    return lambda: None


def run_matrix(lab_inventory, workdir, phase):
    # OVERLAY_MESH_BAD_INPUT_CASES=name,name: only these cases (a developer's rerun; the suite runs them all)
    only = [name for name in os.environ.get('OVERLAY_MESH_BAD_INPUT_CASES', '').split(',') if name]
    failures = []
    for case in CASES:
        if phase not in case.phases or (only and case.name not in only):
            continue
        undo = setup(case, lab_inventory)
        try:
            settle()
            before = snapshot(workdir)
            status, output = site(lab_inventory, workdir, case)
            after = snapshot(workdir)
        finally:
            undo()
        missing = [text for text in case.expect if text not in output]
        changed = []
        for key in sorted(before):
            if before[key] != after[key]:
                lines = difflib.unified_diff(str(before[key]).splitlines(), str(after[key]).splitlines(), lineterm='', n=0)
                changed.append('%s:\n%s' % (key, '\n'.join(lines)))
        if status == 0 or missing or changed:
            tail = '\n'.join(line for line in output.splitlines() if 'ERROR' in line or 'fatal' in line or 'msg' in line)[-3000:]
            failures.append('%s (%s): exit status %d, missing %r, changed %s\n%s' % (case.name, phase, status, missing, changed, tail))
    return failures


def test_bad_input_changes_nothing_on_fresh_then_converged_hosts(lab_inventory, tmp_path):
    assert len(CASES) >= 30
    failures = run_matrix(lab_inventory, tmp_path, 'fresh')
    status, output = site(lab_inventory, tmp_path)
    assert status == 0, '\n\n'.join(failures + [output[-5000:]])
    for host in HOSTS:  # the boot unit the first run started (it reapplies the same contract) has finished
        on(host, 'for i in $(seq 100); do systemctl is-active -q overlay-mesh.service && break; sleep 0.1; done')
    failures += run_matrix(lab_inventory, tmp_path, 'converged')
    status, output = site(lab_inventory, tmp_path)
    assert status == 0 and not re.search(r'changed=[1-9]', output), '\n\n'.join(failures + [output[-5000:]])
    assert not failures, '\n\n'.join(failures)
