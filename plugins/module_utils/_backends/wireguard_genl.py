# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""A kernel WireGuard device over generic netlink, family "wireguard" (include/uapi/linux/wireguard.h),
encoded as wg(8) does rather than with pyroute2: pyroute2 0.7.2 (Debian 12's) has wrong peer flag
values (WGPEER_F_REMOVE_ME=0 ...).  The framing and the socket are the netlink core's
(_netlink_core); the device and change are wireguard_model's.  Standard library only.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket
import struct

from ansible_collections.overlay.mesh.plugins.module_utils._backends.wireguard_model import (
    KEY_LEN, WireGuardError, checked_change, finish_device, new_device, new_peer,
)
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_core import (
    ATTR, HDR, NETLINK_GENERIC, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_MIN_TYPE, NetlinkFailure, NetlinkSocket,
    attr, attr_payloads, nest,
)

GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2

WG_GENL_NAME = 'wireguard'
WG_GENL_VERSION = 1
WG_CMD_GET_DEVICE = 0
WG_CMD_SET_DEVICE = 1

WGDEVICE_A_IFINDEX = 1
WGDEVICE_A_IFNAME = 2
WGDEVICE_A_PRIVATE_KEY = 3
WGDEVICE_A_PUBLIC_KEY = 4
WGDEVICE_A_FLAGS = 5
WGDEVICE_A_LISTEN_PORT = 6
WGDEVICE_A_FWMARK = 7
WGDEVICE_A_PEERS = 8
WGDEVICE_F_REPLACE_PEERS = 1

WGPEER_A_PUBLIC_KEY = 1
WGPEER_A_PRESHARED_KEY = 2
WGPEER_A_FLAGS = 3
WGPEER_A_ENDPOINT = 4
WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL = 5
WGPEER_A_LAST_HANDSHAKE_TIME = 6
WGPEER_A_RX_BYTES = 7
WGPEER_A_TX_BYTES = 8
WGPEER_A_ALLOWEDIPS = 9
WGPEER_A_PROTOCOL_VERSION = 10
WGPEER_F_REMOVE_ME = 1
WGPEER_F_REPLACE_ALLOWEDIPS = 2
WGPEER_F_UPDATE_ONLY = 4

WGALLOWEDIP_A_FAMILY = 1
WGALLOWEDIP_A_IPADDR = 2
WGALLOWEDIP_A_CIDR_MASK = 3

_GENL = struct.Struct('=BBH')   # genlmsghdr: cmd, version, reserved
_HEADERS = HDR.size + _GENL.size
_MAX_NLA = 0xffff               # nla_len is 16 bits: no nest, so no message, may be longer


def _genl_message(family_id, cmd, flags, seq, attrs):
    return HDR.pack(_HEADERS + len(attrs), family_id, flags, seq & 0xffffffff, 0) + _GENL.pack(cmd, WG_GENL_VERSION, 0) + attrs


def _ifname_attr(ifname):
    name = ifname.encode('ascii', 'replace') if isinstance(ifname, str) else b''
    if not 0 < len(name) < 16:
        raise WireGuardError('invalid interface name %r' % (ifname,))
    return attr(WGDEVICE_A_IFNAME, name + b'\0')


def encode_get_device(family_id, seq, ifname):
    """The dump request of WG_CMD_GET_DEVICE for one interface."""
    return _genl_message(family_id, WG_CMD_GET_DEVICE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP, seq, _ifname_attr(ifname))


def _allowed_ip_nest(network):
    family = socket.AF_INET if network.version == 4 else socket.AF_INET6
    return nest(0, attr(WGALLOWEDIP_A_FAMILY, struct.pack('=H', family))
                + attr(WGALLOWEDIP_A_IPADDR, network.network_address.packed)
                + attr(WGALLOWEDIP_A_CIDR_MASK, struct.pack('=B', network.prefixlen)))


def _peer_head(peer, continued):
    """A peer's attributes before its allowed IPs; a continuation carries only the key (wg(8) does the same)."""
    flags = WGPEER_F_REMOVE_ME if peer['remove'] else 0
    head = attr(WGPEER_A_PUBLIC_KEY, peer['public_key'])
    if not continued and not peer['remove']:
        if peer['replace_allowed_ips']:
            flags |= WGPEER_F_REPLACE_ALLOWEDIPS
        if peer['endpoint'] is not None:
            head += attr(WGPEER_A_ENDPOINT, peer['endpoint'].sockaddr())
        if peer['keepalive'] is not None:
            head += attr(WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, struct.pack('=H', peer['keepalive']))
    if flags:
        head += attr(WGPEER_A_FLAGS, struct.pack('=I', flags))
    return head


def encode_set_device(family_id, seq, ifname, change, limit=32768):
    """The WG_CMD_SET_DEVICE messages of a change (seq, seq + 1, ...), each at most ``limit`` bytes.

    The device attributes and replace_peers go in the first message; the peers fill as many
    messages as they need, and a peer whose allowed IPs do not fit goes on in the next message
    with its public key only, so the kernel adds to the allowed IPs it has just replaced.
    """
    private, port, fwmark, replace_peers, peers = checked_change(change)
    limit = min(limit, _MAX_NLA)
    name = _ifname_attr(ifname)
    device = b''
    if private is not None:
        device += attr(WGDEVICE_A_PRIVATE_KEY, private)
    if port is not None:
        device += attr(WGDEVICE_A_LISTEN_PORT, struct.pack('=H', port))
    if fwmark is not None:
        device += attr(WGDEVICE_A_FWMARK, struct.pack('=I', fwmark))
    if replace_peers:
        device += attr(WGDEVICE_A_FLAGS, struct.pack('=I', WGDEVICE_F_REPLACE_PEERS))

    messages = []
    head = name + device
    nests = []
    size = _HEADERS + len(head) + ATTR.size  # ATTR.size: the WGDEVICE_A_PEERS nest

    def flush():
        nonlocal head, nests, size
        attrs = head + (nest(WGDEVICE_A_PEERS, b''.join(nests)) if nests else b'')
        messages.append(_genl_message(family_id, WG_CMD_SET_DEVICE, NLM_F_REQUEST | NLM_F_ACK, seq + len(messages), attrs))
        head, nests = name, []
        size = _HEADERS + len(head) + ATTR.size

    for peer in peers:
        ips = [] if peer['remove'] else [_allowed_ip_nest(network) for network in peer['allowed_ips'] or ()]
        continued = False
        while True:
            peer_head = _peer_head(peer, continued)
            room = limit - size - ATTR.size - len(peer_head) - (ATTR.size if ips else 0)
            taken = used = 0
            while taken < len(ips) and used + len(ips[taken]) <= room:
                used += len(ips[taken])
                taken += 1
            if room < 0 or (ips and not taken):
                if not nests and (messages or not device):  # already a fresh message: the next would be no roomier
                    raise WireGuardError('a netlink message of %d bytes cannot hold one WireGuard peer' % limit)
                flush()
                continue
            nests.append(nest(0, peer_head + (nest(WGPEER_A_ALLOWEDIPS, b''.join(ips[:taken])) if ips else b'')))
            size += len(nests[-1])
            ips = ips[taken:]
            if not ips:
                break
            flush()
            continued = True
    if nests or not messages:
        flush()
    return messages


def _decode_sockaddr(data):
    family = struct.unpack_from('=H', data)[0]
    if family == socket.AF_INET and len(data) >= 8:
        return socket.inet_ntop(socket.AF_INET, data[4:8]), struct.unpack_from('!H', data, 2)[0]
    if family == socket.AF_INET6 and len(data) >= 28:
        scope_id = struct.unpack_from('=I', data, 24)[0]
        host = socket.inet_ntop(socket.AF_INET6, data[8:24]) + ('%%%d' % scope_id if scope_id else '')
        return host, struct.unpack_from('!H', data, 2)[0]
    return None


def _decode_allowed_ip(data):
    values = dict(attr_payloads(data))
    family = struct.unpack('=H', values[WGALLOWEDIP_A_FAMILY])[0]
    address = socket.inet_ntop(family, values[WGALLOWEDIP_A_IPADDR])
    return str(ipaddress.ip_network('%s/%d' % (address, values[WGALLOWEDIP_A_CIDR_MASK][0]), strict=False))


def _decode_peer(data, peers):
    values = {}
    allowed = []
    for atype, payload in attr_payloads(data):
        if atype == WGPEER_A_ALLOWEDIPS:
            allowed.extend(_decode_allowed_ip(one) for _t, one in attr_payloads(payload))
        else:
            values[atype] = payload
    key = values.get(WGPEER_A_PUBLIC_KEY)
    if key is None or len(key) != KEY_LEN:
        raise WireGuardError('a peer without a public key in the kernel answer')
    # The kernel goes on with a peer in the next message of a dump: its key and more allowed IPs.
    peer = peers.setdefault(bytes(key), new_peer())
    peer['allowed_ips'].extend(allowed)
    if WGPEER_A_ENDPOINT in values:
        peer['endpoint'] = _decode_sockaddr(values[WGPEER_A_ENDPOINT])
    if WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL in values:
        peer['keepalive'] = struct.unpack('=H', values[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL])[0]
    if WGPEER_A_LAST_HANDSHAKE_TIME in values:
        seconds, nanoseconds = struct.unpack('=qq', values[WGPEER_A_LAST_HANDSHAKE_TIME])
        peer['last_handshake'] = seconds + nanoseconds / 1e9
    if WGPEER_A_RX_BYTES in values:
        peer['rx_bytes'] = struct.unpack('=Q', values[WGPEER_A_RX_BYTES])[0]
    if WGPEER_A_TX_BYTES in values:
        peer['tx_bytes'] = struct.unpack('=Q', values[WGPEER_A_TX_BYTES])[0]


def decode_device(messages):
    """The device of the messages of a WG_CMD_GET_DEVICE dump (each with its nlmsghdr)."""
    device = new_device()
    for message in messages:
        length, mtype = HDR.unpack_from(message)[:2]
        if mtype < NLMSG_MIN_TYPE:  # done, error, noop: no device in them
            continue
        try:
            for atype, payload in attr_payloads(message, _HEADERS, length):
                if atype == WGDEVICE_A_PRIVATE_KEY:
                    device['private_key'] = bytes(payload)
                elif atype == WGDEVICE_A_LISTEN_PORT:
                    device['listen_port'] = struct.unpack('=H', payload)[0]
                elif atype == WGDEVICE_A_FWMARK:
                    device['fwmark'] = struct.unpack('=I', payload)[0]
                elif atype == WGDEVICE_A_PEERS:
                    for _t, one in attr_payloads(payload):
                        _decode_peer(one, device['peers'])
        except (KeyError, IndexError, ValueError, OSError, struct.error):
            raise WireGuardError('malformed WireGuard netlink answer')
    return finish_device(device)


def _socket():
    return NetlinkSocket(NETLINK_GENERIC, timeout=10.0)


class GenlClient(object):
    """The kernel WireGuard device ``ifname`` of the current network namespace."""

    def __init__(self, ifname):
        self.ifname = ifname
        self._family = None

    @staticmethod
    def family_id():
        """The generic netlink id of "wireguard"; None when the kernel does not know the family."""
        body = _GENL.pack(CTRL_CMD_GETFAMILY, 1, 0) + attr(CTRL_ATTR_FAMILY_NAME, WG_GENL_NAME.encode('ascii') + b'\0')
        try:
            with _socket() as sock:
                answers, _interrupted = sock.request(sock.message(GENL_ID_CTRL, NLM_F_ACK, body))
        except NetlinkFailure as refused:
            if refused.code == errno.ENOENT:  # no such family: the module is neither loaded nor loadable
                return None
            raise WireGuardError('generic netlink family lookup failed: %s' % refused, refused.code)
        except OSError as error:
            raise WireGuardError('generic netlink family lookup failed: %s' % (error.strerror or error), error.errno)
        for answer in answers:
            for atype, payload in attr_payloads(answer, _HEADERS):
                if atype == CTRL_ATTR_FAMILY_ID:
                    return struct.unpack('=H', payload)[0]
        raise WireGuardError('generic netlink answered without a family id for %s' % WG_GENL_NAME)

    def _family_id(self):
        if self._family is None:
            self._family = self.family_id()
            if self._family is None:
                raise WireGuardError('the kernel has no WireGuard support (generic netlink family %s)' % WG_GENL_NAME)
        return self._family

    def get(self):
        """The device, as a dump; a dump the kernel flags as interrupted by a change is retried."""
        family = self._family_id()
        with self._channel('read') as sock:
            return decode_device(sock.dump(lambda: encode_get_device(family, sock.next_seq(), self.ifname)))

    def set(self, change):
        """Apply a change: every message acked before the next (netlink messages are not one transaction)."""
        family = self._family_id()
        with self._channel('configure') as sock:
            for message in encode_set_device(family, sock.next_seq(), self.ifname, change):
                sock.request(message)

    @contextlib.contextmanager
    def _channel(self, verb):
        """A generic netlink socket whose failures are WireGuardErrors naming the device."""
        try:
            with _socket() as sock:
                yield sock
        except NetlinkFailure as refused:
            raise WireGuardError('cannot %s WireGuard device %s: %s' % (verb, self.ifname, refused), refused.code)
        except OSError as error:
            raise WireGuardError('cannot %s WireGuard device %s: %s' % (verb, self.ifname, error.strerror or error), error.errno)
