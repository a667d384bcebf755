# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection plugin for lab hosts: enters all namespaces of the host's systemd with nsenter."""

from __future__ import annotations

DOCUMENTATION = """
    name: lab_nsenter
    short_description: Run tasks inside an overlay.mesh lab host
    description:
        - Enters every namespace (mount, network, PID, UTS, IPC, cgroup) of a lab host's PID 1, so
          modules run with the host's own python3, pyroute2, filesystem and network.
        - The host's current PID 1 is read from the lab's state at every connection, so a host
          rebooted by C(overlay_lab.py reboot) is found again without a new inventory.
        - Test infrastructure only; it is not part of the collection.
    author: overlay.mesh contributors
    options:
        remote_addr:
            description: The lab host's name (the inventory hostname by default).
            default: inventory_hostname
            type: str
            vars:
                - name: inventory_hostname
                - name: ansible_host
        lab_name:
            description: Name of the lab the host belongs to.
            type: str
            required: true
            vars:
                - name: overlay_lab_name
            env:
                - name: OVERLAY_LAB_NAME
"""

import os
import subprocess
import sys

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.common.text.converters import to_bytes
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import overlay_lab  # noqa: E402  pylint: disable=wrong-import-position

display = Display()


class Connection(ConnectionBase):
    transport = "lab_nsenter"
    has_pipelining = True
    # We enter the host as root; a play's become (sudo) wraps the command like on any host.

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._leader = None

    def _connect(self):
        if not self._connected:
            lab = overlay_lab.Lab(self.get_option("lab_name"))
            host = self.get_option("remote_addr")
            state = lab.load()
            if not state or host not in state["hosts"]:
                raise AnsibleConnectionFailure(f"lab {lab.name} has no host {host} (is the lab up?)")
            self._leader = lab.leader_pid(state["hosts"][host])
            if self._leader is None:
                raise AnsibleConnectionFailure(f"lab host {host} of lab {lab.name} is not running")
            display.vvv(f"lab host {host}: PID 1 is {self._leader}", host=host)
            self._connected = True
        return self

    def _nsenter(self, argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE):
        self._connect()
        return subprocess.Popen(["nsenter", "-t", str(self._leader), "-a", *argv], stdin=stdin, stdout=stdout,
                                stderr=subprocess.PIPE, env=dict(overlay_lab.HOST_ENV), cwd="/")

    def exec_command(self, cmd, in_data=None, sudoable=True):
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        display.vvv(f"EXEC {cmd}", host=self.get_option("remote_addr"))
        proc = self._nsenter(["/bin/sh", "-c", cmd], stdin=subprocess.PIPE if in_data else subprocess.DEVNULL)
        stdout, stderr = proc.communicate(in_data)
        return proc.returncode, stdout, stderr

    def put_file(self, in_path, out_path):
        super().put_file(in_path, out_path)
        with open(to_bytes(in_path), "rb") as source:
            proc = self._nsenter(["/bin/sh", "-c", 'cat > "$1"', "sh", out_path], stdin=source)
            stderr = proc.communicate()[1]
        if proc.returncode != 0:
            raise AnsibleError(f"failed to write {out_path} on the lab host: {stderr.decode(errors='replace')}")

    def fetch_file(self, in_path, out_path):
        super().fetch_file(in_path, out_path)
        with open(to_bytes(out_path), "wb") as target:
            proc = self._nsenter(["cat", in_path], stdout=target)
            stderr = proc.communicate()[1]
        if proc.returncode != 0:
            raise AnsibleError(f"failed to read {in_path} from the lab host: {stderr.decode(errors='replace')}")

    def close(self):
        self._connected = False
