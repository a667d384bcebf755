#!/usr/bin/python
# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: node_info
short_description: Read what a host of the overlay is and has - underlay, stable MACs, applied node contract
version_added: 0.2.0
description:
  - Reads, changes nothing. The mesh_node role runs it first on every host, before any change; the verify playbook
    and tests use it instead of reading the collection's private files.
  - RV(node) is the contract M(overlay.mesh.node) applied last (C(/etc/overlay-mesh/node.json)), and RV(overlay) the
    values derived from it (bridge gateway, MTU, backend device and ports).
  - RV(identity) gives the MACs the host's bridge and backend device have or will have - the saved ones for the same
    device names, else derived from C(/etc/machine-id) and the device name - and what the host publishes to its
    peers (RV(identity.publish)).
  - With O(underlay), the underlay is found as M(overlay.mesh.underlay_info) does.
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
  underlay:
    description:
      - Find the underlay - O(underlay.address), else O(underlay.interface), else the interface that reaches
        O(underlay.reach), else the default route's interface. Left out, RV(underlay) is not returned.
    type: dict
    suboptions:
      address:
        description: Use this address, configured on an interface of the host.
        type: str
      interface:
        description: Use this interface and its first global address.
        type: str
      reach:
        description: Use the interface and source address that reach this address.
        type: str
      family:
        description: Address family of the underlay; that of O(underlay.address) or O(underlay.reach) by default, else V(ipv4),
          or V(ipv6) on a host without an IPv4 underlay.
        type: str
        choices: [ipv4, ipv6]
      host:
        description: The host's inventory hostname, named by the errors (else they say "this host").
        type: str
      variables:
        description:
          - "Option (V(address), V(interface), V(reach)) to the variable that sets it, for example
            V({interface: mesh_node_underlay_interface}); the errors name that variable instead of the option."
        type: dict
  bridge:
    description:
      - The container bridge, as in M(overlay.mesh.node) (its name decides its MAC).
    type: dict
    default: {}
  backend:
    description:
      - The backend, as in M(overlay.mesh.node) (its device name decides its MAC).
    type: dict
    default: {type: vxlan}
  prerequisites:
    description:
      - Check that the host has what these uses need, and report what is missing in RV(prerequisites). V(node) -
        pyroute2 for the system python3, C(nft), C(ip), C(systemctl); V(verify) - the CNI C(bridge) and C(host-local)
        plugins, C(ping).
    type: list
    elements: str
    choices: [node, verify]
    default: []
  files:
    description:
      - The files a node would write, given by their options in M(overlay.mesh.node) - C(subnet_env) and C(cni) (its
        C(conf_dir) and C(network_name)), their defaults where left out. When given, RV(files_refused) says why the
        node would refuse them - a file there that overlay.mesh does not own, a parent that is not a directory - so
        that a play can stop every host before any change.
    type: dict
  drift:
    description:
      - Compare the host with its applied node contract and return in RV(drift) what differs - the bridge (down,
        wrong address), the backend's device and its routes, neighbours and FDB entries, the kernel settings
        (forwarding), the overlay's nftables table - as the changes M(overlay.mesh.node) would make, in check mode
        (the same code; nothing is changed).
    type: bool
    default: false
requirements:
  - iproute2 (C(ip -j)), for O(underlay)
seealso:
  - module: overlay.mesh.node
  - module: overlay.mesh.underlay_info
'''

EXAMPLES = r'''
- name: Read the applied node
  overlay.mesh.node_info:
  register: node

- name: Ping the bridge gateway of another host
  ansible.builtin.command: ping -c 1 {{ hostvars['node2'].node.overlay.gateway }}
  changed_when: false

- name: Find the underlay and the MACs before a first run
  overlay.mesh.node_info:
    underlay: {reach: 198.18.0.1}
    backend: {type: vxlan, vni: 4}
'''

RETURN = r'''
drift:
  description: With O(drift), what differs from the applied contract, one line per object as a run would set it, with
    (missing), (differs, wanted as shown) or (not ours to keep); empty when the host is as applied (or is not a node).
  returned: when O(drift) is true
  type: list
  elements: str
  sample: ["link cni0 bridge mac 02:5e:11:a0:3c:02 mtu 1450 up (differs, wanted as shown)",
           "sysctl net.ipv4.ip_forward = 1 (differs, wanted as shown)"]
node:
  description: The applied node contract (C(docs/node.md)); empty when the host is not a node.
  returned: unless O(prerequisites) has V(node) and the host lacks something a node needs
  type: dict
overlay:
  description:
    - Values derived from RV(node); empty when the host is not a node.
    - C(ports) are the C([protocol, port]) the backend receives on, C(ip_protocols) the IP protocol numbers it
      receives (a tunnel without ports); the host's nftables table lets only peers send to either.
  returned: unless O(prerequisites) has V(node) and the host lacks something a node needs
  type: dict
  sample: {backend: vxlan, device: mesh.1, ports: [[udp, 8472]], ip_protocols: [], bridge: cni0, gateway: 10.244.1.1,
           vtep_address: 10.244.1.0, subnet: 10.244.1.0/24, network: 10.244.0.0/16, mtu: 1450, underlay: 198.18.0.11,
           peers: 2}
record:
  description: The host's own lease record (C(network), C(subnet), C(underlay) and what it publishes), from the applied
    contract; the lease file is rebuilt from these when it is lost.
  returned: unless O(prerequisites) has V(node) and the host lacks something a node needs
  type: dict
  sample: {network: 10.244.0.0/16, subnet: 10.244.1.0/24, underlay: 198.18.0.11, vtep_mac: "02:5e:11:a0:3c:01"}
last_apply:
  description: The last apply of the node since the host booted - by a site run (C(by=ansible)) or by the boot-time
    reapply (C(by=boot), C(boot --only nftables) after C(nftables.service) restarted) - from
    C(/run/overlay-mesh/last-apply.json); empty when there was none. C(result) is V(ok) or V(failed), C(time) seconds
    since the epoch, C(changes) the number of objects changed, C(message) why it failed.
  returned: always
  type: dict
  sample: {result: ok, time: 1796115000.5, by: ansible, changes: 12, message: ""}
identity:
  description: The MACs of the bridge and the backend device, and what the host publishes to its peers.
  returned: unless O(prerequisites) has V(node) and the host lacks something a node needs
  type: dict
  contains:
    bridge:
      description: The bridge's name and MAC.
      type: dict
      returned: always
    backend:
      description: The backend's options with its device name and MAC filled in.
      type: dict
      returned: always
    publish:
      description: What peers need of this host, for example C(vtep_mac).
      type: dict
      returned: always
    source:
      description: Where the bridge MAC came from - V(saved), V(first release) (C(identity.json) of version 0.1),
        V(derived) (from C(/etc/machine-id)) or V(given).
      type: str
      returned: always
    keys_missing:
      description: Whether the backend needs a key pair (WireGuard) that the host does not have yet; the role then
        makes one before the leases are written.
      type: bool
      returned: always
files_refused:
  description: With O(files), why M(overlay.mesh.node) would refuse those files on this host (naming each path and its
    role variable), else an empty string.
  returned: when O(files) is given
  type: str
prerequisites:
  description: What the host lacks for the uses in O(prerequisites), with the package that brings it on its
    distribution family, and a one-line C(message) (empty when nothing is missing).
  returned: always
  type: dict
  sample: {os_family: debian, missing: [{need: nft, package: nftables}], message: "missing nft: apt install nftables"}
underlay:
  description: The underlay, as M(overlay.mesh.underlay_info) returns it (interface, address, prefixlen, network, mtu,
    family, chosen_by).
  returned: when O(underlay) is given
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.overlay.mesh.plugins.module_utils import _node_module
from ansible_collections.overlay.mesh.plugins.module_utils._backends import registry


def main():
    module = AnsibleModule(
        argument_spec=dict(
            underlay=dict(type='dict', options=dict(
                address=dict(type='str'),
                interface=dict(type='str'),
                reach=dict(type='str'),
                family=dict(type='str', choices=['ipv4', 'ipv6']),
                host=dict(type='str'),
                variables=dict(type='dict'),
            )),
            bridge=dict(type='dict', default={}),
            backend=dict(type='dict', default={'type': registry.DEFAULT}),
            prerequisites=dict(type='list', elements='str', choices=['node', 'verify'], default=[]),
            drift=dict(type='bool', default=False),
            files=dict(type='dict'),
        ),
        supports_check_mode=True,
    )
    _node_module.run_node_info(module)


if __name__ == '__main__':
    main()
