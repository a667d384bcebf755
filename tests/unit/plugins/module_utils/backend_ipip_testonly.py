# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A backend that exists only for the tests (shipped nowhere, registered by the test: register()): proof that
adding a backend is its own file and one registry line (issue 23).

It is shaped like an ipip backend: its packets are IP protocol 4 (no port), so its firewall need is an IP
protocol, and it publishes a field no shipped backend has, ``tunnel_id`` (an identifier of the host's tunnel
endpoint derived from its machine id, as vxlan's VTEP MAC is: two hosts with one are refused). Its device is
a link of kind ``ifb``, the one packet-sink kind the lab's kernel has beside bridge, veth and vxlan (it has no
ipip, gre or dummy): the overlay network is routed into it with the collection's route protocol, as
WireGuard's device is. It moves no traffic; what it proves is the interface: the lease file and etcd carry
its field, the nftables table gets its rules, the node engine applies it and tears it down.
"""

from __future__ import annotations

import hashlib
import re

from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_links as links
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_routes as routes
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_validate as validate
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_wire as wire
from ansible_collections.overlay.mesh.plugins.module_utils._backends import registry
from ansible_collections.overlay.mesh.plugins.module_utils._backends.base import Backend as BaseBackend
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_changes import EngineError
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_compat import open_iproute

NAME = 'test-ipip'
DEFAULT_DEVICE = 'mesh-tip'
IPPROTO_IPIP = 4
_TUNNEL_ID = re.compile(r'^[0-9a-f]{16}$')


def _tunnel_id(value, what='tunnel_id'):
    text = str(value).strip().lower()
    if not _TUNNEL_ID.match(text):
        raise validate.ValidationError('%s %r is not a tunnel id (16 hexadecimal digits)' % (what, value))
    return text


class TunnelReconciler(links.LinkReconciler):
    """The backend's device: its MTU, up."""

    kind = 'ifb'

    def __init__(self, ipr, name, mtu=None):
        super(TunnelReconciler, self).__init__(ipr, name)
        self.mtu = mtu

    def desired_link(self):
        return {'name': self.name, 'kind': self.kind, 'mtu': self.mtu, 'mac': None, 'up': True}

    def create(self):
        links.call('creating %s device %s' % (self.kind, self.name), self.ipr.link, 'add', ifname=self.name, kind=self.kind)
        if self.mtu:
            self._set('setting MTU %s' % self.mtu, mtu=self.mtu)
        self._set('bringing up', state='up')


class Backend(BaseBackend):
    name = NAME
    OPTIONS = {'device': {'type': 'str', 'default': DEFAULT_DEVICE, 'check': validate.ifname},
               'tunnel_id': {'type': 'str', 'check': _tunnel_id}}
    PEER_OPTIONS = {'tunnel_id': {'type': 'str', 'required': True, 'check': _tunnel_id}}
    UNIQUE_PEER_OPTIONS = {'tunnel_id': 'tunnel id (a cloned /etc/machine-id?)'}
    IP_PROTOCOLS = (IPPROTO_IPIP,)
    OVERHEAD = {4: 20, 6: 40}

    @classmethod
    def normalize(cls, params, machine_id=None):
        if not params.get('tunnel_id') and machine_id:
            params['tunnel_id'] = hashlib.sha256(('%s:%s' % (machine_id, NAME)).encode()).hexdigest()[:16]
        return params

    def publish(self):
        return {'tunnel_id': self.params['tunnel_id']}

    @classmethod
    def flannel_data(cls, record, settings):
        return {'TunnelID': record['tunnel_id']} if record.get('tunnel_id') else {}

    def apply(self, node, host):
        if node.underlay_version != 4:
            raise EngineError('%s: an IPv4 underlay is needed (IP protocol 4 is IPv4 in IPv4)' % NAME)
        ipr = open_iproute()
        try:
            host.report.changeset(TunnelReconciler(ipr, self.device, mtu=node.mtu).reconcile('present', check_mode=host.check_mode))
            link = links.read_link(ipr, self.device)
        finally:
            ipr.close()
        with wire.NetlinkRoute() as nl:
            host.report.changeset(routes.reconcile_device_route(nl, node.network, self.device, link['index'] if link else None,
                                                                node.route_protocol, check_mode=host.check_mode))

    def teardown(self, host, record, strict=False):
        """Delete the device (the overlay network's route goes with it)."""
        ipr = open_iproute()
        try:
            link = links.read_link(ipr, self.device)
            if link is None or link['kind'] != TunnelReconciler.kind:
                return
            host.report.changeset(TunnelReconciler(ipr, self.device).reconcile('absent', check_mode=host.check_mode))
        finally:
            ipr.close()


def register(monkeypatch=None):
    """The one registry line (a test's monkeypatch takes it out again)."""
    (monkeypatch.setitem if monkeypatch else dict.__setitem__)(registry.BACKENDS, NAME, Backend)
