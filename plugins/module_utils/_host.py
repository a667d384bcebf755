# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The host a node is applied to: its files, commands, systemd units and kernel settings,
in check mode or not, and the report of what changed (one line per object, readable diffs).

Standard library only: the node module and the boot-time apply both use it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time

from ansible_collections.overlay.mesh.plugins.module_utils._netlink_changes import EngineError

# Everything overlay.mesh writes on a host, in one place.
STATE_DIR = '/etc/overlay-mesh'
NODE_FILE = STATE_DIR + '/node.json'
LIB_DIR = '/usr/lib/overlay-mesh'
RUN_DIR = '/run/overlay-mesh'
# The result of the last apply since boot (a site run or the boot-time reapply), for verify's metrics.
LAST_APPLY_FILE = RUN_DIR + '/last-apply.json'
LOCK_FILE = '/run/overlay-mesh.lock'
UNIT_DIR = '/etc/systemd/system'
SYSCTL_FILE = '/etc/sysctl.d/90-overlay-mesh.conf'
NETWORKD_FILE = '/etc/systemd/network/00-overlay-mesh-unmanaged.network'
RT_PROTOS_FILE = '/etc/iproute2/rt_protos.d/overlay-mesh.conf'
# Files of the first release (0.1.0), removed when a host is converged by this one.
LEGACY_STATE_FILE = STATE_DIR + '/state.json'
LEGACY_FILES = (LEGACY_STATE_FILE, STATE_DIR + '/identity.json', STATE_DIR + '/lease.json',
                STATE_DIR + '/subnet.env', STATE_DIR + '/nftables.nft', LIB_DIR + '/overlay-mesh-udp.py')
LOCK_TIMEOUT = 120
# Directories that are the collection's as a whole (removed with everything in them).
OWN_DIRS = (STATE_DIR, LIB_DIR, RUN_DIR)

# Order of object kinds in reports and diffs.
_KIND_ORDER = ['engine', 'file', 'link', 'address', 'neighbour', 'fdb', 'route', 'sysctl', 'nftables', 'iptables', 'service']
# The kinds a backend reports of its own (register_kind): kind -> one line for an object of it.
_DESCRIBERS = {}
# A kind with more unchanged objects than this shows them as one line ("neighbour: 99 unchanged").
UNCHANGED_SHOWN = 3


def register_kind(kind, describe_obj, before='route'):
    """A backend's own kind of report object (WireGuard's device and its peers): describe_obj(obj) gives its
    line, and its lines come just before those of the kind ``before``."""
    if kind not in _KIND_ORDER:
        _KIND_ORDER.insert(_KIND_ORDER.index(before), kind)
    _DESCRIBERS[kind] = describe_obj


def describe(obj):
    """One line for a kernel object or host object (the dicts of the engine and of this module)."""
    kind = obj.get('type')
    if kind == 'link':
        text = 'link %s %s' % (obj['name'], obj.get('kind') or '')
        for key in ('vni', 'port', 'local', 'underlay_device'):
            if obj.get(key) is not None:
                text += ' %s %s' % ({'underlay_device': 'dev'}.get(key, key), obj[key])
        if obj.get('learning'):
            text += ' learning'
        return '%s mac %s mtu %s%s' % (text, obj.get('mac'), obj.get('mtu'), ' up' if obj.get('up') else ' down')
    if kind == 'address':
        return 'address %s dev %s' % (obj['address'], obj['dev'])
    if kind == 'neighbour':
        return 'neighbour %s lladdr %s dev %s %s' % (obj['address'], obj['lladdr'], obj['dev'], obj['state'])
    if kind == 'fdb':
        return 'fdb %s dst %s dev %s self %s' % (obj['lladdr'], obj['dst'], obj['dev'], obj['state'])
    if kind == 'route':
        text = 'route %s' % obj['dst']
        if obj.get('gateway'):
            text += ' via %s' % obj['gateway']
        text += ' dev %s' % obj['dev']
        if obj.get('onlink'):
            text += ' onlink'
        return '%s proto %s' % (text, obj['protocol'])
    if kind in _DESCRIBERS:
        return _DESCRIBERS[kind](obj)
    if kind == 'sysctl':
        # sysctl's own notation: dots between levels, a dot inside a device name shown as a slash
        return 'sysctl %s = %s' % ('.'.join(part.replace('.', '/') for part in obj['key'].split('/')), obj['value'])
    if kind == 'engine':
        return 'engine %s: %d files, %s' % (obj['name'], obj['files'], obj['digest'])
    if kind in ('file', 'nftables', 'iptables', 'service'):
        return '%s %s%s' % (kind, obj['name'], (' (%s)' % obj['detail']) if obj.get('detail') else '')
    return repr(obj)


def _kind(line):
    return line.split(' ', 1)[0].rstrip(':')


def _order(line):
    """Kinds in _KIND_ORDER, a kind's count line ("neighbour: 99 unchanged") first."""
    kind = _kind(line)
    return (_KIND_ORDER.index(kind) if kind in _KIND_ORDER else len(_KIND_ORDER), not line.startswith(kind + ':'), line)


def json_lines(text):
    """A JSON object as one line per key, and per element of a list of objects (a contract's peers), keys
    sorted: a changed value is one changed line of a diff. Anything else is returned as it is."""
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if not isinstance(data, dict):
        return text
    lines = []
    for key in sorted(data):
        value = data[key]
        items = value if isinstance(value, list) and value and all(isinstance(item, dict) for item in value) else [value]
        lines.extend('%s: %s' % (key, json.dumps(item, sort_keys=True)) for item in items)
    return ''.join(line + '\n' for line in lines)


class Report(object):
    """What a node apply changed: one line per change, before/after object lines, diffs of updated files.

    A new or removed file is one object line (its name); an updated one a diff of its text, or of the
    view of it it was given (json_lines, the nftables table's rule lines)."""

    def __init__(self):
        self.changes = []       # 'added route 10.244.2.0/24 via ...'
        self.before = set()     # object lines before (owned objects seen)
        self.after = set()      # object lines after
        self.file_diffs = []    # Ansible diff dicts, one per updated file
        self.warnings = []

    @property
    def changed(self):
        return bool(self.changes)

    def changeset(self, changes):
        """Record an engine ChangeSet (kernel objects)."""
        for change in changes.changes:
            if change.obj.get('type') == 'file':
                before = changes.current.get(change.key, {}).get('content', '')
                self.file(change.obj['path'], before if change.action != 'added' else None, change.obj['content'])
                continue
            self.changes.append('%s %s' % (change.action, describe(change.obj)))
        diff = changes.diff()
        self.before.update(describe(obj) for obj in diff['before'] if obj.get('type') != 'file')
        self.after.update(describe(obj) for obj in diff['after'] if obj.get('type') != 'file')

    def object(self, action, obj, before=None):
        """Record a change of a host object (sysctl, nftables table, service)."""
        self.changes.append('%s %s' % (action, describe(obj)))
        if before is not None:
            self.before.add(describe(before))
        if action != 'removed':
            self.after.add(describe(obj))

    def unchanged(self, obj):
        self.before.add(describe(obj))
        self.after.add(describe(obj))

    def file(self, path, before, after, listed=True, view=None):
        """A file added (before None), updated or removed (after None). listed: named in the diff (a new or
        removed file as one line, an updated one by a diff of view(text), or of its text); not listed, it is
        in changes only (the installed engine, shown as one line of its own)."""
        action = 'added' if before is None else 'removed' if after is None else 'updated'
        self.changes.append('%s file %s' % (action, path))
        if not listed:
            return
        if action == 'updated':
            self.text_diff(path, view(before) if view else before, view(after) if view else after)
        else:
            (self.after if action == 'added' else self.before).add('file %s' % path)

    def text_diff(self, header, before, after):
        self.file_diffs.append({'before_header': header, 'after_header': header, 'before': before, 'after': after})

    def object_lines(self):
        """(before, after) object lines in order; a kind's unchanged objects beyond UNCHANGED_SHOWN as one count line."""
        same = self.before & self.after
        counts = {}
        for line in same:
            counts[_kind(line)] = counts.get(_kind(line), 0) + 1
        folded = dict((kind, count) for kind, count in counts.items() if count > UNCHANGED_SHOWN)
        hidden = set(line for line in same if _kind(line) in folded)
        totals = set('%s: %d unchanged' % item for item in folded.items())
        return [sorted((lines - hidden) | totals, key=_order) for lines in (self.before, self.after)]

    def diff(self, host_label='kernel and host objects'):
        """Ansible's diff: the objects first (one line each), then every updated file."""
        before, after = self.object_lines()
        objects = {'before_header': host_label, 'after_header': host_label,
                   'before': ''.join(line + '\n' for line in before), 'after': ''.join(line + '\n' for line in after)}
        return [objects] + self.file_diffs


class Host(object):
    """Files, commands, units and kernel settings of the host, honouring check mode.

    boot: the apply runs from overlay-mesh.service at boot; systemd units are left alone (they
    are what runs it) and services are not started or restarted (systemd orders them itself).
    """

    def __init__(self, check_mode=False, boot=False, report=None):
        self.check_mode = check_mode
        self.boot = boot
        self.report = report if report is not None else Report()
        self.installed_changes = set()  # engine modules whose installed copy changed in this run

    # ---- commands ------------------------------------------------------------------------
    def run(self, argv, check=True, stdin=None):
        try:
            proc = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  universal_newlines=True, check=False)
        except OSError as exc:
            raise EngineError('%s: %s (is the package installed?)' % (argv[0], exc))
        if check and proc.returncode:
            raise EngineError('%s failed (%d): %s' % (' '.join(argv), proc.returncode,
                                                      (proc.stderr or proc.stdout).strip()))
        return proc

    # ---- the lock: two runs at once on one host are serialised --------------------------------
    @contextlib.contextmanager
    def locked(self, path=None, timeout=LOCK_TIMEOUT):
        """Hold the host's lock around reading the saved contract and applying (not in check mode)."""
        if self.check_mode:
            yield
            return
        path = path or LOCK_FILE
        with open(path, 'a') as handle:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except (IOError, OSError) as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise EngineError('locking %s: %s' % (path, exc))
                    if time.monotonic() > deadline:
                        raise EngineError('another overlay.mesh run (or overlay-mesh.service) holds %s for more than %d s'
                                          % (path, timeout))
                    time.sleep(0.1)
            yield

    def record_apply(self, by, failure=None, agent=None):
        """Note the result of an apply in LAST_APPLY_FILE (not in check mode), with the node agent's state when
        it applied. Best effort: a record that cannot be written must not fail the apply it describes."""
        if self.check_mode:
            return
        record = {'result': 'failed' if failure is not None else 'ok', 'time': round(time.time(), 3), 'by': by,
                  'changes': len(self.report.changes), 'message': str(failure) if failure is not None else ''}
        if agent is None:  # a site run or the boot: the node agent's last word stands (verify's metric reads it)
            with contextlib.suppress(OSError, ValueError, AttributeError):
                agent = json.loads(self.read(LAST_APPLY_FILE) or '{}').get('agent')
        if agent is not None:
            record['agent'] = agent
        with contextlib.suppress(OSError):
            write_atomic(LAST_APPLY_FILE, json.dumps(record, sort_keys=True) + '\n')

    # ---- files ---------------------------------------------------------------------------
    @staticmethod
    def read(path, binary=False):
        try:
            with open(path, 'rb' if binary else 'r') as handle:
                return handle.read()
        except (IOError, OSError) as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return None
            raise EngineError('reading %s: %s' % (path, exc))

    def ensure_file(self, path, content, mode=0o644, listed=True, view=None):
        """Write path atomically when its content or mode differs; True when it (would have) changed.

        mode None: a new file gets 0644, an existing one keeps its mode. listed, view: how the diff
        shows it (Report.file)."""
        binary = isinstance(content, bytes)
        current = self.read(path, binary)
        if mode is None:
            mode = (os.stat(path).st_mode & 0o7777) if current is not None else 0o644
        if current == content:
            old_mode = os.stat(path).st_mode & 0o7777
            if old_mode == mode:
                return False
            self.report.changes.append('updated file %s (mode %04o)' % (path, mode))
            if listed:
                self.report.before.add('file %s (mode %04o)' % (path, old_mode))
                self.report.after.add('file %s (mode %04o)' % (path, mode))
            if not self.check_mode:
                os.chmod(path, mode)
            return True
        self.report.file(path, current, content, listed=listed, view=view)
        if not self.check_mode:
            write_atomic(path, content, mode)
        return True

    def remove(self, path, listed=True):
        """Remove a file, or one of our own directories (OWN_DIRS); True when it (would have) changed."""
        if os.path.isdir(path) and not os.path.islink(path):
            if path not in OWN_DIRS:
                raise EngineError('not removing %s: a directory, and not one of overlay.mesh\'s own' % path)
            self.report.changes.append('removed directory %s' % path)
            self.report.before.add('file %s/' % path)
            if not self.check_mode:
                shutil.rmtree(path)
            return True
        if not os.path.lexists(path):
            return False
        self.report.file(path, '', None, listed=listed)
        if not self.check_mode:
            os.unlink(path)
        return True

    # ---- kernel settings -------------------------------------------------------------------
    def ensure_sysctl(self, key, value):
        """Set /proc/sys/<key> (slash notation: device names may hold dots); False when it cannot be set yet."""
        path = os.path.join('/proc/sys', key)
        obj = {'type': 'sysctl', 'key': key, 'value': value}
        current = self.read(path)
        if current is None:
            if not self.check_mode or self.boot:
                return False
            self.report.object('added', obj)  # the device comes with this run
            return True
        if current.strip() == str(value):
            self.report.unchanged(obj)
            return True
        self.report.object('updated', obj, dict(obj, value=current.strip()))
        if not self.check_mode:
            try:
                with open(path, 'w') as handle:
                    handle.write('%s\n' % value)
            except (IOError, OSError) as exc:
                raise EngineError('setting %s to %s: %s' % (key, value, exc))
        return True

    # ---- systemd ---------------------------------------------------------------------------
    def systemctl(self, *args, **kwargs):
        return self.run(['systemctl'] + list(args), **kwargs)

    def ensure_unit(self, name, content, enabled=True):
        """The unit file, daemon-reload when it changed, and enabled. True when the file changed."""
        path = os.path.join(UNIT_DIR, name)
        changed = self.ensure_file(path, content)
        if self.boot:
            return changed
        if changed and not self.check_mode:
            self.systemctl('daemon-reload')
        if enabled:
            state = self.systemctl('is-enabled', name, check=False).stdout.strip() if os.path.exists(path) else ''
            if state != 'enabled':
                self.report.object('updated', {'type': 'service', 'name': name, 'detail': 'enabled'})
                if not self.check_mode:
                    self.systemctl('enable', '--quiet', name)
        return changed

    def ensure_dropin(self, unit, name, content):
        """A drop-in of ours for another unit (unit.d/name), daemon-reload when it changed."""
        changed = self.ensure_file(os.path.join(UNIT_DIR, unit + '.d', name), content)
        if changed and not self.check_mode and not self.boot:
            self.systemctl('daemon-reload')
        return changed

    def remove_dropin(self, unit, name):
        path = os.path.join(UNIT_DIR, unit + '.d', name)
        if not os.path.exists(path):
            return False
        self.remove(path)
        if not self.check_mode and not self.boot:
            self.systemctl('daemon-reload')
        return True

    def remove_unit(self, name, stop=False):
        path = os.path.join(UNIT_DIR, name)
        if not os.path.exists(path):
            return False
        if not self.boot:
            if stop and self.systemctl('is-active', '--quiet', name, check=False).returncode == 0:
                self.report.object('removed', {'type': 'service', 'name': name, 'detail': 'stopped'})
                if not self.check_mode:
                    self.systemctl('stop', name)
            if self.systemctl('is-enabled', '--quiet', name, check=False).returncode == 0 and not self.check_mode:
                self.systemctl('disable', '--quiet', name)
        self.remove(path)
        if not self.check_mode and not self.boot:
            self.systemctl('daemon-reload')
        return True


def write_atomic(path, content, mode=0o644, prefix='.overlay-mesh-', suffix='', make_dirs=True, sync_dir=False):
    """Replace path atomically: a temporary file in its directory (made when missing, with make_dirs), fsync,
    rename; with sync_dir the directory is synced too, so the rename itself survives a crash."""
    directory = os.path.dirname(path) or '.'
    if make_dirs and not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    handle, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    try:
        with os.fdopen(handle, 'wb' if isinstance(content, bytes) else 'w') as stream:
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    if sync_dir:
        with contextlib.suppress(OSError):
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
