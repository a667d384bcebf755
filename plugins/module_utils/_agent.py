# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The node agent (mesh_node_agent, with the etcd registry): overlay-mesh-agent.service on each host.

    /usr/lib/overlay-mesh/overlay-mesh-agent [/etc/overlay-mesh/node.json]

It keeps the node's peers equal to the leases in etcd without a controller run (docs/agent.md):
lists ``<prefix>/subnets/``, applies the saved contract (node.json) with its peers taken from the leases,
then watches the prefix from the listed revision and applies each change to the peers it touches only
(Backend.apply_peers: one peer's neighbour, FDB entry and route on vxlan). It follows its own underlay
address and re-registers its lease's PublicIP when the address changes. The same engine as the node
module and the boot-time reapply does every change, under the same lock, and saves node.json, so a
reboot and the next site run start from what the agent applied.

etcd unreachable or without quorum never removes a peer: the last applied state stands, the agent
says it is degraded (/run/overlay-mesh/agent.json and last-apply.json) and lists again once etcd serves.
Nor does etcd going back in time (a restore from an older snapshot): a list below the revision of the last state
the agent applied keeps the peers etcd lost until their leases are back or a site run decides.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import sys
import threading
import time
import traceback

from ansible_collections.overlay.mesh.plugins.module_utils import _agent_address
from ansible_collections.overlay.mesh.plugins.module_utils import _agent_etcd
from ansible_collections.overlay.mesh.plugins.module_utils import _etcd
from ansible_collections.overlay.mesh.plugins.module_utils import _flannel_interop
from ansible_collections.overlay.mesh.plugins.module_utils import _host
from ansible_collections.overlay.mesh.plugins.module_utils import _lease_schema as schema
from ansible_collections.overlay.mesh.plugins.module_utils import _node_apply
from ansible_collections.overlay.mesh.plugins.module_utils import _node_boot
from ansible_collections.overlay.mesh.plugins.module_utils import _node_files
from ansible_collections.overlay.mesh.plugins.module_utils._errors import OverlayMeshError

STATUS_FILE = os.path.join(_host.RUN_DIR, 'agent.json')
UNIT = 'overlay-mesh-agent.service'
# Seconds between checks that etcd still serves: a watch on a member that lost quorum stays open and silent.
HEALTH_EVERY = 5.0
BACKOFF = (1, 2, 4, 8, 10)  # seconds before listing again after a failure, growing while it lasts
ADDRESS_SETTLE = 0.3  # seconds to let a burst of address events (DHCP, a move) settle before looking
# What the agent applies: the peers' part of the node (the rest is the controller's, or the boot's).
# kernel: a device made again (the VTEP of a host that moved) gets its per-device settings (rp_filter) back.
PARTS = ('backend', 'kernel', 'nftables', 'saved contract')


class ApplyFailed(OverlayMeshError):
    """An apply failed: the agent is degraded and lists and applies again after the back-off."""


def log(message, stream=None):
    """One line to the journal; what it cannot encode (a lone surrogate from a lease) is written as a backslash escape."""
    stream = stream or sys.stdout
    line = 'overlay-mesh-agent: %s\n' % message
    encoding = getattr(stream, 'encoding', None) or 'utf-8'
    stream.write(line.encode(encoding, 'backslashreplace').decode(encoding))
    stream.flush()


def _peer_text(peer):
    data = ', '.join('%s %s' % (key, peer[key]) for key in sorted(peer) if key not in ('name', 'subnet', 'underlay'))
    return '%s (%s at %s%s)' % (peer['name'], peer['subnet'], peer['underlay'], ', ' + data if data else '')


class Agent(object):
    """One host's agent. ``events``: what the watch and the address listener hand to the one thread that applies."""

    def __init__(self, path=_host.NODE_FILE, out=log):
        self.path = path
        self.log = out
        self.saved_text = None   # node.json as the agent last read or wrote it
        self.raw = None          # ... and as a dict: the contract the agent applies, peers replaced
        self._load()
        settings = self.raw['agent']
        self.name = settings['name']
        self.prefix = settings['prefix'].rstrip('/')
        self.subnets = self.prefix + '/subnets/'
        self.flannel_peers = settings.get('flannel_peers')
        self.client = _agent_etcd.client(settings)
        self._made_from = self._rotation_seen = _agent_etcd.credential_files(self.raw['agent'])
        self.kvs = {}            # key -> (host or None, record, value JSON, mod_revision)
        # peer entry (JSON) -> whether it passed the checks of the contract _checked_for (its digest, peers left out):
        # another contract (the network grew, the host moved) checks every lease again; only current leases are kept
        self._checked, self._checked_for = {}, None
        self._skipped = set()    # what was logged as skipped (the current leases' only)
        self._before = ({}, set())  # both as the previous peers() left them
        self._address_pending = threading.Event()
        self.revision = 0
        # The revision of the last state applied, and the peers kept, saved beside node.json (files.AGENT_MARK_FILE).
        self.mark_path = os.path.join(os.path.dirname(os.path.abspath(path)), os.path.basename(_node_files.AGENT_MARK_FILE))
        self.kept = {}           # name -> peer: what an etcd gone back in time lost, kept until it is back
        self.mark = self._read_mark()
        self._mark_saved = {'revision': self.mark, 'kept': sorted(self.kept)}
        self.events = queue.Queue()
        self.watch_connection = None
        self.watched = None      # the member the watch streams from: the health check must get its answer from it
        self._watch_lock = threading.Lock()
        self._watch_generation = 0  # the watch that may stream: one that was stopped while it connected may not
        # revision, leases and peers are added when it is written (_status): they are the agent's own fields
        self.state = {'state': 'starting', 'since': time.time(), 'changes': 0, 'message': ''}
        self.last_changes = 0     # the kernel and file changes of the last apply

    # ---- the contract ------------------------------------------------------------------------
    def _load(self):
        """node.json as the node module (or the agent) last saved it; a site run may have changed it meanwhile."""
        text = _host.Host.read(self.path)
        if text is None:
            raise ValueError('no node state %s: the node module saves it (run site on this host)' % self.path)
        if text == self.saved_text:
            return False
        node, _raw = _node_boot.load(self.path)
        if not (node.data.get('agent') or {}).get('enabled'):
            raise ValueError('the node state %s does not turn the agent on (mesh_node_agent)' % self.path)
        self.saved_text, self.raw, self.node = text, node.data, node
        return True

    def reconnect_if_rotated(self):
        """site copied new credentials (a password or certificate rotated; the same paths, so no restart): a new
        client with them. True when it did."""
        now = _agent_etcd.credential_files(self.raw['agent'])
        if now == self._made_from:
            return False
        if now != self._rotation_seen:  # site copies them one at a time: wait until they stay as they are
            self._rotation_seen = now
            return False
        try:
            client = _agent_etcd.client(self.raw['agent'])
        except (OSError, ValueError) as exc:  # unreadable, or a certificate without its key: the old client stays
            self.log('the etcd credentials changed but cannot be used yet: %s' % exc)
            return False
        self.log('the etcd credentials changed: connecting with the new ones')
        self.client.close()
        self.client, self._made_from = client, now
        return True

    def peers(self, own_address=None):
        """The contract's peers from the leases, as the controller builds them (_lease_schema.contract_peers). A lease
        that cannot be one (a name with two keys, a subnet, address or MAC another peer has or this host's address,
        a check it fails) is left out and logged: it must not stop the others. ``own_address``: the address this
        host moves to (default: the contract's)."""
        contract = hashlib.sha256(json.dumps(dict(self.raw, peers=None), sort_keys=True).encode()).hexdigest()
        if contract != self._checked_for:
            self._checked, self._checked_for = {}, contract
        # refilled with what these leases give, the earlier ones looked up: nothing else is kept
        self._before = (self._checked, self._skipped)
        self._checked, self._skipped = {}, set()
        keys = {}
        for key, (host, _record, _data, _mod) in sorted(self.kvs.items()):
            if host:
                keys.setdefault(host, []).append(key)
        ours = dict((host, self.kvs[found[0]][1]) for host, found in keys.items() if len(found) == 1)
        for host in sorted(set(keys) - set(ours)):
            self._skip('%s has %d leases (%s): none taken until one is deleted' % (host, len(keys[host]), ', '.join(keys[host])))
        backend = self.node.backend
        found = [peer for peer in schema.contract_peers(self.name, ours, list(ours), type(backend)) if self._valid(peer)]
        if self.flannel_peers:
            flanneld = [(key, record, data) for key, (host, record, data, _mod) in sorted(self.kvs.items()) if host is None]
            settings = schema.backend_settings(self.raw['backend'])
            theirs, problems = _flannel_interop.peers(flanneld, settings['vni'] or 1, settings['type'], self.node.underlay_version)
            for problem in problems:
                self.log('skipped: %s' % problem)
            # through the same checks as ours: one bad flanneld lease (a subnet outside the network, a multicast MAC) must
            # not make the contract refuse every peer
            found += [peer for peer in (dict(record, name=name) for name, record in sorted(theirs.items())) if self._valid(peer)]
        if self.kept:
            back = sorted(set(self.kept) & set(peer['name'] for peer in found))
            for name in back:
                self.log('%s is in etcd again' % name)
                del self.kept[name]
            found += [self.kept[name] for name in sorted(self.kept)]
        # a subnet, address or MAC claimed twice (a host renamed in the inventory): the newest lease has it
        newest = [host for _mod, host in sorted(((mod, host) for host, _record, _data, mod in self.kvs.values() if host), reverse=True)]
        kept, refused = schema.distinct_peers(found, type(backend), first=newest + [peer['name'] for peer in found],
                                              own_address=own_address or self.raw['underlay']['address'])
        for peer, why in refused:
            self._skip('the lease of %s: %s' % (peer['name'], why))
        return kept

    def _skip(self, message):
        if message not in self._skipped and message not in self._before[1]:  # once per lease, not per event
            self.log('skipped %s' % message)
        self._skipped.add(message)

    def _valid(self, peer):
        """Whether a peer from a lease passes the contract's checks (a damaged lease must not stop the others)."""
        key = json.dumps(peer, sort_keys=True)
        if key not in self._checked:
            if key in self._before[0]:
                self._checked[key] = self._before[0][key]
                return self._checked[key]
            try:
                _node_boot.normalize(dict(self.raw, peers=[peer]), 'etcd')
                self._checked[key] = True
            except ValueError as exc:
                self.log('skipped the lease of %s: %s' % (peer.get('name'), str(exc).split('nothing applied: ', 1)[-1]))
                self._checked[key] = False
        return self._checked[key]

    def _apply(self, peers, what, changed=None, removed=None, underlay=None):
        """Apply the contract with these peers: all of it (changed None), or only these peers' entries. Under the
        node's lock, on node.json as it is now (a site run may have changed it), which is then saved."""
        host = _host.Host()
        failure = None
        forgot = False
        with host.locked():
            try:
                reloaded = self._load()  # a site run saved another contract: all of it again
                if reloaded:  # ... with the peers from the leases: the controller decided about any kept ones
                    forgot = self._forget_kept()
                    peers = self.peers(own_address=(underlay or {}).get('address'))
                raw = dict(self.raw, peers=peers)
                if underlay:
                    raw['underlay'] = dict(raw['underlay'], **underlay)
                node = _node_boot.normalize(raw, self.path)
                if changed is None or underlay or reloaded:
                    _node_apply.apply(node, host, previous=self.raw, only=PARTS)
                else:
                    node.backend.apply_peers(node, host, changed, removed)
                    # the firewall's set of peers only when an address came or went
                    moved = set(p['underlay'] for p in peers) != set(p['underlay'] for p in self.raw['peers'])
                    _node_apply.apply(node, host, only=('nftables', 'saved contract') if moved else ('saved contract',))
                self.saved_text = host.read(self.path)
                self.raw, self.node = node.data, node
            except _node_apply.STEP_ERRORS + (ValueError,) as exc:  # pylint: disable=catching-non-exception
                failure = exc
            host.record_apply('agent', failure, agent=self._status())
        count = self.last_changes = len(host.report.changes)
        if forgot:
            self._settle()
        if failure is not None:
            raise ApplyFailed('%s: failed: %s' % (what, failure))
        if count:
            self.log('%s: %d change(s): %s' % (what, count, '; '.join(host.report.changes)))
        return failure is None

    # ---- etcd going back in time ------------------------------------------------------------------
    def _read_mark(self):
        """The saved revision, and the peers kept when it was saved (taken back from node.json: a restart or reboot
        must not drop them)."""
        try:
            with open(self.mark_path) as handle:
                saved = json.load(handle)
            kept = set(saved.get('kept') or [])
            self.kept = dict((peer['name'], peer) for peer in self.raw.get('peers') or [] if peer['name'] in kept)
            return int(saved['revision'])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return 0

    def _save_mark(self):
        """Remember the revision applied while nothing is kept (what etcd had when the peers matched it), and the
        names of the peers kept."""
        if not self.kept:
            self.mark = self.revision
        saved = {'revision': self.mark, 'kept': sorted(self.kept)}
        if saved == self._mark_saved:
            return
        try:
            _host.write_atomic(self.mark_path, json.dumps(saved) + '\n')
            self._mark_saved = saved
        except OSError as exc:
            self.log('could not save %s: %s' % (self.mark_path, exc))

    def _keep_lost_peers(self):
        """etcd listed a revision below the one applied before (restored from an older snapshot, or another cluster):
        the hosts that joined since are still there, so their peers stay until their leases are back."""
        listed = set(peer['name'] for peer in self.peers())
        for peer in self.raw.get('peers') or []:
            if peer['name'] not in listed and peer['name'] not in self.kept:
                self.kept[peer['name']] = peer

    def _forget_kept(self):
        """A site run saved this host's contract: the controller decided which peers it has, the kept ones included."""
        if not self.kept:
            return False
        self.log('a site run saved node.json: no longer keeping %s' % ', '.join(sorted(self.kept)))
        self.kept = {}
        return True

    def _settle(self):
        """synced, or degraded while peers etcd lost are kept."""
        self._save_mark()
        if not self.kept:
            self._set_state('synced', '')
            return
        self._set_state('degraded', 'etcd went back in time (it lists revision %d, this host had applied %d: restored from an older '
                                    'snapshot?): keeping %d peer(s) it no longer has (%s); run site on the group to register them '
                                    'again' % (self.revision, self.mark, len(self.kept), ', '.join(sorted(self.kept))))

    # ---- etcd --------------------------------------------------------------------------------
    def resync(self):
        """List the prefix and apply every peer: at start, after a compaction, a reconnect or an outage."""
        revision, kvs = self.client.range_prefix(self.subnets)
        self.mark = max(self.mark, self.revision) if not self.kept else self.mark  # what this process applied counts too
        self.kvs = {}
        for key, value, mod, _lease in kvs:
            self._take(key, value, mod)
        self.revision = revision
        if revision < self.mark:
            self._keep_lost_peers()
        peers = self.peers()
        self._apply(peers, 'listed %d lease(s) at revision %d' % (len(self.kvs), revision))
        self._settle()
        self.check_address()

    def _take(self, key, value, mod):
        try:
            host, record, data = schema.decode(key, value, self.subnets)
        except ValueError as exc:
            self.log('skipped etcd key %s: %s' % (key, exc))
            self.kvs.pop(key, None)
            return
        self.kvs[key] = (host, record, data, mod)

    def on_events(self, events):
        """One watch response (a transaction's events come together): apply what it changed of the peers."""
        before = dict((p['name'], p) for p in self.raw.get('peers') or [])
        for kind, key, value, mod in events:
            self.revision = max(self.revision, mod)
            if kind == 'DELETE':
                self.kvs.pop(key, None)
            else:
                self._take(key, value, mod)
        keeping = bool(self.kept)
        peers = self.peers()
        after = dict((p['name'], p) for p in peers)
        changed = [after[name] for name in sorted(after) if before.get(name) != after[name]]
        removed = [before[name] for name in sorted(before) if after.get(name) != before[name]]
        if not changed and not removed:
            if keeping and not self.kept:
                self._settle()  # the last lost lease is back as it was: synced again
            return
        what = '; '.join(['%s %s' % ('moved' if p['name'] in before else 'added', _peer_text(p)) for p in changed]
                         + ['removed %s' % _peer_text(p) for p in removed if p['name'] not in after])
        self._apply(peers, 'revision %d: %s' % (self.revision, what), changed, removed)
        self.state['changes'] += 1
        if keeping:
            self._settle()
        self._write_status()

    def own_lease(self):
        for key, (host, record, _data, mod) in self.kvs.items():
            if host == self.name:
                return key, record, mod
        return None, None, 0

    # ---- the underlay address ------------------------------------------------------------------
    def check_address(self):
        """The host's underlay address moved: re-point its own devices; then the lease, unless it publishes a public
        address (mesh_node_public_address). Also after a list: a re-registration that etcd refused during an outage."""
        now = _agent_address.current_underlay(self.raw['underlay'])
        if now is None:
            return
        if now['address'] != self.raw['underlay']['address']:
            self.log('underlay address moved from %s to %s' % (self.raw['underlay']['address'], now['address']))
            underlay = dict((k, v) for k, v in now.items() if k in self.raw['underlay'] or k in ('address', 'network'))
            # the peers again as from the new address: a stale lease that still claims it (its host gone, the address
            # handed on by DHCP) is left out and logged, or the contract would refuse every peer
            self._apply(self.peers(own_address=now['address']), 'underlay moved to %s' % now['address'], underlay=underlay)
        published = self.raw['agent'].get('public_address') or now['address']
        key, record, mod = self.own_lease()
        for _attempt in range(5):
            if key is None or record.get('underlay') == published:
                return  # no lease yet (site writes it), or it is right
            value = schema.lease_value(self.name, dict(record, underlay=published), schema.backend_settings(self.raw['backend']))
            if self.client.put_if(key, value, mod):
                self.log('lease %s re-registered at %s' % (key, published))
                return
            text, mod = self.client.get(key)  # written meanwhile (by a controller): again on what it is now
            if text is None:
                return
            _host_name, record, _data = schema.decode(key, text, self.subnets)
        self.log('lease %s: could not re-register (written by someone else each time)' % key)

    def _watch(self, events, revision, generation):
        """Thread: the watch's responses into events, then why it ended."""
        try:
            for changes in self.client.watch(self.subnets, revision, opened=lambda connection, endpoint: self._opened(connection, generation, endpoint)):
                events.put(('leases', changes))
        except _etcd.EtcdError as exc:
            events.put(('watch ended', exc))
        except Exception as exc:  # pylint: disable=broad-except  # never a watch that died without a word
            events.put(('watch ended', _etcd.EtcdError('unreachable', 'the watch failed: %r' % exc)))

    def _opened(self, connection, generation, endpoint=None):
        """A watch connected: kept for _stop_watch to close, or closed at once when it was stopped while it connected
        (etcd failing over): its thread then ends instead of streaming, for ever, into a queue nobody reads. The
        member it streams from is the one the health check asks."""
        with self._watch_lock:
            if generation == self._watch_generation:
                self.watch_connection, self.watched = connection, endpoint
                return
        _agent_etcd.shutdown(connection)

    def _start_watch(self, events):
        with self._watch_lock:
            generation = self._watch_generation
        threading.Thread(target=self._watch, args=(events, self.revision + 1, generation), daemon=True).start()

    def _stop_watch(self):
        with self._watch_lock:
            self._watch_generation += 1
            connection, self.watch_connection, self.watched = self.watch_connection, None, None
        _agent_etcd.shutdown(connection)

    # ---- state -----------------------------------------------------------------------------------
    def _status(self):
        return dict(self.state, revision=self.revision, leases=len(self.kvs), peers=len(self.raw.get('peers') or []))

    def _set_state(self, state, message):
        if state != self.state['state']:
            self.state.update(state=state, since=time.time())
            self.log('%s%s' % (state, ': ' + message if message else ''))
        self.state['message'] = message
        self._write_status()

    def _write_status(self):
        status = self._status()
        try:
            _host.write_atomic(STATUS_FILE, json.dumps(status, sort_keys=True) + '\n')
            last = json.loads(_host.Host.read(_host.LAST_APPLY_FILE) or '{}')
            if last.get('agent', {}).get('state') != status['state']:
                last['agent'] = status
                _host.write_atomic(_host.LAST_APPLY_FILE, json.dumps(last, sort_keys=True) + '\n')
        except (OSError, ValueError):
            pass  # best effort, as record_apply

    # ---- the loop ----------------------------------------------------------------------------------
    def run_once(self):
        """List, apply, then follow the watch until something goes wrong (raises EtcdError)."""
        # the watch has a connection of its own (the client's are this thread's); a new queue per watch, so
        # that the end of an earlier one cannot end this one; made before the list, so that an address event
        # during it is not lost with the old queue
        self.events = events = queue.Queue()
        self._address_pending.clear()
        self.resync()
        self._start_watch(events)
        due = time.monotonic() + HEALTH_EVERY
        try:
            while True:
                try:
                    kind, item = self.events.get(timeout=max(0.0, due - time.monotonic()))
                except queue.Empty:
                    kind, item = None, None
                if kind == 'leases':
                    self.on_events(item)
                elif kind == 'address':
                    time.sleep(ADDRESS_SETTLE)
                    self._address_pending.clear()  # events from now on wake us again
                    self.check_address()
                elif kind is not None:
                    raise item
                if time.monotonic() >= due:  # by the clock: a busy queue must not hide a lost quorum
                    due = time.monotonic() + HEALTH_EVERY
                    self.reconnect_if_rotated()
                    with self._watch_lock:
                        watched = self.watched
                    self.client.serving(self.subnets, watched)  # a hung watched member: list and watch elsewhere
                    if _host.Host.read(self.path) != self.saved_text:  # a site run applied (older) peers meanwhile
                        self._apply(self.peers(), 'node.json saved by a site run: the peers from the leases again')
                    self._save_mark()
        finally:
            self._stop_watch()

    def _address_changed(self):
        """From the address thread: one wake-up of the applying thread per burst of events."""
        if not self._address_pending.is_set():
            self._address_pending.set()
            self.events.put(('address', None))

    def run(self):
        threading.Thread(target=_agent_address.follow_addresses, args=(self._address_changed,), daemon=True).start()
        attempt = 0
        while True:
            try:
                self.reconnect_if_rotated()
                self.run_once()
            except _etcd.EtcdError as exc:
                if exc.kind == 'compacted':
                    self.log(str(exc))
                    continue
                if self.state['state'] == 'synced':
                    attempt = 0  # it had worked: start the back-off again
                self._set_state('degraded', '%s; the last applied peers stand' % exc)
            except (ValueError, ApplyFailed) as exc:  # node.json gone or invalid, or an apply failed: again after the back-off
                self._set_state('degraded', str(exc))
            except Exception as exc:  # pylint: disable=broad-except  # a bug or data nobody foresaw: never die on it
                # (systemd would restart the agent, and the list would meet the same data again)
                last = traceback.format_exception_only(type(exc), exc)[-1].strip()
                where = traceback.extract_tb(exc.__traceback__)[-1:]
                self.log('unexpected error%s: %s' % (' at %s:%d' % (where[0].filename, where[0].lineno) if where else '', last))
                self._set_state('degraded', 'unexpected error: %s; the last applied peers stand' % last)
            time.sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])
            attempt += 1


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    path = args[0] if args else _host.NODE_FILE
    try:
        agent = Agent(path)
    except (ValueError, OSError, _etcd.EtcdError) as exc:
        log('cannot start: %s' % exc)
        return 2
    log('following %s for %s (%s)' % (agent.subnets, agent.name, ', '.join(agent.client.endpoints)))
    agent.run()
    return 0
