# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The UDP backend's packets: its wire format (plain IPv4, virtio_net_hdr + IPv4, segments) and the
pure packet logic of the daemon (udp_daemon.py beside this file): the peer table, TTL and checksum,
ICMP errors, segmentation and reassembly. Python 3.8+ standard library only, unit-tested without root.
The daemon runs as a script too (tests, benchmarks): this file is then the one beside it.
"""

import collections
import ipaddress
import struct

# ---- wire format -----------------------------------------------------------------------------

# A datagram larger than the underlay MTU (an offloaded TCP super-packet) travels as segments,
# sent in one go with UDP GSO: marker 0x10 (first nibble 1), index, count, 0, packet id.
SEGMENT = struct.Struct('!BBBBI')
SEGMENT_MARK = 0x10

VNET = struct.Struct('=BBHHHH')  # flags, gso_type, hdr_len, gso_size, csum_start, csum_offset
VNET_LEN = VNET.size  # 10
VNET_ZERO = bytes(VNET_LEN)
VNET_F_NEEDS_CSUM = 1
VNET_F_DATA_VALID = 2
GSO_NONE, GSO_TCPV4, GSO_ECN = 0, 1, 0x80

ICMP_UNREACH, ICMP_NET_UNREACH = 3, 0
ICMP_TIME_EXCEEDED, ICMP_TTL_EXCEEDED = 11, 0
ICMP_ERROR_TYPES = frozenset((3, 4, 5, 11, 12))  # never answer an error with an error


# ---- packet logic (pure functions, unit-tested) ---------------------------------------------

def checksum(data):
    """The Internet checksum (RFC 1071) of data."""
    if len(data) % 2:
        data = bytes(data) + b'\0'
    total = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def decrement_ttl(buf, off):
    """Decrement the TTL of the IPv4 header at buf[off:] in place, fixing its checksum the
    RFC 1624 way (HC' = ~(~HC + ~m + m')). Returns False, changing nothing, when TTL <= 1."""
    ttl = buf[off + 8]
    if ttl <= 1:
        return False
    old = (ttl << 8) | buf[off + 9]
    new = old - 0x100
    total = (~(buf[off + 10] << 8 | buf[off + 11]) & 0xFFFF) + (~old & 0xFFFF) + new
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    csum = ~total & 0xFFFF
    buf[off + 8] = ttl - 1
    buf[off + 10] = csum >> 8
    buf[off + 11] = csum & 0xFF
    return True


def icmp_error(packet, source, icmp_type, code):
    """An ICMP error (type, code) from source (4 bytes) about the IPv4 packet, or None when
    RFC 1812 forbids one: the packet is an ICMP error, a later fragment, or from an address that
    cannot be answered (0/8, multicast, broadcast)."""
    if len(packet) < 20:
        return None
    ihl = (packet[0] & 0x0F) * 4
    if ihl < 20 or len(packet) < ihl:
        return None
    if struct.unpack_from('!H', packet, 6)[0] & 0x1FFF:
        return None
    if packet[9] == 1 and len(packet) >= ihl + 1 and packet[ihl] in ICMP_ERROR_TYPES:
        return None
    dest = bytes(packet[12:16])
    if dest[0] == 0 or dest[0] >= 224:
        return None
    quoted = bytes(packet[:ihl + 8])
    body = struct.pack('!BBHI', icmp_type, code, 0, 0) + quoted
    body = body[:2] + struct.pack('!H', checksum(body)) + body[4:]
    header = struct.pack('!BBHHHBBH4s4s', 0x45, 0xC0, 20 + len(body), 0, 0, 64, 1, 0, source, dest)
    header = header[:10] + struct.pack('!H', checksum(header)) + header[12:]
    return header + body


def ip_to_int(address):
    return int(ipaddress.IPv4Address(address))


class PeerTable(object):
    """Peers from the configuration: destination subnet -> (underlay, port), and the reverse map
    underlay address -> subnet that datagrams from it may carry as source."""

    def __init__(self, peers, port, own_subnet=None):
        self.routes = {}  # prefixlen -> {network int: (underlay, port)}
        self.sources = {}  # normalised underlay address -> (network int, mask int)
        for peer in peers:
            net = ipaddress.IPv4Network(peer['subnet'], strict=False)
            if own_subnet is not None and net.overlaps(own_subnet):
                continue  # ourselves (the role may list every host)
            underlay = str(ipaddress.ip_address(peer['underlay']))
            mask = int(net.netmask)
            self.routes.setdefault(net.prefixlen, {})[int(net.network_address)] = (underlay, int(peer.get('port', port)))
            self.sources[underlay] = (int(net.network_address), mask)
        self.order = [(prefixlen, ((1 << 32) - 1) ^ ((1 << (32 - prefixlen)) - 1), self.routes[prefixlen])
                      for prefixlen in sorted(self.routes, reverse=True)]

    def __len__(self):
        return len(self.sources)

    def lookup(self, dst):
        """Longest-prefix match of the destination (int) -> (underlay, port) or None."""
        for dummy, mask, table in self.order:
            found = table.get(dst & mask)
            if found is not None:
                return found
        return None


class Dataplane(object):
    """Packet decisions for one host: what to do with a packet from the device (outbound) and
    with a datagram from the underlay (inbound). No I/O, so it is tested without root."""

    def __init__(self, config):
        self.subnet = ipaddress.IPv4Network(config['subnet'], strict=False)
        self.address = ipaddress.IPv4Address(config['address'])
        self.address_bytes = self.address.packed
        self.subnet_net = int(self.subnet.network_address)
        self.subnet_mask = int(self.subnet.netmask)
        self.offload = bool(config.get('offload', True))
        self.table = PeerTable(config.get('peers', []), int(config['port']), self.subnet)

    def set_peers(self, peers, port):
        self.table = PeerTable(peers, port, self.subnet)  # one reference swap: threads see old or new

    def outbound(self, buf, off, end):
        """buf[off:end] is an IPv4 packet read from the device (buf[off - 10:off] its
        virtio_net_hdr when offload is on). Returns ('send', start, (underlay, port)): send
        buf[start:end]; ('icmp_or_drop', reason, ICMP error or None): count the drop and write
        the error back to the device; ('drop', reason)."""
        size = end - off
        if size < 20 or buf[off] >> 4 != 4:
            return ('drop', 'not_ipv4')
        dst = int.from_bytes(buf[off + 16:off + 20], 'big')
        if dst & self.subnet_mask == self.subnet_net:
            return ('drop', 'loop')  # our own subnet belongs to the bridge, never to the tunnel
        peer = self.table.lookup(dst)
        if peer is None:
            return ('icmp_or_drop', 'no_route', icmp_error(buf[off:min(end, off + 68)], self.address_bytes, ICMP_UNREACH, ICMP_NET_UNREACH))
        if not decrement_ttl(buf, off):
            return ('icmp_or_drop', 'ttl_expired', icmp_error(buf[off:min(end, off + 68)], self.address_bytes, ICMP_TIME_EXCEEDED, ICMP_TTL_EXCEEDED))
        start = off
        if self.offload and (buf[off - VNET_LEN] or buf[off - VNET_LEN + 1]):
            start = off - VNET_LEN  # checksum or segmentation pending: carry the header
        return ('send', start, peer)

    def inbound(self, head, size, sender):
        """A datagram of size bytes from underlay address sender (normalised string); head holds
        at least its first bytes (a reassembled packet is checked on its first segment). Returns
        ('plain',): an IPv4 packet, ('vnet',): virtio_net_hdr + IPv4 packet, or ('drop', reason)."""
        source = self.table.sources.get(sender)
        if source is None:
            return ('drop', 'not_peer')
        if size < 1 or len(head) < 1:
            return ('drop', 'malformed')
        if head[0] >> 4 == 4:
            kind, pkt = 'plain', 0
        elif head[0] >> 4 == 0 and size >= VNET_LEN + 20 and len(head) >= VNET_LEN:
            if not self.offload:
                return ('drop', 'bad_vnet_header')
            flags, gso_type, dummy, gso_size, csum_start, csum_offset = VNET.unpack_from(head, 0)
            if flags & ~(VNET_F_NEEDS_CSUM | VNET_F_DATA_VALID) or gso_type & ~GSO_ECN not in (GSO_NONE, GSO_TCPV4):
                return ('drop', 'bad_vnet_header')
            if (gso_type != GSO_NONE and gso_size == 0) or (flags & VNET_F_NEEDS_CSUM and csum_start + csum_offset + 2 > size - VNET_LEN):
                return ('drop', 'bad_vnet_header')
            kind, pkt = 'vnet', VNET_LEN
        else:
            return ('drop', 'not_ipv4')
        if size - pkt < 20 or len(head) < pkt + 20 or head[pkt] >> 4 != 4:
            return ('drop', 'not_ipv4')
        ihl = (head[pkt] & 0x0F) * 4
        total = head[pkt + 2] << 8 | head[pkt + 3]
        if ihl < 20 or total != size - pkt or total < ihl:
            return ('drop', 'malformed')
        src = int.from_bytes(head[pkt + 12:pkt + 16], 'big')
        if src & source[1] != source[0]:
            return ('drop', 'spoofed_source')
        dst = int.from_bytes(head[pkt + 16:pkt + 20], 'big')
        if dst & self.subnet_mask != self.subnet_net:
            return ('drop', 'not_local')
        return (kind,)


def segments(data, seg_size, packet_id):
    """Cut data (a datagram too large for the underlay MTU) into UDP payloads of at most
    seg_size bytes, each an 8-byte segment header + a chunk: an iovec list (header, chunk, ...)."""
    chunk = seg_size - SEGMENT.size
    count = -(-len(data) // chunk)
    iov = [b''] * (2 * count)
    pack = SEGMENT.pack
    iov[0::2] = [pack(SEGMENT_MARK, index, count, 0, packet_id) for index in range(count)]
    iov[1::2] = [data[start:start + chunk] for start in range(0, len(data), chunk)]
    return iov


class Reassembler(object):
    """Puts segmented datagrams back together. Segments come in runs: the consecutive segments
    of one packet that one read returned (a UDP GSO send arrives whole when nothing on the way
    splits it, and GRO coalesces consecutive ones). A packet complete in one run goes to the
    device without a copy; otherwise its runs wait, copied, keyed by (sender, packet id). At
    most `limit` packets wait; the oldest is given up when a new one arrives (a segment was lost)."""

    def __init__(self, limit=64):
        self.limit = limit
        self.pending = collections.OrderedDict()  # (sender, id) -> [count, covered bitmask, {first index: bytes}]
        self.evicted = 0

    def add(self, sender, header, chunks):
        """header: the segment header of the run's first segment (unpacked); chunks: the payloads
        after the headers. Returns ('done', pieces to write in order), ('wait',) or ('drop', reason)."""
        mark, index, count, reserved, packet_id = header
        if mark != SEGMENT_MARK or reserved or count < 2 or index + len(chunks) > count or not chunks[0] or not chunks[-1]:
            return ('drop', 'bad_segment')
        if index == 0 and len(chunks) == count:
            return ('done', chunks)
        key = (sender, packet_id)
        entry = self.pending.get(key)
        if entry is None:
            if len(self.pending) >= self.limit:
                self.pending.popitem(last=False)
                self.evicted += 1
            entry = self.pending[key] = [count, 0, {}]
        bits = ((1 << len(chunks)) - 1) << index
        if entry[0] != count or entry[1] & bits:
            return ('drop', 'bad_segment')
        entry[1] |= bits
        entry[2][index] = b''.join(chunks)
        if entry[1] != (1 << count) - 1:
            return ('wait',)
        del self.pending[key]
        return ('done', [entry[2][first] for first in sorted(entry[2])])
