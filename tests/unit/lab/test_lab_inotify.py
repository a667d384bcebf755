# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the lab sizes fs.inotify.max_user_instances / max_user_watches, without booting anything."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lab"))
import overlay_lab  # noqa: E402  pylint: disable=wrong-import-position

INSTANCES = "max_user_instances"
WATCHES = "max_user_watches"
PER_HOST = overlay_lab.INOTIFY_PER_HOST[INSTANCES]
SPARE = overlay_lab.INOTIFY_SPARE[INSTANCES]


def test_a_lab_needs_its_hosts_share_plus_the_machines_use_plus_spare():
    assert overlay_lab.inotify_need(INSTANCES, {"bench": (16, 0)}, machine_usage=5) == 5 + 16 * PER_HOST + SPARE


def test_labs_side_by_side_add_up():
    labs = {"bench": (16, 0), "dev": (3, 3 * PER_HOST), "mol-default": (2, 2 * PER_HOST)}
    assert overlay_lab.inotify_need(INSTANCES, labs, machine_usage=0) == 21 * PER_HOST + SPARE


def test_a_lab_holding_more_than_its_share_counts_with_what_it_holds():
    assert overlay_lab.inotify_need(INSTANCES, {"dev": (3, 40)}, machine_usage=0) == 40 + SPARE
    assert overlay_lab.inotify_need(INSTANCES, {"dev": (3, 1)}, machine_usage=0) == 3 * PER_HOST + SPARE


def test_watches_use_their_own_figures():
    need = overlay_lab.inotify_need(WATCHES, {"bench": (16, 0)}, machine_usage=100)
    assert need == 100 + 16 * overlay_lab.INOTIFY_PER_HOST[WATCHES] + overlay_lab.INOTIFY_SPARE[WATCHES]


@pytest.mark.parametrize("limit, need, expected", [
    (128, 128, None),   # exactly enough
    (128, 100, None),
    (1024, 160, None),  # never lowered
    (128, 129, 192),    # rounded up to a multiple of the step
    (128, 160, 192),
    (128, 192, 192),
    (128, 193, 256),
])
def test_a_limit_is_raised_only_when_too_low_and_rounded_up(limit, need, expected):
    assert overlay_lab.inotify_raise_to(limit, need, 64) == expected


def test_sixteen_hosts_do_not_fit_the_debian_default_of_128():
    need = overlay_lab.inotify_need(INSTANCES, {"bench": (16, 0)}, machine_usage=0)
    assert overlay_lab.inotify_raise_to(128, need, overlay_lab.INOTIFY_STEP[INSTANCES]) is not None
    need = overlay_lab.inotify_need(INSTANCES, {"bench": (8, 0)}, machine_usage=0)
    assert overlay_lab.inotify_raise_to(128, need, overlay_lab.INOTIFY_STEP[INSTANCES]) is None


def _fake_sysctls(tmp_path, monkeypatch, instances, watches, writable=True):
    (tmp_path / INSTANCES).write_text("%d\n" % instances)
    (tmp_path / WATCHES).write_text("%d\n" % watches)
    if not writable:  # root may write a read-only file: refuse the write itself
        monkeypatch.setattr(Path, "write_text", _refuse)
    monkeypatch.setattr(overlay_lab, "INOTIFY_SYSCTL_DIR", tmp_path)
    monkeypatch.setattr(overlay_lab, "inotify_usage", lambda machines: ({INSTANCES: 4, WATCHES: 50}, {}))


def _refuse(*args, **kwargs):
    raise PermissionError("read-only")


def _states(**hosts):
    return {name: {"hosts": {"node%d" % i: {"machine": "ovl-%s-node%d" % (name, i)} for i in range(1, count + 1)}}
            for name, count in hosts.items()}


def test_too_low_a_limit_is_raised_with_one_line_saying_why(tmp_path, monkeypatch):
    _fake_sysctls(tmp_path, monkeypatch, 128, 100000)
    lines = []
    overlay_lab.ensure_inotify_limits(_states(bench=16, dev=3), "lab bench boots 16 hosts", lines.append)
    need = 4 + 19 * PER_HOST + SPARE
    assert int((tmp_path / INSTANCES).read_text()) == overlay_lab.inotify_raise_to(128, need, 64)
    assert int((tmp_path / WATCHES).read_text()) == 100000
    assert len(lines) == 1
    assert "fs.inotify.max_user_instances from 128 to" in lines[0] and "lab bench boots 16 hosts" in lines[0] and "= %d" % need in lines[0]


def test_a_limit_high_enough_is_left_alone(tmp_path, monkeypatch):
    _fake_sysctls(tmp_path, monkeypatch, 4096, 100000)
    lines = []
    overlay_lab.ensure_inotify_limits(_states(bench=16), "lab bench boots 16 hosts", lines.append)
    assert lines == [] and (tmp_path / INSTANCES).read_text() == "4096\n"


def test_a_limit_that_cannot_be_raised_fails_naming_the_sysctl_and_the_value(tmp_path, monkeypatch):
    _fake_sysctls(tmp_path, monkeypatch, 128, 100000, writable=False)
    with pytest.raises(overlay_lab.LabError, match=r"sysctl -w fs\.inotify\.max_user_instances=192"):
        overlay_lab.ensure_inotify_limits(_states(bench=16), "lab bench boots 16 hosts", print)
