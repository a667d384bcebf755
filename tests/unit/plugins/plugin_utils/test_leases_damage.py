# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A damaged lease file never moves a host (issue 24): damage is found (a cut at a line end
included), nothing is written then, the last good copy is kept beside the file, a host outside the
play is never handed a new subnet, and rebuilding from the hosts' records is said out loud."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from ansible_collections.overlay.mesh.plugins.plugin_utils import _leases as L

CONFIG = L.make_config()
# node2 joined after node3, so its subnet is not the one sorted order would give it
LEASES = {'node1': {'subnet': '10.244.1.0/24'}, 'node3': {'subnet': '10.244.2.0/24'}, 'node2': {'subnet': '10.244.3.0/24'}}
HOSTS = ['node1', 'node2', 'node3']


@pytest.fixture()
def converged(tmp_path):
    """A lease file written twice by update_lease_file (so its last good copy exists); returns its path."""
    path = tmp_path / 'leases.yml'
    path.write_text(L.render_lease_file(CONFIG, {'node1': LEASES['node1'], 'node3': LEASES['node3']}))
    L.update_lease_file(str(path), CONFIG, HOSTS, pinned={'node2': '10.244.3.0/24'})
    L.update_lease_file(str(path), CONFIG, HOSTS)
    assert {h: r['subnet'] for h, r in L.read_lease_file(str(path))[1].items()} == {h: r['subnet'] for h, r in LEASES.items()}
    return path


def files_of(path):
    return {p.name: p.read_bytes() for p in path.parent.iterdir() if not p.name.endswith('.lock')}


def refused(path, match, **kwargs):
    before = files_of(path)
    with pytest.raises(L.LeaseError) as info:
        L.update_lease_file(str(path), CONFIG, kwargs.pop('hosts', HOSTS), **kwargs)
    assert files_of(path) == before  # nothing written, the last good copy included
    message = str(info.value)
    assert str(path) in message and match in message, message
    return message


def test_the_last_good_copy_is_kept_beside_the_file(converged):
    prev = converged.parent / '.leases.yml.prev'
    assert L.prev_path(str(converged)) == str(prev)
    assert 'node2' not in L.parse_lease_file(prev.read_text())  # the file before its last change
    os.chmod(converged, 0o600)
    L.update_lease_file(str(converged), CONFIG, HOSTS + ['node4'])
    assert prev.read_text() == L.render_lease_file(CONFIG, L.read_lease_file(str(prev))[1])
    assert os.stat(prev).st_mode & 0o777 == 0o600  # the copy keeps the file's mode


@pytest.mark.parametrize('cut', ['line end', 'mid-line', 'after the header'])
def test_a_cut_file_is_refused_and_says_how_to_restore(converged, cut):
    text = converged.read_text()
    lines = text.splitlines(True)
    cut_text = {'line end': ''.join(lines[:-2]), 'mid-line': ''.join(lines[:-2]) + lines[-2][:12],
                'after the header': ''.join(lines[:lines.index('leases:\n') + 1])}[cut]
    converged.write_text(cut_text)
    message = refused(converged, 'damaged', play_hosts=['node1'])
    assert 'cp %s %s' % (L.prev_path(str(converged)), converged) in message


def test_a_zero_byte_file_is_refused(converged):
    converged.write_text('')
    refused(converged, 'damaged: the file is empty (0 bytes)')


def test_an_end_line_that_counts_other_leases_is_refused(converged):
    converged.write_text(converged.read_text().replace('# end of leases: 3', '# end of leases: 4'))
    refused(converged, 'its end line counts 4 leases but it holds 3')


def test_a_hand_edited_value_is_read(converged):
    converged.write_text(converged.read_text().replace('10.244.2.0/24', '10.244.9.0/24'))
    assert L.update_lease_file(str(converged), CONFIG, HOSTS)[0].leases['node3']['subnet'] == '10.244.9.0/24'


def test_a_format_1_file_without_the_end_line_is_read_and_rewritten_as_format_2(tmp_path):
    path = tmp_path / 'leases.yml'
    path.write_text('format: 1\nnetwork: "10.244.0.0/16"\nsubnet_len: 24\nleases:\n  node1: {subnet: "10.244.5.0/24"}\n')
    alloc, before, after = L.update_lease_file(str(path), CONFIG, ['node1'])
    assert alloc.leases == {'node1': {'subnet': '10.244.5.0/24'}}
    assert after.splitlines()[-1] == '# end of leases: 1' and 'format: 2' in after
    assert (tmp_path / '.leases.yml.prev').read_text() == before


def test_two_hosts_with_one_subnet_are_refused(converged):
    converged.write_text(converged.read_text().replace('10.244.3.0/24', '10.244.2.0/24'))
    message = refused(converged, 'subnet 10.244.2.0/24 claimed by two hosts: node2')
    assert 'restore it' in message


def test_a_subnet_outside_the_network_is_refused(converged):
    converged.write_text(converged.read_text().replace('10.244.3.0/24', '10.99.3.0/24'))
    refused(converged, '10.99.3.0/24 lies outside network 10.244.0.0/16')


def test_a_host_outside_the_play_without_a_lease_is_never_given_one(converged):
    # an old-format file cut at a line end (nothing tells it was cut): node2 and node3 are lost
    text = converged.read_text()
    old = '\n'.join(line for line in text.splitlines() if not line.startswith(('  node2', '  node3', '# end')))
    converged.write_text(old.replace('format: 2', 'format: 1') + '\n')
    message = refused(converged, 'has no lease for node2, node3 (not in this play)', play_hosts=['node1'],
                      host_records={'node1': LEASES['node1']})
    assert 'Run on node2, node3 too' in message
    # with every host in the play, their own records rebuild the file, and a warning lists them
    records = {h: dict(r, network='10.244.0.0/16') for h, r in LEASES.items()}
    alloc = L.update_lease_file(str(converged), CONFIG, HOSTS, play_hosts=HOSTS, host_records=records)[0]
    assert {h: r['subnet'] for h, r in alloc.leases.items()} == {h: r['subnet'] for h, r in LEASES.items()}
    assert alloc.warnings == ['lease file %s had no entry for 2 host(s): rebuilt from their own records: '
                              'node2 10.244.3.0/24, node3 10.244.2.0/24' % converged]


def test_a_new_host_in_the_play_gets_a_subnet(converged):
    alloc = L.update_lease_file(str(converged), CONFIG, HOSTS + ['node4'], play_hosts=['node4'])[0]
    assert alloc.added == ['node4'] and alloc.leases['node4']['subnet'] == '10.244.4.0/24'


def test_a_stale_lock_of_a_dead_process_does_not_stop_a_run(converged):
    # a run that was killed while it held the lock: flock dies with the process, the lock file stays
    holder = subprocess.Popen([sys.executable, '-c', 'import fcntl, os, sys, time\n'
                               'fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n'
                               'fcntl.flock(fd, fcntl.LOCK_EX)\nprint("held", flush=True)\ntime.sleep(60)\n',
                               L.lock_path(str(converged))], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == 'held\n'
        with pytest.raises(L.LeaseError, match='still locked by another run'):
            L.update_lease_file(str(converged), CONFIG, HOSTS, lock_timeout=0.2)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert os.path.exists(L.lock_path(str(converged)))
    before = converged.read_text()
    alloc, old, new = L.update_lease_file(str(converged), CONFIG, HOSTS, lock_timeout=0.2)
    assert old == new == before and alloc.added == []
