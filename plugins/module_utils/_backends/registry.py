# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The backends the node contract knows, in one place (flannel's pkg/backend/manager.go).

Adding a backend: a file beside this one with a Backend subclass (see base.py), one line here,
its documentation (docs/backends.md, the node module's and the role's option text) and tests.
"""

from __future__ import annotations

from ansible_collections.overlay.mesh.plugins.module_utils._backends import host_gw, udp, vxlan, wireguard

# The backend of a contract (and a role) that names none: flannel's default.
DEFAULT = vxlan.NAME
BACKENDS = dict((module.Backend.name, module.Backend) for module in (vxlan, udp, host_gw, wireguard))


def names():
    return sorted(BACKENDS)


def peer_route_kinds():
    """The link kinds on which a backend keeps per-peer routes of its own (Backend.PEER_ROUTE_KINDS)."""
    return tuple(sorted(set(kind for backend in BACKENDS.values() for kind in backend.PEER_ROUTE_KINDS)))


def published_fields():
    """{field: the Backend class that publishes it} over every backend (PEER_OPTIONS), in the registry's order:
    what the lease stores carry of a host's published data, each value checked by its backend."""
    fields = {}
    for backend in BACKENDS.values():
        for key in backend.PEER_OPTIONS:
            fields.setdefault(key, backend)
    return fields


def get(name):
    """The Backend class called name, or None."""
    return BACKENDS.get(name)
