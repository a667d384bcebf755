# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Packet logic of the UDP backend daemon (plugins/module_utils/_backends/udp_packets.py, udp_daemon.py), no root."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.overlay.mesh.plugins.module_utils._backends import udp_daemon as udp
from ansible_collections.overlay.mesh.plugins.module_utils._backends import udp_packets as packets

OFF = packets.VNET_LEN
CONFIG = {'device': 'mesh-udp', 'address': '10.244.1.0', 'subnet': '10.244.1.0/24', 'network': '10.244.0.0/16', 'mtu': 1472,
          'port': 8285, 'local': '198.18.0.11', 'offload': True,
          'peers': [{'subnet': '10.244.2.0/24', 'underlay': '198.18.0.12'}, {'subnet': '10.244.3.0/24', 'underlay': '198.18.0.13', 'port': 9000},
                    {'subnet': '10.244.1.0/24', 'underlay': '198.18.0.11'}]}


def ipv4(src, dst, ttl=64, proto=17, payload=b'x' * 12, frag=0):
    """An IPv4 packet with a correct header checksum."""
    header = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(payload), 1, frag, ttl, proto, 0,
                         bytes(map(int, src.split('.'))), bytes(map(int, dst.split('.'))))
    header = header[:10] + struct.pack('!H', packets.checksum(header)) + header[12:]
    return header + payload


def framed(packet, vnet=packets.VNET_ZERO):
    """The packet as the device hands it over: virtio_net_hdr first."""
    return bytearray(vnet + packet)


@pytest.fixture(name='plane')
def plane_fixture():
    return packets.Dataplane(CONFIG)


# ---- peer table ----

def test_lookup_finds_the_peer_of_the_subnet(plane):
    assert plane.table.lookup(packets.ip_to_int('10.244.2.77')) == ('198.18.0.12', 8285)
    assert plane.table.lookup(packets.ip_to_int('10.244.3.1')) == ('198.18.0.13', 9000)
    assert plane.table.lookup(packets.ip_to_int('10.244.9.1')) is None


def test_own_subnet_is_not_a_peer(plane):
    assert len(plane.table) == 2
    assert '198.18.0.11' not in plane.table.sources


def test_longest_prefix_wins():
    table = packets.PeerTable([{'subnet': '10.244.0.0/16', 'underlay': '198.18.0.1'}, {'subnet': '10.244.5.0/24', 'underlay': '198.18.0.5'}], 8285)
    assert table.lookup(packets.ip_to_int('10.244.5.9'))[0] == '198.18.0.5'
    assert table.lookup(packets.ip_to_int('10.244.6.9'))[0] == '198.18.0.1'


def test_set_peers_swaps_the_table(plane):
    old = plane.table
    plane.set_peers([{'subnet': '10.244.4.0/24', 'underlay': '198.18.0.14'}], 8285)
    assert plane.table is not old
    assert plane.table.lookup(packets.ip_to_int('10.244.4.1')) == ('198.18.0.14', 8285)
    assert plane.table.lookup(packets.ip_to_int('10.244.2.1')) is None


# ---- TTL and checksum ----

@given(st.binary(min_size=20, max_size=20), st.integers(min_value=2, max_value=255))
def test_ttl_decrement_keeps_the_checksum_valid(header, ttl):
    header = bytearray(header)
    header[0] = 0x45
    header[8] = ttl
    header[10:12] = b'\0\0'
    header[10:12] = struct.pack('!H', packets.checksum(header))
    assert packets.decrement_ttl(header, 0)
    assert header[8] == ttl - 1
    assert packets.checksum(header) == 0  # a header with a right checksum sums to zero


@pytest.mark.parametrize('ttl', [0, 1])
def test_ttl_expiring_changes_nothing(ttl):
    packet = bytearray(ipv4('10.244.1.5', '10.244.2.5', ttl=ttl))
    before = bytes(packet)
    assert not packets.decrement_ttl(packet, 0)
    assert bytes(packet) == before


# ---- outbound (device -> underlay) ----

def test_outbound_plain_packet_is_sent_without_header(plane):
    buf = framed(ipv4('10.244.1.5', '10.244.2.5', ttl=64))
    verdict = plane.outbound(buf, OFF, len(buf))
    assert verdict == ('send', OFF, ('198.18.0.12', 8285))
    assert buf[OFF + 8] == 63
    assert packets.checksum(buf[OFF:OFF + 20]) == 0


def test_outbound_offloaded_packet_carries_the_vnet_header(plane):
    vnet = packets.VNET.pack(packets.VNET_F_NEEDS_CSUM, packets.GSO_TCPV4, 52, 1420, 20, 16)
    buf = framed(ipv4('10.244.1.5', '10.244.3.5', proto=6, payload=b'y' * 3000), vnet)
    assert plane.outbound(buf, OFF, len(buf)) == ('send', 0, ('198.18.0.13', 9000))


def test_outbound_unknown_destination_gives_net_unreachable(plane):
    packet = ipv4('10.244.1.5', '10.244.77.5')
    buf = framed(packet)
    kind, reason, icmp = plane.outbound(buf, OFF, len(buf))
    assert (kind, reason) == ('icmp_or_drop', 'no_route')
    assert icmp[9] == 1 and icmp[12:16] == bytes([10, 244, 1, 0]) and icmp[16:20] == bytes([10, 244, 1, 5])
    assert (icmp[20], icmp[21]) == (3, 0)
    assert packets.checksum(icmp[:20]) == 0 and packets.checksum(icmp[20:]) == 0
    assert icmp[28:] == packet[:28]  # the original header and 8 bytes


def test_outbound_ttl_expiry_gives_time_exceeded(plane):
    buf = framed(ipv4('10.244.1.5', '10.244.2.5', ttl=1))
    kind, reason, icmp = plane.outbound(buf, OFF, len(buf))
    assert (kind, reason) == ('icmp_or_drop', 'ttl_expired')
    assert (icmp[20], icmp[21]) == (11, 0)


def test_no_icmp_error_about_an_icmp_error(plane):
    error = struct.pack('!BBHI', 3, 1, 0, 0) + b'z' * 28
    buf = framed(ipv4('10.244.1.5', '10.244.77.5', proto=1, payload=error))
    assert plane.outbound(buf, OFF, len(buf))[2] is None
    echo = struct.pack('!BBHI', 8, 0, 0, 0)
    buf = framed(ipv4('10.244.1.5', '10.244.77.5', proto=1, payload=echo))
    assert plane.outbound(buf, OFF, len(buf))[2] is not None


def test_no_icmp_error_about_a_later_fragment_or_multicast(plane):
    buf = framed(ipv4('10.244.1.5', '10.244.77.5', frag=100))
    assert plane.outbound(buf, OFF, len(buf))[2] is None
    buf = framed(ipv4('224.0.0.5', '10.244.77.5'))
    assert plane.outbound(buf, OFF, len(buf))[2] is None


@pytest.mark.parametrize('packet,reason', [
    (b'\x60' + bytes(39), 'not_ipv4'),
    (b'\x45' + bytes(10), 'not_ipv4'),
    (ipv4('10.244.2.5', '10.244.1.9'), 'loop'),
])
def test_outbound_drops(plane, packet, reason):
    buf = framed(packet)
    assert plane.outbound(buf, OFF, len(buf)) == ('drop', reason)


def test_outbound_without_offload_never_sends_a_header():
    plane = packets.Dataplane(dict(CONFIG, offload=False))
    buf = bytearray(ipv4('10.244.1.5', '10.244.2.5'))
    assert plane.outbound(buf, 0, len(buf)) == ('send', 0, ('198.18.0.12', 8285))


# ---- inbound (underlay -> device) ----

def test_inbound_plain_packet(plane):
    packet = ipv4('10.244.2.5', '10.244.1.5')
    assert plane.inbound(packet, len(packet), '198.18.0.12') == ('plain',)
    assert plane.inbound(memoryview(packet)[:24], len(packet), '198.18.0.12') == ('plain',)  # checked on its head


def test_inbound_packet_with_vnet_header(plane):
    vnet = packets.VNET.pack(packets.VNET_F_NEEDS_CSUM, packets.GSO_TCPV4, 52, 1420, 20, 16)
    data = vnet + ipv4('10.244.2.5', '10.244.1.5', proto=6, payload=b'y' * 3000)
    assert plane.inbound(data, len(data), '198.18.0.12') == ('vnet',)


@pytest.mark.parametrize('sender,payload,reason', [
    ('198.18.0.99', ipv4('10.244.2.5', '10.244.1.5'), 'not_peer'),
    ('198.18.0.12', ipv4('10.244.3.5', '10.244.1.5'), 'spoofed_source'),
    ('198.18.0.12', ipv4('10.244.2.5', '10.244.3.5'), 'not_local'),
    ('198.18.0.12', ipv4('10.244.2.5', '10.244.1.5')[:-1], 'malformed'),
    ('198.18.0.12', b'\x60' + bytes(50), 'not_ipv4'),
    ('198.18.0.12', b'', 'malformed'),
    ('198.18.0.12', packets.VNET.pack(0x04, 0, 0, 0, 0, 0) + ipv4('10.244.2.5', '10.244.1.5'), 'bad_vnet_header'),
    ('198.18.0.12', packets.VNET.pack(0, 3, 0, 0, 0, 0) + ipv4('10.244.2.5', '10.244.1.5'), 'bad_vnet_header'),
    ('198.18.0.12', packets.VNET.pack(0, packets.GSO_TCPV4, 0, 0, 0, 0) + ipv4('10.244.2.5', '10.244.1.5'), 'bad_vnet_header'),
    ('198.18.0.12', packets.VNET.pack(1, 0, 0, 0, 30, 16) + ipv4('10.244.2.5', '10.244.1.5'), 'bad_vnet_header'),
])
def test_inbound_drops(plane, sender, payload, reason):
    assert plane.inbound(payload, len(payload), sender) == ('drop', reason)


def test_inbound_without_offload_refuses_headers():
    plane = packets.Dataplane(dict(CONFIG, offload=False))
    data = packets.VNET_ZERO + ipv4('10.244.2.5', '10.244.1.5')
    assert plane.inbound(data, len(data), '198.18.0.12') == ('drop', 'bad_vnet_header')
    data = ipv4('10.244.2.5', '10.244.1.5')
    assert plane.inbound(data, len(data), '198.18.0.12') == ('plain',)


# ---- segments (UDP GSO) and reassembly ----

def wire(iov):
    """The UDP payloads the kernel makes of an iovec list (header, chunk, header, chunk, ...)."""
    return [bytes(iov[index]) + bytes(iov[index + 1]) for index in range(0, len(iov), 2)]


def add_one(reassembler, sender, payload):
    return reassembler.add(sender, packets.SEGMENT.unpack_from(payload), [memoryview(payload)[packets.SEGMENT.size:]])


def test_segments_fit_the_mtu_and_reassemble():
    data = bytes(range(256)) * 250
    payloads = wire(packets.segments(memoryview(data), 1472, 7))
    assert all(len(payload) <= 1472 for payload in payloads) and all(payload[0] >> 4 == 1 for payload in payloads)
    assert all(len(payload) == 1472 for payload in payloads[:-1])
    reassembler = packets.Reassembler()
    results = [add_one(reassembler, '198.18.0.12', payload) for payload in reversed(payloads)]
    assert results[:-1] == [('wait',)] * (len(payloads) - 1)
    assert results[-1][0] == 'done' and b''.join(results[-1][1]) == data
    assert not reassembler.pending


def test_reassembly_keeps_senders_and_ids_apart_and_gives_up_the_oldest():
    reassembler = packets.Reassembler(limit=2)
    first = wire(packets.segments(memoryview(bytes(3000)), 1472, 1))
    assert add_one(reassembler, '198.18.0.12', first[0]) == ('wait',)
    assert add_one(reassembler, '198.18.0.13', first[1]) == ('wait',)
    assert add_one(reassembler, '198.18.0.12', first[0]) == ('drop', 'bad_segment')  # duplicate
    assert add_one(reassembler, '198.18.0.14', first[0]) == ('wait',)
    assert reassembler.evicted == 1 and len(reassembler.pending) == 2


@pytest.mark.parametrize('segment', [packets.SEGMENT.pack(0x10, 0, 1, 0, 1) + b'x', packets.SEGMENT.pack(0x10, 3, 3, 0, 1) + b'x',
                                     packets.SEGMENT.pack(0x11, 0, 3, 0, 1) + b'x', packets.SEGMENT.pack(0x10, 0, 3, 9, 1) + b'x',
                                     packets.SEGMENT.pack(0x10, 0, 3, 0, 1)])
def test_bad_segments(segment):
    assert add_one(packets.Reassembler(), '198.18.0.12', segment) == ('drop', 'bad_segment')


class Recorder(object):
    """A Daemon without a device: what it would write is recorded."""

    def __init__(self, config=None):
        self.daemon = udp.Daemon('/nonexistent', udp.load_config_dict(dict(CONFIG, **(config or {}))))
        self.counters = self.daemon.new_counters()
        self.written = []
        self.daemon.write = self.write
        self.reassembler = packets.Reassembler(limit=4)

    def write(self, dummy, data, size, counters):
        data = b''.join(bytes(piece) for piece in data) if isinstance(data, list) else bytes(data)
        assert len(data) == size
        self.written.append(data)
        counters['tun_tx_packets'] += 1

    def receive(self, payloads, sender='198.18.0.12', seg_size=None):
        """payloads as one read: coalesced by GRO when there are several."""
        seg_size = seg_size or max(map(len, payloads))
        assert all(len(payload) == seg_size for payload in payloads[:-1])
        buf = bytearray(packets.VNET_LEN) + bytearray(b''.join(payloads))
        self.daemon.receive(memoryview(buf), packets.VNET_LEN, len(buf), seg_size, sender, self.reassembler, self.counters)


def super_packet():
    vnet = packets.VNET.pack(packets.VNET_F_NEEDS_CSUM, packets.GSO_TCPV4, 52, 1420, 20, 16)
    return vnet + ipv4('10.244.2.5', '10.244.1.5', proto=6, payload=bytes(range(256)) * 254)  # 45 segments


@pytest.mark.parametrize('split', [None, 44, 1, 20])
def test_receive_reassembles_a_super_packet_in_any_batching(split):
    data = super_packet()
    payloads = wire(packets.segments(memoryview(data), 1472, 9))
    recorder = Recorder()
    if split is None:
        recorder.receive(payloads)
    else:
        for first in range(0, len(payloads), split):
            recorder.receive(payloads[first:first + split], seg_size=1472)
    assert recorder.written == [data]
    assert recorder.counters['reassembled_rx'] == 1 and recorder.counters['udp_rx_packets'] == len(payloads)


def test_receive_batch_of_plain_packets_and_segments():
    small = ipv4('10.244.2.5', '10.244.1.5', payload=bytes(1472 - 20))
    data = super_packet()
    payloads = [small, small] + wire(packets.segments(memoryview(data), 1472, 3))
    recorder = Recorder()
    recorder.receive(payloads)
    assert recorder.written == [packets.VNET_ZERO + small, packets.VNET_ZERO + small, data]


def test_receive_from_a_non_peer_counts_every_datagram():
    recorder = Recorder()
    payloads = wire(packets.segments(memoryview(super_packet()), 1472, 3))
    recorder.receive(payloads, sender='198.18.0.99')
    assert recorder.written == [] and recorder.counters['drop_not_peer'] == len(payloads) == 45


def test_receive_lies_in_segment_headers():
    data = super_packet()
    payloads = wire(packets.segments(memoryview(data), 1472, 3))
    payloads[-1] = payloads[-1][:4] + b'\0\0\0\4' + payloads[-1][8:]  # last segment of another packet
    recorder = Recorder()
    recorder.receive(payloads)
    assert recorder.written == [] and len(recorder.reassembler.pending) == 2


@settings(max_examples=300)
@given(st.lists(st.binary(min_size=1, max_size=60), min_size=1, max_size=12), st.integers(1, 64))
def test_receive_garbage_batches_never_raise(payloads, seg_size):
    recorder = Recorder()
    stream = b''.join(b'\x10' + payload if index % 2 else payload for index, payload in enumerate(payloads))
    buf = bytearray(packets.VNET_LEN) + bytearray(stream)
    recorder.daemon.receive(memoryview(buf), packets.VNET_LEN, len(buf), seg_size, '198.18.0.12', recorder.reassembler, recorder.counters)
    assert recorder.counters['udp_rx_packets'] == -(-len(stream) // seg_size)
    assert len(recorder.reassembler.pending) <= 4


# ---- garbage never raises ----

@settings(max_examples=400)
@given(st.binary(max_size=200), st.sampled_from(['198.18.0.12', '198.18.0.13', '198.18.0.99']), st.booleans())
def test_inbound_garbage_never_raises(payload, sender, offload):
    plane = packets.Dataplane(dict(CONFIG, offload=offload))
    verdict = plane.inbound(payload, len(payload), sender)
    assert verdict[0] in ('plain', 'vnet', 'drop')
    verdict = plane.inbound(memoryview(payload)[:5], len(payload), sender)  # a head shorter than the headers
    assert verdict[0] in ('plain', 'vnet', 'drop')


@settings(max_examples=400)
@given(st.binary(max_size=200), st.booleans())
def test_outbound_garbage_never_raises(payload, offload):
    plane = packets.Dataplane(dict(CONFIG, offload=offload))
    off = OFF if offload else 0
    buf = bytearray(off) + bytearray(payload)
    verdict = plane.outbound(buf, off, len(buf))
    assert verdict[0] in ('send', 'drop', 'icmp_or_drop')


@given(st.binary(min_size=20, max_size=80).map(lambda raw: b'\x45' + raw[1:]), st.integers(0, 255))
def test_icmp_error_on_garbage_is_well_formed(packet, icmp_type):
    icmp = packets.icmp_error(packet, bytes([10, 244, 1, 0]), icmp_type, 0)
    if icmp is not None:
        assert packets.checksum(icmp[:20]) == 0 and packets.checksum(icmp[20:]) == 0
        assert len(icmp) == 20 + 8 + 28


# ---- configuration ----

def test_config_defaults_and_checks(tmp_path):
    path = tmp_path / 'udp.json'
    path.write_text(json.dumps({'address': '10.244.1.0', 'subnet': '10.244.1.0/24', 'network': '10.244.0.0/16', 'local': '198.18.0.11'}))
    config = udp.load_config(str(path))
    assert (config['device'], config['port'], config['mtu'], config['peers'], config['offload']) == ('mesh-udp', 8285, 1472, [], True)


@pytest.mark.parametrize('change', [
    {'subnet': '10.245.1.0/24'},
    {'address': '10.244.9.0'},
    {'local': None},
    {'peers': [{'subnet': '10.244.2.0/24', 'underlay': 'fd00::1'}]},
    {'peers': [{'subnet': 'nonsense', 'underlay': '198.18.0.12'}]},
    {'device': 'a-very-long-device-name'},
])
def test_config_errors(tmp_path, change):
    config = dict(CONFIG, **change)
    config = {key: value for key, value in config.items() if value is not None}
    path = tmp_path / 'udp.json'
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError):
        udp.load_config(str(path))


def test_check_option(tmp_path, capsys):
    path = tmp_path / 'udp.json'
    path.write_text(json.dumps(CONFIG))
    assert udp.main(['--check', str(path)]) == 0
    assert '3 peers' in capsys.readouterr().out
    path.write_text('[1, 2')
    assert udp.main(['--check', str(path)]) == 2
