# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The wireguard backend: an encrypted overlay (flannel's wireguard backend).

One device (mesh-wg), UDP port 51820, MTU = underlay - 60 (IPv4 underlay) / - 80 (IPv6). One
WireGuard peer per host: its public key, endpoint = its underlay address and the port,
allowed-ips = its subnet (both subnets in a dual-stack overlay: one device and one port carry both
families, where flannel runs a second device on port 51821). One route per overlay network into
the device (with the collection's route protocol); WireGuard's cryptokey routing picks the peer.

Keys: a host's private key is generated on the host (ensure_key: the node_keys module, or the
node module when the contract names no key) into /etc/overlay-mesh/wireguard/<device>.key (0600)
and never leaves it. Contracts, lease records, reports and diffs carry the public key only.

The device is the kernel's (generic netlink) when the kernel has the wireguard module, else
wireguard-go's (userspace, the same configuration over its UAPI socket), run by
overlay-mesh-wireguard.service. One reconcile configures both (wireguard_genl and wireguard_uapi speak
the one model of wireguard_model; keys are wireguard_keys, the host's key file wireguard_hostkey).
Every peer of the device is ours: the device, its name and its key are the collection's.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import time

from ansible_collections.overlay.mesh.plugins.module_utils import _host
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_links as links
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_routes as routes
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_validate as validate
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_wire as nlwire
from ansible_collections.overlay.mesh.plugins.module_utils._backends import wireguard_genl as genl
from ansible_collections.overlay.mesh.plugins.module_utils._backends import wireguard_hostkey as hostkey
from ansible_collections.overlay.mesh.plugins.module_utils._backends import wireguard_keys as keys
from ansible_collections.overlay.mesh.plugins.module_utils._backends import wireguard_uapi as uapi
from ansible_collections.overlay.mesh.plugins.module_utils._backends.wireguard_model import WireGuardError
from ansible_collections.overlay.mesh.plugins.module_utils._backends.base import Backend as BaseBackend
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_changes import EngineError
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_compat import open_iproute

# installed with the engine (_node_apply)
ENGINE_MODULES = ('_backends.wireguard_model', '_backends.wireguard_keys', '_backends.wireguard_hostkey', '_backends.wireguard_uapi',
                  '_backends.wireguard_genl')
NAME = 'wireguard'
DEFAULT_PORT = 51820
DEFAULT_DEVICE = 'mesh-wg'
# Outer IPv4 20 + UDP 8 + WireGuard data header 16 + authentication tag 16; an IPv6 outer header is 20 more.
OVERHEAD = {4: 60, 6: 80}
UNIT = 'overlay-mesh-wireguard.service'
WIREGUARD_GO_PATHS = ('/usr/bin/wireguard-go', '/usr/sbin/wireguard-go', '/usr/local/bin/wireguard-go')
SOCKET_WAIT = 15  # seconds for wireguard-go to open its socket once started

UNIT_TEXT = '''# Written by overlay.mesh (wireguard backend, userspace): wireguard-go runs %(device)s. Its keys
# and peers are set over its socket by overlay.mesh.node, and by ExecStartPost whenever the daemon
# starts without the controller (boot, a crash): a new wireguard-go starts unconfigured.
[Unit]
Description=overlay.mesh wireguard backend, userspace (wireguard-go %(device)s)
Wants=network-online.target
After=network-online.target overlay-mesh.service
Before=containerd.service docker.service crio.service kubelet.service podman.service

[Service]
Type=simple
Environment=WG_PROCESS_FOREGROUND=1
ExecStart=%(wireguard_go)s --foreground %(device)s
ExecStartPost=-/usr/bin/python3 %(apply)s --skip-if %(marker)s --only backend --only kernel %(state)s
Restart=on-failure
RestartSec=2
TimeoutStartSec=180

[Install]
WantedBy=multi-user.target
'''


def starting_marker(device):
    """Written by a node run that starts wireguard-go: its ExecStartPost then leaves the device to that run."""
    return os.path.join(_host.RUN_DIR, 'wireguard-%s.starting' % device)


def _key_option(value, what):
    try:
        return keys.key_to_text(keys.key_from_text(str(value), what))
    except WireGuardError as exc:
        raise validate.ValidationError(str(exc))


# ---- the device: the kernel's or wireguard-go's ---------------------------------------------------
def wireguard_go():
    for path in WIREGUARD_GO_PATHS:
        if os.access(path, os.X_OK):
            return path
    return shutil.which('wireguard-go')


def kernel_has_wireguard():
    """The kernel has WireGuard: its generic netlink family resolves (asking for it loads the module)."""
    try:
        return genl.GenlClient.family_id() is not None
    except WireGuardError:
        return False  # generic netlink refused to us (a sandbox): no kernel path


class KernelDevice(links.LinkReconciler):
    """The kernel's WireGuard device: no MAC, the node's addresses (one per family) as host routes, up."""

    kind = 'wireguard'
    nodad = True  # nothing else on a point-to-point device can hold the address

    def __init__(self, ipr, name, mtu=None, addresses=(), state='present'):
        super(KernelDevice, self).__init__(ipr, name)
        self.mtu = mtu
        self.addresses = [one for one in addresses if one]

    def desired_link(self):
        return {'name': self.name, 'kind': self.kind, 'mtu': self.mtu, 'mac': None, 'up': True}

    def desired_addresses(self):
        return [ipaddress.ip_interface('%s/%d' % (one, one.max_prefixlen)) for one in self.addresses]

    def create(self):
        links.call('creating WireGuard device %s' % self.name, self.ipr.link, 'add', ifname=self.name, kind='wireguard',
                   mtu=self.mtu)
        self._set('bringing up', state='up')


class UserspaceDevice(KernelDevice):
    """wireguard-go's TUN device: created by the daemon, configured here like the kernel's."""

    kind = 'tun'

    def create(self):
        raise EngineError('device %s is not there: wireguard-go (%s) did not create it; see journalctl -u %s'
                          % (self.name, UNIT, UNIT))


def _device_line(obj):
    # the public key only: the private key never goes into a report
    return 'wireguard %s listen-port %s fwmark %s public-key %s' % (
        obj['name'], obj.get('listen_port'), obj.get('fwmark'), obj.get('public_key'))


def _peer_line(obj):
    return 'wireguard-peer %s endpoint %s allowed-ips %s keepalive %s dev %s' % (
        obj['public_key'], obj.get('endpoint') or '(none)', obj.get('allowed_ips') or '(none)', obj.get('keepalive') or 0,
        obj['dev'])


# the device and its peers in reports, between the FDB entries and the routes
_host.register_kind('wireguard', _device_line)
_host.register_kind('wireguard-peer', _peer_line)


def _describe_peer(device, key, peer):
    endpoint = peer.get('endpoint')
    return {'type': 'wireguard-peer', 'dev': device, 'public_key': keys.key_to_text(key),
            'endpoint': _endpoint_text(endpoint) if endpoint else None,
            'allowed_ips': ','.join(peer.get('allowed_ips') or []) or None, 'keepalive': peer.get('keepalive') or 0}


def _endpoint_text(endpoint):
    address = ipaddress.ip_address(endpoint[0])
    return ('[%s]:%d' if address.version == 6 else '%s:%d') % (address, endpoint[1])


def _same_endpoint(current, wanted):
    if not current or not wanted:
        return current == wanted
    return ipaddress.ip_address(current[0]) == ipaddress.ip_address(wanted[0]) and int(current[1]) == int(wanted[1])


def plan_config(device, current, private, params, wanted_peers, report):
    """The change that turns the device's configuration (current, as read) into the wanted one, or
    None; every difference goes to report. Peers not wanted are removed: the device is ours."""
    change = {'private_key': None, 'listen_port': None, 'fwmark': None, 'replace_peers': False, 'peers': []}
    current_private = current.get('private_key')
    current_public = keys.key_to_text(keys.public_key(current_private)) if current_private else None
    public = keys.key_to_text(keys.public_key(private)) if private is not None else '(generated at apply)'
    after = {'type': 'wireguard', 'name': device, 'listen_port': params['port'], 'fwmark': params['fwmark'],
             'public_key': public}
    before = {'type': 'wireguard', 'name': device, 'listen_port': current.get('listen_port'),
              'fwmark': current.get('fwmark') or 0, 'public_key': current_public}
    if private is None or current_private != private:
        change['private_key'] = private
    if current.get('listen_port') != params['port']:
        change['listen_port'] = params['port']
    if (current.get('fwmark') or 0) != params['fwmark']:
        change['fwmark'] = params['fwmark']
    if any(change[key] is not None for key in ('private_key', 'listen_port', 'fwmark')) or private is None:
        report.object('updated' if current_public else 'added', after, before if current_public else None)
    else:
        report.unchanged(after)
    have = current.get('peers') or {}
    for key, peer in sorted(wanted_peers.items()):
        old = have.get(key)
        obj = _describe_peer(device, key, peer)
        if old is not None and _same_endpoint(old.get('endpoint'), peer['endpoint']) \
                and sorted(old.get('allowed_ips') or []) == sorted(peer['allowed_ips']) \
                and (old.get('keepalive') or 0) == peer['keepalive']:
            report.unchanged(obj)
            continue
        report.object('added' if old is None else 'updated', obj, _describe_peer(device, key, old) if old else None)
        change['peers'].append({'public_key': key, 'remove': False, 'endpoint': peer['endpoint'],
                                'keepalive': peer['keepalive'], 'allowed_ips': peer['allowed_ips'],
                                'replace_allowed_ips': True})
    for key, old in sorted(have.items()):
        if key not in wanted_peers:
            obj = _describe_peer(device, key, old)
            report.object('removed', obj, obj)
            change['peers'].append({'public_key': key, 'remove': True, 'endpoint': None, 'keepalive': None,
                                    'allowed_ips': None, 'replace_allowed_ips': False})
    if change['peers'] or any(change[key] is not None for key in ('private_key', 'listen_port', 'fwmark')):
        return change
    return None


def greet(subnets):
    """Send one datagram to the device address of each of these peer subnets, so that the device starts
    a handshake now. A peer holding a session with this host's previous run (this host rebooted, or its
    key changed) would otherwise keep sending with it, unanswered, until it rekeys (up to two minutes)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        for subnet in subnets:
            try:
                # the discard port of the peer's device address: routed into the tunnel, answered by nothing
                sock.sendto(b'', (str(ipaddress.ip_network(subnet).network_address), 9))
            except OSError:
                pass
    finally:
        sock.close()


def reconcile_routes(node, host, device, index):
    """One route per overlay network (IPv4, and IPv6 in a dual-stack overlay) into the device."""
    with nlwire.NetlinkRoute() as nl:
        for network in (node.network, node.ipv6_network):
            if network:
                host.report.changeset(routes.reconcile_device_route(nl, network, device, index, node.route_protocol,
                                                                    check_mode=host.check_mode))


# ---- the backend of the node contract ----------------------------------------------------------
class Backend(BaseBackend):
    name = NAME
    OPTIONS = {
        'port': {'type': 'int', 'default': DEFAULT_PORT, 'check': validate.port},
        'device': {'type': 'str', 'default': DEFAULT_DEVICE, 'check': validate.ifname},
        # the host's public key: filled in from its key file (node_info, node_keys), never set by hand
        'public_key': {'type': 'str', 'check': _key_option},
        'keepalive': {'type': 'int', 'default': 0, 'check': lambda value, what: validate.integer(value, what, 0, 65535)},
        'fwmark': {'type': 'int', 'default': 0, 'check': lambda value, what: validate.integer(value, what, 0, 0xffffffff)},
        # kernel: the wireguard module; userspace: wireguard-go; auto: the kernel's when it has the module
        'implementation': {'type': 'str', 'default': 'auto', 'choices': ['auto', 'kernel', 'userspace']},
    }
    PEER_OPTIONS = {'public_key': {'type': 'str', 'required': True, 'check': _key_option}}
    UNIQUE_PEER_OPTIONS = {'public_key': 'WireGuard public key (a copied key file? remove /etc/overlay-mesh/wireguard/*.key on'
                                         ' one of them and run again)'}
    OVERHEAD = OVERHEAD
    GROUP_OPTIONS = ('port',)
    # Options filled in from the host, not from the role's variables.
    HOST_OPTIONS = ('public_key',)
    KEYED = True
    DUAL_STACK = True

    def ports(self):
        return [('udp', self.params['port'])]

    def publish(self):
        return {'public_key': self.params['public_key']} if self.params.get('public_key') else {}

    @classmethod
    def flannel_data(cls, record, settings):
        return {'PublicKey': record['public_key']} if record.get('public_key') else {}

    @classmethod
    def host_identity(cls, params):
        """What the host has for these options: its public key, once it has a key."""
        public = hostkey.host_public_key(params.get('device') or DEFAULT_DEVICE)
        return {'public_key': public} if public else {}

    @classmethod
    def ensure_keys(cls, host, params, rotate=False):
        """The host's key, made (or a new one staged: rotate) when needed; returns what the host publishes."""
        return {'public_key': hostkey.ensure_key(host, params.get('device') or DEFAULT_DEVICE, rotate=rotate)}

    @classmethod
    def check_host(cls, params):
        """Before any change (node_info): the host can run a WireGuard device."""
        cls(params).implementation()

    # ---- apply ----
    def implementation(self, link=False):
        """'kernel' or 'userspace' for this host. With auto, what is there decides (a device, our unit:
        the choice sticks), then the kernel's when it has the module, else wireguard-go."""
        if link is False:
            link = self._link()
        choice = self.params['implementation']
        if choice == 'auto':
            if link is not None and link['kind'] in ('wireguard', 'tun'):
                choice = 'kernel' if link['kind'] == 'wireguard' else 'userspace'
            elif os.path.exists(os.path.join(_host.UNIT_DIR, UNIT)):
                choice = 'userspace'
            else:
                choice = 'kernel' if kernel_has_wireguard() else 'userspace'
        if choice == 'userspace' and wireguard_go() is None:
            raise EngineError('wireguard backend: %s, and wireguard-go is not installed: install the package wireguard-go'
                              ' (Debian/Ubuntu: apt install wireguard-go), or use a kernel with WireGuard'
                              % ('implementation is userspace' if self.params['implementation'] == 'userspace'
                                 else 'the kernel has no wireguard module'))
        return choice

    def _link(self):
        ipr = open_iproute()
        try:
            return links.read_link(ipr, self.device)
        finally:
            ipr.close()

    def apply(self, node, host):
        private = hostkey.key_for(host, self.device, self.params.get('public_key'))
        if private is not None:
            self.params['public_key'] = hostkey.public_text(private)  # saved with the contract: the host's lease record carries it
        link = self._link()
        implementation = self.implementation(link)
        if link is not None and link['kind'] == ('tun' if implementation == 'kernel' else 'wireguard'):
            link = self._switch_implementation(host, link)
        if implementation == 'userspace' and not self._ensure_daemon(host):
            if host.boot:
                host.report.warnings.append('%s: wireguard-go is not running yet; %s configures the device when it starts'
                                            % (self.device, UNIT))
                return
            link = None  # check mode: the daemon is still to be started
        ipr = open_iproute()
        try:
            cls = KernelDevice if implementation == 'kernel' else UserspaceDevice
            if link is None and host.check_mode:
                host.report.object('added', links.link_obj(cls(ipr, self.device, mtu=node.mtu).desired_link()))
            else:
                device = cls(ipr, self.device, mtu=node.mtu, addresses=(node.vtep_address, node.vtep_address6))
                host.report.changeset(device.reconcile('present', check_mode=host.check_mode))
            link = links.read_link(ipr, self.device)
        finally:
            ipr.close()
        client = genl.GenlClient(self.device) if implementation == 'kernel' else uapi.UapiClient(self.device)
        current = client.get() if link is not None else {}
        wanted = dict((keys.key_from_text(peer['public_key'], 'peer %s public key' % peer.get('name')),
                       {'endpoint': (peer['underlay'], self.params['port']),
                        'allowed_ips': [peer['subnet']] + ([peer['ipv6_subnet']] if node.ipv6_subnet and peer.get('ipv6_subnet') else []),
                        'keepalive': self.params['keepalive']}) for peer in node.peers)
        change = plan_config(self.device, current, private, self.params, wanted, host.report)
        if change is not None and not host.check_mode:
            client.set(change)
        reconcile_routes(node, host, self.device, link['index'] if link is not None else None)
        if change is not None and not host.check_mode:
            # the peers just added or changed: their IPv4 subnet is first in allowed-ips, one handshake serves both
            greet([item['allowed_ips'][0] for item in change['peers'] if not item['remove']])

    def _switch_implementation(self, host, link):
        """The other implementation's device is there: take it away first (None: no device now)."""
        if link['kind'] == 'tun':
            if host.boot:
                raise EngineError('%s is wireguard-go\'s device; the kernel\'s is configured: run the mesh_node role' % self.device)
            self._report_link_removed(host, link)
            host.remove_unit(UNIT, stop=True)
        else:
            ipr = open_iproute()
            try:
                host.report.changeset(KernelDevice(ipr, self.device, state='absent').reconcile('absent', host.check_mode))
            finally:
                ipr.close()
        return None

    def _report_link_removed(self, host, link):
        obj = links.link_obj(link)
        host.report.object('removed', obj, obj)

    def _ensure_daemon(self, host):
        """wireguard-go running under our unit, its socket open. False when its device is not there to
        configure: check mode before the first start, or the boot apply before the unit starts
        (ExecStartPost configures it then)."""
        text = UNIT_TEXT % {'device': self.device, 'wireguard_go': wireguard_go(), 'apply': _host.LIB_DIR + '/overlay-mesh-apply',
                            'state': _host.NODE_FILE, 'marker': starting_marker(self.device)}
        unit_changed = host.ensure_unit(UNIT, text)
        state = self._unit_state(host)
        client = uapi.UapiClient(self.device)
        if host.boot:
            if state not in ('activating', 'active', 'reloading'):
                return False
            # in the unit's ExecStartPost: the daemon was just started and must come up
            if not self._wait_socket(client):
                raise EngineError('wireguard-go did not open %s within %d s' % (client.path, SOCKET_WAIT))
            return True
        running = state in ('active', 'activating', 'reloading')
        if running and not unit_changed and client.available():
            host.report.unchanged({'type': 'service', 'name': UNIT, 'detail': 'running'})
            return True
        action = 'restart' if running else 'start'
        host.report.object('updated', {'type': 'service', 'name': UNIT, 'detail': action + 'ed'})
        if host.check_mode:
            return running and client.available()
        if running:
            host.systemctl('stop', UNIT)  # waits for the old daemon to exit: its socket must not be the one found
        host.systemctl('reset-failed', UNIT, check=False)
        # The unit's ExecStartPost sees the marker and leaves the device to this run (it would wait for our lock).
        _host.write_atomic(starting_marker(self.device), '%d\n' % time.time())
        host.systemctl('start', '--no-block', UNIT)
        if not self._wait_socket(client):
            raise EngineError('wireguard-go did not open %s within %d s: see journalctl -u %s' % (client.path, SOCKET_WAIT, UNIT))
        return True

    @staticmethod
    def _unit_state(host):
        if not os.path.exists(os.path.join(_host.UNIT_DIR, UNIT)):
            return 'inactive'
        return host.systemctl('show', '--property=ActiveState', '--value', UNIT, check=False).stdout.strip()

    @staticmethod
    def _wait_socket(client, seconds=SOCKET_WAIT):
        deadline = time.monotonic() + seconds
        while not client.available():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def teardown(self, host, record, strict=False):
        """Stop wireguard-go (its device goes with it), delete a kernel device, remove the key. strict:
        a kernel device only when it holds this host's key (another tool's device is left alone)."""
        device = self.device or DEFAULT_DEVICE
        ipr = open_iproute()
        try:
            link = links.read_link(ipr, device)
            if link is not None and link['kind'] == 'tun' and os.path.exists(os.path.join(_host.UNIT_DIR, UNIT)):
                self._report_link_removed(host, link)  # wireguard-go takes it along when it stops
            host.remove_unit(UNIT, stop=True)
            if link is not None and link['kind'] == 'wireguard' and (not strict or _holds_our_key(device)):
                host.report.changeset(KernelDevice(ipr, device, state='absent').reconcile('absent', host.check_mode))
        finally:
            ipr.close()
        hostkey.remove_key(host, device)


def _holds_our_key(device):
    private = hostkey.read_private_key(device)
    try:
        return private is not None and genl.GenlClient(device).get().get('private_key') == private
    except WireGuardError:
        return False
