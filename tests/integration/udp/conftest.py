# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A lab (`udpit`, 3 hosts) running the UDP backend daemon, for tests/integration/udp.

Each host N gets a bridge cni0 with 10.244.N.1/24 and a container (network namespace ovlu-c,
10.244.N.200) on it. node1 and node2 run the daemon as peers of each other; node3 runs it too,
but nobody lists it as a peer until a test says so. The lab is taken down in the finalizer.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / 'tests' / 'lab'))

from overlay_lab import Lab  # noqa: E402  pylint: disable=wrong-import-position

DAEMON = REPO / 'plugins' / 'module_utils' / '_backends' / 'udp_daemon.py'  # runs as a script too
PACKETS = DAEMON.parent / 'udp_packets.py'  # beside it
LAB_NAME = os.environ.get('OVERLAY_MESH_LAB_PREFIX', '') + 'udpit'  # a prefix lets two checkouts test at once
DEVICE = 'mesh-udp'
CONFIG = '/etc/overlay-mesh/udp.json'
STATS = '/run/overlay-mesh/udp-stats.json'


class UdpLab(object):
    """Three lab hosts and the daemon on each; helpers run commands inside them."""

    def __init__(self, lab, state):
        self.lab = lab
        self.state = state
        self.pids = {}

    def sh(self, host, command, check=True, stdin=None):
        proc = self.lab.exec(host, ['sh', '-c', command], input=stdin)
        if check and proc.returncode:
            raise AssertionError('%s: %s failed (%d): %s %s' % (host, command, proc.returncode, proc.stdout.strip(), proc.stderr.strip()))
        return proc.stdout

    def underlay(self, host):
        return self.state['hosts'][host]['address']

    @staticmethod
    def index(host):
        return int(host[len('node'):])

    def config(self, host, peers):
        number = self.index(host)
        return {'device': DEVICE, 'address': '10.244.%d.0' % number, 'subnet': '10.244.%d.0/24' % number, 'network': '10.244.0.0/16',
                'mtu': 1472, 'port': 8285, 'local': self.underlay(host), 'stats_interval': 1,
                'peers': [{'subnet': '10.244.%d.0/24' % self.index(peer), 'underlay': self.underlay(peer)} for peer in peers]}

    def write_config(self, host, peers):
        self.sh(host, 'mkdir -p /etc/overlay-mesh && cat > %s' % CONFIG, stdin=json.dumps(self.config(host, peers)))

    def prepare(self, host):
        number = self.index(host)
        self.sh(host, 'mkdir -p /usr/lib/overlay-mesh && cat > /usr/lib/overlay-mesh/overlay-mesh-udp.py', stdin=DAEMON.read_text())
        self.sh(host, 'cat > /usr/lib/overlay-mesh/udp_packets.py', stdin=PACKETS.read_text())  # the script imports it
        self.sh(host, 'sysctl -qw net.ipv4.ip_forward=1 && ip link add cni0 type bridge && ip address add 10.244.{n}.1/24 dev cni0 && '
                      'ip link set cni0 up && ip netns add ovlu-c && ip link add ovlu-h type veth peer name eth0 netns ovlu-c && '
                      'ip link set ovlu-h master cni0 up && ip -n ovlu-c address add 10.244.{n}.200/24 dev eth0 && '
                      'ip -n ovlu-c link set eth0 up && ip -n ovlu-c link set lo up && ip -n ovlu-c route add default via 10.244.{n}.1'.format(n=number))

    def start(self, host):
        pid = self.sh(host, 'setsid python3 /usr/lib/overlay-mesh/overlay-mesh-udp.py %s >/var/log/overlay-mesh-udp.log 2>&1 </dev/null & echo $!'
                      % CONFIG).strip()
        self.pids[host] = pid
        for dummy in range(50):
            if self.sh(host, 'ip route show dev %s' % DEVICE, check=False).strip():
                return pid
            time.sleep(0.1)
        raise AssertionError('%s: daemon not up: %s' % (host, self.log(host)))

    def log(self, host):
        return self.sh(host, 'cat /var/log/overlay-mesh-udp.log', check=False)

    def alive(self, host):
        return self.lab.exec(host, ['kill', '-0', self.pids[host]]).returncode == 0

    def signal(self, host, name):
        self.sh(host, 'kill -%s %s' % (name, self.pids[host]))

    def stats(self, host):
        """Ask for the counters (SIGUSR1) and read them once the file is newer than the request."""
        asked = time.time()
        self.signal(host, 'USR1')
        for dummy in range(50):
            stats = json.loads(self.sh(host, 'cat %s 2>/dev/null || echo null' % STATS))
            if stats and stats['time'] >= asked - 1:
                return stats
            time.sleep(0.1)
        raise AssertionError('%s: no fresh %s' % (host, STATS))

    def ifindex(self, host):
        return int(self.sh(host, 'cat /sys/class/net/%s/ifindex' % DEVICE))

    def container(self, host, command, check=True):
        return self.sh(host, 'ip netns exec ovlu-c %s' % command, check=check)

    def send_udp(self, host, target, payloads):
        """Send each payload (bytes) from host's underlay address to target's daemon port."""
        script = ('import socket, sys, json\n'
                  's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n'
                  's.bind((%r, 0))\n'
                  'for item in json.load(sys.stdin):\n'
                  '    s.sendto(bytes.fromhex(item), (%r, 8285))\n') % (self.underlay(host), self.underlay(target))
        self.sh(host, 'cat > /tmp/ovlu-send.py', stdin=script)
        self.sh(host, 'python3 /tmp/ovlu-send.py', stdin=json.dumps([payload.hex() for payload in payloads]))


@pytest.fixture(scope='module')
def udp_lab(request):
    if os.geteuid() != 0:
        pytest.skip('needs root: boots a lab of systemd-nspawn hosts')
    lab = Lab(LAB_NAME)
    request.addfinalizer(lambda: lab.down(log=lambda message: None))
    lab.down(log=lambda message: None)  # left over by an interrupted run
    state = lab.up(3, log=lambda message: None)
    hosts = UdpLab(lab, state)
    peers = {'node1': ['node2'], 'node2': ['node1'], 'node3': ['node1', 'node2']}
    for host, host_peers in peers.items():
        hosts.prepare(host)
        hosts.write_config(host, host_peers)
        hosts.start(host)
    return hosts
