# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The node contract: one versioned, typed description of a node's desired state.

Produced once per host by the mesh_node role (plugin_utils/_node_inputs.py), consumed by the
overlay.mesh.node module and by the boot-time apply, which all validate it with normalize()
below and apply it with _node_apply.apply(). Documented in docs/node.md. Standard library only.

    version      1
    underlay     {address, interface, mtu}     this host's underlay
    network      10.244.0.0/16                 the overlay network
    subnet       10.244.1.0/24                 this host's lease
    mtu          overlay MTU (default: underlay MTU - the backend's overhead)
    bridge       {name, mac}                   the container bridge; gateway = subnet's first address
    backend      {type, ...its options}        see _backends/registry.py
    peers        [{name, subnet, underlay, ...the backend's peer data}]
    firewall     {peers_only, masquerade}      the overlay's nftables table
    kernel       {ip_forward, rp_filter}       sysctls
    route_protocol, subnet_env, cni {conf_dir, network_name}, docker {enabled, restart}
"""

from __future__ import annotations

import ipaddress
import posixpath
import re

from ansible_collections.overlay.mesh.plugins.module_utils import _identity
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_validate as validate
from ansible_collections.overlay.mesh.plugins.module_utils import _spec
from ansible_collections.overlay.mesh.plugins.module_utils._backends import registry

VERSION = 1
DEFAULT_BRIDGE = 'cni0'
DEFAULT_SUBNET_ENV = '/run/flannel/subnet.env'
DEFAULT_CNI_CONF_DIR = '/etc/cni/net.d'
DEFAULT_CNI_NETWORK = 'overlay-mesh'
DEFAULT_BACKEND = registry.DEFAULT
# Below this, the kernel disables IPv6 on a device.
IPV6_MIN_MTU = 1280
# A CNI network's name (the CNI spec's): also the conflist's file name, 10-<name>.conflist.
CNI_NETWORK_NAME = re.compile(r'^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$')


def _address(value, what):
    return str(validate.ip_address(value, what))


def _network(value, what):
    return str(validate.network(value, what))


def _any_network(value, what):
    return str(ipaddress.ip_interface(str(validate.interface_address(value, what))).network)


def _overlay_network(value, what):
    network = validate.network(value, what)
    if network.version != 4:
        raise validate.ValidationError('%s %s is IPv6: the overlay network is IPv4; an IPv6 overlay goes beside it'
                                       ' (ipv6_network, a dual-stack overlay; an IPv6-only overlay is not supported)' % (what, network))
    return str(network)


def _ipv6_network(value, what):
    network = validate.network(value, what)
    if network.version != 6:
        raise validate.ValidationError('%s %s is not an IPv6 network' % (what, network))
    return str(network)


def _path(value, what):
    """An absolute path (a file or directory the node writes or reads), normalised: never relative, no '..', no NUL,
    not '/'. A trailing '/', '//' or '/./' is dropped, not refused: the same place, and a node saved by a release
    that allowed them stays readable."""
    if '\0' in value:
        raise validate.ValidationError('%r contains a NUL character' % value)
    if not value.startswith('/'):
        raise validate.ValidationError('%r is not an absolute path' % value)
    if '..' in value.split('/'):
        raise validate.ValidationError("%r has a '..' component: give the path it means" % value)
    normal = posixpath.normpath(value)
    if normal in ('/', '//'):
        raise validate.ValidationError('%r is the root directory' % value)
    return normal


def _cni_network_name(value, what):
    if not CNI_NETWORK_NAME.match(value):
        raise validate.ValidationError("%r is not a CNI network name (letters, digits, '_', '.', '-'; a letter or digit"
                                       ' first)' % value)
    return value


PEER_OPTIONS = {
    'name': {'type': 'str'},
    'subnet': {'type': 'str', 'required': True, 'check': _network},
    'underlay': {'type': 'str', 'required': True, 'check': _address},
    # a dual-stack overlay: the peer's IPv6 subnet (a peer without one is reached over IPv4 only)
    'ipv6_subnet': {'type': 'str', 'check': _ipv6_network},
}

OPTIONS = {
    'version': {'type': 'int', 'default': VERSION, 'choices': [VERSION]},
    'underlay': {'type': 'dict', 'required': True, 'options': {
        'address': {'type': 'str', 'required': True, 'check': _address},
        'interface': {'type': 'str', 'check': validate.ifname},
        'mtu': {'type': 'int', 'check': validate.mtu},
        # the underlay's own network: which peers are on-link (host-gw, direct routing)
        'network': {'type': 'str', 'check': _any_network},
    }},
    'network': {'type': 'str', 'required': True, 'check': _overlay_network},
    'subnet': {'type': 'str', 'required': True, 'check': _network},
    # dual stack (flannel's IPv6Network): the IPv6 overlay network and this host's IPv6 subnet
    'ipv6_network': {'type': 'str', 'check': _ipv6_network},
    'ipv6_subnet': {'type': 'str', 'check': _ipv6_network},
    'mtu': {'type': 'int', 'check': validate.mtu},
    'bridge': {'type': 'dict', 'options': {
        'name': {'type': 'str', 'default': DEFAULT_BRIDGE, 'check': validate.ifname},
        'mac': {'type': 'str', 'check': validate.mac},
    }},
    # {type: <backend>, ...}: checked against the backend's own OPTIONS
    'backend': {'type': 'dict', 'default': {'type': DEFAULT_BACKEND}},
    # [{name, subnet, underlay, ...}]: checked against PEER_OPTIONS and the backend's PEER_OPTIONS
    'peers': {'type': 'list', 'elements': 'dict', 'default': []},
    'firewall': {'type': 'dict', 'options': {
        'peers_only': {'type': 'bool', 'default': True},
        'masquerade': {'type': 'bool', 'default': True},
        # flannel's ip6masq: off by default (IPv6 containers usually have routable addresses)
        'ipv6_masquerade': {'type': 'bool', 'default': False},
    }},
    'kernel': {'type': 'dict', 'options': {
        'ip_forward': {'type': 'bool', 'default': True},
        'rp_filter': {'type': 'int', 'default': 2, 'choices': [0, 1, 2]},
    }},
    'route_protocol': {'type': 'int', 'default': validate.ROUTE_PROTOCOL, 'check': validate.route_protocol},
    'subnet_env': {'type': 'path', 'default': DEFAULT_SUBNET_ENV, 'check': _path},
    'cni': {'type': 'dict', 'options': {
        'conf_dir': {'type': 'path', 'default': DEFAULT_CNI_CONF_DIR, 'check': _path},
        'network_name': {'type': 'str', 'default': DEFAULT_CNI_NETWORK, 'check': _cni_network_name},
    }},
    # the node agent (docs/agent.md): follows the leases in etcd and applies them to the peers without a controller run
    'agent': {'type': 'dict', 'options': {
        'enabled': {'type': 'bool', 'default': False},
        'name': {'type': 'str'},  # the host's name in its lease (OverlayMesh.host): its inventory name
        'endpoints': {'type': 'list', 'elements': 'str', 'default': []},
        'prefix': {'type': 'str', 'default': '/coreos.com/network'},
        'ca_file': {'type': 'path', 'check': _path},
        'cert_file': {'type': 'path', 'check': _path},
        'key_file': {'type': 'path', 'check': _path},
        'user': {'type': 'str'},
        'password_file': {'type': 'path', 'check': _path},
        'flannel_peers': {'type': 'bool', 'default': False},
        'timeout': {'type': 'int', 'default': 5},
        # mesh_node_public_address: the lease keeps it when the host's own address moves
        'public_address': {'type': 'str', 'check': _address},
    }},
    'docker': {'type': 'dict', 'options': {
        'enabled': {'type': 'bool', 'default': False},
        'restart': {'type': 'bool', 'default': False},
    }},
}


class Node(object):
    """A normalised node contract (``data``, what is saved) with the values derived from it."""

    def __init__(self, data, backend, warnings=()):
        self.data = data
        self.backend = backend
        self.warnings = list(warnings)

    @property
    def underlay(self):
        return self.data['underlay']

    @property
    def underlay_address(self):
        return ipaddress.ip_address(self.data['underlay']['address'])

    @property
    def underlay_version(self):
        return self.underlay_address.version

    @property
    def network(self):
        return ipaddress.ip_network(self.data['network'])

    @property
    def subnet(self):
        return ipaddress.ip_network(self.data['subnet'])

    @property
    def vtep_address(self):
        """The subnet's network address: the backend device's own address (flannel's choice)."""
        return self.subnet.network_address

    @property
    def gateway(self):
        """The subnet's first address: the bridge's, the containers' default gateway."""
        return self.subnet.network_address + 1

    @property
    def ipv6_network(self):
        return ipaddress.ip_network(self.data['ipv6_network']) if self.data.get('ipv6_network') else None

    @property
    def ipv6_subnet(self):
        """This host's IPv6 subnet (a dual-stack overlay), else None."""
        return ipaddress.ip_network(self.data['ipv6_subnet']) if self.data.get('ipv6_subnet') else None

    @property
    def gateway6(self):
        return self.ipv6_subnet.network_address + 1 if self.ipv6_subnet else None

    @property
    def vtep_address6(self):
        return self.ipv6_subnet.network_address if self.ipv6_subnet else None

    @property
    def bridge_subnet(self):
        """The part of the subnet on the node's bridge: all of it, or its lower half beside Docker (_docker.py)."""
        if self.data['docker']['enabled']:
            return self.subnet_halves[0]
        return self.subnet

    @property
    def subnet_halves(self):
        """(the node bridge's part, docker0's part) of the host's subnet when Docker is beside the overlay."""
        return tuple(self.subnet.subnets(prefixlen_diff=1))

    @property
    def mtu(self):
        return self.data['mtu']

    @property
    def bridge(self):
        return self.data['bridge']

    @property
    def peers(self):
        return self.data['peers']

    @property
    def route_protocol(self):
        return self.data['route_protocol']

    def __getitem__(self, key):
        return self.data[key]


def backend_options(backend_class):
    return dict(backend_class.OPTIONS, type={'type': 'str', 'required': True})


def normalize(raw, machine_id=None, underlay_mtu=None, partial=False):
    """Validate and complete a node contract; returns a Node, or raises SpecError listing every problem.

    machine_id: derive the MACs left out (on the host). underlay_mtu: a function returning the
    underlay's MTU when the contract does not say it. partial: the lease (subnet, peers) may be
    missing, and the underlay too (the role's checks before leases are allocated).
    """
    checker = _spec.Validator()
    options = OPTIONS
    if partial:
        options = dict(OPTIONS, subnet=dict(OPTIONS['subnet'], required=False),
                       underlay=dict(OPTIONS['underlay'], required=False, default=None))
    data = checker.mapping(raw, options)
    if data is None:
        checker.raise_problems()
    _drop_unused_ipv6(data)
    _check_agent(checker, data)
    backend = _normalize_backend(checker, data, machine_id)
    if machine_id and data.get('bridge') and data['bridge'].get('name') and not data['bridge'].get('mac'):
        data['bridge']['mac'] = _identity.device_mac(machine_id, data['bridge']['name'])
    peer_paths = {}
    if backend is not None and data.get('peers') is not None:
        data['peers'], peer_paths = _normalize_peers(checker, data['peers'], backend)
    warnings = []
    if backend is not None and data.get('underlay') and data.get('network'):
        _check_addresses(checker, data, backend, peer_paths)
        _resolve_mtu(checker, data, backend, underlay_mtu, warnings)
    checker.raise_problems()
    return Node(data, backend(data['backend']), warnings)


def _check_agent(checker, data):
    """Without the agent, the contract (and node.json) is as before the agent existed."""
    agent = data.get('agent')
    if not isinstance(agent, dict) or not agent.get('enabled'):
        data.pop('agent', None)
        return
    for option in ('name', 'endpoints'):
        if not agent.get(option):
            checker.problem('agent.%s' % option, 'required when the agent is enabled')


def _drop_unused_ipv6(data):
    """An IPv4-only contract stays as it was before dual stack (its saved node.json unchanged)."""
    for key in ('ipv6_network', 'ipv6_subnet'):
        if data.get(key) is None:
            data.pop(key, None)
    if not data.get('ipv6_network') and isinstance(data.get('firewall'), dict):
        data['firewall'].pop('ipv6_masquerade', None)


def _normalize_backend(checker, data, machine_id):
    params = data.get('backend')
    if params is None:
        return None
    kind = params.get('type', DEFAULT_BACKEND)
    backend = registry.get(kind)
    if backend is None:
        checker.problem('backend.type', '%r is not one of %s' % (kind, ', '.join(registry.names())))
        return None
    before = len(checker.problems)
    params = checker.mapping(dict(params, type=kind), backend_options(backend), 'backend')
    if params is None or len(checker.problems) > before:
        return None
    data['backend'] = backend.normalize(params, machine_id)
    return backend


def _normalize_peers(checker, peers, backend):
    """The peers, sorted; one that does not validate is reported and left out of further checks."""
    options = dict(PEER_OPTIONS, **backend.PEER_OPTIONS)
    result = []
    for index, peer in enumerate(peers):
        path = 'peers[%d]' % index
        if not isinstance(peer, dict):
            checker.problem(path, 'must be a mapping, got %r' % (peer,))
            continue
        # Peers carry what every backend needs (a lease record); keep what this one uses.
        known = dict((key, value) for key, value in peer.items() if key in options)
        before = len(checker.problems)
        normalised = checker.mapping(known, options, path)
        if normalised is not None and normalised.get('ipv6_subnet') is None:
            normalised.pop('ipv6_subnet', None)  # a peer of an IPv4-only overlay
        if normalised is not None and len(checker.problems) == before:
            result.append((index, normalised))
    paths = dict((id(peer), 'peers[%d]' % index) for index, peer in result)
    return sorted((peer for _index, peer in result), key=lambda peer: (peer.get('name') or '', peer.get('subnet') or '')), paths


def _label(peer):
    return 'peer %s' % (peer.get('name') or peer['subnet'])


def _check_addresses(checker, data, backend, peer_paths):
    network = ipaddress.ip_network(data['network'])
    underlay = ipaddress.ip_address(data['underlay']['address'])
    if underlay in network:
        checker.problem('underlay.address', '%s lies inside the overlay network %s' % (underlay, network))
    subnet = ipaddress.ip_network(data['subnet']) if data.get('subnet') else None
    if subnet is not None:
        if subnet.version != network.version or not subnet.subnet_of(network):
            checker.problem('subnet', '%s is not inside the overlay network %s' % (subnet, network))
        elif subnet.num_addresses < 4:
            checker.problem('subnet', '%s is too small for a bridge gateway and containers' % subnet)
        elif (data.get('docker') or {}).get('enabled') and subnet.num_addresses < 16:
            checker.problem('docker.enabled', 'the subnet %s is split between the node\'s bridge and docker0: it needs 16 addresses'
                            ' or more (a /28 for IPv4)' % subnet)
    _check_ipv6(checker, data, backend, subnet)
    seen = {}
    for key, value in backend(data['backend']).publish().items():
        if value:
            seen[(key, value)] = 'this host'
    for index, peer in enumerate(data.get('peers') or []):
        path = peer_paths.get(id(peer), 'peers[%d]' % index)
        peer_subnet = ipaddress.ip_network(peer['subnet'])
        if peer_subnet.version != network.version or not peer_subnet.subnet_of(network):
            checker.problem(path + '.subnet', '%s is not inside the overlay network %s' % (peer_subnet, network))
        if subnet is not None and peer_subnet.overlaps(subnet):
            checker.problem(path + '.subnet', '%s overlaps this host\'s subnet %s' % (peer_subnet, subnet))
        peer_underlay = ipaddress.ip_address(peer['underlay'])
        if peer_underlay.version != underlay.version:
            checker.problem(path + '.underlay', '%s%s is IPv%d but this host\'s underlay %s is IPv%d: a group has one'
                            ' underlay family, switch every host at once (mesh_node_underlay_family)'
                            % ('%s: ' % peer['name'] if peer.get('name') else '', peer_underlay, peer_underlay.version,
                               underlay, underlay.version))
        if peer.get('ipv6_subnet') and data.get('ipv6_network'):
            peer_subnet6 = ipaddress.ip_network(peer['ipv6_subnet'])
            if not peer_subnet6.subnet_of(ipaddress.ip_network(data['ipv6_network'])):
                checker.problem(path + '.ipv6_subnet', '%s is not inside the IPv6 overlay network %s' % (peer_subnet6, data['ipv6_network']))
            elif data.get('ipv6_subnet') and peer_subnet6.overlaps(ipaddress.ip_network(data['ipv6_subnet'])):
                checker.problem(path + '.ipv6_subnet', '%s overlaps this host\'s IPv6 subnet %s' % (peer_subnet6, data['ipv6_subnet']))
        identities = [('subnet', str(peer_subnet)), ('underlay', str(peer_underlay))]
        if peer.get('ipv6_subnet'):
            identities.append(('ipv6_subnet', str(ipaddress.ip_network(peer['ipv6_subnet']))))
        identities += [(key, peer[key]) for key in sorted(backend.PEER_OPTIONS) if peer.get(key)]
        for key, value in identities:
            other = seen.get((key, value))
            if other is not None:
                checker.problem('%s.%s' % (path, key), '%s %s is also used by %s' % (key, value, other))
            seen[(key, value)] = _label(peer)
    if ('underlay', str(underlay)) in seen:
        checker.problem('underlay.address', '%s is also the underlay of %s' % (underlay, seen[('underlay', str(underlay))]))
    underlay_network = data['underlay'].get('network')
    if underlay_network and underlay not in ipaddress.ip_network(underlay_network):
        checker.problem('underlay.network', '%s does not hold the underlay address %s' % (underlay_network, underlay))
    backend(data['backend']).check(data, checker.problem)


def _check_ipv6(checker, data, backend, subnet):
    """A dual-stack overlay: the IPv6 subnet inside the IPv6 network, large enough, and a backend that carries it."""
    network6 = ipaddress.ip_network(data['ipv6_network']) if data.get('ipv6_network') else None
    subnet6 = ipaddress.ip_network(data['ipv6_subnet']) if data.get('ipv6_subnet') else None
    if network6 is None:
        if subnet6 is not None:
            checker.problem('ipv6_subnet', '%s given without ipv6_network' % subnet6)
        return
    if not backend.DUAL_STACK:
        capable = [name for name in registry.names() if registry.get(name).DUAL_STACK]
        checker.problem('ipv6_network', 'the %s backend carries IPv4 only; a dual-stack overlay needs %s or %s'
                        % (backend.name, ', '.join(capable[:-1]), capable[-1]))
    if subnet6 is None:
        if subnet is not None:  # the lease is known: it must have both families
            checker.problem('ipv6_subnet', 'missing: the lease has no IPv6 subnet of %s' % network6)
    elif not subnet6.subnet_of(network6):
        checker.problem('ipv6_subnet', '%s is not inside the IPv6 overlay network %s' % (subnet6, network6))
    elif subnet6.num_addresses < 4:
        checker.problem('ipv6_subnet', '%s is too small for a bridge gateway and containers' % subnet6)


def _resolve_mtu(checker, data, backend, underlay_mtu, warnings):
    version = ipaddress.ip_address(data['underlay']['address']).version
    overhead = backend.OVERHEAD[version]
    if data['underlay'].get('mtu') is None and underlay_mtu is not None:
        data['underlay']['mtu'] = underlay_mtu(data['underlay'])
    link_mtu = data['underlay'].get('mtu')
    if link_mtu is None:
        return  # checked where the underlay is known
    largest = link_mtu - overhead
    if data.get('mtu') is None:
        data['mtu'] = largest
    elif data['mtu'] > largest:
        checker.problem('mtu', '%d is larger than the underlay MTU %d minus the %s overhead %d (%d at most)'
                        % (data['mtu'], link_mtu, backend.name, overhead, largest))
        return
    if data['mtu'] < 68:
        checker.problem('mtu', 'the underlay MTU %d minus the %s overhead %d leaves %d, below the IPv4 minimum 68'
                        % (link_mtu, backend.name, overhead, data['mtu']))
    elif data['mtu'] < IPV6_MIN_MTU:
        warnings.append('mtu %d is below %d: the kernel disables IPv6 on the overlay devices' % (data['mtu'], IPV6_MIN_MTU))


def saved_backend(data):
    """The Backend instance a saved contract describes, or None (unknown or damaged record)."""
    params = (data or {}).get('backend') or {}
    backend = registry.get(params.get('type'))
    # host-gw has no device of its own: its routes are what it leaves behind
    if backend is None or ('device' in backend.OPTIONS and not params.get('device')):
        return None
    return backend(params)


def removal_record(raw):
    """What a (partial) contract names that a node makes: bridge, backend device, file paths; and the agent's
    settings (a change restarts it)."""
    keys = ('bridge', 'backend', 'subnet_env', 'cni', 'route_protocol', 'network', 'ipv6_network', 'agent')
    checker = _spec.Validator()
    data = checker.mapping(dict((key, raw[key]) for key in keys if raw.get(key) is not None),
                           dict((key, dict(OPTIONS[key], required=False)) for key in keys))
    if data is not None:
        _normalize_backend(checker, data, None)
    checker.raise_problems()
    return data
