# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Ansible glue of the node and node_info modules: arguments in, contract applied, results out.

Everything that runs at boot too is in the engine (_node_spec, _node_apply, ...); this file only
turns module parameters into a contract and errors and reports into module results.
"""

from __future__ import annotations

import json
import os

# Not called here, but shipped in the module's payload: node installs it as the node agent.
from ansible_collections.overlay.mesh.plugins.module_utils import _agent  # noqa: F401 pylint: disable=unused-import
from ansible_collections.overlay.mesh.plugins.module_utils import _host
from ansible_collections.overlay.mesh.plugins.module_utils import _identity
from ansible_collections.overlay.mesh.plugins.module_utils import _node_apply
# Not called here, but shipped in the module's payload: node installs it as the boot-time reapply.
from ansible_collections.overlay.mesh.plugins.module_utils import _node_boot  # noqa: F401 pylint: disable=unused-import
from ansible_collections.overlay.mesh.plugins.module_utils import _node_files
from ansible_collections.overlay.mesh.plugins.module_utils import _node_spec
from ansible_collections.overlay.mesh.plugins.module_utils import _prerequisites
from ansible_collections.overlay.mesh.plugins.module_utils import _spec
from ansible_collections.overlay.mesh.plugins.module_utils import _underlay
from ansible_collections.overlay.mesh.plugins.module_utils._backends import registry
from ansible_collections.overlay.mesh.plugins.module_utils._errors import OverlayMeshError
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_compat import NetlinkError
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_module import require_pyroute2
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_validate import ValidationError


ERRORS = (OverlayMeshError, NetlinkError, OSError)
LEGACY_IDENTITY = os.path.join(_host.STATE_DIR, 'identity.json')
LEGACY_RECORD = os.path.join(_host.STATE_DIR, 'lease.json')


def node_argument_spec():
    spec = _spec.ansible_argument_spec(_node_spec.OPTIONS)
    for option in spec.values():
        option.pop('required', None)  # required with state=present only (required_if)
    spec['state'] = dict(type='str', choices=['present', 'absent'], default='present')
    return spec


def contract_of(params):
    """The contract keys of the module parameters that are set."""
    return dict((key, value) for key, value in params.items() if key in _node_spec.OPTIONS and value is not None)


def fail(module, exc, host=None):
    extra = {}
    if isinstance(exc, _spec.SpecError):
        extra['problems'] = ['%s: %s' % problem for problem in exc.problems]
        msg = 'node contract refused, nothing changed: %s' % exc
    else:
        msg = str(exc)
    if host is not None and host.report.changes:
        extra['changes'] = host.report.changes
        msg += ' (changes made before the failure: %d, listed in changes)' % len(host.report.changes)
    module.fail_json(msg=msg, changed=bool(extra.get('changes')), **extra)


def run_node(module):
    require_pyroute2(module)
    host = _host.Host(check_mode=module.check_mode)
    result = {}
    try:
        raw = contract_of(module.params)
        present = module.params['state'] == 'present'
        with host.locked():
            previous = _node_apply.read_saved(host)
            try:
                machine_id = _identity.read_machine_id()
            except _identity.IdentityError:
                if present:
                    raise
                machine_id = None  # nothing to derive: only what the saved contract records is removed
            # MACs not given: the ones the host has (saved, or from release 0.1), else derived
            found = identity(_node_spec.removal_record(raw), previous, machine_id, host)
            if present:
                check_host(found['backend'])
                raw = with_macs(raw, found)
                node = _node_spec.normalize(raw, machine_id=machine_id, underlay_mtu=_underlay.link_mtu)
                host.report.warnings.extend(node.warnings)
                failure = None
                try:
                    _node_apply.apply(node, host, previous)
                except ERRORS as exc:  # pylint: disable=catching-non-exception
                    failure = exc
                    raise
                finally:
                    host.record_apply('ansible', failure)
                result.update(node=node.data, publish=node.backend.publish())
            else:
                _node_apply.remove(host, {'bridge': found['bridge'], 'backend': found['backend']}, previous)
    except ERRORS as exc:  # pylint: disable=catching-non-exception
        fail(module, exc, host)
    finally:
        for warning in host.report.warnings:
            module.warn(warning)
    result['changed'] = host.report.changed
    result['changes'] = host.report.changes
    if module._diff:
        result['diff'] = host.report.diff()
    module.exit_json(**result)


def check_host(backend):
    kind = registry.get(backend.get('type'))
    if kind is not None:
        kind.check_host(backend)


def with_macs(raw, found):
    """The contract with the bridge's and the backend's MAC filled in where it gives none."""
    raw = dict(raw)
    raw['bridge'] = dict(raw.get('bridge') or {}, mac=(raw.get('bridge') or {}).get('mac') or found['bridge'].get('mac'))
    backend = dict(raw.get('backend') or {})
    for key in ('mac',) + tuple(getattr(registry.get(backend.get('type')), 'HOST_OPTIONS', ())):
        if found['backend'].get(key) and not backend.get(key):
            backend[key] = found['backend'][key]
    raw['backend'] = backend
    return raw


# ---- node_info ----------------------------------------------------------------------------------
def _json_file(host, path):
    text = host.read(path)
    try:
        data = json.loads(text) if text else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def saved_node(host):
    """(the saved contract normalised, or None; a problem text when it does not validate)."""
    raw = _json_file(host, _host.NODE_FILE)
    if raw is None:
        return None, None
    try:
        return _node_spec.normalize(raw), None
    except ValidationError as exc:
        return None, '%s does not validate: %s' % (_host.NODE_FILE, exc)


def identity(names, saved, machine_id, host):
    """The bridge's and the backend device's MACs, for the names of a (partial) contract: a MAC once
    used stays (the saved contract's for the same device, else release 0.1's identity.json), else
    derived from the machine-id (None without one). saved: read_saved()."""
    legacy = _json_file(host, LEGACY_IDENTITY) or {}
    saved = saved or {}
    bridge = dict(names['bridge'])
    backend = dict(names['backend'])
    kind = registry.get(backend.get('type'))
    saved_bridge = saved.get('bridge') or {}
    if bridge.get('mac'):
        source = 'given'
    elif saved_bridge.get('name') == bridge['name'] and saved_bridge.get('mac'):
        bridge['mac'], source = saved_bridge['mac'], 'saved'
    elif legacy.get('bridge_mac'):
        bridge['mac'], source = legacy['bridge_mac'], 'first release'
    else:
        bridge['mac'], source = (_identity.device_mac(machine_id, bridge['name']) if machine_id else None), 'derived'
    if kind is not None and 'mac' in kind.OPTIONS and not backend.get('mac'):
        saved_backend = saved.get('backend') or {}
        if (saved_backend.get('type'), saved_backend.get('device')) == (backend['type'], backend.get('device')) \
                and saved_backend.get('mac'):
            backend['mac'] = saved_backend['mac']
        elif legacy.get('vtep_mac'):
            backend['mac'] = legacy['vtep_mac']
    backend = kind.normalize(backend, machine_id) if kind is not None else backend
    if kind is not None:
        for key, value in kind.host_identity(backend).items():
            backend.setdefault(key, value)
    publish = kind(backend).publish() if kind is not None else {}
    # a key to generate (overlay.mesh.node_keys) before the peers can be told of this host
    keys_missing = bool(kind is not None and kind.KEYED and not all(backend.get(key) for key in kind.HOST_OPTIONS))
    return {'bridge': bridge, 'backend': backend, 'publish': publish, 'source': source, 'keys_missing': keys_missing}


def lease_record(saved, host):
    """This host's own lease record (rebuilds the controller's lease file if that was lost)."""
    if saved is not None:
        record = {'network': saved['network'], 'subnet': saved['subnet'], 'underlay': saved.underlay['address']}
        if saved.ipv6_subnet:
            record.update(ipv6_network=saved['ipv6_network'], ipv6_subnet=saved['ipv6_subnet'])
        record.update(saved.backend.publish())
        return record
    legacy = _json_file(host, LEGACY_RECORD) or {}
    if legacy.get('address') and not legacy.get('underlay'):
        legacy['underlay'] = legacy.pop('address')
    return legacy


def overlay_facts(saved):
    """What verify and tests need to know of an applied node, derived from its contract."""
    if saved is None:
        return {}
    return {'backend': saved.backend.name, 'device': saved.backend.device, 'ports': [list(p) for p in saved.backend.ports()],
            'ip_protocols': list(saved.backend.IP_PROTOCOLS),
            'bridge': saved.bridge['name'], 'gateway': str(saved.gateway), 'vtep_address': str(saved.vtep_address),
            'subnet': str(saved.subnet), 'network': str(saved.network), 'mtu': saved.mtu,
            'underlay': saved.underlay['address'], 'peers': len(saved.peers),
            'cni_conflist': _node_files.cni_conflist_path(saved.data), 'subnet_env': saved['subnet_env'],
            'ipv6_network': saved.data.get('ipv6_network'), 'ipv6_subnet': saved.data.get('ipv6_subnet'),
            'gateway6': str(saved.gateway6) if saved.gateway6 else None}


# The parts of a node whose kernel objects drift() compares (not its files, units or installed engine).
DRIFT_PARTS = ('bridge', 'backend', 'kernel', 'nftables')


def drift(saved):
    """What differs on the host from the applied node ``saved``: the node module's check-mode changes of
    the kernel parts (the same code as a run, so nothing is changed), one line per object."""
    if saved is None:
        return []
    probe = _host.Host(check_mode=True)
    _node_apply.apply(saved, probe, saved.data, only=DRIFT_PARTS)
    found = []
    for change in probe.report.changes:  # 'added route ...' -> 'route ... (missing)': what is, not what a run does
        verb, _sep, what = change.partition(' ')
        if what.startswith('sysctl ') and 'forward' not in what:
            # Per-device rp_filter / accept_ra: a device that a daemon makes after the boot-time apply (udp's TUN,
            # wireguard-go's) has the kernel's default until the next site run; it does not break the overlay.
            continue
        found.append('%s (%s)' % (what, {'added': 'missing', 'updated': 'differs, wanted as shown', 'removed': 'not ours to keep'}
                                  .get(verb, verb)))
    return found


def run_node_info(module):
    host = _host.Host(check_mode=True)
    result = {'changed': False, 'last_apply': _json_file(host, _host.LAST_APPLY_FILE) or {}}
    found = _prerequisites.missing(module.params['prerequisites'])
    result['prerequisites'] = dict(found, message=_prerequisites.describe(found))
    if result['prerequisites']['message'] and 'node' in module.params['prerequisites']:
        # the rest needs them (root, pyroute2, ip): report what is missing, the role stops every host on it
        module.exit_json(**result)
    try:
        saved, problem = saved_node(host)
        if problem:
            module.warn(problem)
        result['node'] = saved.data if saved is not None else {}
        result['overlay'] = overlay_facts(saved)
        result['record'] = lease_record(saved, host)
        if module.params['drift']:
            result['drift'] = drift(saved)
        if module.params['underlay'] is not None:
            result['underlay'] = _underlay.find(module.params['underlay'])
        names = _node_spec.removal_record({'bridge': module.params['bridge'], 'backend': module.params['backend']})
        result['identity'] = identity(names, _node_apply.read_saved(host), _identity.read_machine_id(), host)
        if module.params['underlay'] is not None:
            check_host(result['identity']['backend'])  # a host joining: can it run the backend at all?
        if module.params['files'] is not None:
            result['files_refused'] = files_refused(module.params['files'], host)
        for warning in host.report.warnings:
            module.warn(warning)
    except ERRORS as exc:  # pylint: disable=catching-non-exception
        fail(module, exc)
    module.exit_json(**result)


def files_refused(files, host):
    """Why the node would refuse to write the files of ``files`` ({subnet_env, cni}) on this host, else ''."""
    try:
        _node_files.check_placed(_node_spec.removal_record(dict((key, files.get(key)) for key in ('subnet_env', 'cni'))), host)
    except _node_files.FileRefused as exc:
        return str(exc)
    return ''


# ---- node_keys ----------------------------------------------------------------------------------
def run_node_keys(module):
    """Create (or rotate) the secret the backend needs on this host; returns what the host publishes."""
    host = _host.Host(check_mode=module.check_mode)
    result = {}
    try:
        names = _node_spec.removal_record({'backend': module.params['backend']})
        kind = registry.get(names['backend']['type'])
        with host.locked():
            result['publish'] = kind.ensure_keys(host, names['backend'], rotate=module.params['rotate']) if kind else {}
    except ERRORS as exc:  # pylint: disable=catching-non-exception
        fail(module, exc, host)
    result['changed'] = host.report.changed
    result['changes'] = host.report.changes
    if module._diff:
        result['diff'] = host.report.diff('keys')
    module.exit_json(**result)
