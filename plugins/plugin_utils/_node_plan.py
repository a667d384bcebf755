# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The mesh_node role's group plan (the overlay.mesh.node_group_plan filter), once per run on the controller:
who stays and who leaves, the pinned subnets, the group's problems; after the hosts are read, their own lease
records and what they report, and why not to go on.

It imports nothing heavy: the shared-settings check (plugin_utils/_node_inputs, which loads the node spec and
pyroute2 with the backends) is handed in by the caller."""

from __future__ import annotations


def _split(value):
    """mesh_node_remove / mesh_node_rotate_keys: a list, or a comma-separated string."""
    items = value.split(',') if isinstance(value, str) else list(value or [])
    return [str(item).strip() for item in items if str(item).strip()]


def group_plan(group, hosts, value_of, remove=None, rotate=None, in_play=None):
    """Members, leaving hosts and pins of the overlay group ``hosts`` (its inventory hostnames); ``group`` is its name.

    value_of(host, variable): the host's own mesh_node_* variable (None when unset). A host leaves when it is named
    in mesh_node_remove or has mesh_node_state: absent. Its lease is released (``release``) when it is named, or is
    in the play (``in_play``, all the hosts the play started with): a host marked absent outside a --limit still
    uses its subnet, so its lease is kept (``absent_kept``) until a run with it takes it out."""
    remove, rotate = _split(remove), _split(rotate)
    leaving = [host for host in hosts if host in remove]
    leaving += [host for host in hosts if host not in leaving and value_of(host, 'mesh_node_state') == 'absent']
    members = [host for host in hosts if host not in leaving]
    release = [host for host in leaving if in_play is None or host in remove or host in in_play]
    pins = dict((host, value_of(host, 'mesh_node_subnet')) for host in hosts)
    return {'group': group, 'remove': remove, 'rotate': rotate, 'members': members, 'leaving': leaving,
            'release': release, 'absent_kept': [host for host in leaving if host not in release],
            'pinned': dict((host, pins[host]) for host in members if pins[host]),
            'group_pinned': dict((host, pin) for host, pin in pins.items() if pin)}


def membership_problems(plan, groups, play_hosts, play_hosts_all):
    """The play's hosts against the group, the hosts to remove or rotate, and hosts that failed already."""
    group, problems = plan['group'], []
    failed = [host for host in play_hosts_all if host not in play_hosts]
    if failed:
        problems.append('not changing anything: %s failed before' % ', '.join(failed))
    if group not in groups:
        return problems + ['%s: mesh_node_group: no inventory group %s' % (host, group) for host in play_hosts]
    members = groups[group]
    for host in play_hosts:
        if host not in members:
            problems.append('%s: mesh_node_group: host is not in group %s' % (host, group))
    for name, wanted in (('mesh_node_remove', plan['remove']), ('mesh_node_rotate_keys', plan['rotate'])):
        strangers = [host for host in wanted if host not in members]
        if strangers:
            problems += ['%s: %s: %s not in group %s' % (host, name, ', '.join(strangers), group) for host in play_hosts]
    left_out = [host for host in plan['members'] if host not in play_hosts_all]
    if plan['rotate'] and left_out:
        problems.append('mesh_node_rotate_keys: run the rotation of %s on the whole group %s (not with --limit): %s would keep'
                        ' the old key' % (', '.join(plan['rotate']), group, ', '.join(left_out)))
    return problems


def read_plan(play_hosts, play_hosts_all, info_of):
    """After overlay.mesh.node_info: the hosts' own lease records and why not to go on (a host could not be read,
    or lacks what a node needs), one message naming the play's hosts (none to go on)."""
    unreadable = [host for host in play_hosts_all if host not in play_hosts]
    unreadable += [host for host in play_hosts if (info_of(host) or {}).get('unreachable')]
    lacking = ['%s: %s' % (host, ((info_of(host) or {}).get('prerequisites') or {}).get('message')) for host in play_hosts
               if ((info_of(host) or {}).get('prerequisites') or {}).get('message')]
    # a file the host's node would not write over (overlay.mesh.node refuses it too, later)
    lacking += ['%s: %s' % (host, (info_of(host) or {})['files_refused']) for host in play_hosts
                if (info_of(host) or {}).get('files_refused')]
    stop = []
    if unreadable:
        stop.append('%s could not be read (unreachable or failed); fix it, or leave it out with --limit (its lease and peer'
                    ' entries are kept)' % ', '.join(unreadable))
    stop += lacking
    records = dict((host, (info_of(host) or {}).get('record')) for host in play_hosts)
    # One message for the play, not one copy per host (a 100-host play would repeat it 100 times).
    return {'records': dict((host, record) for host, record in records.items() if record),
            'stop': ['not changing anything%s: %s' % (_hosts_phrase([host for host in play_hosts if host not in unreadable]),
                                                      '; '.join(stop))] if stop else []}


def _hosts_phrase(hosts, shown=8):
    """' on node1, node2, node3'; or ' on node1, ..., node8 and 92 more' (a play can have hundreds); '' for none."""
    if not hosts:
        return ''
    if len(hosts) <= shown:
        return ' on ' + ', '.join(hosts)
    return ' on %s and %d more' % (', '.join(hosts[:shown]), len(hosts) - shown)
