# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Netlink framing, once, for both raw channels of the engine: rtnetlink (``_netlink_wire``:
neighbours, FDB entries, routes) and generic netlink (the wireguard backend's ``wireguard_genl``).

What is here is what the two protocols share: the nlmsghdr, attributes (packing, nesting,
iteration), the socket with its options and sequence numbers, a request read until its ack or the
end of its dump, dumps restarted when the kernel flags them as interrupted, and the kernel's
extended-ack text.  Only the standard library is used: this file also runs outside Ansible
(the boot-time unit).
"""

from __future__ import annotations

import errno
import os
import socket
import struct

from ansible_collections.overlay.mesh.plugins.module_utils._errors import OverlayMeshError

# ---- constants (linux/netlink.h) -----------------------------------------------------------
NETLINK_ROUTE = 0
NETLINK_GENERIC = 16
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
SO_RCVBUFFORCE = 33
SO_SNDBUFFORCE = 32

NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_MIN_TYPE = 0x10  # below it: control messages (noop, error, done, overrun)

NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP_INTR = 0x10
NLM_F_DUMP = 0x300
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_CAPPED = 0x100    # in an NLMSG_ERROR: only the header of the request is echoed
NLM_F_ACK_TLVS = 0x200  # in an NLMSG_ERROR: extended-ack attributes follow
NLMSGERR_ATTR_MSG = 1
NLA_F_NESTED = 0x8000

HDR = struct.Struct('=IHHII')  # nlmsghdr: len, type, flags, seq, pid
ATTR = struct.Struct('=HH')    # rtattr / nlattr: len, type
_I32 = struct.Struct('=i')
_U32 = struct.Struct('=I')


class NetlinkFailure(OverlayMeshError):
    """A netlink request or dump failed as a whole (not per item); ``code`` is the errno."""

    def __init__(self, code, message):
        super(NetlinkFailure, self).__init__(message)
        self.code = code


# ---- attributes ------------------------------------------------------------------------------
def attr(atype, payload):
    """One attribute: header, payload and padding to 4 bytes."""
    length = ATTR.size + len(payload)
    return ATTR.pack(length, atype) + payload + b'\0' * (-length % 4)


def attr_u32(atype, value):
    return attr(atype, _U32.pack(value))


def nest(atype, payload):
    """A nested attribute (its payload is attributes)."""
    return attr(atype | NLA_F_NESTED, payload)


def iter_attrs(data, offset, end):
    """Yield (type without flags, payload_start, payload_end) for the attributes in data[offset:end]."""
    unpack = ATTR.unpack_from
    while offset + ATTR.size <= end:
        length, atype = unpack(data, offset)
        if length < ATTR.size:
            break
        yield atype & 0x3fff, offset + ATTR.size, offset + length
        offset += (length + 3) & ~3


def attr_payloads(data, offset=0, end=None):
    """Yield (type without flags, payload bytes) for the attributes in data[offset:end]."""
    for atype, start, stop in iter_attrs(data, offset, len(data) if end is None else end):
        yield atype, data[start:stop]


# ---- errors ----------------------------------------------------------------------------------
def error_code(data, offset):
    """The errno of the NLMSG_ERROR message at data[offset] (0: an ack)."""
    return -_I32.unpack_from(data, offset + HDR.size)[0]


def error_text(data, offset, end, flags):
    """The kernel's extended-ack text of the NLMSG_ERROR message at data[offset:end], if it sent one."""
    if not flags & NLM_F_ACK_TLVS or end < offset + 2 * HDR.size + 4:
        return None
    echoed = offset + HDR.size + 4  # the request's header, echoed after the errno
    start = echoed + (HDR.size if flags & NLM_F_CAPPED else HDR.unpack_from(data, echoed)[0])
    for atype, first, stop in iter_attrs(data, start, end):
        if atype == NLMSGERR_ATTR_MSG:
            return bytes(data[first:stop]).rstrip(b'\0').decode('utf-8', 'replace')
    return None


def done_text(data, offset, end, flags):
    """The extended-ack text of a failed dump's NLMSG_DONE at data[offset:end]: its TLVs follow the errno."""
    if not flags & NLM_F_ACK_TLVS:
        return None
    for atype, first, stop in iter_attrs(data, offset + HDR.size + 4, end):
        if atype == NLMSGERR_ATTR_MSG:
            return bytes(data[first:stop]).rstrip(b'\0').decode('utf-8', 'replace')
    return None


def whole_message(data, start, end):
    """A parse for request(): the answer as it came, header included."""
    return bytes(data[start - HDR.size:end])


# ---- the socket ------------------------------------------------------------------------------
class NetlinkSocket(object):
    """A netlink socket of one protocol in the current network namespace."""

    def __init__(self, protocol, buffer_size=None, timeout=60):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol)
        try:
            if buffer_size:
                for force, plain in ((SO_RCVBUFFORCE, socket.SO_RCVBUF), (SO_SNDBUFFORCE, socket.SO_SNDBUF)):
                    try:
                        self.sock.setsockopt(socket.SOL_SOCKET, force, buffer_size)
                    except OSError:
                        self.sock.setsockopt(socket.SOL_SOCKET, plain, buffer_size)
            for option in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):
                try:
                    self.sock.setsockopt(SOL_NETLINK, option, 1)
                except OSError:
                    pass  # older kernels: whole echoed requests, no error text
            self.sock.settimeout(timeout)
            self.sock.bind((0, 0))
        except OSError:
            self.sock.close()
            raise
        # The pid in the high bits tells two runs apart in a capture (nlmon).
        self.seq = (os.getpid() & 0xffff) << 12

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def next_seq(self):
        self.seq = (self.seq + 1) & 0xffffffff
        return self.seq

    def message(self, msg_type, flags, body):
        """One request message with the next sequence number."""
        return HDR.pack(HDR.size + len(body), msg_type, flags | NLM_F_REQUEST, self.next_seq(), 0) + body

    def replies(self):
        """Yield (data, offset, length, type, flags, seq) for each message received; the caller stops."""
        unpack = HDR.unpack_from
        while True:
            data = self.sock.recv(1024 * 1024)
            offset = 0
            size = len(data)
            while offset + HDR.size <= size:
                length, mtype, flags, mseq, _pid = unpack(data, offset)
                if length < HDR.size:
                    break
                yield data, offset, length, mtype, flags, mseq
                offset += (length + 3) & ~3

    def request(self, message, parse=whole_message):
        """Send one message and read its answers until its ack or the end of its dump.

        Returns (answers, interrupted): each answer is parse(data, payload_start, end); interrupted is
        True when the kernel flagged a dump as changed while it ran.  A refusal raises NetlinkFailure
        with the errno and the kernel's text.
        """
        seq = HDR.unpack_from(message)[3]
        self.sock.send(message)
        answers = []
        interrupted = False
        for data, offset, length, mtype, flags, mseq in self.replies():
            if mseq != seq:
                continue
            interrupted = interrupted or bool(flags & NLM_F_DUMP_INTR)
            if mtype in (NLMSG_DONE, NLMSG_ERROR):
                # An error's errno, or a dump that failed part-way: the kernel puts its errno in NLMSG_DONE.
                code = error_code(data, offset) if length >= HDR.size + 4 else 0
                if code:
                    text = error_text(data, offset, offset + length, flags) if mtype == NLMSG_ERROR else \
                        done_text(data, offset, offset + length, flags)
                    raise NetlinkFailure(code, os.strerror(code) + (' (%s)' % text if text else ''))
                return answers, interrupted
            answers.append(parse(data, offset + HDR.size, offset + length))
        return answers, interrupted  # not reached: replies() ends only with the socket

    def dump(self, build, parse=whole_message, attempts=3):
        """The answers of a dump request (build() makes it, with a new sequence number each time);
        a dump the kernel flags as interrupted by a concurrent change is run again."""
        for _attempt in range(attempts):
            answers, interrupted = self.request(build(), parse)
            if not interrupted:
                return answers
        raise NetlinkFailure(errno.EINTR, 'the dump kept being interrupted by concurrent changes')
