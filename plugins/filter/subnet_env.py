# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The overlay.mesh.subnet_env filter: flannel's subnet.env text from a lease (docs in subnet_env.yml)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.overlay.mesh.plugins.plugin_utils import _leases


def subnet_env(lease, network=_leases.DEFAULT_NETWORK, mtu=1450, ipmasq=True, ipv6_network=None):
    """Render /run/flannel/subnet.env for ``lease`` (a record returned by overlay.mesh.subnet_leases)."""
    # Inventory values often arrive as text: "1450", "yes".
    if isinstance(mtu, str) and mtu.strip().isdigit():
        mtu = int(mtu)
    if not isinstance(ipmasq, bool):
        try:
            ipmasq = boolean(ipmasq, strict=True)
        except TypeError:
            pass  # reported below, with the other problems
    try:
        return _leases.subnet_env(lease, network, mtu, ipmasq=ipmasq, ipv6_network=ipv6_network)
    except _leases.LeaseError as exc:
        raise AnsibleFilterError('overlay.mesh.subnet_env: %s' % '; '.join(exc.problems)) from None


class FilterModule:
    """overlay.mesh filters for leases."""

    def filters(self):
        return {'subnet_env': subnet_env}
