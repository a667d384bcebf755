# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Least-privilege etcd identities of the node agents (docs/agent.md).

Each host gets an etcd role and a user of one name (``overlay-mesh-<inventory_hostname>`` unless the
inventory names it): the role may read the whole prefix and read and write the host's own lease key
only. ``plan`` reads the cluster's auth state and works out what differs; ``apply`` makes it so. Nothing
is written before every host's input was checked and the state of every identity read.
"""

from __future__ import annotations

import base64

from ansible_collections.overlay.mesh.plugins.module_utils import _etcd
from ansible_collections.overlay.mesh.plugins.module_utils._errors import OverlayMeshError
from ansible_collections.overlay.mesh.plugins.plugin_utils import _leases, _registry

NAME_PREFIX = 'overlay-mesh-'
AUTH_MODES = ('password', 'certificate')
READ, READWRITE = 'READ', 'READWRITE'


class IdentityError(OverlayMeshError):
    """Bad input or a cluster the identities cannot be made on; ``problems`` lists each, naming host and variable."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__('; '.join(self.problems))


def default_name(host):
    return NAME_PREFIX + host


def wanted_permissions(prefix, lease_key):
    """Read on every key under ``<prefix>/``, read and write on the lease key alone (sorted as role_get gives them)."""
    directory = prefix.rstrip('/') + '/'
    end = base64.b64decode(_etcd.prefix_end(directory)).decode('utf-8', 'surrogateescape')
    return sorted([(READ, directory, end), (READWRITE, lease_key, '')])


def check_input(identities, remove, auth, variables, reserved=()):
    """Problems of the hosts' input, all at once. ``identities``: host -> {user, password, lease};
    ``remove``: host -> user; ``variables`` names the role variables for messages; ``reserved``: users that are
    not agents (the admin, the controller's), each a (name, variable) pair."""
    problems = []
    users = {}
    others = dict(reserved)
    for host in sorted(identities):
        spec = identities[host]
        user = spec['user']
        if not user or user == 'root' or any(c.isspace() for c in user):
            problems.append('%s: %s: %r cannot name an agent (empty, root or with spaces)' % (host, variables['user'], user))
        elif user in others:
            problems.append('%s: %s: %r is the user of %s, not an agent\'s' % (host, variables['user'], user, others[user]))
        users.setdefault(user, []).append(host)
        lease = spec.get('lease') or {}
        if not (lease.get(_leases.FIELD_V4) or lease.get(_leases.FIELD_V6)):
            problems.append('%s: has no lease yet (its identity needs its lease key)' % host)
        if auth == 'password' and not spec.get('password'):
            problems.append('%s: %s: required with %s=password (a password per host, vaulted)'
                            % (host, variables['password'], variables['auth']))
        if auth == 'certificate' and spec.get('password'):
            problems.append('%s: %s: not used with %s=certificate (the certificate\'s CN is the user); leave it unset'
                            % (host, variables['password'], variables['auth']))
    for user, hosts in sorted(users.items()):
        if len(hosts) > 1:
            problems.append('%s: %s: one user %r for several hosts; each host needs its own'
                            % (', '.join(hosts), variables['user'], user))
    for host, user in sorted(remove.items()):
        if user in users:
            problems.append('%s: %s: %r is also the user of %s, which stays' % (host, variables['user'], user, ', '.join(users[user])))
    if auth not in AUTH_MODES:
        problems.append('%s: %r is not one of %s' % (variables['auth'], auth, ', '.join(AUTH_MODES)))
    return problems


class Plan:
    """What differs between the identities asked for and etcd's auth state, step by step."""

    def __init__(self):
        self.steps = []  # (description, callable taking the client)
        self.before = []  # lines of the identities' state before, for the diff
        self.after = []
        self.hosts = {}  # host -> list of step descriptions
        self.warnings = []

    def add(self, host, description, action):
        self.steps.append((description, action))
        self.hosts.setdefault(host, []).append(description)

    @property
    def changed(self):
        return bool(self.steps)


def _describe(name, perms, roles, auth_state):
    if perms is None and roles is None:
        return []
    lines = []
    if perms is not None:
        lines.append('role %s:' % name)
        lines += ['  %s %s%s' % (kind.lower(), key, ' .. %s' % end if end else '') for kind, key, end in perms]
    if roles is not None:
        lines.append('user %s: roles [%s], %s' % (name, ', '.join(roles), auth_state))
    return lines


def _auth_state(client, user, password, auth):
    """'password' (the one asked for), 'other password', 'no password', as far as etcd tells."""
    answer = client.authenticate_as(user, password if auth == 'password' else '')
    return {'ok': 'password', 'wrong': 'other password', 'no-password': 'no password'}.get(answer, answer)


def plan(client, prefix, identities, remove, auth):
    """Read the auth state of every identity and work out the steps; writes nothing."""
    result = Plan()
    wanted_auth = 'password' if auth == 'password' else 'no password'
    for host in sorted(identities):
        spec = identities[host]
        name = spec['user']
        lease_key = _registry.subnet_key(prefix, spec['lease'])
        perms = client.role_get(name)
        roles = client.user_get(name)
        state = _auth_state(client, name, spec.get('password'), auth) if roles is not None else None
        wanted = wanted_permissions(prefix, lease_key)
        result.before += _describe(name, perms, roles, state)
        result.after += _describe(name, wanted, sorted(set(roles or ()) | {name}), wanted_auth)
        if perms is None:
            result.add(host, 'role %s added' % name, lambda c, n=name: c.role_add(n))
        have = perms or []
        for perm in wanted:
            if perm not in have:
                result.add(host, 'role %s: %s %s granted' % (name, perm[0].lower(), perm[1]),
                           lambda c, n=name, p=perm: c.role_grant(n, *p))
        places = {(key, end) for dummy, key, end in wanted}
        for kind, key, end in have:
            if (key, end) not in places:  # a permission on the same key and range was changed by the grant
                result.add(host, 'role %s: %s %s revoked' % (name, kind.lower(), key),
                           lambda c, n=name, k=key, e=end: c.role_revoke(n, k, e))
        recreate = roles is not None and (state == 'no password') != (auth == 'certificate')
        if recreate:
            # etcd cannot switch a user between a password and none: the user is made again, with its roles.
            result.add(host, 'user %s made again with %s' % (name, wanted_auth), lambda c, n=name: c.user_delete(n))
        if roles is None or recreate:
            result.add(host, 'user %s added' % name, lambda c, n=name, pw=spec.get('password'): c.user_add(n, pw))
            for role in sorted(set(roles or ()) | {name}):
                result.add(host, 'user %s: role %s granted' % (name, role), lambda c, n=name, r=role: c.user_grant(n, r))
        else:
            if name not in roles:
                result.add(host, 'user %s: role %s granted' % (name, name), lambda c, n=name: c.user_grant(n, n))
            if state == 'other password':
                result.add(host, 'user %s: password changed' % name,
                           lambda c, n=name, pw=spec['password']: c.user_changepw(n, pw))
        extra = sorted(set(roles or ()) - {name})
        if extra:
            result.warnings.append('%s: etcd user %s also has role(s) %s, not given by the role; they are left as they are '
                                   '(revoke them for least privilege)' % (host, name, ', '.join(extra)))
    for host in sorted(remove):
        name = remove[host]
        perms = client.role_get(name)
        roles = client.user_get(name)
        result.before += _describe(name, perms, roles, 'left' if roles is not None else None)
        if roles is not None:
            result.add(host, 'user %s deleted (host leaves)' % name, lambda c, n=name: c.user_delete(n))
        if perms is not None:
            result.add(host, 'role %s deleted (host leaves)' % name, lambda c, n=name: c.role_delete(n))
    return result


def apply(client, plan_):
    """Write the plan's steps in order; an EtcdError part-way says in ``written`` how many were written."""
    for done, (dummy, action) in enumerate(plan_.steps):
        try:
            action(client)
        except _etcd.EtcdError as exc:
            exc.written = done
            raise
