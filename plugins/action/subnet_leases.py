# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of overlay.mesh.subnet_leases: allocate the overlay subnets on the controller.

Documentation: plugins/modules/subnet_leases.py (``ansible-doc overlay.mesh.subnet_leases``).
The work is done by plugins/plugin_utils/_leases.py; this file reads the options, finds the
lease file, holds its lock across read-modify-write and reports changed/diff.
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail

from ansible_collections.overlay.mesh.plugins.module_utils import _etcd
from ansible_collections.overlay.mesh.plugins.plugin_utils._controller_action import ControllerAction
from ansible_collections.overlay.mesh.plugins.plugin_utils import _leases, _registry

ARGUMENT_SPEC = {
    'hosts': {'type': 'list', 'elements': 'str', 'required': True},
    'network': {'type': 'str', 'default': _leases.DEFAULT_NETWORK},
    'subnet_len': {'type': 'int'},
    'subnet_min': {'type': 'str'},
    'subnet_max': {'type': 'str'},
    'ipv6_network': {'type': 'str'},
    'ipv6_subnet_len': {'type': 'int'},
    'ipv6_subnet_min': {'type': 'str'},
    'ipv6_subnet_max': {'type': 'str'},
    'pinned': {'type': 'dict', 'default': {}},
    'host_records': {'type': 'dict', 'default': {}},
    'underlay': {'type': 'dict', 'default': {}},
    'release': {'type': 'list', 'elements': 'str', 'default': []},
    'lease_file': {'type': 'path'},
    'lock_timeout': {'type': 'float', 'default': 60.0},
    'play_hosts': {'type': 'list', 'elements': 'str'},
    'registry': {'type': 'str', 'default': 'file', 'choices': ['file', 'etcd']},
    'etcd_endpoints': {'type': 'list', 'elements': 'str', 'default': []},
    'etcd_ca_file': {'type': 'path'},
    'etcd_cert_file': {'type': 'path'},
    'etcd_key_file': {'type': 'path'},
    'etcd_user': {'type': 'str'},
    'etcd_password': {'type': 'str', 'no_log': True},
    'etcd_prefix': {'type': 'str', 'default': _registry.DEFAULT_PREFIX},
    'etcd_timeout': {'type': 'float', 'default': 5.0},
    'etcd_attempts': {'type': 'int', 'default': 10},
    'etcd_max_txn_ops': {'type': 'int', 'default': 128},
    'etcd_flannel_peers': {'type': 'bool', 'default': False},
    'backend': {'type': 'dict', 'default': {}},
    'migrate': {'type': 'str', 'choices': ['import', 'export']},
}

# Problems name the option and the mesh_node role variable that sets it.
ROLE_VARS = {'etcd_endpoints': 'mesh_node_etcd_endpoints', 'etcd_ca_file': 'mesh_node_etcd_ca_file',
             'etcd_cert_file': 'mesh_node_etcd_cert_file', 'etcd_key_file': 'mesh_node_etcd_key_file',
             'etcd_user': 'mesh_node_etcd_user', 'etcd_password': 'mesh_node_etcd_password',
             'etcd_prefix': 'mesh_node_etcd_prefix', 'registry': 'mesh_node_registry'}


def _named(option):
    return '%s (role variable %s)' % (option, ROLE_VARS[option])


POOL_OPTIONS = ('network', 'subnet_len', 'subnet_min', 'subnet_max', 'ipv6_network', 'ipv6_subnet_len', 'ipv6_subnet_min',
                'ipv6_subnet_max')
# Those the mesh_node role sets from a variable of its own (mesh_node_<option>).
ROLE_POOL_OPTIONS = ('network', 'subnet_len', 'subnet_min', 'subnet_max', 'ipv6_network', 'ipv6_subnet_len')


def _pool_config(args):
    """The pools; LeaseError whose problems name the role variable (subnet_len: ... -> subnet_len (role variable
    mesh_node_subnet_len): ...)."""
    try:
        return _leases.make_config(**dict((option, args[option]) for option in POOL_OPTIONS))
    except _leases.LeaseError as exc:
        named = []
        for problem in exc.problems:
            option = next((o for o in sorted(ROLE_POOL_OPTIONS, key=len, reverse=True) if problem.startswith(o + ':')), None)
            named.append('%s (role variable mesh_node_%s)%s' % (option, option, problem[len(option):]) if option else problem)
        raise _leases.LeaseError(named) from None


def etcd_option_problems(args):
    """Problems of the etcd options, all at once, before anything is read."""
    problems = []
    endpoints = args['etcd_endpoints']
    if not endpoints:
        problems.append('%s: required with registry etcd, e.g. [https://10.0.0.1:2379]' % _named('etcd_endpoints'))
    for endpoint in endpoints:
        if not endpoint.startswith(('http://', 'https://')):
            problems.append('%s: %r is not a URL (http://host:port or https://host:port)' % (_named('etcd_endpoints'), endpoint))
    for option in ('etcd_ca_file', 'etcd_cert_file', 'etcd_key_file'):
        if args[option] and not os.path.isfile(args[option]):
            problems.append('%s: %s does not exist' % (_named(option), args[option]))
    if bool(args['etcd_cert_file']) != bool(args['etcd_key_file']):
        problems.append('%s and %s: set both or neither' % (_named('etcd_cert_file'), _named('etcd_key_file')))
    if args['etcd_password'] and not args['etcd_user']:
        problems.append('%s: a password needs %s' % (_named('etcd_password'), _named('etcd_user')))
    if not args['etcd_prefix'].startswith('/') or args['etcd_prefix'].rstrip('/') == '':
        problems.append('%s: %r must start with / and name a directory such as /coreos.com/network'
                        % (_named('etcd_prefix'), args['etcd_prefix']))
    if args['etcd_timeout'] <= 0 or args['etcd_attempts'] < 1 or args['etcd_max_txn_ops'] < 2:
        problems.append('etcd_timeout and etcd_attempts must be positive, etcd_max_txn_ops at least 2')
    return problems


def default_lease_file(task_vars):
    """``<inventory_dir>/.overlay-mesh-leases.yml`` of the host the task runs for, or None."""
    inventory_dir = task_vars.get('inventory_dir')
    if not inventory_dir:
        return None
    return os.path.join(str(inventory_dir), _leases.LEASE_FILE_NAME)


class ActionModule(ControllerAction):
    """Allocate, keep and release the overlay subnet of every host of the overlay."""

    def run(self, tmp=None, task_vars=None):
        result, args = self.start(tmp, task_vars, ARGUMENT_SPEC)
        task_vars = task_vars or {}

        etcd = args['registry'] == 'etcd'
        if args['migrate'] and not etcd:
            raise AnsibleActionFail('migrate: needs registry etcd (%s); it copies between the lease file and etcd' % _named('registry'))
        uses_file = not etcd or bool(args['migrate'])
        path = (args['lease_file'] or default_lease_file(task_vars)) if uses_file else None
        if uses_file and not path:
            raise AnsibleActionFail('lease_file: not set, and this host has no inventory_dir to put the lease file beside '
                                    '(implicit localhost?); set lease_file')
        if path:
            path = os.path.abspath(path)
            directory = os.path.dirname(path)
            if not os.path.isdir(directory):
                raise AnsibleActionFail('lease_file: directory %s of %s does not exist' % (directory, path))
        check_mode = bool(self._task.check_mode)
        inputs = {'pinned': args['pinned'], 'host_records': args['host_records'], 'underlay': args['underlay'],
                  'release': args['release'], 'play_hosts': args['play_hosts']}

        try:
            config = _pool_config(args)
            if etcd:
                where, alloc, old_text, new_text, changed = self._etcd(args, path, config, check_mode, inputs, result)
            else:
                where = path
                alloc, old_text, new_text = _leases.update_lease_file(
                    path, config, args['hosts'], check_mode=check_mode, lock_timeout=args['lock_timeout'], **inputs)
                changed = new_text != old_text
        except _leases.LeaseError as exc:
            # Expected failures (bad inventory data): a plain failed result listing every problem.
            result.update(failed=True, msg=str(exc), problems=exc.problems)
            return result
        except _etcd.EtcdError as exc:
            # Raised by the first (check-mode) leases task of the role, before any host is changed.
            hint = {'auth': '%s / %s' % (_named('etcd_user'), _named('etcd_password'))}.get(
                exc.kind, '%s and the cluster\'s health' % _named('etcd_endpoints'))
            if 'TLS' in str(exc) or 'SSL' in str(exc) or 'certificate' in str(exc):
                hint += ', %s, %s and %s' % (_named('etcd_ca_file'), _named('etcd_cert_file'), _named('etcd_key_file'))
            written = 'nothing was written' if not exc.written else 'the leases written stand, the next run completes them'
            result.update(failed=True, msg='subnet leases: registry etcd: %s (check %s); %s' % (exc, hint, written),
                          problems=[str(exc)], etcd_error=exc.kind)
            return result
        except OSError as exc:
            raise AnsibleActionFail('lease_file %s: %s' % (path, exc)) from None

        if path:
            result['lease_file'] = path
        result.update(
            changed=changed,
            leases=alloc.leases,
            added=alloc.added,
            released=alloc.released,
            moved=alloc.moved,
            recovered=alloc.recovered,
            orphaned=alloc.orphaned,
        )
        # The pools as the options name them: network (IPv4, or IPv6 alone) and ipv6_network.
        for prefix, pool in zip(('', 'ipv6_'), config.pools):
            result[prefix + 'network'] = str(pool.network)
            result[prefix + 'subnet_len'] = pool.subnet_len
        if alloc.warnings:
            result['warnings'] = alloc.warnings
        if changed and self._task.diff:
            result['diff'] = {'before': old_text, 'after': new_text, 'before_header': where, 'after_header': where}
        return result

    def _etcd(self, args, path, config, check_mode, inputs, result):
        """(where, allocation, before, after, changed) of the etcd store, or of a migration."""
        problems = etcd_option_problems(args)
        if problems:
            raise _leases.LeaseError(problems)
        client = _etcd.EtcdClient(args['etcd_endpoints'], ca_file=args['etcd_ca_file'], cert_file=args['etcd_cert_file'],
                                  key_file=args['etcd_key_file'], user=args['etcd_user'], password=args['etcd_password'],
                                  timeout=args['etcd_timeout'])
        try:
            return self._etcd_run(client, args, path, config, check_mode, inputs, result)
        finally:
            client.close()  # the kept-alive connections to the members

    @staticmethod
    def _etcd_run(client, args, path, config, check_mode, inputs, result):
        prefix = args['etcd_prefix'].rstrip('/')
        where = 'etcd %s %s' % (','.join(args['etcd_endpoints']), prefix)
        if args['migrate'] == 'export':
            alloc, before, after = _registry.export_to_file(client, path, config, args['hosts'], prefix=prefix,
                                                            check_mode=check_mode, lock_timeout=args['lock_timeout'], **inputs)
            result['etcd_requests'] = client.requests
            return path, alloc, before, after, before != after
        imported = _leases.read_lease_file(os.path.realpath(path))[1] if args['migrate'] == 'import' else None
        run = _registry.update_etcd(client, config, args['hosts'], prefix=prefix, backend=args['backend'],
                                    check_mode=check_mode, attempts=args['etcd_attempts'], imported=imported,
                                    max_ops=args['etcd_max_txn_ops'], flannel_peers=args['etcd_flannel_peers'], **inputs)
        result.update(etcd_requests=run.requests, etcd_attempts=run.attempts,
                      orphaned_revisions=dict((host, run.revisions[host]) for host in run.alloc.orphaned if host in run.revisions))
        if args['etcd_flannel_peers']:
            result['flannel_peers'] = run.flannel_peers
        return where, run.alloc, run.before, run.after, run.changed
