# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The one root of the collection's own errors. Standard library only.

Every error the collection raises for a reason it can name (bad input, a host that cannot reach
the wanted state, a failed netlink request) derives from OverlayMeshError, so that a caller that
reports errors catches ``(OverlayMeshError, NetlinkError, OSError)``: pyroute2's NetlinkError
and the operating system's OSError are not ours and stay as they are.
"""

from __future__ import annotations


class OverlayMeshError(Exception):
    """An error of overlay.mesh; its message names the host, object or variable and the value."""
