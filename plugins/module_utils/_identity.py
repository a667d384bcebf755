# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Stable MAC addresses for the node's devices, derived from /etc/machine-id.

Like systemd's MACAddressPolicy=persistent: a keyed hash of the machine-id and the device
name, made unicast and locally administered. The same host and device always get the same
MAC, on every run, after a reboot and in two runs at once, without anything stored; peers
never keep a stale FDB entry. Two hosts cloned with one machine-id would get one MAC: the role
refuses that before any change (the lease file shows both hosts).
"""

from __future__ import annotations

import hashlib
import hmac
import re

from ansible_collections.overlay.mesh.plugins.module_utils._errors import OverlayMeshError

MACHINE_ID_FILE = '/etc/machine-id'
_MACHINE_ID_RE = re.compile(r'^[0-9a-f]{32}$')
# Part of the hash key: other software deriving MACs from the machine-id gets other values.
_PURPOSE = b'overlay.mesh device MAC v1:'


class IdentityError(OverlayMeshError):
    pass


def read_machine_id(path=MACHINE_ID_FILE):
    try:
        with open(path) as handle:
            text = handle.read().strip().lower()
    except (IOError, OSError) as exc:
        raise IdentityError('cannot derive stable MAC addresses: %s is unreadable (%s); run systemd-machine-id-setup'
                            % (path, exc))
    if not _MACHINE_ID_RE.match(text):
        raise IdentityError('cannot derive stable MAC addresses: %s holds %r, not a machine ID of 32 hex digits;'
                            ' run systemd-machine-id-setup' % (path, text[:40]))
    return text


def device_mac(machine_id, device):
    """The MAC of ``device`` on the host with ``machine_id``: aa:bb:cc:dd:ee:ff, unicast, locally administered."""
    digest = hmac.new(bytes(bytearray.fromhex(machine_id)), _PURPOSE + device.encode('utf-8'), hashlib.sha256).digest()
    octets = bytearray(digest[:6])
    octets[0] = (octets[0] & 0xfe) | 0x02
    return ':'.join('%02x' % octet for octet in octets)
