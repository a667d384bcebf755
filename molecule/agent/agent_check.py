# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent scenario's measurements, from the machine running molecule: etcd is used from node1 (with the engine
and the credentials the role installed there), kernel entries are read on every host by entering its namespaces.

    agent_check.py LAB put KEY VALUE | delete KEY | get PREFIX | put-refused KEY VALUE | auth-enable ROOT_PASSWORD
    agent_check.py LAB wait --hosts node1,node2 --route SUBNET [--gone] [--fdb MAC=UNDERLAY] [--timeout S]
    agent_check.py LAB timed-put KEY VALUE --hosts ... --route SUBNET [--fdb MAC=UNDERLAY] [--timeout S]
    agent_check.py LAB timed-delete KEY --hosts ... --route SUBNET [--timeout S]

wait prints {"seconds": {host: s}, "missing": [...]} and fails when a host misses the deadline; timed-* measure
from the write, so they show how long after a lease is written every host has (or lost) its entries.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'tests' / 'lab'))

from overlay_lab import Lab  # noqa: E402  pylint: disable=wrong-import-position,import-error

ETCD_SNIPPET = r'''
import json, sys
sys.path.insert(0, '/usr/lib/overlay-mesh')
from ansible_collections.overlay.mesh.plugins.module_utils import _etcd
agent = json.load(open('/etc/overlay-mesh/node.json'))['agent']
password = open(agent['password_file']).read().strip() if agent.get('password_file') else None
client = _etcd.EtcdClient(agent['endpoints'], ca_file=agent.get('ca_file'), cert_file=agent.get('cert_file'),
                          key_file=agent.get('key_file'), user=agent.get('user'), password=password, timeout=3)
op, args = sys.argv[1], sys.argv[2:]
if op == 'put':
    client.put(args[0], args[1])
elif op == 'auth-enable':  # before auth is on: a root user with this password, then auth on
    client.user_add('root', args[0])
    client.user_grant('root', 'root')
    client.call('/v3/auth/enable', {})
elif op == 'put-refused':  # this host's identity must be refused writing the key
    try:
        client.put(args[0], args[1])
    except _etcd.EtcdError as exc:
        print('refused: %s' % exc)
    else:
        sys.exit('etcd let %s (%s) write %s' % (agent.get('user'), 'node1', args[0]))
elif op == 'delete':
    client.call('/v3/kv/deleterange', {'key': _etcd.b64(args[0])})
else:
    print(json.dumps(dict((k, v) for k, v, _m, _l in client.range_prefix(args[0])[1])))
'''


def etcd(lab, *args):
    proc = lab.exec('node1', ['python3', '-c', ETCD_SNIPPET, *args])
    if proc.returncode:
        raise SystemExit('etcd %s on node1 failed: %s' % (args[0], proc.stderr.strip()))
    return proc.stdout


def has_entries(lab, host, route, fdb):
    proc = lab.exec(host, ['ip', '-j', 'route', 'show', 'exact', route])
    routes = json.loads(proc.stdout or '[]') if proc.returncode == 0 else []
    if not routes:
        return False
    if fdb:
        mac, underlay = fdb.split('=')
        proc = lab.exec(host, ['bridge', '-j', 'fdb', 'show', 'brport', routes[0].get('dev', 'mesh.1')])
        entries = json.loads(proc.stdout or '[]') if proc.returncode == 0 else []
        return any(e.get('mac') == mac and e.get('dst') == underlay for e in entries)
    return True


def wait(lab, hosts, route, gone=False, fdb=None, timeout=2.0, start=None):
    start = time.monotonic() if start is None else start
    seconds, pending = {}, list(hosts)
    while pending:
        for host in list(pending):
            if has_entries(lab, host, route, fdb) != gone:
                seconds[host] = round(time.monotonic() - start, 3)
                pending.remove(host)
        if pending and time.monotonic() - start > timeout:
            break
        time.sleep(0.05)
    print(json.dumps({'route': route, 'gone': gone, 'fdb': fdb, 'seconds': seconds, 'missing': pending, 'timeout': timeout}))
    return 1 if pending else 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('lab')
    parser.add_argument('op', choices=['put', 'delete', 'get', 'put-refused', 'auth-enable', 'wait', 'timed-put', 'timed-delete'])
    parser.add_argument('args', nargs='*')
    parser.add_argument('--hosts', default='')
    parser.add_argument('--route')
    parser.add_argument('--fdb')
    parser.add_argument('--gone', action='store_true')
    parser.add_argument('--timeout', type=float, default=2.0)
    opts = parser.parse_args()
    lab = Lab(opts.lab)
    hosts = [h for h in opts.hosts.split(',') if h]
    if opts.op in ('put', 'delete', 'get', 'put-refused', 'auth-enable'):
        sys.stdout.write(etcd(lab, opts.op, *opts.args))
        return 0
    if opts.op == 'wait':
        return wait(lab, hosts, opts.route, opts.gone, opts.fdb, opts.timeout)
    # timed: the clock starts when the write is sent (node1's python start-up is inside the measured time)
    start = time.monotonic()
    etcd(lab, 'put' if opts.op == 'timed-put' else 'delete', *opts.args)
    return wait(lab, hosts, opts.route, opts.op == 'timed-delete', opts.fdb, opts.timeout, start)


if __name__ == '__main__':
    sys.exit(main())
