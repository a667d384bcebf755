# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Print every key under an etcd prefix as JSON {key: {"value": ..., "lease": id}}, with the scenario's
endpoints and client certificate (registry-vars.yml); run from the lab's switch namespace.

    etcd_keys.py REGISTRY_DIR [PREFIX]      (default /coreos.com/network)
    etcd_keys.py REGISTRY_DIR PREFIX --check-fleets
        {"leases": n, "hosts": [...], "handed": n, "twice": [hosts with two keys], "lost": [hosts whose key is not
        the subnet a controller was handed]}, from the controllers' round-*.json files
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / '.collections'))

from ansible_collections.overlay.mesh.plugins.module_utils import _etcd  # noqa: E402  pylint: disable=wrong-import-position


def main():
    settings = yaml.safe_load((Path(sys.argv[1]) / 'registry-vars.yml').read_text())
    prefix = sys.argv[2] if len(sys.argv) > 2 else '/coreos.com/network'
    client = _etcd.EtcdClient(settings['mesh_node_etcd_endpoints'], ca_file=settings['mesh_node_etcd_ca_file'],
                              cert_file=settings['mesh_node_etcd_cert_file'], key_file=settings['mesh_node_etcd_key_file'],
                              timeout=3)
    out = {}
    for key, value, dummy, lease in client.range_prefix(prefix.rstrip('/') + '/')[1]:
        try:
            value = json.loads(value)
        except ValueError:
            pass
        out[key] = {'value': value, 'lease': lease}
    if '--check-fleets' in sys.argv:
        out = check_fleets(Path(sys.argv[1]), out)
    print(json.dumps(out, sort_keys=True))


def check_fleets(directory, keys):
    held, twice = {}, []
    for key, entry in keys.items():
        if '/subnets/' not in key:
            continue
        host = entry['value']['OverlayMesh']['host']
        if host in held:
            twice.append(host)
        held[host] = key.rsplit('/', 1)[1].replace('-', '/')
    handed, lost = set(), []
    for result in sorted(directory.glob('controller-*/round-*.json')):
        for host, subnet in json.loads(result.read_text()).items():
            handed.add(host)
            if held.get(host) != subnet:
                lost.append('%s: handed %s by %s, etcd has %s' % (host, subnet, result.parent.name, held.get(host)))
    return {'leases': len(held), 'hosts': sorted(held), 'handed': len(handed), 'twice': twice, 'lost': lost}


if __name__ == '__main__':
    main()
