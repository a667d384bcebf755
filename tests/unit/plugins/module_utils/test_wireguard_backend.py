# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The wireguard backend's own logic: the host's key, the plan of a device's configuration and its
report (never a private key). The device itself is exercised on lab hosts (molecule wireguard)."""

from __future__ import annotations

import os
import stat

from ansible_collections.overlay.mesh.plugins.module_utils import _host
from ansible_collections.overlay.mesh.plugins.module_utils._backends import wireguard
from ansible_collections.overlay.mesh.plugins.module_utils._backends import wireguard_hostkey as hostkey
from ansible_collections.overlay.mesh.plugins.module_utils._backends import wireguard_keys as keys

PARAMS = {'type': 'wireguard', 'port': 51820, 'device': 'mesh-wg', 'keepalive': 0, 'fwmark': 0, 'implementation': 'auto'}


class FakeIPRoute(object):
    def close(self):
        pass


def keypair():
    private = keys.generate_private_key()
    return private, keys.public_key(private)


def report_text(host):
    return '\n'.join(host.report.changes) + repr(host.report.diff())


def test_the_key_is_made_once_0600_in_a_0700_directory_and_a_rotation_is_staged_until_applied(tmp_path, monkeypatch):
    monkeypatch.setattr(hostkey, 'KEY_DIR', str(tmp_path / 'wireguard'))
    check = _host.Host(check_mode=True)
    throwaway = hostkey.ensure_key(check, 'mesh-wg')
    assert len(keys.key_from_text(throwaway)) == 32  # what the peers' check-mode plans show
    assert check.report.changes == ['added file %s/wireguard/mesh-wg.key (private key generated, mode 0600)' % tmp_path]
    assert not (tmp_path / 'wireguard').exists()
    host = _host.Host()
    public = hostkey.ensure_key(host, 'mesh-wg')
    path = tmp_path / 'wireguard' / 'mesh-wg.key'
    private = keys.key_from_text(path.read_text().strip())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert public == keys.key_to_text(keys.public_key(private)) != throwaway
    assert keys.key_to_text(private) not in report_text(host)
    again = _host.Host()
    assert hostkey.ensure_key(again, 'mesh-wg') == public and not again.report.changed
    assert wireguard.Backend.host_identity(dict(PARAMS)) == {'public_key': public}
    # a rotation is staged beside the key in use and published at once
    rotated = _host.Host()
    new_public = hostkey.ensure_key(rotated, 'mesh-wg', rotate=True)
    staged = tmp_path / 'wireguard' / 'mesh-wg.key.new'
    assert staged.exists() and new_public != public and keys.key_from_text(path.read_text().strip()) == private
    assert keys.key_to_text(keys.key_from_text(staged.read_text().strip())) not in report_text(rotated)
    assert wireguard.Backend.host_identity(dict(PARAMS)) == {'public_key': new_public}
    # the boot path, with the contract saved before the rotation, keeps the key in use
    boot = _host.Host(boot=True)
    assert hostkey.key_for(boot, 'mesh-wg', public) == private and staged.exists()
    # the node apply with the new contract puts the staged key in use
    apply = _host.Host()
    new_private = hostkey.key_for(apply, 'mesh-wg', new_public)
    assert keys.key_to_text(keys.public_key(new_private)) == new_public and not staged.exists()
    assert apply.report.changes == ['updated file %s (rotated key put in use)' % path]
    # a contract matching no key of the host: refused, at boot too
    for other in (_host.Host(), _host.Host(boot=True)):
        try:
            hostkey.key_for(other, 'mesh-wg', public)
        except wireguard.EngineError as exc:
            assert keys.key_to_text(new_private) not in str(exc)
        else:
            raise AssertionError('an outdated contract was applied')
    hostkey.remove_key(_host.Host(), 'mesh-wg')
    assert not (tmp_path / 'wireguard').exists()
    assert wireguard.Backend.host_identity(dict(PARAMS)) == {}


def test_a_damaged_key_file_is_an_error_that_does_not_show_it(tmp_path, monkeypatch):
    monkeypatch.setattr(hostkey, 'KEY_DIR', str(tmp_path))
    (tmp_path / 'mesh-wg.key').write_text('c2VjcmV0LWJ1dC1zaG9ydA==\n')
    try:
        hostkey.read_private_key('mesh-wg')
    except wireguard.EngineError as exc:
        assert 'c2VjcmV0' not in str(exc) and 'move it away' in str(exc)
    else:
        raise AssertionError('a damaged key was read')


def test_the_plan_adds_updates_and_removes_peers_and_never_reports_the_private_key():
    private, public = keypair()
    keep, move, gone, new = (keypair()[1] for _count in range(4))
    current = {'private_key': private, 'listen_port': 51820, 'fwmark': 0, 'peers': {
        keep: {'endpoint': ('198.18.0.12', 51820), 'allowed_ips': ['10.244.2.0/24'], 'keepalive': 0},
        move: {'endpoint': ('198.18.0.13', 51820), 'allowed_ips': ['10.244.3.0/24'], 'keepalive': 0},
        gone: {'endpoint': ('198.18.0.14', 51820), 'allowed_ips': ['10.244.4.0/24'], 'keepalive': 0}}}
    wanted = {keep: {'endpoint': ('198.18.0.12', 51820), 'allowed_ips': ['10.244.2.0/24'], 'keepalive': 0},
              move: {'endpoint': ('198.18.1.13', 51820), 'allowed_ips': ['10.244.3.0/24'], 'keepalive': 0},
              new: {'endpoint': ('198.18.0.15', 51820), 'allowed_ips': ['10.244.5.0/24'], 'keepalive': 0}}
    host = _host.Host()
    change = wireguard.plan_config('mesh-wg', current, private, PARAMS, wanted, host.report)
    assert change['private_key'] is None and change['listen_port'] is None and change['fwmark'] is None
    assert [(peer['public_key'], peer['remove']) for peer in change['peers']] == sorted(
        [(move, False), (new, False)]) + [(gone, True)]
    assert all(peer['replace_allowed_ips'] for peer in change['peers'] if not peer['remove'])
    assert sorted(line.split(' ')[0] for line in host.report.changes) == ['added', 'removed', 'updated']
    assert 'updated wireguard-peer %s endpoint 198.18.1.13:51820 allowed-ips 10.244.3.0/24 keepalive 0 dev mesh-wg' \
        % keys.key_to_text(move) in host.report.changes
    assert keys.key_to_text(private) not in report_text(host) and private.hex() not in report_text(host)
    # nothing to do: no change, nothing reported as changed
    current['peers'] = dict((key, peer) for key, peer in wanted.items())
    same = _host.Host()
    assert wireguard.plan_config('mesh-wg', current, private, PARAMS, wanted, same.report) is None
    assert not same.report.changed


def test_a_new_device_gets_the_key_port_and_peers_and_a_changed_key_is_set():
    private, public = keypair()
    peer = keypair()[1]
    wanted = {peer: {'endpoint': ('198.18.0.12', 51820), 'allowed_ips': ['10.244.2.0/24'], 'keepalive': 25}}
    host = _host.Host()
    change = wireguard.plan_config('mesh-wg', {'listen_port': 41544, 'peers': {}}, private, PARAMS, wanted, host.report)
    assert change['private_key'] == private and change['listen_port'] == 51820
    assert host.report.changes[0] == 'added wireguard mesh-wg listen-port 51820 fwmark 0 public-key %s' % keys.key_to_text(public)
    other = keypair()[0]
    rotated = _host.Host()
    change = wireguard.plan_config('mesh-wg', {'private_key': other, 'listen_port': 51820, 'peers': {}}, private, PARAMS, {},
                                   rotated.report)
    assert change['private_key'] == private
    assert rotated.report.changes == ['updated wireguard mesh-wg listen-port 51820 fwmark 0 public-key %s' % keys.key_to_text(public)]
    assert keys.key_to_text(other) not in report_text(rotated)


def test_the_device_is_chosen_by_what_is_there_then_the_kernel_then_wireguard_go(monkeypatch, tmp_path):
    monkeypatch.setattr(wireguard._host, 'UNIT_DIR', str(tmp_path))
    monkeypatch.setattr(wireguard, 'kernel_has_wireguard', lambda: False)
    monkeypatch.setattr(wireguard, 'wireguard_go', lambda: None)
    monkeypatch.setattr(wireguard.links, 'read_link', lambda ipr, name: None)
    monkeypatch.setattr(wireguard, 'open_iproute', FakeIPRoute)
    backend = wireguard.Backend(dict(PARAMS))
    try:
        backend.implementation()
    except wireguard.EngineError as exc:
        assert 'apt install wireguard-go' in str(exc)
    else:
        raise AssertionError('no implementation and no error')
    monkeypatch.setattr(wireguard, 'wireguard_go', lambda: '/usr/bin/wireguard-go')
    assert backend.implementation() == 'userspace'
    monkeypatch.setattr(wireguard, 'kernel_has_wireguard', lambda: True)
    assert backend.implementation() == 'kernel'
    assert wireguard.Backend(dict(PARAMS, implementation='userspace')).implementation() == 'userspace'
    # with auto, a device already there decides; an explicit choice is kept (the apply switches)
    monkeypatch.setattr(wireguard.links, 'read_link', lambda ipr, name: {'kind': 'tun'})
    assert backend.implementation() == 'userspace'
    monkeypatch.setattr(wireguard.links, 'read_link', lambda ipr, name: {'kind': 'wireguard'})
    assert wireguard.Backend(dict(PARAMS, implementation='userspace')).implementation() == 'userspace'
    monkeypatch.setattr(wireguard, 'kernel_has_wireguard', lambda: False)
    assert backend.implementation() == 'kernel'
