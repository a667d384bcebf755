# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node agents' least-privilege etcd identities (overlay.mesh.etcd_identities) on a real etcd with auth
enabled: node1's identity reads the prefix and writes its own lease key, and is refused writing node2's key,
a key outside the prefix or the network's config. A second run changes nothing; check mode and refused input
change nothing (the whole auth state is compared before and after)."""

from __future__ import annotations

import subprocess

import pytest

from ansible_collections.overlay.mesh.plugins.action.etcd_identities import ARGUMENT_SPEC, admin_client, run_identities
from ansible_collections.overlay.mesh.plugins.module_utils import _etcd
from ansible_collections.overlay.mesh.plugins.plugin_utils import _etcd_identities as I

import etcd_lab  # pylint: disable=wrong-import-order

PREFIX = '/coreos.com/network'
LEASES = {'node1': {'subnet': '10.244.1.0/24'}, 'node2': {'subnet': '10.244.2.0/24', 'ipv6_subnet': 'fd00:1::/64'}}
KEY1 = PREFIX + '/subnets/10.244.1.0-24'
KEY2 = PREFIX + '/subnets/10.244.2.0-24&fd00:1::-64'


def enable_auth(cluster):
    admin = cluster.client()
    admin.put(PREFIX + '/config', '{"Network": "10.244.0.0/16"}')
    admin.put(KEY1, '{"PublicIP": "198.18.0.1"}')
    admin.put(KEY2, '{"PublicIP": "198.18.0.2"}')
    admin.call('/v3/auth/user/add', {'name': 'root', 'password': 'rootpw'})
    admin.call('/v3/auth/user/grant', {'user': 'root', 'role': 'root'})
    admin.call('/v3/auth/enable', {})
    return cluster.client(user='root', password='rootpw')


@pytest.fixture(name='cluster')
def fixture_cluster(tmp_path):
    cluster = etcd_lab.Cluster(tmp_path).start()
    cluster.admin = enable_auth(cluster)
    yield cluster
    cluster.stop()


def args_for(cluster, **changes):
    args = {name: spec.get('default') for name, spec in ARGUMENT_SPEC.items()}
    args.update(hosts=['node1', 'node2'], leases=LEASES, passwords={'node1': 'pw1', 'node2': 'pw2'},
                admin_user='root', admin_password='rootpw', etcd_endpoints=cluster.endpoints, etcd_prefix=PREFIX)
    args.update(changes)
    return args


def run(cluster, check_mode=False, **changes):
    """One run of the action's work, with the client the action makes from its options."""
    args = args_for(cluster, **changes)
    client = admin_client(args)
    try:
        return run_identities(client, args, check_mode)
    finally:
        client.close()


def auth_state(admin):
    """Every role with its permissions and every user with its roles: the whole auth state."""
    return {'roles': {name: admin.role_get(name) for name in admin.role_list()},
            'users': {name: admin.user_get(name) for name in admin.user_list()}}


def refused(client, key):
    with pytest.raises(_etcd.EtcdError) as err:
        client.put(key, 'x')
    return err.value.kind == 'auth' and 'permission denied' in str(err.value)


def test_identities_least_privilege_idempotent_check_mode(cluster):
    before = auth_state(cluster.admin)
    plan, report = run(cluster, check_mode=True)
    assert plan.changed and 'role overlay-mesh-node1 added' in report['node1']['changes']
    assert auth_state(cluster.admin) == before  # check mode wrote nothing

    plan, report = run(cluster)
    assert plan.changed and report['node2']['lease_key'] == KEY2
    state = auth_state(cluster.admin)
    assert state['roles']['overlay-mesh-node1'] == sorted([('READ', PREFIX + '/', PREFIX + '0'), ('READWRITE', KEY1, '')])
    assert state['users']['overlay-mesh-node2'] == ['overlay-mesh-node2']
    assert plan.before == [] and 'role overlay-mesh-node1:' in plan.after
    assert not any('pw1' in line for line in plan.after)

    node1 = cluster.client(user='overlay-mesh-node1', password='pw1')
    revision, kvs = node1.range_prefix(PREFIX + '/')
    assert {key for key, *dummy in kvs} == {PREFIX + '/config', KEY1, KEY2}
    node1.put(KEY1, '{"PublicIP": "198.18.0.11"}')  # its own lease
    mod = next(m for key, dummy, m, dummy2 in node1.range_prefix(KEY1)[1] if key == KEY1)
    assert node1.txn([{'key': _etcd.b64(KEY1), 'target': 'MOD', 'mod_revision': str(mod)}],
                     [{'request_put': {'key': _etcd.b64(KEY1), 'value': _etcd.b64('{"PublicIP": "198.18.0.12"}')}}])[0]
    assert refused(node1, KEY2)  # another host's lease
    assert refused(node1, PREFIX + '/subnets/10.244.3.0-24')  # a lease it does not hold
    assert refused(node1, PREFIX + '/config')
    assert refused(node1, '/elsewhere/key')
    with pytest.raises(_etcd.EtcdError) as err:
        node1.call('/v3/kv/deleterange', {'key': _etcd.b64(KEY2)})
    assert err.value.kind == 'auth'
    assert dict((k, v) for k, v, *dummy in cluster.admin.range_prefix(KEY2)[1])[KEY2] == '{"PublicIP": "198.18.0.2"}'
    assert revision > 0

    again = auth_state(cluster.admin)
    for check_mode in (True, False):
        plan, report = run(cluster, check_mode=check_mode)
        assert not plan.changed and report['node1']['changes'] == [] and plan.before == plan.after
    assert auth_state(cluster.admin) == again


def test_moved_lease_new_password_and_a_host_that_leaves(cluster):
    run(cluster)
    moved = dict(LEASES, node1={'subnet': '10.244.7.0/24'})
    plan, report = run(cluster, leases=moved, passwords={'node1': 'pw1-new', 'node2': 'pw2'})
    assert report['node1']['changes'] == ['role overlay-mesh-node1: readwrite %s/subnets/10.244.7.0-24 granted' % PREFIX,
                                          'role overlay-mesh-node1: readwrite %s revoked' % KEY1,
                                          'user overlay-mesh-node1: password changed']
    assert report['node2']['changes'] == []
    with pytest.raises(_etcd.EtcdError):
        cluster.client(user='overlay-mesh-node1', password='pw1').range_prefix(PREFIX + '/')
    node1 = cluster.client(user='overlay-mesh-node1', password='pw1-new')
    node1.put(PREFIX + '/subnets/10.244.7.0-24', '{}')
    assert refused(node1, KEY1)  # its old lease, free for another host now

    plan, report = run(cluster, hosts=['node1'], remove=['node2'], leases=moved)
    assert report['node2']['changes'] == ['user overlay-mesh-node2 deleted (host leaves)',
                                          'role overlay-mesh-node2 deleted (host leaves)']
    state = auth_state(cluster.admin)
    assert 'overlay-mesh-node2' not in state['users'] and 'overlay-mesh-node2' not in state['roles']
    assert state['users']['root'] == ['root']  # nothing else touched
    assert not run(cluster, hosts=['node1'], remove=['node2'], leases=moved)[0].changed


def test_a_role_given_by_hand_is_left_with_a_warning(cluster):
    run(cluster)
    cluster.admin.role_add('ops')
    cluster.admin.user_grant('overlay-mesh-node1', 'ops')
    plan, dummy = run(cluster)
    assert not plan.changed and plan.warnings and 'ops' in plan.warnings[0]
    assert cluster.admin.user_get('overlay-mesh-node1') == ['ops', 'overlay-mesh-node1']


@pytest.mark.parametrize('changes, words', [
    ({'passwords': {'node1': 'pw1'}}, ['node2: mesh_node_agent_etcd_password: required']),
    ({'leases': {'node1': LEASES['node1']}}, ['node2: has no lease yet']),
    ({'users': {'node1': 'same', 'node2': 'same'}}, ['node1, node2: mesh_node_agent_etcd_user', 'one user']),
    ({'users': {'node1': 'root'}}, ['node1: mesh_node_agent_etcd_user', 'root']),
    ({'users': {'node2': 'leases'}, 'controller_user': 'leases'}, ["node2: mesh_node_agent_etcd_user: 'leases' is the user of mesh_node_etcd_user"]),
    ({'users': {'node2': 'admin'}, 'admin_user': 'admin'}, ["node2: mesh_node_agent_etcd_user: 'admin' is the user of mesh_node_etcd_admin_user"]),
    ({'admin_password': 'wrong'}, ['mesh_node_etcd_admin_user', 'mesh_node_etcd_admin_password', 'refused: no such user']),
    ({'admin_user': 'overlay-mesh-node2', 'admin_password': 'pw2', 'hosts': ['node1']},
     ['refused (it needs the root role)', 'permission denied']),
])
def test_bad_input_and_a_refused_admin_change_nothing(cluster, changes, words):
    run(cluster)
    before = auth_state(cluster.admin)
    with pytest.raises(I.IdentityError) as err:
        run(cluster, **dict({'hosts': ['node1', 'node2'], 'remove': []}, **changes))
    assert all(word in str(err.value) for word in words), str(err.value)
    assert auth_state(cluster.admin) == before


def test_auth_not_enabled_is_refused(tmp_path):
    cluster = etcd_lab.Cluster(tmp_path).start()
    try:
        admin = cluster.client()
        with pytest.raises(I.IdentityError) as err:
            run_identities(admin, args_for(cluster), False)
        assert 'etcd auth is not enabled' in str(err.value) and 'mesh_node_etcd_admin_user' in str(err.value)
        assert admin.user_list() == [] and admin.role_list() == []
    finally:
        cluster.stop()


def certificate_without_cn(cluster):
    """A client certificate of the lab's CA whose subject has no CN: the only kind etcd's JSON gateway serves
    when client-cert-auth and auth are both on (one with a CN gets HTTP 400, "CommonName ... will be ignored")."""
    pki = cluster.root / 'pki'
    for args in (['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'nocn.key',
                  '-out', 'nocn.csr', '-subj', '/O=overlay-mesh'],
                 ['x509', '-req', '-in', 'nocn.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2',
                  '-out', 'nocn.crt', '-extfile', 'client.ext']):
        subprocess.run(['openssl'] + args, cwd=pki, check=True, capture_output=True)
    return {'cert_file': str(pki / 'nocn.crt'), 'key_file': str(pki / 'nocn.key')}


def test_tls_certificate_and_password_identities(tmp_path):
    """With client-cert-auth: certificate identities (no password; etcd takes the user from the CN, over gRPC)
    and password identities over TLS, through the gateway with a certificate without CN."""
    cluster = etcd_lab.Cluster(tmp_path, tls=True).start()
    try:
        enable_auth(cluster)
        cluster.certs.update(certificate_without_cn(cluster))
        cluster.admin = cluster.client(user='root', password='rootpw')
        users = {'node1': 'client'}  # the CN of the lab's other client certificate
        tls = {'etcd_ca_file': cluster.certs['ca_file'], 'etcd_cert_file': cluster.certs['cert_file'],
               'etcd_key_file': cluster.certs['key_file']}
        plan, report = run(cluster, auth='certificate', passwords={}, users=users, **tls)
        assert plan.changed and 'user client added' in report['node1']['changes']
        assert cluster.admin.authenticate_as('client', '') == 'no-password'
        assert cluster.admin.role_get('client') == sorted([('READ', PREFIX + '/', PREFIX + '0'), ('READWRITE', KEY1, '')])
        assert not run(cluster, auth='certificate', passwords={}, users=users, **tls)[0].changed
        # The gateway does not take a user from a CN: with the CN certificate, etcd refuses every request.
        with pytest.raises(_etcd.EtcdError) as err:
            cluster.client(cert_file=str(cluster.root / 'pki/client.crt'), key_file=str(cluster.root / 'pki/client.key'),
                           user='root', password='rootpw').role_list()
        assert 'HTTP 400' in str(err.value)
        before = auth_state(cluster.admin)
        with_cn = dict(tls)
        with_cn.update(etcd_cert_file=str(cluster.root / 'pki/client.crt'), etcd_key_file=str(cluster.root / 'pki/client.key'))
        with pytest.raises(I.IdentityError) as err:
            run(cluster, users=users, **with_cn)
        assert 'mesh_node_etcd_cert_file' in str(err.value) and 'has no CN' in str(err.value)
        assert auth_state(cluster.admin) == before
        # Switching to passwords makes the user again, with a password; its role stays.
        plan, report = run(cluster, users=users, **tls)
        assert 'user client made again with password' in report['node1']['changes']
        assert cluster.admin.user_get('client') == ['client']
        node1 = cluster.client(user='client', password='pw1')
        node1.put(KEY1, '{}')
        assert refused(node1, KEY2)
        assert not run(cluster, users=users, **tls)[0].changed
        plan, report = run(cluster, auth='certificate', passwords={}, users=users, **tls)  # and back
        assert report['node1']['changes'] == ['user client made again with no password', 'user client added',
                                              'user client: role client granted']
        assert cluster.admin.authenticate_as('client', '') == 'no-password'
    finally:
        cluster.stop()
