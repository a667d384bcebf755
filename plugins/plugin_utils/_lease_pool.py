# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The overlay network as a pool of subnets, and the checked allocation parameters (Config).

Subnets are handled as integer indexes inside a pool (the overlay network cut into subnets of one
length), so allocating for tens of thousands of hosts never builds ``ipaddress`` objects for every
free subnet. Pure logic (no Ansible imports); the allocation is _leases.py. See docs/leases.md.
"""

from __future__ import annotations

import ipaddress
import socket

from ansible_collections.overlay.mesh.plugins.module_utils._errors import OverlayMeshError

DEFAULT_NETWORK = '10.244.0.0/16'
# Record fields of a lease's subnets, by IP version.
FIELD_V4 = 'subnet'
FIELD_V6 = 'ipv6_subnet'


class LeaseError(OverlayMeshError):
    """One or more problems; ``problems`` holds one line per problem (host and field named)."""

    def __init__(self, problems):
        self.problems = list(problems)
        count = len(self.problems)
        head = 'subnet leases: %d problem%s' % (count, '' if count == 1 else 's')
        super().__init__(head + ':\n' + '\n'.join('- ' + p for p in self.problems))


class Pool:
    """One overlay network cut into subnets of one length; subnets are numbered from 0."""

    __slots__ = ('field', 'network', 'subnet_len', 'shift', 'base', 'count', 'min_idx', 'max_idx', '_addr')

    def __init__(self, network, subnet_len, min_idx, max_idx):
        self.field = FIELD_V4 if network.version == 4 else FIELD_V6
        self.network = network
        self.subnet_len = subnet_len
        self.shift = network.max_prefixlen - subnet_len
        self.base = int(network.network_address)
        self.count = 1 << (subnet_len - network.prefixlen)
        self.min_idx = min_idx
        self.max_idx = max_idx
        self._addr = ipaddress.IPv4Address if network.version == 4 else ipaddress.IPv6Address

    @property
    def version(self):
        return self.network.version

    def subnet(self, idx):
        """Text of subnet number ``idx`` (``10.244.3.0/24``)."""
        return '%s/%d' % (self._addr(self.base + (idx << self.shift)), self.subnet_len)

    def index(self, value):
        """Index of the subnet written as ``value``; ValueError says what is wrong with it."""
        text = _text(value)
        version, addr, plen = _parse_cidr(text)
        if version != self.version:
            raise ValueError('%s is IPv%d but network %s is IPv%d' % (text, version, self.network, self.version))
        offset = addr - self.base
        if offset < 0 or offset >> self.shift >= self.count:
            raise ValueError('%s lies outside network %s' % (text, self.network))
        if plen != self.subnet_len:
            raise ValueError('%s has length /%d, subnet length is /%d' % (text, plen, self.subnet_len))
        if offset & ((1 << self.shift) - 1):
            raise ValueError('%s is misaligned: host bits are set (a /%d starts at %s)'
                             % (text, self.subnet_len, _ip_text(version, addr >> self.shift << self.shift)))
        return offset >> self.shift

    def overlaps(self, start, end):
        """Whether the address range [start, end] meets this pool's network."""
        return start < self.base + (self.count << self.shift) and self.base <= end

    def bound(self, value, name):
        """Index of a subnet_min/subnet_max value, given as a subnet or its first address."""
        text = _text(value)
        if '/' not in text:
            text = '%s/%d' % (text, self.subnet_len)
        try:
            return self.index(text)
        except ValueError as exc:
            raise ValueError('%s: %s' % (name, exc)) from None


class Config:
    """The validated allocation parameters: one or two pools (``subnet`` and ``ipv6_subnet``)."""

    def __init__(self, pools):
        self.pools = pools

    def pool_for(self, version):
        for pool in self.pools:
            if pool.version == version:
                return pool
        return None

    def header(self):
        """Top-level keys written to the lease file, describing the pools."""
        out = {}
        for pool in self.pools:
            prefix = '' if pool.version == 4 else 'ipv6_'
            out[prefix + 'network'] = str(pool.network)
            out[prefix + 'subnet_len'] = pool.subnet_len
        return out


def _text(value):
    if not isinstance(value, str):
        raise ValueError('%r is not a string' % (value,))
    return value.strip()


def _parse_ip(text):
    """(version, integer) of an IP address; strict (inet_pton), and far faster than ``ipaddress``."""
    for family, version in ((socket.AF_INET, 4), (socket.AF_INET6, 6)):
        try:
            return version, int.from_bytes(socket.inet_pton(family, text), 'big')
        except (OSError, ValueError):
            continue
    raise ValueError('%r is not an IP address' % (text,))


def _parse_cidr(text):
    """(version, address integer, prefix length) of ``address/length``."""
    addr_text, sep, len_text = text.partition('/')
    try:
        version, addr = _parse_ip(addr_text)
    except ValueError:
        version = None
    if not sep or version is None or not (len_text.isascii() and len_text.isdigit()) \
            or int(len_text) > (32 if version == 4 else 128):
        raise ValueError('%r is not a subnet in CIDR notation (address/length)' % (text,))
    return version, addr, int(len_text)


def _ip_text(version, addr):
    return str(ipaddress.IPv4Address(addr) if version == 4 else ipaddress.IPv6Address(addr))


def default_subnet_len(network):
    """flannel's default: IPv4 /24 for networks of /22 or larger, else prefix + 2; IPv6 /64, or prefix + 2 past /62."""
    if network.version == 4:
        return 24 if network.prefixlen <= 22 else network.prefixlen + 2
    return 64 if network.prefixlen <= 62 else network.prefixlen + 2


def _make_pool(prefix, network, subnet_len, subnet_min, subnet_max, problems):
    name = prefix + 'network'
    try:
        net = ipaddress.ip_network(_text(network))
    except ValueError as exc:
        problems.append('%s: %r is not a network in CIDR notation (%s)' % (name, network, exc))
        return None
    if prefix and net.version != 6:
        problems.append('%s: %s is not an IPv6 network' % (name, net))
        return None
    longest = 30 if net.version == 4 else 126
    if net.prefixlen + 2 > longest:
        problems.append('%s: %s is too small: the network must hold at least four subnets of at most /%d, so at most /%d'
                        % (name, net, longest, longest - 2))
        return None
    if subnet_len is None:
        subnet_len = default_subnet_len(net)
    elif isinstance(subnet_len, bool) or not isinstance(subnet_len, int):
        problems.append('%ssubnet_len: %r is not an integer' % (prefix, subnet_len))
        return None
    elif not net.prefixlen + 2 <= subnet_len <= longest:
        problems.append('%ssubnet_len: /%d is out of range: with network %s it must be /%d to /%d'
                        % (prefix, subnet_len, net, net.prefixlen + 2, longest))
        return None
    pool = Pool(net, subnet_len, 1, (1 << (subnet_len - net.prefixlen)) - 1)
    ok = True
    for key, value in (('subnet_min', subnet_min), ('subnet_max', subnet_max)):
        if value is None:
            continue
        try:
            idx = pool.bound(value, prefix + key)
        except ValueError as exc:
            problems.append(str(exc))
            ok = False
            continue
        setattr(pool, 'min_idx' if key == 'subnet_min' else 'max_idx', idx)
    if ok and pool.min_idx > pool.max_idx:
        problems.append('%ssubnet_min %s is above %ssubnet_max %s'
                        % (prefix, pool.subnet(pool.min_idx), prefix, pool.subnet(pool.max_idx)))
        return None
    return pool if ok else None


def make_config(network=DEFAULT_NETWORK, subnet_len=None, subnet_min=None, subnet_max=None,
                ipv6_network=None, ipv6_subnet_len=None, ipv6_subnet_min=None, ipv6_subnet_max=None):
    """Validate the allocation parameters; raise LeaseError listing every problem.

    ``network`` may be IPv4 or IPv6 (an IPv6-only overlay); ``ipv6_network`` adds an IPv6 pool
    beside an IPv4 ``network`` (dual stack, as flannel's IPv6Network).
    """
    problems = []
    pools = []
    if network is None:
        problems.append('network: required')
    else:
        pool = _make_pool('', network, subnet_len, subnet_min, subnet_max, problems)
        if pool is not None:
            pools.append(pool)
    if ipv6_network is not None:
        pool6 = _make_pool('ipv6_', ipv6_network, ipv6_subnet_len, ipv6_subnet_min, ipv6_subnet_max, problems)
        if pool6 is not None:
            if pools and pools[0].version == 6:
                problems.append('ipv6_network: network %s is already IPv6; ipv6_network adds IPv6 to an IPv4 network' % pools[0].network)
            else:
                pools.append(pool6)
    elif any(v is not None for v in (ipv6_subnet_len, ipv6_subnet_min, ipv6_subnet_max)):
        problems.append('ipv6_subnet_len, ipv6_subnet_min and ipv6_subnet_max need ipv6_network')
    if problems:
        raise LeaseError(problems)
    return Config(pools)
