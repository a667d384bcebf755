# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Send VXLAN packets to a lab host: an Ethernet frame for its VTEP holding an ICMP echo request.

    vxlan_inject.py UNDERLAY PORT VNI VTEP_MAC INNER_DESTINATION COUNT
"""

import socket
import struct
import sys


def checksum(data):
    if len(data) % 2:
        data += b'\0'
    total = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def frame(vni, vtep_mac, destination, sequence):
    icmp = struct.pack('!BBHHH', 8, 0, 0, 0x4242, sequence) + b'overlay.mesh injection'
    icmp = icmp[:2] + struct.pack('!H', checksum(icmp)) + icmp[4:]
    source = socket.inet_aton('10.244.250.250')
    header = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(icmp), sequence, 0, 64, 1, 0, source, socket.inet_aton(destination))
    header = header[:10] + struct.pack('!H', checksum(header)) + header[12:]
    ethernet = bytes.fromhex(vtep_mac.replace(':', '')) + bytes.fromhex('02aabbccddee') + b'\x08\x00'
    return struct.pack('!II', 0x08000000, vni << 8) + ethernet + header + icmp


def main(argv):
    underlay, port, vni, vtep_mac, destination, count = argv[1:7]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for sequence in range(int(count)):
            sock.sendto(frame(int(vni), vtep_mac, destination, sequence), (underlay, int(port)))
    print('sent %s VXLAN packets to %s:%s' % (count, underlay, port))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
