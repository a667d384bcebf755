# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The etcd lease store against real etcd 3.4 servers (etcd_lab): flannel's schema, the allocation
rules, check mode, round trips, flanneld's leases, migration, two controllers at once, faults."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time

import pytest

from ansible_collections.overlay.mesh.plugins.module_utils import _etcd
from ansible_collections.overlay.mesh.plugins.plugin_utils import _registry as R
from ansible_collections.overlay.mesh.plugins.plugin_utils import _leases as L

import etcd_lab  # pylint: disable=wrong-import-order

CONFIG = L.make_config('10.244.0.0/16')
MAC = '02:00:00:00:00:%02x'


@pytest.fixture(scope='module')
def single(tmp_path_factory):
    cluster = etcd_lab.Cluster(tmp_path_factory.mktemp('etcd1')).start()
    yield cluster
    cluster.stop()


@pytest.fixture(name='store')
def store_fixture(single, request):
    """A client and a prefix of its own for each test (one etcd for the module)."""
    client = single.client()
    return client, '/test/%s' % request.node.name


def keys(client, prefix):
    return {k[len(prefix) + 1:]: (json.loads(v), mod, lease) for k, v, mod, lease in client.range_prefix(prefix + '/')[1]}


def under(*hosts):
    return {h: {'address': '192.168.1.%d' % (i + 1), 'vtep_mac': MAC % (i + 1)} for i, h in enumerate(hosts)}


def test_flannel_schema_and_one_range_one_txn(store):
    client, prefix = store
    run = R.update_etcd(client, CONFIG, ['n2', 'n1', 'n3'], prefix=prefix, underlay=under('n1', 'n2'),
                        backend={'type': 'vxlan', 'vni': 1, 'port': 8472})
    assert run.changed and run.requests == 2 and run.alloc.added == ['n1', 'n2', 'n3']
    got = keys(client, prefix)
    assert sorted(got) == ['config', 'subnets/10.244.1.0-24', 'subnets/10.244.2.0-24', 'subnets/10.244.3.0-24']
    config = got['config'][0]
    assert (config['Network'], config['SubnetLen'], config['Backend']) == ('10.244.0.0/16', 24, {'Type': 'vxlan', 'VNI': 1, 'Port': 8472})
    value, dummy, lease = got['subnets/10.244.1.0-24']
    assert value['PublicIP'] == '192.168.1.1' and value['BackendType'] == 'vxlan'
    assert value['BackendData'] == {'VNI': 1, 'VtepMAC': MAC % 1}
    assert value['OverlayMesh']['host'] == 'n1'
    assert lease == 0  # our leases carry no TTL
    assert got['subnets/10.244.3.0-24'][0]['OverlayMesh'] == {'host': 'n3'}

    revision = client.range_prefix(prefix + '/')[0]
    again = R.update_etcd(client, CONFIG, ['n1', 'n2', 'n3'], prefix=prefix, underlay=under('n1', 'n2'),
                          backend={'type': 'vxlan', 'vni': 1, 'port': 8472})
    assert not again.changed and again.requests == 1
    assert client.range_prefix(prefix + '/')[0] == revision  # nothing written
    assert again.before == again.after == L.render_lease_file(CONFIG, run.alloc.leases)


def test_dual_stack_key(store):
    client, prefix = store
    config = L.make_config('10.244.0.0/16', ipv6_network='fd00:244::/56')
    R.update_etcd(client, config, ['n1'], prefix=prefix)
    got = keys(client, prefix)
    assert 'subnets/10.244.1.0-24&fd00:244:0:1::-64' in got
    assert got['config'][0]['IPv6Network'] == 'fd00:244::/56' and got['config'][0]['EnableIPv6'] is True
    assert R.update_etcd(client, config, ['n1'], prefix=prefix).alloc.leases['n1'] == {
        'subnet': '10.244.1.0/24', 'ipv6_subnet': 'fd00:244:0:1::/64'}


def test_keep_pin_release_lowest_free_and_reregistration(store):
    client, prefix = store
    R.update_etcd(client, CONFIG, ['a', 'b', 'c'], prefix=prefix, underlay=under('a', 'b', 'c'))
    before = keys(client, prefix)
    # Release b: its key is deleted; d takes the lowest free subnet (b's); c's underlay moved.
    moved = under('a', 'b', 'c', 'd')
    moved['c']['address'] = '192.168.9.9'
    run = R.update_etcd(client, CONFIG, ['a', 'c', 'd', 'e'], prefix=prefix, underlay=moved, release=['b'],
                        pinned={'e': '10.244.200.0/24'})
    assert run.alloc.released == ['b'] and run.alloc.added == ['d']
    after = keys(client, prefix)
    assert after['subnets/10.244.2.0-24'][0]['OverlayMesh']['host'] == 'd'
    assert after['subnets/10.244.200.0-24'][0]['OverlayMesh']['host'] == 'e'
    # c re-registered in place: same key, new PublicIP; a untouched (same mod revision).
    assert after['subnets/10.244.3.0-24'][0]['PublicIP'] == '192.168.9.9'
    assert after['subnets/10.244.3.0-24'][1] > before['subnets/10.244.3.0-24'][1]
    assert after['subnets/10.244.1.0-24'][1] == before['subnets/10.244.1.0-24'][1]
    # The diff is the lease file's compact one.
    assert '  c: {subnet: "10.244.3.0/24", underlay: "192.168.1.3"' in run.before
    assert '  c: {subnet: "10.244.3.0/24", underlay: "192.168.9.9"' in run.after
    # A host leaving the list keeps its lease (orphaned); releasing it deletes its key.
    assert R.update_etcd(client, CONFIG, ['a', 'c', 'd'], prefix=prefix).alloc.orphaned == ['e']
    R.update_etcd(client, CONFIG, ['a', 'c', 'd'], prefix=prefix, release=['e'])
    assert 'subnets/10.244.200.0-24' not in keys(client, prefix)


def test_more_changes_than_max_txn_ops(store):
    client, prefix = store
    hosts = ['h%03d' % i for i in range(200)]
    run = R.update_etcd(client, CONFIG, hosts, prefix=prefix)
    assert run.requests == 1 + 2  # 201 puts (config included), 127 per transaction
    assert len(R.State(prefix, *client.range_prefix(prefix + '/')).leases) == 200
    assert R.update_etcd(client, CONFIG, hosts, prefix=prefix).requests == 1


def test_check_mode_reads_only(store):
    client, prefix = store
    R.update_etcd(client, CONFIG, ['a'], prefix=prefix)
    revision = client.range_prefix(prefix + '/')[0]
    run = R.update_etcd(client, CONFIG, ['a', 'b'], prefix=prefix, check_mode=True, release=['a'])
    assert run.changed and run.requests == 1 and run.alloc.leases == {'b': {'subnet': '10.244.1.0/24'}}
    assert client.range_prefix(prefix + '/')[0] == revision
    assert sorted(keys(client, prefix)) == ['config', 'subnets/10.244.1.0-24']


def test_flanneld_leases_are_taken(store):
    client, prefix = store
    lease = client.grant(3600)
    flannel = {'PublicIP': '192.168.7.7', 'BackendType': 'vxlan', 'BackendData': {'VNI': 1, 'VtepMAC': MAC % 77}}
    client.put(prefix + '/subnets/10.244.1.0-24', json.dumps(flannel), lease=lease)
    run = R.update_etcd(client, CONFIG, ['a', 'b'], prefix=prefix)
    assert run.alloc.leases == {'a': {'subnet': '10.244.2.0/24'}, 'b': {'subnet': '10.244.3.0/24'}}
    got = keys(client, prefix)
    assert got['subnets/10.244.1.0-24'][2] == lease  # flanneld's key untouched
    with pytest.raises(L.LeaseError) as err:
        R.update_etcd(client, CONFIG, ['a', 'b', 'c'], prefix=prefix, pinned={'c': '10.244.1.0/24'})
    assert 'subnet 10.244.1.0/24 claimed by two hosts: etcd key %s/subnets/10.244.1.0-24 (a flanneld lease (TTL) of 192.168.7.7' \
        % prefix in str(err.value)


def test_flannels_own_config_is_checked_never_overwritten(store):
    client, prefix = store
    theirs = json.dumps({'Network': '10.5.0.0/16', 'Backend': {'Type': 'vxlan'}})
    client.put(prefix + '/config', theirs)
    with pytest.raises(L.LeaseError) as err:
        R.update_etcd(client, CONFIG, ['a'], prefix=prefix)
    assert "(flannel's, not ours): Network is 10.5.0.0/16 but overlay.mesh has 10.244.0.0/16" in str(err.value)
    client.put(prefix + '/config', json.dumps({'Network': '10.244.0.0/16', 'Backend': {'Type': 'vxlan'}}))
    R.update_etcd(client, CONFIG, ['a'], prefix=prefix)
    assert keys(client, prefix)['config'][0] == {'Network': '10.244.0.0/16', 'Backend': {'Type': 'vxlan'}}


def test_every_problem_at_once_nothing_written(store):
    client, prefix = store
    R.update_etcd(client, CONFIG, ['a'], prefix=prefix)
    client.put(prefix + '/subnets/bogus', '{}')
    revision = client.range_prefix(prefix + '/')[0]
    small = L.make_config('10.244.0.0/28', subnet_len=30)
    with pytest.raises(L.LeaseError) as err:
        R.update_etcd(client, small, ['a', 'b', 'c', 'd', 'e'], prefix=prefix, pinned={'b': '10.9.0.0/30'})
    text = str(err.value)
    assert "etcd key %s/subnets/bogus: 'bogus' is not a subnet key" % prefix in text
    assert 'host a: etcd subnet: 10.244.1.0/24 lies outside network 10.244.0.0/28' in text
    assert 'host b: pinned: 10.9.0.0/30 lies outside network 10.244.0.0/28' in text
    assert client.range_prefix(prefix + '/')[0] == revision


def test_import_export_round_trip(store, tmp_path):
    client, prefix = store
    config = L.make_config('10.244.0.0/16', ipv6_network='fd00:244::/56')
    source = tmp_path / 'leases.yml'
    alloc = L.update_lease_file(str(source), config, ['a', 'b', 'c'], underlay=under('a', 'b', 'c'),
                                pinned={'c': ['10.244.77.0/24', 'fd00:244:0:77::/64']})[0]
    L.update_lease_file(str(source), config, ['a', 'c'])  # b stays leased, orphaned: it must survive too
    # import: every lease of the file lands in etcd, the etcd's own (x) kept
    R.update_etcd(client, config, ['x'], prefix=prefix, pinned={'x': ['10.244.50.0/24', 'fd00:244:0:50::/64']})
    run = R.update_etcd(client, config, ['a', 'c', 'x'], prefix=prefix, imported=L.read_lease_file(str(source))[1])
    assert run.changed and sorted(run.alloc.leases) == ['a', 'b', 'c', 'x']
    assert R.State(prefix, *client.range_prefix(prefix + '/')).leases == run.alloc.leases
    assert run.alloc.leases['x']['subnet'] == '10.244.50.0/24'
    # export into an empty file, then import it back into a fresh prefix: the same leases
    back = tmp_path / 'back.yml'
    exported = R.export_to_file(client, str(back), config, ['a', 'c', 'x'], prefix=prefix)[0]
    assert L.read_lease_file(str(back))[1] == run.alloc.leases == exported.leases
    assert not (tmp_path / '.back.yml.prev').exists()  # a new file has no earlier copy
    # export over a file that has leases: it gains etcd's (x), and keeps its old text as the last good copy
    before = source.read_text()
    R.export_to_file(client, str(source), config, ['a', 'c', 'x'], prefix=prefix)
    assert L.read_lease_file(str(source))[1] == run.alloc.leases
    assert (tmp_path / '.leases.yml.prev').read_text() == before
    for host, rec in alloc.leases.items():
        assert run.alloc.leases[host] == rec
    R.update_etcd(client, config, [], prefix=prefix + '-copy', imported=L.read_lease_file(str(back))[1])
    assert R.State(prefix + '-copy', *client.range_prefix(prefix + '-copy/')).leases == run.alloc.leases
    # a host with other subnets in the file and in etcd is refused, naming both
    conflicting = dict(L.read_lease_file(str(back))[1])
    conflicting['a'] = {'subnet': '10.244.99.0/24', 'ipv6_subnet': 'fd00:244:0:99::/64'}
    with pytest.raises(L.LeaseError) as err:
        R.update_etcd(client, config, [], prefix=prefix, imported=conflicting)
    assert 'host a: subnet 10.244.1.0/24 in etcd but 10.244.99.0/24 in the lease file' in str(err.value)


WORKER = r'''
import json, sys, time
from ansible_collections.overlay.mesh.plugins.module_utils import _etcd
from ansible_collections.overlay.mesh.plugins.plugin_utils import _leases as L, _registry as R
endpoint, prefix, me, count, start, low, max_ops = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), sys.argv[6], int(sys.argv[7])
client = _etcd.EtcdClient([endpoint])
config = L.make_config('10.0.0.0/16', subnet_len=28, subnet_min=low)
while time.time() < start:
    time.sleep(0.001)
hosts, handed, attempts = [], {}, 0
for i in range(count):
    # each controller has its own hosts and, every other round, one the other controller also adds
    hosts.append('%s%03d' % (me, i))
    if i % 2:
        hosts.append('shared%03d' % i)
    run = R.update_etcd(client, config, hosts, prefix=prefix, attempts=50, max_ops=max_ops)
    attempts += run.attempts - 1
    handed.update((h, run.alloc.leases[h]['subnet']) for h in hosts[-2:])
print(json.dumps({'handed': handed, 'retries': attempts, 'requests': client.requests}))
'''


@pytest.mark.parametrize('lows, max_ops', [(('10.0.0.16', '10.0.0.16'), 128), (('10.0.0.16', '10.0.128.0'), 128),
                                           (('10.0.0.16', '10.0.128.0'), 2)],
                         ids=['same-range', 'other-subnet-min', 'one-change-per-txn'])
def test_two_controllers_at_once_never_share_or_lose_a_subnet(single, lows, max_ops):
    """Both hand out the same lowest free subnets (the per-key comparisons catch it), or, with another
    subnet_min, disjoint ones, where only the comparison over every lease key stops a host added by both
    from getting two leases; also with a run's changes split over several transactions."""
    # On a loaded machine one controller may finish before the other starts: the race is run again (a fresh
    # prefix) until the two collided at least once; every round must hold the invariants.
    retries = 0
    for round_number in range(4):
        prefix = '/test/two-controllers-%s-%d-%d' % (lows[1], max_ops, round_number)
        retries += _race(single, prefix, lows, max_ops)
        if retries:
            break
    # the controllers did collide (the test exercised the retry path)
    assert retries > 0


def _race(single, prefix, lows, max_ops):
    root = sys.modules['ansible_collections'].__path__[0]
    env = dict(os.environ, PYTHONPATH=os.path.dirname(root))
    start = time.time() + 1.0
    count = 60
    procs = [subprocess.Popen([sys.executable, '-c', WORKER, single.endpoints[0], prefix, me, str(count), str(start), low,
                               str(max_ops)],
                              stdout=subprocess.PIPE, env=env, text=True)
             for me, low in zip(('a', 'b'), lows)]
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    final = R.State(prefix, *single.client().range_prefix(prefix + '/'))
    assert not final.problems  # no host with two keys
    # every host either controller was handed still holds that subnet (none lost or moved)
    for out in outs:
        for host, subnet in out['handed'].items():
            assert final.leases[host]['subnet'] == subnet, host
    subnets = [rec['subnet'] for rec in final.leases.values()]
    assert len(subnets) == len(set(subnets)) == 2 * count + count // 2  # 0 duplicates
    return sum(out['retries'] for out in outs)


def test_unreachable_is_a_clear_error():
    client = _etcd.EtcdClient(['http://127.0.0.1:%d' % etcd_lab.free_ports(1)[0]], timeout=1)
    with pytest.raises(_etcd.EtcdError) as err:
        R.update_etcd(client, CONFIG, ['a'], check_mode=True)
    assert err.value.kind == 'unreachable' and 'no etcd endpoint answered' in str(err.value)


def test_user_and_password(tmp_path):
    cluster = etcd_lab.Cluster(tmp_path).start()
    try:
        admin = cluster.client()
        admin.call('/v3/auth/user/add', {'name': 'root', 'password': 'rootpw'})
        admin.call('/v3/auth/user/grant', {'user': 'root', 'role': 'root'})
        admin.call('/v3/auth/enable', {})
        with pytest.raises(_etcd.EtcdError) as err:
            R.update_etcd(cluster.client(), CONFIG, ['a'])
        assert err.value.kind == 'auth'
        with pytest.raises(_etcd.EtcdError) as err:
            R.update_etcd(cluster.client(user='root', password='wrong'), CONFIG, ['a'])
        assert err.value.kind == 'auth' and 'authentication as user root failed' in str(err.value)
        client = cluster.client(user='root', password='rootpw')
        run = R.update_etcd(client, CONFIG, ['a'])
        assert run.changed and run.requests == 3  # authenticate, range, txn
        assert R.update_etcd(client, CONFIG, ['a']).requests == 1  # the token is kept
    finally:
        cluster.stop()


def test_three_members_tls_one_down_works_two_down_fails_clearly(tmp_path):
    cluster = etcd_lab.Cluster(tmp_path, size=3, tls=True).start()
    try:
        client = cluster.client(timeout=2)
        assert R.update_etcd(client, CONFIG, ['a', 'b']).changed
        cluster.stop(0)
        run = R.update_etcd(cluster.client(timeout=2), CONFIG, ['a', 'b', 'c'])
        assert run.alloc.added == ['c']
        cluster.stop(1)
        started = time.monotonic()
        with pytest.raises(_etcd.EtcdError) as err:
            R.update_etcd(cluster.client(timeout=2), CONFIG, ['a', 'b', 'c', 'd'], check_mode=True)
        assert err.value.kind == 'unavailable' and 'quorum lost' in str(err.value)
        assert time.monotonic() - started < 10
        # no client certificate: refused by TLS, named
        with pytest.raises(_etcd.EtcdError) as err:
            R.update_etcd(_etcd.EtcdClient(cluster.endpoints[2:], ca_file=cluster.certs['ca_file'], timeout=2), CONFIG, ['a'])
        assert err.value.kind == 'unreachable'
        cluster.start(0)
        assert sorted(R.update_etcd(cluster.client(timeout=2), CONFIG, ['a', 'b', 'c']).alloc.leases) == ['a', 'b', 'c']
    finally:
        cluster.stop()


def _read(prefix, leases, config=CONFIG, backend=None):
    """A State as one range read would give it, for these leases (host -> record), without a server."""
    backend = R._backend(backend)  # pylint: disable=protected-access
    kvs = [(R.subnet_key(prefix, rec), R.lease_value(host, rec, backend), 10 + i, 0) for i, (host, rec) in enumerate(sorted(leases.items()))]
    return R.State(prefix, 99, kvs)


def _keys_of(chunk, operation):
    return set(base64.b64decode(op[operation]['key']).decode() for dummy, op in chunk if operation in op)


def test_a_host_whose_key_changes_is_deleted_and_written_in_one_transaction():
    # dual stack turned on: every key changes; with room for 2 operations per transaction each host's pair stays together
    old = dict(('h%d' % i, {'subnet': '10.244.%d.0/24' % i, 'underlay': '192.168.1.%d' % i}) for i in range(1, 6))
    new = dict((h, dict(rec, ipv6_subnet='fd00:244:0:%s::/64' % h[1:])) for h, rec in old.items())
    units = R.plan(_read('/p', old), L.make_config('10.244.0.0/16', ipv6_network='fd00:244::/48'), R._backend(None), new)  # pylint: disable=protected-access
    chunks = R._transactions(units, 2)  # pylint: disable=protected-access
    assert len(chunks) == 6  # the config, then one host each
    moved = 0
    for chunk in chunks:
        for key in _keys_of(chunk, 'request_delete_range'):
            host = 'h%s' % key.split('.')[2]
            assert R.subnet_key('/p', new[host]) in _keys_of(chunk, 'request_put')
            moved += 1
    assert moved == 5


def test_a_host_taking_the_key_another_host_left_is_written_with_it():
    state = _read('/p', {'a': {'subnet': '10.244.1.0/24'}})
    units = R.plan(state, CONFIG, R._backend(None),  # pylint: disable=protected-access
                   {'a': {'subnet': '10.244.2.0/24'}, 'c': {'subnet': '10.244.1.0/24'}})
    leases = [unit for unit in units if not any(b'/config' in base64.b64decode(op.get('request_put', {}).get('key', '')) for dummy, op in unit)]
    assert len(leases) == 1  # one unit: a's new key and c's put on a's old key, and no delete of that key
    keys = sorted(base64.b64decode(op['request_put']['key']).decode() for dummy, op in leases[0])
    assert keys == ['/p/subnets/10.244.1.0-24', '/p/subnets/10.244.2.0-24']


def test_vni_and_port_given_as_strings_are_written_as_numbers(store):
    client, prefix = store
    R.update_etcd(client, CONFIG, ['a'], prefix=prefix, underlay=under('a'), backend={'type': 'vxlan', 'vni': '42', 'port': '4789'})
    got = keys(client, prefix)
    assert got['config'][0]['Backend'] == {'Type': 'vxlan', 'VNI': 42, 'Port': 4789}
    assert got['subnets/10.244.1.0-24'][0]['BackendData']['VNI'] == 42


def test_tls_files_that_cannot_be_loaded_are_a_clear_error(tmp_path):
    bad = tmp_path / 'ca.pem'
    bad.write_text('not a certificate')
    with pytest.raises(_etcd.EtcdError) as err:
        _etcd.EtcdClient(['https://127.0.0.1:1'], ca_file=str(bad))
    assert err.value.kind == 'auth' and 'TLS files (CA %s' % bad in str(err.value)


def test_a_deeply_nested_lease_is_a_clear_error_naming_its_key(store):
    """Thousands of brackets under a valid key (Python's json raises RecursionError): an error naming the key, no
    traceback, nothing written; a nested flannel config is reported as not flannel JSON."""
    client, prefix = store
    R.update_etcd(client, CONFIG, ['a'], prefix=prefix)
    client.put(prefix + '/subnets/10.244.60.0-24', '[' * 3000 + ']' * 3000)
    client.put(prefix + '/config', '[' * 3000 + ']' * 3000)
    revision = client.range_prefix(prefix + '/')[0]
    with pytest.raises(L.LeaseError) as err:
        R.update_etcd(client, CONFIG, ['a', 'b'], prefix=prefix)
    text = str(err.value)
    assert 'etcd key %s/subnets/10.244.60.0-24: its value is JSON nested too deeply to read' % prefix in text
    assert 'etcd key %s/config: not flannel JSON' % prefix in text
    assert client.range_prefix(prefix + '/')[0] == revision


def test_the_orphaned_leases_revisions_are_returned(store):
    """site ranks orphaned leases by their mod_revision, as the node agents do: the run says what they are."""
    client, prefix = store
    R.update_etcd(client, CONFIG, ['a', 'b'], prefix=prefix)
    run = R.update_etcd(client, CONFIG, ['a'], prefix=prefix)
    mods = dict((key, mod) for key, _value, mod, _lease in client.range_prefix(prefix + '/subnets/')[1])
    assert run.alloc.orphaned == ['b'] and run.revisions['b'] == mods[prefix + '/subnets/' + run.alloc.leases['b']['subnet'].replace('/', '-')]
