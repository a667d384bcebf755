# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The lease file: a YAML file written and read by this code (a fast canonical reader beside a
safe YAML loader for hand edits), replaced atomically, the last good copy kept (.prev), writers
serialised by a lock file, and format 2's end line that tells a file cut short from a whole one.
Pure logic (no Ansible imports). See docs/leases.md.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import time

import yaml

from ansible_collections.overlay.mesh.plugins.module_utils import _host
from ansible_collections.overlay.mesh.plugins.plugin_utils._lease_pool import LeaseError
from ansible_collections.overlay.mesh.plugins.plugin_utils._lease_records import known_fields, record_order

try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - libyaml missing
    from yaml import SafeLoader as _SafeLoader


class _YamlLoader(_SafeLoader):  # pylint: disable=too-many-ancestors
    """A safe loader that refuses a key written twice (a host with two entries) instead of keeping the last."""


def _construct_unique_mapping(loader, node):
    seen = set()
    for key_node, dummy in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, 'key %r appears twice' % (key,), key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_YamlLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)

LEASE_FILE_NAME = '.overlay-mesh-leases.yml'
# The lease file's format: 2 ends with a line counting its leases (END_LINE), so that a file cut
# short - even exactly at a line end - is told from a whole one. Format 1 files (no such line)
# are still read; the next change writes format 2.
FILE_FORMAT = 2
END_LINE = '# end of leases: %d'
_END_LINE_RE = re.compile(r'^# end of leases: (\d+)$')
_PLAIN_KEY_RE = re.compile(r'^[A-Za-z][A-Za-z0-9_.-]*$')
_YAML_UNSAFE_RE = re.compile('[\x7f-\x9f\u2028\u2029\ufffe\uffff\ud800-\udfff]')
# Words YAML 1.1 would not read back as strings.
_YAML_WORDS = frozenset(('y', 'n', 'yes', 'no', 'on', 'off', 'true', 'false', 'null'))


def _quote(value):
    """A YAML double-quoted scalar (JSON's escapes are YAML's), keeping text readable but escaping
    what a YAML reader would refuse or fold (C1 controls, line and paragraph separators)."""
    return _YAML_UNSAFE_RE.sub(lambda m: '\\u%04x' % ord(m.group()), json.dumps(value, ensure_ascii=False))


def _yaml_key(key):
    if _PLAIN_KEY_RE.fullmatch(key) and key.lower() not in _YAML_WORDS:  # not match: $ also matches before a final newline
        return key
    return _quote(key)


def render_lease_file(config, leases):
    """Human-readable YAML: a header, then one line per host (``host: {subnet: "...", ...}``)."""
    lines = [
        '# overlay.mesh subnet leases: one entry per inventory hostname (see docs/leases.md).',
        '# Written by overlay.mesh.subnet_leases under a lock; a lease is kept until it is released.',
        '# The last line counts the leases (a file cut short is refused): keep it when editing by hand.',
        'format: %d' % FILE_FORMAT,
    ]
    for key, value in config.header().items():
        lines.append('%s: %s' % (key, _quote(value)))
    if not leases:
        lines.append('leases: {}')
    else:
        lines.append('leases:')
        known = known_fields()
        for host in sorted(leases):
            rec = leases[host]
            body = ', '.join('%s: %s' % (key if key in known else _yaml_key(key), _quote(rec[key]))
                             for key in record_order(rec, known) if rec[key] is not None)
            lines.append('  %s: {%s}' % (_yaml_key(host), body))
    lines.append(END_LINE % len(leases))  # a file cut short lacks it, or counts other leases
    return '\n'.join(lines) + '\n'


_LEASE_LINE_RE = re.compile(r'^  ([A-Za-z][A-Za-z0-9_.-]*|"(?:[^"\\]|\\.)*"): \{(.*)\}$')
_LEASE_FIELD_RE = re.compile(r'([a-z_0-9]+): ("(?:[^"\\]|\\.)*")(?:, |$)')
_LEASES_KEY_RE = re.compile(r'^leases:', re.M)
_HEADER_LINE_RE = re.compile(r'^(?:#.*|format: \d+|(?:ipv6_)?network: "[^"\\]*"|(?:ipv6_)?subnet_len: \d+|leases:(?: \{\})?|)$')


def _parse_canonical(text):
    """(format, leases, duplicates) of a file in the exact layout render_lease_file writes;
    leases is None when the text is laid out otherwise (then it is read as YAML).

    A fast path (a YAML parser takes about 0.4 s for 10 000 hosts; this about 0.03 s) that
    also catches a host written twice, which a YAML loader would silently collapse.
    """
    leases = {}
    duplicates = []
    version = None
    for line in text.split('\n'):
        match = _LEASE_LINE_RE.match(line)
        if match is None:
            if (_HEADER_LINE_RE.match(line) and (not leases or not line)) or _END_LINE_RE.match(line):
                if line.startswith('format: '):
                    version = int(line[8:])
                continue
            return None, None, []
        key, body = match.groups()
        host = json.loads(key) if key.startswith('"') else key
        record = {}
        pos = 0
        for field in _LEASE_FIELD_RE.finditer(body):
            if field.start() != pos:
                return None, None, []
            value = field.group(2)
            record[field.group(1)] = json.loads(value) if '\\' in value else value[1:-1]
            pos = field.end()
        if pos != len(body) or (not record and body):
            return None, None, []
        if host in leases:
            duplicates.append(host)
        leases[host] = record
    return version, leases, duplicates


def _check_format(version, path):
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version > FILE_FORMAT):
        raise LeaseError(['%s: format %r unknown: this overlay.mesh reads formats 1 to %d (was the file written by a newer one?)'
                          % (path, version, FILE_FORMAT)])


def _end_count(text):
    """The number of leases the file's end line counts, None without one (the last non-empty line)."""
    last = text.rstrip().rpartition('\n')[2].strip()
    match = _END_LINE_RE.match(last)
    return int(match.group(1)) if match else None


def _check_whole(text, version, leases, path):
    """A format-2 file must end with its end line, counting the leases it holds: else it was cut short."""
    count = _end_count(text)
    if version is not None and version >= 2 and count is None:
        raise LeaseError(['%s: damaged: it does not end with its "%s" line (written last), so it was cut short and '
                          'leases may be missing' % (path, END_LINE % len(leases))])
    if count is not None and count != len(leases):
        raise LeaseError(['%s: damaged: its end line counts %d leases but it holds %d (cut short, or a hand edit added '
                          'or removed entries without correcting that line)' % (path, count, len(leases))])


def parse_lease_file(text, path='lease file'):
    """The ``leases`` mapping (host -> record) of a lease file's text; LeaseError when unreadable or
    damaged: empty (0 bytes: the writer never writes that), or cut short (see FILE_FORMAT)."""
    if not text.strip():
        raise LeaseError(['%s: damaged: the file is empty (%d bytes); overlay.mesh never writes an empty lease file'
                          % (path, len(text.encode('utf-8')))])
    version, leases, duplicates = _parse_canonical(text)
    if duplicates:
        raise LeaseError(['%s: host %s has two entries' % (path, host) for host in sorted(set(duplicates))])
    if leases is not None:
        _check_format(version, path)
        if not _LEASES_KEY_RE.search(text):
            raise LeaseError(['%s: damaged: it has no "leases" key (cut short?)' % path])
        _check_whole(text, version, leases, path)
        return leases
    try:
        data = yaml.load(text, Loader=_YamlLoader)  # nosec - a safe loader
    except yaml.YAMLError as exc:
        damaged = 'damaged (cut short? it does not end with its end line): ' if _end_count(text) is None else ''
        raise LeaseError(['%s: %snot valid YAML: %s' % (path, damaged, exc)]) from None
    if data is None:
        raise LeaseError(['%s: damaged: it holds nothing but comments (no "leases" key)' % path])
    if not isinstance(data, dict):
        raise LeaseError(['%s: expected a mapping with a "leases" key' % path])
    if 'leases' not in data:
        raise LeaseError(['%s: damaged: it has no "leases" key (cut short?)' % path])
    _check_format(data.get('format'), path)
    leases = data.get('leases')
    if leases is None:
        leases = {}
    if not isinstance(leases, dict):
        raise LeaseError(['%s: "leases" must map inventory hostnames to records' % path])
    _check_whole(text, data.get('format'), leases, path)
    return {str(host): rec for host, rec in leases.items()}


def read_lease_file(path):
    """(text, leases) of the lease file; ('', {}) when it does not exist. LeaseError when it is
    unreadable or damaged; then the message says how to restore the last good copy (prev_path)."""
    try:
        with open(path, encoding='utf-8') as handle:
            text = handle.read()
    except FileNotFoundError:
        return '', {}
    except UnicodeDecodeError as exc:
        raise LeaseError(['%s: damaged: not UTF-8 text (%s)' % (path, exc)] + [restore_hint(path)]) from None
    try:
        return text, parse_lease_file(text, path)
    except LeaseError as exc:
        raise LeaseError(exc.problems + [restore_hint(path)]) from None


def prev_path(path):
    """The last good copy, kept before each replace: ``.<name>.prev`` beside the lease file (hidden, as the lock)."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, '.%s.prev' % name.lstrip('.'))


def restore_hint(path):
    """How to get the leases back after the file at ``path`` was damaged; nothing was changed."""
    prev = prev_path(path)
    if os.path.exists(prev):
        return ('nothing was changed. The lease file as it was before its last change is %s: check it and restore it '
                '(cp %s %s), then run again' % (prev, prev, path))
    return ('nothing was changed. No earlier copy (%s) exists: restore %s from version control or a backup; or, '
            'with every host of the group in the play, move it away to rebuild it from the hosts\' own records' % (prev, path))


def write_lease_file(path, text, mode=None):
    """Replace ``path`` atomically (temporary file in the same directory, fsync, rename, the directory synced)."""
    path = os.path.abspath(path)
    if mode is None:
        try:
            mode = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o644
    _host.write_atomic(path, text.encode('utf-8'), mode, prefix='.%s.' % os.path.basename(path), suffix='.tmp',
                       make_dirs=False, sync_dir=True)


def replace_lease_file(path, old_text, new_text):
    """Write ``new_text`` over a lease file that held ``old_text``, keeping that as the last good copy first
    (prev_path: read_lease_file points to it when the file is damaged later)."""
    if old_text:
        write_lease_file(prev_path(path), old_text, mode=os.stat(path).st_mode & 0o7777)
    write_lease_file(path, new_text)


def lock_path(path):
    """The sidecar lock file: ``.<name>.lock`` beside the lease file (hidden, so an inventory directory ignores it)."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, '.%s.lock' % name.lstrip('.'))


@contextlib.contextmanager
def locked(path, timeout=60.0, poll=0.05):
    """Hold an exclusive fcntl lock on the lease file's sidecar lock file."""
    fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise LeaseError(['%s: still locked by another run after %ss (lock file %s)'
                                      % (path, timeout, lock_path(path))]) from None
                time.sleep(poll)
        yield
    finally:
        os.close(fd)
