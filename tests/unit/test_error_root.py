# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One error root: every exception class the collection defines derives from OverlayMeshError, so callers catch
(OverlayMeshError, NetlinkError, OSError) instead of a hand list of roots."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from ansible_collections.overlay.mesh.plugins.module_utils._errors import OverlayMeshError

PACKAGES = ('ansible_collections.overlay.mesh.plugins.module_utils', 'ansible_collections.overlay.mesh.plugins.plugin_utils')
# Each with its reason: the fewer, the better.
NOT_OURS = {
    # the stand-in for pyroute2's NetlinkError when pyroute2 does not import: pyroute2's, not ours
    '_netlink_compat.NetlinkError',
}


def _modules():
    for package in PACKAGES:
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, package + '.'):
            yield importlib.import_module(info.name)


def test_every_exception_of_the_collection_derives_from_one_root():
    found, outside = set(), set()
    for module in _modules():
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == module.__name__:
                label = '%s.%s' % (module.__name__.rpartition('.')[2], name)
                found.add(label)
                if not issubclass(value, OverlayMeshError):
                    outside.add(label)
    assert {'_netlink_changes.EngineError', '_netlink_validate.ValidationError', '_lease_pool.LeaseError'} <= found
    assert outside == NOT_OURS & found, 'derive these from _errors.OverlayMeshError (or say why not in NOT_OURS)'


def test_validation_errors_are_still_value_errors():
    from ansible_collections.overlay.mesh.plugins.module_utils._netlink_validate import ValidationError
    assert issubclass(ValidationError, ValueError)
