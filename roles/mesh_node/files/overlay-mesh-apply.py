# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reapply a host's overlay at boot, without the controller.

Reads the desired state the node role saved (/etc/overlay-mesh/state.json) and reconciles it
through the same engine the modules use (installed beside this file), then loads the nftables
table, sets the sysctls and restores flannel's subnet.env. Run by overlay-mesh.service.
"""

import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# pylint: disable=wrong-import-position
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_links import reconcile_bridge, reconcile_vxlan  # noqa: E402
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_peers import reconcile_peers  # noqa: E402

UNDERLAY_WAIT = 60  # seconds to wait for the underlay address at boot


def log(message):
    print('overlay-mesh-apply: %s' % message, flush=True)


def report(what, changes):
    summary = changes.summary()
    done = ', '.join('%s %d' % (key, len(objects)) for key, objects in sorted(summary.items()) if objects)
    log('%s: %s' % (what, done or 'already as desired'))


def apply_links(state):
    """The bridge and the VTEP, with the same parameters the modules got."""
    bridge = dict(state['bridge'], state='present')
    report('bridge ' + bridge['name'], reconcile_bridge(bridge))
    if state['backend'] == 'vxlan':
        # At boot the device is ours to recreate if anything about it is off.
        vtep = dict(state['vxlan'], state='present', learning=False, recreate=True)
        report('VTEP ' + vtep['name'], reconcile_vxlan(vtep))


def apply_peers(state):
    wanted = dict(state['peers'], state='present', exclusive=True)
    changesets, unused_protocol, unused_warnings = reconcile_peers(wanted)
    report('%d peers on %s' % (len(wanted['peers']), wanted['vtep']), changesets[-1])


def apply_sysctls(sysctls):
    for sysctl in sysctls:
        path = os.path.join('/proc/sys', sysctl['key'])
        if not os.path.exists(path):
            # A device the backend's own daemon creates later (udp) gets its setting from the role.
            log('skipping %s: no such setting yet' % sysctl['key'])
            continue
        with open(path, 'w') as handle:
            handle.write('%s\n' % sysctl['value'])


def main(argv):
    path = argv[1] if len(argv) > 1 else '/etc/overlay-mesh/state.json'
    with open(path) as handle:
        state = json.load(handle)
    deadline = time.monotonic() + UNDERLAY_WAIT
    while True:
        try:
            apply_links(state)
            break
        except Exception as exc:  # pylint: disable=broad-except
            # The underlay address may not be up yet this early in the boot.
            if time.monotonic() > deadline:
                raise
            log('waiting for the underlay: %s' % exc)
            time.sleep(1)
    if state['backend'] == 'vxlan':
        apply_peers(state)
    apply_sysctls(state['sysctls'])
    subprocess.run(['nft', '-f', state['nftables']], check=True)
    env = state['subnet_env']
    os.makedirs(os.path.dirname(env['dest']), exist_ok=True)
    shutil.copyfile(env['source'], env['dest'])
    log('overlay reapplied from %s' % path)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
