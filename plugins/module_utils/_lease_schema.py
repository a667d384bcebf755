# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Leases in etcd, in flannel's key schema: what a key and its value say, for the controller's lease store
(plugin_utils/_registry.py) and the node agent on the hosts (_agent.py) alike. See docs/leases.md.

Each lease is ``<prefix>/subnets/10.244.1.0-24`` (dual stack ``10.244.1.0-24&fd00:244:0:1::-64``, IPv6 only
``0.0.0.0-0&fd00:244:0:1::-64``) with flannel's JSON value plus an ``OverlayMesh`` member (flannel ignores
unknown members) naming the inventory host and carrying what the host publishes to its peers. Keys and values
are as flanneld writes them: flannel's pkg/subnet/subnet.go (MakeSubnetKey, subnetRegex), pkg/lease/lease.go
(LeaseAttrs) and pkg/backend/vxlan/vxlan.go (newSubnetAttrs, VXLANConfig). What a backend publishes is opaque
here: the backend says what goes into flannel's ``BackendData`` (Backend.flannel_data).
"""

from __future__ import annotations

import ipaddress
import json

from ansible_collections.overlay.mesh.plugins.module_utils._backends import registry

OURS = 'OverlayMesh'
FIELD_V4 = 'subnet'
FIELD_V6 = 'ipv6_subnet'
# flannel's MakeSubnetKey always starts with an IPv4 subnet: an IPv6-only lease has the empty one, 0.0.0.0/0.
NO_IPV4 = '0.0.0.0-0'


def _key_part(text):
    """``10.244.1.0/24`` -> ``10.244.1.0-24``, as flannel names a subnet in a key."""
    return text.replace('/', '-')


def subnet_key(prefix, record):
    """The key of a lease as flannel's MakeSubnetKey writes it: its IPv4 subnet (``0.0.0.0-0`` when it has
    none), then ``&`` its IPv6 subnet when it has one."""
    name = _key_part(record[FIELD_V4]) if record.get(FIELD_V4) else NO_IPV4
    if record.get(FIELD_V6):
        name += '&' + _key_part(record[FIELD_V6])
    return '%s/subnets/%s' % (prefix, name)


def _cidr_version(text):
    """The IP version of ``address/length``; ValueError when it is not one."""
    addr, sep, plen = text.partition('/')
    try:
        version = ipaddress.ip_address(addr).version
    except ValueError:
        version = None
    if not sep or version is None or not (plen.isascii() and plen.isdigit()) or int(plen) > (32 if version == 4 else 128):
        raise ValueError('%r is not a subnet in CIDR notation (address/length)' % (text,))
    return version


def parse_subnet_key(name):
    """Record {subnet, ipv6_subnet} of a key's last part (an IPv4 subnet, then optionally ``&`` an IPv6 one,
    as flannel's ParseSubnetKey reads it; ``0.0.0.0-0`` is no IPv4 subnet); ValueError when it is not one of flannel's."""
    rec = {}
    parts = name.split('&')
    if len(parts) > 2:
        raise ValueError('%r is not a subnet key (IPv4 subnet, optionally & an IPv6 subnet)' % name)
    for number, part in enumerate(parts):
        addr, sep, plen = part.rpartition('-')
        if not sep:
            raise ValueError('%r is not a subnet key (address-length)' % name)
        version = _cidr_version('%s/%s' % (addr, plen))
        if version != (4 if number == 0 else 6):
            raise ValueError('%r is not a subnet key (flannel\'s names an IPv4 subnet first, then & an IPv6 one)' % name)
        if part != NO_IPV4:
            rec[FIELD_V4 if version == 4 else FIELD_V6] = '%s/%s' % (addr, plen)
    if not rec:
        raise ValueError('%r names no subnet' % name)
    return rec


def backend_settings(backend):
    """What the lease store needs of the backend's options (the contract's ``backend``): {type, vni, port,
    direct_routing}, the last three as flannel's config of that backend has them (Backend.flannel_config)."""
    backend = dict(backend or {})
    settings = {'type': backend.get('type') or registry.DEFAULT, 'vni': None, 'port': None, 'direct_routing': False}
    kind = registry.get(settings['type'])
    if kind is not None:
        settings.update(kind.flannel_config(backend))
    return settings


def published(record):
    """What a host publishes in its lease, the subnets left out (they are in the key): its address and its
    backend's data, kept as the backend gave it."""
    return dict((key, value) for key, value in record.items() if key not in (FIELD_V4, FIELD_V6) and value)


def lease_value(host, record, backend):
    """flannel's lease JSON for one of our hosts plus OverlayMesh, as flanneld's backends write LeaseAttrs: ``PublicIP``
    (always: flannel's ip.IP4 is no pointer; ``0.0.0.0`` without an IPv4 underlay) with ``BackendData`` for the IPv4
    subnet; with an IPv6 subnet also ``PublicIPv6`` with ``BackendV6Data`` (flanneld's dual stack decodes both, and
    skips the whole lease when it cannot). Our one VTEP serves both families over the one underlay address, so both
    members carry the same data; the family without an underlay address gets the unspecified address
    (flanneld reaches that part of the lease nowhere, and the rest of it as usual). ``backend``: backend_settings()."""
    underlay = record.get('underlay') or ''
    value = {'PublicIP': underlay if underlay and ':' not in underlay else '0.0.0.0'}
    if ':' in underlay or record.get(FIELD_V6):
        value['PublicIPv6'] = underlay if ':' in underlay else '::'
    value['BackendType'] = backend['type']
    kind = registry.get(backend['type'])
    data = kind.flannel_data(record, backend) if kind is not None else {}
    if record.get(FIELD_V4) or not record.get(FIELD_V6):
        value['BackendData'] = data or None
    if record.get(FIELD_V6):
        value['BackendV6Data'] = data or None
    own = {'host': host}
    own.update(sorted(published(record).items()))
    value[OURS] = own
    return json.dumps(value, sort_keys=False, separators=(',', ':'))


def loads(value):
    """A lease's (or flannel's config's) JSON; None when it is not JSON. ValueError when it nests too deeply for the
    parser (thousands of brackets: Python's json raises RecursionError, which no reader of a lease expects)."""
    try:
        return json.loads(value)
    except RecursionError:
        raise ValueError('its value is JSON nested too deeply to read') from None
    except ValueError:
        return None


def decode(key, value, subnets_prefix):
    """One key under ``<prefix>/subnets/`` as (host, record): host is the inventory name of one of our leases,
    None for a lease that is not ours (flanneld's); record has the subnets of the key, and for ours what the
    host publishes. ValueError when the key is not one of flannel's, its value nests too deeply to read, or it names a
    host that is not printable text; data is the value's JSON (None: not JSON)."""
    record = parse_subnet_key(key[len(subnets_prefix):])
    data = loads(value)
    own = data.get(OURS) if isinstance(data, dict) else None
    if not isinstance(own, dict) or not isinstance(own.get('host'), str):
        return None, record, data
    if not own['host'].isprintable():  # a lone surrogate (no UTF-8 for it), a control character
        raise ValueError('the host name %s is not printable text' % ascii(own['host']))
    record.update(published(dict((k, v) for k, v in own.items() if k != 'host')))
    return own['host'], record, data


def contract_peers(host, leases, members, backend):
    """Every other member with a complete lease record, as node contract peers (sorted by name): the controller
    builds a contract's peers with this, and the node agent on the host too, so both give the same list."""
    needed = ['subnet', 'underlay'] + sorted(key for key, option in backend.PEER_OPTIONS.items() if option.get('required'))
    peers = []
    for name in sorted(set(members)):
        record = leases.get(name) or {}
        if name == host or not all(record.get(key) for key in needed):
            continue  # a host that never converged has no underlay or backend data yet
        peer = {'name': name}
        peer.update((key, record[key]) for key in needed + sorted(backend.PEER_OPTIONS) + ['ipv6_subnet'] if record.get(key))
        peers.append(peer)
    return peers


def distinct_peers(peers, backend, first=None, own_address=None):
    """(kept, refused) of peers two of which may claim the same subnet, underlay address or unique published field
    (Backend.UNIQUE_PEER_OPTIONS: a VTEP MAC): a host renamed in the inventory leaves a lease with its old name, and
    the node contract refuses both. The claim goes to the peer named first in ``first`` (default: the order given),
    and to none that has this host's own address. ``kept`` keeps the given order; ``refused``: [(peer, why)]."""
    rank = {}
    for name in (first if first is not None else [peer['name'] for peer in peers]):
        rank.setdefault(name, len(rank))
    taken, winners, refused = {}, set(), []
    for peer in sorted(peers, key=lambda peer: rank.get(peer['name'], len(rank))):
        claims = [('subnet', peer.get('subnet')), ('subnet', peer.get('ipv6_subnet')), ('address', peer.get('underlay'))]
        claims += [(key, peer.get(key)) for key in sorted(backend.UNIQUE_PEER_OPTIONS)]
        clash = [(what, value, taken[(what, value)]) for what, value in claims if value and (what, value) in taken]
        if own_address and peer.get('underlay') == own_address:
            clash.append(('address', own_address, 'this host'))
        if clash:
            refused.append((peer, '; '.join("%s %s is also %s's" % one for one in clash)))
            continue
        taken.update(((what, value), peer['name']) for what, value in claims if value)
        winners.add(peer['name'])
    return [peer for peer in peers if peer['name'] in winners], refused
