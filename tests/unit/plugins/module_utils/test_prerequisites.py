# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a host lacks, named with the package of its distribution family."""

from __future__ import annotations

from ansible_collections.overlay.mesh.plugins.module_utils import _prerequisites as prereq


def test_os_family_from_os_release(tmp_path):
    for text, family in (('ID=debian\n', 'debian'), ('ID=ubuntu\nID_LIKE=debian\n', 'debian'),
                         ('ID="rocky"\nID_LIKE="rhel centos fedora"\n', 'redhat'), ('ID=arch\n', 'arch')):
        (tmp_path / 'os-release').write_text(text)
        assert prereq.os_family(str(tmp_path / 'os-release')) == family
    assert prereq.os_family(str(tmp_path / 'none')) == 'unknown'


def test_what_is_missing_is_named_with_its_package(monkeypatch):
    monkeypatch.setattr(prereq, 'os_family', lambda: 'redhat')
    monkeypatch.setattr(prereq.os, 'geteuid', lambda: 0)
    monkeypatch.setattr(prereq.shutil, 'which', lambda name, path=None: None if name in ('ip', 'ping') else '/usr/bin/' + name)
    monkeypatch.setattr(prereq, 'CNI_DIRS', ())
    found = prereq.missing(['node', 'verify'])
    assert found == {'os_family': 'redhat', 'root': True, 'user': 'root', 'missing': [
        {'need': 'ip', 'package': 'iproute'}, {'need': 'the CNI bridge and host-local plugins', 'package': 'containernetworking-plugins'},
        {'need': 'ping', 'package': 'iputils'}]}
    assert prereq.describe(found) == ('missing ip, the CNI bridge and host-local plugins, ping: dnf install containernetworking-plugins'
                                      ' iproute iputils')
    assert prereq.missing([]) == {'os_family': 'redhat', 'root': True, 'user': 'root', 'missing': []}
    assert prereq.describe(prereq.missing(['node'])) == 'missing ip: dnf install iproute'


def test_a_user_that_is_not_root_is_told_to_become_root(monkeypatch):
    monkeypatch.setattr(prereq, 'os_family', lambda: 'debian')
    monkeypatch.setattr(prereq.shutil, 'which', lambda name, path=None: '/usr/bin/' + name)
    monkeypatch.setattr(prereq, '_present', lambda how: True)
    monkeypatch.setattr(prereq.os, 'geteuid', lambda: 1000)
    monkeypatch.setattr(prereq, '_user_name', lambda uid: 'ops')
    found = prereq.missing(['node'])
    assert found['root'] is False and found['user'] == 'ops'
    assert prereq.describe(found).startswith('runs as ops, not root: ')
    assert 'become: true' in prereq.describe(found)
    # nothing asked, nothing checked
    assert prereq.describe(prereq.missing([])) == ''
