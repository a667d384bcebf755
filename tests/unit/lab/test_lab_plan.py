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


def _nat_state(name="natlab", count=4, nat_hosts=2):
    """The state `up --nat-hosts` plans, without booting anything."""
    lab = overlay_lab.Lab(name)
    subnet = lab.subnet()
    state = {"subnet": str(subnet), "gateway": str(subnet.network_address + 1), "hosts": {},
             "segments": [{"subnet": str(subnet), "gateway": str(subnet.network_address + 1), "bridge": "underlay"}]}
    lab.plan_nat(state)
    for index in range(1, count + 1):
        host = lab.plan_nat_host(index, state) if index > count - nat_hosts else lab.plan_host(index, subnet)
        state["hosts"][host["name"]] = host
    return lab, state


def test_nat_hosts_sit_on_a_private_segment_with_public_addresses_on_the_labs():
    lab, state = _nat_state()
    public, private = (ipaddress.ip_network(segment["subnet"]) for segment in state["segments"])
    assert private == lab.segment_subnets(2)[1] and private.subnet_of(overlay_lab.UNDERLAY_RANGE)
    assert lab.routed_segments(state) == state["segments"][:1] and state["segments"][1]["nat"]
    assert state["nat_netns"] == "ovl-natlab-nat"
    hosts = state["hosts"]
    assert [hosts[name].get("public_address") for name in ("node1", "node2")] == [None, None]
    for name in ("node3", "node4"):
        host = hosts[name]
        assert host["segment"] == 1 and ipaddress.ip_address(host["address"]) in private
        assert ipaddress.ip_address(host["public_address"]) in public
    everything = [h["address"] for h in hosts.values()] + [hosts["node3"]["public_address"], hosts["node4"]["public_address"]]
    everything += [state["gateway"], state["nat_router_address"]]
    assert len(set(everything)) == len(everything)


def test_nat_rules_rewrite_both_ways_statelessly_and_replace_the_whole_table():
    _lab, state = _nat_state()
    rules = overlay_lab.Lab.nat_rules(state)
    node3 = state["hosts"]["node3"]
    assert f"ip daddr {node3['public_address']} ip daddr set {node3['address']}" in rules
    assert f"ip saddr {node3['address']} ip saddr set {node3['public_address']}" in rules
    assert rules.startswith(f"table ip {overlay_lab.NAT_TABLE} {{}}\ndelete table ip {overlay_lab.NAT_TABLE}\n")
    assert " ct " not in rules and "snat" not in rules.replace("priority srcnat", "") and "dnat" not in rules
    assert state["hosts"]["node1"]["address"] not in rules


def test_remap_picks_the_next_free_public_address_and_refuses_taken_or_foreign_ones():
    lab, state = _nat_state()
    node3, node4 = state["hosts"]["node3"], state["hosts"]["node4"]
    new = lab.next_public_address(state, node3["public_address"])
    assert new not in lab.taken_addresses(state) and ipaddress.ip_address(new) in ipaddress.ip_network(state["subnet"])
    lab.check_public_address(state, "node3", new)
    lab.check_public_address(state, "node3", node3["public_address"])  # its own is not "taken"
    for bad, why in ((node4["public_address"], "taken"), (state["hosts"]["node1"]["address"], "taken"), ("10.0.0.1", "an address of"),
                     (state["gateway"], "taken"), ("nonsense", "an address of")):
        with pytest.raises(overlay_lab.LabError, match=why):
            lab.check_public_address(state, "node3", bad)


@pytest.mark.parametrize("args, message", [
    ((5, 4, 1, "ipv4"), "0 to --hosts"), ((-1, 4, 1, "ipv4"), "0 to --hosts"),
    ((1, 4, 2, "ipv4"), "one segment"), ((1, 4, 1, "dual"), "--underlay ipv4"),
    ((1, 200, 1, "ipv4"), f"at most {overlay_lab.NAT_MAX_HOSTS} hosts"),
])
def test_bad_nat_hosts_are_refused(args, message):
    with pytest.raises(overlay_lab.LabError, match=message):
        overlay_lab.check_nat_hosts(*args)
    overlay_lab.check_nat_hosts(0, *args[1:])  # no NAT: anything goes
