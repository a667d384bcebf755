# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Subnet leases of the overlay network, computed on the controller from the inventory.

Pure logic (no Ansible imports): configuration checks, allocation, merging with the
records the hosts keep, release, the lease file (load, render, atomic save, lock) and
flannel's ``subnet.env`` text.  See docs/leases.md.

Subnets are handled as integer indexes inside a pool (the overlay network cut into
subnets of one length), so allocating for tens of thousands of hosts never builds
``ipaddress`` objects for every free subnet.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import fcntl
import functools
import ipaddress
import json
import os
import re
import socket
import tempfile
import time

import yaml

from ansible_collections.overlay.mesh.plugins.module_utils._errors import OverlayMeshError

try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - libyaml missing
    from yaml import SafeLoader as _SafeLoader


class _YamlLoader(_SafeLoader):  # pylint: disable=too-many-ancestors
    """A safe loader that refuses a key written twice (a host with two entries) instead of keeping the last."""


def _construct_unique_mapping(loader, node):
    seen = set()
    for key_node, dummy in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, 'key %r appears twice' % (key,), key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_YamlLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)

DEFAULT_NETWORK = '10.244.0.0/16'
LEASE_FILE_NAME = '.overlay-mesh-leases.yml'
FORMAT_VERSION = 1  # of the records (the lease file's format 1, and etcd's values)
# The lease file's format: 2 ends with a line counting its leases (END_LINE), so that a file cut
# short - even exactly at a line end - is told from a whole one. Format 1 files (no such line)
# are still read; the next change writes format 2.
FILE_FORMAT = 2
END_LINE = '# end of leases: %d'
_END_LINE_RE = re.compile(r'^# end of leases: (\d+)$')

# Record fields of one lease, in the order they are written.
FIELD_V4 = 'subnet'
FIELD_V6 = 'ipv6_subnet'
RECORD_FIELDS = (FIELD_V4, FIELD_V6, 'underlay', 'vtep_mac', 'public_key')
# The underlay address was called 'address' in records of release 0.1; still read.
LEGACY_FIELDS = {'address': 'underlay'}

_MAC_RE = re.compile(r'^[0-9a-f]{2}([:-]?)[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}$')
_PLAIN_KEY_RE = re.compile(r'^[A-Za-z][A-Za-z0-9_.-]*$')
_YAML_UNSAFE_RE = re.compile('[\x7f-\x9f\u2028\u2029\ufffe\uffff\ud800-\udfff]')
# Words YAML 1.1 would not read back as strings.
_YAML_WORDS = frozenset(('y', 'n', 'yes', 'no', 'on', 'off', 'true', 'false', 'null'))


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


def _normalize_mac(value):
    text = _text(value).lower()
    if not _MAC_RE.fullmatch(text):
        raise ValueError('%r is not a MAC address' % (text,))
    digits = text.replace(':', '').replace('-', '')
    return ':'.join(digits[i:i + 2] for i in range(0, 12, 2))


def _normalize_public_key(value):
    """A WireGuard public key: base64 of 32 bytes (44 characters, as wg(8) prints it)."""
    text = _text(value).strip()
    try:
        # canonical only (as wg(8) prints keys): a key is compared as text across hosts
        key = base64.b64decode(text, validate=True)
        if len(text) != 44 or len(key) != 32 or base64.b64encode(key).decode() != text:
            raise ValueError
    except (ValueError, binascii.Error):
        raise ValueError('%r is not a WireGuard public key (base64 of 32 bytes)' % (text,))
    return text


# Published per-peer fields (what backends publish) and how each is normalised.
PEER_FIELDS = {'vtep_mac': _normalize_mac, 'public_key': _normalize_public_key}


def _normalize_address(value):
    text = _text(value)
    version, addr = _parse_ip(text)
    return text if version == 4 else _ip_text(version, addr)


def parse_subnet_env(text):
    """Read a flannel ``subnet.env`` back into a host record (``subnet``/``ipv6_subnet``, ``network``/``ipv6_network``).

    flannel itself re-uses the subnet found in an old subnet.env; the hosts' copies of the
    file are therefore a record the lease file can be rebuilt from.
    """
    values = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition('=')
        if sep:
            values[key.strip()] = value.strip().strip('"\'')
    record = {}
    for net_key, sub_key in (('FLANNEL_NETWORK', 'FLANNEL_SUBNET'), ('FLANNEL_IPV6_NETWORK', 'FLANNEL_IPV6_SUBNET')):
        if sub_key not in values:
            continue
        iface = ipaddress.ip_interface(values[sub_key])
        field = FIELD_V4 if iface.version == 4 else FIELD_V6
        record[field] = str(iface.network)
        if net_key in values:
            record['ipv6_network' if field == FIELD_V6 else 'network'] = values[net_key]
    return record


class _Problems(list):
    def host(self, host, field, msg):
        self.append('host %s: %s: %s' % (host, field, msg))


def _check_record(host, record, source, problems):
    """A lease/host record as a dict; a problem (and None) when it is not one."""
    if isinstance(record, str) and source == 'host_records':
        try:
            return parse_subnet_env(record)
        except ValueError as exc:
            problems.host(host, source, 'unreadable subnet.env text (%s)' % exc)
            return None
    if not isinstance(record, dict):
        problems.host(host, source, 'expected a mapping with subnet, underlay, vtep_mac, public_key; got %r' % (record,))
        return None
    for old, new in LEGACY_FIELDS.items():
        if old in record and new not in record:
            record = dict(record)
            record[new] = record.pop(old)
    return record


def _claim_of(pool, host, record, source, problems):
    """Index claimed by ``record`` in ``pool`` or None; problems name host and source."""
    value = record.get(pool.field)
    if value is None:
        return None
    try:
        return pool.index(value)
    except ValueError as exc:
        problems.host(host, '%s %s' % (source, pool.field), str(exc))
        return None


def _record_network_matches(pool, record):
    """False when a host record says it was written for another network (so it is stale)."""
    net = record.get('network' if pool.version == 4 else 'ipv6_network')
    if net is None:
        return True
    return isinstance(net, str) and _network_or_none(net) == pool.network


@functools.lru_cache(maxsize=64)
def _network_or_none(text):
    """``ipaddress`` network of a text (host bits allowed), None when it is not one; cached, records repeat it."""
    try:
        return ipaddress.ip_network(_text(text), strict=False)
    except (ValueError, TypeError):
        return None


def _free_indexes(pool, used, count):
    """The ``count`` lowest indexes in [min_idx, max_idx] not in ``used`` (a set)."""
    lo, hi = pool.min_idx, pool.max_idx
    taken = sorted(i for i in used if lo <= i <= hi)
    out = []
    cand = lo
    j = 0
    while len(out) < count and cand <= hi:
        nxt = taken[j] if j < len(taken) else hi + 1
        if cand == nxt:
            cand += 1
            j += 1
            continue
        stop = min(nxt, cand + count - len(out))
        out.extend(range(cand, stop))
        cand = stop
    return out, len(taken)


class Allocation:
    """Result of :func:`allocate`."""

    def __init__(self, leases, added, released, moved, recovered, orphaned, warnings):
        self.leases = leases          # host -> record (every lease, sorted by host)
        self.added = added            # hosts that got a new subnet in some pool
        self.released = released      # hosts whose lease was released
        self.moved = moved            # pinned hosts whose subnet changed
        self.recovered = recovered    # hosts whose lease came from their own record (lease file lost)
        self.orphaned = orphaned      # leased hosts not in ``hosts`` (kept; release them explicitly)
        self.warnings = warnings


@functools.lru_cache(maxsize=256)
def _network_range(text):
    """('network', normalized text, version, first, last) of an underlay network; hosts often share one."""
    version, addr, plen = _parse_cidr(text)
    host_bits = (32 if version == 4 else 128) - plen
    first = addr >> host_bits << host_bits
    return 'network', '%s/%d' % (_ip_text(version, first), plen), version, first, first + (1 << host_bits) - 1


def _check_underlay(config, underlay, problems):
    """Normalized underlay dict; overlap with the overlay network(s) is a problem."""
    out = {}
    if not isinstance(underlay, dict):
        problems.append('underlay: expected a mapping host -> {address, network, vtep_mac, public_key}')
        return out
    for host in sorted(underlay):
        info = underlay[host]
        if info is None:
            continue
        if not isinstance(info, dict):
            problems.host(host, 'underlay', 'expected a mapping with address, network, vtep_mac, public_key; got %r' % (info,))
            continue
        entry = {}
        ranges = []  # (what, text, version, first, last)
        for key in ('address', 'network') + tuple(PEER_FIELDS):
            value = info.get(key)
            if value in (None, ''):
                continue
            try:
                if key == 'address':
                    text = _text(value)
                    version, addr = _parse_ip(text)
                    entry[key] = text if version == 4 else _ip_text(version, addr)
                    ranges.append(('address', entry[key], version, addr, addr))
                elif key == 'network':
                    ranges.append(_network_range(_text(value)))
                else:
                    entry[key] = PEER_FIELDS[key](value)
            except ValueError as exc:
                problems.host(host, 'underlay %s' % key, str(exc))
        for what, text, version, first, last in ranges:
            for pool in config.pools:
                if version == pool.version and pool.overlaps(first, last):
                    problems.host(host, 'underlay', 'underlay %s %s overlaps the overlay network %s' % (what, text, pool.network))
        out[host] = entry
    return out


def _host_list(value, name, problems):
    if value is None:
        return []
    if not isinstance(value, (list, tuple, set, frozenset)):
        problems.append('%s: expected a list of inventory hostnames, got %r' % (name, value))
        return []
    out = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            problems.append('%s: %r is not an inventory hostname' % (name, item))
        else:
            out.append(item)
    return out


def _host_dict(value, name, problems):
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append('%s: expected a mapping inventory hostname -> value, got %r' % (name, value))
        return {}
    return value


def allocate(config, hosts, existing=None, pinned=None, host_records=None, underlay=None, release=None,
             taken=None, existing_label='lease file', play_hosts=None):
    """Compute every lease.

    ``existing``: host -> record from the lease file; ``pinned``: host -> subnet (or list of
    subnets, one per family); ``host_records``: host -> record the host reported (a dict, or
    its subnet.env text); ``underlay``: host -> {address, network, vtep_mac, public_key}; ``release``:
    hosts whose lease is to be freed.  Raises LeaseError listing every problem.
    ``taken``: owner label -> record of subnets held by someone who is not a host of ours (a
    flanneld's lease in etcd): never handed out, and a claim on one is a conflict.
    ``existing_label`` names where ``existing`` comes from in problems (the lease file, etcd).
    ``play_hosts``: the hosts whose records ``host_records`` could hold (the play); None: all of ``hosts``.
    A host of ``hosts`` outside them without a lease is refused, not given a subnet: it may hold
    one its record would show (a damaged lease file), and a new subnet would move it.
    """
    problems = _Problems()
    warnings = []
    hosts = _host_list(hosts, 'hosts', problems)
    release = set(_host_list(release, 'release', problems))
    existing = _host_dict(existing, existing_label + ' leases', problems)
    pinned = _host_dict(pinned, 'pinned', problems)
    host_records = _host_dict(host_records, 'host_records', problems)
    under = _check_underlay(config, underlay if underlay is not None else {}, problems)

    # Records as dicts, without released hosts.
    file_recs = {}
    for host, rec in existing.items():
        rec = _check_record(host, rec, existing_label, problems)
        if rec is not None and host not in release:
            file_recs[host] = rec
    host_recs = {}
    for host, rec in host_records.items():
        if rec in (None, '', {}) or host in release:
            continue
        rec = _check_record(host, rec, 'host_records', problems)
        if rec is not None:
            host_recs[host] = rec

    pins = {}  # (field, host) -> index
    for host in sorted(pinned):
        if host in release or pinned[host] in (None, '', []):
            continue
        values = pinned[host] if isinstance(pinned[host], (list, tuple)) else [pinned[host]]
        for value in values:
            try:
                text = _text(value)
                version = _parse_cidr(text)[0]
            except ValueError as exc:
                problems.host(host, 'pinned', str(exc))
                continue
            pool = config.pool_for(version)
            if pool is None:
                problems.host(host, 'pinned', '%s is IPv%d but the overlay has no IPv%d network' % (text, version, version))
                continue
            try:
                idx = pool.index(text)
            except ValueError as exc:
                problems.host(host, 'pinned', str(exc))
                continue
            if (pool.field, host) in pins:
                problems.host(host, 'pinned', 'two IPv%d subnets pinned' % version)
            pins[(pool.field, host)] = idx

    claims = {}  # field -> {host: index}
    sources = {}  # (field, host) -> where the claim comes from
    moved = set()
    recovered = set()
    foreign = {}  # field -> {index: owner label}, subnets that are not ours to give
    for label, rec in sorted((taken or {}).items()):
        for pool in config.pools:
            try:
                idx = pool.index(rec[pool.field]) if rec.get(pool.field) is not None else None
            except ValueError as exc:
                problems.append('%s: %s' % (label, exc))
                continue
            if idx is not None:
                foreign.setdefault(pool.field, {})[idx] = label
    for pool in config.pools:
        field = pool.field
        owner = dict(foreign.get(field, {}))
        mine = {}
        for host in sorted(set(file_recs) | set(host_recs) | {h for (f, h) in pins if f == field}):
            from_file = _claim_of(pool, host, file_recs[host], existing_label, problems) if host in file_recs else None
            from_host = None
            if host in host_recs:
                if _record_network_matches(pool, host_recs[host]):
                    from_host = _claim_of(pool, host, host_recs[host], 'host record', problems)
                elif host_recs[host].get(field) is not None:
                    warnings.append('host %s: its record %s %s was written for another network; ignored'
                                    % (host, field, host_recs[host].get(field)))
            pin = pins.get((field, host))
            if pin is not None:
                idx, src = pin, 'pinned'
                if (from_file is not None and from_file != pin) or (from_file is None and from_host is not None and from_host != pin):
                    moved.add(host)
            elif from_file is not None:
                idx, src = from_file, existing_label
                if from_host is not None and from_host != from_file:
                    problems.host(host, field, 'the %s has %s but the host reports %s; fix one of them '
                                  '(or pin the subnet you want)' % (existing_label, pool.subnet(from_file), pool.subnet(from_host)))
            elif from_host is not None:
                idx, src = from_host, 'host record'
                recovered.add(host)
            else:
                continue
            other = owner.get(idx)
            if other is not None:
                problems.append('subnet %s claimed by two hosts: %s (%s) and %s (%s)'
                                % (pool.subnet(idx), other, sources.get((field, other), 'not ours'), host, src))
                continue
            owner[idx] = host
            mine[host] = idx
            sources[(field, host)] = src
        claims[field] = mine
    # No raise yet: the capacity check below runs on the valid claims, so that one failure
    # reports everything at once.

    # Leases of a pool that is no longer configured (IPv6 switched off) are dropped, loudly.
    fields = {p.field for p in config.pools}
    for host, rec in file_recs.items():
        for field in (FIELD_V4, FIELD_V6):
            if field not in fields and rec.get(field) is not None:
                warnings.append('host %s: %s %s dropped: no such network is configured any more' % (host, field, rec[field]))

    wanted = sorted(set(h for h in hosts if h not in release))
    if play_hosts is not None:
        in_play = set(_host_list(play_hosts, 'play_hosts', problems))
        unseen = [h for h in wanted if h not in in_play and not any(h in claims[p.field] for p in config.pools)]
        if unseen:
            problems.append('%s has no lease for %s (not in this play): the host\'s own record of its subnet cannot be '
                            'read, and a new subnet would move a host that holds one. Run on %s too (leave out --limit or '
                            'add to it), or, for a new host that cannot be reached yet, take it out of the group '
                            '(mesh_node_group) until it can; if the %s lost entries, restore its last good copy first'
                            % (existing_label, ', '.join(unseen), ', '.join(unseen), existing_label))
    added = set()
    for pool in config.pools:
        mine = claims[pool.field]
        new = [h for h in wanted if h not in mine]
        if not new:
            continue
        used = set(mine.values()) | set(foreign.get(pool.field, ()))
        free, taken = _free_indexes(pool, used, len(new))
        if len(free) < len(new):
            fit = pool.max_idx - pool.min_idx + 1
            problems.append('network %s too small: %d subnets of /%d fit (%s to %s), %d hosts ask for one '
                            '(%d already leased there, %d new)'
                            % (pool.network, fit, pool.subnet_len, pool.subnet(pool.min_idx), pool.subnet(pool.max_idx),
                               taken + len(new), taken, len(new)))
            continue
        for host, idx in zip(new, free):
            mine[host] = idx
            added.add(host)
    if problems:
        raise LeaseError(problems)

    leases = {}
    for host in sorted(set().union(*[claims[p.field] for p in config.pools]) if config.pools else ()):
        rec = {}
        for pool in config.pools:
            idx = claims[pool.field].get(host)
            if idx is not None:
                rec[pool.field] = pool.subnet(idx)
        for key, reported in (('underlay', 'address'),) + tuple((field, field) for field in PEER_FIELDS):
            value = under.get(host, {}).get(reported)
            for fallback in (host_recs.get(host), file_recs.get(host)):
                if value is None and fallback is not None and fallback.get(key):
                    try:
                        value = _normalize_address(fallback[key]) if key == 'underlay' else PEER_FIELDS[key](fallback[key])
                    except ValueError:
                        value = None
            if value is not None:
                rec[key] = value
        leases[host] = rec
    _check_unique(leases, wanted, problems)
    if problems:
        raise LeaseError(problems)

    released = sorted(h for h in existing if h in release)
    wanted_set = set(wanted)
    orphaned = sorted(h for h in leases if h not in wanted_set)
    if recovered - moved:
        warnings.append('%s had no entry for %d host(s): rebuilt from their own records: %s'
                        % (existing_label, len(recovered - moved), ', '.join(
                            '%s %s' % (h, ' '.join(leases[h][p.field] for p in config.pools if leases[h].get(p.field)))
                            for h in sorted(recovered - moved))))
    if recovered and len(recovered) < len(wanted_set) and not file_recs:
        missing = sorted(wanted_set - recovered - set(host_recs) - {h for (f, h) in pins})
        if missing:
            warnings.append('rebuilding the lease file from host records, but %d host(s) reported none and got new '
                            'subnets: %s. If any of them holds a subnet already (unreachable in this run), the next run '
                            'reports the conflict' % (len(missing), ', '.join(missing)))
    return Allocation(leases, sorted(added), released, sorted(moved), sorted(recovered - moved), orphaned, warnings)


def _check_unique(leases, hosts, problems):
    """Two hosts of the overlay on one underlay address, or with one VTEP MAC, would break the mesh."""
    for key, what in (('underlay', 'underlay address'),
                      ('vtep_mac', 'VTEP MAC (a cloned /etc/machine-id? give each host its own: systemd-machine-id-setup)'),
                      ('public_key', 'WireGuard public key (a copied key file? remove /etc/overlay-mesh/wireguard/*.key on one'
                                     ' of them and run again)')):
        owners = {}
        for host in sorted(set(hosts) & set(leases)):
            if leases[host].get(key):
                owners.setdefault(leases[host][key], []).append(host)
        for value, names in sorted(owners.items()):
            if len(names) > 1:
                problems.append('hosts %s have the same %s %s' % (' and '.join(names), what, value))


# ---- the lease file --------------------------------------------------------------------------

def _quote(value):
    """A YAML double-quoted scalar (JSON's escapes are YAML's), keeping text readable but escaping
    what a YAML reader would refuse or fold (C1 controls, line and paragraph separators)."""
    return _YAML_UNSAFE_RE.sub(lambda m: '\\u%04x' % ord(m.group()), json.dumps(value, ensure_ascii=False))


def _yaml_key(key):
    if _PLAIN_KEY_RE.fullmatch(key) and key.lower() not in _YAML_WORDS:  # not match: $ also matches before a final newline
        return key
    return _quote(key)


def render_lease_file(config, leases):
    """Human-readable YAML: a header, then one line per host (``host: {subnet: "...", ...}``)."""
    lines = [
        '# overlay.mesh subnet leases: one entry per inventory hostname (see docs/leases.md).',
        '# Written by overlay.mesh.subnet_leases under a lock; a lease is kept until it is released.',
        '# The last line counts the leases (a file cut short is refused): keep it when editing by hand.',
        'format: %d' % FILE_FORMAT,
    ]
    for key, value in config.header().items():
        lines.append('%s: %s' % (key, _quote(value)))
    if not leases:
        lines.append('leases: {}')
    else:
        lines.append('leases:')
        for host in sorted(leases):
            rec = leases[host]
            body = ', '.join('%s: %s' % (key, _quote(rec[key])) for key in RECORD_FIELDS if rec.get(key) is not None)
            lines.append('  %s: {%s}' % (_yaml_key(host), body))
    lines.append(END_LINE % len(leases))  # a file cut short lacks it, or counts other leases
    return '\n'.join(lines) + '\n'


_LEASE_LINE_RE = re.compile(r'^  ([A-Za-z][A-Za-z0-9_.-]*|"(?:[^"\\]|\\.)*"): \{(.*)\}$')
_LEASE_FIELD_RE = re.compile(r'([a-z_0-9]+): ("(?:[^"\\]|\\.)*")(?:, |$)')
_LEASES_KEY_RE = re.compile(r'^leases:', re.M)
_HEADER_LINE_RE = re.compile(r'^(?:#.*|format: \d+|(?:ipv6_)?network: "[^"\\]*"|(?:ipv6_)?subnet_len: \d+|leases:(?: \{\})?|)$')


def _parse_canonical(text):
    """(format, leases, duplicates) of a file in the exact layout render_lease_file writes;
    leases is None when the text is laid out otherwise (then it is read as YAML).

    A fast path (a YAML parser takes about 0.4 s for 10 000 hosts; this about 0.03 s) that
    also catches a host written twice, which a YAML loader would silently collapse.
    """
    leases = {}
    duplicates = []
    version = None
    for line in text.split('\n'):
        match = _LEASE_LINE_RE.match(line)
        if match is None:
            if (_HEADER_LINE_RE.match(line) and (not leases or not line)) or _END_LINE_RE.match(line):
                if line.startswith('format: '):
                    version = int(line[8:])
                continue
            return None, None, []
        key, body = match.groups()
        host = json.loads(key) if key.startswith('"') else key
        record = {}
        pos = 0
        for field in _LEASE_FIELD_RE.finditer(body):
            if field.start() != pos:
                return None, None, []
            value = field.group(2)
            record[field.group(1)] = json.loads(value) if '\\' in value else value[1:-1]
            pos = field.end()
        if pos != len(body) or (not record and body):
            return None, None, []
        if host in leases:
            duplicates.append(host)
        leases[host] = record
    return version, leases, duplicates


def _check_format(version, path):
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version > FILE_FORMAT):
        raise LeaseError(['%s: format %r unknown: this overlay.mesh reads formats 1 to %d (was the file written by a newer one?)'
                          % (path, version, FILE_FORMAT)])


def _end_count(text):
    """The number of leases the file's end line counts, None without one (the last non-empty line)."""
    last = text.rstrip().rpartition('\n')[2].strip()
    match = _END_LINE_RE.match(last)
    return int(match.group(1)) if match else None


def _check_whole(text, version, leases, path):
    """A format-2 file must end with its end line, counting the leases it holds: else it was cut short."""
    count = _end_count(text)
    if version is not None and version >= 2 and count is None:
        raise LeaseError(['%s: damaged: it does not end with its "%s" line (written last), so it was cut short and '
                          'leases may be missing' % (path, END_LINE % len(leases))])
    if count is not None and count != len(leases):
        raise LeaseError(['%s: damaged: its end line counts %d leases but it holds %d (cut short, or a hand edit added '
                          'or removed entries without correcting that line)' % (path, count, len(leases))])


def parse_lease_file(text, path='lease file'):
    """The ``leases`` mapping (host -> record) of a lease file's text; LeaseError when unreadable or
    damaged: empty (0 bytes: the writer never writes that), or cut short (see FILE_FORMAT)."""
    if not text.strip():
        raise LeaseError(['%s: damaged: the file is empty (%d bytes); overlay.mesh never writes an empty lease file'
                          % (path, len(text.encode('utf-8')))])
    version, leases, duplicates = _parse_canonical(text)
    if duplicates:
        raise LeaseError(['%s: host %s has two entries' % (path, host) for host in sorted(set(duplicates))])
    if leases is not None:
        _check_format(version, path)
        if not _LEASES_KEY_RE.search(text):
            raise LeaseError(['%s: damaged: it has no "leases" key (cut short?)' % path])
        _check_whole(text, version, leases, path)
        return leases
    try:
        data = yaml.load(text, Loader=_YamlLoader)  # nosec - a safe loader
    except yaml.YAMLError as exc:
        damaged = 'damaged (cut short? it does not end with its end line): ' if _end_count(text) is None else ''
        raise LeaseError(['%s: %snot valid YAML: %s' % (path, damaged, exc)]) from None
    if data is None:
        raise LeaseError(['%s: damaged: it holds nothing but comments (no "leases" key)' % path])
    if not isinstance(data, dict):
        raise LeaseError(['%s: expected a mapping with a "leases" key' % path])
    if 'leases' not in data:
        raise LeaseError(['%s: damaged: it has no "leases" key (cut short?)' % path])
    _check_format(data.get('format'), path)
    leases = data.get('leases')
    if leases is None:
        leases = {}
    if not isinstance(leases, dict):
        raise LeaseError(['%s: "leases" must map inventory hostnames to records' % path])
    _check_whole(text, data.get('format'), leases, path)
    return {str(host): rec for host, rec in leases.items()}


def read_lease_file(path):
    """(text, leases) of the lease file; ('', {}) when it does not exist. LeaseError when it is
    unreadable or damaged; then the message says how to restore the last good copy (prev_path)."""
    try:
        with open(path, encoding='utf-8') as handle:
            text = handle.read()
    except FileNotFoundError:
        return '', {}
    except UnicodeDecodeError as exc:
        raise LeaseError(['%s: damaged: not UTF-8 text (%s)' % (path, exc)] + [restore_hint(path)]) from None
    try:
        return text, parse_lease_file(text, path)
    except LeaseError as exc:
        raise LeaseError(exc.problems + [restore_hint(path)]) from None


def prev_path(path):
    """The last good copy, kept before each replace: ``.<name>.prev`` beside the lease file (hidden, as the lock)."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, '.%s.prev' % name.lstrip('.'))


def restore_hint(path):
    """How to get the leases back after the file at ``path`` was damaged; nothing was changed."""
    prev = prev_path(path)
    if os.path.exists(prev):
        return ('nothing was changed. The lease file as it was before its last change is %s: check it and restore it '
                '(cp %s %s), then run again' % (prev, prev, path))
    return ('nothing was changed. No earlier copy (%s) exists: restore %s from version control or a backup; or, '
            'with every host of the group in the play, move it away to rebuild it from the hosts\' own records' % (prev, path))


def write_lease_file(path, text, mode=None):
    """Replace ``path`` atomically (temporary file in the same directory, fsync, os.replace)."""
    directory = os.path.dirname(os.path.abspath(path))
    if mode is None:
        try:
            mode = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o644
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), suffix='.tmp', dir=directory)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def lock_path(path):
    """The sidecar lock file: ``.<name>.lock`` beside the lease file (hidden, so an inventory directory ignores it)."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, '.%s.lock' % name.lstrip('.'))


@contextlib.contextmanager
def locked(path, timeout=60.0, poll=0.05):
    """Hold an exclusive fcntl lock on the lease file's sidecar lock file."""
    fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise LeaseError(['%s: still locked by another run after %ss (lock file %s)'
                                      % (path, timeout, lock_path(path))]) from None
                time.sleep(poll)
        yield
    finally:
        os.close(fd)


def update_lease_file(path, config, hosts, check_mode=False, lock_timeout=60.0, **inputs):
    """The action's whole cycle: lock, read the lease file, allocate, write it back if it changed.

    ``inputs`` are allocate()'s pinned, host_records, underlay and release. In check mode
    nothing is written, not even the lock file (the lease file is only ever replaced
    atomically, so reading it unlocked is safe). A symlinked lease file is written through.
    Returns (allocation, text before, text after); the text before is '' for a new file.
    """
    path = os.path.realpath(path)
    guard = contextlib.nullcontext() if check_mode else locked(path, timeout=lock_timeout)
    label = 'lease file %s' % path
    with guard:
        old_text, existing = read_lease_file(path)
        try:
            alloc = allocate(config, hosts, existing=existing, existing_label=label, **inputs)
        except LeaseError as exc:
            if any(label in problem for problem in exc.problems):  # the file's content is at fault
                raise LeaseError(exc.problems + [restore_hint(path)]) from None
            raise
        new_text = render_lease_file(config, alloc.leases)
        if new_text != old_text and not check_mode:
            if old_text:  # the last good copy, for a file damaged later (read_lease_file says where it is)
                write_lease_file(prev_path(path), old_text, mode=os.stat(path).st_mode & 0o7777)
            write_lease_file(path, new_text)
    return alloc, old_text, new_text


# ---- flannel's subnet.env ---------------------------------------------------------------------

def _network_checked(value, label, problems):
    """The strict ``ipaddress`` network of ``value``, or None after adding a problem."""
    try:
        return ipaddress.ip_network(_text(value))
    except ValueError as exc:
        problems.append('%s: %s' % (label, exc))
        return None


def subnet_env(lease, network, mtu, ipmasq=True, ipv6_network=None):
    """flannel's /run/flannel/subnet.env text for one lease.

    FLANNEL_SUBNET is the first usable address of the host's subnet with the subnet length
    (10.244.1.0/24 -> 10.244.1.1/24), as flannel writes it.
    """
    problems = []
    if not isinstance(lease, dict):
        raise LeaseError(['lease: expected a mapping with subnet (and ipv6_subnet), got %r' % (lease,)])
    if isinstance(mtu, bool) or not isinstance(mtu, int) or not 68 <= mtu <= 65535:
        problems.append('mtu: %r is not an MTU (68 to 65535)' % (mtu,))
    if not isinstance(ipmasq, bool):
        problems.append('ipmasq: %r is not a boolean' % (ipmasq,))
    pairs = {}
    for name, net_text in (('network', network), ('ipv6_network', ipv6_network)):
        if net_text is None:
            continue
        net = _network_checked(net_text, name, problems)
        if net is None:
            continue
        field = FIELD_V4 if net.version == 4 else FIELD_V6
        if lease.get(field) is None:
            problems.append('lease: no %s for %s %s' % (field, name, net))
            continue
        sub = _network_checked(lease[field], 'lease ' + field, problems)
        if sub is None:
            continue
        if sub.version != net.version or not sub.subnet_of(net):
            problems.append('lease %s: %s lies outside %s %s' % (field, sub, name, net))
            continue
        if net.version in pairs:
            problems.append('%s: a second IPv%d network' % (name, net.version))
            continue
        pairs[net.version] = (net, sub)
    if not pairs and not problems:
        problems.append('network: required')
    if problems:
        raise LeaseError(problems)
    lines = []
    for version, prefix in ((4, 'FLANNEL_'), (6, 'FLANNEL_IPV6_')):
        if version in pairs:
            net, sub = pairs[version]
            lines.append('%sNETWORK=%s' % (prefix, net))
            lines.append('%sSUBNET=%s/%d' % (prefix, sub.network_address + 1, sub.prefixlen))
    lines.append('FLANNEL_MTU=%d' % mtu)
    lines.append('FLANNEL_IPMASQ=%s' % ('true' if ipmasq else 'false'))
    return '\n'.join(lines) + '\n'
