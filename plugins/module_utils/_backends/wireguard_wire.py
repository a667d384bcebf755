# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""WireGuard keys and device configuration, for the wireguard backend, with the standard library only.

A WireGuard device is configured over one of two channels that speak the same model: the kernel
module's generic netlink family "wireguard", or the text protocol on the UNIX socket of a userspace
implementation (wireguard-go, https://www.wireguard.com/xplatform/). Both are encoded here, as
wg(8) does, rather than with pyroute2: pyroute2 0.7.2 (Debian 12's) has wrong peer flag values
(WGPEER_F_REMOVE_ME=0 ...) and this file also runs outside Ansible (boot-time unit). Key pairs
are made here too (X25519 per RFC 7748), so no host needs wg(8) to have one.

The model is plain dicts (see uapi_parse_get / decode_device for a device, uapi_set_text for a
change; None in a change leaves a value as it is). A private key never appears in an error text.
"""

from __future__ import annotations

import base64
import binascii
import errno
import ipaddress
import os
import socket
import struct

# netlink's own constants: the rtnetlink engine's
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_wire import (
    NETLINK_CAP_ACK, NETLINK_EXT_ACK, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
    NLMSG_DONE, NLMSG_ERROR, NLMSGERR_ATTR_MSG, SOL_NETLINK,
)

from ansible_collections.overlay.mesh.plugins.module_utils._netlink_changes import EngineError

KEY_LEN = 32


class WireGuardError(EngineError):
    """A refused key, change or answer, or a channel that failed; ``code`` is the errno when there is one."""

    def __init__(self, message, code=None):
        super(WireGuardError, self).__init__(message)
        self.code = code


# ---- keys (RFC 7748) -----------------------------------------------------------------------
_P = 2 ** 255 - 19
_A24 = 121665
_BASE_POINT = b'\x09' + b'\0' * 31


def x25519(scalar, u_coordinate):
    """X25519(k, u) of RFC 7748 section 5: the Montgomery ladder on Curve25519.

    Not constant-time (Python integers): it only derives the public key of this host's own key,
    locally (no remote party chooses the input or times it).
    """
    clamped = bytearray(_check_key(scalar, 'scalar'))
    clamped[0] &= 248
    clamped[31] &= 127
    clamped[31] |= 64
    k = int.from_bytes(bytes(clamped), 'little')
    u = bytearray(_check_key(u_coordinate, 'u-coordinate'))
    u[31] &= 127  # the top bit is ignored, as the RFC requires
    x1 = int.from_bytes(bytes(u), 'little') % _P
    x2, z2, x3, z3 = 1, 0, x1, 1
    swap = 0
    for t in range(254, -1, -1):
        bit = (k >> t) & 1
        if swap ^ bit:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = bit
        a, b = x2 + z2, x2 - z2
        aa, bb = a * a % _P, b * b % _P
        e = aa - bb
        c, d = x3 + z3, x3 - z3
        da, cb = d * a % _P, c * b % _P
        x3 = (da + cb) ** 2 % _P
        z3 = x1 * (da - cb) ** 2 % _P
        x2 = aa * bb % _P
        z2 = e * (aa + _A24 * e) % _P
    if swap:
        x2, z2 = x3, z3
    return (x2 * pow(z2, _P - 2, _P) % _P).to_bytes(KEY_LEN, 'little')


def generate_private_key():
    """32 random bytes clamped as X25519 wants them (what `wg genkey` prints)."""
    return clamp(os.urandom(KEY_LEN))


def clamp(key):
    """A private key as the kernel and wireguard-go keep it (a hand-made key file may not be clamped)."""
    key = bytearray(key)
    key[0] &= 248
    key[31] &= 127
    key[31] |= 64
    return bytes(key)


def public_key(private):
    """The public key of a private key (`wg pubkey`)."""
    return x25519(_check_key(private, 'private key'), _BASE_POINT)


def key_to_text(key):
    """A key as `wg` prints it: 44 characters of base64."""
    return base64.b64encode(_check_key(key, 'key')).decode('ascii')


def key_from_text(text, what='key'):
    """The 32 bytes of a key written as `wg` prints it; anything else is refused, naming ``what``."""
    key = None
    if isinstance(text, str) and len(text) == 44:
        try:
            key = base64.b64decode(text.encode('ascii'), validate=True)
        except (binascii.Error, ValueError):
            key = None
    # Canonical only: the re-encoding must give the same text (no stray bits in the last character).
    if key is None or len(key) != KEY_LEN or base64.b64encode(key).decode('ascii') != text:
        shown = '' if 'private' in what.lower() or not isinstance(text, str) else ' %r' % text
        raise WireGuardError('invalid %s%s: a WireGuard key is 44 characters of base64 (32 bytes)' % (what, shown))
    return key


def _check_key(key, what):
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_LEN:
        raise WireGuardError('invalid %s: expected %d bytes' % (what, KEY_LEN))
    return bytes(key)


# ---- the model -----------------------------------------------------------------------------
def _new_device():
    return {'private_key': None, 'listen_port': 0, 'fwmark': 0, 'peers': {}}


def _new_peer():
    return {'endpoint': None, 'allowed_ips': [], 'keepalive': 0, 'last_handshake': 0.0, 'rx_bytes': 0, 'tx_bytes': 0}


def _finish_device(device):
    """Allowed IPs as a sorted list of canonical texts, whatever order the channel gave them in."""
    for peer in device['peers'].values():
        peer['allowed_ips'] = sorted(set(peer['allowed_ips']))
    return device


def _network(text):
    try:
        return ipaddress.ip_network(text, strict=False)
    except (TypeError, ValueError):
        raise WireGuardError('invalid allowed IP %r: expected a network such as 10.244.2.0/24' % (text,))


def _number(value, what, top):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
        raise WireGuardError('invalid %s %r: expected an integer from 0 to %d' % (what, value, top))
    return value


class _Endpoint(object):
    """A peer endpoint (ip text, port) to send, checked once for both channels."""

    def __init__(self, endpoint):
        try:
            host, port = endpoint
            host, _sep, scope = host.partition('%')
            self.address = ipaddress.ip_address(host)
            self.port = _number(port, 'endpoint port', 65535)
            # A scope (link-local IPv6) may be an interface index or name, as in 'fe80::1%eth0'.
            self.scope_id = (int(scope) if scope.isdigit() else socket.if_nametoindex(scope)) if scope else 0
            if self.port == 0 or (scope and self.address.version != 6):
                raise ValueError()
        except (TypeError, ValueError, AttributeError, OSError, WireGuardError):
            raise WireGuardError('invalid endpoint %r: expected (ip, port)' % (endpoint,))
        self.host = str(self.address) + ('%' + scope if scope else '')

    def text(self):
        return ('[%s]:%d' if self.address.version == 6 else '%s:%d') % (self.host, self.port)

    def sockaddr(self):
        """struct sockaddr_in / sockaddr_in6: family in host order, port (and flow info) in network order."""
        if self.address.version == 4:
            return struct.pack('=H', socket.AF_INET) + struct.pack('!H', self.port) + self.address.packed + b'\0' * 8
        return (struct.pack('=H', socket.AF_INET6) + struct.pack('!HI', self.port, 0) + self.address.packed
                + struct.pack('=I', self.scope_id))


def _checked_change(change):
    """(private_key, listen_port, fwmark, replace_peers, peers) with every value checked and parsed."""
    private = change.get('private_key')
    if private is not None:
        private = _check_key(private, 'private key')
    port = change.get('listen_port')
    if port is not None:
        port = _number(port, 'listen port', 65535)
    fwmark = change.get('fwmark')
    if fwmark is not None:
        fwmark = _number(fwmark, 'fwmark', 0xffffffff)
    peers = []
    for peer in change.get('peers') or ():
        key = _check_key(peer.get('public_key'), 'peer public key')
        endpoint = peer.get('endpoint')
        keepalive = peer.get('keepalive')
        allowed = peer.get('allowed_ips')
        if isinstance(allowed, str):
            raise WireGuardError('allowed IPs of peer %s: expected a list of networks' % key_to_text(key))
        peers.append({
            'public_key': key,
            'remove': bool(peer.get('remove')),
            'endpoint': None if endpoint is None else _Endpoint(endpoint),
            'keepalive': None if keepalive is None else _number(keepalive, 'persistent keepalive', 65535),
            'allowed_ips': None if allowed is None else [_network(text) for text in allowed],
            'replace_allowed_ips': bool(peer.get('replace_allowed_ips')),
        })
    return private, port, fwmark, bool(change.get('replace_peers')), peers


# ---- userspace: the UAPI text protocol -------------------------------------------------------
def uapi_set_text(change):
    """The 'set=1' request of a change, blank line included (keys in lowercase hex)."""
    private, port, fwmark, replace_peers, peers = _checked_change(change)
    lines = ['set=1']
    if private is not None:
        lines.append('private_key=' + private.hex())
    if port is not None:
        lines.append('listen_port=%d' % port)
    if fwmark is not None:
        lines.append('fwmark=%d' % fwmark)
    if replace_peers:
        lines.append('replace_peers=true')
    for peer in peers:
        lines.append('public_key=' + peer['public_key'].hex())
        if peer['remove']:
            lines.append('remove=true')
            continue
        if peer['endpoint'] is not None:
            lines.append('endpoint=' + peer['endpoint'].text())
        if peer['keepalive'] is not None:
            lines.append('persistent_keepalive_interval=%d' % peer['keepalive'])
        if peer['replace_allowed_ips']:
            lines.append('replace_allowed_ips=true')
        lines.extend('allowed_ip=%s' % network for network in peer['allowed_ips'] or ())
    return '\n'.join(lines) + '\n\n'


def _uapi_errno(value):
    try:
        return int(value)
    except ValueError:
        raise WireGuardError('malformed errno line in the userspace WireGuard answer')


def _uapi_failure(code):
    # wireguard-go answers a negative errno (-EINVAL), the protocol text a positive one.
    return WireGuardError('userspace WireGuard refused the request: errno %d (%s)' % (code, os.strerror(abs(code))), abs(code))


def _uapi_endpoint(value):
    """'ip:port' or '[ip]:port' (ip possibly with a %scope) as (ip text, port)."""
    host, _sep, port = value.rpartition(':')
    host, _sep, scope = host.strip('[]').partition('%')
    return str(ipaddress.ip_address(host)) + ('%' + scope if scope else ''), int(port)


def uapi_parse_get(text):
    """The device of a 'get=1' answer (key=value lines ending with errno=N)."""
    device = _new_device()
    peer = None
    for line in text.split('\n'):
        if not line:
            break
        key, sep, value = line.partition('=')
        if not sep:
            raise WireGuardError('malformed line in the userspace WireGuard answer (no "=")')
        try:
            if key == 'errno':
                code = _uapi_errno(value)
                if code:
                    raise _uapi_failure(code)
                return _finish_device(device)
            if key == 'public_key':
                peer = _new_peer()
                device['peers'][_hex_key(value, 'peer public key')] = peer
            elif peer is None:
                if key == 'private_key':
                    device['private_key'] = _hex_key(value, 'private key')
                elif key in ('listen_port', 'fwmark'):
                    device[key] = int(value)
            elif key == 'endpoint':
                peer['endpoint'] = _uapi_endpoint(value)
            elif key == 'allowed_ip':
                peer['allowed_ips'].append(str(_network(value)))
            elif key == 'persistent_keepalive_interval':
                peer['keepalive'] = int(value)
            elif key in ('rx_bytes', 'tx_bytes'):
                peer[key] = int(value)
            elif key == 'last_handshake_time_sec':
                peer['last_handshake'] += int(value)
            elif key == 'last_handshake_time_nsec':
                peer['last_handshake'] += int(value) / 1e9
            # preshared_key, protocol_version and keys of later protocol versions are not in the model.
        except ValueError:
            shown = '' if 'key' in key else ' %r' % value
            raise WireGuardError('malformed %s%s in the userspace WireGuard answer' % (key, shown))
    raise WireGuardError('the userspace WireGuard answer ended without errno')


def _hex_key(value, what):
    try:
        key = bytes.fromhex(value)
    except ValueError:
        key = b''
    if len(key) != KEY_LEN:
        raise WireGuardError('malformed %s in the userspace WireGuard answer' % what)
    return key


class UapiClient(object):
    """The UNIX socket of a userspace WireGuard device: one connection per request."""

    def __init__(self, ifname, socket_dir='/var/run/wireguard', timeout=5.0):
        self.ifname = ifname
        self.socket_dir = socket_dir
        self.timeout = timeout

    @property
    def path(self):
        return os.path.join(self.socket_dir, self.ifname + '.sock')

    def available(self):
        """True when the socket exists and a daemon accepts connections on it."""
        if not os.path.exists(self.path):
            return False
        try:
            with self._connect():
                return True
        except OSError:
            return False

    def get(self):
        return uapi_parse_get(self._exchange('get=1\n\n'))

    def set(self, change):
        answer = self._exchange(uapi_set_text(change))
        for line in answer.split('\n'):
            if line.startswith('errno='):
                code = _uapi_errno(line[6:])
                if code:
                    raise _uapi_failure(code)
                return
        raise WireGuardError('the userspace WireGuard answer to set ended without errno')

    def _connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        return sock

    def _exchange(self, request):
        """Send one request, return the answer up to the blank line that ends it."""
        answer = b''
        try:
            with self._connect() as sock:
                sock.sendall(request.encode('ascii'))
                while b'\n\n' not in answer:
                    data = sock.recv(65536)
                    if not data:
                        raise WireGuardError('%s closed the connection before its answer ended' % self.path)
                    answer += data
        except OSError as error:
            raise WireGuardError('%s: %s' % (self.path, error.strerror or error), error.errno)
        return answer.decode('ascii', 'replace').split('\n\n', 1)[0] + '\n\n'


# ---- kernel: generic netlink, family "wireguard" (include/uapi/linux/wireguard.h) --------------
NETLINK_GENERIC = 16
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

NLA_F_NESTED = 0x8000
NLM_F_CAPPED = 0x100
NLMSG_MIN_TYPE = 0x10

_HDR = struct.Struct('=IHHII')  # nlmsghdr: len, type, flags, seq, pid
_GENL = struct.Struct('=BBH')   # genlmsghdr: cmd, version, reserved
_NLA = struct.Struct('=HH')     # nlattr: len, type
_HEADERS = _HDR.size + _GENL.size
_MAX_NLA = 0xffff               # nla_len is 16 bits: no nest, so no message, may be longer


def _attr(atype, payload):
    length = _NLA.size + len(payload)
    return _NLA.pack(length, atype) + payload + b'\0' * (-length % 4)


def _nest(atype, payload):
    return _attr(atype | NLA_F_NESTED, payload)


def _attrs(data, offset=0, end=None):
    """Yield (type without flags, payload) of the attributes in data[offset:end]."""
    end = len(data) if end is None else end
    while offset + _NLA.size <= end:
        length, atype = _NLA.unpack_from(data, offset)
        if length < _NLA.size:
            break
        yield atype & 0x3fff, data[offset + _NLA.size:offset + length]
        offset += (length + 3) & ~3


def _genl_message(family_id, cmd, flags, seq, attrs):
    return _HDR.pack(_HEADERS + len(attrs), family_id, flags, seq & 0xffffffff, 0) + _GENL.pack(cmd, WG_GENL_VERSION, 0) + attrs


def _ifname_attr(ifname):
    name = ifname.encode('ascii', 'replace') if isinstance(ifname, str) else b''
    if not 0 < len(name) < 16:
        raise WireGuardError('invalid interface name %r' % (ifname,))
    return _attr(WGDEVICE_A_IFNAME, name + b'\0')


def encode_get_device(family_id, seq, ifname):
    """The dump request of WG_CMD_GET_DEVICE for one interface."""
    return _genl_message(family_id, WG_CMD_GET_DEVICE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP, seq, _ifname_attr(ifname))


def _allowed_ip_nest(network):
    family = socket.AF_INET if network.version == 4 else socket.AF_INET6
    return _nest(0, _attr(WGALLOWEDIP_A_FAMILY, struct.pack('=H', family))
                 + _attr(WGALLOWEDIP_A_IPADDR, network.network_address.packed)
                 + _attr(WGALLOWEDIP_A_CIDR_MASK, struct.pack('=B', network.prefixlen)))


def _peer_head(peer, continued):
    """A peer's attributes before its allowed IPs; a continuation carries only the key (wg(8) does the same)."""
    flags = WGPEER_F_REMOVE_ME if peer['remove'] else 0
    head = _attr(WGPEER_A_PUBLIC_KEY, peer['public_key'])
    if not continued and not peer['remove']:
        if peer['replace_allowed_ips']:
            flags |= WGPEER_F_REPLACE_ALLOWEDIPS
        if peer['endpoint'] is not None:
            head += _attr(WGPEER_A_ENDPOINT, peer['endpoint'].sockaddr())
        if peer['keepalive'] is not None:
            head += _attr(WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, struct.pack('=H', peer['keepalive']))
    if flags:
        head += _attr(WGPEER_A_FLAGS, struct.pack('=I', flags))
    return head


def encode_set_device(family_id, seq, ifname, change, limit=32768):
    """The WG_CMD_SET_DEVICE messages of a change (seq, seq + 1, ...), each at most ``limit`` bytes.

    The device attributes and replace_peers go in the first message; the peers fill as many
    messages as they need, and a peer whose allowed IPs do not fit goes on in the next message
    with its public key only, so the kernel adds to the allowed IPs it has just replaced.
    """
    private, port, fwmark, replace_peers, peers = _checked_change(change)
    limit = min(limit, _MAX_NLA)
    name = _ifname_attr(ifname)
    device = b''
    if private is not None:
        device += _attr(WGDEVICE_A_PRIVATE_KEY, private)
    if port is not None:
        device += _attr(WGDEVICE_A_LISTEN_PORT, struct.pack('=H', port))
    if fwmark is not None:
        device += _attr(WGDEVICE_A_FWMARK, struct.pack('=I', fwmark))
    if replace_peers:
        device += _attr(WGDEVICE_A_FLAGS, struct.pack('=I', WGDEVICE_F_REPLACE_PEERS))

    messages = []
    head = name + device
    nests = []
    size = _HEADERS + len(head) + _NLA.size  # _NLA.size: the WGDEVICE_A_PEERS nest

    def flush():
        nonlocal head, nests, size
        attrs = head + (_nest(WGDEVICE_A_PEERS, b''.join(nests)) if nests else b'')
        messages.append(_genl_message(family_id, WG_CMD_SET_DEVICE, NLM_F_REQUEST | NLM_F_ACK, seq + len(messages), attrs))
        head, nests = name, []
        size = _HEADERS + len(head) + _NLA.size

    for peer in peers:
        ips = [] if peer['remove'] else [_allowed_ip_nest(network) for network in peer['allowed_ips'] or ()]
        continued = False
        while True:
            peer_head = _peer_head(peer, continued)
            room = limit - size - _NLA.size - len(peer_head) - (_NLA.size if ips else 0)
            taken = used = 0
            while taken < len(ips) and used + len(ips[taken]) <= room:
                used += len(ips[taken])
                taken += 1
            if room < 0 or (ips and not taken):
                if not nests and (messages or not device):  # already a fresh message: the next would be no roomier
                    raise WireGuardError('a netlink message of %d bytes cannot hold one WireGuard peer' % limit)
                flush()
                continue
            nests.append(_nest(0, peer_head + (_nest(WGPEER_A_ALLOWEDIPS, b''.join(ips[:taken])) if ips else b'')))
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
    values = dict(_attrs(data))
    family = struct.unpack('=H', values[WGALLOWEDIP_A_FAMILY])[0]
    address = socket.inet_ntop(family, values[WGALLOWEDIP_A_IPADDR])
    return str(ipaddress.ip_network('%s/%d' % (address, values[WGALLOWEDIP_A_CIDR_MASK][0]), strict=False))


def _decode_peer(data, peers):
    values = {}
    allowed = []
    for atype, payload in _attrs(data):
        if atype == WGPEER_A_ALLOWEDIPS:
            allowed.extend(_decode_allowed_ip(nest) for _t, nest in _attrs(payload))
        else:
            values[atype] = payload
    key = values.get(WGPEER_A_PUBLIC_KEY)
    if key is None or len(key) != KEY_LEN:
        raise WireGuardError('a peer without a public key in the kernel answer')
    # The kernel goes on with a peer in the next message of a dump: its key and more allowed IPs.
    peer = peers.setdefault(bytes(key), _new_peer())
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
    device = _new_device()
    for message in messages:
        length, mtype = _HDR.unpack_from(message)[:2]
        if mtype < NLMSG_MIN_TYPE:  # done, error, noop: no device in them
            continue
        try:
            for atype, payload in _attrs(message, _HEADERS, length):
                if atype == WGDEVICE_A_PRIVATE_KEY:
                    device['private_key'] = bytes(payload)
                elif atype == WGDEVICE_A_LISTEN_PORT:
                    device['listen_port'] = struct.unpack('=H', payload)[0]
                elif atype == WGDEVICE_A_FWMARK:
                    device['fwmark'] = struct.unpack('=I', payload)[0]
                elif atype == WGDEVICE_A_PEERS:
                    for _t, nest in _attrs(payload):
                        _decode_peer(nest, device['peers'])
        except (KeyError, IndexError, ValueError, OSError, struct.error):
            raise WireGuardError('malformed WireGuard netlink answer')
    return _finish_device(device)


class _Refused(Exception):
    """The kernel's NLMSG_ERROR: errno, and the extended-ack text when it gave one."""

    def __init__(self, code, text):
        super(_Refused, self).__init__(os.strerror(code) + (' (%s)' % text if text else ''))
        self.code = code


class _GenlSocket(object):
    """A NETLINK_GENERIC socket for one request at a time."""

    def __init__(self, timeout=10.0):
        try:
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
        except (OSError, AttributeError) as error:
            raise WireGuardError('cannot open a generic netlink socket: %s' % error, getattr(error, 'errno', None))
        try:
            for option in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):
                try:
                    self.sock.setsockopt(SOL_NETLINK, option, 1)
                except OSError:
                    pass  # older kernels: plain acks, no error text
            self.sock.settimeout(timeout)
            self.sock.bind((0, 0))
        except OSError:
            self.sock.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()

    def request(self, message):
        """Send one message; return (its answers, whether a dump was interrupted) once acked or done.

        A refusal raises _Refused(errno, kernel text or None).
        """
        seq = _HDR.unpack_from(message)[3]
        self.sock.send(message)
        answers = []
        interrupted = False
        while True:
            data = self.sock.recv(1 << 17)
            offset = 0
            while offset + _HDR.size <= len(data):
                length, mtype, flags, mseq, _pid = _HDR.unpack_from(data, offset)
                if length < _HDR.size:
                    break
                chunk = data[offset:offset + length]
                offset += (length + 3) & ~3
                if mseq != seq:
                    continue
                interrupted = interrupted or bool(flags & NLM_F_DUMP_INTR)
                if mtype in (NLMSG_ERROR, NLMSG_DONE):
                    code = -struct.unpack_from('=i', chunk, _HDR.size)[0] if length >= _HDR.size + 4 else 0
                    if code:
                        raise _Refused(code, _ext_ack_text(chunk, flags))
                    return answers, interrupted
                answers.append(chunk)


def _ext_ack_text(chunk, flags):
    """The kernel's extended-ack text of an NLMSG_ERROR, if it sent one."""
    if not flags & NLM_F_ACK_TLVS or len(chunk) < _HDR.size + 4 + _HDR.size:
        return None
    inner_length = _HDR.unpack_from(chunk, _HDR.size + 4)[0]
    start = _HDR.size + 4 + (_HDR.size if flags & NLM_F_CAPPED else inner_length)
    for atype, payload in _attrs(chunk, start):
        if atype == NLMSGERR_ATTR_MSG:
            return bytes(payload).rstrip(b'\0').decode('utf-8', 'replace')
    return None


def _seq():
    # Each request has a socket of its own, so any number will do; the pid tells runs apart in nlmon.
    return (os.getpid() << 8) & 0xffffffff


class GenlClient(object):
    """The kernel WireGuard device ``ifname`` of the current network namespace."""

    def __init__(self, ifname):
        self.ifname = ifname
        self._family = None

    @staticmethod
    def family_id():
        """The generic netlink id of "wireguard"; None when the kernel does not know the family."""
        attrs = _attr(CTRL_ATTR_FAMILY_NAME, WG_GENL_NAME.encode('ascii') + b'\0')
        message = (_HDR.pack(_HEADERS + len(attrs), GENL_ID_CTRL, NLM_F_REQUEST | NLM_F_ACK, _seq(), 0)
                   + _GENL.pack(CTRL_CMD_GETFAMILY, 1, 0) + attrs)
        try:
            with _GenlSocket() as sock:
                answers, _interrupted = sock.request(message)
        except _Refused as refused:
            if refused.code == errno.ENOENT:  # no such family: the module is neither loaded nor loadable
                return None
            raise WireGuardError('generic netlink family lookup failed: %s' % refused, refused.code)
        except OSError as error:
            raise WireGuardError('generic netlink family lookup failed: %s' % (error.strerror or error), error.errno)
        for answer in answers:
            for atype, payload in _attrs(answer, _HEADERS):
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
        for _attempt in range(3):
            answers, interrupted = self._request([encode_get_device(family, _seq(), self.ifname)], 'read')
            if not interrupted:
                return decode_device(answers)
        raise WireGuardError('WireGuard device %s kept changing during its dump' % self.ifname)

    def set(self, change):
        """Apply a change: every message acked before the next (netlink messages are not one transaction)."""
        self._request(encode_set_device(self._family_id(), _seq(), self.ifname, change), 'configure')

    def _request(self, messages, verb):
        try:
            with _GenlSocket() as sock:
                for message in messages:
                    answers, interrupted = sock.request(message)
        except _Refused as refused:
            raise WireGuardError('cannot %s WireGuard device %s: %s' % (verb, self.ifname, refused), refused.code)
        except OSError as error:
            raise WireGuardError('cannot %s WireGuard device %s: %s' % (verb, self.ifname, error.strerror or error), error.errno)
        return answers, interrupted
