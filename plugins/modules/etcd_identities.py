#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module is implemented as an action plugin (plugins/action/etcd_identities.py) and runs
# on the controller only; this file holds its documentation.

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
module: etcd_identities
short_description: Give each host's node agent its own least-privilege etcd user and role
version_added: 0.2.0
description:
  - For each host of O(hosts), an etcd role and a user of one name (C(overlay-mesh-<host>) unless O(users) names it);
    the role may read every key under O(etcd_prefix) and read and write the host's own lease key
    (C(<prefix>/subnets/<subnet key>)) only, so a host can never overwrite another host's lease. The user is granted the role.
  - With O(auth=password) the user has the host's password from O(passwords); with O(auth=certificate) it has none
    (C(--no-password)) and etcd takes it from the CN of the host's client certificate. etcd's JSON gateway
    (which this collection's client speaks) does not authenticate by CN; certificate identities serve gRPC clients
    (etcdctl, flanneld).
  - The hosts of O(remove) lose their user and role (their lease key may go to another host later).
  - Permissions, roles and the password are compared with etcd's; only what differs is written. Other roles that an
    agent's user was given by hand are left, with a warning.
  - Every input is checked, etcd's auth must be enabled and O(admin_user) must be accepted with the root role, and every
    identity is read, before anything is written; a problem names the host and the role variable.
  - Run it once per play (C(run_once=true), C(delegate_to=localhost)); it needs no connection to any host.
  - See C(docs/agent.md) in the collection for the model and the C(etcdctl) commands that do the same by hand.
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
    details: Use C(run_once=true).
  check_mode:
    support: full
    details: Reads etcd's users and roles (and checks each password by authenticating) and reports what would change; writes nothing.
  diff_mode:
    support: full
    details: Shows the roles' permissions and the users' roles and kind of authentication, before and after; never a password.
  platform:
    platforms: posix
    support: full
  idempotent:
    support: full
    description: When run twice in a row with the same input, the second run changes nothing.
options:
  hosts:
    description: Inventory hostnames that get an identity.
    type: list
    elements: str
    default: []
  leases:
    description:
      - Host -> its lease (C(subnet) and/or C(ipv6_subnet)), normally RV(overlay.mesh.subnet_leases#module:leases);
        the lease key is flannel's (C(10.244.1.0-24), C(10.244.1.0-24&fd00:1::-64)).
    type: dict
    default: {}
  users:
    description: Host -> the name of its etcd user and role; C(overlay-mesh-<host>) for a host not named (or named V(null)).
    type: dict
    default: {}
  passwords:
    description: Host -> its user's password (required for every host of O(hosts) with O(auth=password)). Keep it in a vault.
    type: dict
    default: {}
  remove:
    description: Hosts whose user and role are deleted, if they exist.
    type: list
    elements: str
    default: []
  auth:
    description: How the agents authenticate - V(password) (a user and password) or V(certificate) (the CN of a client certificate).
    type: str
    choices: [password, certificate]
    default: password
  admin_user:
    description: A user with the root role that makes the identities.
    type: str
    required: true
  admin_password:
    description: Its password.
    type: str
  controller_user:
    description: The user the controller writes the leases with (not an agent's; an agent named so is refused).
    type: str
  etcd_endpoints:
    description: The cluster's client URLs, as in M(overlay.mesh.subnet_leases).
    type: list
    elements: str
    default: []
  etcd_ca_file:
    description: CA that signed the members' certificates.
    type: path
  etcd_cert_file:
    description: Client certificate for TLS (needed when the members require client certificates).
    type: path
  etcd_key_file:
    description: Its key.
    type: path
  etcd_prefix:
    description: The registry's prefix, as in M(overlay.mesh.subnet_leases).
    type: str
    default: /coreos.com/network
  etcd_timeout:
    description: Seconds to wait for one member.
    type: float
    default: 5.0
"""

EXAMPLES = r"""
- name: Give node1 and node2 their etcd identities
  overlay.mesh.etcd_identities:
    hosts: [node1, node2]
    leases: {node1: {subnet: 10.244.1.0/24}, node2: {subnet: 10.244.2.0/24}}
    passwords: {node1: "{{ vault_node1_etcd }}", node2: "{{ vault_node2_etcd }}"}
    admin_user: root
    admin_password: "{{ vault_etcd_root }}"
    etcd_endpoints: [https://10.0.0.1:2379]
    etcd_ca_file: /etc/overlay/etcd-ca.crt
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
identities:
  description: Host -> its user, role, lease key and the changes made (or, in check mode, to be made).
  returned: success
  type: dict
  sample: {node1: {user: overlay-mesh-node1, role: overlay-mesh-node1, lease_key: /coreos.com/network/subnets/10.244.1.0-24,
                   changes: [role overlay-mesh-node1 added]}}
"""
