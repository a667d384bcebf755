# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's naming and addressing rules, without booting anything."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lab"))
import overlay_lab  # noqa: E402  pylint: disable=wrong-import-position


@pytest.mark.parametrize("name", ["demo", "mol-default", "a", "x" * 20])
def test_lab_resources_carry_the_lab_name(name):
    lab = overlay_lab.Lab(name)
    subnet = lab.subnet()
    host = lab.plan_host(1, subnet)
    assert name in lab.switch_netns and name in host["netns"] and name in str(lab.dir)
    assert subnet.subnet_of(overlay_lab.UNDERLAY_RANGE)
    assert ipaddress.ip_address(host["address"]) in subnet


@pytest.mark.parametrize("name", ["", "Demo", "1lab", "a" * 21, "../etc", "a b"])
def test_bad_lab_names_are_refused(name):
    with pytest.raises(overlay_lab.LabError, match="lab name"):
        overlay_lab.Lab(name)


def test_host_macs_are_unicast_locally_administered_and_stable():
    lab = overlay_lab.Lab("demo")
    subnet = lab.subnet()
    macs = [lab.plan_host(i, subnet)["mac"] for i in range(1, 201)]
    assert len(set(macs)) == 200
    for mac in macs:
        first = int(mac.split(":")[0], 16)
        assert first & 1 == 0 and first & 2 == 2
    assert macs == [overlay_lab.Lab("demo").plan_host(i, subnet)["mac"] for i in range(1, 201)]


def test_addresses_fit_in_the_lab_subnet_and_skip_the_switch():
    lab = overlay_lab.Lab("demo")
    subnet = lab.subnet()
    addresses = {lab.plan_host(i, subnet)["address"] for i in range(1, 201)}
    assert len(addresses) == 200
    assert str(subnet.network_address + 1) not in addresses
    assert all(ipaddress.ip_address(a) in subnet and ipaddress.ip_address(a) != subnet.broadcast_address for a in addresses)


def test_mirror_comes_from_the_environment_first(monkeypatch):
    monkeypatch.setenv("OVERLAY_LAB_MIRROR", "http://mirror.invalid/debian")
    assert overlay_lab.debian_mirror() == "http://mirror.invalid/debian"


def test_segments_are_consecutive_subnets_and_hosts_alternate_between_them():
    lab = overlay_lab.Lab("routed")
    subnets = lab.segment_subnets(2)
    assert subnets[0] == lab.subnet() and len(set(subnets)) == 2
    assert all(net.subnet_of(overlay_lab.UNDERLAY_RANGE) and net.prefixlen == 24 for net in subnets)
    hosts = [lab.plan_host(index, subnets) for index in range(1, 5)]
    assert [host["segment"] for host in hosts] == [0, 1, 0, 1]
    assert all(overlay_lab.ipaddress.ip_address(host["address"]) in subnets[host["segment"]] for host in hosts)
    assert len({host["address"].rsplit(".", 1)[1] for host in hosts}) == 4  # a host keeps its number on any segment
