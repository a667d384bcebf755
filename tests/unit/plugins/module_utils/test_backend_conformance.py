# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every registered backend passes the same checks of the interface in _backends/base.py: its option
specs, overhead, firewall needs, published data (checked by the backend, carried opaquely by the lease file
and etcd's values), normalisation, the saved record and the engine's module list; and so does the test-only
backend (backend_ipip_testonly.py, registered here: one line), which publishes a field no shipped backend has
and needs an IP protocol of its own. (Apply and teardown on a kernel: tests/integration/test_netns_backends.py
and the molecule scenarios.)"""

from __future__ import annotations

import copy
import importlib
import ipaddress
import json
import re
import sys

import pytest

from ansible_collections.overlay.mesh.plugins.module_utils import _lease_schema, _nftables, _node_apply
from ansible_collections.overlay.mesh.plugins.module_utils import _node_spec as spec
from ansible_collections.overlay.mesh.plugins.module_utils import _spec
from ansible_collections.overlay.mesh.plugins.module_utils._backends import base, registry
from ansible_collections.overlay.mesh.plugins.module_utils._spec import SpecError

from ansible_collections.overlay.mesh.plugins.plugin_utils import _leases as L

import backend_ipip_testonly as testonly
from test_node_spec import MACHINE_ID
from test_node_spec import contract as base_contract

OPTION_KEYS = {'type', 'default', 'required', 'choices', 'elements', 'options', 'check'}
TYPES = {'int', 'bool', 'str', 'path', 'raw', 'dict', 'list'}
# the interface: what base.Backend declares (a backend's upper-case attribute base does not know is a typo)
INTERFACE = set(name for name in vars(base.Backend) if name.isupper())
BACKENDS = registry.names() + [testonly.NAME]
FIELD_NAME = re.compile(r'^[a-z][a-z0-9_]*$')  # a published field is a plain key of the lease file and etcd's JSON


@pytest.fixture(autouse=True)
def the_test_only_backend_is_registered(monkeypatch):
    testonly.register(monkeypatch)


def contract(**changes):
    """test_node_spec's contract, its peers carrying what the test-only backend's peers publish too."""
    data = base_contract(**changes)
    for number, peer in enumerate(data['peers']):
        peer.setdefault('tunnel_id', '%016x' % (number + 2))
    return data


def _check_spec(options, where):
    for key, option in options.items():
        assert isinstance(key, str) and key.islower(), '%s: option %r' % (where, key)
        assert isinstance(option, dict) and set(option) <= OPTION_KEYS, '%s.%s: %r' % (where, key, option)
        assert option.get('type', 'raw') in TYPES, '%s.%s: type %r' % (where, key, option.get('type'))
        if 'check' in option:
            assert callable(option['check']), '%s.%s' % (where, key)
        if 'choices' in option and option.get('default') is not None:
            assert option['default'] in option['choices'], '%s.%s: default not a choice' % (where, key)
        if 'options' in option:
            _check_spec(option['options'], '%s.%s' % (where, key))


def node(name, **changes):
    return spec.normalize(contract(backend=dict({'type': name}, **changes)), machine_id=MACHINE_ID)


@pytest.mark.parametrize('name', BACKENDS)
def test_the_registry_knows_the_backend_by_its_name(name):
    backend = registry.get(name)
    assert issubclass(backend, base.Backend) and backend is not base.Backend
    assert backend.name == name == sys.modules[backend.__module__].NAME
    assert set(name for name in vars(backend) if name.isupper()) <= INTERFACE


@pytest.mark.parametrize('name', BACKENDS)
def test_its_option_specs_are_valid_and_their_defaults_pass_their_own_checks(name):
    backend = registry.get(name)
    assert 'type' not in backend.OPTIONS  # implied
    _check_spec(backend.OPTIONS, 'backend')
    _check_spec(backend.PEER_OPTIONS, 'peers[]')
    _spec.ansible_argument_spec(backend.OPTIONS)  # the node module's argument spec is made from it
    defaults = _spec.validate({}, dict((key, option) for key, option in backend.OPTIONS.items() if not option.get('required')))
    assert set(defaults) <= set(backend.OPTIONS)
    assert set(backend.GROUP_OPTIONS) <= set(backend.OPTIONS) and set(backend.HOST_OPTIONS) <= set(backend.OPTIONS)
    assert not set(backend.PEER_OPTIONS) & set(spec.PEER_OPTIONS)  # what every peer has is not a backend's
    assert backend.KEYED == bool(backend.HOST_OPTIONS)


@pytest.mark.parametrize('name', BACKENDS)
def test_its_overhead_is_given_per_ip_version_and_sets_the_mtu(name):
    backend = registry.get(name)
    assert set(backend.OVERHEAD) == {4, 6}
    assert all(isinstance(value, int) and not isinstance(value, bool) for value in backend.OVERHEAD.values())
    # an IPv6 underlay header is 20 bytes longer than an IPv4 one: never less overhead over IPv6
    assert backend.OVERHEAD[6] >= backend.OVERHEAD[4] >= 0
    assert node(name).mtu == 1500 - backend.OVERHEAD[4]
    over_ipv6 = contract(backend={'type': name}, underlay={'address': '2001:db8::11', 'mtu': 1500},
                         peers=[{'name': 'node2', 'subnet': '10.244.2.0/24', 'underlay': '2001:db8::12',
                                 'vtep_mac': '02:00:00:00:00:02', 'public_key': 'AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=',
                                 'tunnel_id': '0000000000000002'}])
    assert spec.normalize(over_ipv6, machine_id=MACHINE_ID).mtu == 1500 - backend.OVERHEAD[6]


@pytest.mark.parametrize('name', BACKENDS)
def test_its_ports_are_protocol_and_port_pairs(name):
    ports = node(name).backend.ports()
    assert isinstance(ports, list)
    for entry in ports:
        protocol, port = entry
        assert protocol in ('udp', 'tcp') and isinstance(port, int) and 0 < port < 65536, entry
    if 'port' in registry.get(name).OPTIONS:
        assert node(name, port=4000).backend.ports() == [(ports[0][0], 4000)]


@pytest.mark.parametrize('name', BACKENDS)
def test_its_firewall_needs_are_ports_or_ip_protocols_and_get_their_rules(name):
    backend = node(name).backend
    needs = backend.firewall()
    assert needs[:len(backend.ports())] == backend.ports()
    for protocol, value in needs:
        assert isinstance(value, int) and not isinstance(value, bool), (protocol, value)
        assert (protocol in ('udp', 'tcp') and 0 < value < 65536) or (protocol == 'ip' and 0 < value < 256), (protocol, value)
    table = _nftables.render(node(name), needs)
    for protocol, value in needs:  # the peers-only drop and the notrack rules of every need
        match = 'meta l4proto %d' % value if protocol == 'ip' else '%s dport %d' % (protocol, value)
        assert '\t\t%s ip saddr != @peers counter drop\n' % match in table, table
        assert '\t\t%s ip saddr @peers notrack\n' % match in table and '\t\t%s ip daddr @peers notrack\n' % match in table
    if not needs:
        assert '@peers' not in table


@pytest.mark.parametrize('name', BACKENDS)
def test_its_published_fields_are_checked_by_it_and_carried_by_both_lease_stores(name):
    backend = registry.get(name)
    published = node(name).backend.publish()
    assert set(backend.UNIQUE_PEER_OPTIONS) <= set(backend.PEER_OPTIONS)
    for key, option in backend.PEER_OPTIONS.items():
        assert FIELD_NAME.match(key) and option.get('type') == 'str' and callable(option.get('check')), key
        assert registry.published_fields()[key] is backend  # no two backends publish one field
        with pytest.raises(ValueError):
            backend.check_published(key, '\u2603 not a value')
    for key, value in published.items():
        assert backend.check_published(key, value) == value
    # the lease file: a host's published data from its report is written, read back and kept when it reports nothing
    config = L.make_config()
    first = L.allocate(config, ['a'], underlay={'a': dict(published, address='198.18.0.11')})
    assert first.leases['a'] == dict(published, subnet='10.244.1.0/24', underlay='198.18.0.11')
    text = L.render_lease_file(config, first.leases)
    assert L.parse_lease_file(text) == first.leases
    assert L.allocate(config, ['a'], existing=L.parse_lease_file(text), underlay={}).leases == first.leases
    # etcd's value: flannel's form (the backend's BackendData) beside ours, decoded to the same record
    settings = _lease_schema.backend_settings({'type': name})
    value = _lease_schema.lease_value('a', first.leases['a'], settings)
    assert _lease_schema.decode('/p/subnets/10.244.1.0-24', value, '/p/subnets/') == ('a', first.leases['a'], json.loads(value))
    assert json.loads(value)['BackendData'] == (backend.flannel_data(first.leases['a'], settings) or None)


@pytest.mark.parametrize('name', BACKENDS)
def test_what_it_publishes_is_what_its_peers_must_carry(name):
    backend = registry.get(name)
    published = node(name).backend.publish()
    assert set(published) <= set(backend.PEER_OPTIONS)
    # a published value passes the peers' own check unchanged: what one host publishes, its peers accept
    for key, value in published.items():
        assert _spec.validate({key: value}, {key: backend.PEER_OPTIONS[key]}) == {key: value}
    # a peer without a required field is refused, naming it
    for key, option in backend.PEER_OPTIONS.items():
        if option.get('required'):
            raw = contract(backend={'type': name})
            del raw['peers'][0][key]
            with pytest.raises(SpecError) as info:
                spec.normalize(raw, machine_id=MACHINE_ID)
            assert 'peers[0].%s' % key in dict(info.value.problems)


@pytest.mark.parametrize('name', BACKENDS)
def test_normalisation_is_idempotent(name):
    first = node(name)
    backend = registry.get(name)
    params = copy.deepcopy(first.data['backend'])
    assert backend.normalize(copy.deepcopy(params), MACHINE_ID) == params
    again = spec.normalize(copy.deepcopy(first.data), machine_id=MACHINE_ID)
    assert again.data == first.data and again.mtu == first.mtu


@pytest.mark.parametrize('name', BACKENDS)
def test_the_saved_record_names_the_same_instance_for_teardown(name):
    first = node(name)
    record = spec.removal_record(copy.deepcopy(first.data))
    saved = spec.saved_backend(record)
    assert isinstance(saved, registry.get(name)) and saved.name == name and saved.device == first.backend.device
    assert first.backend.same_instance(record['backend'])
    others = [other for other in BACKENDS if other != name]
    assert not any(first.backend.same_instance(dict(record['backend'], type=other)) for other in others)
    old_device = registry.get(name).release_0_1_device({})
    assert old_device is None or isinstance(old_device, str)


@pytest.mark.parametrize('name', BACKENDS)
def test_it_reconciles_and_tears_down_itself(name):
    backend = registry.get(name)
    for method in ('apply', 'teardown'):
        assert getattr(backend, method) is not getattr(base.Backend, method), '%s does not implement %s' % (name, method)
    assert isinstance(backend.PEER_ROUTE_KINDS, tuple) and all(isinstance(kind, str) for kind in backend.PEER_ROUTE_KINDS)
    device = node(name).backend.device
    assert device is None or 0 < len(device) <= 15


@pytest.mark.parametrize('name', BACKENDS)
def test_a_dual_stack_overlay_is_carried_or_refused_before_any_change(name):
    backend = registry.get(name)
    raw = contract(backend={'type': name}, ipv6_network='fd00:244::/48', ipv6_subnet='fd00:244:0:1::/64',
                   underlay={'address': '2001:db8::11', 'mtu': 1500}, peers=[])
    if backend.DUAL_STACK:
        assert ipaddress.ip_network(spec.normalize(raw, machine_id=MACHINE_ID).data['ipv6_network']).version == 6
    else:
        with pytest.raises(SpecError):
            spec.normalize(raw, machine_id=MACHINE_ID)


@pytest.mark.parametrize('name', BACKENDS)
def test_the_installed_engine_carries_it_and_what_it_declares(name):
    module = sys.modules[registry.get(name).__module__]
    # every module of the collection it imports is installed
    prefix = _node_apply.PACKAGE + '.'
    imported = set(value.__name__[len(prefix):] for value in vars(module).values()
                   if isinstance(value, type(sys)) and value.__name__.startswith(prefix))
    assert imported <= set(_node_apply.ENGINE_MODULES), imported - set(_node_apply.ENGINE_MODULES)
    if name == testonly.NAME:
        return  # it lives under tests/ and is never installed (the netns test puts it on the path)
    own = module.__name__[len(_node_apply.PACKAGE) + 1:]
    declared = getattr(module, 'ENGINE_MODULES', ())
    assert own in _node_apply.ENGINE_MODULES and set(declared) <= set(_node_apply.ENGINE_MODULES)
    for extra in declared:
        assert extra.startswith('_backends.')
        importlib.import_module('%s.%s' % (_node_apply.PACKAGE, extra))
