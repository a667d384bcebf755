# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""WireGuard keys (both X25519 implementations), the UAPI text protocol and the generic netlink messages
(no root, no device).

The netlink messages are read back with a small parser of this file, not the module's, and the
fake kernel answers are built with this file's encoder.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
import threading

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.overlay.mesh.plugins.module_utils._backends import wireguard_genl as genl
from ansible_collections.overlay.mesh.plugins.module_utils._backends import wireguard_keys as keys
from ansible_collections.overlay.mesh.plugins.module_utils._backends import wireguard_model as model
from ansible_collections.overlay.mesh.plugins.module_utils._backends import wireguard_uapi as uapi

H = bytes.fromhex

# RFC 7748 section 6.1
ALICE_PRIVATE = H('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a')
ALICE_PUBLIC = H('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a')
BOB_PRIVATE = H('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb')
BOB_PUBLIC = H('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f')
SHARED = H('4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742')
BASE = b'\x09' + b'\0' * 31

KEY_A = bytes(range(32))
KEY_B = bytes(range(32, 64))
KEY_C = b'\xff' * 32
FAMILY = 0x1b

CHANGE = {
    'private_key': ALICE_PRIVATE, 'listen_port': 51820, 'fwmark': 0x1234, 'replace_peers': True,
    'peers': [
        {'public_key': KEY_A, 'remove': False, 'endpoint': ('192.0.2.1', 51820), 'keepalive': 25,
         'allowed_ips': ['10.244.1.0/24', '10.244.9.7/32'], 'replace_allowed_ips': True},
        {'public_key': KEY_B, 'remove': False, 'endpoint': ('2001:db8::1', 51821), 'keepalive': None,
         'allowed_ips': ['fd00:1::/64'], 'replace_allowed_ips': False},
        {'public_key': KEY_C, 'remove': True, 'endpoint': None, 'keepalive': None, 'allowed_ips': None,
         'replace_allowed_ips': False},
    ],
}


# ---- an independent reader and writer of netlink messages ------------------------------------
def read_attrs(data):
    """[(type, nested flag, payload)] of the attributes in data."""
    attrs = []
    offset = 0
    while offset + 4 <= len(data):
        length, atype = struct.unpack_from('=HH', data, offset)
        assert length >= 4
        attrs.append((atype & 0x3fff, bool(atype & 0x8000), data[offset + 4:offset + length]))
        offset += (length + 3) & ~3
    assert offset == len(data)
    return attrs


def read_message(message):
    length, mtype, flags, seq, _pid = struct.unpack_from('=IHHII', message)
    cmd, version, _reserved = struct.unpack_from('=BBH', message, 16)
    assert length == len(message)
    return {'type': mtype, 'flags': flags, 'seq': seq, 'cmd': cmd, 'version': version, 'attrs': read_attrs(message[20:])}


def one(attrs, atype):
    found = [(nested, payload) for kind, nested, payload in attrs if kind == atype]
    assert len(found) == 1, (atype, attrs)
    return found[0]


def kinds(attrs):
    return [kind for kind, _nested, _payload in attrs]


def nla(atype, payload, nested=False):
    length = 4 + len(payload)
    return struct.pack('=HH', length, atype | (0x8000 if nested else 0)) + payload + b'\0' * (-length % 4)


def message(attrs, mtype=FAMILY, flags=0x2, seq=7, cmd=0):
    return struct.pack('=IHHII', 20 + len(attrs), mtype, flags, seq, 0) + struct.pack('=BBH', cmd, 1, 0) + attrs


def allowed_ip(family, packed, mask):
    return nla(0, nla(1, struct.pack('=H', family)) + nla(2, packed) + nla(3, struct.pack('=B', mask)), True)


def dump_peer(key, ips, extra=b''):
    return nla(0, nla(1, key) + extra + nla(9, b''.join(ips), True), True)


# ---- X25519 and keys: each implementation on RFC 7748's vectors -----------------------------
IMPLEMENTATIONS = [pytest.param(keys.x25519_python, id='python'),
                   pytest.param(keys.x25519_cryptography, id='cryptography',
                                marks=pytest.mark.skipif(keys._x25519 is None, reason='cryptography does not import here')),
                   pytest.param(keys.x25519, id='chosen')]


def test_cryptography_is_used_where_it_imports():
    # The controller's venv has it (ansible-core needs it): the chosen X25519 is OpenSSL's there.
    assert keys._x25519 is not None


@pytest.mark.parametrize('x25519', IMPLEMENTATIONS)
@pytest.mark.parametrize('scalar, u, out', [
    ('a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4',
     'e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c',
     'c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552'),
    ('4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d',
     'e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493',
     '95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957'),
])
def test_x25519_rfc7748_section_5_2(x25519, scalar, u, out):
    assert x25519(H(scalar), H(u)) == H(out)


@pytest.mark.parametrize('x25519', IMPLEMENTATIONS)
def test_x25519_rfc7748_iterated(x25519):
    k = u = BASE
    for iteration in range(1, 1001):
        k, u = x25519(k, u), k
        if iteration == 1:
            assert k == H('422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079')
    assert k == H('684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51')


@pytest.mark.parametrize('x25519', IMPLEMENTATIONS)
def test_x25519_rfc7748_section_6_1(x25519):
    assert x25519(ALICE_PRIVATE, BASE) == ALICE_PUBLIC
    assert x25519(BOB_PRIVATE, BASE) == BOB_PUBLIC
    assert x25519(ALICE_PRIVATE, BOB_PUBLIC) == x25519(BOB_PRIVATE, ALICE_PUBLIC) == SHARED
    assert keys.public_key(ALICE_PRIVATE) == ALICE_PUBLIC


@pytest.mark.parametrize('x25519', IMPLEMENTATIONS)
def test_x25519_ignores_the_top_bit_of_u(x25519):
    u = bytearray(BOB_PUBLIC)
    u[31] |= 0x80
    assert x25519(ALICE_PRIVATE, bytes(u)) == SHARED


def test_x25519_of_a_low_order_point_falls_back_to_the_ladder():
    # OpenSSL refuses u = 0 (an all-zero shared secret); the chosen function still answers, as the RFC computes it.
    assert keys.x25519(ALICE_PRIVATE, b'\0' * 32) == b'\0' * 32


def test_generated_keys_are_clamped():
    made = {keys.generate_private_key() for _attempt in range(8)}
    assert len(made) == 8
    for key in made:
        assert len(key) == 32 and key[0] & 7 == 0 and key[31] & 0x80 == 0 and key[31] & 0x40
        assert len(keys.public_key(key)) == 32
    # Clamping is part of X25519: an unclamped scalar gives the public key of its clamped form.
    raw = bytearray(ALICE_PRIVATE)
    raw[0] |= 7
    raw[31] |= 0x80
    assert keys.public_key(bytes(raw)) == ALICE_PUBLIC


def test_key_text_round_trip():
    text = keys.key_to_text(ALICE_PUBLIC)
    assert text == 'hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo='
    assert len(text) == 44 and keys.key_from_text(text) == ALICE_PUBLIC
    key = keys.generate_private_key()
    assert keys.key_from_text(keys.key_to_text(key), 'private key') == key


@pytest.mark.parametrize('text', [
    '',
    'hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo',     # 43 characters
    'hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo==',   # 45 characters
    'hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTm!=',    # not base64
    'hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmoA',    # 33 bytes
    'hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmp=',    # stray bits in the last character
    b'hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=',   # not text
    None,
])
def test_key_from_text_refuses(text):
    with pytest.raises(model.WireGuardError, match='invalid peer key'):
        keys.key_from_text(text, 'peer key')


def test_private_key_never_in_an_error():
    secret = keys.key_to_text(ALICE_PRIVATE)[:-2] + '!='
    with pytest.raises(model.WireGuardError) as refused:
        keys.key_from_text(secret, 'private key of wg0')
    assert secret not in str(refused.value) and secret[:20] not in repr(refused.value)
    with pytest.raises(model.WireGuardError) as refused:
        keys.key_from_text(secret, 'public key of node1')
    assert secret in str(refused.value)  # a public key is no secret: naming it helps
    for bad in (ALICE_PRIVATE[:31], ALICE_PRIVATE + b'x'):
        for call in (keys.public_key, keys.key_to_text, lambda key: uapi.uapi_set_text({'private_key': key}),
                     lambda key: genl.encode_set_device(FAMILY, 1, 'wg0', {'private_key': key})):
            with pytest.raises(model.WireGuardError) as refused:
                call(bad)
            assert ALICE_PRIVATE[:31].hex() not in str(refused.value) and repr(ALICE_PRIVATE[:31]) not in str(refused.value)
    with pytest.raises(model.WireGuardError) as refused:
        uapi.uapi_parse_get('private_key=%sZZ\nerrno=0\n\n' % ALICE_PRIVATE[:31].hex())
    assert ALICE_PRIVATE[:31].hex() not in str(refused.value)


# ---- userspace (UAPI) ------------------------------------------------------------------------
SET_TEXT = '\n'.join([
    'set=1',
    'private_key=' + ALICE_PRIVATE.hex(),
    'listen_port=51820',
    'fwmark=4660',
    'replace_peers=true',
    'public_key=' + KEY_A.hex(),
    'endpoint=192.0.2.1:51820',
    'persistent_keepalive_interval=25',
    'replace_allowed_ips=true',
    'allowed_ip=10.244.1.0/24',
    'allowed_ip=10.244.9.7/32',
    'public_key=' + KEY_B.hex(),
    'endpoint=[2001:db8::1]:51821',
    'allowed_ip=fd00:1::/64',
    'public_key=' + KEY_C.hex(),
    'remove=true',
]) + '\n\n'

# The format of https://www.wireguard.com/xplatform/ (the order wireguard-go answers in).
GET_TEXT = '\n'.join([
    'private_key=' + ALICE_PRIVATE.hex(),
    'listen_port=12912',
    'fwmark=4660',
    'public_key=' + KEY_A.hex(),
    'preshared_key=' + '00' * 32,
    'protocol_version=1',
    'endpoint=[abcd:23::33%2]:51820',
    'last_handshake_time_sec=1700000000',
    'last_handshake_time_nsec=500000000',
    'tx_bytes=38333',
    'rx_bytes=2224',
    'persistent_keepalive_interval=111',
    'allowed_ip=192.168.4.4/32',
    'allowed_ip=10.244.2.0/24',
    'public_key=' + KEY_B.hex(),
    'preshared_key=' + '00' * 32,
    'protocol_version=1',
    'endpoint=182.122.22.19:3233',
    'last_handshake_time_sec=0',
    'last_handshake_time_nsec=0',
    'tx_bytes=0',
    'rx_bytes=0',
    'persistent_keepalive_interval=0',
    'errno=0',
]) + '\n\n'

GET_DEVICE = {
    'private_key': ALICE_PRIVATE, 'listen_port': 12912, 'fwmark': 4660,
    'peers': {
        KEY_A: {'endpoint': ('abcd:23::33%2', 51820), 'allowed_ips': ['10.244.2.0/24', '192.168.4.4/32'], 'keepalive': 111,
                'last_handshake': 1700000000.5, 'rx_bytes': 2224, 'tx_bytes': 38333},
        KEY_B: {'endpoint': ('182.122.22.19', 3233), 'allowed_ips': [], 'keepalive': 0,
                'last_handshake': 0, 'rx_bytes': 0, 'tx_bytes': 0},
    },
}


def test_uapi_set_text():
    assert uapi.uapi_set_text(CHANGE) == SET_TEXT
    assert uapi.uapi_set_text({}) == 'set=1\n\n'
    # fwmark 0 clears the mark; an empty replacement clears the allowed IPs; scopes stay.
    change = {'fwmark': 0, 'peers': [{'public_key': KEY_A, 'allowed_ips': [], 'replace_allowed_ips': True,
                                      'endpoint': ('fe80::1%3', 1)}]}
    assert uapi.uapi_set_text(change) == 'set=1\nfwmark=0\npublic_key=%s\nendpoint=[fe80::1%%3]:1\nreplace_allowed_ips=true\n\n' % KEY_A.hex()


@pytest.mark.parametrize('peer, message', [
    ({'endpoint': ('192.0.2.1', 0)}, 'invalid endpoint'),
    ({'endpoint': ('node1.example', 51820)}, 'invalid endpoint'),
    ({'endpoint': '192.0.2.1:51820'}, 'invalid endpoint'),
    ({'keepalive': 70000}, 'invalid persistent keepalive'),
    ({'allowed_ips': ['10.244.300.0/24']}, 'invalid allowed IP'),
    ({'allowed_ips': '10.244.1.0/24'}, 'expected a list'),
    ({'public_key': KEY_A[:16]}, 'invalid peer public key'),
])
def test_invalid_changes_are_refused(peer, message):
    change = {'peers': [dict({'public_key': KEY_A}, **peer)]}
    for encode in (uapi.uapi_set_text, lambda c: genl.encode_set_device(FAMILY, 1, 'wg0', c)):
        with pytest.raises(model.WireGuardError, match=message):
            encode(change)


def test_uapi_parse_get():
    assert uapi.uapi_parse_get(GET_TEXT) == GET_DEVICE
    empty = uapi.uapi_parse_get('errno=0\n\n')
    assert empty == {'private_key': None, 'listen_port': 0, 'fwmark': 0, 'peers': {}}


@pytest.mark.parametrize('text, message', [
    ('errno=-22\n\n', r'errno -22 \(Invalid argument\)'),
    ('listen_port=1\n\n', 'without errno'),
    ('listen_port=x\nerrno=0\n\n', "malformed listen_port 'x'"),
    ('public_key=abcd\nerrno=0\n\n', 'malformed peer public key'),
    ('garbage\nerrno=0\n\n', 'malformed line'),
])
def test_uapi_parse_get_refuses(text, message):
    with pytest.raises(model.WireGuardError, match=message):
        uapi.uapi_parse_get(text)


class FakeWireguardGo(object):
    """A UAPI socket answering like wireguard-go: get with GET_TEXT, set with errno=0 or the errno given."""

    def __init__(self, path, set_errno=0):
        self.path = path
        self.set_errno = set_errno
        self.stopping = False
        self.requests = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(4)
        self.thread = threading.Thread(target=self.serve)
        self.thread.daemon = True
        self.thread.start()

    def serve(self):
        while True:
            conn, _addr = self.server.accept()
            if self.stopping:
                conn.close()
                return
            with conn:
                request = b''
                while b'\n\n' not in request:
                    data = conn.recv(7)  # small reads: the client must not rely on one segment
                    if not data:
                        break
                    request += data
                if not request:
                    continue  # a probe (available()) connects and closes
                self.requests.append(request.decode('ascii'))
                if request == b'get=1\n\n':
                    answer = GET_TEXT
                else:
                    answer = 'errno=%d\n\n' % self.set_errno
                for start in range(0, len(answer), 50):
                    conn.sendall(answer[start:start + 50].encode('ascii'))

    def close(self):
        self.stopping = True
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as wake:  # closing would not end accept()
            wake.connect(self.path)
        self.thread.join(5)
        self.server.close()
        assert not self.thread.is_alive()


@pytest.fixture
def socket_dir(tmp_path):
    path = tmp_path / 'wg'
    path.mkdir()
    return str(path)


def test_uapi_client(socket_dir):
    client = uapi.UapiClient('wg0', socket_dir=socket_dir, timeout=5)
    assert client.path == os.path.join(socket_dir, 'wg0.sock')
    assert not client.available()
    with pytest.raises(model.WireGuardError, match='wg0.sock') as refused:
        client.get()
    assert refused.value.code == errno.ENOENT
    server = FakeWireguardGo(client.path)
    try:
        assert client.available()
        assert client.get() == GET_DEVICE
        client.set(CHANGE)
        assert server.requests[-1] == SET_TEXT
        server.set_errno = -22  # wireguard-go sends -EINVAL
        with pytest.raises(model.WireGuardError, match='errno -22') as refused:
            client.set(CHANGE)
        assert refused.value.code == errno.EINVAL and ALICE_PRIVATE.hex() not in str(refused.value)
        server.set_errno = 22
        with pytest.raises(model.WireGuardError, match='errno 22'):
            client.set({'listen_port': 1})
        assert server.requests[-1] == 'set=1\nlisten_port=1\n\n'
    finally:
        server.close()


def test_uapi_client_socket_that_is_not_a_daemon(socket_dir):
    path = os.path.join(socket_dir, 'wg1.sock')
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens (a daemon that died)
    client = uapi.UapiClient('wg1', socket_dir=socket_dir)
    assert os.path.exists(path) and not client.available()
    with pytest.raises(model.WireGuardError, match='wg1.sock'):
        client.get()


# ---- kernel (generic netlink) ------------------------------------------------------------------
def test_encode_get_device():
    msg = read_message(genl.encode_get_device(FAMILY, 42, 'wg0'))
    assert (msg['type'], msg['flags'], msg['seq'], msg['cmd'], msg['version']) == (FAMILY, 0x1 | 0x4 | 0x300, 42, 0, 1)
    assert msg['attrs'] == [(2, False, b'wg0\0')]
    with pytest.raises(model.WireGuardError, match='interface name'):
        genl.encode_get_device(FAMILY, 1, 'a-very-long-ifname')


def test_encode_set_device_attributes():
    messages = genl.encode_set_device(FAMILY, 9, 'wg0', CHANGE)
    assert len(messages) == 1
    msg = read_message(messages[0])
    assert (msg['type'], msg['flags'], msg['seq'], msg['cmd'], msg['version']) == (FAMILY, 0x1 | 0x4, 9, 1, 1)
    attrs = msg['attrs']
    assert kinds(attrs) == [2, 3, 6, 7, 5, 8]
    assert one(attrs, 2) == (False, b'wg0\0')
    assert one(attrs, 3) == (False, ALICE_PRIVATE)
    assert one(attrs, 6) == (False, struct.pack('=H', 51820))
    assert one(attrs, 7) == (False, struct.pack('=I', 0x1234))
    assert one(attrs, 5) == (False, struct.pack('=I', 1))  # WGDEVICE_F_REPLACE_PEERS
    nested, peers = one(attrs, 8)
    assert nested
    peers = read_attrs(peers)
    assert [(kind, nested) for kind, nested, _payload in peers] == [(0, True)] * 3

    peer_a = read_attrs(peers[0][2])
    assert one(peer_a, 1) == (False, KEY_A)
    assert one(peer_a, 3) == (False, struct.pack('=I', 2))  # WGPEER_F_REPLACE_ALLOWEDIPS
    endpoint = one(peer_a, 4)[1]
    # struct sockaddr_in: family in host order, port in network order, address, 8 bytes of zero
    assert endpoint == struct.pack('=H', socket.AF_INET) + b'\xca\x6c' + socket.inet_aton('192.0.2.1') + b'\0' * 8
    assert one(peer_a, 5) == (False, struct.pack('=H', 25))
    nested, ips = one(peer_a, 9)
    assert nested
    ips = read_attrs(ips)
    assert [(kind, nested) for kind, nested, _payload in ips] == [(0, True)] * 2
    assert read_attrs(ips[0][2]) == [(1, False, struct.pack('=H', socket.AF_INET)), (2, False, socket.inet_aton('10.244.1.0')),
                                     (3, False, b'\x18')]
    assert read_attrs(ips[1][2])[1:] == [(2, False, socket.inet_aton('10.244.9.7')), (3, False, b'\x20')]

    peer_b = read_attrs(peers[1][2])
    assert kinds(peer_b) == [1, 4, 9]  # no flags (nothing to replace), no keepalive (left as it is)
    endpoint = one(peer_b, 4)[1]
    # struct sockaddr_in6: family, port, flow info, address, scope id
    assert endpoint == (struct.pack('=H', socket.AF_INET6) + b'\xca\x6d' + b'\0' * 4
                        + socket.inet_pton(socket.AF_INET6, '2001:db8::1') + struct.pack('=I', 0))
    ip = read_attrs(read_attrs(one(peer_b, 9)[1])[0][2])
    assert ip == [(1, False, struct.pack('=H', socket.AF_INET6)), (2, False, socket.inet_pton(socket.AF_INET6, 'fd00:1::')),
                  (3, False, b'\x40')]

    peer_c = read_attrs(peers[2][2])
    assert peer_c == [(1, False, KEY_C), (3, False, struct.pack('=I', 1))]  # WGPEER_F_REMOVE_ME


def test_encode_set_device_minimal():
    msg = read_message(genl.encode_set_device(FAMILY, 1, 'wg0', {'listen_port': 0})[0])
    assert msg['attrs'] == [(2, False, b'wg0\0'), (6, False, b'\0\0')]
    assert len(genl.encode_set_device(FAMILY, 1, 'wg0', {})) == 1


def peer_change(index, ips=1):
    return {'public_key': struct.pack('>I', index) * 8, 'endpoint': ('198.51.100.%d' % (index % 250 + 1), 51820),
            'keepalive': 25, 'allowed_ips': ['10.%d.%d.0/24' % (index // 256, index % 256)] + ['fd00::%x:%x/128' % (index, n) for n in range(1, ips)],
            'replace_allowed_ips': True}


def test_encode_set_device_splits_peers():
    change = {'private_key': ALICE_PRIVATE, 'listen_port': 51820, 'replace_peers': True,
              'peers': [peer_change(index) for index in range(300)]}
    messages = genl.encode_set_device(FAMILY, 100, 'wg0', change, limit=4096)
    assert len(messages) > 5
    seen = []
    for number, raw in enumerate(messages):
        assert len(raw) <= 4096
        msg = read_message(raw)
        assert msg['seq'] == 100 + number and msg['cmd'] == 1
        if number == 0:
            assert kinds(msg['attrs']) == [2, 3, 6, 5, 8]
        else:
            assert kinds(msg['attrs']) == [2, 8]  # no device attributes, above all no replace_peers again
        for _kind, _nested, peer in read_attrs(one(msg['attrs'], 8)[1]):
            peer = read_attrs(peer)
            assert one(peer, 3)[1] == struct.pack('=I', 2)
            seen.append(one(peer, 1)[1])
    assert seen == [struct.pack('>I', index) * 8 for index in range(300)]
    device = genl.decode_device(messages)
    assert device['private_key'] == ALICE_PRIVATE and device['listen_port'] == 51820
    assert len(device['peers']) == 300
    assert device['peers'][struct.pack('>I', 299) * 8]['allowed_ips'] == ['10.1.43.0/24']
    assert device['peers'][struct.pack('>I', 299) * 8]['endpoint'] == ('198.51.100.50', 51820)


def test_encode_set_device_splits_a_peer_like_wg():
    change = {'peers': [peer_change(1, ips=200), peer_change(2, ips=3)]}
    messages = genl.encode_set_device(FAMILY, 1, 'wg0', change, limit=2048)
    assert len(messages) > 2
    parts = []
    for raw in messages:
        assert len(raw) <= 2048
        for _kind, _nested, peer in read_attrs(one(read_message(raw)['attrs'], 8)[1]):
            parts.append(read_attrs(peer))
    first, continuation = parts[0], parts[1]
    assert one(first, 1)[1] == one(continuation, 1)[1] == struct.pack('>I', 1) * 8
    assert kinds(first) == [1, 4, 5, 3, 9] and one(first, 3)[1] == struct.pack('=I', 2)
    assert kinds(continuation) == [1, 9]  # the key and more allowed IPs: no replace, no endpoint again
    ips = genl.decode_device(messages)['peers'][struct.pack('>I', 1) * 8]['allowed_ips']
    assert len(ips) == 200 and '10.0.1.0/24' in ips and 'fd00::1:c7/128' in ips


def test_encode_set_device_limit_too_small():
    with pytest.raises(model.WireGuardError, match='cannot hold one WireGuard peer'):
        genl.encode_set_device(FAMILY, 1, 'wg0', {'peers': [peer_change(1)]}, limit=100)


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(0, 40), max_size=30), limit=st.integers(300, 3000), remove=st.sets(st.integers(0, 29)))
def test_encode_set_device_split_property(sizes, limit, remove):
    peers = []
    for index, size in enumerate(sizes):
        peer = peer_change(index, ips=size) if size else {'public_key': struct.pack('>I', index) * 8}
        peer['remove'] = index in remove
        peers.append(peer)
    messages = genl.encode_set_device(FAMILY, 1, 'wg0', {'fwmark': 7, 'peers': peers}, limit=limit)
    assert all(len(raw) <= limit for raw in messages)
    device = genl.decode_device(messages)
    assert device['fwmark'] == 7
    assert set(device['peers']) == {peer['public_key'] for peer in peers}
    for peer in peers:
        expected = [] if peer['remove'] else sorted(str(ipaddress.ip_network(ip)) for ip in peer.get('allowed_ips', ()))
        assert device['peers'][peer['public_key']]['allowed_ips'] == expected


def kernel_dump(private=ALICE_PRIVATE, seq=7):
    """A dump as the kernel sends it: the device, then peer A continued in a second message."""
    endpoint6 = (struct.pack('=H', socket.AF_INET6) + struct.pack('!HI', 51821, 0)
                 + socket.inet_pton(socket.AF_INET6, 'fe80::2') + struct.pack('=I', 3))
    endpoint4 = struct.pack('=H', socket.AF_INET) + struct.pack('!H', 51820) + socket.inet_aton('192.0.2.1') + b'\0' * 8
    stats = (nla(2, b'\0' * 32) + nla(6, struct.pack('=qq', 1700000000, 250000000)) + nla(5, struct.pack('=H', 25))
             + nla(7, struct.pack('=Q', 2 ** 40)) + nla(8, struct.pack('=Q', 12345)) + nla(10, struct.pack('=I', 1)))
    first = (nla(6, struct.pack('=H', 51820)) + nla(7, struct.pack('=I', 0)) + nla(1, struct.pack('=I', 5)) + nla(2, b'wg0\0')
             + nla(3, private) + nla(4, keys.public_key(private))
             + nla(8, dump_peer(KEY_B, [], nla(4, endpoint6))
                   + dump_peer(KEY_A, [allowed_ip(socket.AF_INET, socket.inet_aton('10.244.2.0'), 24)], stats + nla(4, endpoint4)), True))
    second = (nla(1, struct.pack('=I', 5)) + nla(2, b'wg0\0')
              + nla(8, dump_peer(KEY_A, [allowed_ip(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, 'fd00:2::'), 64),
                                         allowed_ip(socket.AF_INET, socket.inet_aton('10.1.0.0'), 16)]), True))
    return [message(first, seq=seq), message(second, seq=seq)]


DUMP_DEVICE = {
    'private_key': ALICE_PRIVATE, 'listen_port': 51820, 'fwmark': 0,
    'peers': {
        KEY_A: {'endpoint': ('192.0.2.1', 51820), 'allowed_ips': ['10.1.0.0/16', '10.244.2.0/24', 'fd00:2::/64'], 'keepalive': 25,
                'last_handshake': 1700000000.25, 'rx_bytes': 2 ** 40, 'tx_bytes': 12345},
        KEY_B: {'endpoint': ('fe80::2%3', 51821), 'allowed_ips': [], 'keepalive': 0, 'last_handshake': 0,
                'rx_bytes': 0, 'tx_bytes': 0},
    },
}


def test_decode_device_merges_a_continued_peer():
    done = struct.pack('=IHHIIi', 20, 3, 0x2, 7, 0, 0)
    assert genl.decode_device(kernel_dump() + [done]) == DUMP_DEVICE


def test_decode_device_refuses_garbage():
    broken = message(nla(8, nla(0, nla(3, struct.pack('=I', 0)), True), True))  # a peer without its key
    with pytest.raises(model.WireGuardError, match='public key'):
        genl.decode_device([broken])
    broken = message(nla(8, dump_peer(KEY_A, [nla(0, nla(1, struct.pack('=H', 2)), True)]), True))  # an IP without address
    with pytest.raises(model.WireGuardError, match='malformed'):
        genl.decode_device([broken])


# ---- GenlClient against a fake kernel (socket.socket replaced), and against this kernel ----------
class FakeKernel(object):
    """NETLINK_GENERIC as far as GenlClient uses it: the controller, dumps and acked sets."""

    def __init__(self, refuse=None, interrupt=0):
        self.refuse = refuse        # (errno, extended ack text) for the sets
        self.interrupt = interrupt  # how many dumps come back flagged NLM_F_DUMP_INTR
        self.sets = []
        self.pending = []

    def socket(self, family, kind, proto):
        assert (family, kind, proto) == (socket.AF_NETLINK, socket.SOCK_RAW, 16)
        return self

    def setsockopt(self, *args):
        pass

    def settimeout(self, timeout):
        pass

    def bind(self, address):
        pass

    def close(self):
        pass

    def ack(self, request, code=0, text=None):
        flags = 0x100 | (0x200 if text else 0)  # capped, with TLVs
        payload = struct.pack('=i', -code) + request[:16] + (nla(1, text.encode() + b'\0') if text else b'')
        return struct.pack('=IHHII', 16 + len(payload), 2, flags, struct.unpack_from('=I', request, 8)[0], 0) + payload

    def send(self, request):
        msg = read_message(request)
        if msg['type'] == 0x10:
            assert msg['cmd'] == 3 and msg['attrs'] == [(2, False, b'wireguard\0')]
            self.pending.append(message(nla(2, b'wireguard\0') + nla(1, struct.pack('=H', FAMILY)), mtype=0x10, flags=0, seq=msg['seq'], cmd=1)
                                + self.ack(request))
        elif msg['cmd'] == 0:
            assert msg['flags'] == 0x305
            flags = 0x2 | (0x10 if self.interrupt else 0)
            self.interrupt = max(0, self.interrupt - 1)
            answers = [raw[:6] + struct.pack('=H', flags) + raw[8:] for raw in kernel_dump(seq=msg['seq'])]
            self.pending.extend(answers)
            self.pending.append(struct.pack('=IHHIIi', 20, 3, 0x2, msg['seq'], 0, 0))
        else:
            self.sets.append(request)
            self.pending.append(self.ack(request, *self.refuse) if self.refuse else self.ack(request))
        return len(request)

    def recv(self, size):
        return self.pending.pop(0)


def test_genl_client_with_a_fake_kernel(monkeypatch):
    kernel = FakeKernel(interrupt=1)
    monkeypatch.setattr(socket, 'socket', kernel.socket)
    client = genl.GenlClient('wg0')
    assert genl.GenlClient.family_id() == FAMILY
    assert client.get() == DUMP_DEVICE
    change = {'private_key': ALICE_PRIVATE, 'peers': [peer_change(index) for index in range(1000)]}
    client.set(change)
    assert kernel.sets == genl.encode_set_device(FAMILY, struct.unpack_from('=I', kernel.sets[0], 8)[0], 'wg0', change)
    assert len(kernel.sets) > 1


def test_genl_client_refusal(monkeypatch):
    kernel = FakeKernel(refuse=(errno.EINVAL, 'Attribute failed policy validation'))
    monkeypatch.setattr(socket, 'socket', kernel.socket)
    refusal = r'cannot configure WireGuard device wg0: Invalid argument \(Attribute failed policy validation\)'
    with pytest.raises(model.WireGuardError, match=refusal) as refused:
        genl.GenlClient('wg0').set({'private_key': ALICE_PRIVATE})
    assert refused.value.code == errno.EINVAL and ALICE_PRIVATE.hex() not in str(refused.value)
    kernel.refuse = (errno.ENODEV, None)
    with pytest.raises(model.WireGuardError, match='No such device') as refused:
        genl.GenlClient('wg0').set({'listen_port': 1})
    assert refused.value.code == errno.ENODEV


def netlink_socket_opens():
    try:
        socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 16).close()
        return True
    except (OSError, AttributeError):
        return False


@pytest.mark.skipif(not netlink_socket_opens(), reason='no generic netlink socket here')
def test_family_id_on_this_kernel():
    family = genl.GenlClient.family_id()
    if os.path.isdir('/sys/module/wireguard'):
        assert isinstance(family, int) and family >= 0x10
    else:
        assert family is None
        with pytest.raises(model.WireGuardError, match='no WireGuard support'):
            genl.GenlClient('wg0').get()
