# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""VXLAN VTEP and bridge planning against a fake pyroute2 (no root)."""

from __future__ import annotations

import socket

import pytest

from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_links as links
from ansible_collections.overlay.mesh.plugins.module_utils._backends import vxlan as vxlan_backend
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_changes import EngineError
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_validate import ValidationError

from fake_pyroute2 import FakeIPRoute

MAC = '02:00:00:00:00:01'


@pytest.fixture
def ipr():
    fake = FakeIPRoute()
    fake.add_physical('eth0', mtu=1500, addresses=[('198.18.0.1', 24), ('2001:db8::1', 64)])
    fake.add_physical('eth1', mtu=9000)
    return fake


def vxlan(ipr, **kwargs):
    args = dict(name='flannel.1', vni=1, local='198.18.0.1', mac=MAC, address='10.244.1.0')
    args.update(kwargs)
    return vxlan_backend.VxlanReconciler(ipr, **args)


def types(changes):
    return sorted((c.action, c.obj['type']) for c in changes.changes)


def test_create_vtep_with_computed_mtu(ipr):
    changes = vxlan(ipr).reconcile()
    assert types(changes) == [('added', 'address'), ('added', 'link')]
    link = links.read_link(ipr, 'flannel.1')
    assert link['mtu'] == 1450 and link['mac'] == MAC and link['up'] and link['vxlan']['learning'] is False
    assert link['vxlan']['port'] == 8472 and link['vxlan']['link'] == 1
    assert not vxlan(ipr).reconcile().changed


def test_ipv6_underlay_mtu_is_minus_70(ipr):
    vtep = vxlan(ipr, name='flannel-v6.1', local='2001:db8::1', address='fd00:244:1::/128')
    assert vtep.mtu == 1430
    vtep.reconcile()
    assert ipr.links[3]['data']['vxlan_local6'] == '2001:db8::1'
    # the VTEP's /128 skips duplicate address detection (usable at once)
    assert ('addr', 'add', (3, 'fd00:244:1::', 128, links.IFA_F_NODAD)) in ipr.calls


def test_explicit_underlay_device_and_mtu(ipr):
    vtep = vxlan(ipr, underlay_device='eth1', mtu=8950)
    assert vtep.underlay_index == 2 and vtep.mtu == 8950


def test_check_mode_changes_nothing(ipr):
    changes = vxlan(ipr).reconcile(check_mode=True)
    assert changes.changed and not links.read_link(ipr, 'flannel.1')
    assert not [c for c in ipr.calls if c[1] in ('add', 'set', 'del')]


@pytest.mark.parametrize('kwargs, fragment', [
    (dict(local='198.18.9.9'), 'local address 198.18.9.9 is not configured'),
    (dict(underlay_device='eth9'), 'underlay device eth9 does not exist'),
    (dict(name='a-very-long-name0'), 'at most 15'),
    (dict(vni=0), 'VNI 0 is outside'),
    (dict(mac='01:00:00:00:00:01'), 'multicast'),
    (dict(address='10.244.1.0/24'), 'does not match an IPv4 host'),
])
def test_errors_name_object_and_value(ipr, kwargs, fragment):
    with pytest.raises((EngineError, ValidationError), match=fragment):
        vxlan(ipr, **kwargs).reconcile()


def test_vni_change_needs_recreate(ipr):
    vxlan(ipr).reconcile()
    with pytest.raises(EngineError) as err:
        vxlan(ipr, vni=2, port=4789).reconcile()
    assert 'vni is 1 in the kernel, 2 requested' in str(err.value)
    assert 'port is 8472 in the kernel, 4789 requested' in str(err.value) and 'option recreate of overlay.mesh.vxlan' in str(err.value)
    changes = vxlan(ipr, vni=2, port=4789, recreate=True).reconcile()
    assert ('removed', 'link') in types(changes) and ('added', 'link') in types(changes)
    assert links.read_link(ipr, 'flannel.1')['vxlan']['vni'] == 2


def test_mutable_drift_is_one_update(ipr):
    vxlan(ipr).reconcile()
    index = ipr.link_lookup(ifname='flannel.1')[0]
    ipr.links[index].update(mtu=1400, mac='02:00:00:00:00:99', up=False)
    ipr.links[index]['data']['vxlan_learning'] = 1
    changes = vxlan(ipr).reconcile()
    assert types(changes) == [('updated', 'link')]
    change = changes.changes[0]
    assert change.before['mtu'] == 1400 and change.obj['mtu'] == 1450 and change.obj['learning'] is False
    assert not vxlan(ipr).reconcile().changed


def test_foreign_addresses_removed_link_local_kept(ipr):
    vxlan(ipr).reconcile()
    index = ipr.link_lookup(ifname='flannel.1')[0]
    ipr.addrs.append((index, socket.AF_INET, '10.244.7.0', 32, 0))
    ipr.addrs.append((index, socket.AF_INET6, 'fe80::1', 64, 253))
    changes = vxlan(ipr).reconcile()
    assert [(c.action, c.obj['address']) for c in changes.changes] == [('removed', '10.244.7.0/32')]


def test_absent(ipr):
    vxlan(ipr).reconcile()
    changes = vxlan_backend.VxlanReconciler(ipr, 'flannel.1', state='absent').reconcile('absent')
    assert ('removed', 'link') in types(changes) and not links.read_link(ipr, 'flannel.1')
    assert not vxlan_backend.VxlanReconciler(ipr, 'flannel.1', state='absent').reconcile('absent').changed


def test_refuses_other_kinds(ipr):
    with pytest.raises(EngineError, match='eth0 exists and is a physical device, not vxlan'):
        vxlan_backend.VxlanReconciler(ipr, 'eth0', state='absent').reconcile('absent')


def test_diff_lists_link_and_address(ipr):
    vxlan(ipr).reconcile()
    diff = vxlan(ipr, mtu=1400).plan().diff()
    assert [o['mtu'] for o in diff['before'] if o['type'] == 'link'] == [1450]
    assert [o['mtu'] for o in diff['after'] if o['type'] == 'link'] == [1400]


def test_bridge(ipr):
    bridge = links.BridgeReconciler(ipr, 'cni0', addresses=['10.244.1.1/24'], mac='02:00:00:00:00:aa', mtu=1450)
    assert types(bridge.reconcile()) == [('added', 'address'), ('added', 'link')]
    assert not links.BridgeReconciler(ipr, 'cni0', addresses=['10.244.1.1/24'], mac='02:00:00:00:00:aa',
                                      mtu=1450).reconcile().changed
    changes = links.BridgeReconciler(ipr, 'cni0', addresses=['10.244.1.1/25'], mac='02:00:00:00:00:aa').reconcile()
    assert types(changes) == [('added', 'address'), ('removed', 'address')]
    with pytest.raises(ValidationError, match='mac is required'):
        links.BridgeReconciler(ipr, 'cni0')
