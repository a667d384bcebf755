# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Offline stand-in for ansible-test's get-pip bootstrap script.

ansible-test --venv downloads get-pip-<version>.py from a host this project's machines cannot
reach; `make sanity` puts this file in its cache instead, beside pip's wheel from PyPI. It
installs pip from that wheel, then whatever else was asked for.
"""

import glob
import os
import sys

WHEEL = sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'pip-*-py3-none-any.whl')))[-1]
sys.path.insert(0, WHEEL)
from pip._internal.cli.main import main  # noqa: E402  pylint: disable=wrong-import-position

sys.exit(main(['install', WHEEL] + [arg for arg in sys.argv[1:] if arg not in ('--no-setuptools', '--no-wheel')]))
