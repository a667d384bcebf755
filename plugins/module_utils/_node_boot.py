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

import argparse
import json
import os
import sys
import time

from ansible_collections.overlay.mesh.plugins.module_utils import _host
from ansible_collections.overlay.mesh.plugins.module_utils import _identity
from ansible_collections.overlay.mesh.plugins.module_utils import _node_apply
from ansible_collections.overlay.mesh.plugins.module_utils import _node_spec
from ansible_collections.overlay.mesh.plugins.module_utils import _underlay
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_validate import ValidationError

UNDERLAY_WAIT = 60  # seconds to wait for the underlay address this early in the boot
LOCK_WAIT_NFTABLES = 15  # seconds nftables.service may be held up by a node run in progress
MARKER_AGE = 60  # seconds a --skip-if marker is honoured (a stale one must not skip a later restart)


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
    return normalize(raw, path), raw


def normalize(raw, path):
    """A saved contract (or the agent's, its peers from the leases) as a Node; ValueError naming the file."""
    try:
        machine_id = _identity.read_machine_id()
    except _identity.IdentityError:
        machine_id = None  # the saved contract carries its MACs
    try:
        return _node_spec.normalize(raw, machine_id=machine_id, underlay_mtu=_underlay.link_mtu)
    except ValidationError as exc:
        raise ValueError('the node state %s is not valid, nothing applied: %s' % (path, exc))


def wait_for_underlay(node, seconds=UNDERLAY_WAIT):
    """Wait for the underlay address (DHCP may be late at boot); True when it is there."""
    deadline = time.monotonic() + seconds
    waiting = False
    while True:
        try:
            _underlay.choose(_underlay.ip_json('addr', 'show'), {'address': node.underlay['address'],
                             'family': 'ipv%d' % node.underlay_version}, None)
            if waiting:
                log('underlay address %s is up' % node.underlay['address'])
            return True
        except _underlay.UnderlayError as exc:
            if time.monotonic() > deadline:
                log('underlay address %s not up after %d s (%s): applying every part that does not need it'
                    % (node.underlay['address'], seconds, exc))
                return False
            if not waiting:
                log('waiting up to %d s for the underlay address %s' % (seconds, node.underlay['address']))
                waiting = True
            time.sleep(0.5)


def main(argv=None):
    parser = argparse.ArgumentParser(prog='overlay-mesh-apply', description='Reapply the node overlay.mesh.node saved.')
    parser.add_argument('--only', action='append', choices=_node_apply.STEPS,
                        help='apply only this part (nftables.service runs --only nftables after it flushes the ruleset)')
    parser.add_argument('--wait', type=int, default=UNDERLAY_WAIT, help='seconds to wait for the underlay address')
    parser.add_argument('--skip-if', metavar='MARKER', help='do nothing when this file (written by a node run that'
                        ' starts a backend daemon and configures it itself) is younger than %d s; remove it' % MARKER_AGE)
    parser.add_argument('state', nargs='?', default=_host.NODE_FILE, help='the saved node contract')
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    path = args.state
    if args.skip_if and _fresh_marker(args.skip_if):
        log('started by an overlay.mesh.node run, which configures it: nothing to do')
        return 0
    host = _host.Host(boot=True)
    try:
        return _apply_saved(host, path, args)
    except _node_apply.STEP_ERRORS as exc:  # pylint: disable=catching-non-exception
        log('failed: %s' % exc)  # the lock not had in time, say
        return 1


def _fresh_marker(path):
    try:
        age = time.time() - os.stat(path).st_mtime
        os.unlink(path)
    except OSError:
        return False
    return age < MARKER_AGE


def _apply_saved(host, path, args):
    # The lock first: a run of the node module that is under way finishes (and saves) before this
    # reads what to apply. Called by nftables.service (--only), it must not hold that up for long.
    with host.locked(timeout=LOCK_WAIT_NFTABLES if args.only == ['nftables'] else _host.LOCK_TIMEOUT):
        by = 'boot' if not args.only else 'boot --only %s' % ','.join(args.only)
        try:
            node, raw = load(path)
        except ValueError as exc:
            log(str(exc))
            host.record_apply(by, exc)
            return 2
        for warning in node.warnings:
            log('warning: %s' % warning)
        if not args.only or set(args.only) - set(['nftables', 'files', 'kernel']):
            wait_for_underlay(node, args.wait)
        try:
            _node_apply.apply(node, host, previous=raw, only=args.only)
        except _node_apply.STEP_ERRORS as exc:  # pylint: disable=catching-non-exception
            failure = exc
        else:
            failure = None
        host.record_apply(by, failure)
    for line in host.report.changes:
        log(line)
    for warning in host.report.warnings:
        log('warning: %s' % warning)
    if failure is not None:
        log('failed: %s' % failure)
        return 1
    parts = ' (%s)' % ', '.join(args.only) if args.only else ''
    log('node reapplied from %s%s: %d change(s)' % (path, parts, len(host.report.changes)))
    return 0
