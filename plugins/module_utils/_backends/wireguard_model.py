# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""WireGuard's device model, shared by both channels that configure a device: the kernel's generic
netlink family (wireguard_genl) and the userspace text protocol (wireguard_uapi).

A device is a plain dict (new_device; peers keyed by their 32-byte public key); a change is a dict
whose None values leave a value as it is, checked once here (checked_change) for both channels.
A private key never appears in an error text.  Standard library only (the boot-time unit runs it).
"""

from __future__ import annotations

import base64
import ipaddress
import socket
import struct

from ansible_collections.overlay.mesh.plugins.module_utils._netlink_changes import EngineError

KEY_LEN = 32


class WireGuardError(EngineError):
    """A refused key, change or answer, or a channel that failed; ``code`` is the errno when there is one."""

    def __init__(self, message, code=None):
        super(WireGuardError, self).__init__(message)
        self.code = code


def check_key(key, what):
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_LEN:
        raise WireGuardError('invalid %s: expected %d bytes' % (what, KEY_LEN))
    return bytes(key)


def new_device():
    return {'private_key': None, 'listen_port': 0, 'fwmark': 0, 'peers': {}}


def new_peer():
    return {'endpoint': None, 'allowed_ips': [], 'keepalive': 0, 'last_handshake': 0.0, 'rx_bytes': 0, 'tx_bytes': 0}


def finish_device(device):
    """Allowed IPs as a sorted list of canonical texts, whatever order the channel gave them in."""
    for peer in device['peers'].values():
        peer['allowed_ips'] = sorted(set(peer['allowed_ips']))
    return device


def network(text):
    try:
        return ipaddress.ip_network(text, strict=False)
    except (TypeError, ValueError):
        raise WireGuardError('invalid allowed IP %r: expected a network such as 10.244.2.0/24' % (text,))


def number(value, what, top):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
        raise WireGuardError('invalid %s %r: expected an integer from 0 to %d' % (what, value, top))
    return value


class Endpoint(object):
    """A peer endpoint (ip text, port) to send, checked once for both channels."""

    def __init__(self, endpoint):
        try:
            host, port = endpoint
            host, _sep, scope = host.partition('%')
            self.address = ipaddress.ip_address(host)
            self.port = number(port, 'endpoint port', 65535)
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


def checked_change(change):
    """(private_key, listen_port, fwmark, replace_peers, peers) with every value checked and parsed."""
    private = change.get('private_key')
    if private is not None:
        private = check_key(private, 'private key')
    port = change.get('listen_port')
    if port is not None:
        port = number(port, 'listen port', 65535)
    fwmark = change.get('fwmark')
    if fwmark is not None:
        fwmark = number(fwmark, 'fwmark', 0xffffffff)
    peers = []
    for peer in change.get('peers') or ():
        key = check_key(peer.get('public_key'), 'peer public key')
        endpoint = peer.get('endpoint')
        keepalive = peer.get('keepalive')
        allowed = peer.get('allowed_ips')
        if isinstance(allowed, str):
            raise WireGuardError('allowed IPs of peer %s: expected a list of networks' % base64.b64encode(key).decode('ascii'))
        peers.append({
            'public_key': key,
            'remove': bool(peer.get('remove')),
            'endpoint': None if endpoint is None else Endpoint(endpoint),
            'keepalive': None if keepalive is None else number(keepalive, 'persistent keepalive', 65535),
            'allowed_ips': None if allowed is None else [network(text) for text in allowed],
            'replace_allowed_ips': bool(peer.get('replace_allowed_ips')),
        })
    return private, port, fwmark, bool(change.get('replace_peers')), peers
