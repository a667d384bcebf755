# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""flannel's subnet.env: read back into a host record, and written for a lease (the 0.1 subnet_env filter).
The text itself is _node_files.subnet_env's, the one the node writes. Pure logic (no Ansible imports).
"""

from __future__ import annotations

import ipaddress

from ansible_collections.overlay.mesh.plugins.module_utils import _node_files
from ansible_collections.overlay.mesh.plugins.plugin_utils._lease_pool import FIELD_V4, FIELD_V6, LeaseError, _text


def parse_subnet_env(text):
    """Read a flannel ``subnet.env`` back into a host record (``subnet``/``ipv6_subnet``, ``network``/``ipv6_network``).

    flannel itself re-uses the subnet found in an old subnet.env; the hosts' copies of the
    file are therefore a record the lease file can be rebuilt from.
    """
    values = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition('=')
        if sep:
            values[key.strip()] = value.strip().strip('"\'')
    record = {}
    for net_key, sub_key in (('FLANNEL_NETWORK', 'FLANNEL_SUBNET'), ('FLANNEL_IPV6_NETWORK', 'FLANNEL_IPV6_SUBNET')):
        if sub_key not in values:
            continue
        iface = ipaddress.ip_interface(values[sub_key])
        field = FIELD_V4 if iface.version == 4 else FIELD_V6
        record[field] = str(iface.network)
        if net_key in values:
            record['ipv6_network' if field == FIELD_V6 else 'network'] = values[net_key]
    return record


def _network_checked(value, label, problems):
    """The strict ``ipaddress`` network of ``value``, or None after adding a problem."""
    try:
        return ipaddress.ip_network(_text(value))
    except ValueError as exc:
        problems.append('%s: %s' % (label, exc))
        return None


def subnet_env(lease, network, mtu, ipmasq=True, ipv6_network=None):
    """flannel's /run/flannel/subnet.env text for one lease.

    FLANNEL_SUBNET is the first usable address of the host's subnet with the subnet length
    (10.244.1.0/24 -> 10.244.1.1/24), as flannel writes it.
    """
    problems = []
    if not isinstance(lease, dict):
        raise LeaseError(['lease: expected a mapping with subnet (and ipv6_subnet), got %r' % (lease,)])
    if isinstance(mtu, bool) or not isinstance(mtu, int) or not 68 <= mtu <= 65535:
        problems.append('mtu: %r is not an MTU (68 to 65535)' % (mtu,))
    if not isinstance(ipmasq, bool):
        problems.append('ipmasq: %r is not a boolean' % (ipmasq,))
    pairs = {}
    for name, net_text in (('network', network), ('ipv6_network', ipv6_network)):
        if net_text is None:
            continue
        net = _network_checked(net_text, name, problems)
        if net is None:
            continue
        field = FIELD_V4 if net.version == 4 else FIELD_V6
        if lease.get(field) is None:
            problems.append('lease: no %s for %s %s' % (field, name, net))
            continue
        sub = _network_checked(lease[field], 'lease ' + field, problems)
        if sub is None:
            continue
        if sub.version != net.version or not sub.subnet_of(net):
            problems.append('lease %s: %s lies outside %s %s' % (field, sub, name, net))
            continue
        if net.version in pairs:
            problems.append('%s: a second IPv%d network' % (name, net.version))
            continue
        pairs[net.version] = (net, sub)
    if not pairs and not problems:
        problems.append('network: required')
    if problems:
        raise LeaseError(problems)
    return _node_files.subnet_env(*(pairs.get(4, (None, None)) + (mtu, ipmasq) + pairs.get(6, (None, None))))
