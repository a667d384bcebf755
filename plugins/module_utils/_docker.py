# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Docker beside the overlay: its settings in daemon.json, and its firewall kept from cutting the overlay.

- One subnet, two bridges, no overlap: with docker enabled, the node's bridge (the CNI network) has
  the lower half of the host's subnet and docker0 the upper half (``bip``), so two allocators never
  hand out one address and each bridge has its own connected route; peers route the whole subnet
  to this host as before. Docker does not masquerade (``ip-masq``: false) when the node does: the
  overlay's traffic keeps its container addresses, the rest is masqueraded by the node's table.
- Docker sets the FORWARD policy to DROP (iptables-nft), which drops the overlay's forwarded
  traffic on that host. Docker leaves its DOCKER-USER chain to the user and never flushes it, so
  two rules there (comment "overlay.mesh") accept the overlay network's traffic; they are put in
  whenever Docker is installed (docker enabled or not: a Docker running beside podman cuts the
  overlay as well), before Docker starts at boot, and again after nftables.service flushed them.

Standard library only: the node module and the boot-time apply both use it.
"""

from __future__ import annotations

import json
import os

from ansible_collections.overlay.mesh.plugins.module_utils import _host
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_changes import EngineError

DAEMON_JSON = '/etc/docker/daemon.json'
CHAIN = 'DOCKER-USER'
COMMENT = 'overlay.mesh'
IPTABLES = ('/usr/sbin/iptables', '/sbin/iptables')
DOCKER_UNITS = ('/etc/systemd/system/docker.service', '/lib/systemd/system/docker.service', '/usr/lib/systemd/system/docker.service')


def settings(node):
    """What the node sets in daemon.json: docker0 on the upper half of the subnet, the overlay MTU."""
    upper = node.subnet_halves[1]
    wanted = {'bip': '%s/%d' % (upper.network_address + 1, upper.prefixlen), 'mtu': node.mtu}
    if node['firewall']['masquerade']:
        wanted['ip-masq'] = False
    return wanted


def ensure_settings(node, host):
    """daemon.json with the node's settings, every other key kept; Docker restarted when asked to."""
    text = host.read(DAEMON_JSON)
    try:
        current = json.loads(text) if text and text.strip() else {}
    except ValueError as exc:
        raise EngineError('%s is not valid JSON (%s); not touching it' % (DAEMON_JSON, exc))
    if not isinstance(current, dict):
        raise EngineError('%s is not a JSON object; not touching it' % DAEMON_JSON)
    wanted = dict(current, **settings(node))
    if wanted == current:
        return
    host.ensure_file(DAEMON_JSON, json.dumps(wanted, indent=2) + '\n', mode=None, view=_host.json_lines)  # keeps its mode
    if node['docker']['restart'] and not host.boot:
        host.report.object('updated', {'type': 'service', 'name': 'docker.service', 'detail': 'restarted if running'})
        if not host.check_mode:
            host.systemctl('try-restart', 'docker.service')


# ---- DOCKER-USER ---------------------------------------------------------------------------------
def _iptables():
    return next((path for path in IPTABLES if os.access(path, os.X_OK)), None)


def docker_installed():
    return any(os.path.exists(path) for path in DOCKER_UNITS)


def wanted_rules(network):
    """Our rules, as iptables -S prints them (without '-A DOCKER-USER')."""
    return ['-s %s -m comment --comment %s -j ACCEPT' % (network, COMMENT),
            '-d %s -m comment --comment %s -j ACCEPT' % (network, COMMENT)]


def _ours(iptables, host):
    """Our rules now in DOCKER-USER (None: no such chain)."""
    proc = host.run([iptables, '-w', '5', '-S', CHAIN], check=False)
    if proc.returncode:
        return None
    prefix = '-A %s ' % CHAIN
    # iptables 1.8.9 quotes every comment ("overlay.mesh"), older ones only those with spaces
    lines = [line.replace('--comment "%s"' % COMMENT, '--comment %s' % COMMENT) for line in proc.stdout.splitlines()]
    return [line[len(prefix):] for line in lines if line.startswith(prefix) and '--comment %s ' % COMMENT in line + ' ']


def _describe(rule):
    return {'type': 'iptables', 'name': '%s %s' % (CHAIN, rule.replace(' -m comment --comment %s' % COMMENT, ''))}


def _delete(iptables, host, rule):
    host.report.object('removed', _describe(rule), _describe(rule))
    if not host.check_mode:
        host.run([iptables, '-w', '5', '-D', CHAIN] + rule.split())


def ensure_rules(node, host):
    """Our DOCKER-USER rules where Docker is installed (or enabled in the contract); else none of ours."""
    iptables = _iptables()
    wanted = wanted_rules(node.network) if node['docker']['enabled'] or docker_installed() else []
    if iptables is None:
        if wanted:
            host.report.warnings.append('iptables not found: Docker\'s FORWARD policy (DROP) may cut the overlay on this host')
        return
    current = _ours(iptables, host)
    if current is None and not wanted:
        return
    if current is None:
        # Docker is not running yet (boot) or was flushed (nftables.service): the chain Docker uses
        # as it is, so that our rules come before its own from the start
        host.report.object('added', {'type': 'iptables', 'name': CHAIN, 'detail': 'chain'})
        if not host.check_mode:
            host.run([iptables, '-w', '5', '-N', CHAIN])
        current = []
    kept = set()
    for rule in current:
        if rule not in wanted or rule in kept:  # another network's, or a second copy
            _delete(iptables, host, rule)
        kept.add(rule)
    for position, rule in enumerate(wanted, 1):
        if rule in current:
            host.report.unchanged(_describe(rule))
            continue
        host.report.object('added', _describe(rule))
        if not host.check_mode:
            host.run([iptables, '-w', '5', '-I', CHAIN, str(position)] + rule.split())


def remove_rules(host):
    """Take our DOCKER-USER rules away (the chain is Docker's: it stays)."""
    iptables = _iptables()
    if iptables is None:
        return
    for rule in _ours(iptables, host) or []:
        _delete(iptables, host, rule)
