# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""WireGuard keys: X25519 (RFC 7748), key pairs and the base64 text `wg` prints.

X25519 comes from the ``cryptography`` package when it imports (Debian and RHEL ship it; the
controller has it with ansible-core); otherwise from the pure-Python Montgomery ladder below, so
that no host needs wg(8) or a Python package to make its key pair.  Both give the same bytes
(tested on RFC 7748's vectors).
"""

from __future__ import annotations

import base64
import binascii
import os

from ansible_collections.overlay.mesh.plugins.module_utils._backends.wireguard_model import KEY_LEN, WireGuardError, check_key

try:
    from cryptography.hazmat.primitives.asymmetric import x25519 as _x25519
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
except ImportError:  # the pure-Python ladder does the work
    _x25519 = None


def x25519_cryptography(scalar, u_coordinate):
    """X25519(k, u) by OpenSSL through ``cryptography`` (which clamps k and ignores u's top bit, as the RFC says)."""
    private = _x25519.X25519PrivateKey.from_private_bytes(check_key(scalar, 'scalar'))
    u = check_key(u_coordinate, 'u-coordinate')
    if u == BASE_POINT:
        return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return private.exchange(_x25519.X25519PublicKey.from_public_bytes(u))


def x25519(scalar, u_coordinate):
    """X25519(k, u) of RFC 7748 section 5, by ``cryptography`` when it imports, else in Python."""
    if _x25519 is not None:
        try:
            return x25519_cryptography(scalar, u_coordinate)
        except ValueError:  # OpenSSL refuses a low-order u (an all-zero result); the ladder computes it
            pass
    return x25519_python(scalar, u_coordinate)


_P = 2 ** 255 - 19
_A24 = 121665
BASE_POINT = b'\x09' + b'\0' * 31


def x25519_python(scalar, u_coordinate):
    """X25519(k, u) of RFC 7748 section 5: the Montgomery ladder on Curve25519.

    Not constant-time (Python integers): it only derives the public key of this host's own key,
    locally (no remote party chooses the input or times it).
    """
    clamped = bytearray(check_key(scalar, 'scalar'))
    clamped[0] &= 248
    clamped[31] &= 127
    clamped[31] |= 64
    k = int.from_bytes(bytes(clamped), 'little')
    u = bytearray(check_key(u_coordinate, 'u-coordinate'))
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
    return x25519(check_key(private, 'private key'), BASE_POINT)


def key_to_text(key):
    """A key as `wg` prints it: 44 characters of base64."""
    return base64.b64encode(check_key(key, 'key')).decode('ascii')


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
