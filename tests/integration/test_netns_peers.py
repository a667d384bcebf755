# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""overlay.mesh.peers through Ansible in a throwaway namespace (pyroute2 0.9.x and 0.7.2)."""

from __future__ import annotations

import json

import pytest

from test_netns_vxlan import VTEP, converge

PROTO = 217


def peer(n):
    return {'subnet': '10.244.%d.0/24' % n, 'vtep_mac': '02:6a:00:00:00:%02x' % n, 'underlay': '198.18.0.%d' % (10 + n)}


def peers_args(tmp, numbers, **extra):
    args = {'vtep': 'flannel.1', 'peers': [peer(n) for n in numbers], 'rt_protos_file': str(tmp / 'rt_protos.d' / 'overlay-mesh.conf')}
    args.update(extra)
    return args


def kernel(ns):
    """(routes, neighbours, fdb) on flannel.1 and beyond, as sets of tuples."""
    routes = set((r['dst'], r.get('gateway'), r['dev'], str(r.get('protocol')), 'onlink' in r.get('flags', []))
                 for r in ns.json('route show table main'))
    neigh = set((n['dst'], n['dev'], n.get('lladdr'), tuple(n.get('state', []))) for n in ns.json('neigh show'))
    fdb = set((f['mac'], 'flannel.1', f.get('dst'), f.get('state', ''))
              for f in json.loads(ns.run('bridge -j fdb show dev flannel.1', check=False) or '[]'))
    return routes, neigh, fdb


def owned(ns):
    routes, neigh, fdb = kernel(ns)
    return (sorted(r for r in routes if r[2] == 'flannel.1' and r[3] in (str(PROTO), 'overlay-mesh')),
            sorted(n for n in neigh if n[1] == 'flannel.1' and 'PERMANENT' in n[3]),
            sorted(f for f in fdb if f[3] == 'permanent' and f[0] != '00:00:00:00:00:00'))


def expected(numbers):
    return (sorted(('10.244.%d.0/24' % n, '10.244.%d.0' % n, 'flannel.1', str(PROTO), True) for n in numbers),
            sorted(('10.244.%d.0' % n, 'flannel.1', '02:6a:00:00:00:%02x' % n, ('PERMANENT',)) for n in numbers),
            sorted(('02:6a:00:00:00:%02x' % n, 'flannel.1', '198.18.0.%d' % (10 + n), 'permanent') for n in numbers))


@pytest.fixture
def vtep(host):
    result = host.module('vxlan', VTEP)
    assert result['changed'], result
    return host


def test_converge_and_kernel_objects(vtep, tmp_path):
    result = converge(vtep, 'peers', peers_args(tmp_path, [2, 3, 4]))
    assert len(result['added']) == 10  # 9 kernel objects + the rt_protos file
    assert result['diff']['after']['route'][0]['protocol'] == 'overlay-mesh'
    assert owned(vtep) == expected([2, 3, 4])
    assert (tmp_path / 'rt_protos.d' / 'overlay-mesh.conf').read_text().endswith('217\toverlay-mesh\n')


def test_drift_is_restored(vtep, tmp_path):
    args = peers_args(tmp_path, [2, 3, 4])
    vtep.module('peers', args)
    vtep.ip('neigh del 10.244.2.0 dev flannel.1')
    vtep.run('bridge fdb replace 02:6a:00:00:00:03 dev flannel.1 dst 198.18.0.99 self permanent')
    vtep.ip('route del 10.244.4.0/24 proto %d' % PROTO)
    result = vtep.module('peers', args)
    assert result['changed']
    assert sorted(o['type'] for o in result['added']) == ['neighbour', 'route']
    assert [(o['type'], o['dst']) for o in result['updated']] == [('fdb', '198.18.0.13')]
    assert '198.18.0.99' in [o['dst'] for o in result['diff']['before']['fdb']]
    assert owned(vtep) == expected([2, 3, 4])
    assert not vtep.module('peers', args)['changed']
    # the VTEP itself deleted by hand: overlay.mesh.vxlan recreates it, peers restores everything
    vtep.ip('link del flannel.1')
    assert vtep.module('vxlan', VTEP)['changed']
    result = vtep.module('peers', args)
    assert result['changed'] and len(result['added']) == 9
    assert owned(vtep) == expected([2, 3, 4])


def add_foreign(ns):
    ns.ip('route add 10.99.0.0/16 via 10.244.2.0 dev flannel.1 onlink proto static')
    ns.ip('route add 10.98.0.0/16 via 198.18.0.254 dev u0')
    ns.ip('neigh add 198.18.0.50 lladdr 02:6a:00:00:99:50 dev u0 nud permanent')
    ns.run('bridge fdb add 02:6a:00:00:99:51 dev flannel.1 dst 198.18.0.51 self dynamic')
    ns.run('bridge fdb append 00:00:00:00:00:00 dev flannel.1 dst 198.18.0.52 self permanent')


def foreign(ns):
    routes, neigh, fdb = kernel(ns)
    return (sorted(r for r in routes if r[0] in ('10.99.0.0/16', '10.98.0.0/16')),
            sorted(n for n in neigh if n[0] == '198.18.0.50'),
            sorted(f for f in fdb if f[0] in ('02:6a:00:00:99:51', '00:00:00:00:00:00')))


def test_foreign_entries_survive_apply_purge_and_absent(vtep, tmp_path):
    vtep.module('peers', peers_args(tmp_path, [2, 3]))
    add_foreign(vtep)
    before = foreign(vtep)
    assert [len(group) for group in before] == [2, 1, 2]
    result = vtep.module('peers', peers_args(tmp_path, [2, 3, 4]))
    assert result['changed'] and foreign(vtep) == before
    result = vtep.module('peers', peers_args(tmp_path, [4], exclusive=True))
    assert len(result['removed']) == 6 and foreign(vtep) == before
    assert owned(vtep) == expected([4])
    result = vtep.module('peers', peers_args(tmp_path, [4], state='absent'))
    assert len(result['removed']) == 3 and foreign(vtep) == before
    assert owned(vtep) == ([], [], [])
    result = vtep.module('peers', peers_args(tmp_path, [], exclusive=True))
    assert not result['changed'] and foreign(vtep) == before


def test_foreign_route_on_a_peer_subnet_is_an_error(vtep, tmp_path):
    vtep.ip('route add 10.244.7.0/24 via 198.18.0.254 dev u0 proto static')
    result = vtep.module('peers', peers_args(tmp_path, [2, 7]))
    assert result.get('failed') and '10.244.7.0/24 via 198.18.0.254 dev u0 proto static' in result['msg'], result
    assert owned(vtep) == ([], [], [])  # refused before anything was sent


def test_check_mode_before_the_vtep_exists(host, tmp_path):
    checked = host.module('peers', peers_args(tmp_path, [2]), check=True)
    assert checked['changed'] and len(checked['added']) == 4
    failed = host.module('peers', peers_args(tmp_path, [2]))
    assert failed.get('failed') and 'VTEP flannel.1 does not exist' in failed['msg']


@pytest.mark.parametrize('bad, message', [
    ({'underlay': '2001:db8::2'}, 'underlay 2001:db8::2 is IPv6 but VTEP flannel.1 has the IPv4 local address 198.18.0.1'),
    ({'vtep_mac': '00:16:3e:00:00:01'}, 'vtep_mac 00:16:3e:00:00:01 is not locally administered'),
    ({'subnet': '10.244.9.1/24'}, "'10.244.9.1/24' has host bits set; did you mean 10.244.9.0/24?"),
    ({'subnet': '10.244.9.0/33'}, 'prefix /33 does not fit an IPv4 network'),
])
def test_errors_name_peer_and_value(vtep, tmp_path, bad, message):
    args = peers_args(tmp_path, [2])
    args['peers'][0].update(bad)
    result = vtep.module('peers', args)
    assert result.get('failed') and message in result['msg'], result
