# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab itself, on real hosts: isolation between labs, complete teardown, root namespace untouched."""

from __future__ import annotations

import concurrent.futures
import ipaddress
import json
import os
import time
from pathlib import Path

import pytest

import overlay_lab
import rootns
from conftest import needs_root

pytestmark = needs_root


def _exec(lab, host, *argv):
    return lab.exec(host, list(argv))


def test_a_lab_counts_only_its_own_leftovers_not_a_lab_whose_name_contains_its_name():
    # CI once failed here: lab "t-nat" took a stale "ovl-mol-nat-nat" for its own by substring.
    assert rootns.owned_by("ovl-t-nat-nat", "t-nat") and rootns.owned_by("ovl-t-nat-node2", "t-nat")
    assert not rootns.owned_by("ovl-mol-nat-nat", "t-nat")
    assert not rootns.owned_by("ovl-t-nat-nat", "t")  # lab "t"'s router is ovl-t-nat, not ovl-t-nat-nat
    assert rootns.owned_by("ovl-t-nat", "t")


def test_two_labs_run_side_by_side_without_meeting(make_lab):
    before = rootns.snapshot()
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        alpha, beta = pool.map(lambda name: make_lab(name, 3), ["t-alpha", "t-beta"])
    print(f"two 3-host labs up in {time.monotonic() - started:.1f} s")
    state_a, state_b = alpha.load(), beta.load()

    # Each lab's hosts reach each other; no host reaches the other lab's hosts.
    for lab, own, other in ((alpha, state_a, state_b), (beta, state_b, state_a)):
        for host in own["hosts"].values():
            assert ipaddress.ip_address(host["address"]) in overlay_lab.UNDERLAY_RANGE
            assert _exec(lab, "node1", "ping", "-c1", "-W1", host["address"]).returncode == 0 or host["name"] == "node1"
        for host in other["hosts"].values():
            if host["address"] not in {h["address"] for h in own["hosts"].values()}:
                assert _exec(lab, "node1", "ping", "-c1", "-W1", host["address"]).returncode != 0

    # A link made in one lab's node1 is not seen by the other lab's node1.
    assert _exec(alpha, "node1", "ip", "link", "add", "only-alpha", "type", "bridge").returncode == 0
    assert _exec(beta, "node1", "ip", "link", "show", "only-alpha").returncode != 0

    # Taking one lab down leaves the other running and leaves nothing of itself behind.
    alpha.down(log=lambda *_: None)
    leftovers = rootns.lab_leftovers("t-alpha")
    assert not leftovers
    assert not Path(alpha.dir).exists()
    assert all(beta.host_running(h) for h in beta.load()["hosts"].values())
    assert _exec(beta, "node1", "ping", "-c1", "-W1", state_b["hosts"]["node3"]["address"]).returncode == 0

    beta.down(log=lambda *_: None)
    after = rootns.snapshot()
    for key in before:
        if key != "lab_leftovers":
            assert before[key] == after[key], f"root namespace {key} changed"
    assert rootns.lab_leftovers("t-beta") == []


def test_hosts_are_distinct_and_reboot_is_real(make_lab):
    lab = make_lab("t-reboot", 2)
    ids = {_exec(lab, h, "cat", "/etc/machine-id").stdout for h in ("node1", "node2")}
    assert len(ids) == 2, "hosts must not share a machine-id"
    assert _exec(lab, "node1", "hostname").stdout.strip() == "node1"
    assert _exec(lab, "node1", "python3", "-c", "import pyroute2, sys; sys.exit(0)").returncode == 0

    link_before = json.loads(_exec(lab, "node2", "ip", "-j", "link", "show", "eth0").stdout)[0]
    assert _exec(lab, "node2", "ip", "link", "add", "gone-after-boot", "type", "bridge").returncode == 0
    assert _exec(lab, "node2", "sh", "-c", "echo kept > /etc/kept-after-boot").returncode == 0
    old_leader = lab.leader_pid(lab.load()["hosts"]["node2"])

    lab.reboot("node2", log=lambda *_: None)

    assert lab.leader_pid(lab.load()["hosts"]["node2"]) != old_leader
    assert _exec(lab, "node2", "ip", "link", "show", "gone-after-boot").returncode != 0
    assert _exec(lab, "node2", "cat", "/etc/kept-after-boot").stdout == "kept\n"
    link_after = json.loads(_exec(lab, "node2", "ip", "-j", "link", "show", "eth0").stdout)[0]
    assert link_after["address"] == link_before["address"]
    assert _exec(lab, "node2", "systemctl", "is-system-running").stdout.strip() == "running"
    assert _exec(lab, "node1", "ping", "-c1", "-W1", lab.load()["hosts"]["node2"]["address"]).returncode == 0


def _udp_source(lab, receiver, sender, destination, port=8472):
    """Send one UDP datagram from sender to destination; return the source address receiver saw."""
    listen = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('', %d)); s.settimeout(5); "
              "open('/run/udp-ready', 'w').close(); print(s.recvfrom(64)[1][0])" % port)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        got = pool.submit(_exec, lab, receiver, "python3", "-c", listen)
        deadline = time.monotonic() + 5
        while _exec(lab, receiver, "test", "-e", "/run/udp-ready").returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        _exec(lab, receiver, "rm", "-f", "/run/udp-ready")
        sent = _exec(lab, sender, "python3", "-c", "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
                     ".sendto(b'x', ('%s', %d))" % (destination, port))
        assert sent.returncode == 0, sent.stderr
        return got.result().stdout.strip()


def test_hosts_behind_a_1to1_nat_are_reached_at_their_public_addresses_which_remap_moves():
    before = rootns.snapshot()
    name = os.environ.get("OVERLAY_MESH_LAB_PREFIX", "") + "t-nat"
    lab = overlay_lab.Lab(name)
    try:
        lab.up(3, log=lambda *_: None, nat_hosts=2)
        state = lab.load()
        node1, node2, node3 = (state["hosts"][n] for n in ("node1", "node2", "node3"))
        private = ipaddress.ip_network(state["segments"][1]["subnet"])
        assert node1.get("public_address") is None and node1["segment"] == 0
        assert ipaddress.ip_address(node2["address"]) in private and node2["segment"] == 1
        inventory = lab.inventory_path.read_text()
        assert f"overlay_lab_public_address: {node2['public_address']}" in inventory and "behind_nat:" in inventory

        # From the lab's segment a private host is reached at its public address only, and what it
        # sends arrives from that address; both ways for UDP (the overlay's tunnels).
        assert _exec(lab, "node1", "ping", "-c1", "-W1", node2["public_address"]).returncode == 0
        assert _exec(lab, "node1", "ping", "-c1", "-W1", node2["address"]).returncode != 0
        assert _udp_source(lab, "node1", "node2", node1["address"]) == node2["public_address"]
        assert _udp_source(lab, "node2", "node1", node2["public_address"]) == node1["address"]
        # two private hosts reach each other at their public addresses too (hairpin), seen from their public ones
        assert _udp_source(lab, "node3", "node2", node3["public_address"]) == node2["public_address"]

        # remap: the old public address is dead at once, the new one carries both ways
        old = node2["public_address"]
        new = lab.remap("node2", log=lambda *_: None)["public_address"]
        assert new != old and f"overlay_lab_public_address: {new}" in lab.inventory_path.read_text()
        assert _exec(lab, "node1", "ping", "-c1", "-W1", old).returncode != 0
        assert _udp_source(lab, "node1", "node2", node1["address"]) == new
        assert _udp_source(lab, "node2", "node1", new) == node1["address"]
        with pytest.raises(overlay_lab.LabError, match="not behind the NAT"):
            lab.remap("node1", log=lambda *_: None)
        with pytest.raises(overlay_lab.LabError, match="is behind the NAT"):
            lab.move("node2", 0, log=lambda *_: None)

        # a reboot keeps a private host behind the NAT at its public address
        lab.reboot("node3", log=lambda *_: None)
        assert _udp_source(lab, "node1", "node3", node1["address"]) == node3["public_address"]
    finally:
        lab.down(log=lambda *_: None)
    after = rootns.snapshot()
    for key in before:
        if key != "lab_leftovers":
            assert before[key] == after[key], f"root namespace {key} changed"
    assert rootns.lab_leftovers(name) == []
