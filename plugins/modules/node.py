#!/usr/bin/python
# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: node
short_description: Make a host a node of a flannel-style overlay in one call, from its node contract
version_added: 0.2.0
description:
  - Applies the whole node described by its options - the node contract, see C(docs/node.md) - in one call - the
    container bridge, the data path of O(backend) to every peer, kernel settings, the overlay's own nftables table,
    flannel's C(subnet.env), a CNI network, optionally Docker's C(bip) and C(mtu), and a boot-time unit
    (C(overlay-mesh.service)) that reapplies the same contract with the same code after a reboot, without the
    controller.
  - The contract is validated by the same spec on the controller (the P(overlay.mesh.node_contract#filter) filter),
    here and at boot; every problem is reported at once, naming the option.
  - The MACs of the bridge and of the backend's device, when not given, are derived from C(/etc/machine-id) and the
    device name, so every run - two at once included - and every boot gives the same MAC.
  - Nothing the collection does not own is touched - routes of other protocols, other devices, other nftables
    tables, other settings in C(daemon.json). What an earlier contract made and this one does not (another
    backend, a renamed bridge) is removed, as recorded in C(/etc/overlay-mesh/node.json).
  - Two runs at once on one host are serialised by a lock (C(/run/overlay-mesh.lock)).
  - The modules M(overlay.mesh.bridge), M(overlay.mesh.vxlan) and M(overlay.mesh.peers) remain as building blocks on
    the same engine.
author:
  - overlay.mesh contributors (!UNKNOWN)
extends_documentation_fragment:
  - overlay.mesh.attributes
  - overlay.mesh.attributes.NETLINK
attributes:
  diff_mode:
    details:
      - One text diff of the kernel and host objects the node owns, one line each (the engine installed under
        C(/usr/lib/overlay-mesh) as one line with its file count and digest, new and removed files by name, links,
        addresses, neighbours, FDB entries, routes, sysctls, the nftables table, services; more than three unchanged
        objects of a kind as one count line), then the nftables table one line per rule when it changes, then one diff
        per configuration file updated (JSON files one line per key). RV(changes) names every change.
options:
  state:
    description:
      - V(present) applies the contract; V(absent) removes everything the node made (as recorded on the host, and the
        bridge and backend named in the options), and leaves C(ip_forward) and C(daemon.json) as they are.
    type: str
    choices: [present, absent]
    default: present
  version:
    description:
      - Version of the node contract.
    type: int
    choices: [1]
    default: 1
  underlay:
    description:
      - This host's underlay, as M(overlay.mesh.node_info) or M(overlay.mesh.underlay_info) report it. Required with
        O(state=present).
    type: dict
    suboptions:
      address:
        description:
          - The host's underlay address, configured on one of its interfaces.
        type: str
        required: true
      interface:
        description:
          - The underlay interface; the one holding O(underlay.address) by default.
        type: str
      mtu:
        description:
          - The underlay interface's MTU; read from the interface by default.
        type: int
      network:
        description:
          - The underlay's own network (for example V(198.18.0.0/24)), which tells the peers on this host's L2 segment
            (host-gw, direct routing) on the controller; M(overlay.mesh.node_info) reports it. On the host, the network
            configured on the underlay interface decides.
        type: str
  network:
    description:
      - The overlay network, for example V(10.244.0.0/16). Required with O(state=present).
    type: str
  subnet:
    description:
      - This host's subnet of O(network) (its lease), for example V(10.244.1.0/24). Its first address is the bridge's
        (the containers' gateway), its network address the backend device's. Required with O(state=present).
    type: str
  ipv6_network:
    description:
      - A dual-stack overlay (flannel's C(IPv6Network)) - the IPv6 overlay network beside the IPv4 O(network), for example
        V(fd00:244::/48). vxlan reaches every peer with an C(ipv6_subnet) through the same VTEP (the IPv6 subnet's network
        address is the VTEP's IPv6 address and the next hop of the peers' IPv6 routes, one FDB entry per peer for both
        families); host-gw routes it via the peers' IPv6 underlay addresses (an IPv6 underlay only); wireguard puts both
        subnets in each peer's allowed-ips. udp refuses it.
    type: str
  ipv6_subnet:
    description:
      - This host's IPv6 subnet of O(ipv6_network) (its lease), for example V(fd00:244:0:1::/64); its first address is
        the bridge's IPv6 gateway. Required with O(ipv6_network) and O(state=present).
    type: str
  mtu:
    description:
      - MTU of the overlay (bridge and backend device). By default the underlay MTU minus the backend's overhead
        (vxlan 50, udp 28; 20 more on an IPv6 underlay). A larger value is refused; below 1280 warns that IPv6 is
        disabled on the overlay devices.
    type: int
  bridge:
    description:
      - The container bridge.
    type: dict
    suboptions:
      name:
        description:
          - Name of the bridge.
        type: str
        default: cni0
      mac:
        description:
          - MAC of the bridge; derived from C(/etc/machine-id) and the name by default.
        type: str
  backend:
    description:
      - The data path between hosts, V(type) and that backend's options (C(docs/backends.md)).
      - "V(type=vxlan): C(vni) (default 1), C(port) (8472), C(device) (C(mesh.<vni>)), C(mac) (derived from
        C(/etc/machine-id)), C(recreate) (false; allow recreating the device when the VNI or port changes). Each peer
        needs C(vtep_mac)."
      - "V(type=udp): C(port) (8285), C(device) (C(mesh-udp)); a userspace daemon, C(overlay-mesh-udp.service)."
      - "V(type=host-gw): no options; per peer a route via its underlay address, no encapsulation; every peer must be on
        this host's underlay network."
      - "V(type=vxlan) with C(direct_routing=true): peers on this host's underlay network are routed as with host-gw, the
        others through the VTEP."
      - "V(type=wireguard): C(port) (51820), C(device) (C(mesh-wg)), C(keepalive) (0), C(fwmark) (0), C(implementation)
        (V(auto), V(kernel) or V(userspace), that is C(wireguard-go) run by C(overlay-mesh-wireguard.service)),
        C(public_key) (the host's, filled in from its key file). The private key is made on the host when it has none
        (see M(overlay.mesh.node_keys)), kept in C(/etc/overlay-mesh/wireguard/<device>.key) (0600) and never returned
        or shown. Each peer needs C(public_key)."
    type: dict
    default: {type: vxlan}
  peers:
    description:
      - Every other host of the overlay, with C(subnet), C(underlay) (its underlay address), optionally C(name) and C(ipv6_subnet) (a dual-stack overlay), and
        the data its backend needs (C(vtep_mac) for vxlan, C(public_key) for wireguard). Owned entries of hosts not listed are removed.
    type: list
    elements: dict
    default: []
  firewall:
    description:
      - The overlay's nftables table C(inet overlay_mesh), replaced atomically; nothing else in the ruleset is touched.
    type: dict
    suboptions:
      peers_only:
        description:
          - Accept the backend's port only from the peers' underlay addresses (the encapsulation has no authentication).
        type: bool
        default: true
      masquerade:
        description:
          - Masquerade traffic leaving the overlay (flannel's C(--ip-masq)); also written as C(FLANNEL_IPMASQ).
        type: bool
        default: true
      ipv6_masquerade:
        description:
          - Masquerade IPv6 traffic leaving the IPv6 overlay network (flannel's C(--ip6-masq)); only with O(ipv6_network).
        type: bool
        default: false
  kernel:
    description:
      - Kernel settings, persisted in C(/etc/sysctl.d/90-overlay-mesh.conf) and set now.
    type: dict
    suboptions:
      ip_forward:
        description:
          - Turn on forwarding (the host routes its containers' traffic).
        type: bool
        default: true
      rp_filter:
        description:
          - Reverse-path filtering on the bridge and the backend device; V(2) (loose) lets overlay traffic through.
        type: int
        choices: [0, 1, 2]
        default: 2
  route_protocol:
    description:
      - Route protocol number marking the overlay's routes as the collection's own (named C(overlay-mesh) in
        C(/etc/iproute2/rt_protos.d)).
    type: int
    default: 217
  subnet_env:
    description:
      - Where flannel's C(subnet.env) is written (it is rewritten at every boot). An absolute path (no
        C(..) component; a trailing C(/) is dropped). An existing file there is replaced only when it is in flannel's C(subnet.env)
        format (comments, blank lines and C(FLANNEL_*) lines; flanneld's own file is taken over); any other file, or a
        parent that is not a directory, is refused before anything changes. A file written here earlier is removed
        (when the path changes, or with I(state=absent)) only while it is still in that format.
    type: path
    default: /run/flannel/subnet.env
  cni:
    description:
      - The CNI network of this host's subnet (C(bridge) plugin, C(host-local) IPAM), then C(portmap) for a runtime's
        published ports (capability C(portMappings), as in flannel's conflist; it needs C(iptables) on the host only
        when a container publishes a port).
    type: dict
    suboptions:
      conf_dir:
        description:
          - Directory of the CNI configuration; the file is C(10-<network_name>.conflist). An absolute, normalised path.
          - An existing conflist there is replaced, or removed later, only when it is the one this module writes (its
            C(name) the network name, the C(bridge) plugin without C(ipMasq), then C(portmap)); another tool's file is
            refused before anything changes.
        type: path
        default: /etc/cni/net.d
      network_name:
        description:
          - Name of the CNI network, as CNI allows it - letters, digits, C(_), C(.) and C(-), a letter or digit first.
        type: str
        default: overlay-mesh
  docker:
    description:
      - Docker's C(docker0) on this host's subnet.
    type: dict
    suboptions:
      enabled:
        description:
          - Set C(bip) and C(mtu) in C(/etc/docker/daemon.json), keeping every other setting.
        type: bool
        default: false
      restart:
        description:
          - Restart Docker (if it runs) when C(daemon.json) changed; off so running containers are not stopped.
        type: bool
        default: false
  agent:
    description:
      - The node agent (C(docs/agent.md)), C(overlay-mesh-agent.service), which follows the leases in etcd and applies each
        join, move and leave to this host's peers without a controller run, and re-registers this host's lease when its
        underlay address changes. Left out, or with O(agent.enabled=false), there is no agent (its unit is removed).
    type: dict
    suboptions:
      enabled:
        description: Run the agent.
        type: bool
        default: false
      name:
        description: The host's name in its lease (the C(OverlayMesh) member's C(host)); required with O(agent.enabled).
        type: str
      endpoints:
        description: Client URLs of the etcd members as this host reaches them; required with O(agent.enabled).
        type: list
        elements: str
        default: []
      prefix:
        description: Key prefix of the network, as flannel's C(-etcd-prefix).
        type: str
        default: /coreos.com/network
      ca_file:
        description: CA certificate of the members (a file on the host).
        type: path
      cert_file:
        description: This host's client certificate (a file on the host).
        type: path
      key_file:
        description: Key of O(agent.cert_file) (a file on the host).
        type: path
      user:
        description: This host's etcd user, when etcd's authentication is on.
        type: str
      password_file:
        description: File on the host holding the password of O(agent.user).
        type: path
      flannel_peers:
        description: Hosts running flanneld on the prefix are peers too (the role's C(mesh_node_etcd_flannel_peers)).
        type: bool
        default: false
      timeout:
        description: Seconds to wait for one member's answer.
        type: int
        default: 5
      public_address:
        description: The address this host's lease publishes (the role's C(mesh_node_public_address)); the agent keeps it when
          the host's own address moves. Left out, the lease follows the host's underlay address.
        type: str
seealso:
  - module: overlay.mesh.node_info
  - module: overlay.mesh.subnet_leases
  - plugin: overlay.mesh.node_contract
    plugin_type: filter
    description: How the mesh_node role builds every host's contract from the inventory.
'''

EXAMPLES = r'''
- name: A node of a VXLAN mesh with two peers
  overlay.mesh.node:
    underlay: {address: 198.18.0.11, interface: eth0}
    network: 10.244.0.0/16
    subnet: 10.244.1.0/24
    backend: {type: vxlan, vni: 1}
    peers:
      - {name: node2, subnet: 10.244.2.0/24, underlay: 198.18.0.12, vtep_mac: "02:5e:11:a0:3c:01"}
      - {name: node3, subnet: 10.244.3.0/24, underlay: 198.18.0.13, vtep_mac: "02:9b:47:0d:e2:7a"}

- name: The same node on the udp backend, without masquerading
  overlay.mesh.node:
    underlay: {address: 198.18.0.11}
    network: 10.244.0.0/16
    subnet: 10.244.1.0/24
    backend: {type: udp}
    firewall: {masquerade: false}
    peers: "{{ node_peers }}"

- name: Take the node away
  overlay.mesh.node:
    state: absent
'''

RETURN = r'''
changes:
  description: One line per object added, updated or removed (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample:
    - added link mesh.1 vxlan vni 1 port 8472 local 198.18.0.11 dev eth0 mac 02:5e:11:a0:3c:01 mtu 1450 up
    - added route 10.244.2.0/24 via 10.244.2.0 dev mesh.1 onlink proto overlay-mesh
    - updated file /run/flannel/subnet.env
node:
  description: The normalised contract as applied and saved in C(/etc/overlay-mesh/node.json) (MTU and MACs filled in).
  returned: when O(state=present)
  type: dict
  sample: {version: 1, network: 10.244.0.0/16, subnet: 10.244.1.0/24, mtu: 1450, bridge: {name: cni0, mac: "02:1c:…"}}
publish:
  description: What the peers of this host need to know of it (its lease record carries it), for example C(vtep_mac).
  returned: when O(state=present)
  type: dict
  sample: {vtep_mac: "02:5e:11:a0:3c:01"}
problems:
  description: "Every option refused, one C(<option>: <message>) each, when the contract does not validate."
  returned: failure
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.overlay.mesh.plugins.module_utils import _node_module


def main():
    module = AnsibleModule(
        argument_spec=_node_module.node_argument_spec(),
        required_if=[('state', 'present', ('underlay', 'network', 'subnet'))],
        supports_check_mode=True,
    )
    _node_module.run_node(module)


if __name__ == '__main__':
    main()
