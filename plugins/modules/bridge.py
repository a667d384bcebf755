#!/usr/bin/python
# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: bridge
short_description: Manage the per-host container bridge (cni0 / docker0 style)
version_added: 0.1.0
description:
  - Creates, updates or removes the Linux bridge that containers of one host attach to - an explicit MAC, an MTU,
    the gateway address(es) of the node subnet, and the bridge up.
  - The MAC is set when the bridge is created (a bridge otherwise takes the lowest MAC of its ports and changes
    it when ports come and go).
  - Addresses on the bridge other than O(addresses) (and the IPv6 link-local address) are removed. Ports of the
    bridge are not managed.
author:
  - overlay.mesh contributors (!UNKNOWN)
extends_documentation_fragment:
  - overlay.mesh.attributes
  - overlay.mesh.attributes.NETLINK
options:
  name:
    description:
      - Name of the bridge, at most 15 characters, for example V(cni0).
    type: str
    required: true
  state:
    description:
      - V(present) makes the bridge exist as described; V(absent) removes it (only if it is a bridge).
    type: str
    choices: [present, absent]
    default: present
  addresses:
    description:
      - Gateway addresses with prefix length, for example V(10.244.1.1/24) and V(fd00:244:1::1/64).
    type: list
    elements: str
    default: []
  mac:
    description:
      - MAC address of the bridge, unicast and locally administered. Required with O(state=present).
    type: str
  mtu:
    description:
      - MTU of the bridge, usually the VTEP's MTU. Left as it is when not given.
    type: int
seealso:
  - module: overlay.mesh.vxlan
'''

EXAMPLES = r'''
- name: Container bridge with the first address of the node subnet
  overlay.mesh.bridge:
    name: cni0
    addresses:
      - 10.244.1.1/24
    mac: 02:6a:4f:20:00:01
    mtu: 1450

- name: Remove the bridge
  overlay.mesh.bridge:
    name: cni0
    state: absent
'''

RETURN = r'''
added:
  description: Kernel objects added (or that would be, in check mode) - the C(link) and its C(address)es.
  returned: always
  type: list
  elements: dict
  sample:
    - {type: link, name: cni0, kind: bridge, mac: "02:6a:4f:20:00:01", mtu: 1450, up: true}
    - {type: address, dev: cni0, address: 10.244.1.1/24}
updated:
  description: Kernel objects changed in place, as they are after the change.
  returned: always
  type: list
  elements: dict
  sample: []
removed:
  description: Kernel objects removed, as they were.
  returned: always
  type: list
  elements: dict
  sample: []
device:
  description: The bridge as it is after the run (as it would be, in check mode); empty when absent.
  returned: always
  type: dict
  sample: {type: link, name: cni0, kind: bridge, mac: "02:6a:4f:20:00:01", mtu: 1450, up: true}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_module as glue
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_links import reconcile_bridge


def reconcile(module):
    changes = reconcile_bridge(module.params, check_mode=module.check_mode)
    return glue.results(module, [changes], device=glue.device_after(changes, module.params['name']))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            addresses=dict(type='list', elements='str', default=[]),
            mac=dict(type='str'),
            mtu=dict(type='int'),
        ),
        required_if=[('state', 'present', ('mac',))],
        supports_check_mode=True,
    )
    glue.run(module, lambda: reconcile(module))


if __name__ == '__main__':
    main()
