# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Validation and normalisation of user input for the netlink engine.

Every function returns a normalised value or raises ValidationError with a message that
names the object and the offending value.  Standard library only.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.overlay.mesh.plugins.module_utils._errors import OverlayMeshError

IFNAMSIZ_MAX = 15
VNI_MIN = 1
VNI_MAX = 16777215
# Route protocol number of overlay.mesh (named in /etc/iproute2/rt_protos.d/overlay-mesh.conf).
ROUTE_PROTOCOL = 217
ROUTE_PROTOCOL_NAME = 'overlay-mesh'


class ValidationError(OverlayMeshError, ValueError):
    """User input the engine refuses; the message names the object and the value."""


def ifname(value, what='interface name'):
    if not isinstance(value, str) or not value:
        raise ValidationError('%s must be a non-empty string, got %r' % (what, value))
    if len(value.encode('utf-8')) > IFNAMSIZ_MAX:
        raise ValidationError('%s %r is %d characters long; Linux allows at most %d'
                              % (what, value, len(value.encode('utf-8')), IFNAMSIZ_MAX))
    if value in ('.', '..') or any(ch in value for ch in '/: \t\n'):
        raise ValidationError('%s %r contains a character Linux does not allow (/, :, whitespace)' % (what, value))
    return value


def integer(value, what, low, high, note=''):
    """An int in low..high; note explains the range in the error."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationError('%s must be an integer, got %r' % (what, value))
    if not low <= number <= high:
        raise ValidationError('%s %d is outside %d-%d%s' % (what, number, low, high, note))
    return number


def vni(value, what='VNI'):
    return integer(value, what, VNI_MIN, VNI_MAX)


def port(value, what='UDP port'):
    return integer(value, what, 1, 65535)


def mtu(value, what='MTU'):
    return integer(value, what, 68, 65535)


def mac(value, what='MAC address'):
    """A unicast, locally administered MAC, returned as lower-case aa:bb:cc:dd:ee:ff."""
    text = str(value).strip().lower().replace('-', ':')
    parts = text.split(':')
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise ValidationError('%s %r is not a MAC address like 02:42:ac:11:00:02' % (what, value))
    try:
        octets = [int(p, 16) for p in parts]
    except ValueError:
        raise ValidationError('%s %r is not a MAC address like 02:42:ac:11:00:02' % (what, value))
    if octets[0] & 1:
        raise ValidationError('%s %s is a multicast/broadcast address (first octet odd); a unicast MAC is required' % (what, text))
    if not octets[0] & 2:
        raise ValidationError('%s %s is not locally administered (second-lowest bit of the first octet is 0);'
                              ' use a locally administered MAC such as 02:xx:xx:xx:xx:xx' % (what, text))
    return text


def ip_address(value, what='address'):
    try:
        return ipaddress.ip_address(str(value).strip())
    except ValueError:
        raise ValidationError('%s %r is not an IPv4 or IPv6 address' % (what, value))


def host_address(value, what='address'):
    """An address given bare or as /32 (IPv4) or /128 (IPv6); returns the ip_address."""
    text = str(value).strip()
    if '/' in text:
        addr_text, _sep, plen = text.partition('/')
        addr = ip_address(addr_text, what)
        full = addr.max_prefixlen
        if plen != str(full):
            raise ValidationError('%s %r: prefix /%s does not match an IPv%d host address (/%d expected)'
                                  % (what, value, plen, addr.version, full))
        return addr
    return ip_address(text, what)


def _with_prefix(value, what, noun, example):
    """(address, prefix length) of 'address/prefix', checked against the address family."""
    text = str(value).strip()
    if '/' not in text:
        raise ValidationError('%s %r needs a prefix length, like %s' % (what, value, example))
    addr_text, _sep, plen = text.partition('/')
    addr = ip_address(addr_text, what)
    if not plen.isdigit() or not 0 < int(plen) <= addr.max_prefixlen:
        raise ValidationError('%s %r: prefix /%s does not fit an IPv%d %s (1-%d)'
                              % (what, value, plen, addr.version, noun, addr.max_prefixlen))
    return addr, int(plen)


def interface_address(value, what='address'):
    """An address with prefix, like 10.244.1.1/24; returns an ipaddress.ip_interface."""
    addr, plen = _with_prefix(value, what, 'address', '10.244.1.1/24')
    return ipaddress.ip_interface('%s/%d' % (addr, plen))


def network(value, what='subnet'):
    """A network with host bits zero, like 10.244.2.0/24."""
    addr, plen = _with_prefix(value, what, 'network', '10.244.2.0/24')
    try:
        return ipaddress.ip_network('%s/%d' % (addr, plen), strict=True)
    except ValueError:
        raise ValidationError('%s %r has host bits set; did you mean %s?'
                              % (what, value, ipaddress.ip_network('%s/%d' % (addr, plen), strict=False)))


def route_protocol(value, what='route protocol'):
    """A route protocol number the kernel does not interpret itself (0-4 are reserved)."""
    return integer(value, what, 5, 255, ' (0-4 have a meaning to the kernel)')
