# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Galaxy artifact, built from this checkout as `make test` leaves it (venvs, caches, the
linked collection): what runs and its documentation, nothing test-only, within a size budget."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Top-level entries an installed collection may hold.
ALLOWED_TOP = {'FILES.json', 'MANIFEST.json', 'LICENSE', 'README.md', 'CHANGELOG.rst', 'requirements.txt', 'changelogs', 'docs', 'meta',
               'playbooks', 'plugins', 'roles'}
MUST_HAVE = ('LICENSE', 'README.md', 'CHANGELOG.rst', 'requirements.txt', 'meta/runtime.yml', 'meta/execution-environment.yml',
             'plugins/modules/node.py', 'plugins/module_utils/_backends/wireguard.py', 'roles/mesh_node/tasks/main.yml',
             'roles/mesh_node/meta/argument_specs.yml', 'playbooks/site.yml', 'playbooks/verify.yml', 'playbooks/remove.yml')
SIZE_BUDGET = 400 * 1024  # bytes, compressed: about 230 KB today


def test_the_artifact_holds_what_runs_and_nothing_test_only(tmp_path):
    galaxy = os.path.join(os.path.dirname(sys.executable), 'ansible-galaxy')
    subprocess.run([galaxy, 'collection', 'build', '--output-path', str(tmp_path), str(REPO)], check=True,
                   capture_output=True, text=True)
    artifacts = list(tmp_path.glob('overlay-mesh-*.tar.gz'))
    assert len(artifacts) == 1
    with tarfile.open(str(artifacts[0])) as tar:
        names = [member.name for member in tar.getmembers() if member.isfile()]
    tops = set(name.split('/', 1)[0] for name in names)
    assert tops <= ALLOWED_TOP, 'not for an installed collection: %s' % sorted(tops - ALLOWED_TOP)
    assert not [name for name in names if '__pycache__' in name or name.endswith('.pyc')]
    missing = [name for name in MUST_HAVE if name not in names]
    assert not missing, 'missing from the artifact: %s' % missing
    assert artifacts[0].stat().st_size <= SIZE_BUDGET, '%d bytes, budget %d' % (artifacts[0].stat().st_size, SIZE_BUDGET)
