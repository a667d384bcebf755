# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module glue: respawn under the system Python, results, diff layout."""

from __future__ import annotations

import pytest

from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_module as glue
from ansible_collections.overlay.mesh.plugins.module_utils import _respawn
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_changes import ChangeSet, EngineError


class Exit(Exception):
    pass


class FakeModule(object):
    def __init__(self, diff=False):
        self._diff = diff
        self.failed = None
        self.exited = None

    def fail_json(self, **kwargs):
        self.failed = kwargs
        raise Exit()

    def exit_json(self, **kwargs):
        self.exited = kwargs
        raise Exit()


def test_library_present_does_nothing(monkeypatch):
    monkeypatch.setattr(_respawn, 'respawn_module', lambda path: pytest.fail('respawned'))
    _respawn.require_library(FakeModule(), True, 'pyroute2', 'pyroute2')


def test_respawns_under_a_system_python_that_has_it(monkeypatch):
    calls = []
    monkeypatch.setattr(_respawn, 'has_respawned', lambda: False)
    monkeypatch.setattr(_respawn, 'probe_interpreters_for_module', lambda paths, name: '/usr/bin/python3')

    def respawn(path):
        calls.append(path)
        raise Exit()
    monkeypatch.setattr(_respawn, 'respawn_module', respawn)
    with pytest.raises(Exit):
        _respawn.require_library(FakeModule(), False, 'pyroute2', 'pyroute2')
    assert calls == ['/usr/bin/python3']


@pytest.mark.parametrize('respawned, found', [(True, '/usr/bin/python3'), (False, None)])
def test_fails_with_missing_required_lib(monkeypatch, respawned, found):
    monkeypatch.setattr(_respawn, 'has_respawned', lambda: respawned)
    monkeypatch.setattr(_respawn, 'probe_interpreters_for_module', lambda paths, name: found)
    monkeypatch.setattr(_respawn, 'respawn_module', lambda path: pytest.fail('respawned twice'))
    module = FakeModule()
    with pytest.raises(Exit):
        _respawn.require_library(module, False, 'pyroute2', 'pyroute2', 'Traceback ...')
    assert 'pyroute2' in module.failed['msg'] and module.failed['exception'] == 'Traceback ...'


def test_results_and_diff_by_type():
    changes = ChangeSet()
    changes.current[('route', 1)] = {'type': 'route', 'dst': '10.244.3.0/24'}
    changes.add('removed', ('route', 1), {'type': 'route', 'dst': '10.244.3.0/24'})
    changes.add('added', ('neighbour', 2), {'type': 'neighbour', 'address': '10.244.2.0'})
    result = glue.results(FakeModule(diff=True), [ChangeSet(), changes], extra=1)
    assert result['changed'] and result['extra'] == 1
    assert result['diff'] == {'before': {'route': [{'type': 'route', 'dst': '10.244.3.0/24'}]},
                              'after': {'neighbour': [{'type': 'neighbour', 'address': '10.244.2.0'}]}}
    assert 'diff' not in glue.results(FakeModule(), [changes])
    assert not glue.results(FakeModule(), [ChangeSet()])['changed']


def test_run_turns_engine_errors_into_fail_json(monkeypatch):
    monkeypatch.setattr(glue, 'require_pyroute2', lambda module: None)
    module = FakeModule()

    def boom():
        raise EngineError('VTEP flannel.1: vni is 1 in the kernel, 2 requested')
    with pytest.raises(Exit):
        glue.run(module, boom)
    assert module.failed['msg'].startswith('VTEP flannel.1: vni is 1')
    with pytest.raises(Exit):
        glue.run(module, lambda: {'changed': False})
    assert module.exited == {'changed': False}


def test_device_after():
    changes = ChangeSet()
    changes.add('added', ('link', 'cni0'), {'type': 'link', 'name': 'cni0'})
    assert glue.device_after(changes, 'cni0') == {'type': 'link', 'name': 'cni0'}
    assert glue.device_after(ChangeSet(), 'cni0') == {}


@pytest.mark.parametrize('name', ['_netlink_wire', '_netlink_validate', '_netlink_changes', '_netlink_peers',
                                  '_netlink_links', '_netlink_compat'])
def test_engine_is_free_of_ansible(name):
    """The boot-time unit calls the engine outside Ansible: no ansible.* import in it."""
    import importlib
    import re
    module = importlib.import_module('ansible_collections.overlay.mesh.plugins.module_utils.%s' % name)
    with open(module.__file__) as handle:
        source = handle.read()
    assert not re.search(r'^\s*(from|import)\s+ansible(\.|\s)', source, re.M)
