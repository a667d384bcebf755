# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The etcd lease store (``registry: etcd``), in flannel's key schema. See docs/leases.md.

``<prefix>/config`` holds flannel's network config; the leases are under ``<prefix>/subnets/``, keys and
values as module_utils/_lease_schema.py reads and writes them (the node agent reads them with it too).
Allocation is _leases.allocate() on what one range request read, written back by one transaction that
holds only if no lease key changed since that read; on a conflict (another controller wrote first) the
whole cycle runs again.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import random
import time

from ansible_collections.overlay.mesh.plugins.module_utils import _flannel_interop
from ansible_collections.overlay.mesh.plugins.module_utils._etcd import EtcdError, b64, prefix_end
from ansible_collections.overlay.mesh.plugins.module_utils._lease_schema import (  # noqa: F401 pylint: disable=unused-import
    NO_IPV4, OURS, backend_settings as _backend, decode, lease_value, parse_subnet_key, subnet_key)
from ansible_collections.overlay.mesh.plugins.plugin_utils import _leases as L

DEFAULT_PREFIX = '/coreos.com/network'


def config_value(config, backend):
    """flannel's network config (``<prefix>/config``) for our pools and backend."""
    value = {}
    for pool in config.pools:
        if pool.version == 4:
            value.update(Network=str(pool.network), SubnetLen=pool.subnet_len,
                         SubnetMin=pool.subnet(pool.min_idx).split('/')[0], SubnetMax=pool.subnet(pool.max_idx).split('/')[0])
        else:
            value.update(EnableIPv6=True, IPv6Network=str(pool.network), IPv6SubnetLen=pool.subnet_len,
                         IPv6SubnetMin=pool.subnet(pool.min_idx).split('/')[0], IPv6SubnetMax=pool.subnet(pool.max_idx).split('/')[0])
    if config.pools and config.pools[0].version == 6:
        value['EnableIPv4'] = False
    back = {'Type': backend['type']}
    if backend['vni'] is not None:
        back['VNI'] = backend['vni']
    if backend['port'] is not None:
        back['Port'] = backend['port']
    if backend['type'] == 'vxlan' and backend['direct_routing']:
        back['DirectRouting'] = True
    value['Backend'] = back
    value[OURS] = {'format': L.FORMAT_VERSION}
    return json.dumps(value, separators=(',', ':'))


class State:
    """What one range request read under the prefix."""

    def __init__(self, prefix, revision, kvs):
        self.prefix = prefix
        self.revision = revision
        self.leases = {}    # host -> record
        self.keys = {}      # key -> (value, mod_revision) of our leases
        self.host_key = {}  # host -> key
        self.foreign = {}   # label -> record: leases that are not ours (flanneld's, with or without TTL)
        self.flanneld = []  # (key, record, value) of those leases: flanneld hosts that may join the mesh
        self.config = None  # (value, mod_revision) of <prefix>/config
        self.problems = []
        subnets = prefix + '/subnets/'
        for key, value, mod, lease in kvs:
            if key == prefix + '/config':
                self.config = (value, mod)
                continue
            if not key.startswith(subnets):
                continue
            try:
                host, rec, data = decode(key, value, subnets)
            except ValueError as exc:
                self.problems.append('etcd key %s: %s' % (key, exc))
                continue
            if host is None:
                self.foreign[self._foreign_label(key, data, lease)] = rec
                self.flanneld.append((key, rec, data))
                continue
            if host in self.host_key:
                self.problems.append('host %s: two leases in etcd: %s and %s; delete one' % (host, self.host_key[host], key))
                continue
            self.leases[host] = rec
            self.keys[key] = (value, mod)
            self.host_key[host] = key

    @staticmethod
    def _foreign_label(key, data, lease):
        public = _flannel_interop.public_address(data) if isinstance(data, dict) else None
        what = 'a flanneld lease' + (' (TTL)' if lease else '') + (' of %s' % public if public else '')
        return 'etcd key %s (%s, not an overlay.mesh host)' % (key, what)

    def flannel_peers(self, backend, family=4):
        """({name: record}, problems) of the flanneld hosts as peers: their leases and a flannel config that agree with ours;
        ``family``: our underlay's (a flanneld host is reached at its VTEP of that family when it has one)."""
        found, problems = _flannel_interop.peers(self.flanneld, backend['vni'] or 1, backend['type'], family)
        try:
            theirs = json.loads(self.config[0]) if self.config else {}
        except (ValueError, RecursionError):
            theirs = {}  # check_config reports it
        if isinstance(theirs, dict) and not isinstance(theirs.get(OURS), dict) and found:
            port = (theirs.get('Backend') or {}).get('Port') or 8472  # flanneld's vxlan: the kernel's default port
            if port != (backend['port'] or 8472):
                problems.append('etcd key %s/config (flannel\'s): vxlan port %s, but the mesh uses %s (mesh_node_vxlan_port);'
                                ' flanneld hosts cannot join the mesh (%s)' % (self.prefix, port, backend['port'], _flannel_interop.SETTING))
        return found, problems

    def check_config(self, config, backend):
        """A config written by someone else (flannel's own) must describe the same network; it is never overwritten."""
        if self.config is None:
            return
        try:
            theirs = json.loads(self.config[0])
        except (ValueError, RecursionError):  # nested too deeply: not flannel's config either
            theirs = None
        if not isinstance(theirs, dict):
            self.problems.append('etcd key %s/config: not flannel JSON; fix or delete it' % self.prefix)
            return
        if isinstance(theirs.get(OURS), dict):
            return
        ours = json.loads(config_value(config, backend))
        for name in ('Network', 'SubnetLen', 'IPv6Network', 'IPv6SubnetLen'):
            if name in theirs and theirs[name] != ours.get(name):
                self.problems.append('etcd key %s/config (flannel\'s, not ours): %s is %s but overlay.mesh has %s'
                                     % (self.prefix, name, theirs[name], ours.get(name)))


def _put(key, value):
    return {'request_put': {'key': b64(key), 'value': b64(value)}}


def plan(state, config, backend, leases):
    """The writes turning ``state`` into ``leases``, as units of (comparison, operation) pairs: each operation holds
    only if its key is as read, and a unit is never split across transactions - a host whose key changes (dual stack
    turned on, a new pin) has its old key deleted and its new one written together, never left without a lease."""
    units = []
    config_key = state.prefix + '/config'
    ours = config_value(config, backend)
    if state.config is None or (state.config[0] != ours and _is_ours(state.config[0])):
        units.append([(_same(config_key, state.config and state.config[1]), _put(config_key, ours))])
    keys = dict((host, subnet_key(state.prefix, rec)) for host, rec in leases.items())
    wanted = dict((keys[host], lease_value(host, rec, backend)) for host, rec in leases.items())
    # A host taking the old key of a host that moved is written with it: neither is ever left with two or no lease.
    group = dict((host, host) for host in leases)
    owner = dict((key, host) for host, key in state.host_key.items() if host in leases)

    def root(host):
        while group[host] != host:
            host = group[host]
        return host

    for host, key in keys.items():
        if owner.get(key, host) != host:
            group[root(host)] = root(owner[key])
    steps = {}
    for host in sorted(leases):
        key, value = keys[host], wanted[keys[host]]
        unit = steps.setdefault(root(host), [])
        old = state.host_key.get(host)
        # the old key goes unless another host's lease now takes it (one put: etcd refuses two ops on a key in a txn)
        if old is not None and old != key and old not in wanted:
            unit.append((_same(old, state.keys[old][1]), _delete(old)))
        current = state.keys.get(key)
        if current is None or current[0] != value:
            unit.append((_same(key, current and current[1]), _put(key, value)))
    units += [unit for dummy, unit in sorted(steps.items()) if unit]
    moved_from = set(state.host_key.get(host) for host in leases)
    for key, (dummy, mod) in sorted(state.keys.items()):
        if key not in wanted and key not in moved_from:  # a released host's lease
            units.append([(_same(key, mod), _delete(key))])
    return units


def _delete(key):
    return {'request_delete_range': {'key': b64(key)}}


def _same(key, mod_revision):
    """Comparison: ``key`` unchanged since the read (absent: never created)."""
    if not mod_revision:
        return {'key': b64(key), 'target': 'CREATE', 'result': 'EQUAL', 'create_revision': '0'}
    return {'key': b64(key), 'target': 'MOD', 'result': 'EQUAL', 'mod_revision': str(mod_revision)}


def _transactions(units, size):
    """The units packed in order into lists of at most ``size`` steps (a unit larger than that alone in one)."""
    chunks = [[]]
    for unit in units:
        if chunks[-1] and len(chunks[-1]) + len(unit) > size:
            chunks.append([])
        chunks[-1].extend(unit)
    return [chunk for chunk in chunks if chunk]


def commit(client, state, units, max_ops):
    """Write ``units`` in transactions of at most ``max_ops`` comparisons and operations (etcd's --max-txn-ops,
    128 by default); whether all were written.

    Each transaction also holds only if no lease key changed since the read or since our previous
    transaction: a host added by another controller meanwhile, on another subnet, would otherwise get
    a second lease from us. When a later transaction fails, the earlier ones stand: each wrote whole
    units (a host's new lease with its old one's removal) of free subnets with nobody writing in
    between, a valid state that the retry reads and keeps.
    """
    subnets = state.prefix + '/subnets/'
    revision = state.revision
    chunks = _transactions(units, max(2, max_ops - 1))
    for written, chunk in enumerate(chunks):
        guard = {'key': b64(subnets), 'range_end': prefix_end(subnets), 'target': 'MOD', 'result': 'LESS',
                 'mod_revision': str(revision + 1)}
        try:
            succeeded, revision = client.txn([c for c, dummy in chunk] + [guard], [op for dummy, op in chunk])
        except EtcdError as exc:
            if not written:
                raise
            raise EtcdError(exc.kind, '%s (after %d of %d transactions of this run were written: whole leases, which'
                                      ' the next run keeps)' % (exc, written, len(chunks)), written) from None
        if not succeeded:
            return False
    return True


def _is_ours(text):
    try:
        return isinstance(json.loads(text).get(OURS), dict)
    except (ValueError, AttributeError, RecursionError):
        return False


def merge(primary, primary_label, secondary, secondary_label):
    """Leases of both sources (migration); a host with different subnets in each is a problem."""
    merged = dict(primary)
    problems = []
    for host, rec in sorted(secondary.items()):
        mine = merged.get(host)
        if mine is None:
            merged[host] = rec
            continue
        if not isinstance(rec, dict) or not isinstance(mine, dict):
            continue  # allocate() reports a malformed record
        for field in (L.FIELD_V4, L.FIELD_V6):
            if rec.get(field) and mine.get(field) and rec[field] != mine[field]:
                problems.append('host %s: %s %s in %s but %s in %s; fix one of them first'
                                % (host, field, mine[field], primary_label, rec[field], secondary_label))
        filled = dict(rec)
        filled.update((k, v) for k, v in mine.items() if v)
        merged[host] = filled
    return merged, problems


class Result(collections.namedtuple('Result', 'alloc before after changed attempts requests flannel_peers revisions')):
    """An etcd run: the allocation, the leases before/after as lease-file text (for --diff), whether it wrote, in how many
    attempts and requests, the flanneld hosts' leases as peers ({} unless asked for), and {host: mod_revision} of the
    leases as read (the node agents give a claim two leases make to the newer one: site ranks orphaned leases so)."""

    __slots__ = ()


def _allocate(state, config, hosts, file_leases, inputs):
    """allocate() on etcd's leases (and a lease file's, when migrating); the store's problems and allocate()'s in one error."""
    problems = list(state.problems)
    existing = state.leases
    if file_leases:
        existing, more = merge(state.leases, 'etcd', file_leases, 'the lease file')
        problems.extend(more)
    try:
        alloc = L.allocate(config, hosts, existing=existing, taken=state.foreign, existing_label='etcd', **inputs)
    except L.LeaseError as exc:
        raise L.LeaseError(problems + exc.problems) from None
    if problems:
        raise L.LeaseError(problems)
    return alloc


def update_etcd(client, config, hosts, prefix=DEFAULT_PREFIX, backend=None, check_mode=False, attempts=10,
                imported=None, max_ops=128, flannel_peers=False, **inputs):
    """The etcd cycle: one range read, allocate(), one transaction (one per ``max_ops`` changes); again on a
    conflict, at most ``attempts`` times.

    ``imported``: leases of a lease file to add (migration); a host in both with other subnets is an error.
    ``flannel_peers``: the flanneld hosts' leases become peers (Result.flannel_peers); one that cannot is an error.
    Check mode only reads. Raises LeaseError (bad inputs, conflicts exhausted) or _etcd.EtcdError.
    """
    backend = _backend(backend)
    prefix = prefix.rstrip('/')
    start = client.requests
    for attempt in range(1, attempts + 1):
        state = State(prefix, *client.range_prefix(prefix + '/'))
        state.check_config(config, backend)
        peers = {}
        if flannel_peers:
            addresses = [str(info.get('address') or '') for info in (inputs.get('underlay') or {}).values() if isinstance(info, dict)]
            family = 6 if addresses and all(':' in address for address in addresses) else 4
            peers, problems = state.flannel_peers(backend, family)
            state.problems.extend(problems)
        alloc = _allocate(state, config, hosts, imported, inputs)
        units = plan(state, config, backend, alloc.leases)
        before = L.render_lease_file(config, state.leases)
        after = L.render_lease_file(config, alloc.leases)
        revisions = dict((host, state.keys[key][1]) for host, key in state.host_key.items())
        if not units or check_mode:
            return Result(alloc, before, after, bool(units), attempt, client.requests - start, peers, revisions)
        if commit(client, state, units, max_ops):
            return Result(alloc, before, after, True, attempt, client.requests - start, peers, revisions)
        # Another controller wrote in between: back off a little (randomised, so two do not collide again) and redo.
        time.sleep(random.uniform(0.005, 0.05) * attempt)  # nosec - jitter, not cryptography
    raise L.LeaseError(['etcd: the leases under %s changed during each of %d attempts (other controllers writing at '
                        'the same time); run it again' % (prefix, attempts)])


def export_to_file(client, path, config, hosts, prefix=DEFAULT_PREFIX, check_mode=False, lock_timeout=60.0, **inputs):
    """Write etcd's leases into the lease file (migration back), keeping the file's own; (allocation, before, after)."""
    prefix = prefix.rstrip('/')
    path = os.path.realpath(path)
    guard = contextlib.nullcontext() if check_mode else L.locked(path, timeout=lock_timeout)
    with guard:
        old_text, file_leases = L.read_lease_file(path)
        state = State(prefix, *client.range_prefix(prefix + '/'))
        alloc = _allocate(state, config, hosts, file_leases, inputs)
        new_text = L.render_lease_file(config, alloc.leases)
        if new_text != old_text and not check_mode:
            L.replace_lease_file(path, old_text, new_text)
    return alloc, old_text, new_text
