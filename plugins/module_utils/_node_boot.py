# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The boot-time reapply: overlay-mesh.service runs it, without the controller.

    /usr/lib/overlay-mesh/overlay-mesh-apply [/etc/overlay-mesh/node.json]

It validates the saved contract with the same spec as the overlay.mesh.node module and applies
it with the same code (_node_apply.apply); only systemd units and the engine's own files are
left alone, since they are what runs it. Exit status 2: the state file is missing or invalid
(the message names the file and every problem); 1: applying failed.
"""

from __future__ import annotations

import json
import sys
import time

from ansible_collections.overlay.mesh.plugins.module_utils import _host
from ansible_collections.overlay.mesh.plugins.module_utils import _identity
from ansible_collections.overlay.mesh.plugins.module_utils import _node_apply
from ansible_collections.overlay.mesh.plugins.module_utils import _node_spec
from ansible_collections.overlay.mesh.plugins.module_utils import _underlay
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_changes import EngineError
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_validate import ValidationError

UNDERLAY_WAIT = 60  # seconds to wait for the underlay address this early in the boot


def log(message):
    # the journal of overlay-mesh.service
    sys.stdout.write('overlay-mesh-apply: %s\n' % message)
    sys.stdout.flush()


def load(path):
    """The saved contract as a Node; raises ValueError with a message naming the file."""
    try:
        with open(path) as handle:
            raw = json.load(handle)
    except (IOError, OSError) as exc:
        raise ValueError('cannot read the node state %s: %s' % (path, exc))
    except ValueError as exc:
        raise ValueError('the node state %s is not JSON: %s' % (path, exc))
    try:
        machine_id = _identity.read_machine_id()
    except _identity.IdentityError:
        machine_id = None  # the saved contract carries its MACs
    try:
        return _node_spec.normalize(raw, machine_id=machine_id, underlay_mtu=_underlay.link_mtu), raw
    except ValidationError as exc:
        raise ValueError('the node state %s is not valid, nothing applied: %s' % (path, exc))


def wait_for_underlay(node):
    deadline = time.monotonic() + UNDERLAY_WAIT
    while True:
        try:
            _underlay.choose(_underlay.ip_json('addr', 'show'), {'address': node.underlay['address'],
                             'family': 'ipv%d' % node.underlay_version}, None)
            return
        except _underlay.UnderlayError as exc:
            if time.monotonic() > deadline:
                raise EngineError('underlay not up after %d s: %s' % (UNDERLAY_WAIT, exc))
            time.sleep(0.5)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    path = argv[0] if argv else _host.NODE_FILE
    try:
        node, raw = load(path)
    except ValueError as exc:
        log(str(exc))
        return 2
    for warning in node.warnings:
        log('warning: %s' % warning)
    host = _host.Host(boot=True)
    try:
        wait_for_underlay(node)
        _node_apply.apply(node, host, previous=raw)
    except (EngineError, ValidationError, OSError) as exc:
        log('failed: %s' % exc)
        return 1
    for line in host.report.changes:
        log(line)
    log('node reapplied from %s: %d change(s)' % (path, len(host.report.changes)))
    return 0
