# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every benchmark still runs (make test): each bench at its smallest size (--smoke) must run to
its SUMMARY line and print its figures. Only that: the figures are speed, and speed is reported by
`make bench`, never asserted by a test."""

from __future__ import annotations

import pytest

import _report as report
import run_all


@pytest.mark.parametrize('script', [script for _name, script in run_all.BENCHES])
def test_bench_runs_to_its_summary(script):
    status, lines, _seconds = run_all.run_bench(script, smoke=True)
    tail = '\n'.join(lines[-30:])
    assert status == 0, 'bench %s --smoke exited %d:\n%s' % (script, status, tail)
    assert run_all.ran_to_summary(lines), 'bench %s --smoke did not end with its SUMMARY line:\n%s' % (script, tail)
    assert report.parse(lines), 'bench %s --smoke printed no FIGURE line:\n%s' % (script, tail)
