# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Minimal ICMP/ICMPv6 echo ("ping") for machines without iputils: icmp_ping.py ADDRESS [COUNT].

Prints "N/M replies" and exits 0 when every echo was answered. Needs root (raw socket).
"""

from __future__ import annotations

import os
import select
import socket
import struct
import sys
import time


def checksum(data):
    if len(data) % 2:
        data += b'\0'
    total = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xffff)
    total += total >> 16
    return ~total & 0xffff


def ping(address, count=3, timeout=2.0):
    family = socket.AF_INET6 if ':' in address else socket.AF_INET
    proto = socket.IPPROTO_ICMPV6 if family == socket.AF_INET6 else socket.IPPROTO_ICMP
    echo_request, echo_reply = (128, 129) if family == socket.AF_INET6 else (8, 0)
    ident = os.getpid() & 0xffff
    replies = 0
    with socket.socket(family, socket.SOCK_RAW, proto) as sock:
        for seq in range(1, count + 1):
            payload = b'overlay.mesh' * 4
            header = struct.pack('!BBHHH', echo_request, 0, 0, ident, seq)
            csum = 0 if family == socket.AF_INET6 else checksum(header + payload)  # the kernel fills ICMPv6's
            sock.sendto(struct.pack('!BBHHH', echo_request, 0, csum, ident, seq) + payload, (address, 0))
            deadline = time.time() + timeout
            while time.time() < deadline:
                ready, _w, _x = select.select([sock], [], [], deadline - time.time())
                if not ready:
                    break
                data, _peer = sock.recvfrom(2048)
                offset = (data[0] & 0x0f) * 4 if family == socket.AF_INET else 0
                rtype, _code, _csum, rid, rseq = struct.unpack_from('!BBHHH', data, offset)
                if rtype == echo_reply and rid == ident and rseq == seq:
                    replies += 1
                    break
    return replies


if __name__ == '__main__':
    wanted = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    got = ping(sys.argv[1], wanted)
    print('%d/%d replies from %s' % (got, wanted, sys.argv[1]))
    sys.exit(0 if got == wanted else 1)
