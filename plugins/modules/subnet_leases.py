#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module is implemented as an action plugin (plugins/action/subnet_leases.py) and runs
# on the controller only; this file holds its documentation.

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
module: subnet_leases
short_description: Allocate, keep and release the overlay subnet of every host, from the inventory
version_added: 0.1.0
description:
  - Gives every host of the overlay its own subnet of the overlay network, as flannel does with etcd, but on the
    controller, from the inventory and deterministically. Run it once per play (C(run_once=true)); it needs no
    connection to any host.
  - The set of hosts comes from O(hosts) (an inventory group), never from the hosts of the play, so a C(--limit)
    run never moves or drops anyone's lease. Identity is the inventory hostname, not the address.
  - An existing lease is always kept. Hosts without one get the lowest free subnets between O(subnet_min) and
    O(subnet_max), in sorted hostname order, so the same inventory always gives the same answer. As in flannel,
    the first subnet of the network is skipped by default.
  - A pinned subnet (O(pinned)) is honoured, even when it lies outside O(subnet_min)..O(subnet_max); changing a
    host's pin moves that host (reported in RV(moved)).
  - Leases persist in a human-readable YAML lease file on the controller (O(lease_file)), one line per host with
    its subnet(s), underlay address and VTEP MAC when known. It is read, updated and replaced atomically while an
    exclusive lock is held on a sidecar lock file, so two runs at once never hand out one subnet twice.
  - Hosts keep a record of their own lease (O(host_records)). When the lease file is lost, the next run rebuilds it
    from those records, for the hosts whose records were read only (O(play_hosts)), with a warning listing the hosts
    and their subnets. When the file and a host disagree, or two hosts claim one subnet, the task fails naming
    both; nothing is overwritten silently.
  - A lease is released only explicitly, through O(release). A host that merely leaves O(hosts) keeps its lease
    (reported in RV(orphaned)).
  - Leases can live in etcd instead (O(registry=etcd)), shared by several controllers, in flannel's key schema.
  - Every input is validated before anything is written, and all problems are reported in one failure, each
    naming the host and the option; for example a network too small (with how many subnets fit and how many hosts
    ask), a subnet length out of range, a pinned subnet outside the network, misaligned or taken, or an overlay
    network overlapping a host's underlay network.
  - Render flannel's C(subnet.env) from a returned lease with the P(overlay.mesh.subnet_env#filter) filter.
  - See C(docs/leases.md) in the collection for the lease file format and recovery.
author:
  - overlay.mesh contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
    details: Runs entirely on the controller; no module is sent to any host.
  async:
    support: none
  bypass_host_loop:
    support: none
    details: Use C(run_once=true); the leases of all hosts come from O(hosts), not from the play.
  check_mode:
    support: full
    details: Computes the leases and reports RV(ignore:changed) truthfully, but writes neither the lease file nor its lock file
      (nor anything to etcd, which is only read).
  diff_mode:
    support: full
    details: Shows the lease file before and after (with O(registry=etcd), the leases in etcd, in the lease file's layout).
  platform:
    platforms: posix
    support: full
    details: The controller needs C(fcntl) locks on the lease file's directory.
  idempotent:
    support: full
    description: When run twice in a row with the same inventory, the second run changes nothing.
options:
  hosts:
    description:
      - Inventory hostnames of every host of the overlay, normally C(groups['overlay']). Order does not matter.
      - Hosts already leased but absent from this list keep their lease until released.
    type: list
    elements: str
    required: true
  network:
    description:
      - The overlay network, IPv4 or IPv6 (an IPv6-only overlay), in CIDR notation without host bits.
      - It must hold at least four subnets (IPv4 at most C(/28)).
    type: str
    default: 10.244.0.0/16
  subnet_len:
    description:
      - Prefix length of each host's subnet in O(network).
      - Defaults as flannel does; for IPv4 V(24) when O(network) is C(/22) or larger, else the network's prefix + 2;
        for IPv6 V(64) when O(network) is C(/62) or larger, else the prefix + 2.
      - Must be between the network's prefix + 2 and C(/30) (IPv6 C(/126)).
    type: int
  subnet_min:
    description:
      - Lowest subnet handed out to hosts without a lease, as a subnet (V(10.244.10.0/24)) or its first address.
      - Defaults to the second subnet of O(network) (the first is skipped, as in flannel).
    type: str
  subnet_max:
    description:
      - Highest subnet handed out to hosts without a lease. Defaults to the last subnet of O(network).
    type: str
  ipv6_network:
    description:
      - An IPv6 overlay network beside an IPv4 O(network) (dual stack, flannel's C(IPv6Network)). Each host then gets
        an RV(leases.ipv6_subnet) too.
    type: str
  ipv6_subnet_len:
    description:
      - Prefix length of each host's subnet in O(ipv6_network); V(64) by default (the prefix + 2 for networks
        smaller than C(/62)).
    type: int
  ipv6_subnet_min:
    description:
      - As O(subnet_min), for O(ipv6_network).
    type: str
  ipv6_subnet_max:
    description:
      - As O(subnet_max), for O(ipv6_network).
    type: str
  pinned:
    description:
      - Inventory hostname to the subnet that host must have (or a list of two, IPv4 and IPv6). Usually built from a
        host variable. Empty values are ignored.
      - A pinned subnet must lie in the network of its family, be aligned, have the subnet length, and not be leased
        or pinned to another host.
    type: dict
    default: {}
  host_records:
    description:
      - Inventory hostname to the lease record the host keeps itself, as reported by the host. A record is a
        mapping with RV(leases.subnet), RV(leases.ipv6_subnet) (and optionally C(network), C(ipv6_network),
        C(underlay), C(vtep_mac), C(public_key)), or the text of the host's flannel C(subnet.env).
      - Used to rebuild the lease file when it was lost. A record whose own C(network) key names another network than O(network) is ignored
        with a warning.
      - A record that disagrees with the lease file, or claims the subnet of another host, fails the task.
    type: dict
    default: {}
  underlay:
    description:
      - Inventory hostname to a mapping with the host's underlay C(address), its underlay C(network) (CIDR; an
        interface address such as V(192.168.1.10/24) is fine), its VTEP C(vtep_mac) (vxlan) and its WireGuard C(public_key),
        each optional.
      - Address, MAC and public key are stored in the lease file (as C(underlay), C(vtep_mac) and C(public_key)); two hosts with one
        underlay address, MAC or public key are an error. An underlay address or network that overlaps the overlay
        network is an error.
    type: dict
    default: {}
  release:
    description:
      - Inventory hostnames whose lease is freed (a host removed, or marked absent). A released host gets no new
        lease in this run even when it is in O(hosts).
    type: list
    elements: str
    default: []
  lease_file:
    description:
      - Path of the lease file on the controller. Its directory must exist.
      - Defaults to C(.overlay-mesh-leases.yml) in C(inventory_dir) of the host the task runs for, that is beside the
        inventory file that defines it. The name starts with a dot so that an inventory directory does not try to
        parse it. Set it explicitly when the overlay hosts come from several inventory directories.
      - A relative path is taken from the current directory. A symlink is followed; the file it points to is replaced.
      - The lock file is C(.<name>.lock) in the directory of the (symlink-resolved) lease file.
      - Before each change the file as it was is kept as C(.<name>.prev) beside it, the last good copy.
      - A damaged file - empty (0 bytes), cut short (its last line, which counts the leases, missing or counting other
        leases), not valid YAML - stops the task before anything is written; the message names the file and the
        problem and says how to restore the last good copy. A file of format 1 (written before the end line existed)
        is read, and rewritten as format 2 on its next change.
    type: path
  lock_timeout:
    description:
      - Seconds to wait for another run holding the lease file's lock. A lock left by a run that died is no lock
        (C(flock) ends with its process).
    type: float
    default: 60.0
  play_hosts:
    description:
      - The hosts whose O(host_records) were read, normally C(ansible_play_hosts). A host of O(hosts) outside them that
        has no lease stops the task, naming it - its own record (which may hold a subnet, for example after the lease
        file lost entries) could not be read, and a new subnet would move it. Left out, every host of O(hosts) counts
        as read.
    type: list
    elements: str
  registry:
    description:
      - Where the leases live. V(file) (the default) is the lease file O(lease_file), for one controller.
      - V(etcd) keeps them in an etcd v3 cluster (O(etcd_endpoints)) in flannel's key schema, for several controllers
        (laptops, CI runners, AWX) at once. The allocation rules are the same. Reading and writing are one range request
        and one transaction comparing the revisions of every lease key, retried when another controller wrote in
        between (O(etcd_attempts)), so two runs at once never hand out one subnet twice nor lose a lease. See
        C(docs/leases.md).
      - With V(etcd), the lease file is neither read nor written (except by O(migrate)).
    type: str
    choices: [file, etcd]
    default: file
  etcd_endpoints:
    description:
      - Client URLs of the etcd members (V(https://10.0.0.1:2379)), required with O(registry=etcd). They are tried in
        order; a member that is down or has lost the cluster's leader is skipped.
    type: list
    elements: str
    default: []
  etcd_ca_file:
    description: CA certificate (PEM) that signed the members' certificates; the system's CAs when unset.
    type: path
  etcd_cert_file:
    description: Client certificate (PEM), for members run with C(--client-cert-auth). Needs O(etcd_key_file).
    type: path
  etcd_key_file:
    description: Key of O(etcd_cert_file) (PEM, unencrypted).
    type: path
  etcd_user:
    description: etcd user, when etcd's authentication is enabled. It needs read and write on O(etcd_prefix).
    type: str
  etcd_password:
    description: Password of O(etcd_user).
    type: str
  etcd_prefix:
    description:
      - Key prefix of the network, as flannel's C(-etcd-prefix). C(<prefix>/config) holds flannel's network config and
        C(<prefix>/subnets/10.244.1.0-24) each lease.
    type: str
    default: /coreos.com/network
  etcd_timeout:
    description:
      - Seconds to wait for one member's answer. A cluster without quorum answers no read, so this bounds how long a
        run waits before failing (once per live member).
    type: float
    default: 5.0
  etcd_attempts:
    description: Read-allocate-write cycles to try while other controllers keep writing in between, before failing.
    type: int
    default: 10
  etcd_max_txn_ops:
    description:
      - The members' C(--max-txn-ops) (etcd's default 128). A run changing more leases (a first run for hundreds of hosts)
        writes them in several transactions, each holding only if no other controller wrote in between; raise both to
        write such a run in one.
    type: int
    default: 128
  etcd_flannel_peers:
    description:
      - With O(registry=etcd), return the hosts of a fleet running flanneld's vxlan backend under O(etcd_prefix) as
        RV(flannel_peers) (the role makes them peers of the mesh). A flanneld lease that cannot be a peer (another backend
        than O(backend), another VNI, no C(VtepMAC)) or a flannel config with another vxlan port fails the task before
        anything is written. Their IPv4 subnets only, at C(PublicIP) with C(BackendData) (or, without an IPv4
        C(PublicIP), at C(PublicIPv6) with C(BackendV6Data)).
      - Without it a flanneld lease is only a taken subnet.
    type: bool
    default: false
    version_added: 0.2.0
  backend:
    description:
      - The overlay's backend as flannel's config and leases name it, with O(registry=etcd) - C(type) (V(vxlan) by
        default), C(vni), C(port) and C(direct_routing) (flannel's C(DirectRouting)). Written to C(<prefix>/config) and
        to each lease as flanneld writes it - C(PublicIP) with C(BackendData) for the IPv4 subnet, C(PublicIPv6) with
        C(BackendV6Data) for the IPv6 one, C(BackendType).
    type: dict
    default: {}
  migrate:
    description:
      - With O(registry=etcd), copy leases between the lease file and etcd, losing none; the allocation rules then run
        on the union (a host with different subnets in the two is an error naming both).
      - V(import) writes every lease of O(lease_file) into etcd (the file is only read).
      - V(export) writes etcd's leases into O(lease_file) (etcd is only read); a later V(import) of that file changes nothing.
    type: str
    choices: [import, export]
notes:
  - Lease file format, conflicts and recovery are described in C(docs/leases.md) of the collection.
seealso:
  - name: flannel configuration
    description: The subnet options mirror flannel's C(Network), C(SubnetLen), C(SubnetMin), C(SubnetMax) and C(IPv6Network).
    link: https://github.com/flannel-io/flannel/blob/master/Documentation/configuration.md
"""

EXAMPLES = r"""
- name: Allocate the overlay subnets of the whole overlay group
  overlay.mesh.subnet_leases:
    hosts: "{{ groups['overlay'] }}"
    network: 10.244.0.0/16
  run_once: true
  register: overlay_leases

- name: Show this host's subnet
  ansible.builtin.debug:
    msg: "{{ inventory_hostname }} has {{ overlay_leases.leases[inventory_hostname].subnet }}"

- name: Dual stack, pinned subnets and underlay data from host variables, explicit lease file
  overlay.mesh.subnet_leases:
    hosts: "{{ groups['overlay'] }}"
    network: 10.244.0.0/16
    ipv6_network: fd00:244::/56
    pinned: "{{ dict(groups['overlay'] | zip(groups['overlay'] | map('extract', hostvars, 'overlay_subnet') | map('default', ''))) }}"
    underlay: "{{ dict(groups['overlay'] | zip(groups['overlay'] | map('extract', hostvars, 'overlay_underlay') | map('default', {}))) }}"
    lease_file: "{{ playbook_dir }}/leases/overlay.yml"
  run_once: true
  register: overlay_leases

- name: Release the leases of the hosts in group overlay_absent
  overlay.mesh.subnet_leases:
    hosts: "{{ groups['overlay'] }}"
    release: "{{ groups['overlay_absent'] | default([]) }}"
  run_once: true

- name: Keep the leases in etcd (three members, TLS client certificates), shared by every controller
  overlay.mesh.subnet_leases:
    hosts: "{{ groups['overlay'] }}"
    registry: etcd
    etcd_endpoints: [https://10.0.0.1:2379, https://10.0.0.2:2379, https://10.0.0.3:2379]
    etcd_ca_file: /etc/overlay-mesh/etcd/ca.crt
    etcd_cert_file: /etc/overlay-mesh/etcd/client.crt
    etcd_key_file: /etc/overlay-mesh/etcd/client.key
    backend: {type: vxlan, vni: 1, port: 8472}
  run_once: true
  register: overlay_leases

- name: Move the leases of the lease file into etcd (once)
  overlay.mesh.subnet_leases:
    hosts: "{{ groups['overlay'] }}"
    registry: etcd
    etcd_endpoints: [https://10.0.0.1:2379]
    migrate: import
  run_once: true

- name: Write flannel's subnet.env from the lease
  ansible.builtin.copy:
    dest: /run/flannel/subnet.env
    content: "{{ overlay_leases.leases[inventory_hostname] | overlay.mesh.subnet_env(network=overlay_leases.network, mtu=1450) }}"
    mode: "0644"
"""

RETURN = r"""
leases:
  description:
    - Every lease after this run, by inventory hostname, including leased hosts not in O(hosts) (see RV(orphaned)).
  returned: success
  type: dict
  sample:
    node1: {subnet: 10.244.1.0/24, underlay: 192.168.64.3, vtep_mac: "c6:d2:32:6f:8f:44"}
    node2: {subnet: 10.244.2.0/24, underlay: 192.168.64.4}
  contains:
    subnet:
      description: The host's IPv4 subnet.
      type: str
      returned: when the overlay has an IPv4 network
      sample: 10.244.1.0/24
    ipv6_subnet:
      description: The host's IPv6 subnet.
      type: str
      returned: when the overlay has an IPv6 network
      sample: "fd00:244:0:1::/64"
    underlay:
      description: The host's underlay address, when known (called C(address) in release 0.1, still read).
      type: str
      returned: when known
      sample: 192.168.64.3
    vtep_mac:
      description: The host's VTEP MAC address, when known.
      type: str
      returned: when known
      sample: "c6:d2:32:6f:8f:44"
    public_key:
      description: The host's WireGuard public key, when known (the wireguard backend).
      type: str
      returned: when known
      sample: "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
added:
  description: Hosts that got a new subnet in this run, sorted.
  returned: success
  type: list
  elements: str
  sample: [node3]
released:
  description: Hosts whose lease was released in this run, sorted.
  returned: success
  type: list
  elements: str
  sample: [node4]
moved:
  description: Hosts whose subnet changed because their pinned subnet changed.
  returned: success
  type: list
  elements: str
  sample: []
recovered:
  description: Hosts whose lease was missing from the lease file and was taken from their own record.
  returned: success
  type: list
  elements: str
  sample: []
orphaned:
  description: Leased hosts that are not in O(hosts); they keep their lease until released.
  returned: success
  type: list
  elements: str
  sample: []
orphaned_revisions:
  description: The etcd C(mod_revision) of each lease in RV(orphaned) (the node agents give what two leases claim, an
    address or a MAC, to the newer lease; the node contracts rank orphaned leases the same way).
  returned: with O(registry=etcd), without O(migrate=export)
  type: dict
  sample: {"node7": 1234}
problems:
  description: When the inputs are wrong, every problem found, one line each, naming the host and the option (also in RV(ignore:msg)).
  returned: failure
  type: list
  elements: str
  sample: ["host node2: pinned: 10.245.0.0/24 lies outside network 10.244.0.0/16"]
lease_file:
  description: Absolute path of the lease file.
  returned: with O(registry=file) or O(migrate)
  type: str
  sample: /home/ops/inventory/.overlay-mesh-leases.yml
etcd_requests:
  description: HTTP requests this run made to etcd (one range, plus one transaction when something changed, plus one to
    authenticate with O(etcd_user)).
  returned: with O(registry=etcd)
  type: int
  sample: 2
flannel_peers:
  description: The flanneld hosts under O(etcd_prefix) as peers, named C(flanneld@<PublicIP>), with C(subnet), C(underlay) (their
    C(PublicIP)) and C(vtep_mac).
  returned: with O(etcd_flannel_peers)
  type: dict
  sample: {"flanneld@198.18.0.19": {"subnet": "10.244.9.0/24", "underlay": "198.18.0.19", "vtep_mac": "7a:1b:2c:3d:4e:5f"}}
etcd_attempts:
  description: Read-allocate-write cycles this run needed (more than 1 when another controller wrote in between).
  returned: with O(registry=etcd), without O(migrate=export)
  type: int
  sample: 1
network:
  description: The overlay network, normalized.
  returned: success
  type: str
  sample: 10.244.0.0/16
subnet_len:
  description: The subnet length in RV(network).
  returned: success
  type: int
  sample: 24
ipv6_network:
  description: The IPv6 network of a dual-stack overlay.
  returned: when O(ipv6_network) is set
  type: str
  sample: "fd00:244::/56"
ipv6_subnet_len:
  description: The subnet length in RV(ipv6_network).
  returned: when O(ipv6_network) is set
  type: int
  sample: 64
"""
