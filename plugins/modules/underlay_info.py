#!/usr/bin/python
# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
module: underlay_info
short_description: Find the interface and address a host uses to reach the other hosts of the overlay
version_added: 0.1.0
description:
  - Chooses the underlay of a host the way flannel does, in this order of preference
    an explicit address (O(address)), an explicit interface (O(interface)),
    the interface that reaches a given address (O(reach)), else the interface of the default route.
  - Reads only; changes nothing on the host.
author:
  - overlay.mesh contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: It only reads.
  diff_mode:
    support: none
    details: Nothing to show; it changes nothing.
  platform:
    platforms: linux
options:
  address:
    description:
      - Use this address as the underlay address; it must be configured on an interface of the host.
    type: str
  interface:
    description:
      - Use this interface, and its first global address of O(family).
    type: str
  reach:
    description:
      - Use the interface and source address the host's routing table picks to reach this address.
    type: str
  family:
    description:
      - Address family of the underlay.
    type: str
    choices: [ipv4, ipv6]
    default: ipv4
requirements:
  - iproute2 (C(ip -j))
"""

EXAMPLES = r"""
- name: Find the underlay (default route's interface)
  overlay.mesh.underlay_info:
  register: underlay

- name: Find the underlay that reaches the other hosts' network
  overlay.mesh.underlay_info:
    reach: 198.18.0.1

- name: Use an explicit interface
  overlay.mesh.underlay_info:
    interface: bond0
"""

RETURN = r"""
interface:
  description: Name of the underlay interface.
  returned: success
  type: str
  sample: eth0
address:
  description: The host's underlay address on O(interface).
  returned: success
  type: str
  sample: 198.18.48.11
prefixlen:
  description: Prefix length of RV(address) on its interface.
  returned: success
  type: int
  sample: 24
network:
  description: The underlay network of RV(address), in CIDR notation.
  returned: success
  type: str
  sample: 198.18.48.0/24
mtu:
  description: MTU of the underlay interface.
  returned: success
  type: int
  sample: 1500
family:
  description: Address family of the underlay.
  returned: success
  type: str
  sample: ipv4
chosen_by:
  description: Which rule chose the underlay (address, interface, reach or default_route).
  returned: success
  type: str
  sample: default_route
"""

import ipaddress
import json

from ansible.module_utils.basic import AnsibleModule


class UnderlayError(Exception):
    pass


def _ip_json(module, *args):
    rc, out, err = module.run_command(['ip', '-j'] + list(args))
    if rc != 0:
        raise UnderlayError('ip %s failed: %s' % (' '.join(args), err.strip() or out.strip()))
    return json.loads(out or '[]')


def _global_addresses(links, family):
    """(interface, address, prefixlen, mtu) of every global address of the family."""
    wanted = 'inet' if family == 'ipv4' else 'inet6'
    for link in links:
        for info in link.get('addr_info', []):
            if info.get('family') == wanted and info.get('scope') == 'global':
                yield link['ifname'], info['local'], int(info['prefixlen']), int(link.get('mtu', 1500))


def choose_underlay(links, params, route_lookup):
    """Pick the underlay from `ip -j addr` output, as documented. route_lookup(dest) returns (dev, src)."""
    family = params['family']
    addresses = list(_global_addresses(links, family))
    if params['address']:
        wanted = ipaddress.ip_address(params['address'])
        for found in addresses:
            if ipaddress.ip_address(found[1]) == wanted:
                return found, 'address'
        raise UnderlayError('underlay address %s (option address) is not configured on any interface of this host' % wanted)
    if params['interface']:
        names = [link['ifname'] for link in links]
        if params['interface'] not in names:
            raise UnderlayError('underlay interface %s (option interface) does not exist on this host' % params['interface'])
        for found in addresses:
            if found[0] == params['interface']:
                return found, 'interface'
        raise UnderlayError('underlay interface %s (option interface) has no global %s address' % (params['interface'], family))
    if params['reach']:
        dev, src = route_lookup(params['reach'])
        chosen_by = 'reach'
    else:
        dev, src = route_lookup(None)
        chosen_by = 'default_route'
    for found in addresses:
        if found[0] == dev and (src is None or ipaddress.ip_address(found[1]) == ipaddress.ip_address(src)):
            return found, chosen_by
    for found in addresses:
        if found[0] == dev:
            return found, chosen_by
    raise UnderlayError('interface %s (chosen by %s) has no global %s address' % (dev, chosen_by.replace('_', ' '), family))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            address=dict(type='str'),
            interface=dict(type='str'),
            reach=dict(type='str'),
            family=dict(type='str', choices=['ipv4', 'ipv6'], default='ipv4'),
        ),
        supports_check_mode=True,
    )
    params = module.params
    family_flag = '-4' if params['family'] == 'ipv4' else '-6'

    def route_lookup(destination):
        if destination:
            try:
                ipaddress.ip_address(destination)
            except ValueError:
                raise UnderlayError('reach: %r is not an IP address' % destination)
            routes = _ip_json(module, family_flag, 'route', 'get', destination)
            if not routes:
                raise UnderlayError('no route to %s (option reach)' % destination)
        else:
            routes = _ip_json(module, family_flag, 'route', 'show', 'default')
            if not routes:
                raise UnderlayError('this host has no %s default route; set interface, address or reach' % params['family'])
        return routes[0]['dev'], routes[0].get('prefsrc')

    try:
        for option in ('address', 'reach'):
            if params[option]:
                try:
                    ipaddress.ip_address(params[option])
                except ValueError:
                    raise UnderlayError('%s: %r is not an IP address' % (option, params[option]))
        (interface, address, prefixlen, mtu), chosen_by = choose_underlay(_ip_json(module, 'addr', 'show'), params, route_lookup)
    except UnderlayError as exc:
        module.fail_json(msg=str(exc))
    network = ipaddress.ip_interface('%s/%d' % (address, prefixlen)).network
    module.exit_json(changed=False, interface=interface, address=address, prefixlen=prefixlen, network=str(network),
                     mtu=mtu, family=params['family'], chosen_by=chosen_by)


if __name__ == '__main__':
    main()
