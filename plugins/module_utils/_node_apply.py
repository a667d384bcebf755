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

import hashlib
import importlib
import json
import os
import sys

from ansible_collections.overlay.mesh.plugins.module_utils import _docker
from ansible_collections.overlay.mesh.plugins.module_utils import _host
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_links as links
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_peers as peers_engine
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_routes as routes
from ansible_collections.overlay.mesh.plugins.module_utils import _nftables
from ansible_collections.overlay.mesh.plugins.module_utils import _node_files as files
from ansible_collections.overlay.mesh.plugins.module_utils import _node_spec
from ansible_collections.overlay.mesh.plugins.module_utils._backends import registry
from ansible_collections.overlay.mesh.plugins.module_utils._errors import OverlayMeshError
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_changes import EngineError
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_compat import NetlinkError

PACKAGE = 'ansible_collections.overlay.mesh.plugins.module_utils'
# The engine as installed under /usr/lib/overlay-mesh for the boot-time reapply, the node agent and the udp
# daemon: everything these import (a unit test runs the installed copy without Ansible): the modules
# below, and every registered backend's module with the ones it names in its ENGINE_MODULES.
CORE_MODULES = (
    '_errors', '_spec', '_identity', '_host', '_docker', '_underlay', '_nftables', '_node_files', '_node_spec', '_node_apply',
    '_node_boot', '_netlink_changes', '_netlink_compat', '_netlink_links', '_netlink_objects', '_netlink_peer_state',
    '_netlink_peers', '_netlink_validate', '_netlink_core', '_netlink_wire', '_netlink_routes', '_backends', '_backends.base',
    '_backends.registry', '_etcd', '_lease_schema', '_flannel_interop', '_agent', '_agent_address', '_agent_etcd',
)


def engine_modules():
    """CORE_MODULES, then each registered backend's module and the extra modules it declares."""
    names = list(CORE_MODULES)
    for backend in registry.BACKENDS.values():
        module = sys.modules[backend.__module__]
        for name in (module.__name__[len(PACKAGE) + 1:],) + tuple(getattr(module, 'ENGINE_MODULES', ())):
            if name not in names:
                names.append(name)
    return tuple(names)


ENGINE_MODULES = engine_modules()
ENGINE_ROOT = os.path.join(_host.LIB_DIR, 'ansible_collections')
STEP_ERRORS = (OverlayMeshError, NetlinkError, OSError)
# The parts of a node, in the order apply() reconciles them.
STEPS = ('engine', 'route protocol', 'leftovers', 'bridge', 'backend', 'kernel', 'nftables', 'files', 'units', 'saved contract',
         'agent')
LAUNCHER = '''#!/usr/bin/python3
# overlay.mesh %(what)s (installed by overlay.mesh.node; the engine is in %(lib)s).
import sys
sys.dont_write_bytecode = True  # /usr/lib/overlay-mesh holds exactly what overlay.mesh.node installed
sys.path.insert(0, %(lib)r)
from %(package)s.%(module)s import main  # noqa: E402
sys.exit(main(sys.argv[1:]))
'''
APPLY_LAUNCHER = LAUNCHER % {'what': 'boot-time reapply', 'lib': _host.LIB_DIR, 'package': PACKAGE, 'module': '_node_boot'}
AGENT_LAUNCHER = LAUNCHER % {'what': 'node agent', 'lib': _host.LIB_DIR, 'package': PACKAGE, 'module': '_agent'}


# ---- the saved contract ---------------------------------------------------------------------------
def read_saved(host):
    """The names in the contract the last apply saved (node.json) - or, on a host converged by the
    first release, in its state.json - as _node_spec.removal_record() gives them; None without one.
    A damaged file is reported (host.report.warnings) and ignored."""
    for path, convert in ((_host.NODE_FILE, lambda data: data), (_host.LEGACY_STATE_FILE, _from_release_0_1)):
        text = host.read(path)
        if text is None:
            continue
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError('not a JSON object')
            return _node_spec.removal_record(convert(data))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            host.report.warnings.append('%s is damaged (%s): ignored, so what it records is not cleaned up' % (path, exc))
            return None
    return None


def _from_release_0_1(old):
    kind = old.get('backend')
    backend = registry.get(kind)
    device = backend.release_0_1_device(old) if backend is not None else None
    record = {'backend': {'type': kind, 'device': device}, 'bridge': {'name': (old.get('bridge') or {}).get('name')}}
    if (old.get('subnet_env') or {}).get('dest'):
        record['subnet_env'] = old['subnet_env']['dest']
    return record


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
    """The engine under /usr/lib/overlay-mesh and its launcher, stale files removed. The diff shows it as
    one object, its file count and a digest of them all; changes names every file."""
    wanted = dict((os.path.join(_host.LIB_DIR, relative), (0o644, source)) for relative, source in engine_sources().items())
    wanted[files.APPLY_COMMAND] = (0o755, APPLY_LAUNCHER)
    wanted[files.AGENT_COMMAND] = (0o755, AGENT_LAUNCHER)
    installed = [path for path in (files.APPLY_COMMAND, files.AGENT_COMMAND) if os.path.lexists(path)]
    for root, dirs, names in os.walk(ENGINE_ROOT):
        dirs[:] = [d for d in dirs if d != '__pycache__']
        installed.extend(os.path.join(root, name) for name in names)
    before = engine_object(dict((path, (os.lstat(path).st_mode & 0o7777, host.read(path, binary=True) or b''))
                                for path in installed))
    changed = False
    for path, (mode, source) in sorted(wanted.items()):
        if host.ensure_file(path, source, mode=mode, listed=False):
            changed = True
            if path.endswith('.py'):
                host.installed_changes.add(os.path.relpath(path, _host.LIB_DIR)[:-len('.py')].replace('/', '.'))
    for path in sorted(set(installed) - set(wanted)):
        changed = host.remove(path, listed=False) or changed
    after = engine_object(wanted)
    if not changed:
        host.report.unchanged(after)
        return
    if installed:
        host.report.before.add(_host.describe(before))
    host.report.after.add(_host.describe(after))


def engine_object(contents):
    """The engine as one report object, from {path: (mode, content)}: its file count and a digest of them all."""
    digest = hashlib.sha256()
    for path, (mode, content) in sorted(contents.items()):
        data = content.encode('utf-8') if not isinstance(content, bytes) else content
        digest.update(('%s %04o %s\n' % (path, mode, hashlib.sha256(data).hexdigest())).encode('utf-8'))
    return {'type': 'engine', 'name': _host.LIB_DIR, 'files': len(contents), 'digest': 'sha256 %s' % digest.hexdigest()[:16]}


# ---- apply ---------------------------------------------------------------------------------------
def sysctls(node):
    """(key, value) in slash notation (device names may contain dots)."""
    settings = []
    if node['kernel']['ip_forward']:
        settings.append(('net/ipv4/ip_forward', 1))
        if node.ipv6_subnet:
            settings.append(('net/ipv6/conf/all/forwarding', 1))
    for device in (node.bridge['name'], node.backend.device):
        if device:
            settings.append(('net/ipv4/conf/%s/rp_filter' % device, node['kernel']['rp_filter']))
            if node.ipv6_subnet:
                # our devices' IPv6 addresses are the node's: never one from a router advertisement
                settings.append(('net/ipv6/conf/%s/accept_ra' % device, 0))
    return settings


def apply(node, host, previous=None, only=None):
    """Reconcile the whole node (or only the parts named in ``only``); what changed is in host.report.
    The caller holds host.locked() around reading ``previous`` (read_saved) and this.

    The module stops at the first failure. At boot every part is tried, since most do not
    depend on each other (the firewall and subnet.env do not need the backend's device), and
    the failures are reported together at the end."""
    bridge = {'name': node.bridge['name'], 'mac': node.bridge['mac'], 'mtu': node.mtu, 'state': 'present',
              'addresses': ['%s/%d' % (node.gateway, node.bridge_subnet.prefixlen)]
              + (['%s/%d' % (node.gateway6, node.ipv6_subnet.prefixlen)] if node.ipv6_subnet else [])}
    parts = {
        'engine': lambda: None if host.boot else install_engine(host),
        'route protocol': lambda: host.report.changeset(
            peers_engine.ensure_rt_protos(_host.RT_PROTOS_FILE, node.route_protocol, host.check_mode)),
        # before the backend, so that a new backend device never meets the old one's routes, VNI or unit
        'leftovers': lambda: _remove_leftovers(node, host, previous or {}),
        'bridge': lambda: host.report.changeset(links.reconcile_bridge(bridge, check_mode=host.check_mode)),
        'backend': lambda: node.backend.apply(node, host),
        'kernel': lambda: _apply_kernel(node, host),
        'nftables': lambda: _apply_firewall(node, host),
        'files': lambda: _apply_files(node, host),
        'units': lambda: None if host.boot else _apply_units(host),
        'saved contract': lambda: None if host.boot else _save(node, host),
        'agent': lambda: None if host.boot else _apply_agent(node, host, previous or {}),
    }
    if not host.boot and (not only or 'files' in only):
        files.check_placed(node.data, host)  # before anything changes (at boot, the files part alone refuses)
    failures = []
    for name in STEPS:
        if only and name not in only:
            continue
        try:
            parts[name]()
        except STEP_ERRORS as exc:  # pylint: disable=catching-non-exception
            if not host.boot:
                raise
            failures.append('%s: %s' % (name, exc))
    if failures:
        raise EngineError('%d part(s) of the node failed, every other part was applied: %s'
                          % (len(failures), '; '.join(failures)))


def _apply_units(host):
    """The boot-time unit, and the hook that puts the table back whenever nftables.service flushes it."""
    host.ensure_unit(files.BOOT_UNIT, files.BOOT_UNIT_TEXT)
    host.ensure_dropin(files.NFTABLES_DROPIN[0], files.NFTABLES_DROPIN[1], files.NFTABLES_DROPIN_TEXT)


def _apply_agent(node, host, previous):
    """The node agent's unit, running (restarted when its settings or the engine changed); none without the agent.
    Last, after node.json is saved: the agent reads it when it starts."""
    agent = node.data.get('agent')
    if not agent:
        host.remove_unit(files.AGENT_UNIT, stop=True)
        host.remove(files.AGENT_MARK_FILE)
        return
    changed = host.ensure_unit(files.AGENT_UNIT, files.AGENT_UNIT_TEXT)
    active = host.systemctl('is-active', '--quiet', files.AGENT_UNIT, check=False).returncode == 0
    if active and not (changed or host.installed_changes or previous.get('agent') != agent):
        return
    host.report.object('updated', {'type': 'service', 'name': files.AGENT_UNIT, 'detail': 'restarted' if active else 'started'})
    if not host.check_mode:
        host.systemctl('restart', files.AGENT_UNIT)


def _save(node, host):
    host.ensure_file(_host.NODE_FILE, json.dumps(node.data, indent=2, sort_keys=True) + '\n', view=_host.json_lines)
    for path in _host.LEGACY_FILES:
        host.remove(path)


def _remove_leftovers(node, host, previous):
    """What an earlier contract made and this one does not: another backend, a renamed bridge."""
    old_backend = _node_spec.saved_backend(previous)
    if old_backend is not None and not old_backend.same_instance(node.backend.params):
        old_backend.teardown(host, previous)
    old_bridge = (previous.get('bridge') or {}).get('name')
    if old_bridge and old_bridge != node.bridge['name']:
        _remove_bridge(host, old_bridge)
    # moved files: removed while they are still ours (what the contract writes now stays)
    files.remove_placed(previous, host, keep=[path for _what, path, _var, _ours, _rule in files.placed_files(node.data)])
    if previous.get('ipv6_network') and previous['ipv6_network'] != node.data.get('ipv6_network'):
        routes.purge_network(host, previous.get('route_protocol') or node.route_protocol, previous['ipv6_network'])


def _apply_firewall(node, host):
    """Our own table, and where Docker is installed our rules in its DOCKER-USER chain (nftables.service
    flushes both: its drop-in runs this part again)."""
    _nftables.ensure(host, _nftables.render(node, node.backend.firewall()))
    _docker.ensure_rules(node, host)


def _apply_kernel(node, host):
    settings = sysctls(node)
    host.ensure_file(_host.SYSCTL_FILE, files.sysctl_conf(settings))
    for key, value in settings:
        host.ensure_sysctl(key, value)


def _apply_files(node, host):
    if host.boot:  # a run checked them before any part (apply); at boot this part alone refuses
        files.check_placed(node.data, host)
    host.ensure_file(node['subnet_env'], files.subnet_env(node.network, node.subnet, node.mtu, node['firewall']['masquerade'],
                                                          node.ipv6_network, node.ipv6_subnet))
    host.ensure_file(files.cni_conflist_path(node.data), files.cni_conflist(node))
    host.ensure_file(_host.NETWORKD_FILE, files.networkd_unmanaged([device for device in (node.bridge['name'],
                                                                                          node.backend.device) if device]))
    if node['docker']['enabled']:
        _docker.ensure_settings(node, host)


# ---- remove -------------------------------------------------------------------------------------
def _remove_bridge(host, name, mac=None):
    """Delete the bridge called name; with mac, only when it has that MAC (provably ours)."""
    ipr = links.open_iproute()
    try:
        link = links.read_link(ipr, name)
        if link is None or link['kind'] != 'bridge' or (mac and link['mac'] != mac):
            return
        host.report.changeset(links.BridgeReconciler(ipr, name, state='absent').reconcile('absent', host.check_mode))
    finally:
        ipr.close()


def remove(host, wanted=None, previous=None):
    """Take the node away. What the saved contract (previous) records is ours; of the names the
    caller gives (wanted), a device only when its MAC is the one this host has for it, so another
    tool's cni0 or flannel.1 is left alone. The caller holds host.locked()."""
    host.remove_unit(files.AGENT_UNIT, stop=True)  # first: it would put peers back
    done = set()
    for record, strict in ((previous, False), (wanted, True)):
        backend = _node_spec.saved_backend(record)
        if backend is not None and (backend.name, backend.device) not in done:
            done.add((backend.name, backend.device))
            backend.teardown(host, record, strict=strict)
        bridge = (record or {}).get('bridge') or {}
        if bridge.get('name') and bridge['name'] not in done and (bridge.get('mac') or not strict):
            done.add(bridge['name'])
            _remove_bridge(host, bridge['name'], bridge.get('mac') if strict else None)
    host.remove_dropin(*files.NFTABLES_DROPIN)
    _nftables.remove(host)
    _docker.remove_rules(host)
    host.remove_unit(files.BOOT_UNIT, stop=True)
    for path in (_host.SYSCTL_FILE, _host.NETWORKD_FILE, _host.RT_PROTOS_FILE):
        host.remove(path)
    files.remove_placed(previous, host)  # subnet.env and the conflist, while they are still ours
    for path in _host.OWN_DIRS:
        host.remove(path)
