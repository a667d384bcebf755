# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Apply a node contract to the host it runs on, or take the node away: the one code path of
the overlay.mesh.node module and of the boot-time reapply (overlay-mesh.service).

    node = _node_spec.normalize(contract, machine_id=...)     # validate
    apply(node, Host(check_mode=...), previous=saved)          # reconcile; Host.report says what changed

Order: the engine and its launcher, the route protocol's name, the bridge, the backend (device
and peers), what an earlier backend or bridge left, kernel settings, the nftables table, the
files other software reads, the boot-time unit, and last the saved contract (node.json).
Standard library and pyroute2 only.
"""

from __future__ import annotations

import importlib
import json
import os

from ansible_collections.overlay.mesh.plugins.module_utils import _host
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_links as links
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_peers as peers_engine
from ansible_collections.overlay.mesh.plugins.module_utils import _nftables
from ansible_collections.overlay.mesh.plugins.module_utils import _node_files as files
from ansible_collections.overlay.mesh.plugins.module_utils import _node_spec
from ansible_collections.overlay.mesh.plugins.module_utils._backends import registry
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_changes import EngineError

PACKAGE = 'ansible_collections.overlay.mesh.plugins.module_utils'
# The engine as installed under /usr/lib/overlay-mesh for the boot-time reapply and the udp
# daemon: everything these two import (a unit test runs the installed copy without Ansible).
ENGINE_MODULES = (
    '_spec', '_identity', '_host', '_underlay', '_nftables', '_node_files', '_node_spec', '_node_apply', '_node_boot',
    '_netlink_changes', '_netlink_compat', '_netlink_links', '_netlink_peers', '_netlink_validate', '_netlink_wire',
    '_backends', '_backends.base', '_backends.registry', '_backends.vxlan', '_backends.udp', '_backends.udp_daemon',
)
ENGINE_ROOT = os.path.join(_host.LIB_DIR, 'ansible_collections')
ENGINE_DIFF = 'engine installed in %s (one line per file)' % _host.LIB_DIR
APPLY_LAUNCHER = '''#!/usr/bin/python3
# overlay.mesh boot-time reapply (installed by overlay.mesh.node; the engine is in %(lib)s).
import sys
sys.dont_write_bytecode = True  # /usr/lib/overlay-mesh holds exactly what overlay.mesh.node installed
sys.path.insert(0, %(lib)r)
from %(package)s._node_boot import main  # noqa: E402
sys.exit(main(sys.argv[1:]))
''' % {'lib': _host.LIB_DIR, 'package': PACKAGE}


# ---- the saved contract ---------------------------------------------------------------------------
def read_saved(host):
    """The contract saved by the last apply (node.json), a stand-in built from the first release's
    state.json, or None."""
    text = host.read(_host.NODE_FILE)
    if text is not None:
        try:
            data = json.loads(text)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None
    legacy = host.read(os.path.join(_host.STATE_DIR, 'state.json'))
    if legacy is None:
        return None
    try:
        old = json.loads(legacy)
    except ValueError:
        return None
    kind = old.get('backend')
    device = (old.get('vxlan') or {}).get('name') if kind == 'vxlan' else 'mesh-udp'
    return {'backend': {'type': kind, 'device': device}, 'bridge': {'name': (old.get('bridge') or {}).get('name')},
            'subnet_env': (old.get('subnet_env') or {}).get('dest')}


# ---- the engine on the host -----------------------------------------------------------------------
def engine_sources():
    """{path under LIB_DIR: source text} of the engine, read from this very code (a module's payload)."""
    result = {}
    for name in ENGINE_MODULES:
        full = '%s.%s' % (PACKAGE, name)
        module = importlib.import_module(full)
        source = module.__loader__.get_source(full) or ''
        relative = full.replace('.', '/')
        if os.path.basename(module.__file__ or '') == '__init__.py':
            relative += '/__init__.py'
        else:
            relative += '.py'
        result[relative] = source
    # regular packages up the tree, so no other ansible_collections on the path can shadow ours
    for depth in range(1, len(PACKAGE.split('.')) + 1):
        result.setdefault('/'.join(PACKAGE.split('.')[:depth]) + '/__init__.py', '')
    return result


def install_engine(host):
    """The engine under /usr/lib/overlay-mesh and its launcher; stale files removed."""
    sources = engine_sources()
    for relative, source in sorted(sources.items()):
        if host.ensure_file(os.path.join(_host.LIB_DIR, relative), source, summary=ENGINE_DIFF):
            host.installed_changes.add(relative[:-len('.py')].replace('/', '.'))
    for root, dirs, names in os.walk(ENGINE_ROOT):
        dirs[:] = [d for d in dirs if d != '__pycache__']
        for name in names:
            path = os.path.join(root, name)
            if os.path.relpath(path, _host.LIB_DIR) not in sources:
                host.remove(path, summary=ENGINE_DIFF)
    host.ensure_file(files.APPLY_COMMAND, APPLY_LAUNCHER, mode=0o755)


# ---- apply ---------------------------------------------------------------------------------------
def sysctls(node):
    """(key, value) in slash notation (device names may contain dots)."""
    settings = []
    if node['kernel']['ip_forward']:
        settings.append(('net/ipv%d/%s' % ((4, 'ip_forward') if node.network.version == 4 else (6, 'conf/all/forwarding')), 1))
    for device in (node.bridge['name'], node.backend.device):
        settings.append(('net/ipv4/conf/%s/rp_filter' % device, node['kernel']['rp_filter']))
    return settings


def apply(node, host, previous=None):
    """Reconcile the whole node; what changed is in host.report."""
    host.lock()
    try:
        if not host.boot:
            install_engine(host)
        host.report.changeset(peers_engine.ensure_rt_protos(_host.RT_PROTOS_FILE, node.route_protocol, host.check_mode))
        bridge = {'name': node.bridge['name'], 'mac': node.bridge['mac'], 'mtu': node.mtu, 'state': 'present',
                  'addresses': ['%s/%d' % (node.gateway, node.subnet.prefixlen)]}
        host.report.changeset(links.reconcile_bridge(bridge, check_mode=host.check_mode))
        node.backend.apply(node, host)
        _remove_leftovers(node, host, previous or {})
        _apply_kernel(node, host)
        _nftables.ensure(host, _nftables.render(node, node.backend.ports()))
        _apply_files(node, host)
        if not host.boot:
            # started (without waiting: it waits for this run's lock) so that it is active and
            # reapplies the table when nftables.service restarts (PartOf)
            host.ensure_unit(files.BOOT_UNIT, files.BOOT_UNIT_TEXT, active=True)
            host.ensure_file(_host.NODE_FILE, json.dumps(node.data, indent=2, sort_keys=True) + '\n')
            for path in _host.LEGACY_FILES:
                host.remove(path, show=False)
    finally:
        host.unlock()


def _remove_leftovers(node, host, previous):
    """What an earlier contract made and this one does not: another backend, a renamed bridge."""
    old_backend = _node_spec.saved_backend(previous)
    if old_backend is not None and not old_backend.same_instance(node.backend.params):
        old_backend.teardown(host)
    old_bridge = (previous.get('bridge') or {}).get('name')
    if old_bridge and old_bridge != node.bridge['name']:
        _remove_bridge(host, old_bridge)
    for key in ('subnet_env',):
        if previous.get(key) and previous[key] != node[key]:
            host.remove(previous[key])
    if previous.get('cni') and files.cni_conflist_path(previous) != files.cni_conflist_path(node.data):
        host.remove(files.cni_conflist_path(previous))


def _apply_kernel(node, host):
    settings = sysctls(node)
    host.ensure_file(_host.SYSCTL_FILE, files.sysctl_conf(settings))
    for key, value in settings:
        host.ensure_sysctl(key, value)


def _apply_files(node, host):
    host.ensure_file(node['subnet_env'], files.subnet_env(node.network, node.subnet, node.mtu, node['firewall']['masquerade']))
    host.ensure_file(files.cni_conflist_path(node.data), files.cni_conflist(node))
    host.ensure_file(_host.NETWORKD_FILE, files.networkd_unmanaged([node.bridge['name'], node.backend.device]))
    if node['docker']['enabled']:
        _apply_docker(node, host)


def _apply_docker(node, host):
    path = '/etc/docker/daemon.json'
    text = host.read(path)
    try:
        settings = json.loads(text) if text and text.strip() else {}
    except ValueError as exc:
        raise EngineError('%s is not valid JSON (%s); not touching it' % (path, exc))
    if not isinstance(settings, dict):
        raise EngineError('%s is not a JSON object; not touching it' % path)
    wanted = dict(settings, **files.docker_settings(node))
    if wanted == settings:
        return
    host.ensure_file(path, json.dumps(wanted, indent=2) + '\n')
    if node['docker']['restart'] and not host.boot:
        host.report.object('updated', {'type': 'service', 'name': 'docker.service', 'detail': 'restarted if running'})
        if not host.check_mode:
            host.systemctl('try-restart', 'docker.service')


# ---- remove -------------------------------------------------------------------------------------
def _remove_bridge(host, name):
    ipr = links.open_iproute()
    try:
        link = links.read_link(ipr, name)
        if link is None or link['kind'] != 'bridge':
            return
        host.report.changeset(links.BridgeReconciler(ipr, name, state='absent').reconcile('absent', host.check_mode))
    finally:
        ipr.close()


def remove(host, wanted=None, previous=None):
    """Take the node away: what the saved contract (and ``wanted``, the names given) say is ours."""
    host.lock()
    try:
        records = [record for record in (previous, wanted) if record]
        done = set()
        for record in records:
            backend = _node_spec.saved_backend(record)
            if backend is not None and (backend.name, backend.device) not in done:
                done.add((backend.name, backend.device))
                backend.teardown(host)
        for name in sorted(set((record.get('bridge') or {}).get('name') for record in records) - set([None])):
            _remove_bridge(host, name)
        _nftables.remove(host)
        host.remove_unit(files.BOOT_UNIT)
        paths = [_host.SYSCTL_FILE, _host.NETWORKD_FILE, _host.RT_PROTOS_FILE]
        for record in records:
            if record.get('subnet_env'):
                paths.append(record['subnet_env'])
            if record.get('cni'):
                paths.append(files.cni_conflist_path(record))
        for path in sorted(set(paths)):
            host.remove(path)
        for path in (_host.LIB_DIR, _host.STATE_DIR, _host.RUN_DIR):
            host.remove(path)
    finally:
        host.unlock()


def backend_names():
    return registry.names()
