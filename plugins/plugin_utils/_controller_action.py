# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the collection's action plugins share: they work on the controller only (the lease file, etcd), never
touch the host they run for, and support check mode."""

from __future__ import annotations

from ansible.plugins.action import ActionBase


class ControllerAction(ActionBase):
    """An action that runs on the controller alone."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def start(self, tmp, task_vars, argument_spec):
        """(the result so far, the options validated against argument_spec): the beginning of every run()."""
        result = super().run(tmp, task_vars)
        dummy, args = self.validate_argument_spec(argument_spec=argument_spec)
        return result, args
