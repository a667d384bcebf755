# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Data-plane benchmark: underlay vs kernel VXLAN, the UDP daemon, host-gw, direct routing, WireGuard (run as root).

Boots its own lab (`udpbench`, 2 hosts), then measures iperf3 single-stream TCP (-J, 10 s by
default) from a container on node1 to a container on node2:

1. underlay: host to host over eth0 (no containers, MTU 1500, before site: the old reference);
2. vxlan: after `ansible-playbook overlay.mesh.site` (bridge cni0, VTEP mesh.1), alternated
   A B, B A, A B ... with the fair reference: the same containers, veths, bridge, MTU (the VTEP's) and
   nftables table, with each host's route to the other's subnet replaced by a plain one via the
   peer's underlay address (no encapsulation). vxlan/fair is the median of the pairs' ratios (the
   machine is noisy: a pair is measured seconds apart, phases minutes apart);
   Then vxlan with our notrack chains alternated with vxlan with them removed (the bench flushes
   and deletes the two raw-priority chains, and restores the table by reloading the file the node
   module loaded, /run/overlay-mesh/nftables.nft): vxlan notrack/tracked, median of the pairs.
   `overlay.mesh.node_info` drift=true must see the chains missing, then report nothing to change;
3. udp: plugins/module_utils/_backends/udp_daemon.py runs on each host beside the VTEP, with the
   same subnets and peers (device mesh-udp, configured as _backends/udp.py writes it) and its port
   untracked between peers (as the node module's table does for backend udp; a table of the
   bench's own, removed after). udp and vxlan are alternated (A B, B A, ...): each host's route to the
   peer's subnet goes to mesh-udp or back to the VTEP, the containers' MTU follows (1472 or
   1450). udp/vxlan is the median of the pairs' ratios; each daemon's CPU seconds per GB carried
   are logged; node_info drift is checked again afterwards;
4. host-gw: site with mesh_node_backend=host-gw (the two hosts share a segment: direct routes,
   no encapsulation, the underlay's MTU);
5. vxlan with direct routing: site with mesh_node_vxlan_direct_routing=true (the same pair goes
   direct; the overlay MTU stays VXLAN's);
6. wireguard: site with mesh_node_backend=wireguard (wireguard-go here: this machine's kernel has
   no wireguard module; the kernel's where it has one), MTU underlay - 60;
7. a second lab (`udpbench6`, `--underlay ipv6`): host to host over the IPv6 underlay, then vxlan
   over IPv6 (MTU underlay - 70) alternated with its fair reference (plain routes via the peer's
   IPv6 address).

A container is a network namespace `ovlu-c` inside the host with a veth pair: one end on cni0,
the other its eth0 with the subnet's address .200 and a default route via the bridge gateway;
its MTU is the data path's MTU (1450 for vxlan, 1472 for udp). Every ratio is printed as a
FIGURE line (tests/benchmarks/_report.py: value, reference, ratio, target: vxlan/fair >= 0.9,
udp/vxlan >= 0.5, host-gw/underlay >= 0.9, direct/host-gw >= 0.9; the others are reported with
no target), the last line is `SUMMARY <Gbit/s per phase> <ratios>`. Each figure is the median of
--repeat runs (3), or of --repeat alternated pairs; every pair is logged with the load average.
`--smoke`: every phase once with 1 s runs, for `make test` (it checks that the
bench runs to its SUMMARY; the figures mean nothing). The lab is taken down whatever happens. A
measurement, not a timed test.
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
from _report import figure  # noqa: E402  pylint: disable=wrong-import-position

DAEMON = os.path.join(REPO, 'plugins', 'module_utils', '_backends', 'udp_daemon.py')  # runs as a script too
PACKETS = os.path.join(os.path.dirname(DAEMON), 'udp_packets.py')  # beside it: the script imports it
LAB_NAME = os.environ.get('OVERLAY_MESH_LAB_PREFIX', '') + 'udpbench'  # a prefix lets two checkouts run at once
CONTAINER = 'ovlu-c'
UDP_MTU_OVERHEAD = 28
UDP_PORT = 8285
# What the node module's table holds for backend udp (_nftables.py: the daemon's datagrams between peers are not
# tracked), in a table of the bench's own while the udp daemon runs beside the VTEP.
UDP_NOTRACK_TABLE = 'overlay_mesh_bench_udp'
UDP_NOTRACK = '''table inet %s {{
\tset peers {{ type ipv4_addr; elements = {{ {peers} }} }}
\tchain prerouting {{ type filter hook prerouting priority raw; policy accept; udp dport {port} ip saddr @peers notrack; }}
\tchain output {{ type filter hook output priority raw; policy accept; udp dport {port} ip daddr @peers notrack; }}
}}
''' % UDP_NOTRACK_TABLE


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


def iperf_once(lab, client, server, server_address, seconds, in_container):
    """One single-stream TCP run from client to server_address: Gbit/s received."""
    prefix = 'ip netns exec %s ' % CONTAINER if in_container else ''
    host_sh(lab, server, prefix + 'iperf3 -s -1 -D -B %s' % server_address)
    for _wait in range(50):  # the server listens within a few ms; no fixed sleep
        if ':5201 ' in host_sh(lab, server, prefix + 'ss -Htln', check=False):
            break
        time.sleep(0.05)
    out = host_sh(lab, client, prefix + 'iperf3 -J -t %d -c %s' % (seconds, server_address))
    return json.loads(out)['end']['sum_received']['bits_per_second'] / 1e9


def median(values):
    return sorted(values)[len(values) // 2]


def iperf(lab, client, server, server_address, seconds, in_container):
    """Single-stream TCP from client to server_address; returns the median Gbit/s received over the runs."""
    return median([iperf_once(lab, client, server, server_address, seconds, in_container) for _run in range(SETTINGS['repeat'])])


def peer_routes(lab, hosts, gateways):
    """Each host's routes to the other hosts' subnets, as `ip route show` prints them (to put them back)."""
    return {(host, peer): host_sh(lab, host, 'ip route show exact %s' % gateways[peer].network).strip()
            for host in hosts for peer in hosts if peer != host}


def route_plainly(lab, state, hosts, gateways, saved):
    """The fair reference's path: every host routes the other hosts' subnets straight to their underlay
    address (`saved` None), or back to the overlay (`saved`: the routes peer_routes() read)."""
    for host, peer in [(host, peer) for host in hosts for peer in hosts if peer != host]:
        line = saved[host, peer] if saved else None
        if line is None:
            address = ipaddress.ip_address(state['hosts'][peer]['address'])
            via = ('via %s' if address.version == 4 else 'via inet6 %s') % address
            line = '%s %s dev eth0' % (gateways[peer].network, via)
        host_sh(lab, host, 'ip route replace %s' % line)


def alternate_pairs(lab, hosts, address, seconds, log, names, switch):
    """Two states of the same hosts measured in pairs seconds apart (the machine is noisy: phases minutes
    apart carry its load swings), A B, B A, A B ... (neither always goes first): switch(0) sets up state A,
    switch(1) state B; names = (A, B) for the log. Returns the median pair (the median of the pairs' ratios
    A/B) and every pair as (A, B). The caller restores."""
    client, server = hosts[0], hosts[1]
    pairs, current = [], None
    for pair in range(SETTINGS['repeat']):
        measured = {}
        for state in ((0, 1) if pair % 2 == 0 else (1, 0)):
            if state != current:  # B A after A B: the second B is measured as it is
                switch(state)
                current = state
            measured[state] = iperf_once(lab, client, server, address, seconds, True)
        first, second = measured[0], measured[1]
        pairs.append((first, second))
        log('  %s %.2f, %s %.2f Gbit/s (%.2f, load average %s)' % (names[0], first, names[1], second, first / second, load_average()))
    return sorted(pairs, key=lambda pair: pair[0] / pair[1])[len(pairs) // 2], pairs


def process_cpu(lab, host, pid):
    """CPU seconds (user + system) a process inside a lab host has used."""
    fields = host_sh(lab, host, 'cat /proc/%s/stat' % pid).rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / float(os.sysconf('SC_CLK_TCK'))


def load_average():
    """The machine's 1-minute load average (the lab hosts share its kernel): every figure is printed with it."""
    with open('/proc/loadavg', encoding='ascii') as handle:
        return handle.read().split()[0]


def alternate(lab, state, hosts, gateways, addresses, seconds, log, name):
    """The overlay (A) and the fair reference (B) measured in alternated pairs (A B, B A, ...): the same containers, veths, bridge,
    MTU and nftables table, and the reference only swaps the route to the peer's subnet for a plain one via
    the underlay (no encapsulation). Returns the median pair: (overlay, reference), whose ratio is the median
    of the pairs' ratios, and every pair."""
    saved = peer_routes(lab, hosts, gateways)
    try:
        result = alternate_pairs(lab, hosts, addresses[hosts[1]], seconds, log, (name, 'fair reference'),
                                 lambda state_b: route_plainly(lab, state, hosts, gateways, None if state_b else saved))
        log('  fair reference path: %s' % host_sh(lab, hosts[0], 'ip route get %s' % addresses[hosts[1]]).strip().splitlines()[0])
    finally:
        route_plainly(lab, state, hosts, gateways, saved)
    return result


# The node module's notrack chains (plugins/module_utils/_nftables.py): raw-priority chains of table inet overlay_mesh.
NOTRACK_CHAINS = ('prerouting', 'output')


def untracked(lab, hosts, on):
    """vxlan with our notrack chains (on) or with them removed (off): removing flushes and deletes the two
    raw-priority chains of the node module's table; restoring reloads the very file the node module loaded
    (/run/overlay-mesh/nftables.nft, one atomic transaction that deletes and refills the table)."""
    for host in hosts:
        if on:
            host_sh(lab, host, 'nft -f /run/overlay-mesh/nftables.nft')
        else:
            removal = ''.join('flush chain inet overlay_mesh {c}\ndelete chain inet overlay_mesh {c}\n'.format(c=chain) for chain in NOTRACK_CHAINS)
            host_sh(lab, host, 'nft -f -', stdin=removal)


def node_drift(lab):
    """What the node module in check mode would change on each host (overlay.mesh.node_info drift=true, the
    check overlay.mesh.verify starts with): {host: [lines]}, empty lists when the hosts are as it made them."""
    proc = subprocess.run(['ansible', 'all', '-i', str(lab.inventory_path), '-b', '-o', '-m', 'overlay.mesh.node_info', '-a', 'drift=true'],
                          env=ansible_env(), capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError('node_info drift=true failed:\n%s' % (proc.stdout + proc.stderr)[-3000:])
    drift = {}
    for line in proc.stdout.splitlines():  # -o: one line per host, `host | SUCCESS => {json}`
        if ' => ' in line:
            host, result = line.split(' => ', 1)
            drift[host.split(' | ')[0]] = json.loads(result).get('drift') or []
    return drift


def check_no_drift(lab, log, after):
    drift = node_drift(lab)
    if any(drift.values()):
        raise RuntimeError('after %s the hosts are not as the node module made them: %s' % (after, drift))
    log('  after %s: node_info drift=true reports nothing to change on %s' % (after, ', '.join(sorted(drift))))


def start_daemon(lab, host, config):
    with open(DAEMON, encoding='utf-8') as handle:
        host_sh(lab, host, 'mkdir -p /usr/lib/overlay-mesh /etc/overlay-mesh && cat > /usr/lib/overlay-mesh/overlay-mesh-udp.py', stdin=handle.read())
    with open(PACKETS, encoding='utf-8') as handle:
        host_sh(lab, host, 'cat > /usr/lib/overlay-mesh/udp_packets.py', stdin=handle.read())
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

    log('phase 2: vxlan (ansible-playbook overlay.mesh.site), alternated with the fair reference')
    gateways, addresses, vxlan_mtu = vxlan_with_containers(lab, hosts)
    (results['vxlan pair'], results['fair']), pairs = alternate(lab, state, hosts, gateways, addresses, seconds, log, 'vxlan')
    results['vxlan'] = median([overlay for overlay, _reference in pairs])
    log('  vxlan: %.2f Gbit/s (mtu %d), median of the pairs: vxlan %.2f / fair %.2f' % (
        results['vxlan'], vxlan_mtu, results['vxlan pair'], results['fair']))

    log('phase 2b: vxlan with our notrack chains, alternated with vxlan with them removed (conntrack of the outer packets)')
    try:
        untracked(lab, hosts, False)  # the check below can fail: it sees the chains missing
        missing = node_drift(lab)
        if not all(missing.values()):
            raise RuntimeError('node_info drift=true does not see the notrack chains removed: %s' % missing)
        log('  notrack chains removed: node_info drift=true sees it (%s)' % '; '.join(missing[hosts[0]]))
        (results['vxlan notrack'], results['vxlan tracked']), _pairs = alternate_pairs(
            lab, hosts, addresses[server], seconds, log, ('vxlan notrack', 'vxlan tracked'), lambda tracked: untracked(lab, hosts, not tracked))
    finally:
        untracked(lab, hosts, True)
    check_no_drift(lab, log, 'the notrack chains were removed and restored')

    log('phase 3: udp daemon beside the VTEP, alternated with vxlan (each host routes the peer subnet to one or the other)')
    underlay_mtu = int(host_sh(lab, client, 'cat /sys/class/net/eth0/mtu'))
    udp_mtu = underlay_mtu - UDP_MTU_OVERHEAD
    saved = peer_routes(lab, hosts, gateways)
    pids, started_cpu = {}, {}

    def to_udp(on):
        for host in hosts:  # vxlan: the route site made (via the VTEP); udp: the peer's subnet to the daemon's device
            for peer in hosts:
                if peer != host:
                    host_sh(lab, host, 'ip route replace %s' % (('%s dev mesh-udp' % gateways[peer].network) if on else saved[host, peer]))
            set_mtu(lab, host, udp_mtu if on else vxlan_mtu)

    try:
        for host in hosts:
            # the daemon's config as _backends/udp.py writes it; its own route (the whole network) is less specific
            # than the per-peer routes, so it carries nothing until to_udp() points a peer's subnet at it
            config = {'device': 'mesh-udp', 'address': str(gateways[host].network.network_address), 'subnet': str(gateways[host].network),
                      'network': '10.244.0.0/16', 'mtu': udp_mtu, 'port': UDP_PORT, 'local': state['hosts'][host]['address'],
                      'peers': [{'subnet': str(gateways[peer].network), 'underlay': state['hosts'][peer]['address']} for peer in hosts if peer != host]}
            config.update(udp_options or {})
            # the table the node module writes for backend udp leaves the daemon's datagrams between peers untracked;
            # this one, beside ours (which untracks the VXLAN port), does the same for the daemon's port
            host_sh(lab, host, 'nft -f -', stdin=UDP_NOTRACK.format(port=config['port'], peers=', '.join(
                state['hosts'][peer]['address'] for peer in hosts if peer != host)))
            pids[host] = start_daemon(lab, host, config)
            started_cpu[host] = process_cpu(lab, host, pids[host])
        (results['udp'], results['vxlan (udp pairs)']), pairs = alternate_pairs(
            lab, hosts, addresses[server], seconds, log, ('udp', 'vxlan'), lambda state_b: to_udp(not state_b))
        results['udp median'] = median([udp for udp, _vxlan in pairs])
        log('  udp: %.2f Gbit/s (mtu %d), median of the pairs: udp %.2f / vxlan %.2f (mtu %d)' % (
            results['udp median'], udp_mtu, results['udp'], results['vxlan (udp pairs)'], vxlan_mtu))
        carried = {}
        for host in hosts:
            host_sh(lab, host, 'kill -USR1 %s; sleep 0.3' % pids[host])
            stats = json.loads(host_sh(lab, host, 'cat /run/overlay-mesh/udp-stats.json'))
            count = stats['counters']
            moved = carried[host] = max(count['tun_rx_bytes'], count['tun_tx_bytes']) / 1e9  # the direction it carried the stream in
            log('  %s daemon: %d packets from the device (%.0f B average), %d datagrams out, %d in by %d reads, drops %d; '
                'CPU %.2f s per GB carried (its threads and the kernel work of their system calls)' % (
                    host, count['tun_rx_packets'], count['tun_rx_bytes'] / max(1, count['tun_rx_packets']), count['udp_tx_packets'],
                    count['udp_rx_packets'], count['udp_rx_reads'], stats['drops_total'],
                    (process_cpu(lab, host, pids[host]) - started_cpu[host]) / max(moved, 1e-9)))
        # the steering checked: the daemon carried the udp runs' stream (IP packets: a little more than iperf3's
        # payload), and not the vxlan runs' as well
        udp_gb, vxlan_gb = (sum(pair[index] for pair in pairs) * seconds / 8 for index in (0, 1))
        if not 0.8 * udp_gb <= carried[client] <= udp_gb * 1.2 + 0.5 * vxlan_gb:
            raise RuntimeError('the udp daemon carried %.2f GB, the udp runs received %.2f GB (vxlan runs %.2f GB): not steered as meant'
                               % (carried[client], udp_gb, vxlan_gb))
    finally:
        to_udp(False)
        for host, pid in pids.items():
            host_sh(lab, host, 'kill -TERM %s; while kill -0 %s 2>/dev/null; do sleep 0.1; done' % (pid, pid), check=False)
        for host in hosts:
            host_sh(lab, host, 'nft delete table inet %s' % UDP_NOTRACK_TABLE, check=False)
    check_no_drift(lab, log, 'the udp daemon ran beside the VTEP')

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
    log('phase: vxlan over the IPv6 underlay (ansible-playbook overlay.mesh.site), alternated with the fair reference')
    gateways, addresses, mtu = vxlan_with_containers(lab, hosts)
    (results['vxlan6 pair'], results['fair6']), pairs = alternate(lab, state, hosts, gateways, addresses, seconds, log, 'vxlan6')
    results['vxlan6'] = median([overlay for overlay, _reference in pairs])
    log('  vxlan over IPv6: %.2f Gbit/s (mtu %d, %s)' % (
        results['vxlan6'], mtu, host_sh(lab, client, "ip -d link show mesh.1 | grep -o 'local [^ ]*'").strip()))
    return results


# (figure, numerator, reference, its name, target ratio; None: reported with no target, as INFO)
FIGURES = (
    ('vxlan/fair', 'vxlan pair', 'fair', 'fair reference: container to container, plain routes, same MTU and table', 0.9),
    ('udp/vxlan', 'udp', 'vxlan (udp pairs)', 'vxlan, alternated with udp on the same hosts', 0.5),
    ('vxlan notrack/tracked', 'vxlan notrack', 'vxlan tracked', 'vxlan with our notrack chains removed (alternated)', None),
    ('udp/vxlan apart', 'udp median', 'vxlan', 'vxlan of phase 2 (the old udp/vxlan: phases minutes apart)', None),
    ('host-gw/underlay', 'host-gw', 'underlay', 'underlay host to host', 0.9),
    ('direct/host-gw', 'direct', 'host-gw', 'host-gw', 0.9),
    ('vxlan/underlay', 'vxlan', 'underlay', 'underlay host to host (the old reference)', None),
    ('fair/underlay', 'fair', 'underlay', 'underlay host to host (what the container path costs)', None),
    ('host-gw hosts/underlay', 'host-gw hosts', 'underlay', 'underlay host to host', None),
    ('wireguard/vxlan', 'wireguard', 'vxlan', 'vxlan', None),
    ('wireguard/underlay', 'wireguard', 'underlay', 'underlay host to host', None),
    ('vxlan6/fair6', 'vxlan6 pair', 'fair6', 'fair reference over the IPv6 underlay', None),
    ('vxlan6/underlay6', 'vxlan6', 'underlay6', 'IPv6 underlay host to host (the old reference)', None),
    ('vxlan6/vxlan', 'vxlan6', 'vxlan', 'vxlan over the IPv4 underlay', None),
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--seconds', type=int, default=10, help='iperf3 duration of each run')
    parser.add_argument('--repeat', type=int, default=SETTINGS['repeat'], help='runs per figure, pairs per alternation (the median is kept)')
    parser.add_argument('--udp-options', type=json.loads, default={}, metavar='JSON',
                        help='extra daemon configuration, e.g. \'{"udp_gso": false}\' or \'{"offload": false}\' to see what a lever brings')
    parser.add_argument('--keep', action='store_true', help='leave the lab up (take it down with overlay_lab.py down --name %s)' % LAB_NAME)
    parser.add_argument('--smoke', action='store_true', help='every phase once with 1 s runs (for make test: it runs to its SUMMARY;'
                                                             ' the figures mean nothing)')
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.repeat = 1, 1
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
    if args.udp_options:
        log('udp daemon options: %s' % json.dumps(args.udp_options, sort_keys=True))
    bench = 'dataplane-smoke' if args.smoke else 'dataplane'
    ratios = []
    for name, value, reference, reference_name, target in FIGURES:
        figure(bench, name, results[value], 'Gbit/s', target, reference=results[reference], reference_name=reference_name,
               higher_is_better=True)
        ratios.append('%s=%.2f%s' % (name, results[value] / results[reference], ' (target >= %g)' % target if target is not None else ''))
    log('SUMMARY %s Gbit/s %s; vxlan/fair, udp/vxlan, vxlan notrack/tracked and vxlan6/fair6 are medians of alternated pairs; wireguard: %s%s' % (
        ' '.join('%s=%.2f' % (key, results[key]) for key in ('underlay', 'fair', 'vxlan', 'udp', 'host-gw', 'direct', 'wireguard',
                                                             'underlay6', 'fair6', 'vxlan6')),
        ' '.join(ratios), results['wireguard implementation'], ' (smoke: 1 s runs, not a measurement)' if args.smoke else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
