# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Properties of subnet allocation (hypothesis): no overlap, stability, pins, capacity, IPv4 and IPv6."""

from __future__ import annotations

import ipaddress
import os

import pytest
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from ansible_collections.overlay.mesh.plugins.plugin_utils import _lease_file as lease_file
from ansible_collections.overlay.mesh.plugins.plugin_utils import _leases as L

# (network, subnet_len): small pools so that capacity and gaps are exercised, IPv4 and IPv6.
NETWORKS = [
    ('10.244.0.0/24', 28),      # 15 usable
    ('10.244.0.0/26', 30),      # 15 usable
    ('10.244.0.0/16', 24),      # 255 usable
    ('fd00:244::/60', 64),      # 15 usable
    ('fd00:244::/120', 124),    # 15 usable
]

# LEASES_EXAMPLES=5000 for a deeper search than the quick default.
SETTINGS = settings(max_examples=int(os.environ.get('LEASES_EXAMPLES', '150')), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

hostnames = st.text(alphabet='abcdefghij0123456789-.', min_size=1, max_size=6)
host_sets = st.lists(hostnames, min_size=0, max_size=20, unique=True)
configs = st.sampled_from(NETWORKS).map(lambda n: L.make_config(n[0], subnet_len=n[1]))


def field_of(config):
    return config.pools[0].field


def check_leases(config, leases):
    """Every lease lies in the network, is aligned, has the subnet length, and no two overlap."""
    pool = config.pools[0]
    nets = [ipaddress.ip_network(rec[pool.field]) for rec in leases.values()]   # strict: aligned
    assert all(n.prefixlen == pool.subnet_len and n.subnet_of(pool.network) for n in nets)
    assert len(set(nets)) == len(nets)


def capacity(config):
    pool = config.pools[0]
    return pool.max_idx - pool.min_idx + 1


def reference_allocation(config, hosts):
    """The obvious (slow) answer for a fresh allocation: sorted hosts get subnets 1, 2, 3, ..."""
    pool = config.pools[0]
    return {h: pool.subnet(i + 1) for i, h in enumerate(sorted(hosts))}


@SETTINGS
@given(configs, host_sets)
def test_fresh_allocation_matches_the_reference_or_fails_on_capacity(config, hosts):
    if len(hosts) > capacity(config):
        with pytest.raises(L.LeaseError, match='too small'):
            L.allocate(config, hosts)
        return
    alloc = L.allocate(config, hosts)
    check_leases(config, alloc.leases)
    assert {h: r[field_of(config)] for h, r in alloc.leases.items()} == reference_allocation(config, hosts)


@SETTINGS
@given(configs, host_sets, st.randoms())
def test_order_of_hosts_does_not_matter(config, hosts, rnd):
    assume(len(hosts) <= capacity(config))
    shuffled = list(hosts)
    rnd.shuffle(shuffled)
    assert L.allocate(config, hosts).leases == L.allocate(config, shuffled + hosts[:3]).leases


@SETTINGS
@given(configs, host_sets, host_sets, st.data())
def test_add_remove_release_never_move_a_lease(config, first_hosts, second_hosts, data):
    first = L.allocate(config, first_hosts[:capacity(config)])
    release = data.draw(st.lists(st.sampled_from(sorted(first.leases)), unique=True) if first.leases else st.just([]))
    kept = {h: r for h, r in first.leases.items() if h not in release}
    wanted = set(second_hosts) - set(release)       # a released host gets nothing in this run
    needed = len(set(kept) | wanted)
    if needed > capacity(config):
        with pytest.raises(L.LeaseError, match='too small'):
            L.allocate(config, second_hosts, existing=first.leases, release=release)
        return
    second = L.allocate(config, second_hosts, existing=first.leases, release=release)
    check_leases(config, second.leases)
    assert set(second.leases) == set(kept) | wanted
    for host, rec in kept.items():
        assert second.leases[host] == rec
    assert second.released == sorted(release)
    assert second.added == sorted(wanted - set(kept))
    # Running again with the result changes nothing.
    again = L.allocate(config, sorted(wanted), existing=second.leases)
    assert again.leases == second.leases and again.added == []


@SETTINGS
@given(configs, host_sets, st.data())
def test_new_hosts_get_the_lowest_free_subnets(config, hosts, data):
    pool = config.pools[0]
    assume(hosts and len(hosts) <= capacity(config))
    taken = data.draw(st.lists(st.integers(pool.min_idx, pool.max_idx), unique=True, max_size=capacity(config) - len(hosts)))
    existing = {'old%d' % i: {pool.field: pool.subnet(idx)} for i, idx in enumerate(taken)}
    alloc = L.allocate(config, hosts, existing=existing)
    free = [i for i in range(pool.min_idx, pool.max_idx + 1) if i not in set(taken)]
    expected = {h: pool.subnet(i) for h, i in zip(sorted(hosts), free)}
    assert {h: alloc.leases[h][pool.field] for h in hosts} == expected
    check_leases(config, alloc.leases)


@SETTINGS
@given(configs, host_sets, st.data())
def test_pinned_subnets_are_honoured(config, hosts, data):
    pool = config.pools[0]
    assume(hosts and len(hosts) <= capacity(config))
    pinned_hosts = data.draw(st.lists(st.sampled_from(hosts), unique=True))
    indexes = data.draw(st.lists(st.integers(0, pool.count - 1), unique=True,
                                 min_size=len(pinned_hosts), max_size=len(pinned_hosts)))
    pinned = {h: pool.subnet(i) for h, i in zip(pinned_hosts, indexes)}
    in_range = sum(pool.min_idx <= i <= pool.max_idx for i in indexes)
    if len(hosts) - len(pinned) + in_range > capacity(config):
        with pytest.raises(L.LeaseError, match='too small'):
            L.allocate(config, hosts, pinned=pinned)
        return
    alloc = L.allocate(config, hosts, pinned=pinned)
    check_leases(config, alloc.leases)
    for host, subnet in pinned.items():
        assert alloc.leases[host][pool.field] == subnet


@SETTINGS
@given(st.sampled_from(NETWORKS), st.integers(0, 3))
def test_capacity_error_is_exact_at_the_boundary(network, existing_count):
    config = L.make_config(network[0], subnet_len=network[1])
    cap = capacity(config)
    first = L.allocate(config, ['e%d' % i for i in range(existing_count)])
    new = ['n%04d' % i for i in range(cap - existing_count)]
    assert len(L.allocate(config, new, existing=first.leases).leases) == cap
    with pytest.raises(L.LeaseError) as info:
        L.allocate(config, new + ['one-too-many'], existing=first.leases)
    assert '%d subnets of /%d fit' % (cap, network[1]) in str(info.value)
    assert '%d hosts ask for one (%d already leased there, %d new)' % (cap + 1, existing_count, cap + 1 - existing_count) in str(info.value)


@SETTINGS
@given(host_sets)
def test_dual_stack_pools_are_independent_and_disjoint(hosts):
    config = L.make_config('10.244.0.0/16', ipv6_network='fd00:244::/56')
    alloc = L.allocate(config, hosts)
    for field in ('subnet', 'ipv6_subnet'):
        values = [r[field] for r in alloc.leases.values()]
        assert len(set(values)) == len(values) == len(hosts)


@SETTINGS
@given(configs, host_sets)
def test_lease_file_round_trip(config, hosts):
    assume(len(hosts) <= capacity(config))
    alloc = L.allocate(config, hosts)
    assert L.parse_lease_file(L.render_lease_file(config, alloc.leases)) == alloc.leases


AWKWARD_NAMES = st.text(alphabet=st.characters(blacklist_categories=('Cs',)), min_size=1, max_size=8) | st.sampled_from(
    ['yes', 'null', '1', 'a\u0085b', 'x\u2028', '\U00010000', 'tab\there', '"', '\\'])


@SETTINGS
@given(st.lists(AWKWARD_NAMES, max_size=8, unique=True))
@example(['A\n'])  # once written as a plain key, which broke the file
def test_fast_lease_file_reader_agrees_with_yaml(hosts):
    config = L.make_config('10.244.0.0/16')
    hosts = [h for h in hosts if h.strip()]
    alloc = L.allocate(config, hosts, underlay={h: {'address': '192.168.0.%d' % (i + 1), 'vtep_mac': '02:00:00:00:00:%02x' % (i + 1)}
                                                for i, h in enumerate(hosts)})
    text = L.render_lease_file(config, alloc.leases)
    version, fast, duplicates = lease_file._parse_canonical(text)  # pylint: disable=protected-access
    assert version == L.FILE_FORMAT
    assert duplicates == []
    assert fast == {str(k): v for k, v in (yaml.safe_load(text)['leases'] or {}).items()} == alloc.leases


def test_a_host_written_twice_is_an_error():
    config = L.make_config('10.244.0.0/16')
    text = L.render_lease_file(config, {'a': {'subnet': '10.244.1.0/24'}}) + '  a: {subnet: "10.244.2.0/24"}\n'
    with pytest.raises(L.LeaseError, match='host a has two entries'):
        L.parse_lease_file(text)
