# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The fields of a lease record and how the published ones (what backends publish) are normalised.

Pure logic (no Ansible imports). The lease file (_lease_file.py) writes RECORD_FIELDS in this
order; etcd's values (_registry.py) carry the same record, FORMAT_VERSION naming its version.
"""

from __future__ import annotations

import base64
import binascii
import re

from ansible_collections.overlay.mesh.plugins.plugin_utils._lease_pool import FIELD_V4, FIELD_V6, _ip_text, _parse_ip, _text

FORMAT_VERSION = 1  # of the records (the lease file's format 1, and etcd's values)
# Record fields of one lease, in the order they are written.
RECORD_FIELDS = (FIELD_V4, FIELD_V6, 'underlay', 'vtep_mac', 'public_key')
# The underlay address was called 'address' in records of release 0.1; still read.
LEGACY_FIELDS = {'address': 'underlay'}

_MAC_RE = re.compile(r'^[0-9a-f]{2}([:-]?)[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}$')


def _normalize_mac(value):
    text = _text(value).lower()
    if not _MAC_RE.fullmatch(text):
        raise ValueError('%r is not a MAC address' % (text,))
    digits = text.replace(':', '').replace('-', '')
    return ':'.join(digits[i:i + 2] for i in range(0, 12, 2))


def _normalize_public_key(value):
    """A WireGuard public key: base64 of 32 bytes (44 characters, as wg(8) prints it)."""
    text = _text(value).strip()
    try:
        # canonical only (as wg(8) prints keys): a key is compared as text across hosts
        key = base64.b64decode(text, validate=True)
        if len(text) != 44 or len(key) != 32 or base64.b64encode(key).decode() != text:
            raise ValueError
    except (ValueError, binascii.Error):
        raise ValueError('%r is not a WireGuard public key (base64 of 32 bytes)' % (text,))
    return text


# Published per-peer fields (what backends publish) and how each is normalised.
PEER_FIELDS = {'vtep_mac': _normalize_mac, 'public_key': _normalize_public_key}


def _normalize_address(value):
    text = _text(value)
    version, addr = _parse_ip(text)
    return text if version == 4 else _ip_text(version, addr)
