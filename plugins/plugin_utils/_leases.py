# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Subnet leases of the overlay network, computed on the controller from the inventory.

Pure logic (no Ansible imports): the allocation (merging with the records the hosts keep,
pins, release) and the lease file's whole cycle (update_lease_file). Its parts, each a module:
the pool and the checked parameters (_lease_pool), the record's fields (_lease_records), the
lease file (_lease_file: render, parse, atomic save, lock) and flannel's subnet.env (_subnet_env).
Their public names are also importable from here, as before the split. See docs/leases.md.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import os

# pylint: disable=unused-import
from ansible_collections.overlay.mesh.plugins.plugin_utils._lease_file import (  # noqa: F401
    END_LINE, FILE_FORMAT, LEASE_FILE_NAME, lock_path, locked, parse_lease_file, prev_path, read_lease_file, render_lease_file,
    replace_lease_file, restore_hint, write_lease_file)
from ansible_collections.overlay.mesh.plugins.plugin_utils._lease_pool import (  # noqa: F401
    DEFAULT_NETWORK, FIELD_V4, FIELD_V6, Config, LeaseError, Pool, _ip_text, _parse_cidr, _parse_ip, _text, default_subnet_len,
    make_config)
from ansible_collections.overlay.mesh.plugins.plugin_utils._lease_records import (  # noqa: F401
    FORMAT_VERSION, LEGACY_FIELDS, RECORD_FIELDS, _normalize_address, normalize_published, published_fields, unique_fields)
from ansible_collections.overlay.mesh.plugins.plugin_utils._subnet_env import parse_subnet_env, subnet_env  # noqa: F401
# pylint: enable=unused-import


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
        problems.host(host, source, 'expected a mapping with subnet, underlay, %s; got %r'
                      % (', '.join(published_fields()), record))
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
    fields = published_fields()
    if not isinstance(underlay, dict):
        problems.append('underlay: expected a mapping host -> {address, network, %s}' % ', '.join(published_fields()))
        return out
    for host in sorted(underlay):
        info = underlay[host]
        if info is None:
            continue
        if not isinstance(info, dict):
            problems.host(host, 'underlay', 'expected a mapping with address, network, %s; got %r'
                          % (', '.join(published_fields()), info))
            continue
        entry = {}
        ranges = []  # (what, text, version, first, last)
        for key in ('address', 'network') + tuple(fields):
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
                    entry[key] = normalize_published(key, value, fields)
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
    its subnet.env text); ``underlay``: host -> {address, network, and what its backend publishes (vtep_mac, public_key: every backend's
    PEER_OPTIONS)}; ``release``:
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
    published = published_fields()
    for host in sorted(set().union(*[claims[p.field] for p in config.pools]) if config.pools else ()):
        rec = {}
        for pool in config.pools:
            idx = claims[pool.field].get(host)
            if idx is not None:
                rec[pool.field] = pool.subnet(idx)
        for key, reported in (('underlay', 'address'),) + tuple((field, field) for field in published):
            value = under.get(host, {}).get(reported)
            for fallback in (host_recs.get(host), file_recs.get(host)):
                if value is None and fallback is not None and fallback.get(key):
                    try:
                        value = _normalize_address(fallback[key]) if key == 'underlay' else normalize_published(key, fallback[key], published)
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
    """Two hosts of the overlay on one underlay address, or sharing what a backend says must be a host's own
    (Backend.UNIQUE_PEER_OPTIONS: a VTEP MAC), would break the mesh."""
    for key, what in unique_fields():
        owners = {}
        for host in sorted(set(hosts) & set(leases)):
            if leases[host].get(key):
                owners.setdefault(leases[host][key], []).append(host)
        for value, names in sorted(owners.items()):
            if len(names) > 1:
                problems.append('hosts %s have the same %s %s' % (' and '.join(names), what, value))


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
            replace_lease_file(path, old_text, new_text)
    return alloc, old_text, new_text
