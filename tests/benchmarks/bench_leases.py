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
machine does not inflate). The last line summarises both; exit status 1
when a median misses the target.
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
    args = parser.parse_args()

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
    ok = fresh <= TARGET and grow <= TARGET
    print('bench-leases: fresh %d hosts %.3f s, %d existing + 1 new %.3f s (median of %d, target <= %.1f s each): %s'
          % (args.hosts, fresh, len(older), grow, args.repeat, TARGET, 'PASS' if ok else 'FAIL'))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
