# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The peers diff: what is added, updated, removed - and what is never touched."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_peers as peers_mod
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_wire as wire
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_changes import EngineError
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_validate import ValidationError

from fake_kernel import FakeKernel

VTEP = 7
OTHER = 3
PROTO = 217
VTEP_LINK = {'index': VTEP, 'name': 'flannel.1', 'kind': 'vxlan', 'up': True, 'vxlan': {'local': '198.18.0.1'}}


def ip(text):
    return socket.inet_pton(socket.AF_INET6 if ':' in text else socket.AF_INET, text)


def mac(text):
    return peers_mod.mac_bytes(text)


def peer(n, underlay=None):
    return {'subnet': '10.244.%d.0/24' % n, 'vtep_mac': '02:00:00:00:00:%02x' % n,
            'underlay': underlay or '198.18.0.%d' % n}


def engine(kernel, vtep=None):
    return peers_mod.PeerReconciler(kernel, dict(vtep or VTEP_LINK), PROTO, {VTEP: 'flannel.1', OTHER: 'eth0'})


def program(kernel, *numbers):
    """Kernel state as the engine would leave it for these peers."""
    for n in numbers:
        kernel.add_neigh(VTEP, ip('10.244.%d.0' % n), mac('02:00:00:00:00:%02x' % n))
        kernel.add_fdb(VTEP, mac('02:00:00:00:00:%02x' % n), ip('198.18.0.%d' % n))
        kernel.add_route(ip('10.244.%d.0' % n), 24, ip('10.244.%d.0' % n), VTEP, PROTO)


def actions(changes):
    return sorted((c.action, c.obj['type']) for c in changes.changes)


def test_empty_kernel_adds_three_objects_per_peer_routes_last():
    kernel = FakeKernel()
    changes = engine(kernel).reconcile(peers_mod.normalise_peers([peer(2), peer(3)]))
    assert actions(changes) == [('added', 'fdb')] * 2 + [('added', 'neighbour')] * 2 + [('added', 'route')] * 2
    types = [msg_type for msg_type, _flags, _rec in kernel.sent]
    assert types == [wire.RTM_NEWNEIGH] * 4 + [wire.RTM_NEWROUTE] * 2
    route = kernel.sent[-1][2]
    assert route.protocol == PROTO and route.flags & wire.RTNH_F_ONLINK and route.oif == VTEP
    assert route.gateway == ip('10.244.3.0') and route.dst_len == 24
    fdb = [rec for _t, _f, rec in kernel.sent if rec.family == wire.AF_BRIDGE][0]
    assert fdb.flags == wire.NTF_SELF and fdb.state & wire.NUD_PERMANENT and fdb.dst == ip('198.18.0.2')


def test_matching_kernel_is_a_noop():
    kernel = FakeKernel()
    program(kernel, 2, 3)
    changes = engine(kernel).reconcile(peers_mod.normalise_peers([peer(2), peer(3)]), exclusive=True)
    assert not changes.changed
    assert kernel.sent == []


def test_check_mode_sends_nothing():
    kernel = FakeKernel()
    changes = engine(kernel).reconcile(peers_mod.normalise_peers([peer(2)]), check_mode=True)
    assert len(changes) == 3 and kernel.sent == []


def test_drift_is_repaired_in_place():
    kernel = FakeKernel()
    kernel.add_neigh(VTEP, ip('10.244.2.0'), mac('02:00:00:00:00:99'))                     # wrong MAC
    kernel.add_fdb(VTEP, mac('02:00:00:00:00:02'), ip('198.18.0.99'))                       # wrong dst
    kernel.add_route(ip('10.244.2.0'), 24, ip('10.244.2.0'), VTEP, PROTO, flags=0, priority=5)  # not onlink
    changes = engine(kernel).reconcile(peers_mod.normalise_peers([peer(2)]))
    assert actions(changes) == [('updated', 'fdb'), ('updated', 'neighbour'), ('updated', 'route')]
    updated = dict((c.obj['type'], c) for c in changes.changes)
    assert updated['neighbour'].before['lladdr'] == '02:00:00:00:00:99'
    assert kernel.routes[0].priority == 5 and kernel.routes[0].flags & wire.RTNH_F_ONLINK
    assert not engine(kernel).plan(peers_mod.normalise_peers([peer(2)])).changed


def test_dynamic_entries_for_a_peer_are_made_permanent():
    kernel = FakeKernel()
    kernel.add_neigh(VTEP, ip('10.244.2.0'), mac('02:00:00:00:00:02'), state=0x02)   # REACHABLE
    kernel.add_fdb(VTEP, mac('02:00:00:00:00:02'), ip('198.18.0.2'), state=0x02)     # learned
    changes = engine(kernel).plan(peers_mod.normalise_peers([peer(2)]))
    assert actions(changes) == [('added', 'route'), ('updated', 'fdb'), ('updated', 'neighbour')]


def test_fdb_stray_remotes_are_removed():
    kernel = FakeKernel()
    program(kernel, 2)
    kernel.add_fdb(VTEP, mac('02:00:00:00:00:02'), ip('198.18.0.77'))
    changes = engine(kernel).reconcile(peers_mod.normalise_peers([peer(2)]))
    assert actions(changes) == [('removed', 'fdb')]
    assert [r.dst for r in kernel.fdb] == [ip('198.18.0.2')]


def test_foreign_route_on_a_peer_subnet_is_an_error_naming_it():
    kernel = FakeKernel()
    kernel.add_route(ip('10.244.2.0'), 24, ip('192.0.2.1'), OTHER, 4, flags=0)
    with pytest.raises(EngineError) as err:
        engine(kernel).reconcile(peers_mod.normalise_peers([peer(2)]))
    assert '10.244.2.0/24 via 192.0.2.1 dev eth0 proto static' in str(err.value)
    assert kernel.sent == []


def test_our_protocol_on_another_device_is_ours_and_moves_to_the_vtep():
    # a direct route of ours (host-gw, direct routing) for a peer that now goes through the VTEP
    kernel = FakeKernel()
    kernel.add_route(ip('10.244.2.0'), 24, ip('198.18.0.2'), OTHER, PROTO, flags=0)
    changes = engine(kernel).reconcile(peers_mod.normalise_peers([peer(2)]))
    assert [(c.action, c.before['dev'], c.obj['dev']) for c in changes.changes if c.obj['type'] == 'route'] == [
        ('updated', 'eth0', 'flannel.1')]
    assert [(r.oif, r.gateway) for r in kernel.routes] == [(VTEP, ip('10.244.2.0'))]


def test_another_protocol_on_a_peer_subnet_is_a_conflict():
    kernel = FakeKernel()
    kernel.add_route(ip('10.244.2.0'), 24, ip('198.18.0.2'), OTHER, 4)
    with pytest.raises(EngineError, match='dev eth0 proto static'):
        engine(kernel).plan(peers_mod.normalise_peers([peer(2)]))


def foreign_state(kernel):
    kernel.add_route(ip('10.99.0.0'), 16, ip('10.244.9.0'), VTEP, 4)                  # other protocol, our VTEP
    kernel.add_route(ip('10.98.0.0'), 16, ip('198.18.0.254'), OTHER, PROTO, flags=0)  # our protocol, other device
    kernel.add_neigh(OTHER, ip('10.244.55.0'), mac('02:00:00:00:00:55'))              # other device
    kernel.add_neigh(VTEP, ip('10.244.56.0'), mac('02:00:00:00:00:56'), state=0x02)   # dynamic on our VTEP
    kernel.add_fdb(VTEP, mac('02:00:00:00:00:57'), ip('198.18.0.57'), state=0x02)     # learned
    kernel.add_fdb(VTEP, b'\0' * 6, ip('198.18.0.58'))                                # flood entry
    kernel.add_fdb(OTHER, mac('02:00:00:00:00:59'), None)                             # other device
    kernel.add_fdb(VTEP, mac('02:00:00:00:00:5a'), None, flags=wire.NTF_MASTER)       # bridge master entry
    return (len(kernel.routes), len(kernel.neigh), len(kernel.fdb))


def test_exclusive_purges_owned_stale_entries_only():
    kernel = FakeKernel()
    program(kernel, 2, 3)
    counts = foreign_state(kernel)
    changes = engine(kernel).reconcile(peers_mod.normalise_peers([peer(2)]), exclusive=True)
    assert actions(changes) == [('removed', 'fdb'), ('removed', 'neighbour'), ('removed', 'route')]
    assert [c.obj['dst'] for c in changes.changes if c.obj['type'] == 'route'] == ['10.244.3.0/24']
    assert (len(kernel.routes), len(kernel.neigh), len(kernel.fdb)) == tuple(n - 1 for n in counts)


def test_absent_removes_only_listed_owned_entries():
    kernel = FakeKernel()
    program(kernel, 2, 3)
    counts = foreign_state(kernel)
    changes = engine(kernel).reconcile(peers_mod.normalise_peers([peer(3), peer(55), peer(57)]), state='absent')
    assert actions(changes) == [('removed', 'fdb'), ('removed', 'neighbour'), ('removed', 'route')]
    assert (len(kernel.routes), len(kernel.neigh), len(kernel.fdb)) == tuple(n - 1 for n in counts)


def test_underlay_family_must_match_the_vtep():
    with pytest.raises(ValidationError, match='EAFNOSUPPORT'):
        engine(FakeKernel()).plan(peers_mod.normalise_peers([peer(2, underlay='2001:db8::2')]))


def test_down_vtep_is_an_error_outside_check_mode():
    vtep = dict(VTEP_LINK, up=False)
    with pytest.raises(EngineError, match='is down'):
        engine(FakeKernel(), vtep).reconcile(peers_mod.normalise_peers([peer(2)]))
    assert engine(FakeKernel(), vtep).reconcile(peers_mod.normalise_peers([peer(2)]), check_mode=True).changed


def test_not_a_vxlan_device():
    with pytest.raises(ValidationError, match='not a VXLAN'):
        engine(FakeKernel(), dict(VTEP_LINK, kind='bridge')).plan([])


def test_failed_neighbour_means_no_route_and_a_clear_error():
    kernel = FakeKernel()
    kernel.fail[(wire.RTM_NEWNEIGH, ip('10.244.2.0'))] = 22
    with pytest.raises(EngineError) as err:
        engine(kernel).reconcile(peers_mod.normalise_peers([peer(2), peer(3)]))
    text = str(err.value)
    assert 'neighbour 10.244.2.0 lladdr 02:00:00:00:00:02 dev flannel.1: errno 22' in text
    assert 'route 10.244.2.0/24 via 10.244.2.0 dev flannel.1: skipped' in text
    assert [r.dst for r in kernel.routes] == [ip('10.244.3.0')]


def test_read_back_detects_a_silently_dropped_change():
    kernel = FakeKernel()
    real = kernel._handle
    kernel._handle = lambda t, f, b: 0 if t == wire.RTM_NEWROUTE else real(t, f, b)  # acked, not done
    with pytest.raises(EngineError, match='did not keep 1 change'):
        engine(kernel).reconcile(peers_mod.normalise_peers([peer(2)]))


def test_diff_before_after():
    kernel = FakeKernel()
    program(kernel, 3)
    changes = engine(kernel).plan(peers_mod.normalise_peers([peer(2)]), exclusive=True, with_current=True)
    diff = changes.diff()
    assert {o['type'] for o in diff['before']} == {'neighbour', 'fdb', 'route'}
    assert [o['dst'] for o in diff['after'] if o['type'] == 'route'] == ['10.244.2.0/24']
    summary = changes.summary()
    assert len(summary['added']) == 3 and len(summary['removed']) == 3 and summary['updated'] == []


def test_ipv6_peer():
    kernel = FakeKernel()
    vtep = dict(VTEP_LINK, vxlan={'local': '2001:db8::1'})
    peers = peers_mod.normalise_peers([{'subnet': 'fd00:244:2::/64', 'vtep_mac': '02:00:00:00:00:02',
                                        'underlay': '2001:db8::2'}])
    changes = engine(kernel, vtep).reconcile(peers)
    assert len(changes) == 3
    assert kernel.routes[0].family == socket.AF_INET6 and kernel.routes[0].gateway == ip('fd00:244:2::')
    assert not engine(kernel, vtep).plan(peers).changed


def test_rt_protos_file(tmp_path):
    path = str(tmp_path / 'rt_protos.d' / 'overlay-mesh.conf')
    assert peers_mod.ensure_rt_protos(path, 217, check_mode=True).changed
    assert not (tmp_path / 'rt_protos.d').exists()
    assert peers_mod.ensure_rt_protos(path, 217).changed
    assert '217\toverlay-mesh' in open(path).read()
    assert not peers_mod.ensure_rt_protos(path, 217).changed
    assert peers_mod.ensure_rt_protos(path, 218).summary()['updated']
    assert not peers_mod.ensure_rt_protos('', 217).changed


# ---- property: whatever the kernel holds, one run converges and foreign objects survive ------------
owned_numbers = st.sets(st.integers(min_value=1, max_value=40), max_size=12)


@settings(max_examples=150, deadline=None)
@given(before=owned_numbers, wanted=owned_numbers, drift=st.sets(st.integers(min_value=1, max_value=40), max_size=6),
       exclusive=st.booleans())
def test_one_run_converges_and_never_touches_foreign(before, wanted, drift, exclusive):
    kernel = FakeKernel()
    program(kernel, *sorted(before))
    for n in drift:  # hand-made damage: wrong MACs on some neighbours
        for rec in kernel.neigh:
            if rec.dst == ip('10.244.%d.0' % n):
                rec.lladdr = mac('02:00:00:00:01:%02x' % n)
    foreign_state(kernel)
    foreign = ([r for r in kernel.routes if r.protocol != PROTO or r.oif != VTEP],
               [r for r in kernel.neigh if r.ifindex != VTEP or not r.state & wire.NUD_PERMANENT],
               [r for r in kernel.fdb if r.ifindex != VTEP or r.flags & wire.NTF_MASTER or not r.state & wire.NUD_PERMANENT
                or not any(r.lladdr)])
    peers = peers_mod.normalise_peers([peer(n) for n in sorted(wanted)])
    engine(kernel).reconcile(peers, exclusive=exclusive)
    assert not engine(kernel).plan(peers, exclusive=exclusive).changed
    assert all(r in kernel.routes for r in foreign[0])
    assert all(r in kernel.neigh for r in foreign[1])
    assert all(r in kernel.fdb for r in foreign[2])
    if exclusive:
        owned_routes = sorted(r.dst for r in kernel.routes if r.protocol == PROTO and r.oif == VTEP)
        assert owned_routes == sorted(ip('10.244.%d.0' % n) for n in wanted)
