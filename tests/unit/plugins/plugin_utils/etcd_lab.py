# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real etcd servers for the tests: Debian's etcd-server 3.4, on 127.0.0.1, free ports, a tmp data dir.

``make deps`` unpacks the package into .build/etcd (no system service is started);
OVERLAY_MESH_ETCD names another binary. Members are stopped by their own PID.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from ansible_collections.overlay.mesh.plugins.module_utils import _etcd

REPO = Path(__file__).resolve().parents[4]


def etcd_binary():
    for candidate in (os.environ.get('OVERLAY_MESH_ETCD'), str(REPO / '.build/etcd/usr/bin/etcd'), shutil.which('etcd')):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail('etcd not found: `make deps` unpacks Debian\'s etcd-server into .build/etcd (or set OVERLAY_MESH_ETCD)')
    return None


def free_ports(count):
    """``count`` distinct free TCP ports on 127.0.0.1 (held open together so they differ)."""
    socks = []
    try:
        for dummy in range(count):
            sock = socket.socket()
            sock.bind(('127.0.0.1', 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def make_certs(directory):
    """A CA, one certificate for the members (server and peer, 127.0.0.1) and one client certificate, with openssl."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)

    def run(*args):
        subprocess.run(['openssl', *args], cwd=directory, check=True, capture_output=True)

    ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
    run('req', '-x509', *ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=overlay-mesh test CA', '-days', '2')
    for name, usage in (('member', 'serverAuth,clientAuth'), ('client', 'clientAuth')):
        (directory / (name + '.ext')).write_text(
            'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=%s\nkeyUsage=digitalSignature,keyEncipherment\n'
            'authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n' % usage)
        run('req', *ec, '-keyout', name + '.key', '-out', name + '.csr', '-subj', '/CN=' + name)
        run('x509', '-req', '-in', name + '.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2',
            '-out', name + '.crt', '-extfile', name + '.ext')
    return {'ca_file': str(directory / 'ca.crt'), 'cert_file': str(directory / 'client.crt'),
            'key_file': str(directory / 'client.key')}


class Cluster:
    """``size`` etcd members on 127.0.0.1; ``tls`` makes clients and peers use certificates (client certs required)."""

    def __init__(self, root, size=1, tls=False):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.size = size
        self.tls = tls
        self.binary = etcd_binary()
        ports = free_ports(2 * size)
        self.client_ports, self.peer_ports = ports[:size], ports[size:]
        scheme = 'https' if tls else 'http'
        self.endpoints = ['%s://127.0.0.1:%d' % (scheme, p) for p in self.client_ports]
        self.peers = ['%s://127.0.0.1:%d' % (scheme, p) for p in self.peer_ports]
        self.certs = make_certs(self.root / 'pki') if tls else {}
        self.procs = [None] * size

    def client(self, **kwargs):
        options = dict(self.certs)
        options.update(kwargs)
        return _etcd.EtcdClient(self.endpoints, **options)

    def _command(self, i):
        name = 'm%d' % i
        cluster = ','.join('m%d=%s' % (j, self.peers[j]) for j in range(self.size))
        cmd = [self.binary, '--name', name, '--data-dir', str(self.root / name),
               '--listen-client-urls', self.endpoints[i], '--advertise-client-urls', self.endpoints[i],
               '--listen-peer-urls', self.peers[i], '--initial-advertise-peer-urls', self.peers[i],
               '--initial-cluster', cluster, '--initial-cluster-state', 'new', '--initial-cluster-token', 'overlay-mesh-test',
               '--heartbeat-interval', '50', '--election-timeout', '500', '--log-level', 'error', '--logger', 'zap']
        if self.tls:
            pki = self.root / 'pki'
            member = ['%s' % (pki / 'member.crt'), '%s' % (pki / 'member.key'), '%s' % (pki / 'ca.crt')]
            cmd += ['--cert-file', member[0], '--key-file', member[1], '--trusted-ca-file', member[2], '--client-cert-auth',
                    '--peer-cert-file', member[0], '--peer-key-file', member[1], '--peer-trusted-ca-file', member[2],
                    '--peer-client-cert-auth']
        return cmd

    def start(self, *members):
        for i in members or range(self.size):
            log = open(self.root / ('m%d.log' % i), 'ab')  # pylint: disable=consider-using-with
            self.procs[i] = subprocess.Popen(self._command(i), stdout=log, stderr=subprocess.STDOUT)  # pylint: disable=consider-using-with
            log.close()
        self.wait_ready()
        return self

    def wait_ready(self, timeout=20.0):
        deadline = time.monotonic() + timeout
        client = self.client(timeout=1.0)
        while True:
            try:
                client.range_prefix('/ready-check/')
                return
            except _etcd.EtcdError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self, *members):
        """Stop members by their PID (SIGTERM, then SIGKILL)."""
        for i in members or range(self.size):
            proc = self.procs[i]
            if proc is None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            self.procs[i] = None
