# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Snapshot the machine's root network namespace, and later prove nothing in it changed.

    rootns.py snapshot FILE   # before the tests
    rootns.py compare FILE    # after: exits 1 and prints the difference if links, addresses,
                              # routes or rules differ, or if a lab namespace, process or directory is left
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import overlay_lab  # noqa: E402  pylint: disable=wrong-import-position

# Counters and timers change by themselves; everything else about a link must stay as it was.
VOLATILE_KEYS = {"stats", "stats64", "txqlen", "valid_life_time", "preferred_life_time", "operstate", "linkmode", "expires", "used", "age"}


def _ip_json(*args):
    out = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=True).stdout
    return json.loads(out or "[]")


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in sorted(value.items()) if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def snapshot() -> dict:
    """Everything about the root namespace's network that a lab could have touched."""
    return {
        "links": sorted((_strip(link) for link in _ip_json("-d", "link", "show")), key=lambda link: link["ifname"]),
        "addresses": sorted((_strip(a) for a in _ip_json("addr", "show")), key=lambda a: a["ifname"]),
        "routes4": _strip(_ip_json("-4", "route", "show", "table", "all")),
        "routes6": _strip(_ip_json("-6", "route", "show", "table", "all")),
        "rules4": _strip(_ip_json("-4", "rule", "show")),
        "rules6": _strip(_ip_json("-6", "rule", "show")),
        # Labs already running before the tests (a demo, say) are not the tests' to remove.
        "lab_leftovers": lab_leftovers(),
    }


def owned_by(resource: str, lab: str) -> bool:
    """Whether a namespace, machine or cgroup name is lab `lab`'s own: ovl-<lab>-<host>, where host
    names have no '-'. A substring test is not enough: lab "t-nat"'s names are inside "ovl-mol-nat-nat"."""
    prefix = f"ovl-{lab}-"
    return resource.startswith(prefix) and "-" not in resource[len(prefix):]


def lab_leftovers(lab: str | None = None) -> list[str]:
    """Namespaces, state and processes of any lab, or of lab `lab` only: after `make test` none may remain.
    Another lab running beside the tests (a demo, a second checkout) is never counted against one lab."""
    def wanted(resource):
        return lab is None or owned_by(resource, lab)

    netns = sorted(Path("/run/netns").glob("ovl-*")) if Path("/run/netns").is_dir() else []
    left = [f"network namespace {ns.name}" for ns in netns if wanted(ns.name)]
    left += [f"lab {name} ({overlay_lab.LAB_ROOT / name})" for name in overlay_lab.list_labs() if lab in (None, name)]
    left += [f"cgroup {cgroup}" for mount in overlay_lab.cgroup_hierarchies()
             for cgroup in sorted(Path(mount).glob("overlay-mesh-lab/*")) if cgroup.is_dir() and wanted(cgroup.name)]
    root = str(overlay_lab.LAB_ROOT if lab is None else overlay_lab.LAB_ROOT / lab).encode()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and cmdline[0].endswith(b"systemd-nspawn") and any(root + b"/" in arg for arg in cmdline):
            left.append(f"process {proc.name}: {b' '.join(cmdline).decode(errors='replace')}")
    return left


def main(argv) -> int:
    if len(argv) != 3 or argv[1] not in ("snapshot", "compare"):
        print(__doc__, file=sys.stderr)
        return 2
    path = Path(argv[2])
    if argv[1] == "snapshot":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(snapshot(), indent=1, sort_keys=True))
        return 0
    before, after = json.loads(path.read_text()), snapshot()
    problems = []
    for key, old in before.items():
        if key != "lab_leftovers" and old != after[key]:
            problems.append(f"root namespace {key} changed:\n  before: {json.dumps(old)}\n  after:  {json.dumps(after[key])}")
    problems += [f"left behind: {item}" for item in after["lab_leftovers"] if item not in before["lab_leftovers"]]
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    print("root network namespace unchanged; no lab namespace, process or directory left")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
