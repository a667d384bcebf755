# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""A userspace WireGuard device (wireguard-go) over its UNIX socket, in the cross-platform text
protocol (https://www.wireguard.com/xplatform/): ``get=1`` answers a device, ``set=1`` applies a change
of the model in wireguard_model.  Standard library only (the boot-time unit runs it).
"""

from __future__ import annotations

import ipaddress
import os
import socket

from ansible_collections.overlay.mesh.plugins.module_utils._backends.wireguard_model import (
    KEY_LEN, WireGuardError, checked_change, finish_device, network, new_device, new_peer,
)


def uapi_set_text(change):
    """The 'set=1' request of a change, blank line included (keys in lowercase hex)."""
    private, port, fwmark, replace_peers, peers = checked_change(change)
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
    device = new_device()
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
                return finish_device(device)
            if key == 'public_key':
                peer = new_peer()
                device['peers'][_hex_key(value, 'peer public key')] = peer
            elif peer is None:
                if key == 'private_key':
                    device['private_key'] = _hex_key(value, 'private key')
                elif key in ('listen_port', 'fwmark'):
                    device[key] = int(value)
            elif key == 'endpoint':
                peer['endpoint'] = _uapi_endpoint(value)
            elif key == 'allowed_ip':
                peer['allowed_ips'].append(str(network(value)))
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
