# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Run a module under the system Python when a binding is only installed there.

Distribution packages such as python3-pyroute2 install into the system interpreter only.
When Ansible runs the module with another interpreter (a virtualenv, a newer Python), the
import fails: respawn under a system interpreter that has the library (the pattern of
ansible.posix's firewalld and ansible.builtin's dnf), and only then fail with
missing_required_lib().
"""

from __future__ import annotations

from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.common.respawn import has_respawned, probe_interpreters_for_module, respawn_module

SYSTEM_INTERPRETERS = ('/usr/bin/python3', '/usr/libexec/platform-python', '/usr/local/bin/python3', '/usr/bin/python')


def require_library(module, has_library, library, import_name, import_error=None, interpreters=SYSTEM_INTERPRETERS):
    """Return when the library is importable; else respawn (no return) or fail_json()."""
    if has_library:
        return
    if not has_respawned():
        interpreter = probe_interpreters_for_module(list(interpreters), import_name)
        if interpreter:
            respawn_module(interpreter)  # runs the module again there and exits
    module.fail_json(msg=missing_required_lib(library), exception=import_error)
