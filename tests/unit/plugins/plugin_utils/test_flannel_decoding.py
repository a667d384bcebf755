# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Our etcd keys and values, decoded by flannel's rules, and flanneld's values decoded by ours.

flanneld is not packaged for Debian, so its decoding is restated here from flannel's source
(github.com/flannel-io/flannel, read at commit cdf76059, 2026-08):
- pkg/subnet/subnet.go: ``subnetRegex`` and ``ParseSubnetKey`` (a key's subnets; the IPv4 prefix
  length is parsed with strconv.ParseUint(.., 10, 5), the IPv6 one with bit size 7) and ``MakeSubnetKey``
  (the IPv4 subnet ``a.b.c.d-len``, then ``&`` and the IPv6 subnet; an IPv6-only lease has 0.0.0.0-0).
- pkg/subnet/etcd/registry.go ``kvToIPLease``: EnableIPv4 is always true, EnableIPv6 when the key has an IPv6 part.
- pkg/lease/lease.go ``LeaseAttrs``: PublicIP ip.IP4 (a value: always written, 0.0.0.0 when unset),
  PublicIPv6 *ip.IP6, BackendType string, BackendData and BackendV6Data json.RawMessage (omitempty).
- pkg/ip/ipnet.go, pkg/ip/ip6net.go: IP4 and IP6 UnmarshalJSON (quotes trimmed; ParseIP4 wants IPv4).
- pkg/backend/vxlan/vxlan_network.go ``handleSubnetEvents`` and ``vxlanLeaseAttrs`` {VNI uint32, VtepMAC
  hardwareAddr}: for the IPv4 device it decodes BackendData, for the IPv6 device BackendV6Data and uses
  PublicIPv6 (a nil PublicIPv6 is dereferenced: flanneld panics); a decode error skips the whole lease.
  hardwareAddr.UnmarshalJSON (pkg/backend/vxlan/vxlan.go) wants a JSON string that net.ParseMAC reads.
- pkg/backend/vxlan/vxlan.go ``VXLANConfig``: json tags vni, port, mtu, gbp, learning, directRouting;
  ``newSubnetAttrs``: what flanneld writes (PublicIP with BackendData, PublicIPv6 with BackendV6Data).
- pkg/subnet/config.go ``Config`` and ``ParseConfig`` (EnableIPv4 true unless the config says otherwise).
Go's encoding/json matches an object's key to a struct field by the field's JSON name, exactly or else
case-insensitively, and ignores keys that match no field.
"""

from __future__ import annotations

import ipaddress
import json
import re

import pytest

from ansible_collections.overlay.mesh.plugins.module_utils import _flannel_interop as interop
from ansible_collections.overlay.mesh.plugins.plugin_utils import _leases as L
from ansible_collections.overlay.mesh.plugins.plugin_utils import _registry as R

# pkg/subnet/subnet.go
SUBNET_REGEX = re.compile(r'(\d+\.\d+.\d+.\d+)-(\d+)(?:&([a-f\d:]+)-(\d+))?$')
PREFIX = '/coreos.com/network'
MAC, MAC6 = '02:6a:4f:10:00:01', '02:6a:4f:10:00:02'


class GoDecodeError(Exception):
    pass


def go_fields(obj, names):
    """{field: raw value} of a JSON object decoded into a struct with these JSON field names (encoding/json:
    an exact match first, else a case-insensitive one; other keys ignored; a later key wins)."""
    if not isinstance(obj, dict):
        raise GoDecodeError('json: cannot unmarshal %r into a struct' % (obj,))
    found = {}
    for key, value in obj.items():
        field = key if key in names else next((name for name in names if name.casefold() == key.casefold()), None)
        if field is not None:
            found[field] = value
    return found


def go_ip4(raw):
    text = raw.strip('"') if isinstance(raw, str) else json.dumps(raw)
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise GoDecodeError('invalid IP address format: %r' % (raw,)) from None
    if address.version == 6 and address.ipv4_mapped is None:
        raise GoDecodeError('invalid IPv4 address format: %r' % (raw,))
    return address if address.version == 4 else address.ipv4_mapped


def go_ip6(raw):
    if raw is None:
        return None  # JSON null leaves the pointer nil
    text = raw.strip('"') if isinstance(raw, str) else json.dumps(raw)
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise GoDecodeError('invalid IP address format: %r' % (raw,)) from None


def go_uint(raw, bits):
    if not isinstance(raw, int) or isinstance(raw, bool) or not 0 <= raw < 2 ** bits:
        raise GoDecodeError('json: cannot unmarshal %r into uint%d' % (raw, bits))
    return raw


def go_bool(raw):
    if not isinstance(raw, bool):
        raise GoDecodeError('json: cannot unmarshal %r into bool' % (raw,))
    return raw


def go_mac(raw):
    if not isinstance(raw, str) or not re.match(r'^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$', raw):
        raise GoDecodeError('error parsing hardware addr %r' % (raw,))
    return raw.lower().replace('-', ':')


def lease_attrs(text):
    """LeaseAttrs of an etcd value."""
    fields = go_fields(json.loads(text), ('PublicIP', 'PublicIPv6', 'BackendType', 'BackendData', 'BackendV6Data'))
    return {'PublicIP': go_ip4(fields['PublicIP']) if 'PublicIP' in fields else ipaddress.ip_address('0.0.0.0'),
            'PublicIPv6': go_ip6(fields.get('PublicIPv6')), 'BackendType': fields.get('BackendType', ''),
            'BackendData': fields.get('BackendData'), 'BackendV6Data': fields.get('BackendV6Data')}


def vxlan_lease_attrs(raw):
    """json.Unmarshal(RawMessage, &vxlanLeaseAttrs): an absent member is empty input, an error."""
    if raw is None:
        raise GoDecodeError('unexpected end of JSON input')
    fields = go_fields(raw, ('VNI', 'VtepMAC'))
    return {'VNI': go_uint(fields.get('VNI', 0), 32), 'VtepMAC': go_mac(fields['VtepMAC']) if 'VtepMAC' in fields else None}


def parse_subnet_key(key):
    """ParseSubnetKey: (IPv4 network, IPv6 network or None); None when flannel cannot parse it."""
    match = SUBNET_REGEX.search(key)
    if not match:
        return None
    v4, len4, v6, len6 = match.groups()
    try:
        address4 = ipaddress.ip_address(v4)
    except ValueError:
        return None
    if address4.version != 4 or int(len4) >= 2 ** 5:
        return None
    sn4 = ipaddress.ip_network('%s/%s' % (v4, len4), strict=False)
    sn6 = None
    if v6:
        if int(len6) >= 2 ** 7:
            return None
        sn6 = ipaddress.ip_network('%s/%s' % (v6, len6), strict=False)
    return sn4, sn6


def make_subnet_key(sn4, sn6):
    """MakeSubnetKey: IP4Net.StringSep(".", "-"), then "&" and IP6Net.StringSep(":", "-") (net.IP.String, RFC 5952)."""
    name = '%s-%d' % (sn4.network_address, sn4.prefixlen)
    return name if sn6 is None else '%s&%s-%d' % (name, sn6.network_address.compressed, sn6.prefixlen)


def flanneld_reads(key, value, ipv4=True, ipv6=False):
    """What a flanneld with these families takes from a lease (handleSubnetEvents, as kvToIPLease hands it over):
    {family: (subnet, underlay address, VNI, VtepMAC)}; GoDecodeError where flanneld logs an error and skips the lease."""
    parsed = parse_subnet_key(key)
    if parsed is None:
        raise GoDecodeError('failed to parse subnet key %s' % key)
    sn4, sn6 = parsed
    attrs = lease_attrs(value)
    if attrs['BackendType'] != 'vxlan':
        raise GoDecodeError('ignoring non-vxlan lease')
    taken = {}
    if ipv4:  # EnableIPv4 is always true for an etcd lease
        data = vxlan_lease_attrs(attrs['BackendData'])
        taken[4] = (sn4, attrs['PublicIP'], data['VNI'], data['VtepMAC'])
    if ipv6 and sn6 is not None:
        data = vxlan_lease_attrs(attrs['BackendV6Data'])
        if attrs['PublicIPv6'] is None:
            raise GoDecodeError('PublicIPv6 is nil: flanneld dereferences it (panic)')
        taken[6] = (sn6, attrs['PublicIPv6'], data['VNI'], data['VtepMAC'])
    return taken


BACKEND = R._backend({'type': 'vxlan', 'vni': 1, 'port': 8472})  # pylint: disable=protected-access
RECORDS = {
    'IPv4 lease, IPv4 underlay': {'subnet': '10.244.1.0/24', 'underlay': '198.18.0.11', 'vtep_mac': MAC},
    'dual-stack lease, IPv4 underlay': {'subnet': '10.244.1.0/24', 'ipv6_subnet': 'fd00:244:0:1::/64', 'underlay': '198.18.0.11',
                                        'vtep_mac': MAC},
    'dual-stack lease, IPv6 underlay': {'subnet': '10.244.1.0/24', 'ipv6_subnet': 'fd00:244:0:1::/64', 'underlay': '2001:db8::b',
                                        'vtep_mac': MAC},
    'IPv4 lease, IPv6 underlay': {'subnet': '10.244.1.0/24', 'underlay': '2001:db8::b', 'vtep_mac': MAC},
    'IPv6-only lease, IPv6 underlay': {'ipv6_subnet': 'fd00:244:0:1::/64', 'underlay': '2001:db8::b', 'vtep_mac': MAC},
}


@pytest.mark.parametrize('name', sorted(RECORDS))
def test_our_keys_are_flannels_make_subnet_key_and_parse_back(name):
    record = RECORDS[name]
    key = R.subnet_key(PREFIX, record)
    sn4, sn6 = parse_subnet_key(key)
    assert sn4 == ipaddress.ip_network(record.get('subnet', '0.0.0.0/0'))
    assert sn6 == (ipaddress.ip_network(record['ipv6_subnet']) if record.get('ipv6_subnet') else None)
    assert key == '%s/subnets/%s' % (PREFIX, make_subnet_key(sn4, sn6))
    # and ours reads flannel's form back to the same record
    assert R.parse_subnet_key(key.rsplit('/', 1)[1]) == dict((f, record[f]) for f in (L.FIELD_V4, L.FIELD_V6) if f in record)


def test_keys_flannel_cannot_parse_are_refused_by_ours_too():
    for name in ('fd00:244:0:1::-64', 'fd00:244:0:1::-64&10.244.1.0-24', '10.244.1.0-24&10.244.2.0-24', '0.0.0.0-0', 'x-24'):
        with pytest.raises(ValueError):
            R.parse_subnet_key(name)


@pytest.mark.parametrize('name', sorted(RECORDS))
def test_flanneld_of_every_family_decodes_our_leases_and_takes_the_part_our_vtep_serves(name):
    record = RECORDS[name]
    key, value = R.subnet_key(PREFIX, record), R.lease_value('node1', record, BACKEND)
    underlay = ipaddress.ip_address(record['underlay'])
    # flanneld's families are the network config's, shared by every host: a dual-stack config has dual-stack leases
    readers = {'IPv4': (True, False), 'dual stack': (True, True)} if record.get('subnet') else {'IPv6 only': (False, True)}
    for reader, (ipv4, ipv6) in readers.items():
        taken = flanneld_reads(key, value, ipv4, ipv6)  # no GoDecodeError: the lease is not skipped
        for family, (subnet, address, vni, mac) in taken.items():
            assert (vni, mac) == (1, MAC), (reader, family)
            if family == 6:
                assert subnet == ipaddress.ip_network(record['ipv6_subnet'])
            elif record.get('subnet'):
                assert subnet == ipaddress.ip_network(record['subnet'])
            # the family of our underlay is reached at our address; the other has no endpoint (unspecified)
            assert address == underlay if address.version == underlay.version else address.is_unspecified, (reader, family)
        if record.get('subnet') and ipv4 and underlay.version == 4:
            assert taken[4][1] == underlay, reader


def test_our_values_carry_flanneld_dual_stack_members_exactly_as_it_names_them():
    value = json.loads(R.lease_value('node1', RECORDS['dual-stack lease, IPv6 underlay'], BACKEND))
    assert value['PublicIP'] == '0.0.0.0' and value['PublicIPv6'] == '2001:db8::b'
    assert value['BackendData'] == value['BackendV6Data'] == {'VNI': 1, 'VtepMAC': MAC}
    value = json.loads(R.lease_value('node1', RECORDS['IPv4 lease, IPv4 underlay'], BACKEND))
    assert set(value) == {'PublicIP', 'BackendType', 'BackendData', 'OverlayMesh'}


def test_our_config_decodes_as_flannels_with_direct_routing():
    config = L.make_config('10.244.0.0/16', ipv6_network='fd00:244::/56')
    backend = R._backend({'type': 'vxlan', 'vni': '42', 'port': 4789, 'direct_routing': True})  # pylint: disable=protected-access
    value = json.loads(R.config_value(config, backend))
    fields = go_fields(value, ('EnableIPv4', 'EnableIPv6', 'EnableNFTables', 'Network', 'IPv6Network', 'SubnetMin', 'SubnetMax',
                               'IPv6SubnetMin', 'IPv6SubnetMax', 'SubnetLen', 'IPv6SubnetLen', 'Backend'))
    assert go_bool(fields['EnableIPv6']) and fields.get('EnableIPv4', True) is True
    assert ipaddress.ip_network(fields['Network']) == ipaddress.ip_network('10.244.0.0/16')
    assert go_ip4(fields['SubnetMin']) and go_ip6(fields['IPv6SubnetMin'])
    assert go_uint(fields['SubnetLen'], 64) == 24 and go_uint(fields['IPv6SubnetLen'], 64) == 64
    vxlan = go_fields(fields['Backend'], ('Type', 'vni', 'port', 'mtu', 'gbp', 'learning', 'directRouting'))
    assert vxlan['Type'] == 'vxlan' and go_uint(vxlan['vni'], 64) == 42 and go_uint(vxlan['port'], 64) == 4789
    assert go_bool(vxlan['directRouting']) is True
    plain = json.loads(R.config_value(config, R._backend({'type': 'vxlan'})))  # pylint: disable=protected-access
    assert 'directRouting' not in go_fields(plain['Backend'], ('directRouting',))  # flannel's default, false


def flanneld_value(public_ip=None, public_ipv6=None, mac=MAC, mac6=MAC6, vni=1):
    """A lease value as flanneld's newSubnetAttrs marshals LeaseAttrs: PublicIP always, PublicIPv6 null without IPv6."""
    value = {'PublicIP': public_ip or '0.0.0.0', 'PublicIPv6': public_ipv6, 'BackendType': 'vxlan'}
    if public_ip:
        value['BackendData'] = {'VNI': vni, 'VtepMAC': mac}
    if public_ipv6:
        value['BackendV6Data'] = {'VNI': vni, 'VtepMAC': mac6}
    return value


def test_flanneld_values_pass_our_decoder_too():
    for value, key in ((flanneld_value('198.18.0.19'), '10.244.3.0-24'),
                       (flanneld_value('198.18.0.19', '2001:db8::13'), '10.244.3.0-24&fd00:244:0:3::-64'),
                       (flanneld_value(None, '2001:db8::13'), '0.0.0.0-0&fd00:244:0:3::-64')):
        flanneld_reads(key, json.dumps(value), ipv4=key[0] != '0', ipv6='&' in key)


def test_our_reader_pairs_each_address_with_its_own_member():
    dual = flanneld_value('198.18.0.19', '2001:db8::13')
    key, rec = '/p/subnets/10.244.3.0-24&fd00:244:0:3::-64', {'subnet': '10.244.3.0/24', 'ipv6_subnet': 'fd00:244:0:3::/64'}
    # an IPv4 underlay: PublicIP with BackendData's MAC
    assert interop.peers([(key, rec, dual)], vni=1) == (
        {'flanneld@198.18.0.19': {'subnet': '10.244.3.0/24', 'underlay': '198.18.0.19', 'vtep_mac': MAC}}, [])
    # an IPv6 underlay: PublicIPv6 with BackendV6Data's MAC, never BackendData's
    assert interop.peers([(key, rec, dual)], vni=1, family=6) == (
        {'flanneld@2001:db8::13': {'subnet': '10.244.3.0/24', 'underlay': '2001:db8::13', 'vtep_mac': MAC6}}, [])
    # a lease with only an IPv6 VTEP (PublicIP 0.0.0.0, no BackendData) is reached there even from an IPv4-first reader
    only6 = dict(flanneld_value('198.18.0.19', '2001:db8::13'), PublicIP='0.0.0.0')
    del only6['BackendData']
    assert interop.peers([(key, rec, only6)], vni=1)[0]['flanneld@2001:db8::13']['vtep_mac'] == MAC6
    # flanneld's IPv6-only lease has no IPv4 subnet for the mesh: a problem naming the key, not 0.0.0.0/0
    key6 = '/p/subnets/0.0.0.0-0&fd00:244:0:3::-64'
    found, problems = interop.peers([(key6, R.parse_subnet_key(key6.rsplit('/', 1)[1]), flanneld_value(None, '2001:db8::13'))], vni=1)
    assert not found and 'no IPv4 subnet' in problems[0] and key6 in problems[0]
