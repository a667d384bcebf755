#!/usr/bin/python
# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: peers
short_description: Program the remote peers of a VXLAN VTEP (neighbour, FDB entry, on-link route)
version_added: 0.1.0
description:
  - For every remote peer of one VXLAN device (VTEP), makes the three kernel objects of a flannel-style mesh exist -
    a permanent neighbour entry for the peer subnet's network address with the peer's VTEP MAC, a permanent
    C(self) FDB entry sending that MAC to the peer's underlay address, and an on-link route to the peer subnet
    via its network address.
  - Neighbour and FDB entries are programmed before the route (and a route is never added when its neighbour
    or FDB entry failed), so the kernel never has to ARP for a gateway.
  - Routes are tagged with the collection's own route protocol number (O(route_protocol)), which the module names
    in O(rt_protos_file) so that C(ip route) prints C(proto overlay-mesh).
  - Ownership. The module only ever removes or replaces what it owns - routes of its protocol on the VTEP,
    permanent neighbours on the VTEP, permanent unicast C(self) FDB entries on the VTEP. Routes of other protocols,
    neighbours of other devices and learned FDB entries are never removed or overwritten; a route of another owner
    on a peer's subnet is an error that names it.
  - The work is done by the collection's netlink engine - dump, diff, batched apply, read back - so a run that
    changes nothing or one peer costs a fraction of a second even with thousands of peers.
author:
  - overlay.mesh contributors (!UNKNOWN)
extends_documentation_fragment:
  - overlay.mesh.attributes
  - overlay.mesh.attributes.NETLINK
options:
  vtep:
    description:
      - Name of the VXLAN device the peers are reached through, for example V(flannel.1).
      - With O(state=present) it must exist and be up (create it with M(overlay.mesh.vxlan)); in check mode a missing
        VTEP is reported as everything to be added.
    type: str
    required: true
  peers:
    description:
      - The remote peers.
      - With O(state=present), the peers to program; with O(state=absent), the peers whose entries to remove.
    type: list
    elements: dict
    default: []
    suboptions:
      subnet:
        description:
          - The peer's node subnet, for example V(10.244.2.0/24) or V(fd00:244:2::/64). Host bits must be zero.
          - Its network address is the gateway of the route and the address of the neighbour entry.
        type: str
        required: true
      vtep_mac:
        description:
          - MAC address of the peer's VTEP. Unicast and locally administered.
        type: str
        required: true
      underlay:
        description:
          - The peer's underlay (public) address, the destination of its FDB entry. Same family as the VTEP's local address.
        type: str
        required: true
  state:
    description:
      - V(present) programs the listed peers; V(absent) removes the owned entries of the listed peers.
    type: str
    choices: [present, absent]
    default: present
  exclusive:
    description:
      - With O(state=present), also remove the owned entries on this VTEP of peers that are not listed
        (stale routes, neighbours and FDB entries of removed nodes). Foreign entries stay.
    type: bool
    default: false
  route_protocol:
    description:
      - Route protocol number that marks the routes this module owns. Change it only together with every host.
    type: int
    default: 217
  rt_protos_file:
    description:
      - File that names O(route_protocol) as C(overlay-mesh) for iproute2. Written only when its content differs.
      - Set to an empty string to leave it alone.
    type: path
    default: /etc/iproute2/rt_protos.d/overlay-mesh.conf
seealso:
  - module: overlay.mesh.vxlan
  - module: overlay.mesh.bridge
'''

EXAMPLES = r'''
- name: Program the other hosts of the group as peers of flannel.1
  overlay.mesh.peers:
    vtep: flannel.1
    exclusive: true
    peers:
      - subnet: 10.244.2.0/24
        vtep_mac: 02:6a:4f:10:00:02
        underlay: 192.0.2.12
      - subnet: 10.244.3.0/24
        vtep_mac: 02:6a:4f:10:00:03
        underlay: 192.0.2.13

- name: Build the peer list from the inventory group (not from ansible_play_hosts, which --limit shrinks)
  overlay.mesh.peers:
    vtep: flannel.1
    exclusive: true
    peers: >-
      {{ groups['mesh'] | difference([inventory_hostname])
         | map('extract', hostvars)
         | map(attribute='mesh_peer') | list }}

- name: Remove one peer
  overlay.mesh.peers:
    vtep: flannel.1
    state: absent
    peers:
      - subnet: 10.244.3.0/24
        vtep_mac: 02:6a:4f:10:00:03
        underlay: 192.0.2.13
'''

RETURN = r'''
added:
  description: Kernel objects added (or that would be, in check mode). Each is a dict with a C(type) of
    C(neighbour), C(fdb), C(route) or C(file), and the object's attributes.
  returned: always
  type: list
  elements: dict
  sample:
    - {type: neighbour, dev: flannel.1, address: 10.244.2.0, lladdr: "02:6a:4f:10:00:02", state: permanent}
    - {type: fdb, dev: flannel.1, lladdr: "02:6a:4f:10:00:02", dst: 192.0.2.12, self: true, state: permanent}
    - {type: route, dev: flannel.1, dst: 10.244.2.0/24, gateway: 10.244.2.0, onlink: true, table: main, protocol: overlay-mesh}
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
route_protocol:
  description: The route protocol number of the routes this module owns.
  returned: always
  type: int
  sample: 217
peer_count:
  description: Number of peers in O(peers).
  returned: always
  type: int
  sample: 2
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_module as glue
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_peers as engine
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_validate as validate


def reconcile(module):
    changesets, protocol, warnings = engine.reconcile_peers(module.params, check_mode=module.check_mode, with_current=module._diff)
    for warning in warnings:
        module.warn(warning)
    return glue.results(module, changesets, route_protocol=protocol, peer_count=len(module.params['peers']))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            vtep=dict(type='str', required=True),
            peers=dict(type='list', elements='dict', default=[], options=dict(
                subnet=dict(type='str', required=True),
                vtep_mac=dict(type='str', required=True),
                underlay=dict(type='str', required=True),
            )),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            exclusive=dict(type='bool', default=False),
            route_protocol=dict(type='int', default=validate.ROUTE_PROTOCOL),
            rt_protos_file=dict(type='path', default='/etc/iproute2/rt_protos.d/overlay-mesh.conf'),
        ),
        supports_check_mode=True,
    )
    glue.run(module, lambda: reconcile(module))


if __name__ == '__main__':
    main()
