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
    """{field: the backend class that publishes it}: what hosts publish for their backends (every registered
    backend's PEER_OPTIONS), in the registry's order."""
    return registry.published_fields()


def normalize_published(key, value, fields=None):
    """A published value as the backend that publishes ``key`` checks it; ValueError when it is not one
    (the message without the field's name: the caller names it). fields: published_fields(), when the caller has it."""
    text = _text(value)
    try:
        return (fields or registry.published_fields())[key].check_published(key, text)
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


def known_fields():
    """The fields the lease file writes first, in this order: RECORD_FIELDS, then the published ones."""
    return RECORD_FIELDS + tuple(published_fields())


def record_order(record, known=None):
    """The keys of a record in the order they are written: known_fields() (the caller's, when it has them), then
    any other (a field of a backend this code does not know: kept, not dropped) sorted."""
    known = known or known_fields()
    keys = [key for key in known if key in record]
    return keys if len(keys) == len(record) else keys + sorted(key for key in record if key not in known)


def _normalize_address(value):
    text = _text(value)
    version, addr = _parse_ip(text)
    return text if version == 4 else _ip_text(version, addr)
