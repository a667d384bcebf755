# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Converge benchmark: `overlay.mesh.site` against a hand-written playbook, on lab hosts (run as root).

The reference is tests/benchmarks/converge_baseline.yml: what an ops team writes by hand for a
flannel-style VXLAN full mesh (one ansible.builtin.command task per kind of kernel object, `ip`
and `bridge` commands, a loop over the peers for neighbour, FDB entry and route; no firewall,
no leases, no persistence). For each lab size (--hosts, default 8,16) the benchmark boots its own
lab `bench-conv` and measures the wall-clock time of ansible-playbook runs, one after the other:

1. baseline cold: converge_baseline.yml on fresh hosts;
2. baseline rerun: the same again, nothing to do;
   (converge_baseline_clean.yml deletes base.1 and base0: the hosts are fresh again; not timed)
3. site cold: `ansible-playbook overlay.mesh.site`, with a lease file of its own in a temporary
   directory (-e mesh_node_lease_file=...), so nothing is left beside the lab inventory;
4. site rerun: the same again; it must report changed=0 on every host.

Every run uses the environment of the Makefile (collection from the checkout, tests/ansible.cfg,
the lab's connection plugin, the venv's ansible-playbook). From each PLAY RECAP it takes, per
host, the tasks executed (ok + failed; a loop counts once) and the changed ones, and from the
result lines the module runs (loop items included), averaged over the hosts; a run that fails,
or leaves a host failed or unreachable, aborts the benchmark with its output. Prints a table per size
and the figures of each size as FIGURE lines (tests/benchmarks/_report.py: value, reference, ratio,
target); the last line is the summary at the largest size:
`SUMMARY <n> hosts: site cold ... / baseline cold ... = r (target <= 0.50); site rerun ... /
baseline rerun ... = r (target <= 0.20); ...`, with MISSED next to a target missed. The lab is
taken down whatever happens (failure, Ctrl-C). Exit status 0 when every run succeeded, even with a
target missed: a measurement, not a test. --smoke runs the smallest lab (2 hosts) once, for
`make test`, which checks only that the benchmark runs to its summary line.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, 'tests', 'lab'))
sys.path.insert(0, os.path.join(REPO, 'tests', 'benchmarks'))

from overlay_lab import Lab, LabError  # noqa: E402  pylint: disable=wrong-import-position
from _report import figure  # noqa: E402  pylint: disable=wrong-import-position

LAB_NAME = os.environ.get('OVERLAY_MESH_LAB_PREFIX', '') + 'bench-conv'  # a prefix lets two checkouts run at once
BASELINE = os.path.join(REPO, 'tests', 'benchmarks', 'converge_baseline.yml')
BASELINE_CLEAN = os.path.join(REPO, 'tests', 'benchmarks', 'converge_baseline_clean.yml')
SITE = 'overlay.mesh.site'
TARGET_COLD = 0.50    # site cold / baseline cold
TARGET_RERUN = 0.20   # site rerun / baseline rerun (issue 27)
SMOKE_HOSTS = 2       # --smoke: the smallest lab (a mesh needs peers)
OUTPUT_SHOWN = 20000  # characters of a failed run's output printed
# One result line per task and host, and per loop item: "ok: [node1]", "changed: [node1 -> localhost]", "ok: [node1] => (item=...)".
RESULT_RE = re.compile(r'^(?:ok|changed|failed|fatal): \[(?P<host>[^\]\s]+)(?: -> [^\]]+)?\]', re.M)
RECAP_RE = re.compile(r'^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+'
                      r'failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)\s+rescued=(?P<rescued>\d+)\s+ignored=(?P<ignored>\d+)')


class RunFailed(Exception):
    pass


def ansible_env():
    env = dict(os.environ)
    env.update(ANSIBLE_CONFIG=os.path.join(REPO, 'tests', 'ansible.cfg'), ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, '.collections'),
               ANSIBLE_CONNECTION_PLUGINS=os.path.join(REPO, 'tests', 'lab', 'connection_plugins'), ANSIBLE_NOCOLOR='1',
               PATH=os.path.join(REPO, '.venv', 'bin') + os.pathsep + env.get('PATH', ''))
    env.pop('ANSIBLE_FORCE_COLOR', None)
    return env


def parse_recap(output):
    """{host: {'ok': n, 'changed': n, 'unreachable': n, 'failed': n, ...}} from the PLAY RECAP."""
    lines = output.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith('PLAY RECAP')]
    if not starts:
        return {}
    recap = {}
    for line in lines[starts[-1] + 1:]:
        found = RECAP_RE.match(line.strip())
        if found:
            recap[found.group('host')] = {key: int(value) for key, value in found.groupdict().items() if key != 'host'}
    return recap


def count_runs(output):
    """{host: module runs} counted from the result lines, loop items included (the recap counts a loop once)."""
    runs = {}
    for found in RESULT_RE.finditer(output):
        runs[found.group('host')] = runs.get(found.group('host'), 0) + 1
    return runs


def run_playbook(label, inventory, hosts, playbook, extra=()):
    """Run one playbook; return (wall seconds, recap). Raises RunFailed with the output when the run
    fails or a host is missing from the recap, failed or unreachable."""
    argv = [os.path.join(REPO, '.venv', 'bin', 'ansible-playbook'), '-i', inventory, playbook, *extra]
    started = time.monotonic()
    proc = subprocess.run(argv, env=ansible_env(), capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    output = proc.stdout + ('\n' + proc.stderr if proc.stderr.strip() else '')
    recap = parse_recap(proc.stdout)
    for host, runs in count_runs(proc.stdout).items():
        if host in recap:
            recap[host]['runs'] = runs
    bad = sorted(h for h in hosts if h not in recap or recap[h]['failed'] or recap[h]['unreachable'])
    if proc.returncode or bad:
        shown = output if len(output) <= OUTPUT_SHOWN else '[... %d characters left out ...]\n%s' % (len(output) - OUTPUT_SHOWN, output[-OUTPUT_SHOWN:])
        raise RunFailed('%s failed (ansible-playbook exit status %d; hosts missing from the recap, failed or unreachable: %s)\n'
                        '$ %s\n%s' % (label, proc.returncode, ', '.join(bad) or 'none', ' '.join(argv), shown))
    return seconds, recap


def per_host(recap, key):
    """Average over the hosts of a recap figure ('tasks' = ok + failed)."""
    values = [(r['ok'] + r['failed']) if key == 'tasks' else r.get(key, 0) for r in recap.values()]
    return sum(values) / len(values)


def number(value):
    return '%d' % value if value == int(value) else '%.1f' % value


def measure(count, log):
    """Boot a lab of count hosts, time the four runs, take the lab down. {run: (seconds, recap)}."""
    lab = Lab(LAB_NAME)
    results = {}
    try:
        lab.down(log=lambda message: None)  # a lab left over by an interrupted run
        state = lab.up(count, log=log)
        inventory = str(lab.inventory_path)
        hosts = sorted(state['hosts'])
        with tempfile.TemporaryDirectory(prefix='bench-converge-') as tmp:
            lease = ['-e', 'mesh_node_lease_file=%s' % os.path.join(tmp, 'leases.yml')]
            for name, playbook, extra, timed in (('baseline cold', BASELINE, (), True), ('baseline rerun', BASELINE, (), True),
                                                 ('baseline clean', BASELINE_CLEAN, (), False),
                                                 ('site cold', SITE, lease, True), ('site rerun', SITE, lease, True)):
                seconds, recap = run_playbook('%s (%d hosts)' % (name, count), inventory, hosts, playbook, extra)
                log('  %-15s %7.1f s' % (name, seconds) if timed else '  %-15s (not timed)' % name)
                if timed:
                    results[name] = (seconds, recap)
    finally:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave the lab half removed
        try:
            lab.down(log=log)
        finally:
            signal.signal(signal.SIGINT, previous)
    return results


def report(count, results, log):
    log('')
    log('%d hosts              seconds  tasks/host  runs/host  changed/host' % count)
    for name, (seconds, recap) in results.items():
        log('  %-15s %9.1f  %10s  %9s  %12s' % (name, seconds, number(per_host(recap, 'tasks')), number(per_host(recap, 'runs')),
                                                number(per_host(recap, 'changed'))))
    changed = {host: r['changed'] for host, r in sorted(results['site rerun'][1].items()) if r['changed']}
    log('  site rerun changed=0 on every host: %s' % ('yes' if not changed else 'NO (%s)' % ', '.join('%s changed=%d' % c for c in changed.items())))
    cold = results['site cold'][0] / results['baseline cold'][0]
    rerun = results['site rerun'][0] / results['baseline rerun'][0]
    log('  site / baseline: cold %.2f (target <= %.2f), rerun %.2f (target <= %.2f)' % (cold, TARGET_COLD, rerun, TARGET_RERUN))
    for run, target in (('cold', TARGET_COLD), ('rerun', TARGET_RERUN)):
        figure('converge', 'site %s, %d hosts' % (run, count), results['site ' + run][0], 's', target,
               reference=results['baseline ' + run][0], reference_name='baseline %s (ip/bridge commands)' % run)
    log('')
    return cold, rerun, changed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--hosts', help='lab sizes, comma separated (default: 8,16)')
    parser.add_argument('--smoke', action='store_true',
                        help='the smallest lab (%d hosts), once: for make test, which checks that the bench runs to its summary' % SMOKE_HOSTS)
    args = parser.parse_args(argv)
    if args.smoke and args.hosts:
        parser.error('--smoke runs %d hosts: leave out --hosts' % SMOKE_HOSTS)
    try:
        sizes = [SMOKE_HOSTS] if args.smoke else [int(size) for size in (args.hosts or '8,16').split(',') if size.strip()]
    except ValueError:
        parser.error('--hosts: comma-separated numbers of hosts, e.g. 8,16')
    if not sizes or min(sizes) < 2:
        parser.error('--hosts: every lab needs at least 2 hosts (a mesh needs peers)')
    if os.geteuid() != 0:
        print('bench_converge: run as root (it boots labs)', file=sys.stderr)
        return 2

    def log(message):
        print(message, flush=True)

    def terminate(signum, frame):
        raise KeyboardInterrupt('signal %d' % signum)

    signal.signal(signal.SIGTERM, terminate)  # the lab is taken down on SIGTERM as on Ctrl-C
    log('converge: %s vs %s (ip/bridge commands), lab %s of %s hosts' % (
        SITE, os.path.relpath(BASELINE, REPO), LAB_NAME, ', '.join(map(str, sizes))))
    summaries = {}
    for count in sizes:
        log('lab of %d hosts' % count)
        try:
            results = measure(count, log)
        except (RunFailed, LabError) as err:
            log('bench_converge: %s' % err)
            return 1
        except KeyboardInterrupt:
            log('bench_converge: interrupted; lab %s taken down' % LAB_NAME)
            return 130
        summaries[count] = (results,) + report(count, results, log)

    count = max(summaries)
    results, cold, rerun, changed = summaries[count]
    base_cold, base_rerun = results['baseline cold'][0], results['baseline rerun'][0]
    site_cold, site_rerun = results['site cold'][0], results['site rerun'][0]
    log('SUMMARY %d hosts: site cold %.1f s / baseline cold %.1f s = %.2f (target <= %.2f)%s; '
        'site rerun %.1f s / baseline rerun %.1f s = %.2f (target <= %.2f)%s; '
        'tasks/host site %s, baseline %s (results incl. loop items: site %s, baseline %s); site rerun changed=0 on %d/%d hosts' % (
            count, site_cold, base_cold, cold, TARGET_COLD, '' if cold <= TARGET_COLD else ' MISSED',
            site_rerun, base_rerun, rerun, TARGET_RERUN, '' if rerun <= TARGET_RERUN else ' MISSED',
            number(per_host(results['site cold'][1], 'tasks')), number(per_host(results['baseline cold'][1], 'tasks')),
            number(per_host(results['site cold'][1], 'runs')), number(per_host(results['baseline cold'][1], 'runs')),
            count - len(changed), count))
    return 0


if __name__ == '__main__':
    sys.exit(main())
