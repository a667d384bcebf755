# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures for integration tests: throwaway network namespaces and Ansible runs inside them.

Nothing is created in the machine's root network namespace: every link is made with
`ip -n <namespace>` in namespaces named ovln-<random>, removed when the test ends whatever
happens. Underlay addresses come from 198.18.0.0/15.

Modules run through Ansible (`ansible localhost -m overlay.mesh.<module>` under
`ip netns exec`), once with the controller venv (pyroute2 0.9.x) and once with a Python that
has pyroute2 0.7.2, Debian 12's version (OVERLAY_MESH_PY072, default
/var/tmp/ovl-py072/bin/python; that run is skipped when it does not exist).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PY072 = os.environ.get('OVERLAY_MESH_PY072', '/var/tmp/ovl-py072/bin/python')
INTERPRETERS = {'pyroute2-0.9': sys.executable, 'pyroute2-0.7.2': PY072}

# A lab host's state as a run could change it; not what moves by itself (ARP states, address
# lifetimes and flags, bridge timers). Run SETTLE first: IPv6 duplicate address detection ends,
# then the link-local address's local route appears, some time after a device comes up.
HOST_SNAPSHOT = ("ip -br link | awk '{print $1, $3, $4}' | sed 's/NO-CARRIER,//; s/,LOWER_UP//'; ip -d link show type vxlan; "
                 "ip -o addr show | awk '{print $2, $3, $4}'; "
                 "ip route show table all | sed 's/ linkdown//'; ip neigh show nud permanent; bridge fdb show | grep permanent; "
                 'nft list ruleset; sysctl net.ipv4.ip_forward; cat /etc/machine-id; '
                 'find /etc/overlay-mesh /usr/lib/overlay-mesh /etc/cni /run/flannel /etc/sysctl.d /etc/systemd/system '
                 '/etc/systemd/network /etc/iproute2 /etc/docker -type f 2>/dev/null | sort | xargs -r sha256sum; '
                 'systemctl is-enabled overlay-mesh.service overlay-mesh-udp.service overlay-mesh-wireguard.service 2>&1')
SETTLE = 'for i in $(seq 100); do [ -z "$(ip -6 addr show tentative)" ] && break; sleep 0.1; done; sleep 0.2'

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason='needs root: creates network namespaces')


def sh(command, check=True):
    """Run a shell command, returning stdout; raise with stderr when it fails."""
    proc = subprocess.run(command, shell=True, capture_output=True, text=True, check=False)
    if check and proc.returncode:
        raise AssertionError('%s failed (%d): %s' % (command, proc.returncode, proc.stderr.strip()))
    return proc.stdout


LAB_TOOL = REPO / 'tests' / 'lab' / 'overlay_lab.py'


def lab(*args, check=True):
    """Run the lab tool (tests/lab/overlay_lab.py); its CompletedProcess, an AssertionError with its output when it fails."""
    proc = subprocess.run([sys.executable, str(LAB_TOOL)] + list(args), capture_output=True, text=True, check=False)
    if check and proc.returncode:
        raise AssertionError('overlay_lab.py %s failed: %s %s' % (' '.join(args), proc.stdout, proc.stderr))
    return proc


def lab_inventory_path_of(name, hosts):
    """A generator for a module fixture: boot lab ``name`` with ``hosts`` hosts, yield its inventory's path,
    always take it down again."""
    lab('down', '--name', name, check=False)
    try:
        out = lab('up', '--name', name, '--hosts', str(hosts)).stdout
        yield re.search(r'inventory: (\S+)', out).group(1)
    finally:
        lab('down', '--name', name, check=False)


def lab_inventory_of(name, hosts):
    """As lab_inventory_path_of, yielding the inventory parsed."""
    import yaml  # pylint: disable=import-outside-toplevel
    for path in lab_inventory_path_of(name, hosts):
        yield yaml.safe_load(Path(path).read_text())


def lab_shell(name, host, command, check=True):
    """Run a shell command on a host of lab ``name``; its CompletedProcess."""
    proc = lab('exec', '--name', name, host, 'sh', '-c', command, check=False)
    if check and proc.returncode:
        raise AssertionError('%s on %s failed (%d): %s %s' % (command, host, proc.returncode, proc.stdout, proc.stderr))
    return proc


def collections_path():
    if REPO.parent.name == 'overlay' and REPO.parent.parent.name == 'ansible_collections':
        return str(REPO.parents[2])
    return str(REPO / '.collections')


class Namespace(object):
    """A throwaway network namespace, with helpers to run commands and modules inside."""

    def __init__(self, name, python, tmp):
        self.name = name
        self.python = python
        self.tmp = tmp
        self.runs = 0

    def ip(self, args, check=True):
        return sh('ip -n %s %s' % (self.name, args), check)

    def run(self, command, check=True):
        return sh('ip netns exec %s %s' % (self.name, command), check)

    def json(self, args):
        return json.loads(self.ip('-j ' + args) or '[]')

    def module(self, name, args, check=False, diff=True):
        """Run overlay.mesh.<name> with args; return its result dict (with 'failed' when it failed)."""
        self.runs += 1
        tree = self.tmp / ('tree-%d' % self.runs)
        config = self.tmp / 'ansible.cfg'
        if not config.exists():
            config.write_text('[defaults]\nhost_key_checking = False\n')
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(), ANSIBLE_CONFIG=str(config),
                   ANSIBLE_NOCOLOR='1', ANSIBLE_LOCALHOST_WARNING='0', ANSIBLE_INVENTORY_UNPARSED_WARNING='0')
        argv = ['ip', 'netns', 'exec', self.name, str(VENV_BIN / 'ansible'), 'localhost', '-i', 'localhost,', '-c', 'local',
                '-e', 'ansible_python_interpreter=%s' % self.python, '-m', 'overlay.mesh.%s' % name,
                '-a', json.dumps(args), '--tree', str(tree), '-vvv']  # -vvv: keep 'diff' in the tree result
        if check:
            argv.append('--check')
        if diff:
            argv.append('--diff')
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=str(self.tmp), check=False)
        path = tree / 'localhost'
        if not path.exists():
            raise AssertionError('ansible wrote no result (rc %d): %s %s' % (proc.returncode, proc.stdout, proc.stderr))
        result = json.loads(path.read_text())
        if proc.returncode:  # the tree callback does not keep 'failed'
            result['failed'] = True
        return result


@pytest.fixture(params=sorted(INTERPRETERS))
def python(request):
    path = INTERPRETERS[request.param]
    if not os.path.exists(path):
        pytest.skip('%s: %s not found (set OVERLAY_MESH_PY072)' % (request.param, path))
    return path


@pytest.fixture
def make_netns(tmp_path, python):
    """make_netns() -> a fresh Namespace; every one is deleted at the end of the test."""
    if os.geteuid() != 0:
        pytest.skip('needs root: creates network namespaces')
    created = []

    def make():
        name = 'ovln-%s' % uuid.uuid4().hex[:8]
        sh('ip netns add %s' % name)
        created.append(name)
        ns = Namespace(name, python, tmp_path)
        ns.ip('link set lo up')
        return ns

    yield make
    for name in created:
        sh('ip netns del %s' % name, check=False)


@pytest.fixture
def host(make_netns):
    """A namespace with an underlay: u0 (198.18.0.1/24, MTU 1500) whose veth peer u1 is up too."""
    ns = make_netns()
    ns.ip('link add u0 type veth peer name u1')
    ns.ip('addr add 198.18.0.1/24 dev u0')
    ns.ip('addr add 2001:db8:18::1/64 dev u0 nodad')
    ns.ip('link set u0 up')
    ns.ip('link set u1 up')
    return ns


def link_pair(a, b, a_name='u0', b_name='u0', a_addr='198.18.1.1/24', b_addr='198.18.1.2/24', extra=()):
    """A veth between two namespaces (created inside a, one end moved to b), both up."""
    a.ip('link add %s type veth peer name %s netns %s' % (a_name, b_name, b.name))
    a.ip('addr add %s dev %s' % (a_addr, a_name))
    b.ip('addr add %s dev %s' % (b_addr, b_name))
    for ns, name, address in extra:
        ns.ip('addr add %s dev %s nodad' % (address, name))
    a.ip('link set %s up' % a_name)
    b.ip('link set %s up' % b_name)
