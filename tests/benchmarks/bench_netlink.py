# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark of the netlink engine against iproute2 batches (run as root: make bench-netlink).

In a throwaway network namespace, program 1000 and 5000 peers (neighbour + FDB entry +
on-link route each) on a VXLAN device, once through the engine and once through
`ip -batch` / `bridge -batch`, and print seconds and ratios for: first apply, no-op
re-check, one peer changed among N (those two: median of 3).  The last line is a one-line summary of the ratios.
This is a measurement, not a timed test: it always exits 0 unless something breaks.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time

import _report as report

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, '.collections'))

SIZES = (1000, 5000)
VTEP = 'ovlnb-vx'
UNDERLAY = 'ovlnb-u0'
PROTO = 217
REPEAT = 3  # no-op and one-changed runs are repeated; the median is reported
SMOKE_SIZES = (50,)  # --smoke: does the bench still run end to end (make test), no figure worth reading
TARGETS = {'apply': 3.0, 'noop': 1.5, 'one': 1.10}


def peer(i, variant=0):
    """Peer i: subnet 10.a.b.0/24, MAC 02:00:va:aa:bb:cc, underlay in 198.18.0.0/15."""
    n = i + 1
    return {'subnet': '10.%d.%d.0/24' % (n // 256, n % 256),
            'vtep_mac': '02:00:%02x:%02x:%02x:%02x' % (variant, (n >> 16) & 255, (n >> 8) & 255, n & 255),
            'underlay': '198.18.%d.%d' % ((n + 1) // 256, (n + 1) % 256)}


def sh(command):
    subprocess.run(command, shell=True, check=True)


def fresh_vtep():
    """A new VTEP made by the vxlan module's own entry point (the engine under test), then read back."""
    from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_links as links
    from ansible_collections.overlay.mesh.plugins.module_utils._backends import vxlan
    from ansible_collections.overlay.mesh.plugins.module_utils._netlink_compat import open_iproute
    vxlan.reconcile_vtep({'name': VTEP, 'state': 'absent'})
    vxlan.reconcile_vtep({'name': VTEP, 'state': 'present', 'vni': 1, 'local': '198.18.0.1', 'underlay_device': UNDERLAY,
                          'mac': '02:00:00:00:00:01', 'address': '10.0.0.0'})
    ipr = open_iproute()
    try:
        return links.read_link(ipr, VTEP)
    finally:
        ipr.close()


def timed(func):
    gc.collect()  # every run starts without garbage from the previous one
    start = time.perf_counter()
    result = func()
    return time.perf_counter() - start, result


def bench_engine(count, repeat):
    from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_peers as peers_mod
    from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_wire as wire
    vtep = fresh_vtep()
    desired = peers_mod.normalise_peers([peer(i) for i in range(count)])
    changed = list(desired)
    changed[count // 2] = peers_mod.normalise_peers([peer(count // 2, variant=1)])[0]
    with wire.NetlinkRoute() as nl:
        engine = peers_mod.PeerReconciler(nl, vtep)
        t_apply, first = timed(lambda: engine.reconcile(desired, exclusive=True))
        assert len(first) == 3 * count, len(first)
        noops = []
        ones = []
        for _round in range(repeat):
            seconds, noop = timed(lambda: engine.reconcile(desired, exclusive=True))
            assert not noop.changed
            noops.append(seconds)
            # the peer got a new VTEP MAC: neighbour updated, FDB entry added, the old MAC's entry purged
            for target in (changed, desired):
                seconds, one = timed(lambda: engine.reconcile(target, exclusive=True))
                assert len(one) == 3, [c.obj for c in one.changes]
                ones.append(seconds)
    return t_apply, statistics.median(noops), statistics.median(ones)


def bench_iproute2(count, workdir):
    fresh_vtep()
    neigh_path = os.path.join(workdir, 'neigh.batch')
    fdb_path = os.path.join(workdir, 'fdb.batch')
    route_path = os.path.join(workdir, 'route.batch')
    with open(neigh_path, 'w') as neigh, open(fdb_path, 'w') as fdb, open(route_path, 'w') as route:
        for i in range(count):
            p = peer(i)
            gateway = p['subnet'].split('/')[0]
            neigh.write('neigh replace %s lladdr %s dev %s nud permanent\n' % (gateway, p['vtep_mac'], VTEP))
            fdb.write('fdb replace %s dev %s dst %s self permanent\n' % (p['vtep_mac'], VTEP, p['underlay']))
            route.write('route replace %s via %s dev %s onlink proto %d\n' % (p['subnet'], gateway, VTEP, PROTO))

    def run():
        sh('ip -batch %s && bridge -batch %s && ip -batch %s' % (neigh_path, fdb_path, route_path))
    t_apply = timed(run)[0]
    t_again = timed(run)[0]
    return t_apply, t_again


def inside(sizes, repeat):
    sh('ip link set lo up')
    sh('ip link add %s type veth peer name ovlnb-u1' % UNDERLAY)
    sh('ip addr add 198.18.0.1/15 dev %s && ip link set %s up && ip link set ovlnb-u1 up' % (UNDERLAY, UNDERLAY))
    import pyroute2
    print('pyroute2 %s, Python %s, kernel %s' % (pyroute2.__version__, sys.version.split()[0], os.uname().release))
    print('%6s  %-28s %9s %9s %9s' % ('peers', 'run', 'engine s', 'ip s', 'ratio'))
    summary = []
    with tempfile.TemporaryDirectory(prefix='ovlnb-') as workdir:
        for count in sizes:
            ip_apply, ip_again = bench_iproute2(count, workdir)
            e_apply, e_noop, e_one = bench_engine(count, repeat)
            rows = [('first apply (%d objects)' % (3 * count), e_apply, ip_apply, e_apply / ip_apply),
                    ('no-op re-check', e_noop, ip_apply, e_noop / ip_apply),
                    ('one peer changed', e_one, ip_again, e_one / e_noop)]
            for name, engine_s, ip_s, ratio in rows:
                print('%6d  %-28s %9.3f %9.3f %8.2fx' % (count, name, engine_s, ip_s, ratio))
            print('%6s  (ip column of "one peer changed": iproute2 replaying all %d peers; its ratio is'
                  ' engine one-changed / engine no-op)' % ('', count))
            figures = [report.figure('netlink', '%d peers first apply' % count, e_apply, 's', TARGETS['apply'],
                                     reference=ip_apply, reference_name='ip -batch apply'),
                       report.figure('netlink', '%d peers no-op re-check' % count, e_noop, 's', TARGETS['noop'],
                                     reference=ip_apply, reference_name='ip -batch apply'),
                       report.figure('netlink', '%d peers one changed' % count, e_one, 's', TARGETS['one'],
                                     reference=e_noop, reference_name='engine no-op')]
            ok = all(one['result'] == 'PASS' for one in figures)
            summary.append('%d peers: apply %.2fx ip (<=%.1f), no-op %.2fx ip apply (<=%.1f), one-changed %.2fx no-op (<=%.2f) %s'
                           % (count, rows[0][3], TARGETS['apply'], rows[1][3], TARGETS['noop'], rows[2][3], TARGETS['one'],
                              'PASS' if ok else 'MISS'))
    print('SUMMARY ' + ' | '.join(summary))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=list(SIZES))
    parser.add_argument('--repeat', type=int, default=REPEAT, help='no-op and one-changed runs (the median is kept)')
    parser.add_argument('--smoke', action='store_true', help='%s peers, one repetition: checks that the bench runs'
                        % '/'.join(map(str, SMOKE_SIZES)))
    parser.add_argument('--inside', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        args.sizes, args.repeat = list(SMOKE_SIZES), 1
    if args.inside:
        inside(args.sizes, args.repeat)
        return 0
    if os.geteuid() != 0:
        print('bench_netlink: needs root (network namespaces)', file=sys.stderr)
        return 1
    namespace = 'ovlnb-%d' % os.getpid()
    sh('ip netns add %s' % namespace)
    try:
        command = ['ip', 'netns', 'exec', namespace, sys.executable, os.path.abspath(__file__), '--inside', '--repeat', str(args.repeat), '--sizes']
        return subprocess.run(command + [str(s) for s in args.sizes], check=False).returncode
    finally:
        subprocess.run(['ip', 'netns', 'del', namespace], check=False)


if __name__ == '__main__':
    sys.exit(main())
