# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The UDP backend daemon on real lab hosts (root): traffic, peers only, SIGHUP, garbage, SIGTERM.

The tests run in file order on one lab (fixture udp_lab in conftest.py).
"""

from __future__ import annotations

import json
import os
import random
import struct
import time

DEVICE = 'mesh-udp'  # as in conftest.py


def ping(udp_lab, host, target, count=3, check=True):
    return udp_lab.container(host, 'ping -n -q -c %d -W 2 -i 0.2 %s' % (count, target), check=check)


def echo_request(src, dst):
    """An IPv4 ICMP echo request src -> dst (checksums right)."""
    def csum(data):
        total = sum(struct.unpack('!%dH' % (len(data) // 2), data))
        total = (total & 0xFFFF) + (total >> 16)
        return ~((total & 0xFFFF) + (total >> 16)) & 0xFFFF
    icmp = struct.pack('!BBHHH', 8, 0, 0, 0x4242, 1) + b'overlay!'
    icmp = icmp[:2] + struct.pack('!H', csum(icmp)) + icmp[4:]
    header = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(icmp), 7, 0, 64, 1, 0, bytes(map(int, src.split('.'))), bytes(map(int, dst.split('.'))))
    return header[:10] + struct.pack('!H', csum(header)) + header[12:] + icmp


def test_device_route_and_address(udp_lab):
    link = json.loads(udp_lab.sh('node1', 'ip -j -d link show %s' % DEVICE))[0]
    assert link['mtu'] == 1472
    assert link['linkinfo']['info_data']['type'] == 'tun'
    addresses = json.loads(udp_lab.sh('node1', 'ip -j -4 address show dev %s' % DEVICE))[0]['addr_info']
    assert [(entry['local'], entry['prefixlen']) for entry in addresses] == [('10.244.1.0', 32)]
    assert udp_lab.sh('node1', 'ip route show 10.244.0.0/16').split()[:3] == ['10.244.0.0/16', 'dev', DEVICE]


def test_ping_between_containers(udp_lab):
    ping(udp_lab, 'node1', '10.244.2.200')
    ping(udp_lab, 'node2', '10.244.1.200')


def test_tcp_transfer(udp_lab):
    udp_lab.container('node2', 'iperf3 -s -1 -D -B 10.244.2.200')
    time.sleep(0.5)
    result = json.loads(udp_lab.container('node1', 'iperf3 -J -t 2 -c 10.244.2.200'))
    received = result['end']['sum_received']
    assert received['bytes'] > 10 * 1024 * 1024
    stats = udp_lab.stats('node1')
    assert stats['counters']['udp_tx_packets'] > 0
    assert stats['drops']['send_error'] == 0


def test_unknown_destination_gets_net_unreachable(udp_lab):
    out = ping(udp_lab, 'node1', '10.244.77.1', count=1, check=False)
    assert 'Unreachable' in out or '100% packet loss' in out
    assert udp_lab.stats('node1')['drops']['no_route'] >= 1
    assert udp_lab.stats('node1')['counters']['icmp_sent'] >= 1


def test_non_peer_datagrams_are_dropped_and_counted(udp_lab):
    before = udp_lab.stats('node2')['drops']['not_peer']
    udp_lab.send_udp('node3', 'node2', [echo_request('10.244.3.200', '10.244.2.200')] * 5)
    time.sleep(0.3)
    after = udp_lab.stats('node2')
    assert after['drops']['not_peer'] - before == 5
    assert ping(udp_lab, 'node3', '10.244.2.200', count=2, check=False).count(' 0 received') == 1


def test_sighup_adds_a_peer_without_recreating_the_device(udp_lab):
    ifindex = {host: udp_lab.ifindex(host) for host in ('node1', 'node2')}
    udp_lab.container('node1', 'sh -c "ping -n -q -i 0.02 -c 150 10.244.2.200 > /tmp/ovlu-ping.out 2>&1 &"')
    for host, peers in (('node1', ['node2', 'node3']), ('node2', ['node1', 'node3'])):
        udp_lab.write_config(host, peers)
        udp_lab.signal(host, 'HUP')
    time.sleep(4)
    assert {host: udp_lab.ifindex(host) for host in ('node1', 'node2')} == ifindex
    ping(udp_lab, 'node3', '10.244.2.200')
    ping(udp_lab, 'node1', '10.244.3.200')
    assert ' 0% packet loss' in udp_lab.sh('node1', 'cat /tmp/ovlu-ping.out')  # traffic kept flowing during the swap
    assert udp_lab.stats('node2')['peers'] == 2
    assert 'reload: 2 peers' in udp_lab.log('node2')


def test_sighup_removes_a_peer(udp_lab):
    udp_lab.write_config('node2', ['node1'])
    udp_lab.signal('node2', 'HUP')
    time.sleep(0.5)
    before = udp_lab.stats('node2')['drops']['not_peer']
    ping(udp_lab, 'node3', '10.244.2.200', count=2, check=False)
    assert udp_lab.stats('node2')['drops']['not_peer'] > before
    ping(udp_lab, 'node1', '10.244.2.200')


def test_bad_configuration_on_sighup_keeps_the_running_one(udp_lab):
    udp_lab.sh('node2', 'echo "{broken" > /etc/overlay-mesh/udp.json')
    udp_lab.signal('node2', 'HUP')
    time.sleep(0.5)
    assert udp_lab.alive('node2')
    assert 'reload refused' in udp_lab.log('node2')
    ping(udp_lab, 'node1', '10.244.2.200')
    udp_lab.write_config('node2', ['node1'])


def test_garbage_datagrams_do_not_hurt(udp_lab):
    rng = random.Random(6)
    good = echo_request('10.244.1.200', '10.244.2.200')
    payloads = [os.urandom(rng.choice((0, 1, 9, 10, 19, 20, 21, 40, 1400, 9000, 65507))) for dummy in range(300)]
    payloads += [good[:cut] for cut in range(len(good))]  # every truncation of a valid packet
    payloads += [bytes([0]) + os.urandom(9) + good for dummy in range(100)]  # random virtio headers
    payloads += [b'\x60' + os.urandom(60) for dummy in range(20)]  # IPv6
    payloads += [good + os.urandom(64000)]  # longer than its IP header says
    udp_lab.send_udp('node1', 'node2', payloads)  # from a peer: it passes the peer check
    udp_lab.send_udp('node3', 'node2', payloads[:50])
    time.sleep(0.5)
    assert udp_lab.alive('node2'), udp_lab.log('node2')
    stats = udp_lab.stats('node2')
    assert stats['drops']['internal_error'] == 0
    assert stats['drops']['malformed'] + stats['drops']['not_ipv4'] + stats['drops']['bad_vnet_header'] > 300
    ping(udp_lab, 'node1', '10.244.2.200')


def test_device_deleted_under_it_makes_it_exit_for_a_restart(udp_lab):
    udp_lab.sh('node3', 'ip link del %s' % DEVICE)
    for dummy in range(50):
        if not udp_lab.alive('node3'):
            break
        time.sleep(0.1)
    assert not udp_lab.alive('node3')
    assert 'exiting for a restart' in udp_lab.log('node3')


def test_sigterm_removes_device_and_route(udp_lab):
    udp_lab.signal('node2', 'TERM')
    for dummy in range(50):
        if not udp_lab.alive('node2'):
            break
        time.sleep(0.1)
    assert not udp_lab.alive('node2')
    assert udp_lab.lab.exec('node2', ['ip', 'link', 'show', DEVICE]).returncode != 0
    assert udp_lab.sh('node2', 'ip route show 10.244.0.0/16').strip() == ''
    assert 'stopped' in udp_lab.log('node2')
