# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make ``ansible_collections.overlay.mesh`` importable from the checkout.

The checkout is linked as .collections/ansible_collections/overlay/mesh (``make deps``); when the
tree is itself laid out as ansible_collections/overlay/mesh (as ansible-test wants), its
grandparent directory is used instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hypothesis import settings

REPO = Path(__file__).resolve().parents[2]


def _collections_root():
    if REPO.parent.name == "overlay" and REPO.parent.parent.name == "ansible_collections":
        return REPO.parents[2]
    return REPO / ".collections"


if str(_collections_root()) not in sys.path:
    sys.path.insert(0, str(_collections_root()))

# CI replays the same property-test examples every run, so a red CI means a change broke
# something; a developer's run explores new examples.
if os.environ.get('CI'):
    settings.register_profile('ci', derandomize=True)
    settings.load_profile('ci')
