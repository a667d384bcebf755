# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures for tests that boot labs: root only, and every lab is torn down whatever happens."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import overlay_lab  # noqa: E402  pylint: disable=wrong-import-position

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="labs need root (network namespaces, systemd-nspawn)")


@pytest.fixture
def make_lab():
    """Boot labs by name; all of them are removed at the end of the test."""
    labs = []

    def boot(name, hosts):
        lab = overlay_lab.Lab(os.environ.get('OVERLAY_MESH_LAB_PREFIX', '') + name)  # a prefix lets two checkouts test at once
        labs.append(lab)
        lab.up(hosts, log=lambda *_: None)
        return lab

    yield boot
    for lab in labs:
        lab.down(log=lambda *_: None)
