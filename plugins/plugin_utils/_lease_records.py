# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The fields of a lease record: the subnets and the underlay address, then what the host's backend publishes.

Pure logic (no Ansible imports). What a backend publishes is opaque here, as flannel's ``BackendData`` is to
its lease store: the fields are the registered backends' PEER_OPTIONS, and each value is checked (and
normalised) by the backend that publishes it (Backend.check_published). The lease file (_lease_file.py)
writes the record's fields in record_order(); etcd's values (_registry.py) carry the same record,
FORMAT_VERSION naming its version.
"""

from __future__ import annotations

from ansible_collections.overlay.mesh.plugins.module_utils._backends import registry
from ansible_collections.overlay.mesh.plugins.plugin_utils._lease_pool import FIELD_V4, FIELD_V6, _ip_text, _parse_ip, _text

FORMAT_VERSION = 1  # of the records (the lease file's format 1, and etcd's values)
# The fields every lease record has (when known), first and in this order; the published ones follow.
RECORD_FIELDS = (FIELD_V4, FIELD_V6, 'underlay')
# The underlay address was called 'address' in records of release 0.1; still read.
LEGACY_FIELDS = {'address': 'underlay'}


def published_fields():
    """The fields hosts publish for their backends (every registered backend's), in the registry's order."""
    return tuple(registry.published_fields())


def normalize_published(key, value):
    """A published value as the backend that publishes ``key`` checks it; ValueError when it is not one
    (the message without the field's name: the caller names it)."""
    text = _text(value)
    try:
        return registry.published_fields()[key].check_published(key, text)
    except ValueError as exc:
        message = str(exc)
        for prefix in (key + ' ', 'invalid %s ' % key):
            if message.startswith(prefix):
                raise ValueError(message[len(prefix):]) from None
        raise


def unique_fields():
    """[(field, what it is called)]: what no two hosts of the overlay may share, the underlay address first."""
    fields = [('underlay', 'underlay address')]
    for backend in registry.BACKENDS.values():
        fields += [item for item in backend.UNIQUE_PEER_OPTIONS.items() if item not in fields]
    return fields


def record_order(record):
    """The keys of a record in the order they are written: RECORD_FIELDS, the published fields in the registry's
    order, then any other (a field of a backend this code does not know: kept, not dropped) sorted."""
    known = RECORD_FIELDS + published_fields()
    return [key for key in known if key in record] + sorted(key for key in record if key not in known)


def _normalize_address(value):
    text = _text(value)
    version, addr = _parse_ip(text)
    return text if version == 4 else _ip_text(version, addr)
