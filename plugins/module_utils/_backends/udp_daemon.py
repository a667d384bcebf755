# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""overlay.mesh UDP backend: flannel's userspace TUN encapsulation, with TCP offloads.

    /usr/lib/overlay-mesh/overlay-mesh-udp /etc/overlay-mesh/udp.json          # run (systemd: Type=notify)
    /usr/lib/overlay-mesh/overlay-mesh-udp --check /etc/overlay-mesh/udp.json  # check the configuration

The node apply (overlay.mesh.node, backend "udp", see udp.py beside this file) installs it with
the rest of the engine under /usr/lib/overlay-mesh and runs it as overlay-mesh-udp.service.

Python 3.8+ standard library only. One TUN device (IFF_TUN | IFF_NO_PI) carries the subnet's
network address as /32 and a route for the whole overlay network. Every packet read from it goes,
as one UDP datagram, to the underlay address of the peer whose subnet holds the destination;
every datagram from a peer is written back to the device. Unknown destination: ICMP net
unreachable; TTL 1: ICMP time exceeded; otherwise TTL - 1 with an incremental header checksum.

Speed: with "offload" (default) the device is opened with IFF_VNET_HDR and TUNSETOFFLOAD
(CSUM, TSO4, TSO6): the kernel hands over TCP super-packets of up to 64 KB and accepts them back,
so one read moves 64 KB. Such a packet leaves as MTU-sized segments in one sendmsg with UDP GSO
(UDP_SEGMENT); the receiver reads them in one go when they arrive together (UDP_GRO) and writes
them to the device with one writev. Without UDP GSO ("udp_gso": false, or an old kernel) it
travels as one IP-fragmented datagram. Reading the device and reading the socket run in two
threads (the system calls release the GIL).

Wire format: a datagram is a plain IPv4 packet (flannel's format; first nibble 4), or a 10-byte
virtio_net_hdr + the IPv4 packet (first nibble 0) when a checksum or segmentation is pending, or
a segment (first nibble 1): 8-byte header (0x10, index, count, 0, packet id) + a piece of one of
the former. With "offload": false only plain packets are sent (flannel-compatible).

Signals: HUP rereads the configuration and swaps the peer table (the device stays), USR1 writes
and logs the counters, TERM/INT remove the route and the device and exit. Counters are also
written every "stats_interval" seconds to "stats_file" (default /run/overlay-mesh/udp-stats.json).
"""

import argparse
import errno
import fcntl
import ipaddress
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

try:
    from ansible_collections.overlay.mesh.plugins.module_utils._backends.udp_packets import (
        Dataplane, Reassembler, SEGMENT, VNET_LEN, VNET_ZERO, segments)
except ImportError:  # run as a script (tests, benchmarks): udp_packets.py beside this file
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from udp_packets import (  # pylint: disable=import-error
        Dataplane, Reassembler, SEGMENT, VNET_LEN, VNET_ZERO, segments)

# ---- kernel interface ----------------------------------------------------------------------

TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_TSO_ECN = 0x01, 0x02, 0x04, 0x08
SO_RCVBUFFORCE, SO_SNDBUFFORCE = 33, 32
SOL_UDP, UDP_SEGMENT, UDP_GRO = 17, 103, 104
MAX_DATAGRAM = 65507  # largest UDP payload over IPv4
BUFFER_SIZE = 65536 + VNET_LEN
SOCKET_BUFFER = 8 << 20

DEFAULT_DEVICE = 'mesh-udp'
DEFAULT_PORT = 8285  # flannel's udp port
# Outer IPv4 header 20 + UDP 8 (an IPv6 outer header is 20 more); no inner Ethernet header.
OVERHEAD = {4: 28, 6: 48}
# What a reload (SIGHUP) cannot change: a new value needs a restart.
RESTART_KEYS = ('device', 'address', 'subnet', 'network', 'mtu', 'port', 'local', 'offload', 'udp_gso')
DEFAULTS = {'device': DEFAULT_DEVICE, 'port': DEFAULT_PORT, 'offload': True, 'udp_gso': True, 'stats_file': '/run/overlay-mesh/udp-stats.json',
            'stats_interval': 10}

# Counter names: the operator's view (docs/udp.md).
COUNTERS = ('tun_rx_packets', 'tun_rx_bytes', 'udp_tx_packets', 'udp_tx_bytes',
            'udp_rx_reads', 'udp_rx_packets', 'udp_rx_bytes', 'tun_tx_packets', 'tun_tx_bytes', 'icmp_sent', 'segmented_tx', 'reassembled_rx')
DROPS = ('no_route', 'ttl_expired', 'not_ipv4', 'malformed', 'oversize', 'loop', 'not_peer', 'spoofed_source',
         'not_local', 'bad_vnet_header', 'bad_segment', 'reassembly_lost', 'send_error', 'tun_write_error', 'internal_error')


def log(message):
    sys.stderr.write('overlay-mesh-udp: %s\n' % message)
    sys.stderr.flush()


# ---- configuration ---------------------------------------------------------------------------

def load_config(path):
    """Read and check the JSON configuration file; raise ValueError naming what is wrong."""
    with open(path) as handle:
        try:
            raw = json.load(handle)
        except ValueError as exc:
            raise ValueError('%s: not JSON: %s' % (path, exc))
    return load_config_dict(raw, path)


def load_config_dict(raw, path='configuration'):
    """The configuration with defaults filled in; raise ValueError naming what is wrong."""
    if not isinstance(raw, dict):
        raise ValueError('%s: not a JSON object' % path)
    config = dict(DEFAULTS)
    config.update(raw)
    for key in ('address', 'subnet', 'network', 'local'):
        if key not in config:
            raise ValueError('%s: %r is required' % (path, key))
    try:
        subnet = ipaddress.IPv4Network(config['subnet'], strict=False)
        network = ipaddress.IPv4Network(config['network'], strict=False)
        address = ipaddress.IPv4Address(config['address'])
        local = ipaddress.ip_address(config['local'])
        if not subnet.subnet_of(network) or address not in subnet:
            raise ValueError('subnet %s must be inside network %s and hold address %s' % (subnet, network, address))
        config['mtu'] = int(config.get('mtu') or 1500 - OVERHEAD[local.version])
        config['port'] = int(config['port'])
        peers = config.get('peers') or []
        for peer in peers:
            ipaddress.IPv4Network(peer['subnet'], strict=False)
            if ipaddress.ip_address(peer['underlay']).version != local.version:
                raise ValueError('peer %s: underlay %s is not of the family of local %s' % (peer['subnet'], peer['underlay'], local))
        config['peers'] = peers
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError('%s: %s' % (path, exc))
    if not 1 <= len(config['device']) <= 15:
        raise ValueError('%s: device name %r must have 1 to 15 characters' % (path, config['device']))
    return config


# ---- the daemon -------------------------------------------------------------------------------

def ip(*args, check=True):
    proc = subprocess.run(('ip',) + args, capture_output=True, text=True, check=False)
    if check and proc.returncode:
        raise RuntimeError('ip %s: %s' % (' '.join(args), proc.stderr.strip()))
    return proc


def sd_notify(message):
    """systemd's notification protocol (Type=notify), without libsystemd."""
    target = os.environ.get('NOTIFY_SOCKET')
    if not target:
        return
    if target.startswith('@'):
        target = '\0' + target[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(message.encode(), target)
        except OSError as exc:
            log('sd_notify: %s' % exc)


class Daemon(object):

    def __init__(self, config_path, config):
        self.config_path = config_path
        self.config = config
        self.dataplane = Dataplane(config)
        self.counters = []  # one dict per thread, summed when reported
        self.started = time.time()
        self.tun = None
        self.stopping = False
        self.udp_gso = bool(config['udp_gso'])
        self.sock = None

    # -- setup / teardown --
    def open_tun(self):
        name = self.config['device']
        flags = IFF_TUN | IFF_NO_PI | (IFF_VNET_HDR if self.config['offload'] else 0)
        fd = os.open('/dev/net/tun', os.O_RDWR | os.O_CLOEXEC)
        try:
            fcntl.ioctl(fd, TUNSETIFF, struct.pack('16sH', name.encode(), flags))
            if self.config['offload']:
                fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN)
        except OSError:
            os.close(fd)
            raise
        self.tun = fd
        try:
            with open('/proc/sys/net/ipv6/conf/%s/disable_ipv6' % name, 'w') as handle:
                handle.write('1\n')  # the overlay is IPv4: no router solicitations into the tunnel
        except OSError as exc:
            log('cannot disable IPv6 on %s (%s): IPv6 packets from the device are dropped and counted' % (name, exc))
        ip('link', 'set', 'dev', name, 'mtu', str(self.config['mtu']))
        ip('address', 'replace', '%s/32' % self.config['address'], 'dev', name)
        ip('link', 'set', 'dev', name, 'up')
        ip('route', 'replace', str(ipaddress.IPv4Network(self.config['network'], strict=False)), 'dev', name)

    def open_socket(self):
        local = ipaddress.ip_address(self.config['local'])
        family = socket.AF_INET if local.version == 4 else socket.AF_INET6
        sock = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        for option, fallback, size in ((SO_RCVBUFFORCE, socket.SO_RCVBUF, SOCKET_BUFFER), (SO_SNDBUFFORCE, socket.SO_SNDBUF, SOCKET_BUFFER)):
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, size)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, fallback, size)
        try:
            sock.setsockopt(SOL_UDP, UDP_GRO, 1)  # take datagrams coalesced by GRO (or never split) as one read
        except OSError:
            pass
        if self.udp_gso:
            try:
                sock.getsockopt(SOL_UDP, UDP_SEGMENT)
            except OSError:
                log('this kernel has no UDP GSO: large datagrams travel as IP fragments')
                self.udp_gso = False
        sock.bind((str(local), self.config['port']))
        self.sock = sock

    def teardown(self):
        self.stopping = True
        name = self.config['device']
        ip('route', 'del', str(ipaddress.IPv4Network(self.config['network'], strict=False)), 'dev', name, check=False)
        ip('link', 'del', 'dev', name, check=False)
        if self.tun is not None:
            os.close(self.tun)
        if self.sock is not None:
            self.sock.close()

    # -- data path: one thread per direction --
    def new_counters(self):
        counters = dict.fromkeys(COUNTERS + tuple('drop_' + reason for reason in DROPS), 0)
        self.counters.append(counters)
        return counters

    def tun_to_udp(self):
        counters = self.new_counters()
        buf = bytearray(BUFFER_SIZE)
        view = memoryview(buf)
        off = VNET_LEN if self.config['offload'] else 0
        readv, sendto, sendmsg, tun = os.readv, self.sock.sendto, self.sock.sendmsg, self.tun
        dataplane = self.dataplane
        seg_size = self.config['mtu']  # one segment = one underlay packet (overlay MTU = underlay - 28)
        per_send = MAX_DATAGRAM // seg_size  # UDP GSO: one sendmsg carries at most 64 KB
        gso = [(SOL_UDP, UDP_SEGMENT, struct.pack('=H', seg_size))]
        packet_id = 0
        while True:
            try:
                end = readv(tun, [buf])
            except OSError as exc:
                if exc.errno in (errno.EINTR, errno.EAGAIN):
                    continue
                if not self.stopping:
                    log('reading %s: %s; data path from the device stops' % (self.config['device'], exc))
                return
            counters['tun_rx_packets'] += 1
            counters['tun_rx_bytes'] += end - off
            try:
                verdict = dataplane.outbound(buf, off, end)
                if verdict[0] == 'send':
                    start, peer = verdict[1], verdict[2]
                    if end - start <= seg_size or not self.udp_gso:
                        sent = sendto(view[start:end], peer)  # larger than the MTU without UDP GSO: IP fragments
                        counters['udp_tx_packets'] += 1
                        counters['udp_tx_bytes'] += sent
                        continue
                    packet_id = (packet_id + 1) & 0xFFFFFFFF
                    iov = segments(view[start:end], seg_size, packet_id)
                    for first in range(0, len(iov), 2 * per_send):
                        part = iov[first:first + 2 * per_send]
                        counters['udp_tx_bytes'] += sendmsg(part, gso if len(part) > 2 else [], 0, peer)
                        counters['udp_tx_packets'] += len(part) // 2
                    counters['segmented_tx'] += 1
                    continue
                counters['drop_' + verdict[1]] += 1
                if verdict[0] == 'icmp_or_drop' and verdict[2] is not None:
                    os.write(tun, VNET_ZERO + verdict[2] if off else verdict[2])
                    counters['icmp_sent'] += 1
            except OSError:
                counters['drop_send_error'] += 1
            except Exception as exc:  # pylint: disable=broad-except
                counters['drop_internal_error'] += 1
                log('internal error on a packet from the device: %r' % exc)

    def udp_to_tun(self):
        counters = self.new_counters()
        buf = bytearray(BUFFER_SIZE + VNET_LEN)
        view = memoryview(buf)
        into = [view[VNET_LEN:]]
        recvmsg_into = self.sock.recvmsg_into
        ancillary = socket.CMSG_SPACE(4)
        reassembler = Reassembler()
        while True:
            try:
                size, ancdata, flags, sender = recvmsg_into(into, ancillary)
            except OSError as exc:
                if exc.errno in (errno.EINTR, errno.EAGAIN, errno.ECONNREFUSED):
                    continue
                if not self.stopping:
                    log('reading the socket: %s; data path to the device stops' % exc)
                return
            counters['udp_rx_reads'] += 1
            try:
                if flags & socket.MSG_TRUNC or not size:
                    counters['udp_rx_packets'] += 1
                    counters['drop_oversize' if size else 'drop_malformed'] += 1
                    continue
                seg_size = size
                for level, kind, data in ancdata:
                    if level == SOL_UDP and kind == UDP_GRO and len(data) >= 4:
                        seg_size = struct.unpack('=i', data[:4])[0] or size  # several datagrams coalesced by GRO
                self.receive(view, VNET_LEN, VNET_LEN + size, max(1, seg_size), sender[0], reassembler, counters)
            except Exception as exc:  # pylint: disable=broad-except
                counters['drop_internal_error'] += 1
                log('internal error on a datagram from %s: %r' % (sender[0], exc))

    def receive(self, view, off, end, seg_size, sender, reassembler, counters):
        """What one read returned, view[off:end]: one datagram, or several of seg_size bytes
        (the last may be shorter). view[off - 10:off] may be overwritten."""
        starts = range(off, end, seg_size)
        counters['udp_rx_packets'] += len(starts)
        counters['udp_rx_bytes'] += end - off
        if sender not in self.dataplane.table.sources:
            counters['drop_not_peer'] += len(starts)
            return
        i = 0
        while i < len(starts):
            pos = starts[i]
            stop = min(pos + seg_size, end)
            if view[pos] >> 4 != 1:
                self.deliver(view, pos, stop, sender, counters)
                i += 1
                continue
            if stop - pos <= SEGMENT.size or seg_size <= SEGMENT.size:
                counters['drop_bad_segment'] += 1
                i += 1
                continue
            header = SEGMENT.unpack_from(view, pos)
            run = max(1, min(len(starts) - i, header[2] - header[1]))
            if run > 1:  # the run ends where the packet ends; trust it when its last header says so
                last = starts[i + run - 1]
                if view[last:last + SEGMENT.size] != SEGMENT.pack(header[0], header[1] + run - 1, header[2], header[3], header[4]):
                    run = 1
            last = starts[i + run - 1]
            chunks = [view[start:start + seg_size - SEGMENT.size] for start in range(pos + SEGMENT.size, last, seg_size)]
            chunks.append(view[last + SEGMENT.size:min(last + seg_size, end)])
            i += run
            verdict = reassembler.add(sender, header, chunks)
            counters['drop_reassembly_lost'] = reassembler.evicted
            if verdict[0] == 'done':
                counters['reassembled_rx'] += 1
                self.deliver_pieces(verdict[1], sender, counters)
            elif verdict[0] == 'drop':
                counters['drop_' + verdict[1]] += 1

    def deliver(self, view, off, end, sender, counters):
        verdict = self.dataplane.inbound(view[off:end], end - off, sender)
        if verdict[0] == 'drop':
            counters['drop_' + verdict[1]] += 1
            return
        if verdict[0] == 'plain' and self.config['offload']:
            view[off - VNET_LEN:off] = VNET_ZERO
            off -= VNET_LEN
        self.write(os.write, view[off:end], end - off, counters)

    def deliver_pieces(self, pieces, sender, counters):
        size = sum(map(len, pieces))
        verdict = self.dataplane.inbound(pieces[0], size, sender)
        if verdict[0] == 'drop':
            counters['drop_' + verdict[1]] += 1
            return
        if verdict[0] == 'plain' and self.config['offload']:
            pieces.insert(0, VNET_ZERO)
            size += VNET_LEN
        self.write(os.writev, pieces, size, counters)

    def write(self, write, data, size, counters):
        try:
            write(self.tun, data)
        except OSError:
            counters['drop_tun_write_error'] += 1
            return
        counters['tun_tx_packets'] += 1
        counters['tun_tx_bytes'] += size

    # -- control --
    def stats(self):
        totals = dict.fromkeys(COUNTERS, 0)
        drops = dict.fromkeys(DROPS, 0)
        for counters in list(self.counters):
            for key, value in list(counters.items()):
                if key.startswith('drop_'):
                    drops[key[5:]] += value
                else:
                    totals[key] += value
        return {'device': self.config['device'], 'pid': os.getpid(), 'time': time.time(), 'uptime': round(time.time() - self.started, 1),
                'peers': len(self.dataplane.table), 'offload': self.config['offload'], 'counters': totals, 'drops': drops,
                'drops_total': sum(drops.values())}

    def write_stats(self, announce=False):
        stats = self.stats()
        path = self.config['stats_file']
        if path:
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                tmp = '%s.%d.tmp' % (path, os.getpid())
                with open(tmp, 'w') as handle:
                    json.dump(stats, handle, indent=1, sort_keys=True)
                    handle.write('\n')
                os.replace(tmp, path)
            except OSError as exc:
                log('writing %s: %s' % (path, exc))
        if announce:
            nonzero = ' '.join('%s=%d' % item for item in sorted(stats['drops'].items()) if item[1])
            log('stats: %s drops: %s' % (' '.join('%s=%d' % item for item in sorted(stats['counters'].items())), nonzero or 'none'))

    def reload(self):
        try:
            config = load_config(self.config_path)
        except (OSError, ValueError) as exc:
            log('reload refused, keeping the running configuration: %s' % exc)
            return
        fixed = [key for key in RESTART_KEYS if config[key] != self.config[key]]
        if fixed:
            log('reload: %s changed; they take effect on restart only' % ', '.join(fixed))
        self.dataplane.set_peers(config['peers'], self.config['port'])
        self.config['peers'] = config['peers']
        self.config['stats_interval'] = config['stats_interval']
        log('reload: %d peers' % len(self.dataplane.table))

    def run(self):
        handled = {signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGUSR1}
        signal.pthread_sigmask(signal.SIG_BLOCK, handled)  # threads inherit it; main waits for them
        self.open_tun()
        try:
            self.open_socket()
            threads = [threading.Thread(target=target, name=target.__name__, daemon=True) for target in (self.tun_to_udp, self.udp_to_tun)]
            for thread in threads:
                thread.start()
            log('up: device %s %s/32 mtu %d, route %s, udp %s:%d, %d peers, offload %s' % (
                self.config['device'], self.config['address'], self.config['mtu'], self.config['network'],
                self.config['local'], self.config['port'], len(self.dataplane.table), 'on' if self.config['offload'] else 'off'))
            sd_notify('READY=1\nSTATUS=%d peers' % len(self.dataplane.table))
            written = time.monotonic()
            while True:
                info = signal.sigtimedwait(handled, 1)
                if info is None:
                    if not all(thread.is_alive() for thread in threads):
                        raise RuntimeError('a data path thread stopped (device or socket gone); exiting for a restart')
                    if time.monotonic() - written >= float(self.config['stats_interval']):
                        self.write_stats()
                        written = time.monotonic()
                elif info.si_signo == signal.SIGHUP:
                    sd_notify('RELOADING=1')
                    self.reload()
                    sd_notify('READY=1\nSTATUS=%d peers' % len(self.dataplane.table))
                elif info.si_signo == signal.SIGUSR1:
                    self.write_stats(announce=True)
                else:
                    break
        finally:
            sd_notify('STOPPING=1')
            self.write_stats(announce=True)
            self.teardown()
            log('stopped: route and device %s removed' % self.config['device'])


def main(argv=None):
    parser = argparse.ArgumentParser(description='overlay.mesh UDP backend (flannel udp, with TCP offloads)')
    parser.add_argument('config', help='JSON configuration, e.g. /etc/overlay-mesh/udp.json')
    parser.add_argument('--check', action='store_true', help='check the configuration and exit')
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except (OSError, ValueError) as exc:
        log('configuration: %s' % exc)
        return 2
    if args.check:
        sys.stdout.write('configuration ok: %d peers\n' % len(config['peers']))
        return 0
    try:
        Daemon(args.config, config).run()
    except (OSError, RuntimeError) as exc:
        log('fatal: %s' % exc)
        return 1
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
