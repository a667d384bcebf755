# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The node agent's etcd connection (docs/agent.md, "Credentials"): a client made from the credential files the role
copied to the host, how to tell that they were rotated, and how to end a watch's stream."""

from __future__ import annotations

import os
import socket

from ansible_collections.overlay.mesh.plugins.module_utils import _etcd

CREDENTIALS = ('password_file', 'ca_file', 'cert_file', 'key_file')


def client(settings):
    """An etcd client from the contract's ``agent`` settings (the password read from its file)."""
    password = None
    if settings.get('password_file'):
        with open(settings['password_file']) as handle:
            password = handle.read().strip()
    return _etcd.EtcdClient(settings['endpoints'], ca_file=settings.get('ca_file'), cert_file=settings.get('cert_file'),
                            key_file=settings.get('key_file'), user=settings.get('user'), password=password,
                            timeout=settings.get('timeout') or 5)


def credential_files(settings):
    """The credential files as they are on disk now, [(path, mtime, size)]: a rotation changes it."""
    found = []
    for key in CREDENTIALS:
        path = settings.get(key)
        try:
            stat = os.stat(path) if path else None
        except OSError:
            stat = None
        found.append((path, stat.st_mtime_ns, stat.st_size) if stat else (path, None, None))
    return found


def shutdown(connection):
    """End a watch's stream: its thread's read returns and the thread ends."""
    if connection is not None and connection.sock is not None:
        try:
            connection.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
