# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Data-plane benchmark: underlay vs kernel VXLAN, the UDP daemon, host-gw, direct routing, WireGuard (run as root).

Boots its own lab (`udpbench`, 2 hosts), then measures iperf3 single-stream TCP (-J, 10 s by
default) from a container on node1 to a container on node2:

1. underlay: host to host over eth0 (no containers: that is the reference);
2. vxlan: after `ansible-playbook overlay.mesh.site` (bridge cni0, VTEP mesh.1);
3. udp: `ip link del mesh.1` on both hosts, then plugins/module_utils/_backends/udp_daemon.py runs
   on each host with the same subnets and peers (device mesh-udp);
4. host-gw: site with mesh_node_backend=host-gw (the two hosts share a segment: direct routes,
   no encapsulation, the underlay's MTU);
5. vxlan with direct routing: site with mesh_node_vxlan_direct_routing=true (the same pair goes
   direct; the overlay MTU stays VXLAN's);
6. wireguard: site with mesh_node_backend=wireguard (wireguard-go here: this machine's kernel has
   no wireguard module; the kernel's where it has one), MTU underlay - 60;
7. a second lab (`udpbench6`, `--underlay ipv6`): host to host over the IPv6 underlay (its
   reference), then vxlan over IPv6 (MTU underlay - 70).

A container is a network namespace `ovlu-c` inside the host with a veth pair: one end on cni0,
the other its eth0 with the subnet's address .200 and a default route via the bridge gateway;
its MTU is the data path's MTU (1450 for vxlan, 1472 for udp). Prints Gbit/s per phase and the
ratios; the last line is `SUMMARY underlay=... vxlan=... udp=... host-gw=... direct=... udp/vxlan=...
(target >= 0.33) host-gw/underlay=... (target >= 0.90) direct/host-gw=... (target >= 0.90)
vxlan/underlay=... wireguard/vxlan=... wireguard/underlay=...`. Each figure is the median of --repeat runs (3). The lab is taken down whatever
happens. A measurement, not a timed test.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, 'tests', 'lab'))

from overlay_lab import Lab  # noqa: E402  pylint: disable=wrong-import-position

DAEMON = os.path.join(REPO, 'plugins', 'module_utils', '_backends', 'udp_daemon.py')  # runs as a script too
LAB_NAME = os.environ.get('OVERLAY_MESH_LAB_PREFIX', '') + 'udpbench'  # a prefix lets two checkouts run at once
CONTAINER = 'ovlu-c'
UDP_MTU_OVERHEAD = 28


def host_sh(lab, host, command, check=True, stdin=None):
    """Run a shell command inside a lab host; return stdout."""
    proc = lab.exec(host, ['sh', '-c', command], input=stdin)
    if check and proc.returncode:
        raise RuntimeError('%s: %s failed (%d): %s' % (host, command, proc.returncode, proc.stderr.strip()))
    return proc.stdout


def ansible_env():
    env = dict(os.environ)
    env.update(ANSIBLE_CONFIG=os.path.join(REPO, 'tests', 'ansible.cfg'), ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, '.collections'),
               ANSIBLE_CONNECTION_PLUGINS=os.path.join(REPO, 'tests', 'lab', 'connection_plugins'), ANSIBLE_NOCOLOR='1',
               PATH=os.path.join(REPO, '.venv', 'bin') + os.pathsep + env.get('PATH', ''))
    return env


def bridge_subnet(lab, host):
    """The host's subnet, read from the bridge the site playbook made (gateway = first address)."""
    info = json.loads(host_sh(lab, host, 'ip -j -4 address show dev cni0'))
    entry = info[0]['addr_info'][0]
    return ipaddress.IPv4Interface('%s/%d' % (entry['local'], entry['prefixlen']))


def add_container(lab, host, gateway):
    address = '%s/%d' % (gateway.network.network_address + 200, gateway.network.prefixlen)
    host_sh(lab, host, 'ip netns add {c} && ip link add ovlu-h type veth peer name eth0 netns {c} && ip link set ovlu-h master cni0 up && '
                       'ip -n {c} address add {a} dev eth0 && ip -n {c} link set eth0 up && ip -n {c} link set lo up && '
                       'ip -n {c} route add default via {g}'.format(c=CONTAINER, a=address, g=gateway.ip))
    return str(gateway.network.network_address + 200)


def set_mtu(lab, host, mtu):
    host_sh(lab, host, 'ip link set cni0 mtu {m}; ip link set ovlu-h mtu {m}; ip -n {c} link set eth0 mtu {m}'.format(m=mtu, c=CONTAINER))


# runs per figure; the median is kept (single runs move by 10-20 % on this 2-core machine)
SETTINGS = {'repeat': 3}


def iperf(lab, client, server, server_address, seconds, in_container):
    """Single-stream TCP from client to server_address; returns the median Gbit/s received over the runs."""
    prefix = 'ip netns exec %s ' % CONTAINER if in_container else ''
    figures = []
    for _run in range(SETTINGS['repeat']):
        host_sh(lab, server, prefix + 'iperf3 -s -1 -D -B %s' % server_address)
        time.sleep(0.5)
        out = host_sh(lab, client, prefix + 'iperf3 -J -t %d -c %s' % (seconds, server_address))
        figures.append(json.loads(out)['end']['sum_received']['bits_per_second'] / 1e9)
    return sorted(figures)[len(figures) // 2]


def start_daemon(lab, host, config):
    with open(DAEMON, encoding='utf-8') as handle:
        host_sh(lab, host, 'mkdir -p /usr/lib/overlay-mesh /etc/overlay-mesh && cat > /usr/lib/overlay-mesh/overlay-mesh-udp.py', stdin=handle.read())
    host_sh(lab, host, 'cat > /etc/overlay-mesh/udp.json', stdin=json.dumps(config))
    pid = host_sh(lab, host, 'setsid python3 /usr/lib/overlay-mesh/overlay-mesh-udp.py /etc/overlay-mesh/udp.json '
                             '>/var/log/overlay-mesh-udp.log 2>&1 </dev/null & echo $!').strip()
    for dummy in range(50):
        if host_sh(lab, host, 'ip route show dev %s' % config['device'], check=False).strip():
            return pid
        time.sleep(0.1)
    raise RuntimeError('%s: the daemon did not come up: %s' % (host, host_sh(lab, host, 'cat /var/log/overlay-mesh-udp.log', check=False)))


def vxlan_with_containers(lab, hosts):
    """site (vxlan), then a container on each host at the VTEP's MTU: (gateways, container addresses, MTU)."""
    proc = subprocess.run(['ansible-playbook', '-i', str(lab.inventory_path), 'overlay.mesh.site'], env=ansible_env(),
                          capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError('site playbook failed:\n%s' % proc.stdout[-3000:])
    gateways = {host: bridge_subnet(lab, host) for host in hosts}
    addresses = {host: add_container(lab, host, gateways[host]) for host in hosts}
    mtu = int(host_sh(lab, hosts[0], 'cat /sys/class/net/mesh.1/mtu'))
    for host in hosts:
        set_mtu(lab, host, mtu)
    return gateways, addresses, mtu


def measure(lab, state, seconds, log, udp_options=None):
    hosts = sorted(state['hosts'])
    client, server = hosts[0], hosts[1]
    results = {}
    log('phase 1: underlay, host to host')
    results['underlay'] = iperf(lab, client, server, state['hosts'][server]['address'], seconds, False)
    log('  underlay: %.2f Gbit/s' % results['underlay'])

    log('phase 2: vxlan (ansible-playbook overlay.mesh.site)')
    gateways, addresses, vxlan_mtu = vxlan_with_containers(lab, hosts)
    results['vxlan'] = iperf(lab, client, server, addresses[server], seconds, True)
    log('  vxlan: %.2f Gbit/s (mtu %d)' % (results['vxlan'], vxlan_mtu))

    log('phase 3: udp daemon (mesh.1 deleted)')
    underlay_mtu = int(host_sh(lab, client, 'cat /sys/class/net/eth0/mtu'))
    udp_mtu = underlay_mtu - UDP_MTU_OVERHEAD
    pids = {}
    try:
        for host in hosts:
            host_sh(lab, host, 'ip link del mesh.1')
            config = {'device': 'mesh-udp', 'address': str(gateways[host].network.network_address), 'subnet': str(gateways[host].network),
                      'network': '10.244.0.0/16', 'mtu': udp_mtu, 'port': 8285, 'local': state['hosts'][host]['address'],
                      'peers': [{'subnet': str(gateways[peer].network), 'underlay': state['hosts'][peer]['address']} for peer in hosts if peer != host]}
            config.update(udp_options or {})
            pids[host] = start_daemon(lab, host, config)
            set_mtu(lab, host, udp_mtu)
        results['udp'] = iperf(lab, client, server, addresses[server], seconds, True)
        log('  udp: %.2f Gbit/s (mtu %d)' % (results['udp'], udp_mtu))
        for host in hosts:
            host_sh(lab, host, 'kill -USR1 %s; sleep 0.3' % pids[host])
            stats = json.loads(host_sh(lab, host, 'cat /run/overlay-mesh/udp-stats.json'))
            count = stats['counters']
            log('  %s daemon: %d packets from the device (%.0f B average), %d datagrams out, %d in by %d reads, drops %d' % (
                host, count['tun_rx_packets'], count['tun_rx_bytes'] / max(1, count['tun_rx_packets']), count['udp_tx_packets'],
                count['udp_rx_packets'], count['udp_rx_reads'], stats['drops_total']))
    finally:
        for host, pid in pids.items():
            host_sh(lab, host, 'kill -TERM %s; while kill -0 %s 2>/dev/null; do sleep 0.1; done' % (pid, pid), check=False)

    for name, extra, mtu_device in (('host-gw', ['-e', 'mesh_node_backend=host-gw'], 'cni0'),
                                    ('direct', ['-e', 'mesh_node_backend=vxlan', '-e', 'mesh_node_vxlan_direct_routing=true'], 'mesh.1'),
                                    ('wireguard', ['-e', 'mesh_node_backend=wireguard'], 'mesh-wg')):
        log('phase: %s (ansible-playbook overlay.mesh.site %s)' % (name, ' '.join(extra[1::2])))
        proc = subprocess.run(['ansible-playbook', '-i', str(lab.inventory_path), 'overlay.mesh.site'] + extra, env=ansible_env(),
                              capture_output=True, text=True, check=False)
        if proc.returncode:
            raise RuntimeError('site playbook failed:\n%s' % (proc.stdout + proc.stderr)[-3000:])
        route = host_sh(lab, client, 'ip route get %s' % addresses[server]).strip()
        mtu = int(host_sh(lab, client, 'cat /sys/class/net/%s/mtu' % mtu_device))
        for host in hosts:
            set_mtu(lab, host, mtu)
        results[name] = iperf(lab, client, server, addresses[server], seconds, True)
        log('  %s: %.2f Gbit/s (mtu %d; %s)' % (name, results[name], mtu, route.splitlines()[0]))
        if name == 'wireguard':
            kind = host_sh(lab, client, 'ip -d link show mesh-wg')
            results['wireguard implementation'] = 'userspace wireguard-go' if ' tun ' in kind else 'kernel'
        if name == 'host-gw':
            # the same route from host to host (the server's bridge gateway): what the containers'
            # own plumbing (veth, bridge, a second forwarding) costs on top, on this machine
            gateway = str(gateways[server].ip)
            results['host-gw hosts'] = iperf(lab, client, server, gateway, seconds, False)
            log('  host-gw, host to host (no containers): %.2f Gbit/s' % results['host-gw hosts'])
    return results


def measure_ipv6_underlay(lab, state, seconds, log):
    """The same containers over an IPv6-only underlay: host to host (the reference), then vxlan."""
    hosts = sorted(state['hosts'])
    client, server = hosts[0], hosts[1]
    results = {}
    log('phase: IPv6 underlay, host to host (lab %s)' % lab.name)
    results['underlay6'] = iperf(lab, client, server, state['hosts'][server]['address'], seconds, False)
    log('  underlay6: %.2f Gbit/s' % results['underlay6'])
    log('phase: vxlan over the IPv6 underlay (ansible-playbook overlay.mesh.site)')
    _gateways, addresses, mtu = vxlan_with_containers(lab, hosts)
    results['vxlan6'] = iperf(lab, client, server, addresses[server], seconds, True)
    log('  vxlan over IPv6: %.2f Gbit/s (mtu %d, local %s)' % (
        results['vxlan6'], mtu, host_sh(lab, client, "ip -d link show mesh.1 | grep -o 'local [^ ]*'").strip()))
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--seconds', type=int, default=10, help='iperf3 duration of each run')
    parser.add_argument('--repeat', type=int, default=SETTINGS['repeat'], help='runs per figure (the median is kept)')
    parser.add_argument('--udp-options', type=json.loads, default={}, metavar='JSON',
                        help='extra daemon configuration, e.g. \'{"udp_gso": false}\' or \'{"offload": false}\' to see what a lever brings')
    parser.add_argument('--keep', action='store_true', help='leave the lab up (take it down with overlay_lab.py down --name %s)' % LAB_NAME)
    args = parser.parse_args(argv)
    SETTINGS['repeat'] = max(1, args.repeat)
    if os.geteuid() != 0:
        print('bench_dataplane: run as root (it boots a lab)', file=sys.stderr)
        return 2

    def log(message):
        print(message, flush=True)

    lab = Lab(LAB_NAME)
    try:
        lab.down(log=lambda message: None)  # a lab left over by an interrupted run
        state = lab.up(2, log=log)
        results = measure(lab, state, args.seconds, log, args.udp_options)
    finally:
        if not args.keep:
            lab.down(log=log)
    lab6 = Lab(LAB_NAME + '6')
    try:
        lab6.down(log=lambda message: None)
        results.update(measure_ipv6_underlay(lab6, lab6.up(2, log=log, underlay='ipv6'), args.seconds, log))
    finally:
        if not args.keep:
            lab6.down(log=log)
    udp_vxlan = results['udp'] / results['vxlan']
    vxlan_underlay = results['vxlan'] / results['underlay']
    hostgw_underlay = results['host-gw'] / results['underlay']
    direct_hostgw = results['direct'] / results['host-gw']
    wireguard_vxlan = results['wireguard'] / results['vxlan']
    wireguard_underlay = results['wireguard'] / results['underlay']
    log('udp/vxlan = %.2f, vxlan/underlay = %.2f, host-gw/underlay = %.2f, direct/host-gw = %.2f, host-gw host to host/underlay'
        ' = %.2f, wireguard/vxlan = %.2f, wireguard/underlay = %.2f' % (
            udp_vxlan, vxlan_underlay, hostgw_underlay, direct_hostgw, results['host-gw hosts'] / results['underlay'],
            wireguard_vxlan, wireguard_underlay))
    if args.udp_options:
        log('udp daemon options: %s' % json.dumps(args.udp_options, sort_keys=True))
    log('SUMMARY underlay=%.2f vxlan=%.2f udp=%.2f host-gw=%.2f direct=%.2f wireguard=%.2f underlay6=%.2f vxlan6=%.2f Gbit/s'
        ' udp/vxlan=%.2f (target >= 0.33) host-gw/underlay=%.2f (target >= 0.90) direct/host-gw=%.2f (target >= 0.90)'
        ' vxlan/underlay=%.2f wireguard/vxlan=%.2f wireguard/underlay=%.2f (%s, no target)'
        ' vxlan6/underlay6=%.2f vxlan6/vxlan=%.2f (IPv6 underlay, no target)' % (
            results['underlay'], results['vxlan'], results['udp'], results['host-gw'], results['direct'], results['wireguard'],
            results['underlay6'], results['vxlan6'], udp_vxlan, hostgw_underlay, direct_hostgw, vxlan_underlay, wireguard_vxlan,
            wireguard_underlay, results['wireguard implementation'], results['vxlan6'] / results['underlay6'],
            results['vxlan6'] / results['vxlan']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
