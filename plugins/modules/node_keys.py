#!/usr/bin/python
# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: node_keys
short_description: Create or rotate the key a backend needs on a host (WireGuard), and return its public part
version_added: 0.2.0
description:
  - For a backend with a secret of its own (V(wireguard)), creates the host's private key when it has none, or
    replaces it with O(rotate), and returns what the host publishes to its peers (RV(publish), the public key). The
    private key is generated on the host, kept in C(/etc/overlay-mesh/wireguard/<device>.key) with mode 0600,
    and never leaves it - not in results, diffs or logs.
  - For other backends it does nothing and returns an empty RV(publish).
  - The mesh_node role runs it after every check and before the leases are written, so that peers learn a new
    or rotated public key in the same run. M(overlay.mesh.node) applies the key to the device.
author:
  - overlay.mesh contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: A key to create or rotate is reported, and RV(publish) holds a throwaway key's public key, so that the
      peers' check-mode diffs show the entry they would get.
  diff_mode:
    support: full
    details: Names the key file, never its content.
  platform:
    platforms: linux
options:
  backend:
    description: The backend, as in M(overlay.mesh.node) (its device name names the key file).
    type: dict
    default: {type: vxlan}
  rotate:
    description: Make a new key for the host, staged beside the one in use (C(<device>.key.new)) and published at once;
      M(overlay.mesh.node) puts it in use when it applies a contract with its public key (the device and the boot
      path keep the old key until then). The peers take the new public key in the same role run.
    type: bool
    default: false
seealso:
  - module: overlay.mesh.node
  - module: overlay.mesh.node_info
'''

EXAMPLES = r'''
- name: Make sure the host has its WireGuard key
  overlay.mesh.node_keys:
    backend: {type: wireguard}
  register: keys

- name: Rotate it (the mesh_node role does this for the hosts in mesh_node_rotate_keys)
  overlay.mesh.node_keys:
    backend: {type: wireguard}
    rotate: true
'''

RETURN = r'''
publish:
  description: What the host publishes to its peers after this run, for example its C(public_key) (in check mode, of a
    throwaway key when one is still to be made); empty for backends without keys.
  returned: success
  type: dict
  sample: {public_key: "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="}
changes:
  description: One line per change (the key file created or replaced).
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.overlay.mesh.plugins.module_utils import _node_module
from ansible_collections.overlay.mesh.plugins.module_utils._backends import registry


def main():
    module = AnsibleModule(
        argument_spec=dict(
            backend=dict(type='dict', default={'type': registry.DEFAULT}),
            rotate=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    _node_module.run_node_keys(module)


if __name__ == '__main__':
    main()
