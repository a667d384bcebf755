#!/usr/bin/python
# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: vxlan
short_description: Manage a flannel-style VXLAN device (VTEP)
version_added: 0.1.0
description:
  - Creates, updates or removes one VXLAN device of a flannel-style mesh, like C(flannel.1) - a VNI, a local
    underlay address and device, a UDP port, learning off, an explicit MAC, an MTU, the node subnet's network
    address as a host address, and the device up.
  - The MAC is set when the device is created, so that udev's C(MACAddressPolicy) cannot rewrite it and peers
    never keep a stale FDB entry after a reboot.
  - MTU, MAC, learning and up are changed in place. The VNI, the UDP port, the local address and the underlay
    device identify the tunnel; the kernel refuses to change the first two in place (EOPNOTSUPP). A difference
    in any of them fails with a message naming the attribute, unless O(recreate=true) allows deleting and
    recreating the device.
  - Addresses on the device other than O(address) (and the IPv6 link-local address) are removed.
  - The remote peers of the VTEP are programmed by M(overlay.mesh.peers).
author:
  - overlay.mesh contributors (!UNKNOWN)
extends_documentation_fragment:
  - overlay.mesh.attributes
  - overlay.mesh.attributes.NETLINK
options:
  name:
    description:
      - Name of the VXLAN device, at most 15 characters, for example V(flannel.1).
    type: str
    required: true
  state:
    description:
      - V(present) makes the device exist as described; V(absent) removes it (only if it is a VXLAN device).
    type: str
    choices: [present, absent]
    default: present
  vni:
    description:
      - VXLAN network identifier, 1-16777215. Required with O(state=present).
    type: int
  local:
    description:
      - The host's underlay address (IPv4 or IPv6) used as the tunnel source. It must be configured on an interface
        of the host. Required with O(state=present).
    type: str
  underlay_device:
    description:
      - The underlay interface. Defaults to the interface that holds O(local).
    type: str
  port:
    description:
      - UDP destination port.
    type: int
    default: 8472
  learning:
    description:
      - Whether the device learns remote MACs from received packets. A flannel-style mesh programs its FDB and keeps
        learning off.
    type: bool
    default: false
  mac:
    description:
      - MAC address of the device, unicast and locally administered (for example V(02:6a:4f:10:00:01)). Required with
        O(state=present), so that it never changes.
    type: str
  mtu:
    description:
      - MTU of the device. Defaults to the underlay device's MTU minus 50 for an IPv4 underlay, minus 70 for IPv6.
    type: int
  address:
    description:
      - The device's overlay address - the node subnet's network address, as V(10.244.1.0), V(10.244.1.0/32) or
        V(fd00:244:1::/128). Other addresses on the device are removed.
      - Leave it out to manage no address at all.
    type: str
  recreate:
    description:
      - Allow deleting and recreating the device when an attribute that cannot change in place differs
        (O(vni), O(port), O(local), O(underlay_device)). The device's neighbours, FDB entries and routes go with it
        until M(overlay.mesh.peers) runs again.
    type: bool
    default: false
seealso:
  - module: overlay.mesh.peers
  - module: overlay.mesh.bridge
'''

EXAMPLES = r'''
- name: VTEP of the mesh, VNI 1, through eth0
  overlay.mesh.vxlan:
    name: flannel.1
    vni: 1
    local: 192.0.2.11
    underlay_device: eth0
    mac: 02:6a:4f:10:00:01
    address: 10.244.1.0/32

- name: IPv6 underlay, MTU computed as the underlay MTU minus 70
  overlay.mesh.vxlan:
    name: flannel-v6.1
    vni: 1
    local: 2001:db8::11
    mac: 02:6a:4f:60:00:01
    address: fd00:244:1::/128

- name: Move the VTEP to another VNI (drops its peers until overlay.mesh.peers runs again)
  overlay.mesh.vxlan:
    name: flannel.1
    vni: 2
    local: 192.0.2.11
    mac: 02:6a:4f:10:00:01
    recreate: true

- name: Remove the VTEP
  overlay.mesh.vxlan:
    name: flannel.1
    state: absent
'''

RETURN = r'''
added:
  description: Kernel objects added (or that would be, in check mode) - the C(link) and its C(address).
  returned: always
  type: list
  elements: dict
  sample:
    - {type: link, name: flannel.1, kind: vxlan, vni: 1, local: 192.0.2.11, underlay_device: eth0, port: 8472,
       learning: false, mac: "02:6a:4f:10:00:01", mtu: 1450, up: true}
    - {type: address, dev: flannel.1, address: 10.244.1.0/32}
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
  description: The device as it is after the run (as it would be, in check mode); empty when absent.
  returned: always
  type: dict
  sample: {type: link, name: flannel.1, kind: vxlan, vni: 1, local: 192.0.2.11, underlay_device: eth0, port: 8472,
           learning: false, mac: "02:6a:4f:10:00:01", mtu: 1450, up: true}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_module as glue
from ansible_collections.overlay.mesh.plugins.module_utils._backends import vxlan as backend


def reconcile(module):
    changes = backend.reconcile_vtep(module.params, check_mode=module.check_mode)
    return glue.results(module, [changes], device=glue.device_after(changes, module.params['name']))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            vni=dict(type='int'),
            local=dict(type='str'),
            underlay_device=dict(type='str'),
            port=dict(type='int', default=backend.DEFAULT_PORT),
            learning=dict(type='bool', default=False),
            mac=dict(type='str'),
            mtu=dict(type='int'),
            address=dict(type='str'),
            recreate=dict(type='bool', default=False),
        ),
        required_if=[('state', 'present', ('vni', 'local', 'mac'))],
        supports_check_mode=True,
    )
    glue.run(module, lambda: reconcile(module))


if __name__ == '__main__':
    main()
