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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.overlay.mesh.plugins.module_utils import _underlay


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
    try:
        found = _underlay.find(module.params)
    except _underlay.UnderlayError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, **found)


if __name__ == '__main__':
    main()
