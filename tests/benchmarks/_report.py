# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How a benchmark hands its figures to `make bench` (tests/benchmarks/run_all.py).

Each figure is printed as one line, `FIGURE {json}`: its value, the reference measured in the
same run, the ratio and its target. `run_all.py` collects these lines into one table; a bench run
alone prints them too, so its output always says how each figure was judged.  A figure with no
reference (an absolute target such as a memory ceiling) has `reference` None and is judged on its
value.  Speed is reported, never asserted: a MISS does not fail the bench.
"""

from __future__ import annotations

import json

PREFIX = 'FIGURE '


def figure(bench, name, value, unit, target, reference=None, reference_name='', higher_is_better=False, absolute=False):
    """Print one figure and return its record. `target` bounds the ratio to the reference, or the value itself
    when there is no reference or the target is `absolute` (the reference is then shown for comparison).
    A target of None: the figure is reported for information (result INFO), judged against nothing."""
    ratio = value / reference if reference else None
    judged = value if absolute or ratio is None else ratio
    if target is None:
        shown, result = '', 'INFO'
    else:
        ok = judged >= target if higher_is_better else judged <= target
        shown = ('>= ' if higher_is_better else '<= ') + ('%g' % target) + (' ' + unit if judged is value else '×')
        result = 'PASS' if ok else 'MISS'
    record = {
        'bench': bench, 'figure': name, 'value': round(value, 4), 'unit': unit,
        'reference': None if reference is None else round(reference, 4), 'reference_name': reference_name,
        'ratio': None if ratio is None else round(ratio, 3), 'target': shown, 'result': result,
    }
    print(PREFIX + json.dumps(record, sort_keys=True), flush=True)
    return record


def parse(lines):
    """The figures among a bench's output lines."""
    return [json.loads(line[len(PREFIX):]) for line in lines if line.startswith(PREFIX)]
