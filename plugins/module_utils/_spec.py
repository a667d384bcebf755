# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""A small typed validator for plain option specs, usable without Ansible.

Specs are written like Ansible argument specs (type, default, required, choices, elements,
options) plus ``check``: a function (value, what) -> normalised value that raises
ValidationError. The node contract is validated with it on the controller, in the node module
and at boot, so all three agree on every value and its type: an integer stays an integer
whatever rendered it ("1450" from an older ansible-core becomes 1450, True is not an integer).

Every problem is collected with its path (``backend.vni``), so one run reports all of them.
"""

from __future__ import annotations

from ansible_collections.overlay.mesh.plugins.module_utils._netlink_validate import ValidationError

_TRUE = ('true', 'yes', 'on', '1', 'y')
_FALSE = ('false', 'no', 'off', '0', 'n')


class SpecError(ValidationError):
    """One or more values refused; ``problems`` is a list of (path, message)."""

    def __init__(self, problems):
        self.problems = list(problems)
        super(SpecError, self).__init__('; '.join('%s: %s' % (path, message) if path else message
                                                  for path, message in self.problems))


def to_int(value):
    if isinstance(value, bool):
        raise ValueError('must be an integer, got %r' % (value,))
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip('-').isdigit():
        return int(value.strip())
    raise ValueError('must be an integer, got %r' % (value,))


def to_bool(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError('must be a boolean (true/false), got %r' % (value,))


def to_str(value):
    if isinstance(value, (dict, list, tuple, bool)) or value is None:
        raise ValueError('must be a string, got %r' % (value,))
    return str(value)


_CONVERTERS = {'int': to_int, 'bool': to_bool, 'str': to_str, 'path': to_str, 'raw': lambda value: value}


class Validator(object):
    """Validate a mapping against a spec; ``problems`` collects (path, message)."""

    def __init__(self):
        self.problems = []

    def problem(self, path, message):
        self.problems.append((path, message))

    def mapping(self, value, spec, path='', allow_unknown=False):
        """The mapping with defaults filled in and every value converted; None on a wrong type."""
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.problem(path, 'must be a mapping, got %r' % (value,))
            return None
        result = {}
        if not allow_unknown:
            unknown = sorted(set(value) - set(spec))
            for key in unknown:
                self.problem(_join(path, key), 'unknown option (known: %s)' % ', '.join(sorted(spec)))
        for key, option in spec.items():
            result[key] = self.option(value.get(key), option, _join(path, key))
        if allow_unknown:
            for key in set(value) - set(spec):
                result[key] = value[key]
        return result

    def option(self, value, option, path):
        if value is None:
            if option.get('required'):
                self.problem(path, 'is required')
                return None
            default = option.get('default')
            if default is None:
                if option.get('type') == 'dict' and 'options' in option and 'default' not in option:
                    value = {}  # a sub-mapping with defaults of its own
                else:
                    return None
            else:
                value = _copy(default)
        kind = option.get('type', 'raw')
        if kind == 'dict':
            if 'options' in option:
                value = self.mapping(value, option['options'], path)
            elif not isinstance(value, dict):
                self.problem(path, 'must be a mapping, got %r' % (value,))
                return None
        elif kind == 'list':
            value = self._list(value, option, path)
        else:
            try:
                value = _CONVERTERS[kind](value)
            except ValueError as exc:
                self.problem(path, str(exc))
                return None
        if value is None:
            return None
        if 'choices' in option and value not in option['choices']:
            self.problem(path, '%r is not one of %s' % (value, ', '.join(str(c) for c in option['choices'])))
            return None
        check = option.get('check')
        if check is not None:
            try:
                value = check(value, path)
            except ValidationError as exc:
                self.problem(path, _without_prefix(str(exc), path))
                return None
        return value

    def _list(self, value, option, path):
        if isinstance(value, (str, dict)) or not isinstance(value, (list, tuple)):
            self.problem(path, 'must be a list, got %r' % (value,))
            return None
        elements = option.get('elements', 'raw')
        result = []
        for index, item in enumerate(value):
            item_path = '%s[%d]' % (path, index)
            if elements == 'dict' and 'options' in option:
                item = self.mapping(item, option['options'], item_path)
            elif elements == 'dict':
                if not isinstance(item, dict):
                    self.problem(item_path, 'must be a mapping, got %r' % (item,))
                    item = None
            else:
                item = self.option(item, {'type': elements}, item_path)
            result.append(item)
        return result

    def raise_problems(self):
        if self.problems:
            raise SpecError(self.problems)


def validate(value, spec, path='', allow_unknown=False):
    """The normalised mapping, or SpecError listing every problem."""
    validator = Validator()
    result = validator.mapping(value, spec, path, allow_unknown)
    validator.raise_problems()
    return result


def ansible_argument_spec(spec):
    """The Ansible argument spec of a plain spec (checks and spec-only keys dropped)."""
    result = {}
    for key, option in spec.items():
        converted = dict((k, _copy(v)) for k, v in option.items() if k in ('type', 'default', 'required', 'choices', 'elements'))
        if 'options' in option:
            converted['options'] = ansible_argument_spec(option['options'])
        result[key] = converted
    return result


def _join(path, key):
    return '%s.%s' % (path, key) if path else key


def _without_prefix(message, path):
    return message[len(path) + 1:].lstrip() if message.startswith(path + ' ') else message


def _copy(value):
    if isinstance(value, dict):
        return dict((k, _copy(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
