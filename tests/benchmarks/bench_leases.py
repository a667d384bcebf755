# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark of subnet lease allocation (``make bench-leases``).

Two cases, each timed end to end as the action plugin runs them: take the lock, read and parse
the lease file, validate the inputs (underlay address and VTEP MAC of every host), allocate,
render the lease file and write it atomically (fsync, rename).
  fresh:  10 000 hosts, no lease file yet.
  grow:   a lease file with 9 999 leases, plus 1 new host.
Network 10.0.0.0/8 with /24 subnets (65 535 usable). Each case runs --repeat times; the best and
the median wall-clock times are printed against the 1 s target (with the CPU time, which a busy
machine does not inflate).

Then the etcd store (registry etcd) against a local etcd 3.4 member (started here, on 127.0.0.1,
stopped by PID), beside the file store measured in the same run on the same cases:
  fresh:  --etcd-hosts (1 000) hosts, an empty prefix;
  grow:   999 leases in etcd, plus 1 new host;
  rerun:  1 000 leases, nothing new (must be one request: nothing written).
Each with its number of HTTP round trips to etcd. Targets: 1 s for the file store and for etcd's grow
and rerun (fresh etcd writes in transactions of 127 changes, etcd's default --max-txn-ops, and is
reported only). Every figure is a FIGURE line (tests/benchmarks/_report.py) and the last line
summarises. A missed target is reported, not an error: the exit status is 0 unless something breaks.
--smoke runs 200 hosts (50 in etcd) once: it checks that the bench runs, for `make test`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Import from the checkout without needing ANSIBLE_COLLECTIONS_PATH.
REPO = Path(__file__).resolve().parents[2]
if REPO.parent.name == 'overlay' and REPO.parent.parent.name == 'ansible_collections':
    sys.path.insert(0, str(REPO.parents[2]))
else:
    sys.path.insert(0, str(REPO / '.collections'))

from ansible_collections.overlay.mesh.plugins.plugin_utils import _leases as L  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.overlay.mesh.plugins.plugin_utils import _registry as R  # noqa: E402  pylint: disable=wrong-import-position

sys.path.insert(0, str(REPO / 'tests/unit/plugins/plugin_utils'))
import etcd_lab  # noqa: E402  pylint: disable=wrong-import-position,wrong-import-order
import _report as report  # noqa: E402  pylint: disable=wrong-import-position,wrong-import-order

TARGET = 1.0
NETWORK = '10.0.0.0/8'


def host_name(i):
    return 'node%05d' % i


def underlay_of(hosts):
    return {h: {'address': '192.168.%d.%d' % (i // 250, i % 250 + 1), 'network': '192.168.0.0/16',
                'vtep_mac': '0a:58:%02x:%02x:%02x:01' % ((i >> 16) & 255, (i >> 8) & 255, i & 255)}
            for i, h in enumerate(hosts)}


def run_once(path, hosts, underlay):
    """One allocation as the action plugin does it; returns (wall seconds, CPU seconds, allocation)."""
    start, cpu = time.perf_counter(), time.process_time()
    config = L.make_config(NETWORK)
    alloc = L.update_lease_file(path, config, hosts, underlay=underlay)[0]
    return time.perf_counter() - start, time.process_time() - cpu, alloc


def bench(name, repeat, prepare, hosts, underlay, expect_added):
    times, cpus = [], []
    for dummy in range(repeat):
        with tempfile.TemporaryDirectory(prefix='bench-leases-') as tmp:
            path = os.path.join(tmp, L.LEASE_FILE_NAME)
            prepare(path)
            seconds, cpu, alloc = run_once(path, hosts, underlay)
            assert len(alloc.added) == expect_added, (name, len(alloc.added))
            assert len(L.read_lease_file(path)[1]) == len(hosts)
            times.append(seconds)
            cpus.append(cpu)
    best, median = min(times), statistics.median(times)
    verdict = 'ok' if median <= TARGET else 'MISSED'
    print('%-32s best %.3f s  median %.3f s  (CPU median %.3f s, %d runs)  target <= %.1f s: %s'
          % (name, best, median, statistics.median(cpus), repeat, TARGET, verdict))
    return median


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--hosts', type=int, default=10000)
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--etcd-hosts', type=int, default=1000, help='hosts of the etcd cases (0: skip them)')
    parser.add_argument('--smoke', action='store_true', help='200 hosts, 50 in etcd, one run: checks that the bench runs')
    args = parser.parse_args()
    if args.smoke:
        args.hosts, args.etcd_hosts, args.repeat = 200, 50, 1

    hosts = [host_name(i) for i in range(args.hosts)]
    underlay = underlay_of(hosts)
    print('subnet lease allocation, %d hosts in %s (lock + read + validate + allocate + render + atomic write)' % (args.hosts, NETWORK))

    def nothing(path):
        del path

    # The lease file of the grow case: every host but one (the one in the middle) already leased.
    config = L.make_config(NETWORK)
    newcomer = hosts[len(hosts) // 2]
    older = [h for h in hosts if h != newcomer]
    seed_text = L.render_lease_file(config, L.allocate(config, older, underlay=underlay).leases)

    def seeded(path):
        Path(path).write_text(seed_text, encoding='utf-8')

    fresh = bench('fresh: %d hosts' % args.hosts, args.repeat, nothing, hosts, underlay, len(hosts))
    grow = bench('grow: %d existing + 1 new' % len(older), args.repeat, seeded, hosts, underlay, 1)
    report.figure('leases', 'file fresh %d hosts' % args.hosts, fresh, 's', TARGET, absolute=True)
    report.figure('leases', 'file %d + 1 new host' % len(older), grow, 's', TARGET, absolute=True)
    ok = fresh <= TARGET and grow <= TARGET
    summary = ('bench-leases: fresh %d hosts %.3f s, %d existing + 1 new %.3f s (median of %d, target <= %.1f s each): %s'
               % (args.hosts, fresh, len(older), grow, args.repeat, TARGET, 'PASS' if ok else 'MISS'))
    if args.etcd_hosts:
        summary += ' | ' + bench_etcd(args.etcd_hosts, args.repeat)
    print('SUMMARY ' + summary)
    return 0


def bench_etcd(count, repeat):
    """The etcd store against one local member, beside the file store on the same cases."""
    hosts = [host_name(i) for i in range(count)]
    underlay = underlay_of(hosts)
    config = L.make_config(NETWORK)
    newcomer = hosts[len(hosts) // 2]
    older = [h for h in hosts if h != newcomer]
    print()
    print('etcd lease store, %d hosts in %s: one range read + allocate + transactions (etcd 3.4, one local member, '
          'no TLS), against the lease file on the same cases' % (count, NETWORK))
    figures = {}
    with tempfile.TemporaryDirectory(prefix='bench-leases-etcd-') as tmp:
        cluster = etcd_lab.Cluster(tmp).start()
        try:
            client = cluster.client(timeout=30)
            serial = iter(range(10 ** 6))

            def etcd_case(name, seed, run_hosts, expect_added):
                times, requests = [], set()
                for dummy in range(repeat):
                    prefix = '/bench/%d' % next(serial)
                    if seed:
                        R.update_etcd(client, config, seed, prefix=prefix, underlay=underlay)
                    start = time.perf_counter()
                    run = R.update_etcd(client, config, run_hosts, prefix=prefix, underlay=underlay)
                    times.append(time.perf_counter() - start)
                    assert len(run.alloc.added) == expect_added, (name, len(run.alloc.added))
                    requests.add(run.requests)
                figures[name] = (statistics.median(times), min(times), sorted(requests))
                print('%-34s best %.3f s  median %.3f s  round trips %s  (%d runs)'
                      % (name, min(times), statistics.median(times), '/'.join(map(str, sorted(requests))), repeat))

            def file_case(name, seed, run_hosts, expect_added):
                text = L.render_lease_file(config, L.allocate(config, seed, underlay=underlay).leases) if seed else None
                prepare = (lambda path: Path(path).write_text(text, encoding='utf-8')) if text else (lambda path: None)
                times = []
                for dummy in range(repeat):
                    with tempfile.TemporaryDirectory(prefix='bench-leases-') as sub:
                        path = os.path.join(sub, L.LEASE_FILE_NAME)
                        prepare(path)
                        start = time.perf_counter()
                        alloc = L.update_lease_file(path, config, run_hosts, underlay=underlay)[0]
                        times.append(time.perf_counter() - start)
                        assert len(alloc.added) == expect_added
                figures[name] = (statistics.median(times), min(times), [])
                print('%-34s best %.3f s  median %.3f s' % (name, min(times), statistics.median(times)))

            etcd_case('etcd fresh: %d hosts' % count, [], hosts, count)
            file_case('file fresh: %d hosts' % count, [], hosts, count)
            etcd_case('etcd grow: %d + 1 new' % len(older), older, hosts, 1)
            file_case('file grow: %d + 1 new' % len(older), older, hosts, 1)
            etcd_case('etcd rerun: %d, nothing new' % count, hosts, hosts, 0)
            file_case('file rerun: %d, nothing new' % count, hosts, hosts, 0)
        finally:
            cluster.stop()
    med = {name.split(':')[0]: value for name, value in figures.items()}
    figure_names = {name.split(':')[0]: name.replace(':', '') for name in figures}
    for case in ('grow', 'rerun'):
        report.figure('leases', figure_names['etcd ' + case], med['etcd ' + case][0], 's', TARGET, absolute=True,
                      reference=med['file ' + case][0], reference_name='lease file, same case')
        report.figure('leases', figure_names['etcd ' + case] + ': round trips', max(med['etcd ' + case][2]), 'requests',
                      {'grow': 2, 'rerun': 1}[case])
    ok = (med['etcd grow'][0] <= TARGET and med['etcd rerun'][0] <= TARGET and med['etcd rerun'][2] == [1]
          and med['etcd grow'][2] == [2])
    return ('etcd: fresh %d hosts %.3f s (%s round trips; file %.3f s), %d + 1 new %.3f s (%s; file %.3f s), '
            'rerun %.3f s (%s; file %.3f s), median of %d: %s'
            % (count, med['etcd fresh'][0], '/'.join(map(str, med['etcd fresh'][2])), med['file fresh'][0],
               len(older), med['etcd grow'][0], '/'.join(map(str, med['etcd grow'][2])), med['file grow'][0],
               med['etcd rerun'][0], '/'.join(map(str, med['etcd rerun'][2])), med['file rerun'][0], repeat,
               'PASS' if ok else 'MISS'))


if __name__ == '__main__':
    sys.exit(main())
