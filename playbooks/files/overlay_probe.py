# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Probe the overlay from one host, for the verify playbook. Runs on the host with its python3.

    overlay_probe.py attach CONFLIST     a probe container (network namespace) attached by the
                                         real CNI bridge plugin with the node's conflist; prints its address
    overlay_probe.py detach CONFLIST     releases it (CNI DEL) and deletes the namespace
    overlay_probe.py probe JSON          pings every target; prints one JSON result per target

JSON: {"from": "node1", "mtu": 1450, "targets": [{"host": "node2", "gateway": "10.244.2.1", "container": "10.244.2.5"}]}
Prints {"results": [...one per target...], "failures": ["node1 -> container on node2", ...]}.
"""

import json
import os
import subprocess
import sys

NETNS = 'overlay-mesh-probe'
CONTAINER_ID = 'overlay-mesh-verify-probe'
CNI_PATHS = ['/usr/lib/cni', '/opt/cni/bin', '/usr/libexec/cni']


def cni(command, conflist_path):
    with open(conflist_path) as handle:
        conflist = json.load(handle)
    plugin = dict(conflist['plugins'][0], cniVersion=conflist['cniVersion'], name=conflist['name'])
    cni_path = next((p for p in CNI_PATHS if os.path.exists(os.path.join(p, plugin['type']))), None)
    if cni_path is None:
        raise SystemExit('CNI plugin %s not found in %s' % (plugin['type'], ', '.join(CNI_PATHS)))
    env = dict(os.environ, CNI_COMMAND=command, CNI_CONTAINERID=CONTAINER_ID, CNI_NETNS='/run/netns/' + NETNS,
               CNI_IFNAME='eth0', CNI_PATH=cni_path)
    proc = subprocess.run([os.path.join(cni_path, plugin['type'])], input=json.dumps(plugin).encode(), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if proc.returncode != 0:
        raise SystemExit('CNI %s failed: %s %s' % (command, proc.stdout.decode(), proc.stderr.decode()))
    return json.loads(proc.stdout or b'{}')


def attach(conflist_path):
    if not os.path.exists('/run/netns/' + NETNS):
        subprocess.run(['ip', 'netns', 'add', NETNS], check=True)
    result = cni('ADD', conflist_path)
    address = result['ips'][0]['address'].split('/')[0]
    print(json.dumps({'container': address}))


def detach(conflist_path):
    if os.path.exists('/run/netns/' + NETNS):
        cni('DEL', conflist_path)
        subprocess.run(['ip', 'netns', 'delete', NETNS], check=True)
    print(json.dumps({'detached': True}))


def ping(*args, netns=True):
    argv = (['ip', 'netns', 'exec', NETNS] if netns else []) + ['ping', '-n', '-c', '1', '-W', '2'] + list(args)
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    return proc.returncode == 0, proc.stdout.decode(errors='replace').strip()


def probe(spec):
    mtu = int(spec['mtu'])
    results = []
    for target in spec['targets']:
        gateway_ok, _gateway_out = ping(target['gateway'], netns=False)
        container_ok, _container_out = ping(target['container'])
        # Exactly the overlay MTU must pass with DF set; one byte more must be refused, not lost.
        fits_ok, _fits_out = ping('-M', 'do', '-s', str(mtu - 28), target['container'])
        too_big_ok, too_big_out = ping('-M', 'do', '-s', str(mtu - 27), target['container'])
        too_big_refused = not too_big_ok and any(word in too_big_out.lower() for word in ('message too long', 'frag needed', 'errors,'))
        results.append({'host': target['host'], 'gateway': gateway_ok, 'container': container_ok,
                        'mtu_fits': fits_ok, 'mtu_too_big_refused': too_big_refused, 'too_big_output': too_big_out.splitlines()[0] if too_big_out else ''})
    checks = (('gateway', 'gateway of'), ('container', 'container on'), ('mtu_fits', 'MTU-sized DF packet lost to'),
              ('mtu_too_big_refused', 'oversize DF packet not refused to'))
    failures = ['%s -> %s %s' % (spec['from'], text, result['host']) for result in results for key, text in checks if not result[key]]
    print(json.dumps({'results': results, 'failures': failures}))


def main(argv):
    if len(argv) != 3 or argv[1] not in ('attach', 'detach', 'probe'):
        raise SystemExit(__doc__)
    if argv[1] == 'attach':
        attach(argv[2])
    elif argv[1] == 'detach':
        detach(argv[2])
    else:
        probe(json.loads(argv[2]))


if __name__ == '__main__':
    main(sys.argv)
