# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Subnet lease allocation, the lease file and subnet.env (plugins/plugin_utils/_leases.py)."""

from __future__ import annotations

import fcntl
import os
import stat

import pytest
import yaml

from ansible_collections.overlay.mesh.plugins.plugin_utils import _leases as L


def subnets(alloc, field='subnet'):
    return {h: r[field] for h, r in alloc.leases.items() if field in r}


def problems_of(call, *args, **kwargs):
    with pytest.raises(L.LeaseError) as info:
        call(*args, **kwargs)
    return info.value.problems


# ---- configuration -----------------------------------------------------------------------------

@pytest.mark.parametrize('network, expected', [
    ('10.244.0.0/16', 24), ('10.0.0.0/8', 24), ('10.244.0.0/22', 24), ('10.244.0.0/23', 25),
    ('10.244.0.0/28', 30), ('fd00::/48', 64), ('fd00::/62', 64), ('fd00::/63', 65), ('fd00::/124', 126),
])
def test_default_subnet_len_follows_flannel(network, expected):
    assert L.make_config(network).pools[0].subnet_len == expected


def test_defaults_skip_the_first_subnet():
    pool = L.make_config().pools[0]
    assert str(pool.network) == '10.244.0.0/16'
    assert pool.subnet(pool.min_idx) == '10.244.1.0/24'
    assert pool.subnet(pool.max_idx) == '10.244.255.0/24'


def test_config_problems_are_all_reported_at_once():
    problems = problems_of(L.make_config, '10.244.0.0/16', subnet_len=31, ipv6_network='10.0.0.0/8')
    assert len(problems) == 2
    assert 'subnet_len: /31 is out of range: with network 10.244.0.0/16 it must be /18 to /30' in problems[0]
    assert 'ipv6_network: 10.0.0.0/8 is not an IPv6 network' in problems[1]


@pytest.mark.parametrize('kwargs, message', [
    ({'network': 'banana'}, "network: 'banana' is not a network"),
    ({'network': '10.244.1.0/16'}, 'has host bits set'),
    ({'network': '10.244.0.0/29'}, 'too small'),
    ({'network': '10.244.0.0/24', 'subnet_len': 25}, 'must be /26 to /30'),
    ({'subnet_len': '24'}, 'subnet_len: '),
    ({'subnet_min': '10.245.0.0'}, 'subnet_min: 10.245.0.0/24 lies outside network 10.244.0.0/16'),
    ({'subnet_min': '10.244.1.7'}, 'subnet_min: 10.244.1.7/24 is misaligned'),
    ({'subnet_max': '10.244.2.0/23'}, 'has length /23, subnet length is /24'),
    ({'subnet_min': '10.244.9.0', 'subnet_max': '10.244.8.0'}, 'subnet_min 10.244.9.0/24 is above subnet_max 10.244.8.0/24'),
    ({'network': 'fd00::/48', 'ipv6_network': 'fd01::/48'}, 'already IPv6'),
    ({'ipv6_subnet_len': 64}, 'need ipv6_network'),
    ({'ipv6_network': 'fd00::/48', 'ipv6_subnet_len': 127}, 'ipv6_subnet_len: /127 is out of range'),
])
def test_config_problems(kwargs, message):
    problems = problems_of(L.make_config, **kwargs)
    assert any(message in p for p in problems), problems


# ---- allocation --------------------------------------------------------------------------------

def test_fresh_allocation_is_sorted_and_skips_the_first_subnet():
    alloc = L.allocate(L.make_config(), ['c', 'a', 'b'])
    assert subnets(alloc) == {'a': '10.244.1.0/24', 'b': '10.244.2.0/24', 'c': '10.244.3.0/24'}
    assert alloc.added == ['a', 'b', 'c']


def test_existing_leases_are_kept_and_new_hosts_fill_the_lowest_gap():
    existing = {'z': {'subnet': '10.244.1.0/24'}, 'y': {'subnet': '10.244.3.0/24'}}
    alloc = L.allocate(L.make_config(), ['a', 'y', 'z', 'b'], existing=existing)
    assert subnets(alloc) == {'z': '10.244.1.0/24', 'y': '10.244.3.0/24', 'a': '10.244.2.0/24', 'b': '10.244.4.0/24'}
    assert alloc.added == ['a', 'b']


def test_host_leaving_the_group_keeps_its_lease():
    first = L.allocate(L.make_config(), ['a', 'b'])
    second = L.allocate(L.make_config(), ['a', 'c'], existing=first.leases)
    assert subnets(second) == {'a': '10.244.1.0/24', 'b': '10.244.2.0/24', 'c': '10.244.3.0/24'}
    assert second.orphaned == ['b']


def test_release_frees_the_subnet_for_the_next_new_host():
    first = L.allocate(L.make_config(), ['a', 'b', 'c'])
    second = L.allocate(L.make_config(), ['a', 'b', 'c'], existing=first.leases, release=['b', 'nobody'])
    assert second.released == ['b']
    assert subnets(second) == {'a': '10.244.1.0/24', 'c': '10.244.3.0/24'}
    third = L.allocate(L.make_config(), ['a', 'c', 'd'], existing=second.leases)
    assert third.leases['d'] == {'subnet': '10.244.2.0/24'}


def test_subnet_min_and_max_bound_new_leases_only():
    config = L.make_config(subnet_min='10.244.10.0', subnet_max='10.244.11.0/24')
    existing = {'old': {'subnet': '10.244.200.0/24'}}
    alloc = L.allocate(config, ['a', 'b', 'old'], existing=existing)
    assert subnets(alloc) == {'a': '10.244.10.0/24', 'b': '10.244.11.0/24', 'old': '10.244.200.0/24'}


def test_pinned_subnets_are_honoured_even_outside_min_max():
    config = L.make_config(subnet_min='10.244.10.0')
    alloc = L.allocate(config, ['a', 'b', 'c'], pinned={'b': '10.244.1.0/24', 'c': '', 'x': None})
    assert subnets(alloc) == {'a': '10.244.10.0/24', 'b': '10.244.1.0/24', 'c': '10.244.11.0/24'}


def test_changing_a_pin_moves_the_host():
    first = L.allocate(L.make_config(), ['a', 'b'])
    second = L.allocate(L.make_config(), ['a', 'b'], existing=first.leases, pinned={'a': '10.244.50.0/24'})
    assert second.leases['a']['subnet'] == '10.244.50.0/24'
    assert second.moved == ['a']


@pytest.mark.parametrize('pin, message', [
    ('10.245.1.0/24', 'host a: pinned: 10.245.1.0/24 lies outside network 10.244.0.0/16'),
    ('10.244.1.1/24', 'host a: pinned: 10.244.1.1/24 is misaligned'),
    ('10.244.2.0/23', 'host a: pinned: 10.244.2.0/23 has length /23, subnet length is /24'),
    ('fd00::/64', 'host a: pinned: fd00::/64 is IPv6 but the overlay has no IPv6 network'),
    ('nonsense', "host a: pinned: 'nonsense' is not a subnet"),
    (['10.244.1.0/24', '10.244.2.0/24'], 'host a: pinned: two IPv4 subnets pinned'),
])
def test_bad_pins_name_host_and_field(pin, message):
    problems = problems_of(L.allocate, L.make_config(), ['a'], pinned={'a': pin})
    assert any(message in p for p in problems), problems


def test_pinned_subnet_taken_by_another_host_names_both():
    existing = {'b': {'subnet': '10.244.7.0/24'}}
    problems = problems_of(L.allocate, L.make_config(), ['a', 'b'], existing=existing, pinned={'a': '10.244.7.0/24'})
    assert problems == ['subnet 10.244.7.0/24 claimed by two hosts: a (pinned) and b (lease file)']
    problems = problems_of(L.allocate, L.make_config(), ['a', 'b'], pinned={'a': '10.244.7.0/24', 'b': '10.244.7.0/24'})
    assert problems == ['subnet 10.244.7.0/24 claimed by two hosts: a (pinned) and b (pinned)']


def test_capacity_error_is_exact_at_the_boundary():
    config = L.make_config('10.244.0.0/24', subnet_len=28)      # 16 subnets, 15 usable
    hosts = ['h%02d' % i for i in range(15)]
    assert len(L.allocate(config, hosts).leases) == 15
    problems = problems_of(L.allocate, config, hosts + ['h99'])
    assert problems == ['network 10.244.0.0/24 too small: 15 subnets of /28 fit (10.244.0.16/28 to 10.244.0.240/28), '
                        '16 hosts ask for one (0 already leased there, 16 new)']


def test_capacity_counts_existing_leases():
    config = L.make_config('10.244.0.0/24', subnet_len=28)
    first = L.allocate(config, ['h%02d' % i for i in range(10)])
    problems = problems_of(L.allocate, config, ['n%d' % i for i in range(6)], existing=first.leases)
    assert '16 hosts ask for one (10 already leased there, 6 new)' in problems[0]
    assert len(L.allocate(config, ['n%d' % i for i in range(5)], existing=first.leases).leases) == 15


def test_bad_lease_file_entries_are_reported_with_host():
    existing = {'a': {'subnet': '10.1.0.0/24'}, 'b': {'subnet': '10.244.2.0/25'}, 'c': 'junk',
                'd': {'subnet': '10.244.4.0/24'}, 'e': {'subnet': '10.244.4.0/24'}}
    problems = problems_of(L.allocate, L.make_config(), ['a'], existing=existing)
    assert problems == [
        "host c: lease file: expected a mapping with subnet, underlay, vtep_mac, public_key; got 'junk'",
        'host a: lease file subnet: 10.1.0.0/24 lies outside network 10.244.0.0/16',
        'host b: lease file subnet: 10.244.2.0/25 has length /25, subnet length is /24',
        'subnet 10.244.4.0/24 claimed by two hosts: d (lease file) and e (lease file)',
    ]


def test_malformed_inputs():
    problems = problems_of(L.allocate, L.make_config(), 'a', pinned=['x'], release=[3], underlay={'a': 'x'})
    assert "hosts: expected a list of inventory hostnames, got 'a'" in problems
    assert "pinned: expected a mapping inventory hostname -> value, got ['x']" in problems
    assert 'release: 3 is not an inventory hostname' in problems
    assert "host a: underlay: expected a mapping with address, network, vtep_mac, public_key; got 'x'" in problems


# ---- underlay ----------------------------------------------------------------------------------

def test_underlay_is_stored_normalized_and_an_address_change_keeps_the_subnet():
    config = L.make_config()
    underlay = {'a': {'address': '192.168.1.10', 'network': '192.168.1.10/24', 'vtep_mac': 'C6-D2-32-6F-8F-44'}}
    first = L.allocate(config, ['a'], underlay=underlay)
    assert first.leases['a'] == {'subnet': '10.244.1.0/24', 'underlay': '192.168.1.10', 'vtep_mac': 'c6:d2:32:6f:8f:44'}
    second = L.allocate(config, ['a'], existing=first.leases, underlay={'a': {'address': '192.168.2.20'}})
    assert second.leases['a'] == {'subnet': '10.244.1.0/24', 'underlay': '192.168.2.20', 'vtep_mac': 'c6:d2:32:6f:8f:44'}


def test_underlay_overlapping_the_overlay_is_an_error_naming_the_host():
    underlay = {'a': {'address': '10.244.3.4', 'network': '10.244.3.0/24'}, 'b': {'network': '10.0.0.0/8'},
                'c': {'address': '192.168.1.1', 'network': '192.168.1.0/24'}, 'd': {'vtep_mac': 'nope', 'address': 'x'}}
    problems = problems_of(L.allocate, L.make_config(), ['a', 'b', 'c', 'd'], underlay=underlay)
    assert problems == [
        'host a: underlay: underlay address 10.244.3.4 overlaps the overlay network 10.244.0.0/16',
        'host a: underlay: underlay network 10.244.3.0/24 overlaps the overlay network 10.244.0.0/16',
        'host b: underlay: underlay network 10.0.0.0/8 overlaps the overlay network 10.244.0.0/16',
        "host d: underlay address: 'x' is not an IP address",
        "host d: underlay vtep_mac: 'nope' is not a MAC address like 02:42:ac:11:00:02",
    ]


# ---- host records ------------------------------------------------------------------------------

def test_lost_lease_file_is_rebuilt_from_host_records():
    config = L.make_config()
    first = L.allocate(config, ['a', 'b', 'c'], underlay={'b': {'address': '192.168.0.2'}})
    records = {h: dict(r, network='10.244.0.0/16') for h, r in first.leases.items()}
    rebuilt = L.allocate(config, ['a', 'b', 'c', 'd'], host_records=records)
    assert rebuilt.leases == dict(first.leases, d={'subnet': '10.244.4.0/24'})
    assert rebuilt.recovered == ['a', 'b', 'c']
    assert rebuilt.added == ['d']


def test_host_record_may_be_subnet_env_text():
    text = L.subnet_env({'subnet': '10.244.9.0/24'}, '10.244.0.0/16', 1450)
    alloc = L.allocate(L.make_config(), ['a', 'b'], host_records={'b': text})
    assert subnets(alloc) == {'a': '10.244.1.0/24', 'b': '10.244.9.0/24'}


def test_host_record_of_another_network_is_ignored_with_a_warning():
    alloc = L.allocate(L.make_config(), ['a'], host_records={'a': {'subnet': '10.244.9.0/24', 'network': '10.200.0.0/16'}})
    assert alloc.leases['a'] == {'subnet': '10.244.1.0/24'}
    assert 'written for another network' in alloc.warnings[0]


def test_file_and_host_disagreeing_is_an_error_unless_pinned():
    existing = {'a': {'subnet': '10.244.1.0/24'}}
    records = {'a': {'subnet': '10.244.5.0/24'}}
    problems = problems_of(L.allocate, L.make_config(), ['a'], existing=existing, host_records=records)
    assert problems == ['host a: subnet: the lease file has 10.244.1.0/24 but the host reports 10.244.5.0/24; '
                        'fix one of them (or pin the subnet you want)']
    alloc = L.allocate(L.make_config(), ['a'], existing=existing, host_records=records, pinned={'a': '10.244.5.0/24'})
    assert alloc.leases['a']['subnet'] == '10.244.5.0/24'


def test_two_hosts_claiming_one_subnet_names_both():
    existing = {'a': {'subnet': '10.244.1.0/24'}}
    problems = problems_of(L.allocate, L.make_config(), ['a', 'b'], existing=existing,
                           host_records={'b': {'subnet': '10.244.1.0/24'}})
    assert problems == ['subnet 10.244.1.0/24 claimed by two hosts: a (lease file) and b (host record)']
    problems = problems_of(L.allocate, L.make_config(), ['a', 'b'],
                           host_records={'a': {'subnet': '10.244.1.0/24'}, 'b': {'subnet': '10.244.1.0/24'}})
    assert problems == ['subnet 10.244.1.0/24 claimed by two hosts: a (host record) and b (host record)']


def test_released_host_record_is_not_adopted():
    alloc = L.allocate(L.make_config(), ['b'], host_records={'a': {'subnet': '10.244.1.0/24'}}, release=['a'])
    assert subnets(alloc) == {'b': '10.244.1.0/24'}


def test_partial_rebuild_warns():
    alloc = L.allocate(L.make_config(), ['a', 'b'], host_records={'a': {'subnet': '10.244.4.0/24'}})
    assert subnets(alloc) == {'a': '10.244.4.0/24', 'b': '10.244.1.0/24'}
    assert alloc.warnings[0] == 'lease file had no entry for 1 host(s): rebuilt from their own records: a 10.244.4.0/24'
    assert 'reported none and got new subnets: b' in alloc.warnings[1]


# ---- IPv6 --------------------------------------------------------------------------------------

def test_ipv6_only():
    alloc = L.allocate(L.make_config('fd00:244::/56'), ['b', 'a'])
    assert alloc.leases == {'a': {'ipv6_subnet': 'fd00:244:0:1::/64'}, 'b': {'ipv6_subnet': 'fd00:244:0:2::/64'}}


def test_dual_stack_allocates_both_and_adds_ipv6_to_old_leases():
    old = L.allocate(L.make_config(), ['a'])
    config = L.make_config(ipv6_network='fd00:244::/56')
    alloc = L.allocate(config, ['a', 'b'], existing=old.leases, pinned={'b': ['10.244.9.0/24', 'fd00:244:0:9::/64']})
    assert alloc.leases == {'a': {'subnet': '10.244.1.0/24', 'ipv6_subnet': 'fd00:244:0:1::/64'},
                            'b': {'subnet': '10.244.9.0/24', 'ipv6_subnet': 'fd00:244:0:9::/64'}}
    dropped = L.allocate(L.make_config(), ['a', 'b'], existing=alloc.leases)
    assert subnets(dropped, 'ipv6_subnet') == {}
    assert any('ipv6_subnet fd00:244:0:1::/64 dropped' in w for w in dropped.warnings)


def test_huge_ipv6_network_allocates_without_enumerating():
    config = L.make_config('fd00::/16', subnet_len=112)
    alloc = L.allocate(config, ['a', 'b'], existing={'z': {'ipv6_subnet': 'fd00::1:0/112'}})
    assert subnets(alloc, 'ipv6_subnet') == {'a': 'fd00::2:0/112', 'b': 'fd00::3:0/112', 'z': 'fd00::1:0/112'}


# ---- lease file --------------------------------------------------------------------------------

def test_lease_file_round_trip_with_awkward_hostnames(tmp_path):
    config = L.make_config(ipv6_network='fd00:244::/56')
    hosts = ['yes', 'null', '123', 'a b', 'node-1.example.org', 'ünï', '"q"', 'x:y', 'on']
    alloc = L.allocate(config, hosts, underlay={'yes': {'vtep_mac': '12:34:56:10:20:30', 'address': 'fe80::1'}})
    text = L.render_lease_file(config, alloc.leases)
    assert len(text.splitlines()) == 10 + len(hosts)       # one line per host
    path = tmp_path / 'leases.yml'
    L.write_lease_file(str(path), text)
    again_text, again = L.read_lease_file(str(path))
    assert again_text == text
    assert again == alloc.leases
    data = yaml.safe_load(text)
    assert data['network'] == '10.244.0.0/16' and data['ipv6_subnet_len'] == 64


def test_lease_file_layout():
    config = L.make_config()
    alloc = L.allocate(config, ['node1'], underlay={'node1': {'address': '192.168.64.3', 'vtep_mac': 'c6:d2:32:6f:8f:44'}})
    assert L.render_lease_file(config, alloc.leases).splitlines()[3:] == [
        'format: 2',
        'network: "10.244.0.0/16"',
        'subnet_len: 24',
        'leases:',
        '  node1: {subnet: "10.244.1.0/24", underlay: "192.168.64.3", vtep_mac: "c6:d2:32:6f:8f:44"}',
        '# end of leases: 1',
    ]
    assert L.render_lease_file(config, {}).splitlines()[-2:] == ['leases: {}', '# end of leases: 0']


def test_hand_written_block_style_lease_file_is_read(tmp_path):
    path = tmp_path / 'leases.yml'
    path.write_text('leases:\n  node1:\n    subnet: 10.244.7.0/24\n    address: 192.168.0.1\n')
    assert L.read_lease_file(str(path))[1] == {'node1': {'subnet': '10.244.7.0/24', 'address': '192.168.0.1'}}


def test_two_hosts_on_one_underlay_address_or_mac_are_refused():
    underlay = {'a': {'address': '192.168.0.1', 'vtep_mac': '02:00:00:00:00:01'},
                'b': {'address': '192.168.0.1', 'vtep_mac': '02:00:00:00:00:02'},
                'c': {'address': '192.168.0.3', 'vtep_mac': '02:00:00:00:00:01'}}
    problems = problems_of(L.allocate, L.make_config(), ['a', 'b', 'c'], underlay=underlay)
    assert problems == ['hosts a and b have the same underlay address 192.168.0.1',
                        'hosts a and c have the same VTEP MAC (a cloned /etc/machine-id? give each host its own: '
                        'systemd-machine-id-setup) 02:00:00:00:00:01']
    # a host that left the group (not released) does not count
    existing = {'old': {'subnet': '10.244.9.0/24', 'underlay': '192.168.0.1'}}
    assert L.allocate(L.make_config(), ['a'], existing=existing, underlay={'a': underlay['a']}).orphaned == ['old']


def test_release_0_1_records_name_the_underlay_address_address():
    # 0.1 wrote 'address'; it is read as 'underlay' and written back under the new name
    existing = {'node1': {'subnet': '10.244.7.0/24', 'address': '192.168.0.1', 'vtep_mac': 'c6:d2:32:6f:8f:44'}}
    alloc = L.allocate(L.make_config(), ['node1'], existing=existing)
    assert alloc.leases['node1'] == {'subnet': '10.244.7.0/24', 'underlay': '192.168.0.1', 'vtep_mac': 'c6:d2:32:6f:8f:44'}
    host_record = {'node1': {'subnet': '10.244.7.0/24', 'address': '192.168.0.1'}}
    assert L.allocate(L.make_config(), ['node1'], host_records=host_record).leases['node1']['underlay'] == '192.168.0.1'


@pytest.mark.parametrize('text, message', [
    ('leases: [1, 2', 'not valid YAML'),
    ('- a\n- b\n', 'expected a mapping'),
    ('leases: [a, b]\n', '"leases" must map'),
])
def test_broken_lease_file(tmp_path, text, message):
    path = tmp_path / 'leases.yml'
    path.write_text(text)
    with pytest.raises(L.LeaseError, match=message):
        L.read_lease_file(str(path))


def test_missing_and_empty_lease_files(tmp_path):
    assert L.read_lease_file(str(tmp_path / 'none.yml')) == ('', {})
    (tmp_path / 'empty.yml').write_text('')  # never written so: a write that did not finish (issue 24)
    with pytest.raises(L.LeaseError, match=r'empty.yml: damaged: the file is empty \(0 bytes\)'):
        L.read_lease_file(str(tmp_path / 'empty.yml'))


def test_write_is_atomic_keeps_the_mode_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / 'leases.yml'
    L.write_lease_file(str(path), 'a\n')
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    os.chmod(path, 0o600)
    L.write_lease_file(str(path), 'b\n')
    assert path.read_text() == 'b\n'
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ['leases.yml']


def test_lock_is_a_hidden_sidecar_and_times_out(tmp_path):
    path = str(tmp_path / 'leases.yml')
    assert L.lock_path(path) == str(tmp_path / '.leases.yml.lock')
    assert L.lock_path(str(tmp_path / L.LEASE_FILE_NAME)) == str(tmp_path / '.overlay-mesh-leases.yml.lock')
    with L.locked(path):
        # flock locks belong to the open file description: a second open conflicts even in one process.
        fd = os.open(L.lock_path(path), os.O_RDWR)
        try:
            with pytest.raises(OSError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        with pytest.raises(L.LeaseError, match='still locked by another run'):
            with L.locked(path, timeout=0.1):
                pass
    with L.locked(path, timeout=0.1):
        pass


# ---- subnet.env --------------------------------------------------------------------------------

def test_subnet_env_ipv4():
    assert L.subnet_env({'subnet': '10.244.1.0/24'}, '10.244.0.0/16', 1450) == (
        'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n')


def test_subnet_env_dual_stack_and_ipv6_only():
    lease = {'subnet': '10.244.1.0/24', 'ipv6_subnet': 'fd00:244:0:1::/64', 'address': '192.168.0.1'}
    assert L.subnet_env(lease, '10.244.0.0/16', 1430, False, 'fd00:244::/56').splitlines() == [
        'FLANNEL_NETWORK=10.244.0.0/16', 'FLANNEL_SUBNET=10.244.1.1/24',
        'FLANNEL_IPV6_NETWORK=fd00:244::/56', 'FLANNEL_IPV6_SUBNET=fd00:244:0:1::1/64',
        'FLANNEL_MTU=1430', 'FLANNEL_IPMASQ=false']
    assert L.subnet_env({'ipv6_subnet': 'fd00:244:0:1::/64'}, 'fd00:244::/56', 1430).splitlines() == [
        'FLANNEL_IPV6_NETWORK=fd00:244::/56', 'FLANNEL_IPV6_SUBNET=fd00:244:0:1::1/64',
        'FLANNEL_MTU=1430', 'FLANNEL_IPMASQ=true']


def test_subnet_env_round_trips_through_parse():
    lease = {'subnet': '10.244.1.0/24', 'ipv6_subnet': 'fd00:244:0:1::/64'}
    text = L.subnet_env(lease, '10.244.0.0/16', 1450, True, 'fd00:244::/56')
    assert L.parse_subnet_env(text) == dict(lease, network='10.244.0.0/16', ipv6_network='fd00:244::/56')


def test_subnet_env_problems():
    problems = problems_of(L.subnet_env, {'subnet': '10.1.0.0/24'}, '10.244.0.0/16', 20, 'yes')
    assert problems == ["mtu: 20 is not an MTU (68 to 65535)", "ipmasq: 'yes' is not a boolean",
                        'lease subnet: 10.1.0.0/24 lies outside network 10.244.0.0/16']
    assert problems_of(L.subnet_env, {}, '10.244.0.0/16', 1450) == ['lease: no subnet for network 10.244.0.0/16']
    assert problems_of(L.subnet_env, 'x', '10.244.0.0/16', 1450)[0].startswith('lease: expected a mapping')


def test_every_problem_is_one_line_of_the_message():
    exc = L.LeaseError(['one', 'two'])
    assert str(exc) == 'subnet leases: 2 problems:\n- one\n- two'


def test_capacity_and_input_problems_come_in_one_failure():
    config = L.make_config('10.244.0.0/24', subnet_len=28)
    problems = problems_of(L.allocate, config, ['h%02d' % i for i in range(16)], pinned={'h00': '10.9.0.0/28'},
                           underlay={'h01': {'vtep_mac': 'x'}})
    assert problems[0] == "host h01: underlay vtep_mac: 'x' is not a MAC address like 02:42:ac:11:00:02"
    assert problems[1] == 'host h00: pinned: 10.9.0.0/28 lies outside network 10.244.0.0/24'
    assert problems[2].startswith('network 10.244.0.0/24 too small: 15 subnets of /28 fit')


@pytest.mark.parametrize('header', ['format: 3\n', 'format: "x"\n'])
def test_lease_file_of_a_newer_format_is_refused(header):
    text = L.render_lease_file(L.make_config(), {'a': {'subnet': '10.244.1.0/24'}}).replace('format: 2\n', header)
    with pytest.raises(L.LeaseError, match='unknown: this overlay.mesh reads formats 1 to 2'):
        L.parse_lease_file(text)


def test_update_lease_file_writes_through_a_symlink_and_not_in_check_mode(tmp_path):
    real = tmp_path / 'shared' / 'leases.yml'
    real.parent.mkdir()
    link = tmp_path / 'leases.yml'
    link.symlink_to(real)
    config = L.make_config()
    alloc, before, after = L.update_lease_file(str(link), config, ['a'], check_mode=True)
    assert (before, alloc.added) == ('', ['a'])
    assert not real.exists() and sorted(p.name for p in real.parent.iterdir()) == []
    alloc, before, after = L.update_lease_file(str(link), config, ['a'])
    assert link.is_symlink() and real.read_text() == after
    assert L.update_lease_file(str(link), config, ['a'])[1:] == (after, after)


def test_hand_written_lease_file_with_a_host_twice_is_refused(tmp_path):
    path = tmp_path / 'leases.yml'
    path.write_text('leases:\n  node1:\n    subnet: 10.244.7.0/24\n  node1:\n    subnet: 10.244.8.0/24\n')
    with pytest.raises(L.LeaseError, match="key 'node1' appears twice"):
        L.read_lease_file(str(path))


def test_wireguard_public_keys_are_kept_checked_and_unique():
    key_a, key_b = 'AQEB' * 10 + 'AQE=', 'AgIC' * 10 + 'AgI='
    config = L.make_config()
    first = L.allocate(config, ['a', 'b'], underlay={'a': {'address': '192.168.0.1', 'public_key': key_a},
                                                     'b': {'address': '192.168.0.2', 'public_key': ' %s ' % key_b}})
    assert first.leases['a']['public_key'] == key_a and first.leases['b']['public_key'] == key_b
    assert 'public_key: "%s"' % key_a in L.render_lease_file(config, first.leases)
    # a host that does not report (unreachable, --limit) keeps its key from the lease file
    kept = L.allocate(config, ['a', 'b'], existing=first.leases, underlay={'a': {'address': '192.168.0.1'}})
    assert kept.leases['a']['public_key'] == key_a
    problems = problems_of(L.allocate, config, ['c'], underlay={'c': {'address': '192.168.0.3', 'public_key': 'short='}})
    assert problems == ["host c: underlay public_key: 'short=': a WireGuard key is 44 characters of base64 (32 bytes)"]
    problems = problems_of(L.allocate, config, ['a', 'b'], underlay={
        'a': {'address': '192.168.0.1', 'public_key': key_a}, 'b': {'address': '192.168.0.2', 'public_key': key_a}})
    assert problems == ['hosts a and b have the same WireGuard public key (a copied key file? remove '
                        '/etc/overlay-mesh/wireguard/*.key on one of them and run again) %s' % key_a]
