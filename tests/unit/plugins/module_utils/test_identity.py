# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stable MACs from /etc/machine-id: same host and device, same MAC; valid for the kernel."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from ansible_collections.overlay.mesh.plugins.module_utils import _identity
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_validate as validate

machine_ids = st.text('0123456789abcdef', min_size=32, max_size=32)
devices = st.text('abcdefghijklmnopqrstuvwxyz0123456789.-', min_size=1, max_size=15)


@given(machine_ids, devices)
def test_derived_macs_are_unicast_locally_administered_and_stable(machine_id, device):
    mac = _identity.device_mac(machine_id, device)
    assert validate.mac(mac) == mac  # the engine's own check: unicast, locally administered
    assert _identity.device_mac(machine_id, device) == mac


def test_derived_macs_differ_by_host_and_device():
    one, two = '0' * 31 + '1', '0' * 31 + '2'
    macs = {_identity.device_mac(mid, dev) for mid in (one, two) for dev in ('cni0', 'mesh.1', 'mesh.2')}
    assert len(macs) == 6


def test_machine_id_is_read_and_checked(tmp_path):
    path = tmp_path / 'machine-id'
    path.write_text('0123456789ABCDEF0123456789abcdef\n')
    assert _identity.read_machine_id(str(path)) == '0123456789abcdef0123456789abcdef'
    path.write_text('\n')
    with pytest.raises(_identity.IdentityError, match='systemd-machine-id-setup'):
        _identity.read_machine_id(str(path))
    with pytest.raises(_identity.IdentityError, match='unreadable'):
        _identity.read_machine_id(str(tmp_path / 'missing'))
