# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of overlay.mesh.etcd_identities: the node agents' etcd users and roles, made on the controller.

Documentation: plugins/modules/etcd_identities.py (``ansible-doc overlay.mesh.etcd_identities``).
The work is done by plugins/plugin_utils/_etcd_identities.py; this file reads the options, checks them
all, connects as the admin user and reports changed/diff.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail

from ansible_collections.overlay.mesh.plugins.action.subnet_leases import etcd_option_problems
from ansible_collections.overlay.mesh.plugins.module_utils import _etcd
from ansible_collections.overlay.mesh.plugins.plugin_utils._controller_action import ControllerAction
from ansible_collections.overlay.mesh.plugins.plugin_utils import _etcd_identities as I
from ansible_collections.overlay.mesh.plugins.plugin_utils import _registry

ARGUMENT_SPEC = {
    'hosts': {'type': 'list', 'elements': 'str', 'default': []},
    'leases': {'type': 'dict', 'default': {}},
    'users': {'type': 'dict', 'default': {}},
    'passwords': {'type': 'dict', 'default': {}, 'no_log': True},
    'remove': {'type': 'list', 'elements': 'str', 'default': []},
    'auth': {'type': 'str', 'default': 'password', 'choices': list(I.AUTH_MODES)},
    'admin_user': {'type': 'str', 'required': True},
    'admin_password': {'type': 'str', 'no_log': True},
    'controller_user': {'type': 'str'},
    'etcd_endpoints': {'type': 'list', 'elements': 'str', 'default': []},
    'etcd_ca_file': {'type': 'path'},
    'etcd_cert_file': {'type': 'path'},
    'etcd_key_file': {'type': 'path'},
    'etcd_prefix': {'type': 'str', 'default': _registry.DEFAULT_PREFIX},
    'etcd_timeout': {'type': 'float', 'default': 5.0},
}

# The mesh_node role variables behind the options, for messages.
VARIABLES = {'user': 'mesh_node_agent_etcd_user', 'password': 'mesh_node_agent_etcd_password',
             'auth': 'mesh_node_agent_etcd_auth', 'admin_user': 'mesh_node_etcd_admin_user',
             'admin_password': 'mesh_node_etcd_admin_password', 'endpoints': 'mesh_node_etcd_endpoints',
             'cert_file': 'mesh_node_etcd_cert_file', 'controller_user': 'mesh_node_etcd_user'}


def _admin(what):
    return 'the admin user (role variables %s / %s) %s' % (VARIABLES['admin_user'], VARIABLES['admin_password'], what)


def admin_client(args):
    return _etcd.EtcdClient(args['etcd_endpoints'], ca_file=args['etcd_ca_file'], cert_file=args['etcd_cert_file'],
                            key_file=args['etcd_key_file'], user=args['admin_user'], password=args['admin_password'],
                            timeout=args['etcd_timeout'])


def run_identities(client, args, check_mode):
    """(plan, per-host report) of one run; raises IdentityError or EtcdError before any write when something is wrong."""
    prefix = args['etcd_prefix'].rstrip('/')
    users = {host: (args['users'].get(host) or I.default_name(host)) for host in set(args['hosts']) | set(args['remove'])}
    identities = {host: {'user': users[host], 'password': args['passwords'].get(host), 'lease': args['leases'].get(host)}
                  for host in args['hosts']}
    remove = {host: users[host] for host in args['remove'] if host not in identities}
    reserved = [(args['admin_user'], VARIABLES['admin_user'])]
    if args['controller_user']:
        reserved.append((args['controller_user'], VARIABLES['controller_user']))
    problems = I.check_input(identities, remove, args['auth'], VARIABLES, reserved)
    if problems:
        raise I.IdentityError(problems)
    try:
        answer = client.authenticate_as(args['admin_user'], args['admin_password'])
    except _etcd.EtcdError as exc:
        if 'HTTP 400' in str(exc) and args['etcd_cert_file']:
            raise I.IdentityError(['%s: etcd refused the request (%s): with client-cert-auth and auth enabled, etcd\'s JSON '
                                   'gateway refuses a client certificate that has a CN (its user would be ignored); use one '
                                   'whose subject has no CN (docs/agent.md)' % (VARIABLES['cert_file'], exc)]) from None
        raise
    if answer == 'disabled':
        raise I.IdentityError(['etcd auth is not enabled on %s: per-host identities would restrict nothing; enable it '
                               '(etcdctl user add root; etcdctl auth enable, docs/agent.md) or leave %s unset'
                               % (', '.join(args['etcd_endpoints']), VARIABLES['admin_user'])])
    if answer != 'ok':
        raise I.IdentityError([_admin('was refused: %s' % {'wrong': 'no such user, or a wrong password',
                                                           'no-password': 'it has no password (a certificate user)'}[answer])])
    try:
        client.role_list()  # root's right: refused for a user without the root role
    except _etcd.EtcdError as exc:
        if exc.kind == 'auth':
            raise I.IdentityError([_admin('was refused (it needs the root role): %s' % exc)]) from None
        raise
    plan = I.plan(client, prefix, identities, remove, args['auth'])
    if not check_mode:
        I.apply(client, plan)
    report = {host: {'user': users[host], 'role': users[host], 'changes': plan.hosts.get(host, [])}
              for host in sorted(set(identities) | set(remove))}
    for host, spec in identities.items():
        report[host]['lease_key'] = _registry.subnet_key(prefix, spec['lease'])
    return plan, report


class ActionModule(ControllerAction):
    """Create or update each host's etcd role and user; delete those of hosts that leave."""

    def run(self, tmp=None, task_vars=None):
        result, args = self.start(tmp, task_vars, ARGUMENT_SPEC)
        problems = etcd_option_problems(dict(args, etcd_user=None, etcd_password=None, etcd_attempts=1, etcd_max_txn_ops=2))
        if problems:
            result.update(failed=True, msg='etcd identities: %s' % '; '.join(problems), problems=problems)
            return result
        try:
            client = admin_client(args)
            try:
                plan, report = run_identities(client, args, bool(self._task.check_mode))
            finally:
                client.close()
        except I.IdentityError as exc:
            result.update(failed=True, msg='etcd identities: nothing was changed: %s' % exc, problems=exc.problems)
            return result
        except _etcd.EtcdError as exc:
            hint = _admin('and its password') if exc.kind == 'auth' else 'role variable %s and the cluster\'s health' % VARIABLES['endpoints']
            written = ('nothing was changed' if not exc.written else
                       '%d change(s) were written and stand, the next run completes them' % exc.written)
            result.update(failed=True, msg='etcd identities: %s (check %s); %s' % (exc, hint, written), problems=[str(exc)],
                          etcd_error=exc.kind)
            return result
        except ValueError as exc:
            raise AnsibleActionFail('etcd identities: %s' % exc) from None
        result.update(changed=plan.changed, identities=report)
        if plan.warnings:
            result['warnings'] = plan.warnings
        if plan.changed and self._task.diff:
            where = 'etcd auth (%s)' % ', '.join(args['etcd_endpoints'])
            result['diff'] = {'before': ''.join(line + '\n' for line in plan.before),
                              'after': ''.join(line + '\n' for line in plan.after),
                              'before_header': where, 'after_header': where}
        return result
