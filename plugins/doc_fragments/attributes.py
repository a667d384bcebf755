# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    """Attributes shared by the modules that reconcile kernel state (use overlay.mesh.attributes)."""

    DOCUMENTATION = r'''
options: {}
attributes:
  check_mode:
    description: Can run in C(check_mode) and return changed status prediction without modifying the target.
    support: full
    details:
      - Check mode reads the kernel and reports exactly the objects that would be added, updated and removed.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in C(check_mode)), when in diff mode.
    support: full
    details:
      - The diff lists the kernel objects the module owns, before and after, as dicts.
  idempotent:
    description:
      - When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
      - This assumes that the system controlled/queried by the module has not changed in a relevant way.
    support: full
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: linux
'''

    # For modules that talk netlink through pyroute2.
    NETLINK = r'''
options: {}
requirements:
  - pyroute2 0.7.2 or later (the distribution package, for example Debian's C(python3-pyroute2), is found through the system Python)
  - Linux, run as root (or with CAP_NET_ADMIN)
notes:
  - When pyroute2 is not importable by the Python that runs the module but is by the system Python
    (C(/usr/bin/python3)), the module re-runs itself under that interpreter.
  - The module works in the network namespace it is started in.
'''
