# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""What every backend (data path between hosts) provides to the node apply.

A backend is one file in this folder, listed in registry.py (a module of its own may name the
other modules of this folder it needs in ENGINE_MODULES, so that the engine installed on the host
carries them). It owns its options (the
``backend`` mapping of the node contract), the data it needs from each peer, its
encapsulation overhead, its device and ports, how it is reconciled and torn down. The role,
the node module and the boot-time apply know backends only through this interface.
"""

from __future__ import annotations


class Backend(object):
    """Base class: one instance per applied node, with its normalised options in ``params``."""

    name = None
    # backend.<option> of the node contract (a plain spec, see _spec.py); 'type' is implied.
    OPTIONS = {}
    # What each peer entry must carry for this backend: the fields it publishes in every host's lease record
    # (plain text values; the lease stores keep them opaque and take a host's value only when its 'check' passes).
    PEER_OPTIONS = {}
    # Published fields no two hosts may share, each with what to call it in the error (a cloned secret, a copied id).
    UNIQUE_PEER_OPTIONS = {}
    # IP protocols (numbers) of this backend's packets that have no port (ipip 4, gre 47, esp 50): only peers may
    # send them, as with its ports (see firewall()).
    IP_PROTOCOLS = ()
    # Bytes added per packet, by underlay IP version: the overlay MTU is the underlay's minus this.
    OVERHEAD = {4: 0, 6: 0}
    # Options every host of the overlay must agree on (the role refuses a group that does not).
    GROUP_OPTIONS = ()
    # Options the host fills in from what it has (WireGuard's public key), never the role's variables.
    HOST_OPTIONS = ()
    # The backend has a secret generated on the host (a WireGuard key): the role runs overlay.mesh.node_keys
    # after every check and before the leases are written, so peers learn the public key in the same run.
    KEYED = False
    # Link kinds of this backend's own devices that carry per-peer routes of our route protocol (a VTEP's):
    # the direct routes (_netlink_routes) of any backend never take those for theirs.
    PEER_ROUTE_KINDS = ()
    # The backend reaches a peer at an address other than the peer's own (a public address, behind NAT).
    PUBLIC_ADDRESS = True
    # The backend carries a dual-stack overlay (ipv6_network): IPv6 subnets to peers beside IPv4 ones.
    DUAL_STACK = False

    def __init__(self, params):
        self.params = params

    @classmethod
    def normalize(cls, params, machine_id=None):
        """Fill defaults that depend on other options (device name, derived MAC); returns params."""
        return params

    @classmethod
    def release_0_1_device(cls, state):
        """The device a host converged by release 0.1 has for this backend, from that release's state.json."""
        return None

    @classmethod
    def host_identity(cls, params):
        """HOST_OPTIONS values the host has now (read only): {} when it has none yet."""
        return {}

    @classmethod
    def check_host(cls, params):
        """Raise (EngineError) when this host cannot run the backend: called before any change."""

    @classmethod
    def ensure_keys(cls, host, params, rotate=False):
        """Create the host's secret when missing (or a new one: rotate); returns what the host publishes."""
        return {}

    @property
    def device(self):
        """The device the overlay network is routed into; None when the backend has none of its own."""
        return self.params.get('device')

    def check(self, data, problem):
        """Checks across the contract (problem(path, message) for each); data is the normalised contract."""

    def ports(self):
        """[(protocol, port)] this backend receives on; only peers may send to them."""
        return []

    def firewall(self):
        """What only peers may send to this host, as _nftables.render takes it: the ports ((protocol, port)),
        then the IP protocols (('ip', number))."""
        return list(self.ports()) + [('ip', number) for number in self.IP_PROTOCOLS]

    @classmethod
    def check_published(cls, key, value):
        """A value a host published in its lease record for the field ``key`` (one of PEER_OPTIONS), as its peers
        take it (the option's check: normalised); ValueError naming the field when it is not one."""
        option = cls.PEER_OPTIONS[key]
        if not isinstance(value, str):
            raise ValueError('%s %r is not text' % (key, value))
        return option['check'](value, key) if option.get('check') else value

    def publish(self):
        """What peers need to know of this host (its lease record carries it)."""
        return {}

    @classmethod
    def flannel_config(cls, params):
        """What flannel's network config (``<prefix>/config``, its ``Backend``) says of this backend's options:
        {vni, port, direct_routing}, each left out when flannel's backend of this name has none."""
        return {}

    @classmethod
    def flannel_data(cls, record, settings):
        """flannel's ``BackendData`` for a lease record of this backend (what flanneld's backend of this name
        writes); settings: the lease store's {type, vni, port, direct_routing}."""
        return {}

    def same_instance(self, other):
        """Whether another saved params mapping describes the same device (nothing to tear down)."""
        return other.get('type') == self.name and other.get('device') == self.device

    def apply(self, node, host):
        """Reconcile the data path to every peer on the host; changes go to host.report."""
        raise NotImplementedError

    def apply_peers(self, node, host, changed, removed):
        """Reconcile the data path to some peers only, for the node agent's one-lease changes: ``changed``, the
        contract's entries of peers added or changed; ``removed``, the previous entries of peers gone or changed.
        node.peers is already the new list. This default reconciles every peer (apply); a backend whose
        apply reads the state of every peer does better."""
        self.apply(node, host)

    def teardown(self, host, record, strict=False):
        """Remove everything of this backend instance that is on the host. record: the contract (or its
        names, _node_spec.removal_record) it was applied with. strict: the instance is only named by the
        caller (not recorded by an earlier apply); remove only what is provably ours."""
        raise NotImplementedError
