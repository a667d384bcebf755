# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The overlay.mesh.verify_report filter: the verify playbook's probe results as a JSON report, an
SVG picture of the mesh and node_exporter textfiles (docs in verify_report.yml, logic in
plugin_utils/_verify_report.py)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.overlay.mesh.plugins.plugin_utils import _verify_report


def verify_report(probes, hosts, mtu=None, generated='', epoch=0, peers=None, last_apply=None):
    if not isinstance(probes, dict):
        raise AnsibleFilterError('overlay.mesh.verify_report: the input must map each host to its probe results')
    report = _verify_report.build(list(hosts), probes, mtu, str(generated), epoch, last_apply)
    peers = peers or {}
    return {'report': report, 'json': _verify_report.to_json(report), 'svg': _verify_report.svg(report),
            'textfiles': dict((host, _verify_report.textfile(report, host, int(peers.get(host) or 0), report['last_apply'][host]))
                              for host in hosts)}


class FilterModule(object):
    def filters(self):
        return {'verify_report': verify_report}
