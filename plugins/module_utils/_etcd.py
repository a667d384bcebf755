# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A small etcd v3 client over etcd's JSON gateway (``/v3/...``): standard library only (http.client, ssl).

Why not a client from PyPI (docs/leases.md, "Choice of client"): etcd3gw (pure Python, the
same gateway) talks to one endpoint only and has no user/password authentication;
python-etcd3 needs grpcio and has had no release since 2020. The lease store needs four
calls (authenticate, range, txn, and a put for tests), all JSON over HTTP(S); the node agent (_agent.py) also
watches a prefix (a streamed POST to /v3/watch).

Endpoints are tried in order, starting with the last one that answered: a member that is
down (connection refused, timeout) or that answers "unavailable" (no leader, no quorum) is
skipped, so one member of a three-member cluster down costs nothing.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import urllib.parse

from ansible_collections.overlay.mesh.plugins.module_utils._errors import OverlayMeshError

# gRPC status codes etcd returns in the gateway's error body.
_UNAVAILABLE = 14
_DEADLINE = 4
_UNAUTHENTICATED = 16
# Errors that one member gives while another may answer (leader lost, member starting or isolated).
_RETRY_ELSEWHERE = ('no leader', 'request timed out', 'not capable', 'unhealthy cluster', 'stopped',
                    'timed out', 'leader changed')
_BAD_TOKEN = ('invalid auth token', 'token')
_AUTH_ERRORS = ('permission denied', 'authentication failed', 'user name is empty', 'auth token')


class EtcdError(OverlayMeshError):
    """etcd could not be used; ``kind`` is 'unreachable', 'unavailable' (no quorum), 'auth' or 'request'."""

    def __init__(self, kind, message, written=0):
        self.kind = kind
        self.written = written  # transactions of this run that were written before the failure
        super().__init__(message)


def b64(text):
    return base64.b64encode(text.encode('utf-8')).decode('ascii')


def unb64(text):
    # a value someone wrote that is not UTF-8 must not stop every read of the prefix: its key is then refused as not flannel's
    return base64.b64decode(text).decode('utf-8', errors='replace')


def prefix_end(prefix):
    """range_end covering every key that starts with ``prefix`` (its last byte plus one)."""
    raw = bytearray(prefix.encode('utf-8'))
    while raw and raw[-1] == 0xff:
        raw.pop()
    raw[-1] += 1
    return base64.b64encode(bytes(raw)).decode('ascii')


class EtcdClient:
    """The v3 JSON gateway of one etcd cluster. ``requests`` counts the HTTP round trips made."""

    def __init__(self, endpoints, ca_file=None, cert_file=None, key_file=None, user=None, password=None, timeout=5.0):
        if isinstance(endpoints, str):
            endpoints = [endpoints]
        self.endpoints = [e.rstrip('/') for e in endpoints]
        self.user = user
        self.password = password
        self.timeout = timeout
        self.requests = 0
        self._token = None
        self._current = 0
        self._connections = {}  # endpoint -> kept-alive connection: a run makes two or three requests
        self._context = None
        if any(e.startswith('https://') for e in self.endpoints):
            # The members' certificates are checked against ca_file (the system's CAs when unset), names included.
            try:
                self._context = ssl.create_default_context(cafile=ca_file)
                if cert_file:
                    self._context.load_cert_chain(cert_file, key_file)
            except (OSError, ValueError) as exc:  # not PEM, a key that does not match its certificate
                raise EtcdError('auth', 'TLS files (CA %s, certificate %s, key %s): %s'
                                % (ca_file or 'the system\'s', cert_file, key_file, exc)) from None

    # ---- transport -------------------------------------------------------------------------

    def _connection(self, endpoint):
        conn = self._connections.get(endpoint)
        if conn is None:
            url = urllib.parse.urlsplit(endpoint)
            if url.scheme == 'https':
                conn = http.client.HTTPSConnection(url.hostname, url.port or 2379, timeout=self.timeout, context=self._context)
            elif url.scheme == 'http':
                conn = http.client.HTTPConnection(url.hostname, url.port or 2379, timeout=self.timeout)
            else:
                raise ValueError('%r is not an http:// or https:// URL' % endpoint)
            self._connections[endpoint] = conn
        return conn

    def _once(self, endpoint, path, body):
        """One POST; the reply's JSON (an error reply has a ``code``). OSError when the member cannot be reached."""
        headers = {'Content-Type': 'application/json'}
        if self._token:
            headers['Authorization'] = self._token
        data = json.dumps(body).encode('utf-8')
        for reused in (endpoint in self._connections, False):
            conn = self._connection(endpoint)
            self.requests += 1
            try:
                conn.request('POST', path, body=data, headers=headers)
                response = conn.getresponse()
                text = response.read()
                break
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                del self._connections[endpoint]
                if isinstance(exc, ssl.SSLError):
                    raise
                # A kept-alive connection the member closed meanwhile: once more on a new one.
                if not reused or isinstance(exc, TimeoutError):
                    raise OSError(str(exc) or type(exc).__name__) from None
        try:
            reply = json.loads(text.decode('utf-8')) if text else {}
        except ValueError:
            reply = {}
        if response.status != 200:
            reply.setdefault('code', -1)
            reply.setdefault('message', 'HTTP %d %s' % (response.status, response.reason))
        return reply

    def close(self):
        for conn in self._connections.values():
            conn.close()
        self._connections.clear()

    def call(self, path, body):
        """POST ``body`` to ``path`` on the first endpoint that answers; the gateway's reply.

        Authenticates first when a user is set, and once more when the token expired.
        """
        if self.user and self._token is None and path != '/v3/auth/authenticate':
            self._authenticate()
        reply = self._failover(path, body)
        if reply.get('code') and self.user and path != '/v3/auth/authenticate' \
                and any(word in reply.get('message', '') for word in _BAD_TOKEN):
            self._token = None
            self._authenticate()
            reply = self._failover(path, body)
        if reply.get('code'):
            message = reply.get('message') or reply.get('error') or str(reply)
            if reply['code'] == _UNAUTHENTICATED or any(w in message for w in _AUTH_ERRORS):
                raise EtcdError('auth', 'etcd refused the request: %s' % message)
            raise EtcdError('request', 'etcd: %s' % message)
        return reply

    def _failover(self, path, body):
        failures = []
        count = len(self.endpoints)
        for step in range(count):
            idx = (self._current + step) % count
            endpoint = self.endpoints[idx]
            try:
                reply = self._once(endpoint, path, body)
            except ssl.SSLError as exc:
                failures.append('%s: TLS: %s' % (endpoint, exc))
                continue
            except (OSError, ValueError) as exc:
                failures.append('%s: %s' % (endpoint, exc))
                continue
            message = str(reply.get('message', ''))
            if reply.get('code') in (_UNAVAILABLE, _DEADLINE) or (reply.get('code') and any(w in message for w in _RETRY_ELSEWHERE)):
                failures.append('%s: %s' % (endpoint, message))
                continue
            self._current = idx
            return reply
        unavailable = [f for f in failures if any(w in f for w in _RETRY_ELSEWHERE) or 'timed out' in f]
        if unavailable:
            raise EtcdError('unavailable', 'etcd answers but cannot serve the request (quorum lost? members down?) '
                                           'within %ss: %s' % (self.timeout, '; '.join(failures)))
        raise EtcdError('unreachable', 'no etcd endpoint answered: %s' % '; '.join(failures))

    def _authenticate(self):
        reply = self._failover('/v3/auth/authenticate', {'name': self.user, 'password': self.password or ''})
        if reply.get('code') or not reply.get('token'):
            raise EtcdError('auth', 'etcd authentication as user %s failed: %s'
                            % (self.user, reply.get('message') or reply.get('error') or reply))
        self._token = reply['token']

    # ---- the calls the lease store makes ---------------------------------------------------

    def range_prefix(self, prefix):
        """(revision, [(key, value, mod_revision, lease id)]) of every key under ``prefix``, in one request.

        Linearizable (the default): served through the leader, so a cluster without quorum
        answers with an error instead of stale data.
        """
        reply = self.call('/v3/kv/range', {'key': b64(prefix), 'range_end': prefix_end(prefix)})
        kvs = [(unb64(kv['key']), unb64(kv.get('value', '')), int(kv.get('mod_revision', 0)), int(kv.get('lease', 0)))
               for kv in reply.get('kvs', ())]
        return int(reply['header']['revision']), kvs

    def txn(self, compare, success):
        """Run one transaction; (whether its comparisons held and so its operations ran, the store's revision after it)."""
        reply = self.call('/v3/kv/txn', {'compare': compare, 'success': success})
        return bool(reply.get('succeeded')), int(reply['header']['revision'])

    def put(self, key, value, lease=0):
        body = {'key': b64(key), 'value': b64(value)}
        if lease:
            body['lease'] = str(lease)
        self.call('/v3/kv/put', body)

    def grant(self, ttl):
        """A lease of ``ttl`` seconds (flanneld's leases; used by tests)."""
        return int(self.call('/v3/lease/grant', {'TTL': str(ttl)})['ID'])

    # ---- the node agent's calls ------------------------------------------------------------

    def get(self, key):
        """(value, mod_revision) of one key, (None, 0) when it does not exist."""
        reply = self.call('/v3/kv/range', {'key': b64(key)})
        for kv in reply.get('kvs', ()):
            return unb64(kv.get('value', '')), int(kv.get('mod_revision', 0))
        return None, 0

    def put_if(self, key, value, mod_revision):
        """Write key only if it is still at mod_revision (0: does not exist); whether it was written."""
        compare = [{'key': b64(key), 'target': 'MOD', 'result': 'EQUAL', 'mod_revision': str(mod_revision)}]
        return self.txn(compare, [{'request_put': {'key': b64(key), 'value': b64(value)}}])[0]

    def serving(self, prefix, member=None):
        """Raise EtcdError unless the cluster serves a linearizable read under ``prefix`` now (a member without quorum
        does not; a key outside what the user may read would be refused). ``member``: the endpoint a watch streams
        from, asked first; that another member answered instead (it hangs, or is cut off) is an error too: its
        watch is as silent as its reads."""
        if member in self.endpoints:
            self._current = self.endpoints.index(member)
        self.call('/v3/kv/range', {'key': b64(prefix), 'range_end': prefix_end(prefix), 'count_only': True})
        if member in self.endpoints and self.endpoints[self._current] != member:
            raise EtcdError('unavailable', 'the watched member %s does not serve (%s does): watching again on a serving '
                                           'member' % (member, self.endpoints[self._current]))

    def watch(self, prefix, start_revision, opened=None):
        """Every change of the keys under ``prefix`` from ``start_revision`` on: yields the list of events
        [(type 'PUT' or 'DELETE', key, value, mod_revision)] of each watch response, on a connection of its own
        (``opened(connection, endpoint)`` is told it, so another thread can close it, and the member it streams
        from; a member without a leader refuses it: Grpc-Metadata-hasleader), until the stream ends: then
        EtcdError, kind 'compacted' when start_revision is no longer kept (list again), else 'unreachable'."""
        if self.user and self._token is None:
            self._authenticate()
        body = json.dumps({'create_request': {'key': b64(prefix), 'range_end': prefix_end(prefix),
                                              'start_revision': str(start_revision)}}).encode('utf-8')
        headers = {'Content-Type': 'application/json', 'Grpc-Metadata-hasleader': 'true'}
        if self._token:
            headers['Authorization'] = self._token
        failures = []
        for step in range(len(self.endpoints)):
            endpoint = self.endpoints[(self._current + step) % len(self.endpoints)]
            url = urllib.parse.urlsplit(endpoint)
            if url.scheme == 'https':
                conn = http.client.HTTPSConnection(url.hostname, url.port or 2379, timeout=self.timeout, context=self._context)
            else:
                conn = http.client.HTTPConnection(url.hostname, url.port or 2379, timeout=self.timeout)
            try:
                conn.request('POST', '/v3/watch', body=body, headers=headers)
                response = conn.getresponse()
                if response.status != 200:
                    raise OSError('HTTP %d %s' % (response.status, response.reason))
                conn.sock.settimeout(None)  # the stream is quiet while nothing changes ...
                _keepalive(conn.sock)  # ... but a member that went away without a word must end it
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                failures.append('%s: %s' % (endpoint, exc))
                continue
            if opened is not None:
                opened(conn, endpoint)
            try:
                yield from self._watch_stream(endpoint, response, start_revision)
            finally:
                conn.close()
        raise EtcdError('unreachable', 'no etcd endpoint took the watch: %s' % '; '.join(failures))

    @staticmethod
    def _watch_stream(endpoint, response, start_revision):
        while True:
            try:
                line = response.readline()
            except (OSError, ValueError, http.client.HTTPException) as exc:
                raise EtcdError('unreachable', 'the watch on %s broke: %s' % (endpoint, exc)) from None
            if not line:
                raise EtcdError('unreachable', 'the watch on %s ended' % endpoint)
            try:
                message = json.loads(line.decode('utf-8'))
            except ValueError:
                continue
            if message.get('error'):
                error = message['error']
                raise EtcdError('unreachable', 'the watch on %s failed: %s' % (endpoint, error.get('message') or error))
            result = message.get('result') or {}
            if int(result.get('compact_revision') or 0):
                raise EtcdError('compacted', 'etcd compacted past revision %s (now %s): listing again'
                                % (start_revision, result['compact_revision']))
            if result.get('canceled'):
                raise EtcdError('unreachable', 'etcd cancelled the watch on %s: %s' % (endpoint, result.get('cancel_reason')))
            events = [(event.get('type') or 'PUT', unb64(event['kv']['key']), unb64(event['kv'].get('value') or ''),
                       int(event['kv'].get('mod_revision') or 0)) for event in result.get('events') or ()]
            if events:
                yield events
    # ---- the auth API: users and roles (the node agents' identities, docs/agent.md) ----
    # Keys and range ends are text here (the gateway wants base64); a permission is (type, key, range_end),
    # type READ, WRITE or READWRITE, range_end '' for one key.

    def authenticate_as(self, name, password):
        """How etcd answers ``name`` with ``password``, without changing this client's own token:
        'ok', 'wrong' (a wrong password, or no such user), 'no-password' (a user that has none: its
        client certificate's CN authenticates it, over gRPC only) or 'disabled' (auth is not enabled)."""
        reply = self._failover('/v3/auth/authenticate', {'name': name, 'password': password or ''})
        message = str(reply.get('message') or reply.get('error') or '')
        if not reply.get('code'):
            return 'ok'
        if 'not enabled' in message:
            return 'disabled'
        if 'no password user' in message:
            return 'no-password'
        if 'authentication failed' in message:
            return 'wrong'
        raise EtcdError('request', 'etcd: authenticate %s: %s' % (name, message))

    def _absent(self, path, body, missing):
        """The reply, or None when etcd says the user or role does not exist."""
        try:
            return self.call(path, body)
        except EtcdError as exc:
            if exc.kind == 'request' and missing in str(exc):
                return None
            raise

    def role_list(self):
        return list(self.call('/v3/auth/role/list', {}).get('roles', ()))

    def role_get(self, name):
        """The role's permissions as a sorted list of (type, key, range_end), or None when there is no such role."""
        reply = self._absent('/v3/auth/role/get', {'role': name}, 'role name not found')
        if reply is None:
            return None
        return sorted((perm.get('permType', 'READ'), _text(perm.get('key', '')), _text(perm.get('range_end', '')))
                      for perm in reply.get('perm', ()))

    def role_add(self, name):
        self.call('/v3/auth/role/add', {'name': name})

    def role_delete(self, name):
        self.call('/v3/auth/role/delete', {'role': name})

    def role_grant(self, name, perm_type, key, range_end=''):
        """Grant a permission; one on the same key and range end changes its type."""
        perm = {'permType': perm_type, 'key': _raw(key)}
        if range_end:
            perm['range_end'] = _raw(range_end)
        self.call('/v3/auth/role/grant', {'name': name, 'perm': perm})

    def role_revoke(self, name, key, range_end=''):
        body = {'role': name, 'key': _raw(key)}
        if range_end:
            body['range_end'] = _raw(range_end)
        self.call('/v3/auth/role/revoke', body)

    def user_list(self):
        return list(self.call('/v3/auth/user/list', {}).get('users', ()))

    def user_get(self, name):
        """The user's roles (sorted), or None when there is no such user."""
        reply = self._absent('/v3/auth/user/get', {'name': name}, 'user name not found')
        return None if reply is None else sorted(reply.get('roles', ()))

    def user_add(self, name, password=None):
        """A user with ``password``; without one, a user that only its client certificate's CN authenticates."""
        body = {'name': name, 'password': password} if password else {'name': name, 'options': {'no_password': True}}
        self.call('/v3/auth/user/add', body)

    def user_delete(self, name):
        self.call('/v3/auth/user/delete', {'name': name})

    def user_grant(self, name, role):
        self.call('/v3/auth/user/grant', {'user': name, 'role': role})

    def user_changepw(self, name, password):
        self.call('/v3/auth/user/changepw', {'name': name, 'password': password})


def _raw(text):
    """Base64 of a key given as text (surrogate escapes stand for bytes that are not UTF-8)."""
    return base64.b64encode(text.encode('utf-8', 'surrogateescape')).decode('ascii')


def _text(raw):
    return base64.b64decode(raw).decode('utf-8', 'surrogateescape')


def _keepalive(sock, idle=10, interval=5, count=3):
    """TCP keepalive on a long-lived stream: a peer that vanished (power lost, a partition) ends it in idle + interval *
    count seconds, instead of never."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (('TCP_KEEPIDLE', idle), ('TCP_KEEPINTVL', interval), ('TCP_KEEPCNT', count)):
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
