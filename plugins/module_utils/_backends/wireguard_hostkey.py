# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The WireGuard backend's key on the host: /etc/overlay-mesh/wireguard/<device>.key (0600, in a 0700
directory), made there and never sent anywhere; a rotated key is staged beside it (<device>.key.new)
until the node apply puts it in use. Reports name the file only, never the key.
"""

from __future__ import annotations

import os

from ansible_collections.overlay.mesh.plugins.module_utils import _host
from ansible_collections.overlay.mesh.plugins.module_utils._backends import wireguard_keys as keys
from ansible_collections.overlay.mesh.plugins.module_utils._backends.wireguard_model import WireGuardError
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_changes import EngineError

KEY_DIR = os.path.join(_host.STATE_DIR, 'wireguard')


def key_path(device, staged=False):
    """The host's key file; staged: a rotated key not applied yet (the device still has the other)."""
    return os.path.join(KEY_DIR, '%s.key%s' % (device, '.new' if staged else ''))


def read_private_key(device, staged=False):
    """The host's private key for device (bytes), None without one; a damaged key file is an error."""
    path = key_path(device, staged)
    text = _host.Host.read(path)
    if text is None:
        return None
    try:
        return keys.clamp(keys.key_from_text(text.strip(), 'private key in %s' % path))
    except WireGuardError as exc:
        raise EngineError('%s: move it away to get a new key (the peers learn it in the same run)' % exc)


def public_text(private):
    """The public key of a private key, as text (what the host publishes)."""
    return keys.key_to_text(keys.public_key(private))


def host_public_key(device):
    """The public key the host publishes: of its staged (rotated) key when it has one, else of its key."""
    private = read_private_key(device, staged=True)
    if private is None:
        private = read_private_key(device)
    return public_text(private) if private is not None else None


def ensure_key(host, device, rotate=False):
    """The public key the host publishes (text): its key made when it has none; with rotate, a new key
    staged beside the one in use (the node apply puts it in use, so a run stopped in between leaves the
    device, the saved contract and the boot path consistent). In check mode a key to make is reported
    and a throwaway key's public key returned, so that the peers' plans show the entry they would get.
    The report names the file only: a private key never goes into a report, diff or result."""
    current = read_private_key(device)
    if current is not None and not rotate:
        return host_public_key(device)
    path = key_path(device, staged=current is not None)
    host.report.object('updated' if current is not None else 'added',
                       {'type': 'file', 'name': path, 'detail': 'private key %s, mode 0600' %
                        ('rotated: in use from this run\'s apply' if current is not None else 'generated')})
    private = keys.generate_private_key()
    if not host.check_mode:
        _write_key(path, private)
    return public_text(private)


def _write_key(path, private):
    if not os.path.isdir(KEY_DIR):
        os.makedirs(KEY_DIR, 0o700)
    os.chmod(KEY_DIR, 0o700)
    _host.write_atomic(path, keys.key_to_text(private) + '\n', mode=0o600)


def key_for(host, device, wanted_public):
    """The private key to configure: the host's key (or its staged one) whose public key is wanted_public
    (the contract's), put in use when staged; made when the host has none. None in check mode for a key
    still to be made. Raises when neither matches (the contract is older than the key)."""
    staged, current = read_private_key(device, staged=True), read_private_key(device)
    for private, is_staged in ((staged, True), (current, False)):
        if private is None or (wanted_public and public_text(private) != wanted_public):
            continue
        if is_staged:
            host.report.object('updated', {'type': 'file', 'name': key_path(device), 'detail': 'rotated key put in use'})
            if not host.check_mode:
                os.rename(key_path(device, staged=True), key_path(device))
        return private
    if host.boot:
        # a new key here would not match what the peers have: the next converge makes one
        raise EngineError('no WireGuard key in %s matches the saved contract\'s public key %s; run the mesh_node role'
                          % (KEY_DIR, wanted_public))
    if current is not None or staged is not None:
        if host.check_mode:
            return None  # a key made by node_keys in this check-mode run
        raise EngineError('backend.public_key %s is not the public key of this host\'s key: the key changed after the'
                          ' contract was built; run the role again' % wanted_public)
    ensure_key(host, device)  # a contract applied without node_keys (the module used on its own)
    return read_private_key(device)


def remove_key(host, device):
    for staged in (True, False):
        host.remove(key_path(device, staged))  # its name only, as every removed file
    if os.path.isdir(KEY_DIR) and not os.listdir(KEY_DIR) and not host.check_mode:
        os.rmdir(KEY_DIR)
