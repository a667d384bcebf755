# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every benchmark in one run, then one table (run as root: make bench).

Runs each bench of tests/benchmarks at full size (or `--smoke`: smallest sizes, one repetition),
shows its output as it goes, and ends with one table of every figure the benches printed as
FIGURE lines (tests/benchmarks/_report.py): value, the reference measured in the same run, the
ratio, the target and PASS/MISS, with the machine's load average at the start and the end (the
machine is shared: a figure taken under load says so).  A MISS is a finding, not an error; the
exit status is 1 only when a bench breaks (a non-zero exit or no SUMMARY line at its end).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import _report as report

HERE = Path(__file__).resolve().parent
# (name, script): `make bench-<name>` runs the same script alone.
BENCHES = (('netlink', 'bench_netlink.py'), ('leases', 'bench_leases.py'),
           ('dataplane', 'bench_dataplane.py'), ('converge', 'bench_converge.py'),
           ('agent', 'bench_agent.py'))


def run_bench(script, smoke):
    """Run one bench, echoing its output; returns (exit status, its output lines, seconds)."""
    command = [sys.executable, '-u', str(HERE / script)] + (['--smoke'] if smoke else [])
    started = time.monotonic()
    lines = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        for line in proc.stdout:
            sys.stdout.write(line)
            lines.append(line.rstrip('\n'))
    return proc.returncode, lines, time.monotonic() - started


def ran_to_summary(lines):
    """A bench that ran to its end prints its SUMMARY line last."""
    printed = [line for line in lines if line.strip()]
    return bool(printed) and printed[-1].startswith('SUMMARY')


def table(rows):
    header = ('bench', 'figure', 'value', 'reference', 'ratio', 'target', 'result')
    body = []
    for one in rows:
        value = '%g %s' % (one['value'], one['unit'])
        reference = '' if one['reference'] is None else '%g (%s)' % (one['reference'], one['reference_name'])
        ratio = '' if one['ratio'] is None else '%.2f' % one['ratio']
        body.append((one['bench'], one['figure'], value, reference, ratio, one['target'], one['result']))
    widths = [max(len(str(row[i])) for row in [header] + body) for i in range(len(header))]
    return '\n'.join('  '.join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in [header, tuple('-' * w for w in widths)] + body)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--smoke', action='store_true', help='every bench at its smallest size, once')
    parser.add_argument('--only', nargs='+', choices=[name for name, _script in BENCHES], help='these benches only')
    args = parser.parse_args(argv)
    load_start = os.getloadavg()
    figures, broken, timings = [], [], []
    for name, script in BENCHES:
        if args.only and name not in args.only:
            continue
        print('==== bench-%s%s' % (name, ' (smoke)' if args.smoke else ''), flush=True)
        status, lines, seconds = run_bench(script, args.smoke)
        timings.append('%s %.0f s' % (name, seconds))
        figures += report.parse(lines)
        if status != 0 or not ran_to_summary(lines):
            broken.append('%s (exit %d%s)' % (name, status, '' if ran_to_summary(lines) else ', no SUMMARY line last'))
    load_end = os.getloadavg()
    print()
    print(table(figures))
    print()
    print('load average (1, 5, 15 min): start %.2f %.2f %.2f, end %.2f %.2f %.2f on %d cores; bench times: %s'
          % (load_start + load_end + (os.cpu_count(), ', '.join(timings))))
    results = [one['result'] for one in figures]
    print('SUMMARY %d figures: %d PASS, %d MISS, %d INFO (no target)%s%s' % (
        len(figures), results.count('PASS'), results.count('MISS'), results.count('INFO'),
        ' (smoke sizes: figures mean nothing)' if args.smoke else '',
        '; BROKEN: ' + ', '.join(broken) if broken else ''))
    return 1 if broken else 0


if __name__ == '__main__':
    sys.exit(main())
