# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Probe the overlay from one host, for the verify playbook. Runs on the host with its python3.

    overlay_probe.py attach CONFLIST     a probe container (network namespace) attached by the
                                         real CNI bridge plugin with the node's conflist; prints its address
    overlay_probe.py detach CONFLIST     releases it (CNI DEL) and deletes the namespace
    overlay_probe.py probe JSON          pings every target; prints one JSON result per target

JSON: {"from": "node1", "mtu": 1450, "backend": "vxlan", "port": 8472,
       "targets": [{"host": "node2", "gateway": "10.244.2.1", "container": "10.244.2.5", "underlay": "198.18.0.12",
                    "gateway6": "fd00:244:0:2::1", "container6": "fd00:244:0:2::5"}]}   (the IPv6 keys: a dual-stack overlay)
Prints {"results": [...one per target...], "failures": ["node1 -> container on node2", ...]}. Each result
says the pair's path - "direct" (routed to the peer's underlay address, no encapsulation) or the
backend's - and, with tcpdump on the host, proves it from a capture of the underlay.
"""

import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

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


def unchanged_by_cni(conflist_path):
    """What the CNI bridge plugin would change on the host (it brings its bridge up, and with isGateway
    turns forwarding on): a probe must change nothing, so it refuses to attach then."""
    with open(conflist_path) as handle:
        plugin = json.load(handle)['plugins'][0]
    problems = []
    bridge = plugin.get('bridge', 'cni0')
    try:
        with open('/sys/class/net/%s/flags' % bridge) as handle:
            if not int(handle.read(), 16) & 1:  # IFF_UP
                problems.append('bridge %s is down' % bridge)
    except OSError:
        problems.append('bridge %s is missing' % bridge)
    if plugin.get('isGateway'):
        with open('/proc/sys/net/ipv4/ip_forward') as handle:
            if handle.read().strip() != '1':
                problems.append('net.ipv4.ip_forward is 0')
    if problems:
        raise SystemExit('not attaching a probe (the CNI bridge plugin would change the host): %s' % '; '.join(problems))


def attach(conflist_path):
    unchanged_by_cni(conflist_path)
    remove_probe(conflist_path)  # one an interrupted verify left (controller killed): its veth would clash
    subprocess.run(['ip', 'netns', 'add', NETNS], check=True)
    result = cni('ADD', conflist_path)
    addresses = [ip['address'].split('/')[0] for ip in result['ips']]
    # a dual-stack overlay: the container has an address of each family
    print(json.dumps({'container': next(a for a in addresses if ':' not in a),
                      'container6': next((a for a in addresses if ':' in a), None)}))


def remove_probe(conflist_path):
    """The probe container, its veth and its address lease (CNI DEL), when there is one."""
    if os.path.exists('/run/netns/' + NETNS):
        cni('DEL', conflist_path)
        subprocess.run(['ip', 'netns', 'delete', NETNS], check=True)


def detach(conflist_path):
    remove_probe(conflist_path)
    print(json.dumps({'detached': True}))


def ping(*args, netns=True):
    argv = (['ip', 'netns', 'exec', NETNS] if netns else []) + ['ping', '-n', '-c', '1', '-W', '2'] + list(args)
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    return proc.returncode == 0, proc.stdout.decode(errors='replace').strip()


def ping_figures(output):
    """(loss in percent, average round-trip time in ms) from ping's summary; None where it has none."""
    loss = re.search(r'([0-9.]+)% packet loss', output)
    rtt = re.search(r'= [0-9.]+/([0-9.]+)/', output)
    return (float(loss.group(1)) if loss else None), (float(rtt.group(1)) if rtt else None)


def largest_df(address, mtu, smallest=576):
    """The largest packet (IP size) that crosses to address with DF set, below the overlay MTU."""
    low, high = smallest, mtu - 1
    if not ping('-M', 'do', '-W', '1', '-s', str(low - 28), address)[0]:
        return None
    while low < high:
        middle = (low + high + 1) // 2
        if ping('-M', 'do', '-W', '1', '-s', str(middle - 28), address)[0]:
            low = middle
        else:
            high = middle - 1
    return low


def route(destination):
    """(device, gateway) of the host's route to destination; an IPv4 route via an IPv6 next hop has it in "via"."""
    proc = subprocess.run(['ip', '-j', 'route', 'get', destination], stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    found = (json.loads(proc.stdout or b'[]') or [{}])[0] if proc.returncode == 0 else {}
    gateway = found.get('gateway') or (found.get('via') or {}).get('host')
    return found.get('dev'), str(ipaddress.ip_address(gateway)) if gateway else None


class Capture(object):
    """tcpdump on the underlay interface while the probes run, counted per target afterwards: the
    proof of each pair's path (encapsulated to the peer's underlay address, or the overlay's packets
    in the clear). Without tcpdump on the host, the path is the route's and not proven."""

    def __init__(self, interface):
        self.path = '/tmp/overlay-mesh-probe.pcap'
        self.proc = None
        if interface and shutil.which('tcpdump'):
            self.proc = subprocess.Popen(['tcpdump', '-n', '-U', '-i', interface, '-w', self.path, 'ip or ip6'],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)  # tcpdump needs a moment before it sees packets

    def stop(self):
        if self.proc is not None:
            time.sleep(0.3)
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=10)

    def count(self, expression):
        if self.proc is None:
            return None
        proc = subprocess.run(['tcpdump', '-n', '-r', self.path, expression], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              check=False)
        return len(proc.stdout.splitlines())

    def remove(self):
        if os.path.exists(self.path):
            os.unlink(self.path)


def probe(spec):
    mtu = int(spec['mtu'])
    results = []
    underlay_device = route(spec['targets'][0]['underlay'])[0] if spec['targets'] else None
    capture = Capture(underlay_device)
    try:
        for target in spec['targets']:
            gateway_ok, _gateway_out = ping(target['gateway'], netns=False)
            container_ok, container_out = ping('-c', '5', '-i', '0.2', target['container'])
            # Exactly the overlay MTU must pass with DF set; one byte more must be refused, not lost.
            fits_ok, _fits_out = ping('-M', 'do', '-s', str(mtu - 28), target['container'])
            too_big_ok, too_big_out = ping('-M', 'do', '-s', str(mtu - 27), target['container'])
            too_big_refused = not too_big_ok and any(word in too_big_out.lower() for word in ('message too long', 'frag needed', 'errors,'))
            _device, gateway = route(target['container'])
            loss, rtt = ping_figures(container_out)
            results.append({'host': target['host'], 'gateway': gateway_ok, 'container': container_ok,
                            'mtu_fits': fits_ok, 'mtu_too_big_refused': too_big_refused,
                            'too_big_output': too_big_out.splitlines()[0] if too_big_out else '',
                            'path': 'direct' if gateway == str(ipaddress.ip_address(target['underlay'])) else spec['backend'],
                            'loss_percent': loss, 'rtt_ms': rtt,
                            'path_mtu': mtu if fits_ok else (largest_df(target['container'], mtu) if container_ok else None)})
            if target.get('container6'):
                results[-1].update(probe6(target, mtu))
                gateway6 = route(target['container6'])[1]
                results[-1]['path6'] = 'direct' if gateway6 == str(ipaddress.ip_address(target['underlay'])) else spec['backend']
    finally:
        capture.stop()
    for target, result in zip(spec['targets'], results):
        # to the address this host's peer entry has for the target: its public address behind a NAT (mesh_node_public_address)
        endpoint = spec.get('endpoints', {}).get(target['host']) or target['underlay']
        encapsulated = capture.count('udp and dst host %s and dst port %s' % (endpoint, spec['port'])) if spec.get('port') else 0
        # per family: a direct path shows the overlay's packets in the clear, a tunnelled one never does
        # (vxlan's direct routing over an IPv4 underlay routes IPv4 directly and IPv6 through the VTEP)
        clear = {'path': capture.count('icmp and dst host %s' % target['container'])}
        if target.get('container6'):
            clear['path6'] = capture.count('icmp6 and dst host %s' % target['container6'])
        if clear['path'] is None:
            result['path_proven'] = None
            continue
        tunnelled = [key for key in clear if result[key] != 'direct']
        result['encapsulated_packets'], result['clear_packets'] = encapsulated, sum(clear.values())
        result['path_proven'] = all((clear[key] == 0) == (key in tunnelled) for key in clear) and (encapsulated > 0) == bool(tunnelled)
    capture.remove()
    checks = (('gateway', 'gateway of'), ('container', 'container on'), ('mtu_fits', 'MTU-sized DF packet lost to'),
              ('mtu_too_big_refused', 'oversize DF packet not refused to'), ('path_proven', 'path not as routed to'),
              ('gateway6', 'IPv6 gateway of'), ('container6', 'IPv6 container on'), ('mtu_fits6', 'MTU-sized IPv6 packet lost to'),
              ('mtu_too_big_refused6', 'oversize IPv6 packet not refused to'))
    failures = ['%s -> %s %s' % (spec['from'], text, result['host']) for result in results for key, text in checks
                if key in result and (result[key] is False or (key != 'path_proven' and not result[key]))]
    print(json.dumps({'results': results, 'failures': failures}))


def probe6(target, mtu):
    """The IPv6 probes of a dual-stack overlay: gateway, container, and the MTU (an IPv6 header is 40
    bytes; IPv6 is never fragmented on the way, so a packet one byte too big is refused at the source)."""
    gateway_ok, _out = ping('-6', target['gateway6'], netns=False)
    container_ok, container_out = ping('-6', '-c', '5', '-i', '0.2', target['container6'])
    fits_ok, _out = ping('-6', '-M', 'do', '-s', str(mtu - 48), target['container6'])
    too_big_ok, too_big_out = ping('-6', '-M', 'do', '-s', str(mtu - 47), target['container6'])
    loss, rtt = ping_figures(container_out)
    return {'gateway6': gateway_ok, 'container6': container_ok, 'mtu_fits6': fits_ok,
            'mtu_too_big_refused6': not too_big_ok and any(word in too_big_out.lower() for word in ('message too long', 'errors,', 'too big')),
            'loss_percent6': loss, 'rtt_ms6': rtt}


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
