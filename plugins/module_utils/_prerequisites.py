# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""What a host must have before the collection changes anything on it, and the package that brings
it, per distribution family. overlay.mesh.node_info reports what is missing; the role and the
verify playbook stop, naming the host and the packages, before any change.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess

from ansible_collections.overlay.mesh.plugins.module_utils._respawn import SYSTEM_INTERPRETERS

# (what is needed, how it is found, {os family: package})
NODE = (
    ('pyroute2 (python3)', ('python', 'pyroute2'), {'debian': 'python3-pyroute2', 'redhat': 'python3-pyroute2'}),
    ('nft', ('command', 'nft'), {'debian': 'nftables', 'redhat': 'nftables'}),
    ('ip', ('command', 'ip'), {'debian': 'iproute2', 'redhat': 'iproute'}),
    ('systemctl', ('command', 'systemctl'), {'debian': 'systemd', 'redhat': 'systemd'}),
)
VERIFY = (
    ('the CNI bridge and host-local plugins', ('cni', 'bridge'), {'debian': 'containernetworking-plugins',
                                                                  'redhat': 'containernetworking-plugins'}),
    ('ping', ('command', 'ping'), {'debian': 'iputils-ping', 'redhat': 'iputils'}),
)
SETS = {'node': NODE, 'verify': VERIFY}
CNI_DIRS = ('/usr/lib/cni', '/opt/cni/bin', '/usr/libexec/cni')
SEARCH_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'


def os_family(path='/etc/os-release'):
    """'debian', 'redhat' or the os-release ID (from ID and ID_LIKE)."""
    values = {}
    try:
        with open(path) as handle:
            for line in handle:
                key, _sep, value = line.strip().partition('=')
                values[key] = value.strip('"\'')
    except (IOError, OSError):
        return 'unknown'
    ids = [values.get('ID', '')] + values.get('ID_LIKE', '').split()
    for family, members in (('debian', ('debian', 'ubuntu')), ('redhat', ('rhel', 'fedora', 'centos', 'rocky', 'almalinux'))):
        if any(name in members for name in ids):
            return family
    return values.get('ID') or 'unknown'


def _present(how):
    kind, name = how
    if kind == 'command':
        return shutil.which(name, path=SEARCH_PATH) is not None
    if kind == 'python':
        # this interpreter, or the system's one the modules respawn under (_respawn.py)
        return importlib.util.find_spec(name) is not None or any(
            os.access(python, os.X_OK) and subprocess.call([python, '-c', 'import %s' % name], stdout=subprocess.DEVNULL,
                                                           stderr=subprocess.DEVNULL) == 0 for python in SYSTEM_INTERPRETERS)
    return any(os.access(os.path.join(directory, name), os.X_OK) for directory in CNI_DIRS)


def missing(sets):
    """{'os_family', 'missing': [{'need', 'package'}], 'root', 'user'} for the named sets ('node', 'verify').

    root: whether the module runs as root, which every use needs (netlink, nftables, /etc, systemd).
    """
    family = os_family()
    result = []
    for name in sets:
        for need, how, packages in SETS[name]:
            if not _present(how):
                result.append({'need': need, 'package': packages.get(family) or packages['debian']})
    uid = os.geteuid()
    return {'os_family': family, 'missing': result, 'root': uid == 0 or not sets, 'user': _user_name(uid)}


def _user_name(uid):
    try:
        import pwd  # pylint: disable=import-outside-toplevel
        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return 'uid %d' % uid


def describe(found):
    """One line: what is wrong and how to put it right, for an error message ('' when nothing is)."""
    problems = []
    if not found.get('root', True):
        problems.append('runs as %s, not root: overlay.mesh changes the kernel, /etc and systemd; let the play become root'
                        ' (become: true, as the collection\'s playbooks do) or connect as root' % found.get('user'))
    if found['missing']:
        packages = sorted(set(item['package'] for item in found['missing']))
        tool = {'debian': 'apt install', 'redhat': 'dnf install'}.get(found['os_family'], 'install')
        problems.append('missing %s: %s %s' % (', '.join(item['need'] for item in found['missing']), tool, ' '.join(packages)))
    return '; '.join(problems)
