# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Find the host's underlay the way flannel does: an explicit address, an explicit interface,
the interface that reaches an address, else the default route's interface. Reads `ip -j`;
changes nothing. Standard library only (used by underlay_info, node_info and the node apply).
"""

from __future__ import annotations

import ipaddress
import json
import subprocess

from ansible_collections.overlay.mesh.plugins.module_utils._errors import OverlayMeshError


class UnderlayError(OverlayMeshError):
    pass


def ip_json(*args):
    try:
        proc = subprocess.run(['ip', '-j'] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, check=False)
    except OSError as exc:
        raise UnderlayError('ip (iproute2) cannot run: %s' % exc)
    if proc.returncode != 0:
        raise UnderlayError('ip %s failed: %s' % (' '.join(args), proc.stderr.strip() or proc.stdout.strip()))
    return json.loads(proc.stdout or '[]')


def global_addresses(links, family):
    """(interface, address, prefixlen, mtu) of every global address of the family."""
    wanted = 'inet' if family == 'ipv4' else 'inet6'
    for link in links:
        for info in link.get('addr_info', []):
            if info.get('family') == wanted and info.get('scope') == 'global':
                yield link['ifname'], info['local'], int(info['prefixlen']), int(link.get('mtu', 1500))


def _named(params, option):
    """How a message names an option: the role variable that sets it (params ``variables``), else the option."""
    variable = (params.get('variables') or {}).get(option)
    return ('role variable %s' % variable) if variable else ('option %s' % option)


def _on(params):
    """The host a message names: its inventory hostname (params ``host``), else "this host"."""
    return ('host %s' % params['host']) if params.get('host') else 'this host'


def route_lookup(destination, family='ipv4'):
    """(device, preferred source) of the route to destination, or of the default route."""
    flag = '-4' if family == 'ipv4' else '-6'
    if destination:
        routes = ip_json(flag, 'route', 'get', destination)
        if not routes:
            raise UnderlayError('no route to %s (option reach)' % destination)
    else:
        routes = ip_json(flag, 'route', 'show', 'default')
        if not routes:
            raise UnderlayError('this host has no %s default route; set interface, address or reach' % family)
    return routes[0]['dev'], routes[0].get('prefsrc')


def choose(links, params, lookup):
    """Pick the underlay from `ip -j addr` output. params: address, interface, reach, family.

    Messages name the option, or with params ``variables`` (option -> role variable) the role variable,
    and the host (params ``host``, its inventory hostname). Returns ((interface, address, prefixlen, mtu), chosen_by)."""
    family = params.get('family') or 'ipv4'
    for option in ('address', 'reach'):
        if params.get(option):
            try:
                ipaddress.ip_address(params[option])
            except ValueError:
                raise UnderlayError('%s: %r is not an IP address (%s)'
                                    % ((params.get('variables') or {}).get(option) or option, params[option], _on(params)))
    addresses = list(global_addresses(links, family))
    if params.get('address'):
        wanted = ipaddress.ip_address(params['address'])
        for found in addresses:
            if ipaddress.ip_address(found[1]) == wanted:
                return found, 'address'
        raise UnderlayError('underlay address %s (%s) is not configured on any interface of %s'
                            % (wanted, _named(params, 'address'), _on(params)))
    if params.get('interface'):
        if params['interface'] not in [link['ifname'] for link in links]:
            raise UnderlayError('underlay interface %s (%s) does not exist on %s'
                                % (params['interface'], _named(params, 'interface'), _on(params)))
        for found in addresses:
            if found[0] == params['interface']:
                return found, 'interface'
        raise UnderlayError('underlay interface %s (%s) has no global %s address on %s'
                            % (params['interface'], _named(params, 'interface'), family, _on(params)))
    chosen_by = 'reach' if params.get('reach') else 'default_route'
    dev, src = lookup(params.get('reach'))
    for found in addresses:
        if found[0] == dev and (src is None or ipaddress.ip_address(found[1]) == ipaddress.ip_address(src)):
            return found, chosen_by
    for found in addresses:
        if found[0] == dev:
            return found, chosen_by
    raise UnderlayError('interface %s (chosen by %s) has no global %s address' % (dev, chosen_by.replace('_', ' '), family))


def find(params):
    """The underlay as a dict: interface, address, prefixlen, network, mtu, family, chosen_by.

    The family is the given one, else that of address or reach, else IPv4 - or IPv6 on a host
    that has no IPv4 underlay (no IPv4 default route, or an interface with IPv6 addresses only)."""
    given = params.get('address') or params.get('reach') or ''
    if not params.get('family') and not given:
        try:
            return _find(dict(params, family='ipv4'))
        except UnderlayError as ipv4_problem:
            try:
                return _find(dict(params, family='ipv6'))
            except UnderlayError:
                raise ipv4_problem from None
    return _find(dict(params, family=params.get('family') or ('ipv6' if ':' in given else 'ipv4')))


def _find(params):
    family = params['family']
    (interface, address, prefixlen, mtu), chosen_by = choose(ip_json('addr', 'show'), params,
                                                             lambda destination: route_lookup(destination, family))
    network = ipaddress.ip_interface('%s/%d' % (address, prefixlen)).network
    return {'interface': interface, 'address': address, 'prefixlen': prefixlen, 'network': str(network), 'mtu': mtu,
            'family': family, 'chosen_by': chosen_by}


def link_mtu(underlay):
    """The MTU of the underlay interface (named, or the one holding the address)."""
    family = 'ipv6' if ':' in underlay['address'] else 'ipv4'
    params = {'interface': underlay['interface']} if underlay.get('interface') else {'address': underlay['address']}
    params['family'] = family
    (interface, _address, _prefixlen, mtu), _chosen = choose(ip_json('addr', 'show'), params, None)
    del interface
    return mtu
