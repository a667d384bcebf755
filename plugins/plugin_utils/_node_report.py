# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a joining host tells the others, for its lease record (the overlay.mesh.node_reports filter).

Kept apart from _node_inputs on purpose: it imports nothing, so the filters that use it load without
the node spec and the backends (pyroute2 with them)."""

from __future__ import annotations


def empty(value):
    """A role variable left unset: None, or a string of nothing but white space."""
    return value is None or (isinstance(value, str) and value.strip() == '')


def public_address_set(variables):
    """Whether mesh_node_public_address is given (a non-empty value)."""
    return not empty((variables or {}).get('mesh_node_public_address'))


def underlay_address(info):
    """The underlay address in an overlay.mesh.node_info result (None before node_info ran)."""
    return ((info or {}).get('underlay') or {}).get('address') or None


def node_report(info, present=True):
    """Underlay address and network, and what the backend publishes (VTEP MAC, WireGuard public key),
    from the host's overlay.mesh.node_info result. Empty for a host that leaves."""
    if not present or not info:
        return {}
    underlay = info.get('underlay') or {}
    report = {'address': underlay.get('address'), 'network': underlay.get('network')}
    report.update((info.get('identity') or {}).get('publish') or {})
    return report
