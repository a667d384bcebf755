# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Guarded pyroute2 import and the few helpers that hide 0.7.2 / 0.9.x differences."""

from __future__ import annotations

import traceback

try:
    import pyroute2
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError
except ImportError:
    HAS_PYROUTE2 = False
    PYROUTE2_IMPORT_ERROR = traceback.format_exc()
    PYROUTE2_VERSION = None

    class IPRoute(object):  # pylint: disable=too-few-public-methods
        """Placeholder so that importing this module never fails."""

        def __init__(self, *args, **kwargs):
            raise RuntimeError('pyroute2 is not installed')

    class NetlinkError(Exception):
        """Placeholder for pyroute2.netlink.exceptions.NetlinkError."""

        def __init__(self, code=0, msg=None):
            super(NetlinkError, self).__init__(code, msg)
            self.code = code
else:
    HAS_PYROUTE2 = True
    PYROUTE2_IMPORT_ERROR = None
    PYROUTE2_VERSION = getattr(pyroute2, '__version__', 'unknown')

IFF_UP = 0x1


def open_iproute():
    """An IPRoute socket in the current network namespace (0.7.2 and 0.9.x alike)."""
    return IPRoute()


def first(messages):
    """The first message of a reply: a list in 0.7, a tuple or generator in 0.9."""
    for message in messages:
        return message
    return None


def nested(message, *names):
    """msg.get_attr() through nested attributes; None where a level is missing."""
    for name in names:
        if message is None:
            return None
        message = message.get_attr(name)
    return message


def netlink_error_text(exc):
    """'errno N (text)' for a pyroute2 NetlinkError or an OSError."""
    code = getattr(exc, 'code', None)
    if code is None:
        code = getattr(exc, 'errno', None)
    args = getattr(exc, 'args', ())
    text = args[1] if len(args) > 1 and args[1] else str(exc)
    return 'errno %s (%s)' % (code, text)
