# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Node agent benchmark (issue 22): how fast a lease change in etcd reaches the kernel of every host (run as root).

Boots its own lab `bench-agent` (--hosts, default 3), runs a single plain-http etcd member on node1 (a transient
unit, the binary `make deps` unpacked in .build/etcd), runs `overlay.mesh.site` from a controller in the lab's
switch namespace with mesh_node_registry etcd and mesh_node_agent true (group "mesh" = every host, overlay network
10.128.0.0/9), then writes fake peers straight into etcd: flannel's key schema, values as
_lease_schema.lease_value writes them (OverlayMesh host ghost-N, a unique VtepMAC, a unique PublicIP from a /20 of
198.18.0.0/15 apart from the lab's underlay /24: no host has it, and nothing is ever sent to it), in transactions of
100 puts. Once every agent has them all (agent.json `peers`), it times single-lease changes, in turn a join (a new lease), a move of
PublicIP, a move of VtepMAC and a delete, first with 100 leases in etcd, then with --leases (default 1 000):

- latency: from just before the put (or delete) request leaves the writer (a long-lived process in the switch
  namespace, the etcd client of the collection) to the netlink event of the kernel entry on the LAST host (a
  long-lived listener per host, in its namespaces, subscribed to route and neighbour/FDB events: a join waits for
  the route and the FDB entry, a move for the FDB entry with the new MAC or address, a delete for the route's
  removal). Both ends read CLOCK_MONOTONIC of the same kernel. p50 and p99 (target p99 <= 1 s);
- kernel operations per single-lease change: the K of each agent's journal line `revision N: ...: K change(s): ...`
  for the changes' revisions, less the file writes it lists (the saved contract, node.json), as a distribution, at
  both sizes and by kind of change (it must not grow with the number of leases). An nftables update counts one,
  whatever it rewrote;
- agent memory: VmRSS of the agent's MainPID with --leases leases (target <= 40 MB, the largest host; also shown
  after the changes at 100 leases, which tells the engine's own footprint from what the leases add);
- idle CPU: utime+stime of the agent's MainPID over --idle seconds (default 20) with no change, per cent of one
  core (target <= 1 %, the largest host).

FIGURE lines (tests/benchmarks/_report.py) for each figure with its target, a table, one SUMMARY line last. The lab
is taken down whatever happens. Exit status 0 when the runs worked, even with a target missed (a measurement, not a
test). --smoke: 2 hosts, 100 leases, 8 changes, 3 s idle, for `make test` (only that it runs to its summary).
"""

from __future__ import annotations

import argparse
import collections
import functools
import ipaddress
import json
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
sys.path.insert(0, os.path.join(REPO, '.collections'))

from overlay_lab import Lab, LabError  # noqa: E402  pylint: disable=wrong-import-position
from _report import figure  # noqa: E402  pylint: disable=wrong-import-position
from bench_converge import RunFailed, ansible_env  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.overlay.mesh.plugins.module_utils import _lease_schema as schema  # noqa: E402  pylint: disable=wrong-import-position

LAB_NAME = os.environ.get('OVERLAY_MESH_LAB_PREFIX', '') + 'bench-agent'
ETCD_BINARY = os.path.join(REPO, '.build', 'etcd', 'usr', 'bin', 'etcd')
PREFIX = '/coreos.com/network'
NETWORK = '10.128.0.0/9'                            # room for the real hosts' /24s and thousands of ghosts
GHOSTS = ipaddress.ip_network('10.160.0.0/11')      # ghost-N's subnet: the N-th /24 of this
BACKEND = schema.backend_settings({'type': 'vxlan'})
AGENT_UNIT = 'overlay-mesh-agent.service'
TARGET_P99 = 1.0       # seconds, lease put -> kernel entries on every host
TARGET_RSS = 40.0      # MB
TARGET_CPU = 1.0       # per cent of one core, idle
SMALL = 100            # the first size: kernel operations per change must not grow from it to --leases
WAIT_TIMEOUT = 10.0    # seconds a change may take before it counts as lost
BATCH = 100            # puts per transaction when loading the ghosts (etcd's default limit is 128)
SMOKE = {'hosts': 2, 'leases': 100, 'changes': 8, 'idle': 3.0}
CHANGE_RE = re.compile(r'^overlay-mesh-agent: revision (\d+): .*?: (\d+) change\(s\): (.*)$', re.M)

# One per host, in its namespaces: records when each route and FDB entry event arrives (CLOCK_MONOTONIC), answers
# {"clear": 1} (forget what was seen) and {"wait": [keys], "timeout": s} ({"seen": {key: t}, "missing": [...]}).
LISTENER = r'''
import json, sys, threading, time
from pyroute2 import IPRoute
seen, lock = {}, threading.Lock()
def listen():
    ipr = IPRoute()
    ipr.bind(groups=0x4 | 0x40)  # RTMGRP_NEIGH | RTMGRP_IPV4_ROUTE
    while True:
        try:
            messages = ipr.get()
        except OSError:
            continue  # ENOBUFS after a burst: the next events still come
        now = time.monotonic()
        for msg in messages:
            event, key = msg.get('event'), None
            if event in ('RTM_NEWROUTE', 'RTM_DELROUTE') and msg.get_attr('RTA_DST'):
                key = 'route%s%s/%d' % ('+' if event == 'RTM_NEWROUTE' else '-', msg.get_attr('RTA_DST'), msg['dst_len'])
            elif event == 'RTM_NEWNEIGH' and msg['family'] == 7 and msg.get_attr('NDA_DST'):
                key = 'fdb+%s=%s' % (msg.get_attr('NDA_LLADDR'), msg.get_attr('NDA_DST'))
            if key:
                with lock:
                    seen.setdefault(key, now)
threading.Thread(target=listen, daemon=True).start()
print(json.dumps({'ready': 1}), flush=True)
for line in sys.stdin:
    order = json.loads(line)
    if 'clear' in order:
        with lock:
            seen.clear()
        print(json.dumps({'cleared': 1}), flush=True)
        continue
    deadline = time.monotonic() + order['timeout']
    while True:
        with lock:
            missing = [k for k in order['wait'] if k not in seen]
            got = dict((k, seen[k]) for k in order['wait'] if k in seen)
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.002)
    print(json.dumps({'seen': got, 'missing': missing}), flush=True)
'''

# In the lab's switch namespace (where a controller sits): writes to etcd with the collection's client.
WRITER = r'''
import json, sys, time
sys.path.insert(0, sys.argv[1])
from ansible_collections.overlay.mesh.plugins.module_utils import _etcd
client = _etcd.EtcdClient([sys.argv[2]], timeout=10)
for line in sys.stdin:
    order = json.loads(line)
    try:
        if order['op'] == 'ready':
            client.serving('/coreos.com/network/')
            reply = {}
        elif order['op'] == 'bulk':
            ops = [{'request_put': {'key': _etcd.b64(k), 'value': _etcd.b64(v)}} for k, v in order['items']]
            reply = {'revision': client.txn([], ops)[1]}
        else:
            t0 = time.monotonic()
            if order['op'] == 'put':
                answer = client.call('/v3/kv/put', {'key': _etcd.b64(order['key']), 'value': _etcd.b64(order['value'])})
            else:
                answer = client.call('/v3/kv/deleterange', {'key': _etcd.b64(order['key'])})
            reply = {'t0': t0, 't1': time.monotonic(), 'revision': int(answer['header']['revision'])}
    except _etcd.EtcdError as exc:
        reply = {'error': str(exc)}
    print(json.dumps(reply), flush=True)
'''


class BenchError(Exception):
    pass


class Line(object):
    """A long-lived helper process spoken to in JSON lines."""

    def __init__(self, name, argv):
        self.name = name
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def send(self, order):
        self.proc.stdin.write(json.dumps(order) + '\n')
        self.proc.stdin.flush()

    def read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise BenchError('%s ended (exit status %s)' % (self.name, self.proc.wait()))
        return json.loads(line)

    def ask(self, order):
        self.send(order)
        return self.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()  # this process only (we started it); its stdin closes too
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def ghost_pool(lab_subnet):
    """Underlay addresses for the ghosts (each peer needs one of its own): a /20 of 198.18.0.0/15 apart from the lab's
    /24. No host has one, no route leads to one, and nothing is ever sent to one (no traffic goes to a ghost)."""
    for pool in ('198.19.240.0/20', '198.18.240.0/20'):
        pool = ipaddress.ip_network(pool)
        if not pool.overlaps(lab_subnet):
            return pool
    raise BenchError('no ghost pool apart from %s' % lab_subnet)


def ghost(index, pool, mac_round=0, address=None):
    """(key, value, record) of fake peer ghost-<index>: its /24, a unique MAC and an address of the pool."""
    subnet = '%s/24' % (GHOSTS.network_address + 256 * index)
    mac = '0e:%02x:a0:%02x:%02x:%02x' % (mac_round % 256, (index >> 16) & 255, (index >> 8) & 255, index & 255)
    underlay = str(address or (pool.network_address + 1 + index))
    record = {'subnet': subnet, 'underlay': underlay, 'vtep_mac': mac}
    key = schema.subnet_key(PREFIX, record)
    return key, schema.lease_value('ghost-%d' % index, record, BACKEND), record


def start_etcd(lab, address):
    """A single plain-http member on node1, listening on its underlay address (and loopback)."""
    state = lab.load()
    leader = lab.leader_pid(state['hosts']['node1'])
    with open(ETCD_BINARY, 'rb') as binary:
        subprocess.run(['nsenter', '-t', str(leader), '-a', 'sh', '-c', 'cat > /usr/local/bin/etcd && chmod 755 /usr/local/bin/etcd'],
                       stdin=binary, check=True)
    proc = lab.exec('node1', [
        'systemd-run', '--unit', 'bench-etcd', '/usr/local/bin/etcd', '--name', 'node1', '--data-dir', '/var/lib/bench-etcd',
        '--listen-client-urls', 'http://%s:2379,http://127.0.0.1:2379' % address, '--advertise-client-urls', 'http://%s:2379' % address,
        '--listen-peer-urls', 'http://127.0.0.1:2380', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380',
        '--initial-cluster', 'node1=http://127.0.0.1:2380', '--log-level', 'warn'])
    if proc.returncode:
        raise BenchError('etcd on node1 did not start: %s' % proc.stderr.strip())


def run_site(lab, hosts, endpoint, tmp):
    with open(os.path.join(tmp, 'mesh.yml'), 'w') as handle:
        handle.write('mesh:\n  hosts:\n' + ''.join('    %s:\n' % h for h in hosts))
    with open(os.path.join(tmp, 'vars.yml'), 'w') as handle:
        json.dump({'mesh_node_registry': 'etcd', 'mesh_node_etcd_endpoints': [endpoint], 'mesh_node_etcd_timeout': 5,
                   'mesh_node_group': 'mesh', 'mesh_node_agent': True, 'mesh_node_network': NETWORK}, handle)
    # run_playbook's argv, from the switch namespace (the controller reaches etcd over the underlay, as the hosts do)
    state = lab.load()
    wrapper = os.path.join(tmp, 'ansible-playbook')
    with open(wrapper, 'w') as handle:
        handle.write('#!/bin/sh\nexec ip netns exec %s %s "$@"\n' % (state['switch_netns'], os.path.join(REPO, '.venv', 'bin', 'ansible-playbook')))
    os.chmod(wrapper, 0o755)
    argv = [wrapper, '-i', str(lab.inventory_path), '-i', os.path.join(tmp, 'mesh.yml'), '-e', '@' + os.path.join(tmp, 'vars.yml'),
            'overlay.mesh.site']
    started = time.monotonic()
    proc = subprocess.run(argv, env=ansible_env(), capture_output=True, text=True, check=False)
    if proc.returncode:
        raise BenchError('site failed (exit %d):\n%s' % (proc.returncode, (proc.stdout + proc.stderr)[-15000:]))
    return time.monotonic() - started


def agent_json(lab, host):
    proc = lab.exec(host, ['cat', '/run/overlay-mesh/agent.json'])
    try:
        return json.loads(proc.stdout) if proc.returncode == 0 else {}
    except ValueError:
        return {}


def wait_peers(lab, hosts, peers, timeout, log):
    """Until every agent has `peers` peers (agent.json); seconds it took."""
    started = time.monotonic()
    while True:
        states = dict((h, agent_json(lab, h)) for h in hosts)
        if all(s.get('peers') == peers and s.get('state') == 'synced' for s in states.values()):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise BenchError('the agents do not have %d peers after %d s: %s' % (
                peers, timeout, ', '.join('%s %s (%s)' % (h, s.get('peers'), s.get('state')) for h, s in sorted(states.items()))))
        time.sleep(1)


def agent_pid(lab, host):
    proc = lab.exec(host, ['systemctl', 'show', '-p', 'MainPID', '--value', AGENT_UNIT])
    pid = int(proc.stdout.strip() or 0)
    if not pid:
        raise BenchError('%s: %s is not running' % (host, AGENT_UNIT))
    return pid


def proc_figures(lab, host, pid):
    """(VmRSS in MB, utime+stime in clock ticks) of pid in host's namespaces."""
    proc = lab.exec(host, ['sh', '-c', 'cat /proc/%d/status; echo; cat /proc/%d/stat' % (pid, pid)], check=True)
    rss = int(re.search(r'^VmRSS:\s+(\d+) kB', proc.stdout, re.M).group(1)) / 1024.0
    stat = proc.stdout.strip().splitlines()[-1]
    fields = stat[stat.rindex(')') + 2:].split()
    return rss, int(fields[11]) + int(fields[12])


def journal_changes(lab, hosts, revisions):
    """{revision: [K per host]} from the agents' journal lines for these revisions."""
    found = collections.defaultdict(list)
    for host in hosts:
        text = lab.exec(host, ['journalctl', '-u', AGENT_UNIT, '-o', 'cat', '--no-pager']).stdout
        for match in CHANGE_RE.finditer(text):
            if int(match.group(1)) in revisions:  # K, less the file writes (the saved contract): kernel operations
                files = sum(1 for one in match.group(3).split('; ') if one.split(' ', 2)[1:2] == ['file'])
                found[int(match.group(1))].append(int(match.group(2)) - files)
    return found


def percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(share * len(ordered) + 0.5)) - 1))]


class Bench(object):
    def __init__(self, args, log):
        self.args, self.log = args, log
        self.lab = Lab(LAB_NAME)
        self.helpers = []
        self.ghosts = {}  # index -> record, what etcd holds now
        self.next_index = 0
        self.moves = 0

    def load_ghosts(self, writer, count):
        items = []
        for _n in range(count):
            key, value, record = ghost(self.next_index, self.pool)
            self.ghosts[self.next_index] = record
            self.next_index += 1
            items.append([key, value])
        for start in range(0, len(items), BATCH):
            reply = writer.ask({'op': 'bulk', 'items': items[start:start + BATCH]})
            if 'error' in reply:
                raise BenchError('loading the leases: %s' % reply['error'])

    def change(self, writer, listeners, kind, number):
        """One single-lease change of this kind; (seconds to the last host or None when lost, revision, kind)."""
        if kind == 'join':
            index = self.next_index
            self.next_index += 1
            key, value, record = ghost(index, self.pool)
            keys = ['route+' + record['subnet'], 'fdb+%s=%s' % (record['vtep_mac'], record['underlay'])]
        else:
            index = sorted(self.ghosts)[(number * 7919) % len(self.ghosts)]
            record = self.ghosts[index]
            key = schema.subnet_key(PREFIX, record)
            if kind == 'move-ip':
                # a fresh address from the top of the pool (the ghosts take theirs from the bottom)
                self.moves += 1  # counted over both sizes: two peers with one underlay address make a contract invalid
                record = dict(record, underlay=str(self.pool.broadcast_address - self.moves))
                keys = ['fdb+%s=%s' % (record['vtep_mac'], record['underlay'])]
            elif kind == 'move-mac':
                self.moves += 1
                record = dict(record, vtep_mac=ghost(index, self.pool, mac_round=self.moves)[2]['vtep_mac'])
                keys = ['fdb+%s=%s' % (record['vtep_mac'], record['underlay'])]
            else:
                keys = ['route-' + record['subnet']]
            value = schema.lease_value('ghost-%d' % index, record, BACKEND)
        for one in listeners:
            one.send({'clear': 1})
        for one in listeners:
            one.read()
        reply = writer.ask({'op': 'delete', 'key': key} if kind == 'delete' else {'op': 'put', 'key': key, 'value': value})
        if 'error' in reply:
            raise BenchError('%s of %s: %s' % (kind, key, reply['error']))
        if kind == 'delete':
            del self.ghosts[index]
        else:
            self.ghosts[index] = record
        for one in listeners:
            one.send({'wait': keys, 'timeout': WAIT_TIMEOUT})
        answers = [one.read() for one in listeners]
        if any(a['missing'] for a in answers):
            self.log('  %s %s: not on every host after %g s (%s)' % (kind, key, WAIT_TIMEOUT, '; '.join(
                '%s missing %s' % (one.name, a['missing']) for one, a in zip(listeners, answers) if a['missing'])))
            return None, reply['revision'], kind
        return max(max(a['seen'].values()) for a in answers) - reply['t0'], reply['revision'], kind

    def phase(self, writer, listeners, hosts, leases):
        kinds = ('join', 'move-ip', 'move-mac', 'delete')
        results = []
        for number in range(self.args.changes):
            results.append(self.change(writer, listeners, kinds[number % len(kinds)], number))
            time.sleep(0.05)
        time.sleep(1)  # the last journal lines
        found = journal_changes(self.lab, hosts, set(r[1] for r in results))
        ops = collections.Counter(k for r in results for k in found.get(r[1], []))
        unlogged = sum(len(hosts) - len(found.get(r[1], [])) for r in results)
        seconds = [r[0] for r in results if r[0] is not None]
        lost = len(results) - len(seconds)
        by_kind = dict((kind, sorted(r[0] for r in results if r[2] == kind and r[0] is not None)) for kind in kinds)
        ops_by_kind = dict((kind, collections.Counter(k for r in results if r[2] == kind for k in found.get(r[1], []))) for kind in kinds)
        rss = max(proc_figures(self.lab, h, agent_pid(self.lab, h))[0] for h in hosts)
        return {'leases': leases, 'seconds': seconds, 'lost': lost, 'ops': ops, 'unlogged': unlogged, 'by_kind': by_kind,
                'ops_by_kind': ops_by_kind, 'rss': rss}

    def run(self):
        args, log, lab = self.args, self.log, self.lab
        lab.down(log=lambda message: None)  # a lab left over by an interrupted run
        state = lab.up(args.hosts, log=log)
        hosts = sorted(state['hosts'], key=lambda h: int(h[4:]))
        address = state['hosts']['node1']['address']
        self.pool = ghost_pool(ipaddress.ip_network(state['subnet']))
        endpoint = 'http://%s:2379' % address
        start_etcd(lab, address)
        writer = Line('writer', ['ip', 'netns', 'exec', state['switch_netns'], sys.executable, '-u', '-c', WRITER,
                                 os.path.join(REPO, '.collections'), endpoint])
        self.helpers.append(writer)
        for _attempt in range(30):
            if 'error' not in writer.ask({'op': 'ready'}):
                break
            time.sleep(1)
        else:
            raise BenchError('etcd on node1 does not answer at %s' % endpoint)
        with tempfile.TemporaryDirectory(prefix='bench-agent-') as tmp:
            log('  site with the agent on %d hosts: %.0f s' % (len(hosts), run_site(lab, hosts, endpoint, tmp)))
        sizes = [args.leases] if args.leases <= SMALL else [SMALL, args.leases]
        phases, memory, cpu = [], {}, {}
        listeners = []
        for leases in sizes:
            self.load_ghosts(writer, leases - len(hosts) - len(self.ghosts))
            took = wait_peers(lab, hosts, leases - 1, 120 + leases // 5, log)
            log('  %d leases in etcd (%d ghosts): every agent has %d peers after %.1f s' % (leases, len(self.ghosts), leases - 1, took))
            if not listeners:
                for host in hosts:
                    leader = lab.leader_pid(lab.load()['hosts'][host])
                    listeners.append(Line(host, ['nsenter', '-t', str(leader), '-a', 'python3', '-u', '-c', LISTENER]))
                    self.helpers.append(listeners[-1])
                for one in listeners:
                    one.read()
            phases.append(self.phase(writer, listeners, hosts, leases))
            log('  %d single-lease changes at %d leases done' % (args.changes, leases))
        wait_peers(lab, hosts, len(self.ghosts) + len(hosts) - 1, 60, log)
        time.sleep(2)
        pids = dict((h, agent_pid(lab, h)) for h in hosts)
        before = dict((h, proc_figures(lab, h, pids[h])) for h in hosts)
        started = time.monotonic()
        time.sleep(args.idle)
        after = dict((h, proc_figures(lab, h, pids[h])) for h in hosts)
        elapsed = time.monotonic() - started
        ticks = os.sysconf('SC_CLK_TCK')
        for host in hosts:
            memory[host] = after[host][0]
            cpu[host] = 100.0 * (after[host][1] - before[host][1]) / ticks / elapsed
        return hosts, phases, memory, cpu, len(self.ghosts) + len(hosts)

    def close(self):
        for one in self.helpers:
            one.stop()
        if self.args.keep:
            self.log('lab %s left up (--keep): take it down with tests/lab/overlay_lab.py down --name %s' % (LAB_NAME, LAB_NAME))
            return
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave the lab half removed
        try:
            self.lab.down(log=self.log)
        finally:
            signal.signal(signal.SIGINT, previous)


def distribution(ops):
    return ', '.join('%d op(s) x%d' % (k, n) for k, n in sorted(ops.items())) or 'none logged'


def report(hosts, phases, memory, cpu, leases_now, log):
    log('')
    log('leases  changes  lost  p50 s   p99 s   max s   join p50  move-ip p50  move-mac p50  delete p50  kernel ops per change (all hosts)')
    for one in phases:
        seconds = one['seconds'] or [float('nan')]
        medians = ['%.3f' % percentile(one['by_kind'][k], 0.5) if one['by_kind'][k] else '-' for k in ('join', 'move-ip', 'move-mac', 'delete')]
        log('%6d  %7d  %4d  %6.3f  %6.3f  %6.3f  %8s  %11s  %12s  %10s  %s%s' % (
            one['leases'], len(one['seconds']) + one['lost'], one['lost'], percentile(seconds, 0.5), percentile(seconds, 0.99),
            max(seconds), medians[0], medians[1], medians[2], medians[3], distribution(one['ops']),
            '; %d host-change(s) with no journal line' % one['unlogged'] if one['unlogged'] else ''))
    for one in phases:
        log('%d leases: kernel ops per change by kind: %s; agent VmRSS after the changes %.1f MB (largest host)' % (
            one['leases'], '; '.join('%s %s' % (kind, distribution(ops)) for kind, ops in one['ops_by_kind'].items()), one['rss']))
    log('agent on %s with %d leases: VmRSS %s MB; idle CPU %s %% of a core' % (
        ', '.join(hosts), leases_now, ', '.join('%.1f' % memory[h] for h in hosts), ', '.join('%.2f' % cpu[h] for h in hosts)))
    log('')
    big = phases[-1]
    p99 = percentile(big['seconds'], 0.99) if big['seconds'] else WAIT_TIMEOUT
    if big['lost']:
        p99 = max(p99, WAIT_TIMEOUT)  # a lost change is slower than any figure
    for one in phases:
        if one['seconds']:
            figure('agent', 'lease put -> kernel on %d hosts, p50, %d leases' % (len(hosts), one['leases']),
                   percentile(one['seconds'], 0.5), 's', None)
        figure('agent', 'lease put -> kernel on %d hosts, p99, %d leases' % (len(hosts), one['leases']),
               percentile(one['seconds'], 0.99) if one['seconds'] and not one['lost'] else WAIT_TIMEOUT, 's', TARGET_P99)
        mean = sum(k * n for k, n in one['ops'].items()) / max(1, sum(one['ops'].values()))
        figure('agent', 'kernel ops per single-lease change, mean, %d leases' % one['leases'], mean, 'ops', None)
    small, large = phases[0], phases[-1]
    mean = [sum(k * n for k, n in p['ops'].items()) / max(1, sum(p['ops'].values())) for p in phases]
    if len(phases) > 1:
        figure('agent', 'kernel ops per change, %d leases vs %d' % (large['leases'], small['leases']), mean[-1], 'ops', 1.0,
               reference=mean[0] or None, reference_name='%d leases' % small['leases'])
    rss, idle = max(memory.values()), max(cpu.values())
    figure('agent', 'agent VmRSS, %d leases (largest host)' % leases_now, rss, 'MB', TARGET_RSS)
    figure('agent', 'agent idle CPU (largest host)', idle, '% core', TARGET_CPU)
    grows = len(phases) > 1 and max(large['ops'] or [0]) > max(small['ops'] or [0])
    log('SUMMARY %d hosts, %d leases: lease put -> kernel on every host p50 %.3f s, p99 %.3f s (target <= %.1f s)%s%s%s; '
        'kernel ops per change %s (%s)%s; agent RSS %.1f MB (target <= %.0f)%s; idle CPU %.2f %% of a core (target <= %.0f)%s' % (
            len(hosts), large['leases'], percentile(large['seconds'], 0.5) if large['seconds'] else float('nan'), p99, TARGET_P99,
            ' MISSED' if p99 > TARGET_P99 else '', ', %d lost' % large['lost'] if large['lost'] else '',
            ' (p50 at %d leases %.3f s)' % (small['leases'], percentile(small['seconds'], 0.5)) if len(phases) > 1 and small['seconds'] else '',
            ' -> '.join('%.2f at %d leases' % (m, p['leases']) for m, p in zip(mean, phases)),
            distribution(large['ops']), ' GROWS' if grows else '', rss, TARGET_RSS, ' MISSED' if rss > TARGET_RSS else '',
            idle, TARGET_CPU, ' MISSED' if idle > TARGET_CPU else ''))


def interrupted(signum, _frame):
    raise KeyboardInterrupt('signal %d' % signum)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--hosts', type=int, default=3, help='lab hosts running the agent (default 3)')
    parser.add_argument('--leases', type=int, default=1000, help='leases in etcd, the hosts\' included (default 1000)')
    parser.add_argument('--changes', type=int, default=60, help='single-lease changes timed at each size (default 60)')
    parser.add_argument('--idle', type=float, default=20.0, help='seconds the idle CPU is measured over (default 20)')
    parser.add_argument('--keep', action='store_true', help='leave the lab up at the end (to look into a failure)')
    parser.add_argument('--smoke', action='store_true', help='%(hosts)d hosts, %(leases)d leases, %(changes)d changes: for make test' % SMOKE)
    args = parser.parse_args(argv)
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    if args.hosts < 2 or args.leases < args.hosts + 1 or args.leases + args.changes > 3000 or args.changes < 4 or args.idle <= 0:
        parser.error('need --hosts >= 2, --hosts < --leases, --leases + --changes <= 3000, --changes >= 4, --idle > 0')
    if os.geteuid() != 0:
        print('bench_agent: run as root (it boots a lab)', file=sys.stderr)
        return 2
    log = functools.partial(print, flush=True)
    signal.signal(signal.SIGTERM, interrupted)  # the lab is taken down on SIGTERM as on Ctrl-C
    log('agent: lease changes in etcd -> kernel entries on every host; lab %s of %d hosts, %d leases, %d changes per size' % (
        LAB_NAME, args.hosts, args.leases, args.changes))
    bench = Bench(args, log)
    try:
        results = bench.run()
    except (BenchError, RunFailed, LabError, subprocess.CalledProcessError) as err:
        log('bench_agent: %s' % err)
        return 1
    except KeyboardInterrupt:
        log('bench_agent: interrupted; lab %s taken down' % LAB_NAME)
        return 130
    finally:
        bench.close()
    report(*results, log=log)
    return 0


if __name__ == '__main__':
    sys.exit(main())
