# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Texts a node writes for other software: flannel's subnet.env, the CNI network, systemd-networkd's
hands-off file and the boot-time unit (Docker's settings: _docker.py).
Standard library only."""

from __future__ import annotations

import json
import os
import re

from ansible_collections.overlay.mesh.plugins.module_utils import _host
from ansible_collections.overlay.mesh.plugins.module_utils._errors import OverlayMeshError

BOOT_UNIT = 'overlay-mesh.service'
APPLY_COMMAND = _host.LIB_DIR + '/overlay-mesh-apply'
AGENT_UNIT = 'overlay-mesh-agent.service'
AGENT_COMMAND = _host.LIB_DIR + '/overlay-mesh-agent'
# The highest etcd revision the agent applied: a list below it means etcd went back in time (docs/agent.md).
AGENT_MARK_FILE = _host.STATE_DIR + '/agent-revision.json'


def subnet_env(network, subnet, mtu, ipmasq=True, ipv6_network=None, ipv6_subnet=None):
    """flannel's /run/flannel/subnet.env: FLANNEL_SUBNET is the subnet's first address with its length;
    a dual-stack overlay adds FLANNEL_IPV6_NETWORK and FLANNEL_IPV6_SUBNET, as flannel does (an IPv6-only one,
    network None, has only those: the subnet_env filter's leases)."""
    lines = []
    if network and subnet:
        lines += ['FLANNEL_NETWORK=%s' % network, 'FLANNEL_SUBNET=%s/%d' % (subnet.network_address + 1, subnet.prefixlen)]
    if ipv6_network and ipv6_subnet:
        lines += ['FLANNEL_IPV6_NETWORK=%s' % ipv6_network,
                  'FLANNEL_IPV6_SUBNET=%s/%d' % (ipv6_subnet.network_address + 1, ipv6_subnet.prefixlen)]
    lines.append('FLANNEL_MTU=%d' % mtu)
    lines.append('FLANNEL_IPMASQ=%s' % ('true' if ipmasq else 'false'))
    return '\n'.join(lines) + '\n'


def cni_conflist(node):
    """A CNI network of this host's subnet (its lower half beside Docker): the bridge plugin on the
    node's bridge, host-local IPAM. The node's nftables table masquerades what leaves the overlay,
    so the plugin does not. Then portmap, as in flannel's conflist: a runtime's published ports
    (`podman run -p`, the portMappings capability) become DNAT rules of the host's iptables (nat table,
    CNI-HOSTPORT-* chains), reachable from the underlay and other hosts; snat masquerades a container
    that reaches its own published port (hairpin) and connections to 127.0.0.1. The host's
    iptables is needed only when a container publishes a port: without mappings portmap passes."""
    ranges = [[{'subnet': str(node.bridge_subnet), 'gateway': str(node.gateway)}]]
    routes = [{'dst': '0.0.0.0/0'}]
    if node.ipv6_subnet:  # a dual-stack overlay: both families in every container
        ranges.append([{'subnet': str(node.ipv6_subnet), 'gateway': str(node.gateway6)}])
        routes.append({'dst': '::/0'})
    ipam_range = json.dumps(ranges)
    return '\n'.join([
        '{',
        '  "cniVersion": "1.0.0",',
        '  "name": %s,' % json.dumps(node['cni']['network_name']),
        '  "plugins": [',
        '    {',
        '      "type": "bridge",',
        '      "bridge": %s,' % json.dumps(node.bridge['name']),
        '      "isGateway": true,',
        '      "ipMasq": false,',
        '      "hairpinMode": true,',
        '      "mtu": %d,' % node.mtu,
        '      "ipam": {',
        '        "type": "host-local",',
        '        "ranges": %s,' % ipam_range,
        '        "routes": %s' % json.dumps(routes),
        '      }',
        '    },',
        '    {',
        '      "type": "portmap",',
        '      "capabilities": {"portMappings": true},',
        '      "snat": true',
        '    }',
        '  ]',
        '}',
    ]) + '\n'


def cni_conflist_path(data):
    return '%s/10-%s.conflist' % (data['cni']['conf_dir'].rstrip('/'), data['cni']['network_name'])


# ---- the files a setting places: written only over what is ours, removed only while ours -------------
# A line of flannel's subnet.env format (flanneld's own /run/flannel/subnet.env is taken over on purpose).
SUBNET_ENV_LINE = re.compile(r'^(#.*|FLANNEL_[A-Z0-9_]+=\S*)?$')
SUBNET_ENV_RULE = 'only comments, blank lines and FLANNEL_* lines, flannel\'s subnet.env format'


class FileRefused(OverlayMeshError):
    """A file the node would write (or its directory) is not the node's to replace; nothing was changed."""


def subnet_env_is_ours(text, _data=None):
    """True when text is flannel's subnet.env format: ours to replace or remove (ours, or flanneld's)."""
    return all(SUBNET_ENV_LINE.match(line.strip()) for line in text.splitlines())


def conflist_is_ours(text, data):
    """True when text is the conflist cni_conflist() writes, of the contract's network: its "name", and its plugins
    the bridge plugin without ipMasq (the node's table masquerades), then portmap. Ours to replace or remove;
    another tool's network of the same name (podman's masquerades, and has a firewall plugin) is not."""
    try:
        conflist = json.loads(text)
    except ValueError:
        return False
    if not isinstance(conflist, dict) or conflist.get('name') != data['cni']['network_name']:
        return False
    plugins = conflist.get('plugins')
    if not isinstance(plugins, list) or not plugins or not all(isinstance(plugin, dict) for plugin in plugins):
        return False
    return [plugin.get('type') for plugin in plugins] in (['bridge'], ['bridge', 'portmap']) and plugins[0].get('ipMasq') is False


def placed_files(data):
    """The files of a (saved or new) contract whose place a role variable gives:
    (what, path, the role variable(s), is_ours(text, data), the rule for messages)."""
    result = []
    if data.get('subnet_env'):
        result.append(('subnet.env', data['subnet_env'], 'mesh_node_subnet_env_file', subnet_env_is_ours, SUBNET_ENV_RULE))
    if (data.get('cni') or {}).get('conf_dir') and data['cni'].get('network_name'):
        result.append(('CNI conflist', cni_conflist_path(data), 'mesh_node_cni_conf_dir, mesh_node_cni_network_name',
                       conflist_is_ours, 'the conflist of network %s: the bridge plugin without ipMasq, then portmap'
                       % data['cni']['network_name']))
    return result


def _foreign(host, path, is_ours, data):
    """Why the file at path is not ours to replace or remove, or None (ours, or no file there)."""
    if not os.path.lexists(path):
        return None
    if os.path.isdir(path):
        return 'is a directory'
    if not os.path.isfile(path):
        return 'is not a regular file'
    try:
        text = host.read(path, binary=True).decode('utf-8')
    except UnicodeDecodeError:
        return 'holds binary data'
    return None if is_ours(text, data) else 'holds what overlay.mesh did not write'


def _parent_problem(path):
    """Why the directory of path can be neither used nor made, or None: the nearest existing ancestor must be a
    directory."""
    parent = os.path.dirname(path)
    while parent and not os.path.lexists(parent):
        parent = os.path.dirname(parent)
    if parent and not os.path.isdir(parent):
        return '%s is not a directory' % parent
    return None


def check_placed(data, host):
    """Before any change: every placed file's directory can be made and its current file is ours (or absent).
    Raises FileRefused naming each path, its role variable and why (check mode says the same)."""
    problems = []
    for what, path, variable, is_ours, rule in placed_files(data):
        reason = _parent_problem(path)
        if reason is None:
            reason = _foreign(host, path, is_ours, data)
            if reason is not None and reason.startswith('holds'):
                reason += ' (ours: %s)' % rule
        if reason is not None:
            problems.append('%s %s (role variable %s): %s' % (what, path, variable, reason))
    if problems:
        raise FileRefused('not writing over what is not overlay.mesh\'s, nothing changed: %s; move that file away or'
                          ' choose another path' % '; '.join(problems))


def remove_placed(data, host, keep=()):
    """Remove the placed files of a saved contract (but not the paths in keep) that are still ours; one that is not
    is left where it is, with a warning."""
    for what, path, variable, is_ours, rule in placed_files(data or {}):
        if path in keep or not os.path.lexists(path):
            continue
        reason = _foreign(host, path, is_ours, data)
        if reason is None:
            host.remove(path)
        else:
            host.report.warnings.append('left %s %s (role variable %s) in place: it %s (ours: %s); overlay.mesh wrote it'
                                        ' once, remove it yourself if it is no longer needed' % (what, path, variable, reason, rule))


def networkd_unmanaged(devices):
    return ('# Written by overlay.mesh: it owns these devices. systemd-networkd must neither configure them\n'
            '# nor remove their routes (ManageForeignRoutes) when it reconfigures them.\n'
            '[Match]\nName=%s\n\n[Link]\nUnmanaged=yes\n' % ' '.join(devices))


def sysctl_conf(settings):
    return ('# Written by overlay.mesh: forwarding for the container subnet, loose reverse-path filtering\n'
            '# on the overlay\'s devices (systemd\'s default rp_filter must not drop overlay traffic).\n'
            + ''.join('%s = %s\n' % (key, value) for key, value in settings))


BOOT_UNIT_TEXT = '''# Written by overlay.mesh: reapplies the node after a reboot, without the controller, with the
# engine the overlay.mesh.node module installed, from the state it saved.
[Unit]
Description=overlay.mesh: reapply the node (bridge, backend, peers, nftables table, sysctls, files)
Wants=network-online.target
After=network-online.target nftables.service systemd-sysctl.service
Before=containerd.service docker.service crio.service kubelet.service podman.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/bin/python3 %(command)s %(state)s

[Install]
WantedBy=multi-user.target
''' % {'command': APPLY_COMMAND, 'state': _host.NODE_FILE}

# nftables.service runs `nft -f /etc/nftables.conf` (Debian's starts with `flush ruleset`) when it
# starts or reloads, and `nft flush ruleset` when it stops: each time, the overlay's table (its
# masquerade, forwarding and peers-only rules) is put back at once.
NFTABLES_DROPIN = ('nftables.service', 'overlay-mesh.conf')
NFTABLES_DROPIN_TEXT = '''# Written by overlay.mesh: nftables.service flushes the whole ruleset when it starts, reloads or
# stops; put the overlay's own table back each time (the leading "-": never fail nftables.service).
[Service]
ExecStartPost=-/usr/bin/python3 %(command)s --only nftables %(state)s
ExecReload=-/usr/bin/python3 %(command)s --only nftables %(state)s
ExecStopPost=-/usr/bin/python3 %(command)s --only nftables %(state)s
''' % {'command': APPLY_COMMAND, 'state': _host.NODE_FILE}

AGENT_UNIT_TEXT = '''# Written by overlay.mesh (mesh_node_agent): follows the leases in etcd and applies them to this host's
# peers without a controller run (docs/agent.md). It starts after the boot-time reapply; with etcd
# unreachable the saved contract stands.
[Unit]
Description=overlay.mesh node agent: the peers follow the leases in etcd
Wants=network-online.target
After=network-online.target %(boot)s

[Service]
Type=simple
ExecStart=/usr/bin/python3 %(command)s %(state)s
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
''' % {'command': AGENT_COMMAND, 'state': _host.NODE_FILE, 'boot': BOOT_UNIT}
