# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Two real processes allocating against one lease file at the same time never hand out a subnet twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from ansible_collections.overlay.mesh.plugins.plugin_utils import _leases as L

# One allocation per new host, each a full lock -> read -> allocate -> write cycle through
# update_lease_file, the function the action plugin calls. The worker prints the subnet it was
# handed for each of its hosts.
WORKER = r'''
import json, os, sys, time
from ansible_collections.overlay.mesh.plugins.plugin_utils import _leases as L
path, prefix, count, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
config = L.make_config('10.0.0.0/16', subnet_len=28)
while time.time() < start:
    time.sleep(0.001)
hosts, handed = [], {}
for i in range(count):
    host = '%s%03d' % (prefix, i)
    hosts.append(host)
    alloc = L.update_lease_file(path, config, hosts, lock_timeout=30)[0]
    handed[host] = alloc.leases[host]['subnet']
print(json.dumps(handed))
'''

COUNT = 150


def test_two_processes_never_hand_out_one_subnet_twice(tmp_path):
    path = str(tmp_path / 'leases.yml')
    root = sys.modules['ansible_collections'].__path__[0]
    env = dict(os.environ, PYTHONPATH=os.path.dirname(root))
    start = '%.3f' % (time.time() + 1.0)   # both start together, after the interpreters are up
    procs = [subprocess.Popen([sys.executable, '-c', WORKER, path, prefix, str(COUNT), start],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
             for prefix in ('a', 'b')]
    handed = {}
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        handed.update(json.loads(out))

    assert len(handed) == 2 * COUNT
    # No subnet was handed to two hosts, even for a moment...
    assert len(set(handed.values())) == 2 * COUNT
    # ...and the file holds every host with exactly the subnet it was handed (no lost update).
    dummy, final = L.read_lease_file(path)
    assert {h: r['subnet'] for h, r in final.items()} == handed
    # ...and the lowest subnets were used, without gaps.
    pool = L.make_config('10.0.0.0/16', subnet_len=28).pools[0]
    assert set(handed.values()) == {pool.subnet(i) for i in range(1, 2 * COUNT + 1)}
