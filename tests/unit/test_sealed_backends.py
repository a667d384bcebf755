# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A backend is its own file(s) under plugins/module_utils/_backends/ and one line in the registry: no other
Python file in plugins/ names a backend in code (identifiers and string literals; comments, docstrings and
the modules' DOCUMENTATION/EXAMPLES/RETURN, which describe options, do not count), and no backend module
imports another backend."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGINS = REPO / 'plugins'
BACKENDS_DIR = PLUGINS / 'module_utils' / '_backends'
NAMES = ('vxlan', 'udp', 'host-gw', 'host_gw', 'wireguard')
# a backend name as a word of its own: not inside a path, a module name or another name (mesh-udp, overlay.mesh.vxlan)
_IN_STRING = re.compile(r'(?<![\w./-])(%s)(?![\w/])' % '|'.join(NAMES))
_IN_NAME = re.compile(r'(?:^|_)(%s)(?:_|$)' % '|'.join(NAMES))
_DOC_CONSTANTS = ('DOCUMENTATION', 'EXAMPLES', 'RETURN')

# Files that still name a backend, each with why. The fewer, the better.
ALLOWED = {
    # the kernel's VXLAN link kind: the VTEP engine of the 0.1 modules overlay.mesh.vxlan and overlay.mesh.peers
    # (which the vxlan backend uses too); a link's kind is the kernel's word, not a backend's name
    'plugins/module_utils/_netlink_links.py': 'the kernel link kind "vxlan" (reading a VTEP\'s attributes)',
    'plugins/module_utils/_netlink_peers.py': 'the peers of a kernel VXLAN VTEP: the engine of overlay.mesh.peers',
    'plugins/modules/vxlan.py': 'the 0.1 module overlay.mesh.vxlan (a VTEP on its own, not the node\'s backend)',
}
# The lead's work in progress (issue 22/23: published peer data opaque, flannel's BackendData in etcd): these
# name the vxlan and wireguard backends' published fields and flannel's backend types for now.
PENDING = {
    'plugins/plugin_utils/_registry.py': 'flannel\'s BackendType and its vxlan port in etcd, per backend',
    'plugins/module_utils/_flannel_interop.py': 'flannel\'s vxlan leases beside ours',
    'plugins/module_utils/_lease_schema.py': 'the lease store\'s default backend type (registry.DEFAULT would do)',
}


def _skipped_strings(tree):
    """Positions of docstrings and of the DOCUMENTATION/EXAMPLES/RETURN strings."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                skip.add((first.value.lineno, first.value.col_offset))
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id in _DOC_CONSTANTS for t in node.targets):
            skip.add((node.value.lineno, node.value.col_offset))
    return skip


def backend_names(path):
    """[(line, token)] where the file names a backend in code."""
    source = path.read_text(encoding='utf-8')
    skip = _skipped_strings(ast.parse(source))
    found = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.STRING and tok.start not in skip and _IN_STRING.search(tok.string):
            found.append((tok.start[0], tok.string))
        elif tok.type == tokenize.NAME and _IN_NAME.search(tok.string):
            found.append((tok.start[0], tok.string))
    return found


def _outside_backends():
    for path in sorted(PLUGINS.rglob('*.py')):
        if BACKENDS_DIR not in path.parents:
            yield path


def test_the_grep_finds_what_it_looks_for(tmp_path):
    sample = tmp_path / 'sample.py'
    sample.write_text('"""About vxlan."""\n# vxlan\nDEFAULT = "vxlan"\nfrom x import host_gw\nDEV = "mesh-udp"\n'
                      'MOD = "overlay.mesh.vxlan"\nMSG = "needs udp or wireguard"\nPORT = "UDP port"\n')
    assert [line for line, _token in backend_names(sample)] == [3, 4, 7]


def test_no_file_outside_the_backends_names_a_backend():
    named = dict((str(path.relative_to(REPO)), backend_names(path)) for path in _outside_backends())
    offending = dict((path, found) for path, found in named.items() if found)
    unexpected = dict((path, found) for path, found in offending.items() if path not in ALLOWED and path not in PENDING)
    assert not unexpected, 'name backends only in plugins/module_utils/_backends/ (and the registry): %s' % unexpected
    stale = sorted(path for path in ALLOWED if path not in offending)
    assert not stale, 'these no longer name a backend: take them off ALLOWED: %s' % stale


@pytest.mark.parametrize('path', sorted(BACKENDS_DIR.glob('*.py')), ids=lambda path: path.name)
def test_no_backend_imports_another(path):
    from ansible_collections.overlay.mesh.plugins.module_utils._backends import registry
    modules = dict((backend.__module__.rpartition('.')[2], name) for name, backend in registry.BACKENDS.items())
    if path.stem not in modules:
        return  # base, registry and a backend's own helper modules
    tree = ast.parse(path.read_text(encoding='utf-8'))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.endswith('._backends'):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and '._backends.' in node.module:
            imported.add(node.module.rpartition('.')[2])
    others = imported & (set(modules) - {path.stem})
    assert not others, '%s imports the backend module(s) %s' % (path.name, sorted(others))


def _imports(name):
    """'package.name' of every from-import of a module of plugins/module_utils."""
    tree = ast.parse((PLUGINS / 'module_utils' / name).read_text(encoding='utf-8'))
    return set('%s.%s' % (node.module.rpartition('.')[2], alias.name) for node in ast.walk(tree)
               if isinstance(node, ast.ImportFrom) and node.module for alias in node.names)


def test_the_node_apply_and_spec_know_backends_only_through_the_registry():
    for name in ('_node_apply.py', '_node_spec.py'):
        assert [one for one in _imports(name) if one.startswith('_backends.')] == ['_backends.registry'], name
    assert 'module_utils._docker' not in _imports('_node_spec.py')
